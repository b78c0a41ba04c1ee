//! The synchronous handle: owns the bridge thread (a current-thread tokio runtime on a std
//! thread of its own, so the daemon's main thread never becomes async) and the NetworkManager
//! guard files.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::desired::{KniAddr, KniRoute, TwinSpec};
use crate::guard::{self, Command};
use crate::{KniError, NmGuard, TwinStatus};

/// How the bridge behaves. `Default` gives the production values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeOptions {
    /// Remove addresses that someone else adds to a twin (otherwise they are logged and left).
    pub exclusive: bool,
    /// Full reconcile period: the backstop for lost notifications.
    pub reconcile_every: Duration,
    /// How long a notification burst may settle before the twin is read back.
    pub settle: Duration,
    /// How long `start` waits for each twin to exist.
    pub device_wait: Duration,
    /// Bound on every synchronous call; each netlink request gets half of it.
    pub op_timeout: Duration,
    /// First re-assertion delay once a fight is detected; doubles per strike.
    pub backoff_initial: Duration,
    /// Longest re-assertion delay during a fight.
    pub backoff_max: Duration,
    /// Damage seen within this time of our last restore counts as a fight.
    pub fight_window: Duration,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            exclusive: false,
            reconcile_every: Duration::from_secs(3),
            settle: Duration::from_millis(20),
            device_wait: Duration::from_secs(10),
            op_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            fight_window: Duration::from_secs(1),
        }
    }
}

impl BridgeOptions {
    pub(crate) fn netlink_timeout(&self) -> Duration {
        self.op_timeout / 2
    }
}

/// Handle to the kernel bridge's background thread.
pub struct KernelBridge {
    cmds: Option<UnboundedSender<Command>>,
    thread: Option<JoinHandle<()>>,
    /// Disconnects when the thread ends (its sender is dropped on the way out).
    exited: Receiver<()>,
    nm: Option<NmGuard>,
    timeout: Duration,
}

