//! Packet views: bounds-checked, zero-copy header access and in-place rewrites.
pub mod frame;
pub use frame::{Frame, VecFrame};
