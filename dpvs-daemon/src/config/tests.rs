use std::path::Path;

use dpvs_api::{Forward, MacAddr, Proto, RouteSpec, RsSpec, Sched};

use super::*;

/// Every section, every optional key.
const FULL: &str = r#"
[eal]
args = ["--no-huge", "-m", "512", "--no-pci"]

[workers]
cpus = [1, 2]

[[port]]
name = "dpdk0"
device = "net_af_packet0,iface=veth-lb0"
rx_desc = 512
tx_desc = 2048

[[port]]
name = "dpdk1"
device = "0000:3b:00.1"
kni = false

[[address]]
addr = "10.0.0.1/24"
port = "dpdk0"

[[address]]
addr = "10.0.0.100/32"
port = "dpdk0"

[[address]]
addr = "192.168.10.200/24"
port = "dpdk1"

[[route]]
prefix = "192.168.10.0/24"
port = "dpdk1"

[[route]]
prefix = "0.0.0.0/0"
port = "dpdk0"
via = "10.0.0.254"
src = "10.0.0.1"

[[neigh]]
addr = "192.168.10.11"
mac = "02:00:00:00:00:11"
port = "dpdk1"

[timeouts]
tcp_established = 600
udp = 30

[conn]
max_per_worker = 65536

[[service]]
proto = "tcp"
vip = "10.0.0.100"
port = 80
sched = "rr"
forward = "fnat"
laddrs = ["192.168.10.200"]

[[service.rs]]
addr = "192.168.10.11:8080"
weight = 1

[[service.rs]]
addr = "192.168.10.12:8080"
weight = 0
forward = "fnat"

[[service]]
proto = "udp"
vip = "10.0.0.100"
port = 53
forward = "dr"

[[service.rs]]
addr = "192.168.10.13:53"

[control]
ipc = "/tmp/dpvs-test.sock"
instance = "test-1"
"#;

/// The smallest useful file; tests append sections to it.
const BASE: &str = r#"
[[port]]
name = "dpdk0"
device = "net_null0"

[[port]]
name = "dpdk1"
device = "net_null1"

[[address]]
addr = "10.0.0.1/24"
port = "dpdk0"

[[address]]
addr = "192.168.10.200/24"
port = "dpdk1"
"#;

fn ok(extra: &str) -> Config {
    Config::from_toml_str(&format!("{BASE}{extra}")).unwrap()
}

fn err(extra: &str) -> String {
    let e = Config::from_toml_str(&format!("{BASE}{extra}"))
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "multi-line error: {e}");
    e
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn full_config_is_parsed() {
    let c = Config::from_toml_str(FULL).unwrap();
    assert_eq!(c.eal_args, ["--no-huge", "-m", "512", "--no-pci"]);
    assert_eq!(c.workers, Workers::Cpus(vec![1, 2]));
    assert_eq!(c.workers.count(), 2);
    assert_eq!(
        c.ports,
        [
            PortConfig {
                name: "dpdk0".into(),
                device: "net_af_packet0,iface=veth-lb0".into(),
                rx_desc: 512,
                tx_desc: 2048,
                kni: true,
            },
            PortConfig {
                name: "dpdk1".into(),
                device: "0000:3b:00.1".into(),
                rx_desc: DEFAULT_DESC,
                tx_desc: DEFAULT_DESC,
                kni: false,
            },
        ]
    );
    assert_eq!(
        c.addresses[0],
        AddressConfig {
            addr: ip("10.0.0.1"),
            prefix_len: 24,
            port: "dpdk0".into()
        }
    );
    assert_eq!(c.addresses.len(), 3);
    assert_eq!(
        c.routes[1],
        RouteSpec {
            prefix: ip("0.0.0.0"),
            prefix_len: 0,
            port: "dpdk0".into(),
            via: Some(ip("10.0.0.254")),
            src: Some(ip("10.0.0.1")),
        }
    );
    assert_eq!(
        c.neighs,
        [NeighConfig {
            addr: ip("192.168.10.11"),
            mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
            port: "dpdk1".into()
        }]
    );
    assert_eq!(c.timeouts.established, 600);
    assert_eq!(c.timeouts.udp, 30);
    assert_eq!(c.timeouts.close, 10);
    assert_eq!(c.max_conns_per_worker, 65536);
    let web = &c.services[0];
    assert_eq!(web.key.to_string(), "tcp:10.0.0.100:80");
    assert_eq!((web.sched, web.forward), (Sched::Rr, Forward::Fnat));
    assert_eq!(web.laddrs, [ip("192.168.10.200")]);
    assert_eq!(
        web.rs,
        [
            RsSpec::new("192.168.10.11:8080".parse().unwrap(), 1),
            RsSpec {
                forward: Some(Forward::Fnat),
                ..RsSpec::new("192.168.10.12:8080".parse().unwrap(), 0)
            },
        ]
    );
    let dns = &c.services[1];
    assert_eq!(dns.key.proto, Proto::Udp);
    assert_eq!(
        (dns.sched, dns.forward),
        (Sched::Wlc, Forward::Dr),
        "wlc by default, as ipvsadm"
    );
    assert_eq!(dns.rs[0].weight, 1);
    assert_eq!(dns.spec().forward, Forward::Dr);
    assert_eq!(c.control.ipc, Path::new("/tmp/dpvs-test.sock"));
    assert_eq!(c.control.instance, "test-1");
    assert_eq!(c.port("dpdk1").map(|p| p.kni), Some(false));
}

