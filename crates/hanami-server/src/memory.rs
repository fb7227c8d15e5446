//! Memory: the budgets of the clusters' networks, and giving freed memory back to the system.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hanami_engine::{CheckpointError, Cluster, MemoryPool};

/// The memory budgets of the clusters' networks: each network's own (`cluster_memory_mib`)
/// and the one all of them share (`clusters_memory_mib`).
#[derive(Debug, Clone)]
pub struct NetworkMemory {
    /// Bytes each network may hold.
    pub per_cluster: usize,
    /// The budget the networks share.
    pub pool: Arc<MemoryPool>,
}

/// A network did not fit in what is left of the shared budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "the network {}, and the server's clusters have {} left of the {} MiB their networks may \
     hold together (clusters_memory_mib)",
    .needed.map_or_else(|| "takes more than that".to_owned(), |n| format!("takes {}", size(n))),
    size(*.left),
    *.limit >> 20
)]
pub struct SharedBudgetSpent {
    /// What the network takes; `None` for a restore that stopped once it took more than
    /// was left.
    needed: Option<usize>,
    left: usize,
    limit: usize,
}

/// A size for people: KiB below 16 MiB, else MiB, rounded up (so that two sizes that
/// differ are not both "1 MiB", and a small network is not "0").
pub(crate) fn size(bytes: usize) -> String {
    if bytes < 16 << 20 {
        format!("{} KiB", bytes.div_ceil(1 << 10))
    } else {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    }
}

impl NetworkMemory {
    /// Budgets of `per_cluster` bytes per network and `total` bytes for all of them.
    pub fn new(per_cluster: usize, total: usize) -> Self {
        NetworkMemory {
            per_cluster,
            pool: Arc::new(MemoryPool::new(total)),
        }
    }

    /// Puts a network that exists already (one brought back at start) under both budgets,
    /// even if the shared one is spent: it keeps what it has and grows when there is room.
    pub fn adopt(&self, network: &mut Cluster) {
        network.set_memory_limit(self.per_cluster);
        network.join_pool(self.pool.clone());
    }

    /// Puts a new network (built from a template, or restored from a checkpoint) under both
    /// budgets if the shared one has room for it; else leaves it as it was.
    pub fn try_adopt(&self, network: &mut Cluster) -> Result<(), SharedBudgetSpent> {
        network
            .try_join_pool(self.pool.clone())
            .map_err(|spent| SharedBudgetSpent {
                needed: Some(spent.needed),
                left: spent.available,
                limit: self.pool.limit(),
            })?;
        network.set_memory_limit(self.per_cluster);
        Ok(())
    }

    /// Rebuilds a checkpoint's network if the shared budget has room for it once the network
    /// it is to replace (`replacing`) no longer counts: a larger one is refused while it is
    /// rebuilt, before it takes more memory than that. It is not put under the budgets yet
    /// (see [`NetworkMemory::try_adopt`], which then finds the same room).
    pub fn restore(&self, bytes: &[u8], replacing: Option<&Cluster>) -> anyhow::Result<Cluster> {
        // The others' share: the replaced network may be beyond the budget on its own (one
        // that a start brought back under a smaller budget), which makes no room for others.
        let others = self
            .pool
            .used()
            .saturating_sub(replacing.map_or(0, |old| old.size().bytes));
        let left = self.pool.limit().saturating_sub(others);
        match Cluster::restore_within(bytes, left) {
            Ok(network) => Ok(network),
            Err(CheckpointError::TooLarge { .. }) => Err(SharedBudgetSpent {
                needed: None,
                left,
                limit: self.pool.limit(),
            }
            .into()),
            Err(e) => Err(anyhow::Error::new(e).context("the checkpoint cannot be restored")),
        }
    }
}

/// Returns the free memory of the allocator's heaps to the system (glibc's `malloc_trim`).
/// glibc keeps freed blocks below its mmap threshold in its arenas: after a large network
/// was dropped, or grew by reallocation during a task, the process kept up to a gigabyte it
/// no longer used. Walks every arena, so call it after large structures were freed, on a
/// blocking thread.
pub(crate) fn return_freed_memory() {
    TRIM_WANTED.store(false, Ordering::Release);
    trim();
}

/// Set while a [`return_freed_memory_soon`] is queued and has not started: later requests
/// are served by it.
static TRIM_WANTED: AtomicBool = AtomicBool::new(false);

/// [`return_freed_memory`] on a blocking thread of the runtime (inline outside one), once for
/// any number of requests that come before it starts: freeing thousands of small networks
/// (a shutdown) would otherwise walk the arenas thousands of times.
pub(crate) fn return_freed_memory_soon() {
    if TRIM_WANTED.swap(true, Ordering::AcqRel) {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(return_freed_memory)),
        Err(_) => return_freed_memory(),
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages of the allocator back to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(seed: u64) -> Cluster {
        let template = "version: 1\nsettings:\n    neuron_cooldown: 100000000.0\n\
                        hexagons:\n    1,1,1\n    2,1,1\n\n\
                        inputs:\n    picture:\n        target: 1,1,1\n        \
                        number_of_inputs: 784\n\n\
                        outputs:\n    label:\n        target: 2,1,1\n        \
                        number_of_outputs: 10\n";
        Cluster::from_template_text(template, seed).unwrap()
    }

    #[test]
    fn a_restore_has_the_room_its_adoption_has() {
        let mut old = network(1);
        let bytes = old.save();
        let mut other = network(2);
        let (size_old, size_other) = (old.size().bytes, other.size().bytes);
        // Room for both: the replaced network's share is room for its successor.
        let memory = NetworkMemory::new(usize::MAX, size_old + size_other);
        memory.adopt(&mut old);
        memory.adopt(&mut other);
        assert!(memory.restore(&bytes, Some(&old)).is_ok());
        // A budget that the replaced network alone is beyond (a start under a smaller
        // budget): the room is the budget less the others' share, not the replaced share.
        let limit = size_other + size_old / 4;
        let memory = NetworkMemory::new(usize::MAX, limit);
        memory.adopt(&mut old);
        memory.adopt(&mut other);
        let refused = memory.restore(&bytes, Some(&old)).unwrap_err();
        let expected = format!(
            "the network takes more than that, and the server's clusters have {} left",
            size(size_old / 4)
        );
        assert!(refused.to_string().contains(&expected), "{refused}");
    }
}
