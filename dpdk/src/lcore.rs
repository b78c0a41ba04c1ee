//! Worker lcores: launching closures on them, lcore ids and the TSC.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use super::eal::Eal;
use super::error::DpdkError;

/// Where a launched closure's panic message lands, read by [`Launched::wait`].
type PanicSlot = Arc<Mutex<Option<String>>>;

/// What the trampoline receives through `rte_eal_remote_launch`'s `void *`.
struct Job {
    f: Box<dyn FnOnce() -> i32 + Send>,
    panic: PanicSlot,
}

/// Return value of a worker whose closure panicked (the message is in the panic slot).
const PANICKED: c_int = -1;

/// The `lcore_function_t` every launch runs: takes the job back, runs it, and turns a panic into
/// a recorded message, since unwinding out of an `extern "C"` function would abort the process.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this one call.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    let Job { f, panic } = *job;
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(ret) => ret,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            *panic.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
            // Dropping the payload could itself panic; keep it from unwinding into C.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            PANICKED
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// A closure running on a worker lcore; [`Launched::wait`] joins it. Dropping it without
/// waiting leaves the closure running (the EAL's drop waits for every worker).
#[must_use = "wait() reports the worker's result, including a panic"]
pub struct Launched {
    lcore: u32,
    panic: PanicSlot,
    /// Not Send: rte_eal_wait_lcore must be called from the main lcore.
    _main_thread: PhantomData<*mut ()>,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Launched(lcore {})", self.lcore)
    }
}

impl Launched {
    /// The lcore the closure runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Blocks until the closure returns; `Ok` with its return value, or `Err` with the panic
    /// message when it panicked.
    pub fn wait(self) -> Result<i32, String> {
        // SAFETY: called on the main lcore (Launched is !Send and only created there) for an
        // enabled worker lcore.
        let ret = unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        match self.panic.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(msg) => Err(format!("lcore {} panicked: {msg}", self.lcore)),
            None => Ok(ret),
        }
    }
}

/// Runs `f` on worker lcore `lcore` (one of [`Eal::worker_lcores`], currently idle) through
/// `rte_eal_remote_launch`, so that it gets its EAL lcore id and the per-lcore mempool cache.
/// A panic inside `f` does not abort the process: it is reported by [`Launched::wait`].
pub fn launch(
    eal: &Eal,
    lcore: u32,
    f: impl FnOnce() -> i32 + Send + 'static,
) -> Result<Launched, DpdkError> {
    let op = || format!("rte_eal_remote_launch(lcore {lcore})");
    if !eal.is_worker_lcore(lcore) {
        return Err(DpdkError::invalid(op(), "not an enabled worker lcore"));
    }
    let panic: PanicSlot = Arc::new(Mutex::new(None));
    let job = Box::into_raw(Box::new(Job {
        f: Box::new(f),
        panic: Arc::clone(&panic),
    }));
    // SAFETY: on the main lcore (`eal` is !Send) for an enabled worker; the trampoline matches
    // lcore_function_t and takes ownership of `job` if and only if the launch succeeds.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), job.cast(), lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the trampoline never received `job`: reclaim it.
        drop(unsafe { Box::from_raw(job) });
        return Err(DpdkError::failed(op(), -ret));
    }
    Ok(Launched {
        lcore,
        panic,
        _main_thread: PhantomData,
    })
}

/// The EAL lcore id of the calling thread; `None` on a thread that is not an EAL lcore (such a
/// thread bypasses the per-lcore mempool caches).
#[inline]
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local; valid on any thread.
    let id = unsafe { dpdk_sys::rte_lcore_id() };
    (id != dpdk_sys::LCORE_ID_ANY).then_some(id)
}

/// The time-stamp counter, for cheap per-burst timing (see [`Eal::tsc_hz`]).
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86_64 CPU and has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: reads the CPU cycle counter; no preconditions.
        unsafe { dpdk_sys::rte_rdtsc() }
    }
}