#[test]
fn defaults() {
    let c = ok("");
    assert!(c.eal_args.is_empty());
    assert_eq!(c.workers, Workers::Count(1));
    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.timeouts.established, 900);
    assert_eq!(c.timeouts.syn_recv, 60);
    assert_eq!(c.timeouts.last_ack, 30);
    assert_eq!(c.timeouts.udp, 300);
    assert_eq!(c.max_conns_per_worker, 1_048_576);
    assert_eq!(c.control, ControlConfig::default());
    assert_eq!(c.control.ipc, Path::new("/run/dpvs/dpvs.sock"));
    assert!(c.services.is_empty() && c.routes.is_empty() && c.neighs.is_empty());
    assert_eq!(ok("[workers]\ncount = 2\n").workers, Workers::Count(2));
}

#[test]
fn workers_errors() {
    assert_eq!(
        err("[workers]\ncount = 2\ncpus = [1]\n"),
        "workers: give either count or cpus, not both"
    );
    assert_eq!(
        err("[workers]\ncount = 0\n"),
        "workers.count: 0 is out of range (1..=64)"
    );
    assert_eq!(
        err("[workers]\ncount = 65\n"),
        "workers.count: 65 is out of range (1..=64)"
    );
    assert_eq!(ok("[workers]\ncount = 64\n").workers.count(), 64);
    assert_eq!(
        err("[workers]\ncpus = []\n"),
        "workers.cpus: must list at least one cpu"
    );
    assert_eq!(
        err("[workers]\ncpus = [1, 2, 1]\n"),
        "workers.cpus[2]: duplicate cpu 1 (also workers.cpus[0])"
    );
    assert_eq!(
        err("[workers]\ncpus = [-1]\n"),
        "workers.cpus[0]: -1 is out of range (0..=1023)"
    );
    let many: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    assert_eq!(
        err(&format!("[workers]\ncpus = [{}]\n", many.join(","))),
        "workers.cpus: 65 workers is more than the maximum of 64"
    );
}

