//! The kernel bridge's sections: `[kni]`, `[[kni_address]]`, `[[kni_route]]`. A kernel-side
//! address must be on a port with a twin, and must not be one of the data plane's own (an
//! `[[address]]`, hence also a VIP or local address): the two would answer ARP for it alike.

use std::net::IpAddr;

use dpvs_api::host_bits_set;

use super::raw::{RawConfig, RawKniAddress, RawKniRoute};
use super::validate::{Seen, ipv4, port_ref, prefix_v4, required};
use super::{AddressConfig, ConfigError, KniConfig, KniRouteConfig, PortConfig};

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn kni(
    raw: &RawConfig,
    ports: &[PortConfig],
    addresses: &[AddressConfig],
) -> Result<KniConfig> {
    Ok(KniConfig {
        exclusive: raw.kni.exclusive.unwrap_or(false),
        addresses: kni_addresses(&raw.kni_address, ports, addresses)?,
        routes: kni_routes(&raw.kni_route, ports)?,
    })
}

fn kni_addresses(
    raw: &[RawKniAddress],
    ports: &[PortConfig],
    data_plane: &[AddressConfig],
) -> Result<Vec<AddressConfig>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, a) in raw.iter().enumerate() {
        let key = format!("kni_address[{i}].addr");
        let (addr, prefix_len) = prefix_v4(&key, required(&key, &a.addr)?)?;
        seen.check(
            &key,
            addr,
            "kernel-side address",
            format!("kni_address[{i}]"),
        )?;
        if let Some(d) = data_plane.iter().find(|d| d.addr == addr) {
            let problem = format!(
                "{addr} is also the data plane's address {}/{} on {}: an address is either the kernel's or the balancer's",
                d.addr, d.prefix_len, d.port
            );
            return Err(ConfigError::invalid(key, problem));
        }
        let port = twin_port(&format!("kni_address[{i}].port"), &a.port, ports)?;
        out.push(AddressConfig {
            addr,
            prefix_len,
            port,
        });
    }
    Ok(out)
}

fn kni_routes(raw: &[RawKniRoute], ports: &[PortConfig]) -> Result<Vec<KniRouteConfig>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let key = format!("kni_route[{i}].prefix");
        let text = required(&key, &r.prefix)?;
        let (prefix, prefix_len) = prefix_v4(&key, text)?;
        if host_bits_set(prefix, prefix_len) {
            return Err(ConfigError::invalid(
                key,
                format!("host bits set in {text}"),
            ));
        }
        seen.check(
            &key,
            format!("{prefix}/{prefix_len}"),
            "kernel-side route",
            format!("kni_route[{i}]"),
        )?;
        let port = twin_port(&format!("kni_route[{i}].port"), &r.port, ports)?;
        let via: Option<IpAddr> = r
            .via
            .as_deref()
            .map(|v| ipv4(&format!("kni_route[{i}].via"), v))
            .transpose()?;
        out.push(KniRouteConfig {
            prefix,
            prefix_len,
            port,
            via,
        });
    }
    Ok(out)
}

/// The name of an existing port that has a kernel twin.
fn twin_port(key: &str, name: &Option<String>, ports: &[PortConfig]) -> Result<String> {
    let name = port_ref(key, name, ports)?;
    if ports.iter().any(|p| p.name == name && p.kni) {
        return Ok(name);
    }
    let problem = format!("port {name:?} has no kernel twin (its [[port]] says kni = false)");
    Err(ConfigError::invalid(key, problem))
}
