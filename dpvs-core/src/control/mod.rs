//! The control plane: authoritative state, snapshots and the control socket.
