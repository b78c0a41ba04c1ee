//! The file as written: a serde mirror of the TOML with every field optional and in its TOML
//! type (strings, i64 integers). Parsing into these types only fails on TOML syntax, wrong
//! value types and unknown keys; everything else (missing keys, ranges, addresses,
//! references between sections) is checked in `validate`, where the error can name the exact
//! key path and the offending value.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub eal: RawEal,
    #[serde(default)]
    pub workers: RawWorkers,
    #[serde(default)]
    pub port: Vec<RawPort>,
    #[serde(default)]
    pub address: Vec<RawAddress>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub neigh: Vec<RawNeigh>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub conn: RawConn,
    #[serde(default)]
    pub service: Vec<RawService>,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub kni: RawKni,
    #[serde(default)]
    pub kni_address: Vec<RawKniAddress>,
    #[serde(default)]
    pub kni_route: Vec<RawKniRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEal {
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkers {
    pub count: Option<i64>,
    pub cpus: Option<Vec<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub name: Option<String>,
    pub device: Option<String>,
    pub rx_desc: Option<i64>,
    pub tx_desc: Option<i64>,
    pub kni: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAddress {
    pub addr: Option<String>,
    pub port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: Option<String>,
    pub port: Option<String>,
    pub via: Option<String>,
    pub src: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeigh {
    pub addr: Option<String>,
    pub mac: Option<String>,
    pub port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub tcp_established: Option<i64>,
    pub tcp_syn_sent: Option<i64>,
    pub tcp_syn_recv: Option<i64>,
    pub tcp_fin_wait: Option<i64>,
    pub tcp_time_wait: Option<i64>,
    pub tcp_close: Option<i64>,
    pub tcp_close_wait: Option<i64>,
    pub tcp_last_ack: Option<i64>,
    pub tcp_listen: Option<i64>,
    pub tcp_synack: Option<i64>,
    pub udp: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConn {
    pub max_per_worker: Option<i64>,
    pub templates: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub proto: Option<String>,
    pub vip: Option<String>,
    pub port: Option<i64>,
    pub sched: Option<String>,
    #[serde(default)]
    pub sched_flags: Vec<String>,
    pub persistent: Option<i64>,
    pub netmask: Option<RawNetmask>,
    pub mh_table_size: Option<i64>,
    pub forward: Option<String>,
    #[serde(default)]
    pub laddrs: Vec<String>,
    #[serde(default)]
    pub rs: Vec<RawRs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRs {
    pub addr: Option<String>,
    pub weight: Option<i64>,
    pub forward: Option<String>,
    pub upper: Option<i64>,
    pub lower: Option<i64>,
}

/// A netmask as `"255.255.255.0"`, `"/24"` or `24`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawNetmask {
    Text(String),
    Len(i64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub ipc: Option<String>,
    pub instance: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKni {
    pub exclusive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKniAddress {
    pub port: Option<String>,
    pub addr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKniRoute {
    pub port: Option<String>,
    pub prefix: Option<String>,
    pub via: Option<String>,
}
