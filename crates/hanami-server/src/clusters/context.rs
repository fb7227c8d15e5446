//! What the workers share: their [`WorkerContext`], the file-descriptor shortage they may
//! meet, and the growth that memory budgets refused, which they report.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use hanami_engine::{Cluster, GrowthStats};
use hanami_store::Store;
use hanami_store::dataset::VerifiedFiles;
use hanami_store::resources::ResourceRow;

use super::execution::{DESCRIPTOR_RETRY, RECORD_POINT, injected_store_failure};
use super::task::Task;
use super::turns::TaskSlots;
use super::{ClusterHandle, CoreBudget};
use crate::memory::NetworkMemory;
use crate::paths::DataDir;
use crate::sync::lock;

/// What the workers need besides their cluster.
#[derive(Clone)]
pub struct WorkerContext {
    /// The database.
    pub store: Store,
    /// Data directory layout.
    pub paths: DataDir,
    /// The runtime, for database calls from worker threads.
    pub runtime: tokio::runtime::Handle,
    /// Spare cores for engine threads, shared by all running tasks.
    pub cores: Arc<CoreBudget>,
    /// How many tasks run at once, server-wide (`max_running_tasks`): each holds a thread, so
    /// that hundreds of clusters with queued tasks neither take every thread of the runtime's
    /// blocking pool nor crowd out the API on the cores.
    pub slots: TaskSlots,
    /// Memory budgets of the networks.
    pub memory: NetworkMemory,
    /// Disk space in bytes that checkpoints leave free (`min_free_disk_mib`).
    pub min_free_disk: u64,
    /// Disk space promised to writes under way, shared with the uploads.
    pub disk: Arc<crate::disk::Ledger>,
    /// Set when the server begins to stop (see [`Clusters::stop_tasks`]): from then on no
    /// task starts; queued ones stay queued for the next start.
    ///
    /// [`Clusters::stop_tasks`]: super::Clusters::stop_tasks
    pub stopping: Arc<AtomicBool>,
    /// Since when tasks find the server out of file descriptors.
    pub descriptor_shortage: DescriptorShortage,
    /// The dataset files found to match their checksums (shared with the API), so that a
    /// dataset used again and again is read whole for the comparison once per change (on the
    /// file systems where that can be told).
    pub verified: Arc<VerifiedFiles>,
}

/// Since when tasks have found the server out of file descriptors, shared by all workers: a
/// task that cannot open its files waits for some to come free until the shortage has
/// lasted a minute, so that later tasks give up at once instead of each waiting as long.
/// Holds when the shortage was first and last met.
#[derive(Debug, Default, Clone)]
pub struct DescriptorShortage(Arc<Mutex<Option<(std::time::Instant, std::time::Instant)>>>);

impl DescriptorShortage {
    /// Notes that a task found the shortage; since when it lasts. One last met longer ago
    /// than a few tries of a waiting task is over (no task got past it, none waited for
    /// it): this is a new one.
    pub(super) fn seen(&self) -> std::time::Instant {
        self.seen_at(std::time::Instant::now())
    }

    /// [`DescriptorShortage::seen`] at `now`.
    fn seen_at(&self, now: std::time::Instant) -> std::time::Instant {
        let mut met = lock(&self.0);
        let since = match *met {
            Some((since, last)) if now - last <= 4 * DESCRIPTOR_RETRY => since,
            _ => now,
        };
        *met = Some((since, now));
        since
    }

    /// Notes that a task got past opening its files: the shortage is over.
    pub(super) fn over(&self) {
        lock(&self.0).take();
    }
}

impl WorkerContext {
    /// Writes the task's state to the database (from a worker thread); whether it did. A
    /// failure is logged: the task itself is not affected.
    pub(super) fn record(&self, task: &Task, cluster: &ResourceRow) -> bool {
        let recorded = if crate::crash_point::fails(RECORD_POINT) {
            Err(injected_store_failure())
        } else {
            self.runtime
                .block_on(self.store.update_task(&task.record(&cluster.uuid)))
        };
        if let Err(e) = &recorded {
            tracing::error!(task = task.uuid, "cannot record the task's state: {e}");
        }
        recorded.is_ok()
    }

