//! Turning the daemon's answers into text. Every function here is pure (data in, `String` out)
//! so that the layouts users and scripts rely on are pinned by unit tests.

use dpvs_api::{
    AddrInfo, ConnInfo, Counters, Field, LaddrInfo, LinkInfo, NeighInfo, Rates, Response,
    RouteSpec, RsInfo, ServiceInfo, StatsInfo, StatsTotals, TwinInfo, WorkerCounters,
};
use serde::Serialize;

use crate::cli::Output;

/// What the command asked for, where it changes the layout.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Style {
    /// `service list --stats`: the `ipvsadm -ln --stats` layout.
    pub stats: bool,
    /// `service list --rate`: the `ipvsadm -ln --rate` layout.
    pub rate: bool,
    /// Print counters in full instead of scaling them.
    pub exact: bool,
}

/// Renders a response; empty for [`Response::Done`] (success is silent, like `ipvsadm`).
pub(crate) fn render(resp: &Response, output: Output, style: Style) -> String {
    match output {
        Output::Json => json(resp),
        Output::Table => table_for(resp, style),
    }
}

/// The response's data as pretty JSON, without the protocol's envelope and tag.
fn json(resp: &Response) -> String {
    fn pretty<T: Serialize>(v: &T) -> String {
        let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
        s.push('\n');
        s
    }
    match resp {
        Response::Done => String::new(),
        Response::Services(v) => pretty(v),
        Response::Laddrs(v) => pretty(v),
        Response::Addrs(v) => pretty(v),
        Response::Routes(v) => pretty(v),
        Response::Neighs(v) => pretty(v),
        Response::Conns(v) => pretty(v),
        Response::Stats(v) => pretty(v),
        Response::Links(v) => pretty(v),
        Response::Twins(v) => pretty(v),
    }
}

fn table_for(resp: &Response, style: Style) -> String {
    match resp {
        Response::Done => String::new(),
        Response::Services(v) if style.rate => services_rates(v, style.exact),
        Response::Services(v) if style.stats => services_stats(v, style.exact),
        Response::Services(v) => services(v),
        Response::Laddrs(v) => laddrs(v),
        Response::Addrs(v) => addrs(v),
        Response::Routes(v) => routes(v),
        Response::Neighs(v) => neighs(v),
        Response::Conns(v) => conns(v),
        Response::Stats(v) => stats(v),
        Response::Links(v) => links(v),
        Response::Twins(v) => twins(v),
    }
}

