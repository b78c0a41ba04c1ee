//! The kernel bridge's sections: `[kni]`, `[[kni_address]]`, `[[kni_route]]`. A kernel-side
//! address must be on a port with a twin, and must not be one of the data plane's own (an
//! `[[address]]`, hence also a VIP or local address): the two would answer ARP for it alike.

use super::raw::{RawConfig, RawKniAddress, RawKniRoute};
use super::validate::{Seen, address_entry, optional_ipv4, port_ref, route_prefix};
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
        let place = ("kni_address", i, "kernel-side address");
        let entry = address_entry(&mut seen, place, (&a.addr, &a.port), ports)?;
        let addr = entry.addr;
        if let Some(d) = data_plane.iter().find(|d| d.addr == addr) {
            let problem = format!(
                "{addr} is also the data plane's address {}/{} on {}: an address is either the kernel's or the balancer's",
                d.addr, d.prefix_len, d.port
            );
            return Err(ConfigError::invalid(key, problem));
        }
        has_twin(&format!("kni_address[{i}].port"), &entry.port, ports)?;
        out.push(entry);
    }
    Ok(out)
}

fn kni_routes(raw: &[RawKniRoute], ports: &[PortConfig]) -> Result<Vec<KniRouteConfig>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let (prefix, prefix_len) =
            route_prefix(&mut seen, ("kni_route", i, "kernel-side route"), &r.prefix)?;
        let port_key = format!("kni_route[{i}].port");
        let port = port_ref(&port_key, &r.port, ports)?;
        has_twin(&port_key, &port, ports)?;
        let via = optional_ipv4(&format!("kni_route[{i}].via"), &r.via)?;
        out.push(KniRouteConfig {
            prefix,
            prefix_len,
            port,
            via,
        });
    }
    Ok(out)
}

/// Errors at `key` unless port `name` has a kernel twin.
fn has_twin(key: &str, name: &str, ports: &[PortConfig]) -> Result<()> {
    if ports.iter().any(|p| p.name == name && p.kni) {
        return Ok(());
    }
    let problem = format!("port {name:?} has no kernel twin (its [[port]] says kni = false)");
    Err(ConfigError::invalid(key, problem))
}
