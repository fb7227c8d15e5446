//! Memory that the networks of several clusters share: a server gives all its clusters one
//! [`MemoryPool`], so that together they cannot grow beyond what the machine can hold, while
//! each keeps its own budget ([`crate::ClusterOptions::memory_limit`]) as well.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A memory budget shared by the networks of several clusters. Each cluster that
/// [joins](crate::Cluster::join_pool) it counts its network against it until it is dropped or
/// joins another pool; growth that would take the pool beyond its limit is refused.
#[derive(Debug)]
pub struct MemoryPool {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryPool {
    /// A pool of `limit` bytes, none of them used.
    pub fn new(limit: usize) -> MemoryPool {
        MemoryPool {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held by the networks in the pool (more than the limit when networks that were
    /// already that large joined it).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if they fit under the limit.
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Takes `bytes` whether they fit or not.
    fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Gives back `bytes` taken before.
    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A network did not fit in what is left of the pool it was to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the network takes {needed} bytes, and its memory pool has {available} bytes left")]
pub struct PoolSpent {
    /// Bytes the network holds.
    pub needed: usize,
    /// Bytes left in the pool when it was asked.
    pub available: usize,
}

/// What one cluster holds of a pool; given back when dropped.
#[derive(Debug)]
pub(crate) struct PoolShare {
    pool: Arc<MemoryPool>,
    held: usize,
}

impl PoolShare {
    /// A share of `bytes` of `pool`, taken whether they fit or not.
    pub(crate) fn taken(pool: Arc<MemoryPool>, bytes: usize) -> PoolShare {
        pool.take(bytes);
        PoolShare { pool, held: bytes }
    }

    /// A share of `bytes` of `pool` if they fit.
    pub(crate) fn try_taken(pool: Arc<MemoryPool>, bytes: usize) -> Option<PoolShare> {
        // Built only when taken: a share gives back what it holds when dropped.
        pool.try_take(bytes)
            .then(|| PoolShare { pool, held: bytes })
    }

    /// Grows the share by `bytes` if they fit in the pool.
    pub(crate) fn try_grow(&mut self, bytes: usize) -> bool {
        let fits = self.pool.try_take(bytes);
        if fits {
            self.held += bytes;
        }
        fits
    }
}

impl Drop for PoolShare {
    fn drop(&mut self) {
        self.pool.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_count_until_dropped() {
        let pool = Arc::new(MemoryPool::new(100));
        let mut first = PoolShare::try_taken(pool.clone(), 60).expect("fits");
        assert!(PoolShare::try_taken(pool.clone(), 41).is_none());
        assert_eq!(pool.used(), 60);
        assert!(first.try_grow(40));
        assert!(!first.try_grow(1));
        let over = PoolShare::taken(pool.clone(), 30);
        assert_eq!(pool.used(), 130);
        drop(first);
        assert_eq!(pool.used(), 30);
        drop(over);
        assert_eq!(pool.used(), 0);
        assert!(PoolShare::try_taken(pool.clone(), 100).is_some());
        assert_eq!(pool.used(), 0, "a share that is dropped at once gives back");
    }

    #[test]
    fn a_full_pool_refuses_even_one_byte_and_never_overflows() {
        let pool = Arc::new(MemoryPool::new(usize::MAX));
        let _all = PoolShare::taken(pool.clone(), usize::MAX);
        assert!(PoolShare::try_taken(pool.clone(), 1).is_none());
    }
}