/// First line of the `ipvsadm -ln` layouts; scripts written for ipvsadm skip it.
fn version_line() -> String {
    format!(
        "IP Virtual Server version {} (dpvs-rs)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `TCP  10.0.0.100:80`: the service column of ipvsadm (upper-case protocol, two spaces).
fn service_name(s: &ServiceInfo) -> String {
    let addr = std::net::SocketAddr::new(s.key.vip, s.key.port);
    format!("{}  {}", s.key.proto.name().to_ascii_uppercase(), addr)
}

/// `service list`, laid out as `ipvsadm -ln`.
pub(crate) fn services(list: &[ServiceInfo]) -> String {
    let mut out = version_line();
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str(&rs_line(
        "RemoteAddress:Port",
        "Forward",
        "Weight",
        "ActiveConn",
        "InActConn",
    ));
    for s in list {
        out.push_str(&format!("{} {}\n", service_name(s), scheduling(s)));
        for rs in &s.rs {
            out.push_str(&rs_line(
                &rs.addr.to_string(),
                rs.forward.ipvsadm_name(),
                &rs.weight.to_string(),
                &rs.active_conns.to_string(),
                &rs.inactive_conns.to_string(),
            ));
        }
    }
    out
}

/// The scheduler column as ipvsadm prints it: `sh (sh-fallback,sh-port) persistent 300 mask
/// 255.255.255.0`.
fn scheduling(s: &ServiceInfo) -> String {
    let mut out = s.sched.to_string();
    if !s.sched_flags.is_empty() {
        out.push_str(&format!(" ({})", s.sched_flags.names(s.sched)));
    }
    if let Some(p) = s.persistence {
        out.push_str(&format!(" persistent {}", p.timeout));
        if p.netmask < 32 {
            out.push_str(&format!(" mask {}", p.mask()));
        }
    }
    out
}

/// One real-server line of `ipvsadm -ln`: fixed columns 28/7/6/10.
fn rs_line(addr: &str, fwd: &str, weight: &str, active: &str, inactive: &str) -> String {
    let line = format!("  -> {addr:<28} {fwd:<7} {weight:<6} {active:<10} {inactive}");
    format!("{}\n", line.trim_end())
}

/// `service list --stats`, laid out as `ipvsadm -ln --stats`.
pub(crate) fn services_stats(list: &[ServiceInfo], exact: bool) -> String {
    numbers_layout(list, Counters::FIELDS, |s| s.stats, |r| r.stats, exact)
}

/// `service list --rate`, laid out as `ipvsadm -ln --rate`.
pub(crate) fn services_rates(list: &[ServiceInfo], exact: bool) -> String {
    numbers_layout(list, Rates::FIELDS, |s| s.rates, |r| r.rates, exact)
}

/// The layout of `--stats` and `--rate`: a heading of `fields`, then each service and its
/// real servers with their numbers.
fn numbers_layout<T: Copy + Default>(
    list: &[ServiceInfo],
    fields: &[Field<T>],
    of_service: impl Fn(&ServiceInfo) -> Option<T>,
    of_rs: impl Fn(&RsInfo) -> Option<T>,
    exact: bool,
) -> String {
    let mut out = version_line();
    let head: Vec<String> = fields.iter().map(|f| f.column.into()).collect();
    out.push_str(&stats_line("Prot LocalAddress:Port", &head));
    out.push_str("  -> RemoteAddress:Port\n");
    for s in list {
        let cells = number_cells(fields, of_service(s), exact);
        out.push_str(&stats_line(&service_name(s), &cells));
        for rs in &s.rs {
            let name = format!("  -> {}", rs.addr);
            out.push_str(&stats_line(&name, &number_cells(fields, of_rs(rs), exact)));
        }
    }
    out
}

/// A line of the `--stats` layout: a 33-wide name, then 8-wide right-aligned numbers.
fn stats_line(name: &str, cells: &[String]) -> String {
    let mut line = format!("{name:<33}");
    for cell in cells {
        line.push_str(&format!(" {cell:>8}"));
    }
    line.push('\n');
    line
}

fn number_cells<T: Default>(fields: &[Field<T>], c: Option<T>, exact: bool) -> Vec<String> {
    let c = c.unwrap_or_default();
    let show = |n: u64| if exact { n.to_string() } else { scaled(n) };
    fields.iter().map(|f| show((f.get)(&c))).collect()
}

/// A counter in at most 8 characters, in the spirit of ipvsadm: exact below 10^8, otherwise
/// divided by the smallest power of 1000 that leaves at most five digits, with a K/M/G/T/P/E
/// suffix (`1409M`).
pub(crate) fn scaled(n: u64) -> String {
    if n < 100_000_000 {
        return n.to_string();
    }
    let mut unit = 1u64;
    for suffix in ["K", "M", "G", "T", "P", "E"] {
        unit *= 1000;
        if n / unit < 100_000 {
            return format!("{}{suffix}", n / unit);
        }
    }
    n.to_string()
}

/// Column alignment in [`table`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}
use Align::{Left, Right};

/// An aligned table: columns separated by two spaces, sized to their widest cell, no
/// trailing blanks.
fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(columns.iter().zip(&widths))
            .map(|(cell, ((_, align), w))| match align {
                Left => format!("{cell:<w$}"),
                Right => format!("{cell:>w$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `laddr list`.
pub(crate) fn laddrs(list: &[LaddrInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            vec![
                l.service.to_string(),
                l.addr.to_string(),
                or_dash(l.port.as_ref()),
            ]
        })
        .collect();
    table(&[("SERVICE", Left), ("LADDR", Left), ("PORT", Left)], &rows)
}

/// `addr list`.
pub(crate) fn addrs(list: &[AddrInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| vec![format!("{}/{}", a.addr, a.prefix_len), a.port.clone()])
        .collect();
    table(&[("ADDRESS", Left), ("PORT", Left)], &rows)
}

/// `route list`.
pub(crate) fn routes(list: &[RouteSpec]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                format!("{}/{}", r.prefix, r.prefix_len),
                or_dash(r.via),
                or_dash(r.src),
                r.port.clone(),
            ]
        })
        .collect();
    table(
        &[
            ("PREFIX", Left),
            ("VIA", Left),
            ("SRC", Left),
            ("PORT", Left),
        ],
        &rows,
    )
}

/// `neigh list`.
pub(crate) fn neighs(list: &[NeighInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            vec![
                n.addr.to_string(),
                n.mac.to_string(),
                n.port.clone(),
                n.kind.name().into(),
            ]
        })
        .collect();
    table(
        &[
            ("ADDRESS", Left),
            ("MAC", Left),
            ("PORT", Left),
            ("KIND", Left),
        ],
        &rows,
    )
}

