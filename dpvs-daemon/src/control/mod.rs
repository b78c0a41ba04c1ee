//! The control plane: the authoritative state (`state`, refusing bad changes with an `error`),
//! the snapshots compiled from it (`compile`) and published to the workers (`publish`), request
//! handling (`handler`), the control socket (`server`) and the kernel bridge's twins (`twins`).
mod compile;
pub mod error;
pub mod handler;
pub mod publish;
pub mod rates;
pub mod server;
mod slots;
pub mod state;
pub mod twins;
