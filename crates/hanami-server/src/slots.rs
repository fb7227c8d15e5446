//! Counts of things open at once, with an upper bound: the websocket sessions of a cluster
//! or of an upload's temporary file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many things are open; shared by all that count them.
#[derive(Debug, Clone, Default)]
pub struct Slots(Arc<AtomicUsize>);

/// One open thing of [`Slots`], given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Slots {
    /// A slot, unless `most` are open already.
    pub fn claim(&self, most: usize) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < most).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(self.0.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn slots_are_bounded_and_come_back() {
        let slots = Slots::default();
        let first = slots.claim(2).unwrap();
        let second = slots.clone().claim(2).unwrap();
        assert!(slots.claim(2).is_none());
        drop(first);
        let third = slots.claim(2).unwrap();
        assert!(slots.claim(2).is_none());
        drop((second, third));
        assert!(slots.claim(1).is_some());
    }
}