/// `conn list`: the fields of `ipvsadm -lnc` (owner, protocol, expiry, state, the four
/// endpoints) as a table.
pub(crate) fn conns(list: &[ConnInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.worker.to_string(),
                c.proto.name().into(),
                format!("{}s", c.expires_in_s),
                c.state.clone(),
                c.client.to_string(),
                c.vip.to_string(),
                or_dash(c.laddr),
                c.rs.to_string(),
            ]
        })
        .collect();
    let cols = [
        ("WORKER", Right),
        ("PROTO", Left),
        ("EXPIRE", Right),
        ("STATE", Left),
        ("CLIENT", Left),
        ("VIRTUAL", Left),
        ("LOCAL", Left),
        ("REAL", Left),
    ];
    table(&cols, &rows)
}

/// `stats`: one row per worker and a total (the worker counters, drops and busy cycles per
/// packet), then drops by reason.
pub(crate) fn stats(s: &StatsInfo) -> String {
    let mut cols = vec![("WORKER", Left), ("LCORE", Right)];
    cols.extend(WorkerCounters::FIELDS.iter().map(|f| (f.column, Right)));
    cols.extend([("DROPS", Right), ("CYCLES/PKT", Right)]);
    let row = |worker: String, lcore: String, t: &StatsTotals, (cycles, pkts): (u64, u64)| {
        let mut row = vec![worker, lcore];
        row.extend(
            WorkerCounters::FIELDS
                .iter()
                .map(|f| (f.get)(&t.counters).to_string()),
        );
        row.push(t.drops.to_string());
        row.push(cycles_per_packet(cycles, pkts));
        row
    };
    let mut rows: Vec<Vec<String>> = s
        .workers
        .iter()
        .map(|w| {
            let busy = (w.busy_cycles, w.busy_pkts);
            row(w.id.to_string(), w.lcore.to_string(), &w.totals(), busy)
        })
        .collect();
    let busy = s.workers.iter().fold((0u64, 0u64), |(c, p), w| {
        (c.wrapping_add(w.busy_cycles), p.wrapping_add(w.busy_pkts))
    });
    rows.push(row("total".into(), "-".into(), &s.total, busy));
    let mut out = table(&cols, &rows);
    if s.mbuf_capacity > 0 {
        out.push_str(&format!(
            "\nmbufs in use: {} of {}\n",
            s.mbuf_in_use, s.mbuf_capacity
        ));
    }
    if !s.drops_total.is_empty() {
        let drops: Vec<Vec<String>> = s
            .drops_total
            .iter()
            .map(|(r, n)| vec![r.clone(), n.to_string()])
            .collect();
        out.push('\n');
        out.push_str(&table(&[("DROP REASON", Left), ("PACKETS", Right)], &drops));
    }
    if let Some(t) = s.templates {
        out.push_str(&format!(
            "\npersistence templates: {} live of {}, {} connections found no free entry\n",
            t.live, t.capacity, t.full
        ));
    }
    if !s.kni.is_empty() {
        out.push('\n');
        out.push_str(&twin_counters(&s.kni));
    }
    out
}

/// The kernel twins' traffic: one row each.
fn twin_counters(list: &[TwinInfo]) -> String {
    let cols = [
        ("KERNEL TWIN", Left),
        ("TO_KERNEL", Right),
        ("FROM_KERNEL", Right),
        ("DROPS", Right),
        ("RESTORES", Right),
        ("FIGHTS", Right),
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let drops: u64 = t.drops.values().sum();
            vec![
                t.ifname.clone(),
                t.to_kernel_pkts.to_string(),
                t.from_kernel_pkts.to_string(),
                drops.to_string(),
                t.restores.to_string(),
                t.fights.to_string(),
            ]
        })
        .collect();
    table(&cols, &rows)
}

