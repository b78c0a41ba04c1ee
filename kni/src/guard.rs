//! The background loop: applies the fixed sequence, watches rtnetlink notifications, reconciles
//! periodically, re-asserts with backoff, and serves the synchronous API's commands.
//!
//! The loop is level-triggered: a notification only marks its twin dirty; after a short settle
//! time (so that one check sees a whole burst, like the dozen messages of a flush) the twin's
//! actual state is read back and compared with the desired state, and only a real difference is
//! repaired. Our own changes echo back with our netlink port id and are ignored.

use std::collections::BTreeSet;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver as NlReceiver;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::{MulticastGroup, new_connection, new_multicast_connection};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::backoff::{Backoff, BackoffConfig};
use crate::desired::{Desired, Diff, KniAddr, KniRoute, TwinSpec};
use crate::netlink::{self, Event, Link, Netlink};
use crate::{BridgeOptions, KniError, TwinStatus};

/// Link, address and route changes, both families.
const GROUPS: [MulticastGroup; 5] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv6Route,
];
/// Room for bursts of notifications before the kernel drops some (the periodic reconcile
/// covers what is lost anyway).
const MONITOR_RCVBUF: usize = 4 << 20;
/// How often to look for a twin that does not exist yet, during start-up.
const DEVICE_POLL: Duration = Duration::from_millis(100);
/// Foreign notifications remembered per twin for the restore log line.
const SEEN_KEEP: usize = 6;

type Reply<T> = SyncSender<Result<T, KniError>>;
type Notifications = NlReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// A request from the synchronous API.
pub(crate) enum Command {
    AddrAdd(String, KniAddr, Reply<()>),
    AddrDel(String, KniAddr, Reply<()>),
    RouteAdd(String, KniRoute, Reply<()>),
    RouteDel(String, KniRoute, Reply<()>),
    Status(SyncSender<Vec<TwinStatus>>),
}

/// One twin and what the guard knows about it.
struct Twin {
    port: String,
    ifname: String,
    desired: Desired,
    ifindex: Option<u32>,
    /// The device (re)appeared: it needs the full fixed sequence.
    fresh: bool,
    /// When a foreign change was first noticed since the last check.
    dirty_since: Option<Instant>,
    /// A repair held back by the backoff.
    repair_at: Option<Instant>,
    /// The foreign notifications behind the pending check, for the log: (what, sender port).
    seen: Vec<(String, u32)>,
    backoff: Backoff,
    restores: u64,
    last_restore: Option<Instant>,
    fights: u64,
    /// Foreign addresses already logged (so that a non-exclusive bridge says it once).
    reported_foreign: BTreeSet<KniAddr>,
    last_error: Option<String>,
    /// The last repair failed: the next one waits for the backoff, whatever the timing.
    failing: bool,
}

impl Twin {
    fn new(spec: &TwinSpec, backoff: BackoffConfig) -> Self {
        Twin {
            port: spec.port.clone(),
            ifname: spec.ifname.clone(),
            desired: Desired::from_spec(spec),
            ifindex: None,
            fresh: true,
            dirty_since: None,
            repair_at: None,
            seen: Vec::new(),
            backoff: Backoff::new(backoff),
            restores: 0,
            last_restore: None,
            fights: 0,
            reported_foreign: BTreeSet::new(),
            last_error: None,
            failing: false,
        }
    }

    fn note(&mut self, what: String, port: u32, now: Instant) {
        self.dirty_since.get_or_insert(now);
        // Keep room for the interesting ones: the kernel's side effects come in swarms.
        let kernel_ones = self.seen.iter().filter(|(_, p)| *p == 0).count();
        if self.seen.len() < SEEN_KEEP && (port != 0 || kernel_ones < SEEN_KEEP / 2) {
            self.seen.push((what, port));
        }
    }

