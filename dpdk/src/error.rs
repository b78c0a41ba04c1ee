//! The one error type of the DPDK layer.

use std::ffi::CStr;

/// Why a DPDK operation failed. The display is one line naming the failing call and, for
/// DPDK failures, the `rte_strerror` text and errno, so it can go straight into a log or an exit
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` may run once per process (even a failed attempt counts); this is the
    /// second attempt.
    #[error("EAL initialisation was already attempted in this process (rte_eal_init runs once)")]
    AlreadyInitialized,
    /// A DPDK call reported a failure.
    #[error("{op} failed: {text} (errno {errno})")]
    Failed {
        /// The call and its subject, e.g. `rte_eth_dev_configure(port 0)`.
        op: String,
        /// The positive errno DPDK reported.
        errno: i32,
        /// `rte_strerror(errno)`.
        text: String,
    },
    /// The request was refused before reaching DPDK (bad argument or wrong state).
    #[error("{op}: {reason}")]
    Invalid {
        /// The operation that was refused.
        op: String,
        /// Why.
        reason: String,
    },
}

impl DpdkError {
    /// The errno of a [`DpdkError::Failed`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            DpdkError::Failed { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// A failure of `op` with the positive `errno`.
    pub(crate) fn failed(op: impl Into<String>, errno: i32) -> Self {
        DpdkError::Failed {
            op: op.into(),
            errno,
            text: strerror(errno),
        }
    }

    /// A failure of `op` whose reason is in `rte_errno` (calls that return NULL or -1).
    pub(crate) fn from_rte_errno(op: impl Into<String>) -> Self {
        Self::failed(op, rte_errno())
    }

    /// A refusal of `op`.
    pub(crate) fn invalid(op: impl Into<String>, reason: impl Into<String>) -> Self {
        DpdkError::Invalid {
            op: op.into(),
            reason: reason.into(),
        }
    }
}

/// Maps the `0 / -errno` convention of most DPDK calls to a `Result`.
pub(crate) fn check(op: impl FnOnce() -> String, ret: i32) -> Result<i32, DpdkError> {
    if ret < 0 {
        Err(DpdkError::failed(op(), -ret))
    } else {
        Ok(ret)
    }
}

/// `rte_errno` of the calling thread. Only meaningful right after a call reported failure: DPDK
/// leaves stale values behind successful calls.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: the shim reads a thread-local integer; no preconditions.
    unsafe { dpdk_sys::dpvs_rte_errno() }
}

/// `rte_strerror`, copied out of DPDK's per-thread buffer at once.
fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a NUL-terminated string (static, or in
    // a per-lcore buffer that stays valid until the next call on this thread, i.e. beyond the
    // copy below).
    let text = unsafe { dpdk_sys::rte_strerror(errno) };
    if text.is_null() {
        return format!("errno {errno}");
    }
    // SAFETY: non-null and NUL-terminated per the above.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_call_and_text() {
        let e = DpdkError::Failed {
            op: "rte_eth_dev_configure(port 0)".into(),
            errno: 22,
            text: "Invalid argument".into(),
        };
        assert_eq!(
            e.to_string(),
            "rte_eth_dev_configure(port 0) failed: Invalid argument (errno 22)"
        );
        assert_eq!(e.errno(), Some(22));
        assert!(!DpdkError::AlreadyInitialized.to_string().contains('\n'));
    }
}