#[test]
fn port_errors() {
    let e = Config::from_toml_str("[workers]\ncount = 1\n")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "port: at least one [[port]] is required");
    assert_eq!(
        err("[[port]]\nname = \"dpdk0\"\ndevice = \"net_null9\"\n"),
        "port[2].name: duplicate port name \"dpdk0\" (also port[0])"
    );
    assert_eq!(
        err("[[port]]\nname = \"dpdk2\"\ndevice = \"\"\n"),
        "port[2].device: must not be empty"
    );
    assert_eq!(
        err("[[port]]\nname = \"dpdk2\"\n"),
        "port[2].device: missing (required)"
    );
    assert_eq!(
        err("[[port]]\ndevice = \"x\"\n"),
        "port[2].name: missing (required)"
    );
    assert_eq!(
        err("[[port]]\nname = \"dpdk2\"\ndevice = \"net_null0\"\n"),
        "port[2].device: duplicate device \"net_null0\" (also port[0])"
    );
    assert!(
        err("[[port]]\nname = \"averylongname\"\ndevice = \"x\"\n")
            .starts_with("port[2].name: invalid port name \"averylongname\" (1 to 11 letters")
    );
    assert!(
        err("[[port]]\nname = \"a.b\"\ndevice = \"x\"\n")
            .starts_with("port[2].name: invalid port name")
    );
    assert_eq!(
        err("[[port]]\nname = \"dpdk2\"\ndevice = \"x\"\nrx_desc = 1000\n"),
        "port[2].rx_desc: 1000 is not a power of two"
    );
    assert_eq!(
        err("[[port]]\nname = \"dpdk2\"\ndevice = \"x\"\ntx_desc = 65536\n"),
        "port[2].tx_desc: 65536 is out of range (64..=32768)"
    );
}

#[test]
fn address_errors() {
    assert_eq!(
        err("[[address]]\naddr = \"10.0.0.2/24\"\nport = \"dpdk7\"\n"),
        "address[2].port: unknown port \"dpdk7\" (configured: dpdk0, dpdk1)"
    );
    assert_eq!(
        err("[[address]]\naddr = \"10.0.0.2/24\"\n"),
        "address[2].port: missing (required)"
    );
    assert_eq!(
        err("[[address]]\naddr = \"10.0.0.2/33\"\nport = \"dpdk0\"\n"),
        "address[2].addr: invalid prefix \"10.0.0.2/33\": length 33 is longer than 32"
    );
    assert_eq!(
        err("[[address]]\naddr = \"10.0.0.2\"\nport = \"dpdk0\"\n"),
        "address[2].addr: invalid prefix \"10.0.0.2\" (expected ADDR/LEN)"
    );
    assert_eq!(
        err("[[address]]\naddr = \"2001:db8::1/64\"\nport = \"dpdk0\"\n"),
        "address[2].addr: IPv6 not supported yet (2001:db8::1/64)"
    );
    assert_eq!(
        err("[[address]]\naddr = \"10.0.0.1/32\"\nport = \"dpdk1\"\n"),
        "address[2].addr: duplicate address 10.0.0.1 (also address[0])"
    );
}

#[test]
fn route_errors() {
    assert_eq!(
        err("[[route]]\nprefix = \"10.0.0.1/24\"\nport = \"dpdk0\"\n"),
        "route[0].prefix: host bits set in 10.0.0.1/24"
    );
    assert_eq!(
        err("[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"dpdk9\"\n"),
        "route[0].port: unknown port \"dpdk9\" (configured: dpdk0, dpdk1)"
    );
    assert_eq!(
        err("[[route]]\nprefix = \"10.1.0.0/40\"\nport = \"dpdk0\"\n"),
        "route[0].prefix: invalid prefix \"10.1.0.0/40\": length 40 is longer than 32"
    );
    assert_eq!(
        err("[[route]]\nprefix = \"2001:db8::/32\"\nport = \"dpdk0\"\n"),
        "route[0].prefix: IPv6 not supported yet (2001:db8::/32)"
    );
    assert_eq!(
        err("[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"dpdk0\"\nvia = \"fe80::1\"\n"),
        "route[0].via: IPv6 not supported yet (fe80::1)"
    );
    assert_eq!(
        err("[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"dpdk0\"\nvia = \"gw\"\n"),
        "route[0].via: invalid IP address \"gw\""
    );
    assert!(
        err("[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"dpdk0\"\nsrc = \"10.9.9.9\"\n")
            .starts_with("route[0].src: 10.9.9.9 is not one of the [[address]] addresses")
    );
    assert_eq!(
        err(
            "[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"dpdk0\"\n[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"dpdk1\"\n"
        ),
        "route[1].prefix: duplicate route 10.1.0.0/16 (also route[0])"
    );
}

