//! The counter-slot allocator. Every service and real server counts its connections, packets
//! and bytes in a slot of the workers' statistics (`engine::stats::Stats`), fixed in number at
//! start-up so that workers never allocate.

use crate::control::error::ControlError;

/// The free slots. A freed slot is reused only after the connections that counted into it are
/// gone and it was zeroed (the deletion protocol of `control::handler` sees to both), so a new
/// real server never inherits an old one's figures.
#[derive(Debug)]
pub(super) struct SlotAlloc {
    free: Vec<u32>,
}

impl SlotAlloc {
    /// Slots `0..n`, handed out lowest first.
    pub(super) fn new(n: u32) -> Self {
        SlotAlloc {
            free: (0..n).rev().collect(),
        }
    }

    pub(super) fn take(&mut self) -> Result<u32, ControlError> {
        self.free.pop().ok_or(ControlError::SlotsExhausted)
    }

    pub(super) fn give_back(&mut self, s: u32) {
        self.free.push(s);
    }
}
