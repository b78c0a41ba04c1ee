//! Publication of snapshots to the workers.
//!
//! The control plane swaps in a new `Arc` and keeps the old one on a retire list; it drops a
//! retired snapshot only once no worker holds it any more, so a snapshot's destructor (large
//! maps) never runs on a worker lcore.

use std::sync::Arc;

use arc_swap::{ArcSwap, Cache};

use dpvs_core::engine::neigh::NeighTable;
use dpvs_core::engine::snapshot::Snapshot;

/// One published value and its retire list.
pub struct Slot<T> {
    current: Arc<ArcSwap<T>>,
    retired: Vec<Arc<T>>,
}

impl<T> Slot<T> {
    pub fn new(initial: T) -> Self {
        Slot {
            current: Arc::new(ArcSwap::from_pointee(initial)),
            retired: Vec::new(),
        }
    }

    /// Makes `value` the current one; the previous one is retired.
    pub fn publish(&mut self, value: T) {
        let old = self.current.swap(Arc::new(value));
        self.retired.push(old);
        self.reclaim();
    }

    /// Drops retired values no reader holds any more. Readers refresh their cache every burst,
    /// so calling this periodically empties the list.
    pub fn reclaim(&mut self) {
        self.retired.retain(|a| Arc::strong_count(a) > 1);
    }

    /// How many retired values are still held by some reader.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }

    /// A reader for one worker.
    pub fn reader(&self) -> Reader<T> {
        Reader(Cache::new(Arc::clone(&self.current)))
    }

    /// The current value, for the control plane itself.
    pub fn load(&self) -> Arc<T> {
        self.current.load_full()
    }
}

/// A worker's handle on a published value: `load` is one atomic load when nothing changed.
pub struct Reader<T>(Cache<Arc<ArcSwap<T>>, Arc<T>>);

impl<T> Reader<T> {
    #[inline]
    pub fn load(&mut self) -> &Arc<T> {
        self.0.load()
    }
}

/// Everything the control plane publishes.
pub struct Publisher {
    pub snapshot: Slot<Snapshot>,
    pub neigh: Slot<NeighTable>,
}

/// What a worker reads.
pub struct Readers {
    pub snapshot: Reader<Snapshot>,
    pub neigh: Reader<NeighTable>,
}

impl Publisher {
    pub fn new(snapshot: Snapshot, neigh: NeighTable) -> Self {
        Publisher {
            snapshot: Slot::new(snapshot),
            neigh: Slot::new(neigh),
        }
    }

    pub fn readers(&self) -> Readers {
        Readers {
            snapshot: self.snapshot.reader(),
            neigh: self.neigh.reader(),
        }
    }

    pub fn reclaim(&mut self) {
        self.snapshot.reclaim();
        self.neigh.reclaim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_value_lives_until_the_reader_moves_on() {
        let mut slot = Slot::new(1u32);
        let mut r = slot.reader();
        assert_eq!(**r.load(), 1);
        slot.publish(2);
        // The reader's cache still holds 1.
        assert_eq!(slot.retired(), 1);
        assert_eq!(**r.load(), 2);
        slot.reclaim();
        assert_eq!(slot.retired(), 0);
    }
}