#[test]
fn neigh_errors() {
    assert_eq!(
        err("[[neigh]]\naddr = \"192.168.10.11\"\nmac = \"02:00:00:00:00:11\"\nport = \"dpdk3\"\n"),
        "neigh[0].port: unknown port \"dpdk3\" (configured: dpdk0, dpdk1)"
    );
    assert_eq!(
        err("[[neigh]]\naddr = \"192.168.10.11\"\nmac = \"02:00:00\"\nport = \"dpdk1\"\n"),
        "neigh[0].mac: invalid MAC address \"02:00:00\" (expected xx:xx:xx:xx:xx:xx)"
    );
    assert_eq!(
        err("[[neigh]]\naddr = \"2001:db8::11\"\nmac = \"02:00:00:00:00:11\"\nport = \"dpdk1\"\n"),
        "neigh[0].addr: IPv6 not supported yet (2001:db8::11)"
    );
}

/// A valid FullNAT service with one real server; `{}` markers are replaced per test.
fn service(fields: &str, rs: &str) -> String {
    format!(
        "[[service]]\nproto = \"tcp\"\nvip = \"10.0.0.100\"\nport = 80\nladdrs = [\"192.168.10.200\"]\n{fields}\n[[service.rs]]\n{rs}\n"
    )
}

#[test]
fn service_errors() {
    let good_rs = "addr = \"192.168.10.11:8080\"";
    assert_eq!(ok(&service("", good_rs)).services.len(), 1);
    let two = format!("{}{}", service("", good_rs), service("", good_rs));
    assert_eq!(
        err(&two),
        "service[1]: duplicate of service[0] (tcp:10.0.0.100:80)"
    );
    let bad = service("", good_rs).replace("port = 80", "port = 0");
    assert_eq!(err(&bad), "service[0].port: must not be 0");
    let bad = service("", good_rs).replace("port = 80", "port = 70000");
    assert_eq!(
        err(&bad),
        "service[0].port: 70000 is out of range (1..=65535)"
    );
    let bad = service("", good_rs).replace("port = 80\n", "");
    assert_eq!(err(&bad), "service[0].port: missing (required)");
    let bad = service("", good_rs).replace("\"10.0.0.100\"", "\"2001:db8::100\"");
    assert_eq!(
        err(&bad),
        "service[0].vip: IPv6 not supported yet (2001:db8::100)"
    );
    let bad = service("", good_rs).replace("\"tcp\"", "\"sctp\"");
    assert_eq!(
        err(&bad),
        "service[0].proto: unknown protocol \"sctp\" (expected tcp or udp)"
    );
    assert_eq!(
        err(&service("sched = \"lblc\"", good_rs)),
        "service[0].sched: unknown scheduler \"lblc\" (supported: rr, wrr, wlc, lc, sh, mh, conhash, fo)"
    );
    assert_eq!(
        err(&service("forward = \"masq\"", good_rs)),
        "service[0].forward: unknown forwarding mode \"masq\" (expected fnat, dr, tun or nat)"
    );
}

#[test]
fn laddr_errors() {
    let good_rs = "addr = \"192.168.10.11:8080\"";
    let none = service("", good_rs).replace("laddrs = [\"192.168.10.200\"]\n", "");
    assert!(
        err(&none)
            .starts_with("service[0].laddrs: a fnat service needs at least one local address")
    );
    assert!(
        ok(&none.replace("port = 80\n", "port = 80\nforward = \"dr\"\n")).services[0]
            .laddrs
            .is_empty()
    );
    let rs_fnat = none
        .replace("port = 80\n", "port = 80\nforward = \"dr\"\n")
        .replace(good_rs, "addr = \"192.168.10.11:8080\"\nforward = \"fnat\"");
    assert!(err(&rs_fnat).starts_with("service[0].laddrs: a fnat service needs"));
    let foreign = service("", good_rs).replace("192.168.10.200", "192.168.10.201");
    assert_eq!(
        err(&foreign),
        "service[0].laddrs[0]: 192.168.10.201 is not one of the [[address]] addresses (add it there so that ARP answers for it)"
    );
    let twice = service("", good_rs).replace(
        "[\"192.168.10.200\"]",
        "[\"192.168.10.200\", \"192.168.10.200\"]",
    );
    assert_eq!(
        err(&twice),
        "service[0].laddrs[1]: duplicate local address 192.168.10.200 (also service[0].laddrs[0])"
    );
    let v6 = service("", good_rs).replace("[\"192.168.10.200\"]", "[\"2001:db8::200\"]");
    assert_eq!(
        err(&v6),
        "service[0].laddrs[0]: IPv6 not supported yet (2001:db8::200)"
    );
}

