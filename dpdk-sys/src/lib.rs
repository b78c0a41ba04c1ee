//! Raw DPDK bindings (generated at build time).