impl KernelBridge {
    /// Wait (up to `device_wait`) for every twin to exist, apply the fixed sequence to each,
    /// then keep guarding them. `nm` (from [`NmGuard::install`], called before the DPDK side
    /// created the twins) is removed again by `stop`. On error nothing keeps running.
    pub fn start(
        opts: BridgeOptions,
        twins: Vec<TwinSpec>,
        nm: Option<NmGuard>,
    ) -> Result<KernelBridge, KniError> {
        validate(&twins)?;
        let timeout = opts.op_timeout;
        let start_wait = opts.device_wait + opts.op_timeout * (1 + twins.len() as u32);
        let (cmd_tx, cmd_rx) = unbounded_channel();
        let (ready_tx, ready_rx) = sync_channel(1);
        let (exit_tx, exited) = sync_channel::<()>(0);
        let thread = std::thread::Builder::new()
            .name("kni-bridge".into())
            .spawn(move || {
                let _exit = exit_tx;
                bridge_thread(opts, twins, cmd_rx, ready_tx);
            })
            .map_err(|source| KniError::Io {
                op: "spawn the bridge thread",
                source,
            })?;
        let mut bridge = KernelBridge {
            cmds: Some(cmd_tx),
            thread: Some(thread),
            exited,
            nm,
            timeout,
        };
        match ready_rx.recv_timeout(start_wait) {
            Ok(Ok(())) => Ok(bridge),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => {
                bridge.shutdown();
                Err(KniError::Timeout {
                    op: "start".into(),
                    waited: start_wait,
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(KniError::Stopped { op: "start".into() }),
        }
    }

    /// Add a kernel-side address to `port`'s twin (desired state first, then the kernel).
    pub fn addr_add(&self, port: &str, addr: KniAddr) -> Result<(), KniError> {
        self.call("addr add", |r| Command::AddrAdd(port.to_owned(), addr, r))?
    }

    pub fn addr_del(&self, port: &str, addr: KniAddr) -> Result<(), KniError> {
        self.call("addr del", |r| Command::AddrDel(port.to_owned(), addr, r))?
    }

    pub fn route_add(&self, port: &str, route: KniRoute) -> Result<(), KniError> {
        self.call("route add", |r| {
            Command::RouteAdd(port.to_owned(), route, r)
        })?
    }

    pub fn route_del(&self, port: &str, route: KniRoute) -> Result<(), KniError> {
        self.call("route del", |r| {
            Command::RouteDel(port.to_owned(), route, r)
        })?
    }

    /// Per twin: desired against actual (read from the kernel now) and the guard's counters.
    pub fn status(&self) -> Result<Vec<TwinStatus>, KniError> {
        self.call("status", Command::Status)
    }

    /// Stop the guard and remove the NetworkManager/udev files it created. The twins stay: the
    /// DPDK side owns them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn call<T>(
        &self,
        op: &str,
        make: impl FnOnce(SyncSender<T>) -> Command,
    ) -> Result<T, KniError> {
        let stopped = || KniError::Stopped { op: op.to_owned() };
        let cmds = self.cmds.as_ref().ok_or_else(stopped)?;
        let (tx, rx) = sync_channel(1);
        cmds.send(make(tx)).map_err(|_| stopped())?;
        rx.recv_timeout(self.timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => KniError::Timeout {
                op: op.to_owned(),
                waited: self.timeout,
            },
            RecvTimeoutError::Disconnected => stopped(),
        })
    }

    fn shutdown(&mut self) {
        // Closing the command channel ends the loop at its next wake-up.
        drop(self.cmds.take());
        if let Some(thread) = self.thread.take() {
            // Bounded: a thread stuck in the kernel must not hang the daemon's shutdown.
            if let Err(RecvTimeoutError::Disconnected) = self.exited.recv_timeout(self.timeout) {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    "kernel bridge thread did not stop within {:?}; left behind",
                    self.timeout
                );
            }
        }
        if let Some(nm) = self.nm.take()
            && let Err(e) = nm.remove()
        {
            tracing::warn!("{e}");
        }
    }
}

impl Drop for KernelBridge {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn bridge_thread(
    opts: BridgeOptions,
    twins: Vec<TwinSpec>,
    cmds: tokio::sync::mpsc::UnboundedReceiver<Command>,
    ready: SyncSender<Result<(), KniError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => {
            let _ = ready.send(Err(KniError::Io {
                op: "build the tokio runtime",
                source,
            }));
            return;
        }
    };
    rt.block_on(guard::run(opts, twins, cmds, ready));
}

fn validate(twins: &[TwinSpec]) -> Result<(), KniError> {
    for (i, t) in twins.iter().enumerate() {
        t.validate()
            .map_err(|e| KniError::invalid(&t.ifname, "configure", e))?;
        if twins[..i]
            .iter()
            .any(|o| o.port == t.port || o.ifname == t.ifname)
        {
            return Err(KniError::invalid(
                &t.ifname,
                "configure",
                format!("port {} or its twin is listed twice", t.port),
            ));
        }
    }
    Ok(())
}

/// Removes a netdev called `ifname` left behind by an earlier run (a crashed daemon's twin,
/// or one made by hand), so that the DPDK side creates the port's twin afresh and never a
/// second one beside it; `true` when there was one. Runs before the twins are created, on a
/// short-lived runtime of its own, bounded by `timeout`.
pub fn remove_stale_twin(ifname: &str, timeout: std::time::Duration) -> Result<bool, KniError> {
    let io = |op: &'static str| move |source| KniError::Io { op, source };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("build the tokio runtime"))?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(io("open netlink socket"))?;
        let task = tokio::spawn(conn);
        let removed = crate::netlink::Netlink::new(handle, timeout)
            .del_link_by_name(ifname)
            .await;
        task.abort();
        removed
    })
}