#[test]
fn rs_errors() {
    let two_rs = |second: &str| {
        format!(
            "{}[[service.rs]]\n{second}\n",
            service("", "addr = \"192.168.10.11:8080\"")
        )
    };
    assert_eq!(
        err(&two_rs("addr = \"x:y\"")),
        "service[0].rs[1].addr: invalid socket address \"x:y\" (expected ADDR:PORT)"
    );
    assert_eq!(
        err(&two_rs("addr = \"192.168.10.12:0\"")),
        "service[0].rs[1].addr: port must not be 0 in 192.168.10.12:0"
    );
    assert_eq!(
        err(&two_rs("addr = \"[2001:db8::12]:80\"")),
        "service[0].rs[1].addr: IPv6 not supported yet ([2001:db8::12]:80)"
    );
    assert_eq!(
        err(&two_rs("addr = \"192.168.10.12:80\"\nweight = 65536")),
        "service[0].rs[1].weight: 65536 is out of range (0..=65535)"
    );
    assert_eq!(
        ok(&two_rs("addr = \"192.168.10.12:80\"\nweight = 65535")).services[0].rs[1].weight,
        65535
    );
    assert_eq!(
        err(&two_rs("addr = \"192.168.10.11:8080\"")),
        "service[0].rs[1].addr: duplicate real server 192.168.10.11:8080 (also service[0].rs[0])"
    );
    assert_eq!(
        err(&two_rs("weight = 1")),
        "service[0].rs[1].addr: missing (required)"
    );
}

#[test]
fn timeouts_conn_control_errors() {
    assert_eq!(
        err("[timeouts]\ntcp_close = 0\n"),
        "timeouts.tcp_close: 0 is out of range (1..=2000000)"
    );
    assert_eq!(
        err("[conn]\nmax_per_worker = 0\n"),
        "conn.max_per_worker: 0 is out of range (1..=268435456)"
    );
    assert!(
        err("[control]\ninstance = \"a b\"\n")
            .starts_with("control.instance: invalid instance name \"a b\"")
    );
    assert_eq!(
        err("[control]\nipc = \"\"\n"),
        "control.ipc: must not be empty"
    );
}

/// Found by the `config` fuzz target: a quoted key holding a line break made the error two
/// lines (the key path is not toml's message, which was collapsed), and a lone `\r` survived
/// the collapsing.
#[test]
fn keys_with_line_breaks_give_one_line_errors() {
    let e = err("[control]\n\"a\\nb\" = 1\n");
    assert!(
        e.starts_with("control.\"a\\nb\": line 18: unknown field `a; b`"),
        "{e:?}"
    );
    let e = err("[control]\n\"a\\rb\" = 1\n");
    assert!(!e.contains(['\n', '\r']), "{e:?}");
    assert!(e.contains("unknown field `a; b`"), "{e:?}");
}

