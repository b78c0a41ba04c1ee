//! The control plane: authoritative state, snapshots and the control socket.
pub mod handler;
pub mod publish;
pub mod server;
pub mod state;
