//! Generates the DPDK bindings against the system DPDK 22.11 found by pkg-config.
//!
//! Steps: read the exact cflags of `libdpdk` (the pkg-config crate drops `-include rte_config.h`
//! and `-march=corei7`, which change struct layouts and the ISA baseline), run bindgen over
//! `wrapper.h` with wrappers for the `static inline` API, compile those wrappers and `shim.c` with
//! the same flags, then link DPDK as shared libraries (EAL then loads the PMD plugins itself).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrapper = manifest_dir.join("wrapper.h");
    let shim = manifest_dir.join("shim.c");
    println!("cargo:rerun-if-changed={}", wrapper.display());
    println!("cargo:rerun-if-changed={}", shim.display());
    println!("cargo:rerun-if-changed=build.rs");

    // Fail early, with pkg-config's own message, when DPDK is missing or too old.
    if let Err(e) = pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        panic!(
            "DPDK >= {MIN_VERSION} not found through pkg-config (apt-get install libdpdk-dev): {e}"
        );
    }
    let cflags = dpdk_cflags();

    let static_fns = out_dir.join("static_fns");
    let bindings = bindgen::Builder::default()
        .header(wrapper.to_string_lossy())
        .clang_args(&cflags)
        .allowlist_function("(rte|RTE|dpvs)_.*")
        .allowlist_type("(rte|RTE)_.*")
        .allowlist_var("(rte|RTE|DPVS)_.*|RING_F_.*|SOCKET_ID_ANY")
        // Packed structs that contain aligned ones (E0588) and types whose derives fail.
        .opaque_type("rte_arp_hdr|rte_arp_ipv4|rte_gtp_psc_generic_hdr|rte_l2tpv2_combined_msg_hdr")
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_fns)
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .derive_default(true)
        .layout_tests(true)
        // Doxygen comments would become (failing) doc tests and triple the file size.
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on wrapper.h");
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");

    // The wrappers of the static inline functions, and the shim, built with DPDK's own flags.
    // Compiled before the DPDK libraries are emitted so that an order-sensitive linker with
    // `--as-needed` sees the references before the shared libraries.
    let mut build = cc::Build::new();
    build
        .file(static_fns.with_extension("c"))
        .file(&shim)
        .include(&manifest_dir)
        .flag("-w");
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("dpvs_dpdk_shim");

    // Shared linking, as pkg-config describes it (no statik: see shared/reference/rust-dpdk.md).
    pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .probe("libdpdk")
        .expect("pkg-config libdpdk");
}

/// The exact `pkg-config --cflags libdpdk` tokens, honouring `$PKG_CONFIG`.
fn dpdk_cflags() -> Vec<String> {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("running {pkg_config} --cflags libdpdk: {e}"));
    assert!(
        out.status.success(),
        "{pkg_config} --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