#[test]
fn toml_errors_are_one_line_with_key_and_line() {
    // BASE is 16 lines; the appended text starts on line 17.
    assert_eq!(
        err("[workers]\ncount = \"two\"\n"),
        "workers.count: line 18: invalid type: string \"two\", expected i64"
    );
    let e = err("[[port]]\nname = \"dpdk2\"\ndevice = \"x\"\nspeed = 10\n");
    assert!(
        e.starts_with("port[2].speed: line 20: unknown field `speed`, expected one of"),
        "{e}"
    );
    let e = err(&format!(
        "{}weight = \"x\"\n",
        service("", "addr = \"192.168.10.11:8080\"")
    ));
    assert!(
        e.starts_with("service[0].rs[0].weight: line 25: invalid type: string \"x\""),
        "{e}"
    );
    let e = err("[bogus]\n");
    assert!(
        e.starts_with("bogus: line 17: unknown field `bogus`"),
        "{e}"
    );
    let e = err("[workers\ncount = 1\n");
    assert!(e.starts_with("line 17: "), "{e}");
    let e = Config::from_toml_str("a = = 1").unwrap_err().to_string();
    assert!(e.starts_with("line 1: "), "{e}");
    let e = err("[workers]\ncpus = [1, \"x\"]\n");
    assert!(
        e.starts_with("workers.cpus[1]: line 18: invalid type"),
        "{e}"
    );
}

#[test]
fn load_names_the_file() {
    let e = load(Path::new("/nonexistent/dpvs.toml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read /nonexistent/dpvs.toml: No such file or directory"
    );
    let path = std::env::temp_dir().join(format!("dpvs-config-test-{}.toml", std::process::id()));
    std::fs::write(&path, format!("{BASE}[workers]\ncount = 0\n")).unwrap();
    let e = load(&path).unwrap_err();
    assert!(matches!(e.inner(), ConfigError::Invalid { key, .. } if key == "workers.count"));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: workers.count: 0 is out of range (1..=64)",
            path.display()
        )
    );
    std::fs::write(&path, FULL).unwrap();
    assert_eq!(load(&path).unwrap(), Config::from_toml_str(FULL).unwrap());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn kernel_bridge_sections() {
    let c = ok(r#"
[kni]
exclusive = true
[[kni_address]]
port = "dpdk0"
addr = "10.0.0.5/24"
[[kni_route]]
port = "dpdk0"
prefix = "10.9.0.0/16"
via = "10.0.0.254"
"#);
    assert!(c.kni.exclusive);
    assert_eq!(c.kni.addresses.len(), 1);
    assert_eq!(
        (c.kni.addresses[0].addr, c.kni.addresses[0].prefix_len),
        (ip("10.0.0.5"), 24)
    );
    assert_eq!(c.kni.routes[0].via, Some(ip("10.0.0.254")));
    assert!(!ok("").kni.exclusive, "not exclusive unless asked");

    let e = err("[[kni_address]]\nport = \"dpdk0\"\naddr = \"10.0.0.1/24\"\n");
    assert!(
        e.starts_with(
            "kni_address[0].addr: 10.0.0.1 is also the data plane's address 10.0.0.1/24 on dpdk0"
        ),
        "{e}"
    );
    let e = err("[[kni_address]]\nport = \"dpdk9\"\naddr = \"10.0.0.5/24\"\n");
    assert!(
        e.starts_with("kni_address[0].port: unknown port \"dpdk9\""),
        "{e}"
    );
    let e = err("[[kni_route]]\nport = \"dpdk0\"\nprefix = \"10.9.0.1/16\"\n");
    assert!(e.starts_with("kni_route[0].prefix: host bits set"), "{e}");
    let e = err(
        "[[kni_address]]\nport = \"dpdk0\"\naddr = \"10.0.0.5/24\"\n[[kni_address]]\nport = \"dpdk0\"\naddr = \"10.0.0.5/16\"\n",
    );
    assert!(e.contains("duplicate kernel-side address 10.0.0.5"), "{e}");
    let no_twin = "[[port]]\nname = \"dpdk2\"\ndevice = \"net_null2\"\nkni = false\n";
    let e = err(&format!(
        "{no_twin}[[kni_address]]\nport = \"dpdk2\"\naddr = \"10.0.2.5/24\"\n"
    ));
    assert!(e.contains("port \"dpdk2\" has no kernel twin"), "{e}");
    let e = err("[kni]\nexclusively = true\n");
    assert!(e.contains("exclusively"), "{e}");
}