    /// Why `cluster` could not grow as `refused` counts, in words (`during` names the time,
    /// `did` what the network did instead: "learned", "answered"); `None` if no growth was
    /// refused.
    pub fn refused_growth(
        &self,
        cluster: &Cluster,
        refused: RefusedGrowth,
        during: &str,
        did: &str,
    ) -> Option<String> {
        let RefusedGrowth {
            by_cluster,
            by_pool,
        } = refused;
        let mut reasons = Vec::new();
        if by_cluster > 0 {
            reasons.push(format!(
                "the network reached its memory budget of {} MiB (cluster_memory_mib): \
                 {by_cluster} requests for new sections were refused during {during}",
                cluster.options().memory_limit >> 20
            ));
        }
        if by_pool > 0 {
            reasons.push(format!(
                "the networks of the server's clusters reached the {} MiB they may hold \
                 together (clusters_memory_mib): {by_pool} requests for new sections were \
                 refused during {during}; deleting clusters that are no longer needed makes \
                 room (the clusters of all users share this budget: ask an administrator where \
                 others' fill it)",
                self.memory.pool.limit() >> 20
            ));
        }
        (!reasons.is_empty()).then(|| {
            format!(
                "{}; the network stopped growing and {did} with what it had",
                reasons.join("; ")
            )
        })
    }

    /// Removes the database's note of unsaved direct-IO changes once a save made them
    /// durable (from a worker thread; see [`ClusterHandle::forget_unsaved_note`]).
    pub fn forget_unsaved_note(&self, cluster: &ClusterHandle) {
        self.runtime
            .block_on(cluster.forget_unsaved_note(&self.store));
    }

    /// Promises the space of `what`, `size` bytes to be written into `dir`, unless the disk
    /// would then keep less than `min_free_disk` free beyond what other writes under way
    /// were promised; hold the promise until the file is written.
    pub fn reserve_disk(
        &self,
        dir: &Path,
        what: &str,
        size: u64,
    ) -> anyhow::Result<crate::disk::Promise> {
        self.disk.reserve(dir, what, size, self.min_free_disk)
    }

    /// Logs a task's failure to the server log and the error log (only the server log while
    /// another program locks the database; from a worker thread), and adds it to the task's
    /// note, which is recorded with the task's next state.
    pub fn log_error(&self, task: &Task, cluster: &ResourceRow, error: &anyhow::Error) {
        let inputs = serde_json::json!({"task": task.uuid, "cluster_uuid": cluster.uuid});
        task.add_note(&crate::error_log::describe(error));
        self.runtime.block_on(crate::error_log::record_error(
            &self.store,
            &cluster.owner_id,
            &task.described(&cluster.name),
            &inputs,
            error,
        ));
    }
}

/// Requests for new sections that a memory budget refused over some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedGrowth {
    /// Refused by the cluster's own budget (`cluster_memory_mib`).
    pub by_cluster: u64,
    /// Refused by the budget of all clusters together (`clusters_memory_mib`).
    pub by_pool: u64,
}

impl RefusedGrowth {
    /// What was refused between two readings of one network's counters (none if the
    /// network was replaced in between: a restored one counts from zero).
    pub fn between(before: GrowthStats, after: GrowthStats) -> Self {
        let by_pool = after
            .sections_refused_by_pool
            .saturating_sub(before.sections_refused_by_pool);
        let all = after
            .sections_refused
            .saturating_sub(before.sections_refused);
        Self {
            by_cluster: all.saturating_sub(by_pool),
            by_pool,
        }
    }

    /// Adds what `other` counts.
    pub fn add(&mut self, other: RefusedGrowth) {
        self.by_cluster += other.by_cluster;
        self.by_pool += other.by_pool;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shortage lasts from when it was first met while tasks keep meeting it; one that
    /// nobody met for a few tries is over, and the next is a new one.
    #[test]
    fn a_descriptor_shortage_lasts_while_tasks_meet_it() {
        let shortage = DescriptorShortage::default();
        let start = std::time::Instant::now();
        assert_eq!(shortage.seen_at(start), start);
        let later = start + DESCRIPTOR_RETRY;
        assert_eq!(shortage.seen_at(later), start);
        assert_eq!(shortage.seen_at(later + 4 * DESCRIPTOR_RETRY), start);
        let after_a_pause = later + 10 * DESCRIPTOR_RETRY;
        assert_eq!(shortage.seen_at(after_a_pause), after_a_pause);
        shortage.over();
        let again = after_a_pause + DESCRIPTOR_RETRY;
        assert_eq!(shortage.seen_at(again), again);
    }
}