    /// The notifications behind a repair, for the log: what others did; the kernel's own
    /// side effects only when nobody else shows up.
    fn seen_summary(&self) -> String {
        if self.seen.is_empty() {
            return "found by the periodic reconcile".to_owned();
        }
        let others: Vec<&str> = self
            .seen
            .iter()
            .filter(|(_, p)| *p != 0)
            .map(|(w, _)| w.as_str())
            .collect();
        let shown = if others.is_empty() {
            self.seen.iter().map(|(w, _)| w.as_str()).collect()
        } else {
            others
        };
        format!("seen: {}", shown.join("; "))
    }

    fn settled(&mut self) {
        self.dirty_since = None;
        self.seen.clear();
    }
}

pub(crate) struct Guard {
    opts: BridgeOptions,
    nl: Netlink,
    /// The netlink port id of our request socket: notifications carrying it are our echoes.
    own_port: u32,
    events: Notifications,
    twins: Vec<Twin>,
    next_tick: Instant,
}

/// Entry point of the bridge thread.
pub(crate) async fn run(
    opts: BridgeOptions,
    specs: Vec<TwinSpec>,
    cmds: UnboundedReceiver<Command>,
    ready: SyncSender<Result<(), KniError>>,
) {
    let mut guard = match Guard::connect(opts, &specs) {
        Ok(g) => g,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Err(e) = guard.bring_up().await {
        let _ = ready.send(Err(e));
        return;
    }
    if ready.send(Ok(())).is_err() {
        return; // the caller gave up waiting
    }
    guard.serve(cmds).await;
    tracing::info!("kernel bridge guard stopped");
}

fn io_err(op: &'static str) -> impl FnOnce(std::io::Error) -> KniError {
    move |source| KniError::Io { op, source }
}

impl Guard {
    fn connect(opts: BridgeOptions, specs: &[TwinSpec]) -> Result<Guard, KniError> {
        let (mut conn, handle, _) = new_connection().map_err(io_err("open netlink socket"))?;
        let own = conn
            .socket_mut()
            .socket_mut()
            .bind_auto()
            .map_err(io_err("bind netlink socket"))?;
        tokio::spawn(conn);
        let events = subscribe()?;
        let backoff = BackoffConfig {
            initial: opts.backoff_initial,
            max: opts.backoff_max,
            quiet: opts.fight_window,
        };
        Ok(Guard {
            nl: Netlink::new(handle, opts.netlink_timeout()),
            own_port: own.port_number(),
            events,
            twins: specs.iter().map(|s| Twin::new(s, backoff)).collect(),
            next_tick: Instant::now() + opts.reconcile_every,
            opts,
        })
    }

    /// Wait (bounded) for every twin to exist, then apply the fixed sequence to each.
    async fn bring_up(&mut self) -> Result<(), KniError> {
        let deadline = Instant::now() + self.opts.device_wait;
        for t in &mut self.twins {
            let link =
                wait_for_device(&self.nl, &t.ifname, deadline, self.opts.device_wait).await?;
            t.ifindex = Some(link.index);
            fixed_sequence(&self.nl, &t.ifname, link.index, &t.desired).await?;
            t.fresh = false;
            tracing::info!(
                ifname = %t.ifname, ifindex = link.index, port = %t.port,
                addrs = t.desired.addrs.len(), routes = t.desired.routes.len(),
                "kernel twin configured (link down, flush, addresses, link up, routes)"
            );
        }
        Ok(())
    }

    async fn serve(&mut self, mut cmds: UnboundedReceiver<Command>) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => return, // the handle was stopped or dropped
                },
                msg = self.events.next() => match msg {
                    Some((msg, _)) => {
                        if let Some((event, port)) = netlink::decode(&msg) {
                            self.on_event(event, port, Instant::now());
                        }
                    }
                    None => self.resubscribe().await,
                },
                () = tokio::time::sleep_until(wake.into()) => self.run_due(Instant::now()).await,
            }
        }
    }

    /// The earliest of: a held-back repair, a settled check, the periodic reconcile.
    fn next_wake(&self) -> Instant {
        let settle = self.opts.settle;
        self.twins
            .iter()
            .filter_map(|t| t.repair_at.or(t.dirty_since.map(|s| s + settle)))
            .fold(self.next_tick, Instant::min)
    }

    fn on_event(&mut self, event: Event, port: u32, now: Instant) {
        if port == self.own_port {
            return; // the echo of our own change
        }
        if let Event::Link {
            index,
            name: Some(name),
            deleted,
            ..
        } = &event
        {
            self.on_link_identity(*index, name, *deleted, now);
        }
        let index = event.index();
        for t in self.twins.iter_mut().filter(|t| t.ifindex == Some(index)) {
            let what = format!("{} by {}", event.describe(), netlink::who(port));
            tracing::debug!(ifname = %t.ifname, "notification: {what}");
            t.note(what, port, now);
        }
    }

    /// A twin's device was deleted or (re)created (a restart of the DPDK side).
    fn on_link_identity(&mut self, index: u32, name: &str, deleted: bool, now: Instant) {
        for t in self.twins.iter_mut().filter(|t| t.ifname == name) {
            if deleted && t.ifindex == Some(index) {
                tracing::warn!(ifname = %t.ifname, "device removed; waiting for it to come back");
                t.ifindex = None;
                t.repair_at = None;
                t.settled();
            } else if !deleted && t.ifindex != Some(index) {
                tracing::info!(ifname = %t.ifname, ifindex = index, "device appeared; configuring it");
                t.ifindex = Some(index);
                t.fresh = true;
                t.repair_at = Some(now);
            }
        }
    }

    async fn resubscribe(&mut self) {
        tracing::warn!("rtnetlink notification stream ended; subscribing again");
        loop {
            match subscribe() {
                Ok(events) => {
                    self.events = events;
                    break;
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Whatever happened meanwhile was not seen: check everything.
        let now = Instant::now();
        for t in &mut self.twins {
            t.note("notifications lost (resubscribed)".into(), u32::MAX, now);
        }
    }

    async fn run_due(&mut self, now: Instant) {
        let periodic = now >= self.next_tick;
        if periodic {
            self.next_tick = now + self.opts.reconcile_every;
        }
        for i in 0..self.twins.len() {
            let t = &self.twins[i];
            if t.repair_at.is_some_and(|at| at <= now) {
                self.repair(i).await;
            } else if t.repair_at.is_none()
                && (periodic || t.dirty_since.is_some_and(|s| s + self.opts.settle <= now))
            {
                self.check(i, now).await;
            }
        }
    }

    /// Read the twin back and decide: nothing to do, repair now, or repair after a backoff.
    async fn check(&mut self, i: usize, now: Instant) {
        let Some((link, diff)) = self.observe(i).await else {
            return;
        };
        let exclusive = self.opts.exclusive;
        let t = &mut self.twins[i];
        if t.fresh {
            return self.repair_with(i, link, diff).await;
        }
        report_foreign(t, &diff, exclusive);
        if diff.is_intact() && (!exclusive || diff.foreign_addrs.is_empty()) {
            t.failing = false;
            t.settled();
            return;
        }
        if t.failing {
            t.repair_at = Some(t.backoff.on_failure(now));
            return;
        }
        let seen = t.dirty_since.unwrap_or(now);
        let verdict = t.backoff.on_damage(seen, t.last_restore);
        if verdict.fight_started {
            t.fights += 1;
            tracing::warn!(
                ifname = %t.ifname, fights = t.fights,
                "something keeps undoing the twin's configuration ({}); re-assertion backs off, next in {:?}",
                diff.describe(exclusive), t.backoff.delay()
            );
        } else if verdict.fight_ended {
            tracing::info!(ifname = %t.ifname, "no more interference after the last restore: backoff reset");
        }
        if verdict.repair_at <= now {
            self.repair_with(i, link, diff).await;
        } else {
            tracing::debug!(ifname = %t.ifname, delay = ?t.backoff.delay(), "repair held back");
            t.repair_at = Some(verdict.repair_at);
        }
    }

    /// The twin's link and its diff, or `None` (with the twin updated) when there is no device.
    async fn observe(&mut self, i: usize) -> Option<(Link, Diff)> {
        let t = &mut self.twins[i];
        let link = match self.nl.link_by_name(&t.ifname).await {
            Ok(Some(link)) => link,
            Ok(None) => {
                if t.ifindex.take().is_some() {
                    tracing::warn!(ifname = %t.ifname, "device is gone; waiting for it to come back");
                }
                t.settled();
                return None;
            }
            Err(e) => {
                record_error(t, e);
                return None;
            }
        };
        if t.ifindex != Some(link.index) {
            t.ifindex = Some(link.index);
            t.fresh = true;
        }
        match self.nl.actual(&t.ifname, &link).await {
            Ok(actual) => Some((link, Diff::compute(&t.desired, &actual))),
            Err(e) => {
                record_error(t, e);
                None
            }
        }
    }

    /// A repair whose backoff delay has passed: read the twin again, then repair.
    async fn repair(&mut self, i: usize) {
        self.twins[i].repair_at = None;
        if let Some((link, diff)) = self.observe(i).await {
            self.repair_with(i, link, diff).await;
        }
    }

    /// Re-assert: the full fixed sequence after a link went down, a flush or a new device;
    /// otherwise only what is missing (and, when exclusive, remove what is foreign).
    async fn repair_with(&mut self, i: usize, link: Link, diff: Diff) {
        let exclusive = self.opts.exclusive;
        let t = &mut self.twins[i];
        t.repair_at = None;
        let foreign_to_remove = exclusive && !diff.foreign_addrs.is_empty();
        if !t.fresh && diff.is_intact() && !foreign_to_remove {
            t.settled();
            return; // someone else put it back already
        }
        let full = t.fresh || diff.link_down || diff.looks_flushed(&t.desired);
        let result = if full {
            fixed_sequence(&self.nl, &t.ifname, link.index, &t.desired).await
        } else {
            targeted(
                &self.nl, &t.ifname, link.index, &t.desired, &diff, exclusive,
            )
            .await
        };
        let what = if t.fresh {
            "device (re)appeared".to_owned()
        } else {
            diff.describe(exclusive)
        };
        let seen = t.seen_summary();
        t.fresh = false;
        t.settled();
        t.restores += 1;
        t.last_restore = Some(Instant::now());
        let how = if full { "full sequence" } else { "targeted" };
        match result {
            Ok(()) => {
                t.failing = false;
                tracing::info!(ifname = %t.ifname, restores = t.restores, "restored ({how}): {what} ({seen})");
            }
            Err(e) => {
                // Say it once per distinct error; retries back off (see `check`).
                let msg = e.to_string();
                if t.last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(ifname = %t.ifname, "restore ({how}) failed: {msg} (changed: {what}; {seen})");
                } else {
                    tracing::debug!(ifname = %t.ifname, "restore ({how}) failed again: {msg}");
                }
                t.failing = true;
                t.last_error = Some(msg);
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::AddrAdd(port, a, reply) => {
                let _ = reply.send(self.addr_add(&port, a).await);
            }
            Command::AddrDel(port, a, reply) => {
                let _ = reply.send(self.addr_del(&port, a).await);
            }
            Command::RouteAdd(port, r, reply) => {
                let _ = reply.send(self.route_add(&port, r).await);
            }
            Command::RouteDel(port, r, reply) => {
                let _ = reply.send(self.route_del(&port, r).await);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status().await);
            }
        }
    }

    fn twin_index(&self, port: &str) -> Result<usize, KniError> {
        self.twins
            .iter()
            .position(|t| t.port == port)
            .ok_or_else(|| KniError::UnknownPort {
                port: port.to_owned(),
            })
    }

    /// Desired first, then the kernel; a kernel refusal rolls the desired state back so that
    /// the guard does not keep retrying something the kernel will not take.
    async fn addr_add(&mut self, port: &str, a: KniAddr) -> Result<(), KniError> {
        let i = self.twin_index(port)?;
        let t = &mut self.twins[i];
        let new = t.desired.addrs.insert(a);
        let Some(index) = t.ifindex else {
            return Ok(());
        };
        let res = self.nl.add_addr(&t.ifname, index, a).await;
        if res.is_err() && new {
            t.desired.addrs.remove(&a);
        }
        if res.is_ok() {
            tracing::info!(ifname = %t.ifname, "address {a} added");
        }
        res
    }

    async fn addr_del(&mut self, port: &str, a: KniAddr) -> Result<(), KniError> {
        let i = self.twin_index(port)?;
        let t = &mut self.twins[i];
        if !t.desired.addrs.remove(&a) {
            return Err(KniError::invalid(
                &t.ifname,
                format!("del {a}"),
                "not a configured address",
            ));
        }
        let Some(index) = t.ifindex else {
            return Ok(());
        };
        let res = self.nl.del_addr(&t.ifname, index, a).await;
        if res.is_err() {
            t.desired.addrs.insert(a);
        } else {
            t.reported_foreign.remove(&a);
            tracing::info!(ifname = %t.ifname, "address {a} removed");
        }
        res
    }

    async fn route_add(&mut self, port: &str, r: KniRoute) -> Result<(), KniError> {
        let i = self.twin_index(port)?;
        let t = &mut self.twins[i];
        let new = t.desired.routes.insert(r);
        let Some(index) = t.ifindex else {
            return Ok(());
        };
        let res = self.nl.add_route(&t.ifname, index, r).await;
        if res.is_err() && new {
            t.desired.routes.remove(&r);
        }
        if res.is_ok() {
            tracing::info!(ifname = %t.ifname, "route {r} added");
        }
        res
    }

    async fn route_del(&mut self, port: &str, r: KniRoute) -> Result<(), KniError> {
        let i = self.twin_index(port)?;
        let t = &mut self.twins[i];
        if !t.desired.routes.remove(&r) {
            return Err(KniError::invalid(
                &t.ifname,
                format!("del route {r}"),
                "not a configured route",
            ));
        }
        let Some(index) = t.ifindex else {
            return Ok(());
        };
        let res = self.nl.del_route(&t.ifname, index, r).await;
        if res.is_err() {
            t.desired.routes.insert(r);
        } else {
            tracing::info!(ifname = %t.ifname, "route {r} removed");
        }
        res
    }

    async fn status(&mut self) -> Vec<TwinStatus> {
        let mut out = Vec::with_capacity(self.twins.len());
        for t in &self.twins {
            let link = self.nl.link_by_name(&t.ifname).await.ok().flatten();
            let actual = match &link {
                Some(l) => self.nl.actual(&t.ifname, l).await.unwrap_or_default(),
                None => Default::default(),
            };
            let diff = Diff::compute(&t.desired, &actual);
            out.push(TwinStatus {
                port: t.port.clone(),
                ifname: t.ifname.clone(),
                ifindex: link.as_ref().map(|l| l.index),
                link_up: actual.link_up,
                desired_addrs: t.desired.addrs.iter().copied().collect(),
                actual_addrs: actual.addrs,
                desired_routes: t.desired.routes.iter().copied().collect(),
                actual_routes: actual.routes,
                foreign_addrs: diff.foreign_addrs,
                restores: t.restores,
                last_restore: t.last_restore.map(|at| at.elapsed()),
                fights: t.fights,
                backoff: t.backoff.delay(),
                last_error: t.last_error.clone(),
            });
        }
        out
    }
}

fn subscribe() -> Result<Notifications, KniError> {
    let (mut conn, _, events) =
        new_multicast_connection(&GROUPS).map_err(io_err("subscribe to rtnetlink groups"))?;
    if let Err(e) = conn.socket_mut().socket_mut().set_rx_buf_sz(MONITOR_RCVBUF) {
        tracing::debug!("cannot enlarge the notification buffer: {e}");
    }
    tokio::spawn(conn);
    Ok(events)
}

async fn wait_for_device(
    nl: &Netlink,
    ifname: &str,
    deadline: Instant,
    waited: Duration,
) -> Result<Link, KniError> {
    loop {
        if let Some(link) = nl.link_by_name(ifname).await? {
            return Ok(link);
        }
        if Instant::now() >= deadline {
            return Err(KniError::NoDevice {
                ifname: ifname.to_owned(),
                waited,
            });
        }
        tokio::time::sleep(DEVICE_POLL).await;
    }
}

/// The fixed sequence: link down, flush the addresses, add the addresses, link up, add the
/// routes. Routes come after link up because the kernel refuses a route through a device that
/// is down (ENETDOWN, "Device for nexthop is not up") and drops IPv4 routes when a device goes
/// down. Every step runs even if an address or route fails; the first failure is returned.
async fn fixed_sequence(
    nl: &Netlink,
    ifname: &str,
    index: u32,
    desired: &Desired,
) -> Result<(), KniError> {
    nl.set_link(ifname, index, false).await?;
    nl.flush_addrs(ifname, index).await?;
    let mut first_err = None;
    for &a in &desired.addrs {
        if let Err(e) = nl.add_addr(ifname, index, a).await {
            keep_first(&mut first_err, e);
        }
    }
    nl.set_link(ifname, index, true).await?;
    for &r in &desired.routes {
        if let Err(e) = nl.add_route(ifname, index, r).await {
            keep_first(&mut first_err, e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Put back only what is missing (addresses before the routes that may need them).
async fn targeted(
    nl: &Netlink,
    ifname: &str,
    index: u32,
    desired: &Desired,
    diff: &Diff,
    exclusive: bool,
) -> Result<(), KniError> {
    let mut first_err = None;
    let mut keep = |r: Result<(), KniError>| {
        if let Err(e) = r {
            keep_first(&mut first_err, e);
        }
    };
    for &a in &diff.missing_addrs {
        keep(nl.add_addr(ifname, index, a).await);
    }
    if exclusive {
        for &a in &diff.foreign_addrs {
            keep(nl.del_addr(ifname, index, a).await);
        }
    }
    // An address that came back brings back none of the gateway routes that went with it:
    // re-add every desired route that was missing at the check.
    for &r in desired
        .routes
        .iter()
        .filter(|r| diff.missing_routes.contains(r))
    {
        keep(nl.add_route(ifname, index, r).await);
    }
    first_err.map_or(Ok(()), Err)
}

/// Say once per address that someone else added it (non-exclusive bridges leave it alone).
fn report_foreign(t: &mut Twin, diff: &Diff, exclusive: bool) {
    t.reported_foreign
        .retain(|a| diff.foreign_addrs.contains(a));
    for &a in &diff.foreign_addrs {
        if t.reported_foreign.insert(a) {
            if exclusive {
                tracing::info!(ifname = %t.ifname, "foreign address {a}: removing it (exclusive)");
            } else {
                tracing::info!(ifname = %t.ifname, "foreign address {a}: left alone (not exclusive)");
            }
        }
    }
}

/// The first error is returned (and logged by the caller); later ones are logged here.
fn keep_first(first: &mut Option<KniError>, e: KniError) {
    if first.is_some() {
        tracing::warn!("{e}");
    } else {
        *first = Some(e);
    }
}

/// The twin could not be read back: say so and leave the retry to the periodic reconcile (a
/// still-dirty twin would be checked again at once, over and over).
fn record_error(t: &mut Twin, e: KniError) {
    tracing::warn!("{e}");
    t.last_error = Some(e.to_string());
    t.settled();
}
