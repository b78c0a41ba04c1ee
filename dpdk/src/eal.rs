//! EAL initialisation and tear-down.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use super::error::DpdkError;
use super::mempool::Mempool;

/// Program name put in front of the EAL arguments (`argv[0]`).
const PROGRAM: &str = "dpvs";

/// 0: never initialised; 1: initialisation claimed (running, live or failed: never again).
static INIT_CLAIMED: AtomicU8 = AtomicU8::new(0);
/// True between a successful `rte_eal_init` and the drop of the [`Eal`].
static LIVE: AtomicBool = AtomicBool::new(false);
/// Ports, queues and rings that still reference DPDK objects; `rte_eal_cleanup` only runs when
/// this is zero (and no mbuf is out), since cleanup unmaps the memory they point into.
static HANDLES: AtomicUsize = AtomicUsize::new(0);

/// Whether the EAL is initialised and not yet dropped. One relaxed load: cheap enough for
/// [`Mempool::alloc`] to refuse allocation from a pool whose memory may be gone.
#[inline]
pub(crate) fn is_live() -> bool {
    LIVE.load(Ordering::Relaxed)
}

/// Counts one live DPDK object (port, ring) for as long as it exists; see [`HANDLES`].
#[derive(Debug)]
pub(crate) struct HandleGuard(());

impl HandleGuard {
    pub(crate) fn new() -> Self {
        HANDLES.fetch_add(1, Ordering::SeqCst);
        HandleGuard(())
    }
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        HANDLES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The initialised EAL of this process.
///
/// Created once by [`Eal::init`] on the thread that becomes the main lcore; it is neither `Send`
/// nor `Sync`, so the set-up calls that take `&Eal` (pools, ports, rings, [`super::launch`]) run
/// on the main lcore, as DPDK requires.
///
/// Dropping it (or [`Eal::shutdown`]) waits for every worker lcore to return, then runs
/// `rte_eal_cleanup` — but only when no port, queue, ring or mbuf is still alive, because
/// cleanup unmaps DPDK memory; when something is, cleanup is skipped (drop logs a warning,
/// `shutdown` returns the reason): the process is about to exit anyway. Tell the workers to
/// stop before: the wait has no time limit.
pub struct Eal {
    /// The argument strings: EAL keeps pointers into argv and permutes the pointer array.
    _args: Vec<CString>,
    _argv: Vec<*mut c_char>,
    main_lcore: u32,
    /// Pools created through this EAL, checked for outstanding mbufs before cleanup.
    pools: RefCell<Vec<&'static Mempool>>,
    /// Whether [`Eal::shutdown`] (or drop) already ran.
    torn_down: bool,
    /// Not `Send`/`Sync`: tied to the main lcore.
    _main_thread: PhantomData<*mut ()>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal")
            .field("main_lcore", &self.main_lcore)
            .finish_non_exhaustive()
    }
}

impl Eal {
    /// Initialises the EAL with `args` (EAL options only, without a program name, e.g.
    /// `["--no-huge", "-m", "512", "--no-pci", "-l", "0-1"]`).
    ///
    /// Only the first call in a process may succeed: a second call (even after a failed first
    /// one, which DPDK does not support retrying) returns [`DpdkError::AlreadyInitialized`].
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let mut cargs = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(PROGRAM).chain(args.iter().map(String::as_str)) {
            let c = CString::new(a).map_err(|_| {
                DpdkError::invalid(
                    "rte_eal_init",
                    format!("argument {a:?} contains a NUL byte"),
                )
            })?;
            cargs.push(c);
        }
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(argv.len())
            .map_err(|_| DpdkError::invalid("rte_eal_init", "too many arguments"))?;
        if INIT_CLAIMED
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(DpdkError::AlreadyInitialized);
        }
        // SAFETY: argv holds argc pointers to NUL-terminated strings owned by `cargs`, which the
        // returned Eal keeps alive; EAL may permute the pointer array, which we own and never
        // read again. The compare_exchange above guarantees this runs once per process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            // Some failures (a runtime directory another process has locked) leave rte_errno
            // at 0: "Success" would mislead.
            return Err(match super::error::rte_errno() {
                0 => DpdkError::invalid(
                    "rte_eal_init",
                    "failed without an errno (EAL's own log lines say why)",
                ),
                errno => DpdkError::failed("rte_eal_init", errno),
            });
        }
        // SAFETY: EAL is initialised; plain getter.
        let main_lcore = unsafe { dpdk_sys::rte_get_main_lcore() };
        LIVE.store(true, Ordering::SeqCst);
        Ok(Eal {
            _args: cargs,
            _argv: argv,
            main_lcore,
            pools: RefCell::new(Vec::new()),
            torn_down: false,
            _main_thread: PhantomData,
        })
    }

    /// The lcore id of the main (control) lcore, the thread that called [`Eal::init`].
    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// The enabled worker lcores (every enabled lcore but the main one), in increasing order:
    /// the lcores [`super::launch`] accepts.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // Start below 0 as RTE_LCORE_FOREACH_WORKER does: the function pre-increments.
        let mut i = u32::MAX;
        loop {
            // SAFETY: EAL is initialised; rte_get_next_lcore only reads the lcore table.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }

    /// Whether `lcore` is an enabled worker lcore of this EAL.
    pub fn is_worker_lcore(&self, lcore: u32) -> bool {
        // SAFETY: EAL is initialised; rte_lcore_is_enabled bounds-checks its argument.
        lcore != self.main_lcore && unsafe { dpdk_sys::rte_lcore_is_enabled(lcore) } != 0
    }

    /// TSC ticks per second, to turn [`super::rdtsc`] differences into time.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised (it calibrated the TSC); plain getter.
        unsafe { dpdk_sys::rte_get_tsc_hz() }
    }

    /// Records a pool so that drop can tell whether mbufs are still out.
    pub(crate) fn register_pool(&self, pool: &'static Mempool) {
        self.pools.borrow_mut().push(pool);
    }
}

impl Eal {
    /// Tears the EAL down now and says how it went: waits for every worker lcore, then runs
    /// `rte_eal_cleanup` — or refuses to (an error naming what is still alive) when ports,
    /// queues, rings or mbufs remain, since cleanup unmaps the memory they point into.
    pub fn shutdown(mut self) -> Result<(), DpdkError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), DpdkError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        // SAFETY: called on the main lcore (Eal is !Send); waits for every worker to return.
        unsafe { dpdk_sys::rte_eal_mp_wait_lcore() };
        LIVE.store(false, Ordering::SeqCst);
        let handles = HANDLES.load(Ordering::SeqCst);
        let mbufs: u64 = self
            .pools
            .borrow()
            .iter()
            .map(|p| u64::from(p.in_use_raw()))
            .sum();
        if handles != 0 || mbufs != 0 {
            return Err(DpdkError::invalid(
                "rte_eal_cleanup",
                format!("skipped: {handles} ports/queues/rings and {mbufs} mbufs are still alive"),
            ));
        }
        // SAFETY: workers are done, and no handle or mbuf can reach DPDK memory any more
        // (pools refuse to allocate once LIVE is false).
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        if ret < 0 {
            return Err(DpdkError::failed("rte_eal_cleanup", -ret));
        }
        Ok(())
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(error = %e, "EAL shutdown");
        }
    }
}