/// `kni list`: per twin, its backend and link, what it should carry and what it carries, and
/// its traffic.
pub(crate) fn twins(list: &[TwinInfo]) -> String {
    let mut out = String::new();
    for t in list {
        let join = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        let ago = t.last_restore_ms_ago.map_or_else(
            || "never".to_string(),
            |ms| format!("{:.1} s ago", ms as f64 / 1000.0),
        );
        out.push_str(&format!(
            "{} (port {}, {}), link {}\n  addresses: {} (kernel has: {})\n  routes:    {} (kernel has: {})\n",
            t.ifname,
            t.port,
            t.backend,
            if t.link_up { "up" } else { "down" },
            join(&t.desired_addrs),
            join(&t.actual_addrs),
            join(&t.desired_routes),
            join(&t.actual_routes),
        ));
        if !t.foreign_addrs.is_empty() {
            out.push_str(&format!("  added by others: {}\n", join(&t.foreign_addrs)));
        }
        let drops: Vec<String> = t.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
        out.push_str(&format!(
            "  to kernel {} pkts {} bytes, from kernel {} pkts {} bytes, drops: {}\n  guard: {} restores (last {}), {} fights{}\n",
            t.to_kernel_pkts,
            t.to_kernel_bytes,
            t.from_kernel_pkts,
            t.from_kernel_bytes,
            drops.join(", "),
            t.restores,
            ago,
            t.fights,
            t.last_error.as_ref().map_or_else(String::new, |e| format!(", last error: {e}")),
        ));
    }
    out
}

/// Busy TSC cycles per packet (testpmd's `--record-core-cycles` definition), `-` before any.
fn cycles_per_packet(cycles: u64, pkts: u64) -> String {
    cycles
        .checked_div(pkts)
        .map_or_else(|| "-".to_string(), |c| c.to_string())
}

/// `link list`: identity and steering, then counters.
pub(crate) fn links(list: &[LinkInfo]) -> String {
    let ids: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.port_id.to_string(),
                l.device.clone(),
                l.driver.clone(),
                l.mac.to_string(),
                link_state(l),
                format!("{}/{}", l.rx_queues, l.tx_queues),
                l.steering.clone(),
                or_dash(l.kni.as_ref()),
            ]
        })
        .collect();
    let id_cols = [
        ("NAME", Left),
        ("ID", Right),
        ("DEVICE", Left),
        ("DRIVER", Left),
        ("MAC", Left),
        ("LINK", Left),
        ("RXQ/TXQ", Left),
        ("STEERING", Left),
        ("KNI", Left),
    ];
    let counters: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            let nums = [
                l.rx_pkts,
                l.tx_pkts,
                l.rx_bytes,
                l.tx_bytes,
                l.rx_missed,
                l.rx_nombuf,
                l.rx_errors,
                l.tx_errors,
            ];
            let mut row = vec![l.name.clone()];
            row.extend(nums.iter().map(u64::to_string));
            row
        })
        .collect();
    let counter_cols = [
        ("NAME", Left),
        ("RX_PKTS", Right),
        ("TX_PKTS", Right),
        ("RX_BYTES", Right),
        ("TX_BYTES", Right),
        ("RX_MISSED", Right),
        ("RX_NOMBUF", Right),
        ("RX_ERRORS", Right),
        ("TX_ERRORS", Right),
    ];
    format!(
        "{}\n{}",
        table(&id_cols, &ids),
        table(&counter_cols, &counters)
    )
}

