//! One error type for the crate. Every message is one line that names the device (or file) and
//! the operation, so the daemon can log it as is: `dpdk0.kni: add 10.0.0.5/24: File exists`.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong in the kernel bridge.
#[derive(Debug, thiserror::Error)]
pub enum KniError {
    /// A netlink request failed (the kernel's errno text, or a transport error).
    #[error("{ifname}: {op}: {reason}")]
    Netlink {
        ifname: String,
        op: String,
        reason: String,
    },
    /// The twin did not appear in time (the DPDK side creates it).
    #[error("{ifname}: not found after waiting {waited:?} for the device")]
    NoDevice { ifname: String, waited: Duration },
    /// No twin is configured for this port.
    #[error("{port}: no kernel twin configured for this port")]
    UnknownPort { port: String },
    /// A request that does not make sense (bad prefix length, mixed families, ...).
    #[error("{ifname}: {op}: {reason}")]
    Invalid {
        ifname: String,
        op: String,
        reason: String,
    },
    /// The background thread did not answer in time.
    #[error("kernel bridge: {op}: no answer within {waited:?}")]
    Timeout { op: String, waited: Duration },
    /// The background thread is gone (stopped, or it panicked).
    #[error("kernel bridge: {op}: the bridge thread is not running")]
    Stopped { op: String },
    /// Writing or removing a NetworkManager/udev file failed.
    #[error("{}: {op}: {source}", path.display())]
    File {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Could not start the bridge thread or its runtime.
    #[error("kernel bridge: {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl KniError {
    pub(crate) fn netlink(ifname: &str, op: impl Into<String>, reason: impl ToString) -> Self {
        KniError::Netlink {
            ifname: ifname.to_owned(),
            op: op.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid(ifname: &str, op: impl Into<String>, reason: impl Into<String>) -> Self {
        KniError::Invalid {
            ifname: ifname.to_owned(),
            op: op.into(),
            reason: reason.into(),
        }
    }
}
