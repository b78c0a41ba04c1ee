//! The safe wrapper over DPDK.