/// `up 10000Mbps`, `up` (speed unknown) or `down`.
fn link_state(l: &LinkInfo) -> String {
    match (l.link_up, l.speed_mbps) {
        (false, _) => "down".into(),
        (true, 0) => "up".into(),
        (true, s) => format!("up {s}Mbps"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use dpvs_api::{Forward, MacAddr, NeighKind, Sched, WorkerStats, samples};

    use super::*;

    /// The sample service with counters and a second, DR, real server without.
    fn service() -> ServiceInfo {
        let mut s = samples::service();
        s.rs[0].stats = Some(Counters {
            conns: 5,
            in_pkts: 30,
            out_pkts: 25,
            in_bytes: 1800,
            out_bytes: 1_409_000_000,
        });
        s.rs.push(RsInfo {
            addr: "192.168.10.12:8080".parse().unwrap(),
            weight: 100,
            forward: Forward::Dr,
            active_conns: 12,
            inactive_conns: 340,
            upper: 0,
            lower: 0,
            stats: None,
            rates: None,
        });
        s.stats = Some(Counters {
            conns: 5,
            ..Default::default()
        });
        s
    }

    #[test]
    fn services_follow_ipvsadm_ln() {
        let mut udp = service();
        udp.key = "udp:[2001:db8::1]:53".parse().unwrap();
        udp.sched = Sched::Wrr;
        udp.rs.clear();
        let got = services(&[service(), udp]);
        let want = format!(
            "IP Virtual Server version {} (dpvs-rs)\n\
             Prot LocalAddress:Port Scheduler Flags\n\
             \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  10.0.0.100:80 rr\n\
             \x20 -> 192.168.10.11:8080           FullNat 1      3          0\n\
             \x20 -> 192.168.10.12:8080           Route   100    12         340\n\
             UDP  [2001:db8::1]:53 wrr\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(got, want);
    }

    #[test]
    fn services_stats_follow_ipvsadm_ln_stats() {
        let got = services_stats(&[service()], false);
        let lines: Vec<&str> = got.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
                "  -> RemoteAddress:Port",
                "TCP  10.0.0.100:80                       5        0        0        0        0",
                "  -> 192.168.10.11:8080                  5       30       25     1800    1409M",
                "  -> 192.168.10.12:8080                  0        0        0        0        0",
            ]
        );
        let exact = services_stats(&[service()], true);
        assert!(exact.contains(" 1409000000\n"), "{exact}");
    }

    #[test]
    fn scaling_keeps_eight_columns() {
        assert_eq!(scaled(0), "0");
        assert_eq!(scaled(99_999_999), "99999999");
        assert_eq!(scaled(100_000_000), "100M");
        assert_eq!(scaled(99_999_999_999), "99999M");
        assert_eq!(scaled(100_000_000_000), "100G");
        assert_eq!(scaled(1_409_000_000), "1409M");
        assert_eq!(scaled(u64::MAX), "18446P");
        for n in [1u64 << 30, 1 << 40, 1 << 50, 1 << 60, u64::MAX] {
            assert!(scaled(n).len() <= 8, "{n}");
        }
    }

    #[test]
    fn generic_table_aligns_and_trims() {
        let rows = vec![
            vec!["a".into(), "1".into(), "".into()],
            vec!["long".into(), "100".into(), "x".into()],
        ];
        let got = table(&[("NAME", Left), ("N", Right), ("NOTE", Left)], &rows);
        assert_eq!(got, "NAME    N  NOTE\na       1\nlong  100  x\n");
    }

    #[test]
    fn small_tables() {
        let svc = "tcp:10.0.0.100:80".parse().unwrap();
        assert_eq!(
            laddrs(&[LaddrInfo {
                service: svc,
                addr: "192.168.10.200".parse().unwrap(),
                port: None
            }]),
            "SERVICE            LADDR           PORT\ntcp:10.0.0.100:80  192.168.10.200  -\n"
        );
        assert_eq!(
            addrs(&[AddrInfo {
                addr: "10.0.0.1".parse().unwrap(),
                prefix_len: 24,
                port: "dpdk0".into()
            }]),
            "ADDRESS      PORT\n10.0.0.1/24  dpdk0\n"
        );
        assert_eq!(
            routes(&[RouteSpec {
                prefix: "0.0.0.0".parse().unwrap(),
                prefix_len: 0,
                port: "dpdk1".into(),
                via: Some("10.0.0.254".parse().unwrap()),
                src: None,
            }]),
            "PREFIX     VIA         SRC  PORT\n0.0.0.0/0  10.0.0.254  -    dpdk1\n"
        );
        assert_eq!(
            neighs(&[NeighInfo {
                addr: "192.168.10.11".parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
                port: "dpdk1".into(),
                kind: NeighKind::Static,
            }]),
            "ADDRESS        MAC                PORT   KIND\n192.168.10.11  02:00:00:00:00:11  dpdk1  static\n"
        );
    }

    #[test]
    fn conn_table() {
        let got = conns(&[samples::conn()]);
        assert_eq!(
            got,
            "WORKER  PROTO  EXPIRE  STATE        CLIENT          VIRTUAL        LOCAL                REAL\n     \
             1  tcp      899s  ESTABLISHED  10.0.0.2:40000  10.0.0.100:80  192.168.10.200:1028  192.168.10.11:8080\n"
        );
    }

    #[test]
    fn stats_table() {
        let mut drops = BTreeMap::new();
        drops.insert("no_route".to_string(), 2);
        let w0 = WorkerStats {
            id: 0,
            lcore: 1,
            counters: WorkerCounters {
                rx_pkts: 100,
                tx_pkts: 98,
                ..Default::default()
            },
            busy_cycles: 5000,
            busy_pkts: 100,
            drops,
        };
        let w1 = WorkerStats {
            id: 1,
            lcore: 2,
            counters: WorkerCounters {
                rx_pkts: 5,
                conns_active: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut info = StatsInfo::from_workers(vec![w0, w1]);
        (info.mbuf_in_use, info.mbuf_capacity) = (7, 1023);
        let got = stats(&info);
        assert_eq!(
            got,
            "WORKER  LCORE  RX_PKTS  TX_PKTS  CONNS  CREATED  KERNEL  RING_IN  RING_OUT  DROPS  CYCLES/PKT\n\
             0           1      100       98      0        0       0        0         0      2          50\n\
             1           2        5        0      1        0       0        0         0      0           -\n\
             total       -      105       98      1        0       0        0         0      2          50\n\
             \n\
             mbufs in use: 7 of 1023\n\
             \n\
             DROP REASON  PACKETS\n\
             no_route           2\n"
        );
    }

    /// Every column with a value of its own, so that a column showing another's counter shows.
    #[test]
    fn stats_table_columns_are_their_counters() {
        let info = samples::numbered_stats();
        assert_eq!(
            stats(&info),
            "WORKER  LCORE  RX_PKTS  TX_PKTS  CONNS  CREATED  KERNEL  RING_IN  RING_OUT  DROPS  CYCLES/PKT\n\
             0           1        1        2      3        4       5        6         7     21          90\n\
             1           2      101      102    103      104     105      106       107    221          90\n\
             total       -      102      104    106      108     110      112       114    242          90\n\
             \n\
             DROP REASON  PACKETS\n\
             bad_csum         120\n\
             no_route         122\n"
        );
    }

    /// What `tests/e2e/lab.py` and `bench/run.sh` read from `dpvs-ctl -o json stats`.
    #[test]
    fn stats_json_has_what_scripts_read() {
        let mut w = WorkerStats {
            id: 0,
            lcore: 1,
            counters: WorkerCounters {
                rx_pkts: 10,
                tx_pkts: 9,
                conns_active: 2,
                ..Default::default()
            },
            busy_cycles: 500,
            busy_pkts: 10,
            ..Default::default()
        };
        w.drops.insert("no_route".into(), 1);
        let mut info = StatsInfo::from_workers(vec![w]);
        info.mbuf_in_use = 7;
        let out = render(&Response::Stats(info), Output::Json, Style::default());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["drops_total"], serde_json::json!({"no_route": 1}));
        assert_eq!(v["mbuf_in_use"], 7);
        let w0 = &v["workers"][0];
        for (key, want) in [
            ("busy_cycles", 500),
            ("busy_pkts", 10),
            ("rx_pkts", 10),
            ("tx_pkts", 9),
            ("conns_active", 2),
        ] {
            assert_eq!(w0[key], want, "{key}");
        }
        assert_eq!(w0["drops"], serde_json::json!({"no_route": 1}));
    }

    #[test]
    fn link_table() {
        let l = LinkInfo {
            name: "dpdk0".into(),
            device: "net_af_packet0,iface=veth-lb0".into(),
            port_id: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            driver: "net_af_packet".into(),
            link_up: true,
            speed_mbps: 10000,
            rx_queues: 1,
            tx_queues: 2,
            steering: "software (spsc rings)".into(),
            kni: Some("dpdk0.kni".into()),
            rx_pkts: 7,
            ..Default::default()
        };
        let want = "\
NAME   ID  DEVICE                         DRIVER         MAC                LINK          RXQ/TXQ  STEERING               KNI
dpdk0   0  net_af_packet0,iface=veth-lb0  net_af_packet  02:00:00:00:00:01  up 10000Mbps  1/2      software (spsc rings)  dpdk0.kni

NAME   RX_PKTS  TX_PKTS  RX_BYTES  TX_BYTES  RX_MISSED  RX_NOMBUF  RX_ERRORS  TX_ERRORS
dpdk0        7        0         0         0          0          0          0          0
";
        assert_eq!(links(&[l]), want);
    }

    #[test]
    fn json_prints_data_only_and_done_prints_nothing() {
        let out = render(&Response::Addrs(vec![]), Output::Json, Style::default());
        assert_eq!(out, "[]\n");
        assert_eq!(render(&Response::Done, Output::Json, Style::default()), "");
        assert_eq!(render(&Response::Done, Output::Table, Style::default()), "");
        let out = render(
            &Response::Services(vec![service()]),
            Output::Json,
            Style::default(),
        );
        let back: Vec<ServiceInfo> = serde_json::from_str(&out).unwrap();
        assert_eq!(back, vec![service()]);
    }
}
