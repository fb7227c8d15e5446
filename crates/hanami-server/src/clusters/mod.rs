//! Clusters: their networks, their task queues and the worker that processes each queue.
//!
//! A cluster's network lives in memory and is saved to its file in the data directory
//! whenever something changed it: after every train, request and restore task, at the end of
//! a direct-IO session, and at shutdown. Task records go to the database at every change of
//! state. A task's end, what it produced (a checkpoint, a result dataset) and its network are
//! made durable together: the network is written and synced beside the cluster's file, the
//! end and the product are recorded in one transaction, and only then is the network renamed
//! into place (a start that finds the end recorded but the rename not done completes it). So
//! a restart brings back every cluster with the network it had, and its task list: queued
//! tasks keep their work in their records until they start, and are queued again, as is a
//! train or request task that the shutdown stopped (recorded with its network so far, and a
//! request with its result so far set aside, it goes on where it stopped); tasks that had
//! started and whose end was not recorded are reported aborted, and left nothing behind.
//!
//! Each cluster has one queue; its tasks run one after another on a blocking thread of the
//! runtime (the cluster's *worker*), which exists only while there is work. A task runs only
//! while it holds one of the server's task slots (`max_running_tasks`); a worker waits for
//! one without a thread and gives it up after each task, so that the clusters take turns
//! (their owners first: a user's clusters wait in turn with other users', see [`turns`]).
//! Only the worker
//! and direct-IO sessions touch a cluster's network, each under the cluster's network lock;
//! the API reads the cluster's interface list and task records, which never wait for that
//! lock. In DIRECT mode the queue is paused: new tasks wait until the cluster is switched
//! back to TASK mode.

pub mod rows;
pub mod task;
pub mod turns;
mod unreached;

pub(crate) use unreached::note as unreached_note;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use turns::{TaskSlot, TaskSlots};

use anyhow::Context;
use hanami_engine::{Cluster, GrowthStats, one_hot};
use hanami_store::dataset::DatasetWriter;
use hanami_store::dataset::ValueRanges;
use hanami_store::resources::{Kind, ResourceRow};
use hanami_store::tasks::TaskProduct;
use hanami_store::{Store, StoreError, now_timestamp};
use hanami_types::scope::Scope;

use crate::memory::NetworkMemory;
use crate::paths::DataDir;
use crate::slots::{Slot, Slots};
use rows::{DatasetRows, Side};
use task::{ResultTarget, Task, TaskState, Work, WorkKind};

/// Name and size of one interface of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Number of neurons.
    pub size: usize,
}

/// The interfaces of a cluster's network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// Input interfaces.
    pub inputs: Vec<Interface>,
    /// Output interfaces.
    pub outputs: Vec<Interface>,
}

impl Interfaces {
    fn of(cluster: &Cluster) -> Self {
        let list = |infos: &mut dyn Iterator<Item = hanami_engine::InterfaceInfo<'_>>| {
            infos
                .map(|i| Interface {
                    name: i.name.to_owned(),
                    size: i.size,
                })
                .collect()
        };
        Self {
            inputs: list(&mut cluster.inputs()),
            outputs: list(&mut cluster.outputs()),
        }
    }

    /// The input with this name.
    pub fn input(&self, name: &str) -> Option<&Interface> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// The output with this name.
    pub fn output(&self, name: &str) -> Option<&Interface> {
        self.outputs.iter().find(|i| i.name == name)
    }
}

/// TASK or DIRECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Tasks from the queue run.
    Task,
    /// Driven over a websocket; the queue waits.
    Direct,
}

struct Control {
    mode: Mode,
    queue: VecDeque<Arc<Task>>,
    /// Every task of the cluster, in queue order.
    tasks: Vec<Arc<Task>>,
    active: Option<Arc<Task>>,
    worker_running: bool,
    /// Queued tasks that a deletion has withdrawn (see [`TaskRemoval::Withdrawn`]).
    withdrawn: Vec<String>,
}

/// One cluster: its database row, its network and its tasks.
pub struct ClusterHandle {
    /// The cluster's row (uuid, name, owner, project, creation time).
    pub row: ResourceRow,
    network: Mutex<Option<Cluster>>,
    /// Where the network is saved ([`NO_NETWORK`] while there is none).
    network_file: PathBuf,
    /// Held while the network file is written or removed, so that a save that began before
    /// the cluster was deleted cannot recreate its file after the deletion removed it.
    file: Mutex<()>,
    /// Set when a direct-IO session may have changed the network since it was last saved.
    unsaved: AtomicBool,
    /// The database's note of unsaved direct-IO changes and the steps under way (see
    /// [`ClusterHandle::begin_direct_step`]). An async lock: the database is written under it,
    /// so that notes and their removals cannot overtake each other.
    unsaved_note: tokio::sync::Mutex<UnsavedNote>,
    interfaces: Mutex<Interfaces>,
    control: Mutex<Control>,
    deleted: AtomicBool,
    /// Changed when direct-IO sessions must end: the cluster left DIRECT mode (a task or a
    /// restore may follow, and a restore changes the interfaces the sessions staged
    /// values for) or was deleted (its network's memory is given back when the last
    /// session lets go of it).
    direct_sessions_end: tokio::sync::watch::Sender<()>,
    /// Open direct-IO sessions (see [`MAX_DIRECT_SESSIONS`]).
    direct_sessions: Slots,
    /// Tasks whose end the database missed (a full disk, say): recorded at the next end of
    /// one of the cluster's tasks, before a direct-IO session's save, or at shutdown (see
    /// [`ClusterHandle::record_missed_ends`]). Until then the database has them queued or
    /// active, and a start would run a queued one again, on a network that keeps what it did.
    missed_ends: Mutex<Vec<MissedEnd>>,
}

/// A task whose end the database missed.
struct MissedEnd {
    task: Arc<Task>,
    /// Whether its start was recorded: the database has it active (a start reports such a
    /// task aborted, its network may keep what it did), not queued.
    start_recorded: bool,
}

/// Most direct-IO sessions one cluster may have open at once. Each stages a full set of
/// input and expected values, so without a limit a client could hold many times the
/// network's memory outside the memory budgets (the original attached one socket per
/// cluster).
pub const MAX_DIRECT_SESSIONS: usize = 8;

/// A direct-IO session's claim on its cluster; dropping it ends the claim.
pub struct DirectSessionSlot {
    cluster: Arc<ClusterHandle>,
    _slot: Slot,
}

impl DirectSessionSlot {
    /// Ends the claim (the session's client is gone; what remains is the session's save),
    /// keeping the cluster.
    pub fn release(self) -> Arc<ClusterHandle> {
        self.cluster.clone()
    }
}

impl std::ops::Deref for DirectSessionSlot {
    type Target = Arc<ClusterHandle>;
    fn deref(&self) -> &Arc<ClusterHandle> {
        &self.cluster
    }
}

impl Drop for ClusterHandle {
    /// Frees the network off the async workers and gives its memory back to the system.
    fn drop(&mut self) {
        let network = self
            .network
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(network) = network else {
            return;
        };
        // Freeing a small network takes microseconds: not worth a thread.
        let small = network.size().bytes < SMALL_NETWORK_BYTES;
        let release = move || {
            drop(network);
            crate::memory::return_freed_memory_soon();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !small => drop(runtime.spawn_blocking(release)),
            _ => release(),
        }
    }
}

/// Networks below this size are freed on the thread that drops their cluster.
const SMALL_NETWORK_BYTES: usize = 1 << 20;

/// The `HANAMI_FAIL_AT` point (debug builds) at which every write of a task's state or end
/// to the database fails, as on a full disk.
const RECORD_POINT: &str = "task:record";

/// The `HANAMI_FAIL_AT` point (debug builds) at which the later record of an end that the
/// database missed fails (see [`ClusterHandle::record_missed_ends`]).
const RECORD_AGAIN_POINT: &str = "task:record-again";

/// The error of a database write that `HANAMI_FAIL_AT` makes fail.
fn injected_store_failure() -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(
        "failure injected (HANAMI_FAIL_AT)",
    )))
}

/// The `HANAMI_FAIL_AT` point (debug builds) at which the first two files that tasks open
/// (their datasets, a save's checkpoint) fail as if the server had run out of file
/// descriptors.
const DESCRIPTORS_POINT: &str = "task:descriptors";

/// How long a task that cannot open its files, because the server has run out of file
/// descriptors, waits for some to come free before it is aborted.
const DESCRIPTOR_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Pause between two tries of such a task to open its files.
const DESCRIPTOR_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Pause between two tries to record a task's end in a database that another program
/// locks (each try itself waits the database's busy timeout first).
const LOCKED_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// What deleting a task did.
pub enum TaskRemoval {
    /// The task had ended: it is gone.
    Forgotten,
    /// The task was queued: it left the queue, but stays listed (as queued, with its work)
    /// until its stored row is removed; then [`ClusterHandle::forget_withdrawn`] forgets it,
    /// or, where the row could not be removed, [`ClusterHandle::return_withdrawn`] queues it
    /// again at `place`. (Forgotten first, a task whose row stayed would come back at the
    /// next start, after its deletion had been answered with an error.)
    Withdrawn {
        /// The withdrawn task.
        task: Arc<Task>,
        /// Its place in the queue; `None` for a task that a stop queued again for the next
        /// start (it is not in the queue of this run).
        place: Option<usize>,
    },
    /// The task was queued, and another deletion has withdrawn it already.
    BeingDeleted,
    /// The task runs: it stops at the next row and stays listed as aborted.
    Stopping(Arc<Task>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why the mode cannot change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ModeConflict {
    /// The cluster is in TASK mode already.
    #[error("it is already in that mode")]
    AlreadyTask,
    /// The cluster is in DIRECT mode already: a client may have ended without switching it
    /// back, and nothing but a switch to TASK mode ends that.
    #[error(
        "it is already in that mode; if no direct-IO client uses it any more (one may have \
         ended without switching it back), switch it to TASK mode first"
    )]
    AlreadyDirect,
    /// Tasks run or wait (DIRECT needs an idle queue).
    #[error("a task is queued or running")]
    Busy,
    /// There is no network to drive.
    #[error("it has no network yet: restore a checkpoint into it first")]
    NoNetwork,
}

impl ClusterHandle {
    /// A cluster with a network (or none, for an empty template) saved in `network_file`.
    pub fn new(row: ResourceRow, network: Option<Cluster>, network_file: PathBuf) -> Self {
        let interfaces = network.as_ref().map(Interfaces::of).unwrap_or_default();
        Self {
            row,
            network: Mutex::new(network),
            network_file,
            file: Mutex::new(()),
            unsaved: AtomicBool::new(false),
            unsaved_note: tokio::sync::Mutex::new(UnsavedNote::default()),
            interfaces: Mutex::new(interfaces),
            control: Mutex::new(Control {
                mode: Mode::Task,
                queue: VecDeque::new(),
                tasks: Vec::new(),
                active: None,
                worker_running: false,
                withdrawn: Vec::new(),
            }),
            deleted: AtomicBool::new(false),
            direct_sessions_end: tokio::sync::watch::Sender::new(()),
            direct_sessions: Slots::default(),
            missed_ends: Mutex::new(Vec::new()),
        }
    }

    /// A slot for one more direct-IO session; `None` if [`MAX_DIRECT_SESSIONS`] are open.
    pub fn claim_direct_session(self: &Arc<Self>) -> Option<DirectSessionSlot> {
        let slot = self.direct_sessions.claim(MAX_DIRECT_SESSIONS)?;
        Some(DirectSessionSlot {
            cluster: self.clone(),
            _slot: slot,
        })
    }

    /// A receiver that sees a change once direct-IO sessions must end (see
    /// [`ClusterHandle::direct_session_over`] for why), counting from this call: a session
    /// subscribes before it checks the mode.
    pub fn direct_sessions_end(&self) -> tokio::sync::watch::Receiver<()> {
        self.direct_sessions_end.subscribe()
    }

    /// Why a direct-IO session that subscribed with `since` (see
    /// [`ClusterHandle::direct_sessions_end`]) cannot go on, if it cannot: the cluster was
    /// deleted, is not in DIRECT mode, or left it since (and is back: a task or restore may
    /// have changed the network in between).
    pub fn direct_session_over(
        &self,
        since: &tokio::sync::watch::Receiver<()>,
    ) -> Option<&'static str> {
        let over =
            self.is_deleted() || self.mode() != Mode::Direct || since.has_changed().unwrap_or(true);
        over.then(|| self.direct_session_end())
    }

    /// Why direct-IO sessions were told to end: the cluster was deleted, or left DIRECT
    /// mode.
    pub fn direct_session_end(&self) -> &'static str {
        if self.is_deleted() {
            hanami_types::websocket::CLOSED_CLUSTER_DELETED
        } else {
            "the cluster left DIRECT mode (switch it back and start a new session: a task or \
             restore may have changed its network)"
        }
    }

    /// The interfaces of the network (empty without one).
    pub fn interfaces(&self) -> Interfaces {
        lock(&self.interfaces).clone()
    }

    /// Whether the cluster has a network.
    pub fn has_network(&self) -> bool {
        let interfaces = lock(&self.interfaces);
        !(interfaces.inputs.is_empty() && interfaces.outputs.is_empty())
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        lock(&self.control).mode
    }

    /// Switches the mode: to DIRECT only from an idle TASK mode and with a network, to TASK
    /// only from DIRECT (which resumes the queue).
    pub fn set_mode(self: &Arc<Self>, mode: Mode, ctx: &WorkerContext) -> Result<(), ModeConflict> {
        let mut control = lock(&self.control);
        match (control.mode, mode) {
            (Mode::Task, Mode::Direct) => {
                if control.active.is_some() || !control.queue.is_empty() {
                    return Err(ModeConflict::Busy);
                }
                if !self.has_network() {
                    return Err(ModeConflict::NoNetwork);
                }
                control.mode = Mode::Direct;
                Ok(())
            }
            (Mode::Direct, Mode::Task) => {
                control.mode = Mode::Task;
                self.direct_sessions_end.send_replace(());
                self.start_worker(&mut control, ctx, None);
                Ok(())
            }
            (Mode::Task, Mode::Task) => Err(ModeConflict::AlreadyTask),
            (Mode::Direct, Mode::Direct) => Err(ModeConflict::AlreadyDirect),
        }
    }

    /// Queues a task. Returns whether it starts right away: the cluster was idle (nothing
    /// running or queued, TASK mode), the server is not stopping and a task slot was free,
    /// which the task takes; `None` if the cluster was deleted meanwhile (its worker would
    /// never run the task, and a caller waiting for its end would wait for ever).
    pub fn enqueue(self: &Arc<Self>, task: Arc<Task>, ctx: &WorkerContext) -> Option<bool> {
        let mut control = lock(&self.control);
        // [`ClusterHandle::delete`] sets the mark before it empties the queue under this
        // lock: a task queued before the mark is seen ends aborted there.
        if self.is_deleted() {
            return None;
        }
        let idle = !ctx.stopping.load(Ordering::Relaxed)
            && control.mode == Mode::Task
            && !control.worker_running
            && control.active.is_none()
            && control.queue.is_empty();
        let slot = idle.then(|| ctx.slots.try_claim()).flatten();
        let starts = slot.is_some();
        control.tasks.push(task.clone());
        control.queue.push_back(task);
        self.start_worker(&mut control, ctx, slot);
        Some(starts)
    }

    /// Forgets the oldest ended tasks beyond the `keep` most recent ones (the list is in the
    /// order the tasks were queued); returns their uuids, whose stored rows the caller
    /// removes.
    pub fn forget_ended_beyond(&self, keep: usize) -> Vec<String> {
        let ended = |task: &Task| matches!(task.state(), TaskState::Aborted | TaskState::Finished);
        let mut control = lock(&self.control);
        let mut excess = control
            .tasks
            .iter()
            .filter(|task| ended(task))
            .count()
            .saturating_sub(keep);
        let mut forgotten = Vec::new();
        control.tasks.retain(|task| {
            let forget = excess > 0 && ended(task);
            if forget {
                excess -= 1;
                forgotten.push(task.uuid.clone());
            }
            !forget
        });
        forgotten
    }

    /// Adds tasks recorded by an earlier run to the task list, in their order: ended ones,
    /// and queued ones that [`ClusterHandle::resume`] then queues.
    pub fn add_recorded_tasks(&self, tasks: impl IntoIterator<Item = Arc<Task>>) {
        lock(&self.control).tasks.extend(tasks);
    }

    /// Queues a task of an earlier run that [`ClusterHandle::add_recorded_tasks`] listed;
    /// [`start_resumed_workers`] starts it.
    pub fn resume(&self, task: Arc<Task>) {
        lock(&self.control).queue.push_back(task);
    }

    /// Marks the worker running for [`start_resumed_workers`], which starts it; `false` if
    /// one runs already, nothing waits, or tasks may not start.
    fn claim_worker(&self, ctx: &WorkerContext) -> bool {
        let mut control = lock(&self.control);
        if control.worker_running || control.queue.is_empty() || !self.runs_tasks(&control, ctx) {
            return false;
        }
        control.worker_running = true;
        true
    }

    /// Saves the network to the cluster's file durably; without a network the file holds
    /// [`NO_NETWORK`] (so that a missing or empty file means a lost or damaged one). Takes
    /// the network lock. Does nothing once the cluster is deleted.
    pub fn save_network(&self) -> std::io::Result<()> {
        let network = lock(&self.network);
        let _file = lock(&self.file);
        if self.is_deleted() {
            return Ok(());
        }
        let saved = write_durably(&self.network_file, &network_bytes(network.as_ref()));
        // A failed save is tried again at shutdown.
        self.unsaved.store(saved.is_err(), Ordering::Relaxed);
        saved
    }

    /// Writes the network beside its file and syncs it, without putting it in place yet
    /// (see [`StagedNetwork`]); `None` once the cluster is deleted. Holds the file lock until
    /// the staged network is put in place or dropped. Takes the network lock while
    /// serialising.
    fn stage_network(&self, task: &Task) -> std::io::Result<Option<StagedNetwork<'_>>> {
        let (bytes, carries_unsaved) = {
            let network = lock(&self.network);
            // What direct IO changed before is in these bytes (it sets the flag again
            // under this lock); failures below set it again.
            let carries_unsaved = self.unsaved.swap(false, Ordering::Relaxed);
            (network_bytes(network.as_ref()), carries_unsaved)
        };
        let file = lock(&self.file);
        if self.is_deleted() {
            return Ok(None);
        }
        let temp = staged_path_of_task(&self.network_file, &task.uuid);
        match Staged::write_as(&self.network_file, temp, &bytes) {
            Ok(staged) => Ok(Some(StagedNetwork {
                staged,
                carries_unsaved,
                _file: file,
            })),
            Err(e) => {
                // Tried again at shutdown.
                self.unsaved.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Called before a direct-IO step that may change the network: the first such change
    /// since the last save is noted in the database first, so that a crash that loses it
    /// is reported at the next start. Pair with [`ClusterHandle::end_direct_step`].
    pub async fn begin_direct_step(&self, store: &Store) {
        let mut note = self.unsaved_note.lock().await;
        note.steps += 1;
        if !note.noted {
            note.noted = true;
            let base = self.saved_network();
            if let Err(e) = store
                .note_unsaved_network(&self.row.uuid, &now_timestamp(), base.as_deref())
                .await
            {
                tracing::error!(
                    cluster = self.row.uuid,
                    "cannot note the network's unsaved changes: {e}"
                );
            }
        }
    }

    /// Which saved network is in place, by its content (so that a copy of the data directory
    /// keeps it): the file's length and last four bytes, the checksum that ends every
    /// checkpoint (a step changes the state, so a save after one changes them); `None` if it
    /// cannot be read. A start compares it with the one noted when unsaved direct-IO changes
    /// began.
    pub fn saved_network(&self) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&self.network_file).ok()?;
        let length = file.metadata().ok()?.len();
        let mut tail = [0u8; 4];
        file.seek(SeekFrom::Start(length.checked_sub(4)?)).ok()?;
        file.read_exact(&mut tail).ok()?;
        Some(format!(
            "{length} bytes ending in {:08x}",
            u32::from_le_bytes(tail)
        ))
    }

    /// Called after a direct-IO step (see [`ClusterHandle::begin_direct_step`]).
    pub async fn end_direct_step(&self) {
        self.unsaved_note.lock().await.steps -= 1;
    }

    /// Removes the database's note of unsaved direct-IO changes after a save, unless a step
    /// is under way or changed the network since the save.
    pub async fn forget_unsaved_note(&self, store: &Store) {
        let mut note = self.unsaved_note.lock().await;
        if !note.noted || note.steps > 0 || self.unsaved.load(Ordering::Relaxed) {
            return;
        }
        match store.note_saved_network(&self.row.uuid).await {
            Ok(()) => note.noted = false,
            Err(e) => tracing::error!(
                cluster = self.row.uuid,
                "cannot note that the network is saved: {e}"
            ),
        }
    }

    /// Saves the network if a direct-IO session changed it since it was last saved, or its
    /// last save failed.
    pub fn save_network_if_changed(&self) -> std::io::Result<()> {
        if self.unsaved.load(Ordering::Relaxed) {
            self.save_network()?;
        }
        Ok(())
    }

    /// Removes the saved network (the cluster was deleted, or could not be registered).
    /// Waits for a save in progress. Blocking.
    pub fn remove_network_file(&self) -> std::io::Result<()> {
        let _file = lock(&self.file);
        match std::fs::remove_file(&self.network_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// All tasks in queue order.
    pub fn tasks(&self) -> Vec<Arc<Task>> {
        lock(&self.control).tasks.clone()
    }

    /// How many tasks are queued, of any kind.
    pub fn queue_length(&self) -> usize {
        lock(&self.control).queue.len()
    }

    /// How many queued tasks do work of this kind.
    pub fn queued(&self, kind: WorkKind) -> usize {
        lock(&self.control)
            .queue
            .iter()
            .filter(|t| t.kind == Some(kind))
            .count()
    }

    /// One task.
    pub fn task(&self, uuid: &str) -> Option<Arc<Task>> {
        lock(&self.control)
            .tasks
            .iter()
            .find(|t| t.uuid == uuid)
            .cloned()
    }

    /// Deletes a task: a queued one leaves the queue, an active one is stopped at the next
    /// row (and stays listed as aborted), an ended one is forgotten. `None` if unknown.
    pub fn delete_task(&self, uuid: &str) -> Option<TaskRemoval> {
        let mut control = lock(&self.control);
        let index = control.tasks.iter().position(|t| t.uuid == uuid)?;
        let task = control.tasks[index].clone();
        Some(match task.state() {
            TaskState::Active => {
                // Its owner's deletion, not the shutdown, decides how it ends (it is not
                // queued again): see `ClusterHandle::stopped`, which reads this under the
                // same lock.
                task.stopped_by_shutdown.store(false, Ordering::Relaxed);
                task.cancel.store(true, Ordering::Relaxed);
                TaskRemoval::Stopping(task)
            }
            TaskState::Queued => {
                if control.withdrawn.iter().any(|u| u == uuid) {
                    return Some(TaskRemoval::BeingDeleted);
                }
                let place = control.queue.iter().position(|t| t.uuid == uuid);
                if let Some(place) = place {
                    control.queue.remove(place);
                }
                control.withdrawn.push(task.uuid.clone());
                TaskRemoval::Withdrawn { task, place }
            }
            TaskState::Aborted | TaskState::Finished => {
                control.tasks.remove(index);
                TaskRemoval::Forgotten
            }
        })
    }

    /// Forgets a task that [`ClusterHandle::delete_task`] withdrew from the queue, once its
    /// stored row is gone.
    pub fn forget_withdrawn(&self, task: &Arc<Task>) {
        let mut control = lock(&self.control);
        control.withdrawn.retain(|uuid| *uuid != task.uuid);
        control.tasks.retain(|t| !Arc::ptr_eq(t, task));
        drop(control);
        task.end(TaskState::Aborted);
    }

    /// Queues a withdrawn task again at its `place` (or the end of a shorter queue), where its
    /// stored row could not be removed. Not while the server stops, nor a task that a stop
    /// queued for the next start (its row queues it then), nor once the cluster is deleted
    /// (it ends aborted, as the queue's others).
    pub fn return_withdrawn(
        self: &Arc<Self>,
        task: Arc<Task>,
        place: Option<usize>,
        ctx: &WorkerContext,
    ) {
        let mut control = lock(&self.control);
        control.withdrawn.retain(|uuid| *uuid != task.uuid);
        if self.is_deleted() {
            drop(control);
            task.end(TaskState::Aborted);
            return;
        }
        let Some(place) = place.filter(|_| !ctx.stopping.load(Ordering::Relaxed)) else {
            return;
        };
        let place = place.min(control.queue.len());
        control.queue.insert(place, task);
        self.start_worker(&mut control, ctx, None);
    }

    /// Stops all work for a shutdown: a running task is told to stop at the next row (its
    /// worker ends and records it); queued tasks leave the queue but stay recorded as
    /// queued, with their work, so that the next start queues them again. Returns the
    /// running task.
    pub fn stop_work(&self) -> Option<Arc<Task>> {
        let mut control = lock(&self.control);
        if let Some(task) = &control.active {
            // Unless its deletion stopped it already.
            if !task.cancel.load(Ordering::Relaxed) {
                task.stopped_by_shutdown.store(true, Ordering::Relaxed);
                task.cancel.store(true, Ordering::Relaxed);
            }
        }
        control.queue.clear();
        control.active.clone()
    }

    /// Whether a worker still runs tasks of this cluster.
    pub fn is_working(&self) -> bool {
        lock(&self.control).worker_running
    }

    /// Marks the cluster deleted: the queue is dropped and a running task stops.
    pub fn delete(&self) {
        self.deleted.store(true, Ordering::Relaxed);
        self.direct_sessions_end.send_replace(());
        let mut control = lock(&self.control);
        for task in control.queue.drain(..) {
            task.end(TaskState::Aborted);
        }
        if let Some(task) = &control.active {
            task.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the cluster was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Relaxed)
    }

    /// Runs `f` on the network under its lock (blocking) without changing it; `None`
    /// without a network.
    pub fn read_network<R>(&self, f: impl FnOnce(&Cluster) -> R) -> Option<R> {
        lock(&self.network).as_ref().map(f)
    }

    /// Runs `f` on the network under its lock (blocking) and notes that the network must be
    /// saved; `None` without a network.
    pub fn with_network<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> Option<R> {
        let mut network = lock(&self.network);
        self.unsaved.store(true, Ordering::Relaxed);
        network.as_mut().map(f)
    }

    /// Starts the worker if tasks wait and none runs, with `slot` if the caller took one.
    fn start_worker(
        self: &Arc<Self>,
        control: &mut Control,
        ctx: &WorkerContext,
        slot: Option<TaskSlot>,
    ) {
        if control.worker_running
            || control.mode != Mode::Task
            || control.queue.is_empty()
            || ctx.stopping.load(Ordering::Relaxed)
        {
            return;
        }
        control.worker_running = true;
        match slot {
            Some(slot) => self.clone().work_on_thread(ctx.clone(), slot),
            None => self.clone().run_next_task_when_free(ctx),
        }
    }

    /// Runs the worker with its slot on a blocking thread.
    fn work_on_thread(self: Arc<Self>, ctx: WorkerContext, slot: TaskSlot) {
        tokio::task::spawn_blocking(move || self.work(&ctx, slot));
    }

    /// Waits (without a thread) for one of the server's task slots, in its owner's turn (its
    /// place taken now), then runs the next task on a blocking thread.
    /// While it waits, a deleted cluster can go: its network is freed at once.
    fn run_next_task_when_free(self: Arc<Self>, ctx: &WorkerContext) {
        let ctx = ctx.clone();
        let claim = ctx.slots.claim(&self.row.owner_id);
        let cluster = Arc::downgrade(&self);
        ctx.runtime.clone().spawn(async move {
            let slot = claim.await;
            if let Some(cluster) = cluster.upgrade() {
                cluster.work_on_thread(ctx, slot);
            }
        });
    }

    /// The worker: runs the next queued task while holding a task slot, then lets the task
    /// of another cluster that waits for a slot go first, until the queue is empty or the
    /// mode changes.
    fn work(self: Arc<Self>, ctx: &WorkerContext, slot: TaskSlot) {
        let Some(task) = self.next_task(ctx) else {
            return;
        };
        self.run(&task, ctx);
        drop(slot);
        if self.next_task_waits(ctx) {
            self.run_next_task_when_free(ctx);
        }
    }

    /// The next task to run, marked active; `None` (and the worker ends) when the queue is
    /// empty, paused or deleted, or the server stops.
    fn next_task(&self, ctx: &WorkerContext) -> Option<Arc<Task>> {
        let mut control = lock(&self.control);
        let next = if self.runs_tasks(&control, ctx) {
            control.queue.pop_front()
        } else {
            None
        };
        control.active.clone_from(&next);
        if next.is_none() {
            self.end_worker(control);
        }
        next
    }

    /// Whether another task waits to run; if not, the worker ends.
    fn next_task_waits(&self, ctx: &WorkerContext) -> bool {
        let control = lock(&self.control);
        let waits = self.runs_tasks(&control, ctx) && !control.queue.is_empty();
        if !waits {
            self.end_worker(control);
        }
        waits
    }

    /// Whether queued tasks may start: TASK mode, not deleted, the server not stopping.
    fn runs_tasks(&self, control: &Control, ctx: &WorkerContext) -> bool {
        control.mode == Mode::Task && !self.is_deleted() && !ctx.stopping.load(Ordering::Relaxed)
    }

    fn end_worker(&self, mut control: MutexGuard<'_, Control>) {
        control.worker_running = false;
        drop(control);
        // Training grows the network by reallocation, and a restore drops the old network:
        // what they freed goes back to the system.
        crate::memory::return_freed_memory_soon();
    }

    /// Runs a task that [`ClusterHandle::next_task`] made active, and ends it (or, for a
    /// train or request task that the shutdown stopped, queues it again for the next start).
    fn run(&self, task: &Arc<Task>, ctx: &WorkerContext) {
        let started = std::time::Instant::now();
        let work = task.start();
        let start_recorded = ctx.record(task, &self.row);
        let outcome = work
            .as_ref()
            .map(|work| (work, self.execute_patiently(task, work, ctx)));
        // One that failed or stopped before it began left the network as it was.
        let changes_network = match &outcome {
            Some((_, Ok(Ok(Ran::NotBegun(_) | Ran::Stopped { began: false, .. })))) | None => false,
            Some((work, _)) => work.changes_network(),
        };
        let ending = match outcome {
            Some((_, Ok(Ok(Ran::Done(product))))) => Ending::End(TaskState::Finished, *product),
            Some((work, Ok(Ok(Ran::Stopped { goes_on, .. })))) => {
                self.stopped(task, work, goes_on, ctx)
            }
            Some((_, Ok(Ok(Ran::NotBegun(e)) | Err(e)))) => {
                ctx.log_error(task, &self.row, &e);
                Ending::End(TaskState::Aborted, Product::Nothing)
            }
            Some((_, Err(_))) => {
                let e = anyhow::anyhow!("the task panicked");
                ctx.log_error(task, &self.row, &e);
                Ending::End(TaskState::Aborted, Product::Nothing)
            }
            None => Ending::End(TaskState::Aborted, Product::Nothing),
        };
        if let Ending::End(TaskState::Aborted, _) = ending {
            // One that a shutdown stopped and that could not go on says so.
            task.note_not_going_on();
        }
        let request = work.as_ref().map(Work::kind) == Some(WorkKind::Request);
        // Done with (a restore's checkpoint file is closed).
        drop(work);
        // A task whose network cannot be saved did not end well (it is saved again at
        // shutdown), except a request, whose result is complete whatever became of the
        // growth it caused; a train task cannot go on from a network that was not saved.
        let (ending, staged) = if changes_network {
            match self.stage_network(task) {
                Ok(staged) => (ending, staged),
                Err(e) => {
                    let (state, product) = match ending {
                        Ending::End(state, product) => (state, product),
                        Ending::Requeue(_) => {
                            ctx.log_error(task, &self.row, &shut_down_before_the_end(task));
                            (TaskState::Aborted, Product::Nothing)
                        }
                    };
                    let state = self.network_not_saved(task, state, &product, e, ctx);
                    (Ending::End(state, product), None)
                }
            }
        } else {
            (ending, None)
        };
        crate::crash_point::reached("task-end:before-record");
        // Idle before anyone can see the end: a client that saw it may switch to DIRECT
        // mode, or queue a task that starts right away, at once.
        lock(&self.control).active = None;
        let ended_at = now_timestamp();
        let missed = MissedEnd {
            task: task.clone(),
            start_recorded,
        };
        let recorded = self.record_end(missed, ending, &ended_at, staged, ctx);
        if request && matches!(recorded, Recorded::Ended(_)) {
            // A result so far that nothing goes on with (one this run failed to go on with,
            // or set aside for a requeue that a deletion or a failed record took back).
            ctx.paths.remove_partial_result(&task.uuid);
        }
        match recorded {
            Recorded::Requeued => tracing::info!(
                "{} ({}) stopped by the shutdown after {} of {} cycles; it goes on from there at \
                 the next start",
                task.described(&self.row.name),
                task.uuid,
                task.progress(),
                task.total
            ),
            Recorded::Ended(state) => {
                task.end_at(state, ended_at);
                tracing::info!(
                    "{} ({}) {} after {:.1} s",
                    task.described(&self.row.name),
                    task.uuid,
                    state.as_str(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }

    /// How a task that stopped before its end (its cancel flag) ends: one that the shutdown
    /// stopped and that `goes_on` (it kept what it did so far: a train task's network, a
    /// request's result so far) is queued again with its `work`; any other is aborted, with
    /// a note saying why. Decided under the control lock, where a deletion of the task takes
    /// back the shutdown's mark: a task the shutdown queues again is then no longer active
    /// for a deletion, which withdraws it as a queued one (with no place in this run's
    /// queue) and forgets it once its row is deleted.
    fn stopped(&self, task: &Task, work: &Work, goes_on: bool, ctx: &WorkerContext) -> Ending {
        // The next start could not read it.
        let deleted = if goes_on {
            deleted_dataset(work, ctx)
        } else {
            None
        };
        let (by_shutdown, requeue) = {
            let _control = lock(&self.control);
            let by_shutdown = task.stopped_by_shutdown.load(Ordering::Relaxed);
            let requeue = by_shutdown && goes_on && deleted.is_none();
            if requeue {
                task.requeue();
            }
            (by_shutdown, requeue)
        };
        if requeue {
            // Not an error: it goes on at the next start.
            return Ending::Requeue(work.stored());
        }
        if by_shutdown {
            // Said with the end it is recorded with (a kill during the rest of the stop must
            // not leave it unexplained).
            let mut e = shut_down_before_the_end(task);
            if let Some(dataset) = deleted {
                e = e.context(format!(
                    "dataset '{dataset}', which the task reads, was deleted while it ran, so it \
                     cannot go on at the next start"
                ));
            }
            ctx.log_error(task, &self.row, &e);
        } else if !self.is_deleted() {
            // Not an error: its owner asked for it. (A deleted cluster's tasks are gone with
            // it.)
            task.add_note("stopped by its deletion before its end");
        }
        Ending::End(TaskState::Aborted, Product::Nothing)
    }

    /// Makes a task's end durable before anyone learns of it: its end and its product are
    /// recorded together, then its staged network is put in place; a task queued again is
    /// recorded so, with its progress, its work and a note saying where it stopped, together
    /// with its network so far. While another program locks the database, the end waits
    /// for the lock (holding the cluster's network file), until the server stops or the
    /// cluster is deleted. Ended aborted if its product or its end (or the network it would
    /// go on with) cannot be recorded.
    fn record_end(
        &self,
        missed: MissedEnd,
        ending: Ending,
        ended_at: &str,
        staged: Option<StagedNetwork<'_>>,
        ctx: &WorkerContext,
    ) -> Recorded {
        self.record_missed_ends(ctx);
        let arc = missed.task.clone();
        let task = &*arc;
        let mut requeued = matches!(ending, Ending::Requeue(_));
        let mut waited = false;
        let mut recorded = loop {
            let recorded = ctx.runtime.block_on(async {
                if crate::crash_point::fails(RECORD_POINT) {
                    return Err(injected_store_failure());
                }
                match &ending {
                    Ending::Requeue(work) => {
                        let row = task.record_requeued(&self.row.uuid);
                        ctx.store.requeue_task(&row, work, staged.is_some()).await
                    }
                    Ending::End(state, product) => {
                        let row = task.record_as_ended(&self.row.uuid, *state, ended_at);
                        ctx.store
                            .end_task(&row, product.as_stored(), staged.is_some())
                            .await
                    }
                }
            });
            // Another program's lock passes: the end waits for it (each try waits the
            // database's busy timeout), unless the server is stopping.
            let locked = matches!(&recorded, Err(e) if e.is_locked());
            if !locked || ctx.stopping.load(Ordering::Relaxed) || self.is_deleted() {
                break recorded;
            }
            if !waited {
                waited = true;
                tracing::warn!(
                    task = task.uuid,
                    cluster = self.row.uuid,
                    "the database is locked by another program: the task's end waits until it \
                     can be recorded"
                );
                task.add_note("its end waited for the database, which another program kept locked");
                task.note_end_waits();
            }
            std::thread::sleep(LOCKED_RETRY_PAUSE);
        };
        if waited && recorded.is_ok() {
            tracing::info!(task = task.uuid, "the task's end is recorded");
        }
        let (mut state, product) = match ending {
            Ending::End(state, product) => (state, product),
            // Ends so if it cannot be queued again.
            Ending::Requeue(_) => (TaskState::Aborted, Product::Nothing),
        };
        if let Err(e @ StoreError::OwnerGone { .. }) = &recorded {
            // Its owner or project was deleted meanwhile: the task ends without it.
            product.remove_file();
            let e = anyhow::anyhow!("{e}").context(format!("{} cannot be registered", product));
            ctx.log_error(task, &self.row, &e);
            state = TaskState::Aborted;
            // Tried once (the database took the try before, so a lock now is unlikely).
            recorded = ctx.runtime.block_on(ctx.store.end_task(
                &task.record_as_ended(&self.row.uuid, state, ended_at),
                TaskProduct::Nothing,
                staged.is_some(),
            ));
        }
        if recorded.is_ok() {
            crate::crash_point::reached("task-end:recorded");
        }
        match (recorded, staged) {
            (Ok(()), Some(staged)) => match staged.rename_into_place() {
                Ok(InPlace::FolderNotSynced(e)) => {
                    // The network is in place, as the recorded end says; only a crash could
                    // still undo the rename. The end's record keeps the network pending, so
                    // that a start after such a crash completes the rename again.
                    tracing::warn!(
                        task = task.uuid,
                        cluster = self.row.uuid,
                        "the cluster's network is in place, but its folder cannot be synced: \
                         {e}; a crash before the system writes it could undo the rename, which \
                         the next start would then complete"
                    );
                }
                Ok(InPlace::Synced) => {
                    // Direct IO's changes before the task are saved with it.
                    if !self.unsaved.load(Ordering::Relaxed) {
                        ctx.forget_unsaved_note(self);
                    }
                    if let Err(e) = ctx.runtime.block_on(ctx.store.network_in_place(&task.uuid)) {
                        // The next start finds the network in place and only clears the note.
                        tracing::warn!(task = task.uuid, "cannot note the saved network: {e}");
                    }
                }
                Err(e) => {
                    // The staged file is gone: the end is recorded again, without it (a task
                    // queued again cannot go on from a network that is not in place).
                    self.unsaved.store(true, Ordering::Relaxed);
                    if requeued {
                        requeued = false;
                        ctx.log_error(task, &self.row, &shut_down_before_the_end(task));
                    }
                    state = self.network_not_saved(task, state, &product, e, ctx);
                    if let Err(e) = ctx.runtime.block_on(ctx.store.end_task(
                        &task.record_as_ended(&self.row.uuid, state, ended_at),
                        TaskProduct::Nothing,
                        false,
                    )) {
                        // Its first record stands (so the network at shutdown is saved).
                        tracing::error!(task = task.uuid, "cannot record the task's end: {e}");
                    }
                }
            },
            (Ok(()), None) => {}
            (Err(e), staged) => {
                // Nothing of the end is recorded, so the network file stays as it was; the
                // network in memory, with what the task did, is saved at shutdown, unless the
                // server is stopping because its wait for a locked database was cut short:
                // then the next start reports the task as one that left nothing behind (its
                // record says it is still active), and so it must. A product stays on disk
                // and goes to `unreferenced/` at the next start.
                let cut_short = e.is_locked() && ctx.stopping.load(Ordering::Relaxed);
                // Changes that no save kept before the task are saved all the same.
                let carries_unsaved = staged.as_ref().is_some_and(|s| s.carries_unsaved);
                if staged.is_some() && (!cut_short || carries_unsaved) {
                    self.unsaved.store(true, Ordering::Relaxed);
                }
                drop(staged);
                let kept = match &product {
                    Product::Nothing => String::new(),
                    _ => format!(
                        "; {product} is not registered (its file is moved to unreferenced/ at \
                         the next start)"
                    ),
                };
                let network = if cut_short && !self.unsaved.load(Ordering::Relaxed) {
                    "the server stops, and the cluster's network stays the one saved before \
                     the task"
                } else {
                    "the cluster's network in memory keeps what the task did"
                };
                let e = anyhow::Error::new(e).context(format!(
                    "the task's end cannot be recorded in the database{kept}; {network}"
                ));
                ctx.log_error(task, &self.row, &e);
                // Tried again later, but for a wait cut short by the stop where its record,
                // still active, says what the next start must report.
                if !cut_short || !missed.start_recorded {
                    lock(&self.missed_ends).push(missed);
                }
                state = TaskState::Aborted;
                requeued = false;
            }
        }
        if requeued {
            task.note_stop();
            Recorded::Requeued
        } else {
            Recorded::Ended(state)
        }
    }

    /// Records the ends of the cluster's tasks that the database missed (see
    /// `missed_ends`), as they ended, until one fails (each try may wait for a locked
    /// database); a deleted task's row went with it, and its record changes nothing. Whether
    /// the cluster's network may be saved: no end is missing of a task that the database has
    /// queued (its start was missed too), which a start would run again on top of what it
    /// did. Under the list's lock, so that the worker and the shutdown take turns.
    pub(crate) fn record_missed_ends(&self, ctx: &WorkerContext) -> bool {
        // Its note says why the end is recorded late (in memory once it is).
        const LATE: &str = "its end was recorded once the database took writes again";
        let mut missed = lock(&self.missed_ends);
        let mut index = 0;
        while let Some(MissedEnd { task, .. }) = missed.get(index) {
            // Told to anyone only once it has ended (its worker may still be on it).
            if matches!(task.state(), TaskState::Queued | TaskState::Active) {
                index += 1;
                continue;
            }
            let mut row = task.record(&self.row.uuid);
            row.note = Some(
                row.note
                    .map_or(LATE.to_owned(), |note| format!("{note}; {LATE}")),
            );
            let recorded = if crate::crash_point::fails(RECORD_AGAIN_POINT) {
                Err(injected_store_failure())
            } else {
                ctx.runtime
                    .block_on(ctx.store.end_task(&row, TaskProduct::Nothing, false))
            };
            if let Err(e) = recorded {
                tracing::warn!(
                    task = task.uuid,
                    "the task's end still cannot be recorded: {e}"
                );
                break;
            }
            task.add_note(LATE);
            tracing::info!(
                task = task.uuid,
                "the task's end, which the database missed, is recorded now"
            );
            missed.remove(index);
        }
        missed.iter().all(|end| end.start_recorded)
    }

    /// Reports a network that the task changed and that cannot be saved (the server keeps it
    /// in memory and tries again at shutdown); returns the state the task ends in: aborted,
    /// except a request whose result is complete whatever became of the growth it caused.
    fn network_not_saved(
        &self,
        task: &Task,
        state: TaskState,
        product: &Product,
        error: std::io::Error,
        ctx: &WorkerContext,
    ) -> TaskState {
        // A finished request has its result dataset as product.
        let complete_result =
            state == TaskState::Finished && matches!(product, Product::Dataset { .. });
        let e = anyhow::Error::new(error).context(if complete_result {
            "the result is complete, but the cluster's network, which requests grow, cannot be \
             saved (the server keeps it in memory and tries again when it shuts down)"
        } else {
            "cannot save the cluster's network (the server keeps the network in memory and \
             tries again when it shuts down)"
        });
        ctx.log_error(task, &self.row, &e);
        if complete_result {
            state
        } else {
            TaskState::Aborted
        }
    }

    /// Runs one task as [`ClusterHandle::execute`] does, catching a panic (which must not
    /// leave the task active forever, and its waiters waiting). While the task cannot begin
    /// because the server has run out of file descriptors, it tries again every
    /// [`DESCRIPTOR_RETRY`] until the shortage has lasted [`DESCRIPTOR_WAIT`] (a shortage is
    /// often brief: many connections at once), or until it is stopped, which leaves it free
    /// to go on and its network unchanged.
    fn execute_patiently(
        &self,
        task: &Task,
        work: &Work,
        ctx: &WorkerContext,
    ) -> std::thread::Result<anyhow::Result<Ran>> {
        let mut warned = false;
        loop {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.execute(task, work, ctx)
            }));
            let e = match outcome {
                Ok(Ok(Ran::NotBegun(e))) if crate::error_log::out_of_descriptors(&e) => e,
                Ok(Ok(Ran::NotBegun(e))) => return Ok(Ok(Ran::NotBegun(e))),
                other => {
                    ctx.descriptor_shortage.over();
                    if warned {
                        task.show_waiting(None);
                        tracing::info!(
                            "{} ({}) could open its files",
                            task.described(&self.row.name),
                            task.uuid
                        );
                    }
                    return other;
                }
            };
            if task.cancel.load(Ordering::Relaxed) {
                // Nothing done: it can go on from its start.
                task.show_waiting(None);
                return Ok(Ok(Ran::Stopped {
                    goes_on: true,
                    began: false,
                }));
            }
            let lasted = ctx.descriptor_shortage.seen().elapsed();
            if lasted >= DESCRIPTOR_WAIT {
                task.show_waiting(None);
                let e = e.context(format!(
                    "the server has run out of file descriptors (too many open files) for {} \
                     s: raise the limit it runs under (ulimit -n, systemd's LimitNOFILE; the \
                     system's, fs.file-max, where the whole system ran out) or open fewer \
                     connections at once",
                    lasted.as_secs()
                ));
                return Ok(Ok(Ran::NotBegun(e)));
            }
            if !warned {
                warned = true;
                task.show_waiting(Some(format!(
                    "waiting since {}: the server has run out of file descriptors (too many \
                     open files), so the task cannot open its files; it tries again every \
                     {} ms until the shortage has lasted {} s",
                    hanami_store::now_timestamp(),
                    DESCRIPTOR_RETRY.as_millis(),
                    DESCRIPTOR_WAIT.as_secs()
                )));
                tracing::warn!(
                    "{} ({}) cannot open its files: the server has run out of file \
                     descriptors; it tries again until the shortage has lasted {} s ({e:#})",
                    task.described(&self.row.name),
                    task.uuid,
                    DESCRIPTOR_WAIT.as_secs()
                );
            }
            std::thread::sleep(DESCRIPTOR_RETRY);
        }
    }

    /// Runs one task (from where a shutdown stopped it, if one did).
    fn execute(&self, task: &Task, work: &Work, ctx: &WorkerContext) -> anyhow::Result<Ran> {
        let mut network = lock(&self.network);
        let cluster = network
            .as_mut()
            .context("the cluster has no network (restore a checkpoint into it first)");
        match work {
            Work::Train(bindings) => {
                let cluster = cluster?;
                let refused = cluster.growth_stats();
                // A task that a shutdown stopped goes on where it stopped.
                let first = task.progress().min(task.total);
                let mut rows = match DatasetRows::open(
                    &Interfaces::of(cluster),
                    bindings,
                    first..task.total,
                ) {
                    Ok(rows) => rows,
                    Err(e) => return Ok(Ran::NotBegun(e)),
                };
                self.going_on(task, first, ctx);
                let outcome = with_threads(cluster, &ctx.cores, |cluster| {
                    cluster.train_batch(&mut rows, &task.cancel, &mut |done| {
                        task.set_progress(first + done as u64)
                    })
                })?;
                let growth_refused =
                    self.report_refused_growth(cluster, refused, "learned", task, ctx);
                if outcome.cancelled {
                    // The network keeps what it learned.
                    return Ok(Ran::Stopped {
                        goes_on: true,
                        began: true,
                    });
                }
                let trained: Vec<&str> = bindings
                    .iter()
                    .filter(|b| b.side == Side::Output)
                    .map(|b| b.name.as_str())
                    .collect();
                let done = ("training", growth_refused);
                self.report_unreached_outputs(cluster, &trained, done, task);
                Ok(Ran::Done(Box::new(Product::Nothing)))
            }
            Work::Request(bindings, target) => {
                let cluster = cluster?;
                let refused = cluster.growth_stats();
                let result = self.request(cluster, task, bindings, target, ctx);
                let growth_refused =
                    self.report_refused_growth(cluster, refused, "answered", task, ctx);
                if matches!(result, Ok(Ran::Done(_))) {
                    let answered = [target.output.as_str()];
                    let done = ("request", growth_refused);
                    self.report_unreached_outputs(cluster, &answered, done, task);
                }
                result
            }
            Work::Save {
                owner_id,
                project_id,
            } => {
                let bytes = cluster?.save();
                let dir = ctx.paths.checkpoints();
                let path = dir.join(&task.uuid);
                let written = ctx
                    .reserve_disk(&dir, "the checkpoint", bytes.len() as u64)
                    .and_then(|_space| {
                        let written = if crate::crash_point::fails_first(DESCRIPTORS_POINT, 2) {
                            Err(std::io::Error::from_raw_os_error(libc::EMFILE))
                        } else {
                            write_durably(&path, &bytes)
                        };
                        written.context("cannot write the checkpoint file")
                    });
                if let Err(e) = written {
                    // Nothing is changed by a save that wrote nothing.
                    return Ok(Ran::NotBegun(e));
                }
                let row =
                    ResourceRow::new(&task.uuid, &task.name, owner_id, project_id, &task.uuid);
                task.set_progress(1);
                Ok(Ran::Done(Box::new(Product::Checkpoint { row, path })))
            }
            Work::Restore {
                checkpoint_uuid,
                file,
                ..
            } => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut &*file, &mut bytes).with_context(|| {
                    format!("cannot read the file of checkpoint '{checkpoint_uuid}'")
                })?;
                // Called once what a refused restore rebuilt is freed: gives it back to the
                // system, and says what became of the cluster.
                let not_restored = || {
                    crate::memory::return_freed_memory_soon();
                    format!(
                        "checkpoint '{checkpoint_uuid}' is not restored, the cluster keeps its \
                         network"
                    )
                };
                let mut restored = ctx
                    .memory
                    .restore(&bytes, network.as_ref())
                    .with_context(not_restored)?;
                restored.set_threads(1)?;
                // The network it replaces no longer counts; it does again if the new one
                // does not fit.
                if let Some(old) = network.as_mut() {
                    old.leave_pool();
                }
                if let Err(e) = ctx.memory.try_adopt(&mut restored) {
                    if let Some(old) = network.as_mut() {
                        ctx.memory.adopt(old);
                    }
                    drop(restored);
                    return Err(anyhow::Error::new(e).context(not_restored()));
                }
                *lock(&self.interfaces) = Interfaces::of(&restored);
                *network = Some(restored);
                task.set_progress(1);
                Ok(Ran::Done(Box::new(Product::Nothing)))
            }
        }
    }

    /// Notes (in memory and in the database) that a task which a shutdown stopped after
    /// `first` cycles goes on now; nothing for a task that starts from its first cycle.
    fn going_on(&self, task: &Task, first: u64, ctx: &WorkerContext) {
        if first > 0 {
            task.note_going_on();
            ctx.record(task, &self.row);
        }
    }

    /// Tells the task's note (and the server log, as a warning) when a finished task leaves
    /// outputs it trained or answered (`outputs`) out of the network's reach: they answer 0
    /// and learn nothing, which the task's state alone would not show. No failure of the
    /// server, so no error-log entry (growth is drawn at random: a healthy workflow meets
    /// this now and then). `done` is what the task did ("training", "request"), and whether
    /// a memory budget refused growth then.
    fn report_unreached_outputs(
        &self,
        cluster: &Cluster,
        outputs: &[&str],
        (done, growth_refused): (&str, bool),
        task: &Task,
    ) {
        let mut unreached = cluster.unreached_outputs();
        unreached.retain(|output| outputs.contains(&output.name));
        if let Some(why) = unreached::note(done, &unreached, growth_refused) {
            task.add_note(&why);
            tracing::warn!("{} ({}): {why}", task.described(&self.row.name), task.uuid);
        }
    }

    /// Tells the error log when the network could not grow during a task because it had
    /// reached its memory budget, or the clusters together theirs (`before`: the counts
    /// before the task). The task itself goes on; it only `did` (learned, answered) with the
    /// network it has. Whether growth was refused.
    fn report_refused_growth(
        &self,
        cluster: &Cluster,
        before: GrowthStats,
        did: &str,
        task: &Task,
        ctx: &WorkerContext,
    ) -> bool {
        let refused = RefusedGrowth::between(before, cluster.growth_stats());
        let why = ctx.refused_growth(cluster, refused, "this task", did);
        let Some(why) = why else {
            return false;
        };
        ctx.log_error(task, &self.row, &anyhow::anyhow!(why));
        true
    }

    /// Runs a request task's rows (from where a shutdown stopped it, if one did) and writes
    /// its result dataset; a shutdown's stop sets the result so far aside for the next start.
    fn request(
        &self,
        cluster: &mut Cluster,
        task: &Task,
        bindings: &[rows::Binding],
        target: &ResultTarget,
        ctx: &WorkerContext,
    ) -> anyhow::Result<Ran> {
        let interfaces = Interfaces::of(cluster);
        let first = task.progress().min(task.total);
        // Four bytes per value, and room for the header.
        let size = ((task.total - first).saturating_mul(target.columns))
            .saturating_mul(4)
            .saturating_add(64 << 10);
        let path = ctx.paths.datasets().join(&task.uuid);
        let partial = ctx.paths.partial_result(&task.uuid);
        let opened = (|| -> anyhow::Result<_> {
            let rows = DatasetRows::open(&interfaces, bindings, first..task.total)?;
            rows::check_interface(&interfaces, Side::Output, &target.output, target.columns)?;
            let space = ctx.reserve_disk(&ctx.paths.datasets(), "the result dataset", size)?;
            let writer = if first == 0 {
                DatasetWriter::create_result(&path, &target.name, target.columns)?
            } else {
                resume_result(&partial, &path, target, first)?
            };
            Ok((rows, space, writer))
        })();
        let (mut rows, mut space, mut writer) = match opened {
            Ok(opened) => opened,
            Err(e) => return Ok(Ran::NotBegun(e)),
        };
        self.going_on(task, first, ctx);
        // Once the file holds its space, the free space shows it; until then (file systems
        // without fallocate) the promise holds it until the result is written.
        if writer.preallocate(task.total)? {
            space.release(size);
        }
        let mut row = vec![0.0f32; usize::try_from(target.columns)?];
        let mut write_error = None;
        let outcome = with_threads(cluster, &ctx.cores, |cluster| {
            cluster.request_batch(
                &mut rows,
                &task.cancel,
                &mut |done| task.set_progress(first + done as u64),
                &mut |_, name, values| {
                    if name == target.output && write_error.is_none() {
                        if let [value] = values {
                            // One-hot, the row of a one-neuron output would always be 1 (the
                            // original's answer): it gets the output's value instead.
                            row[0] = *value;
                        } else {
                            one_hot(values, &mut row);
                        }
                        if let Err(e) = writer.append_row_f32(&row) {
                            write_error = Some(e);
                        }
                    }
                },
            )
        })?;
        if let Some(e) = write_error {
            return Err(e.into());
        }
        if outcome.cancelled {
            if !task.stopped_by_shutdown.load(Ordering::Relaxed) {
                // Dropped: nothing goes on with it.
                return Ok(Ran::Stopped {
                    goes_on: false,
                    began: true,
                });
            }
            let goes_on = match writer.suspend(&partial) {
                Ok(rows) if rows == task.progress() => {
                    crate::crash_point::reached("request-stop:set-aside");
                    true
                }
                Ok(rows) => {
                    // Never so: the rows written are the rows answered.
                    let e = anyhow::anyhow!(
                        "its result so far holds {rows} rows, not the {} it answered",
                        task.progress()
                    );
                    ctx.log_error(task, &self.row, &e);
                    false
                }
                Err(e) => {
                    let e = anyhow::Error::new(e).context(
                        "cannot set the result so far aside, so the task cannot go on at the \
                         next start",
                    );
                    ctx.log_error(task, &self.row, &e);
                    false
                }
            };
            return Ok(Ran::Stopped {
                goes_on,
                began: true,
            });
        }
        let written = writer.finish()?;
        let row = ResourceRow::new(
            &task.uuid,
            &target.name,
            &target.owner_id,
            &target.project_id,
            &task.uuid,
        );
        Ok(Ran::Done(Box::new(Product::Dataset {
            row,
            ranges: written.value_ranges,
            path,
        })))
    }
}

/// A dataset that `work` reads and that was deleted since it was queued (its row or its file
/// is gone; the running task reads it through its open file), if any. One the database
/// cannot be asked about counts as there.
fn deleted_dataset<'w>(work: &'w Work, ctx: &WorkerContext) -> Option<&'w str> {
    let gone = |uuid: &str, path: &Path| {
        std::fs::symlink_metadata(path).is_err()
            || matches!(
                ctx.runtime
                    .block_on(ctx.store.resource(Kind::Dataset, &Scope::All, uuid)),
                Ok(None)
            )
    };
    work.datasets()
        .find(|&(uuid, path)| gone(uuid, path))
        .map(|(uuid, _)| uuid)
}

/// Goes on with the result of a request task that a shutdown stopped after `rows` rows, set
/// aside at `partial`, to be finished at `path`.
fn resume_result(
    partial: &Path,
    path: &Path,
    target: &ResultTarget,
    rows: u64,
) -> anyhow::Result<DatasetWriter> {
    let cannot = || {
        format!(
            "cannot go on with the result so far ({}), which the server set aside when it \
             stopped the task",
            partial.display()
        )
    };
    let writer = DatasetWriter::resume(partial, path).with_context(cannot)?;
    let (written, columns) = (writer.rows_written(), writer.number_of_columns());
    if written != rows || columns != target.columns {
        return Err(anyhow::anyhow!(
            "it holds {written} rows of {columns} values, not {rows} of {}",
            target.columns
        )
        .context(cannot()));
    }
    Ok(writer)
}

/// Runs a batch with as many engine threads as the core budget grants (at least one), and
/// gives them back after, however it ends (a panic too, which the worker survives: the
/// spare core was lost for good then).
fn with_threads<R>(
    cluster: &mut Cluster,
    cores: &CoreBudget,
    f: impl FnOnce(&mut Cluster) -> Result<R, hanami_engine::EngineError>,
) -> anyhow::Result<R> {
    /// Cores claimed from a budget, given back when dropped.
    struct Claimed<'a> {
        budget: &'a CoreBudget,
        extra: usize,
    }
    impl Drop for Claimed<'_> {
        fn drop(&mut self) {
            self.budget.release(self.extra);
        }
    }
    let claimed = Claimed {
        budget: cores,
        extra: cores.claim(),
    };
    let result = cluster
        .set_threads(1 + claimed.extra)
        .map_err(anyhow::Error::from)
        .and_then(|()| f(cluster).map_err(anyhow::Error::from));
    let reset = cluster.set_threads(1);
    drop(claimed);
    reset?;
    result
}

/// The cores beyond one per running task: a task that starts while another one uses them
/// runs on its own thread only, so that busy-waiting engine threads never outnumber cores.
pub struct CoreBudget {
    spare: Mutex<usize>,
}

impl CoreBudget {
    /// A budget for a machine with `cores` cores (engine tasks use at most two threads).
    pub fn new(cores: usize) -> Self {
        Self {
            spare: Mutex::new(cores.clamp(1, 2) - 1),
        }
    }

    /// Claims the spare cores; returns how many (0 or 1).
    fn claim(&self) -> usize {
        std::mem::take(&mut *lock(&self.spare))
    }

    fn release(&self, cores: usize) {
        *lock(&self.spare) += cores;
    }
}

/// What the network file of a cluster without a network holds.
pub const NO_NETWORK: &[u8] = b"hanami-rs: this cluster has no network\n";

/// Reads a whole file that must be a regular one: a named pipe or device put in its place
/// is refused at once instead of blocking the reading thread (a cluster's worker, and with
/// it the shutdown) for ever.
pub fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = hanami_store::files::open_without_waiting(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Extension of the temporary files of [`write_durably`].
const HALF_WRITTEN: &str = "partial";

/// Whether `path` is a temporary file of [`write_durably`] or a staged network; found at
/// start (after pending networks are put in place), a crash left it.
pub fn is_half_written(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == HALF_WRITTEN)
}

/// Writes a file under a temporary name, fsyncs it and renames it into place.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // On failure the staged file is removed when dropped.
    Staged::write(path, bytes)?.put_in_place()
}

/// The bytes of a cluster's network file.
fn network_bytes(network: Option<&Cluster>) -> std::borrow::Cow<'static, [u8]> {
    match network {
        Some(cluster) => cluster.save().into(),
        None => NO_NETWORK.into(),
    }
}

/// A file written and synced under a temporary name (ending in `.partial`), not yet renamed
/// into place; dropped before [`Staged::put_in_place`] succeeded, it is removed (unless
/// [`Staged::keep`] says otherwise).
pub struct Staged {
    temp: PathBuf,
    path: PathBuf,
    /// Renamed, or to be left where it is.
    settled: bool,
}

impl Staged {
    /// Writes and syncs `bytes` beside `path`.
    fn write(path: &Path, bytes: &[u8]) -> std::io::Result<Self> {
        Self::write_as(path, staged_path(path), bytes)
    }

    /// Writes and syncs `bytes` to `temp`, to be renamed to `path`.
    fn write_as(path: &Path, temp: PathBuf, bytes: &[u8]) -> std::io::Result<Self> {
        use std::io::Write;
        let staged = Staged {
            temp,
            path: path.to_owned(),
            settled: false,
        };
        // On failure the drop removes the half-written file, which would otherwise hold on to
        // the space of a full disk until the restart.
        std::fs::File::create(&staged.temp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })?;
        Ok(staged)
    }

    /// The staged file `temp` of `path` that an earlier run wrote and synced (found at
    /// start-up).
    pub fn found(path: &Path, temp: &Path) -> Self {
        Staged {
            temp: temp.to_owned(),
            path: path.to_owned(),
            settled: false,
        }
    }

    /// Leaves the staged file where it is when dropped (a start-up puts it in place).
    pub fn keep(mut self) {
        self.settled = true;
    }

    /// Renames the file into place and syncs its folder.
    pub fn put_in_place(&mut self) -> std::io::Result<()> {
        match self.rename_into_place("folder-sync")? {
            InPlace::Synced => Ok(()),
            InPlace::FolderNotSynced(e) => Err(e),
        }
    }

    /// Renames the file into place (an error: it is not), then syncs its folder; `sync_point`
    /// names the sync for `HANAMI_FAIL_AT` (debug builds), which makes it fail.
    pub fn rename_into_place(&mut self, sync_point: &str) -> std::io::Result<InPlace> {
        std::fs::rename(&self.temp, &self.path)?;
        self.settled = true;
        let synced = match self.path.parent() {
            _ if crate::crash_point::fails(sync_point) => {
                Err(std::io::Error::other("failure injected (HANAMI_FAIL_AT)"))
            }
            Some(dir) => std::fs::File::open(dir).and_then(|dir| dir.sync_all()),
            None => Ok(()),
        };
        Ok(match synced {
            Ok(()) => InPlace::Synced,
            Err(e) => InPlace::FolderNotSynced(e),
        })
    }
}

/// A file renamed into place, and whether the rename is durable.
pub enum InPlace {
    /// Its folder is synced: the rename survives a crash.
    Synced,
    /// Its folder could not be synced (the rename is done, but a crash could undo it).
    FolderNotSynced(std::io::Error),
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.settled {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Where [`Staged::write`] writes the file for `path`.
fn staged_path(path: &Path) -> PathBuf {
    path.with_extension(HALF_WRITTEN)
}

/// Where a task stages the network file `path` of its cluster: named after the task, so
/// that a start puts in place only the network of a task whose end it finds recorded.
pub fn staged_path_of_task(path: &Path, task_uuid: &str) -> PathBuf {
    path.with_extension(format!("{task_uuid}.{HALF_WRITTEN}"))
}

/// A cluster's network staged for its file, holding the cluster's file lock (no other save
/// or removal of the file comes in between).
struct StagedNetwork<'a> {
    staged: Staged,
    /// Whether the network had changes (of direct IO) that no save had kept yet: dropped
    /// unplaced, it must be saved again.
    carries_unsaved: bool,
    _file: MutexGuard<'a, ()>,
}

impl StagedNetwork<'_> {
    /// Renames the network into place; on failure the staged file is removed.
    fn rename_into_place(mut self) -> std::io::Result<InPlace> {
        self.staged.rename_into_place("task-end:folder-sync")
    }
}

/// What a task that ran to its end produced besides its network; registered with its end.
enum Product {
    /// Nothing (training, a restore).
    Nothing,
    /// A checkpoint, written to `path`.
    Checkpoint { row: ResourceRow, path: PathBuf },
    /// A request's result dataset, written to `path`.
    Dataset {
        row: ResourceRow,
        ranges: ValueRanges,
        path: PathBuf,
    },
}

impl Product {
    /// The product as the database records it.
    fn as_stored(&self) -> TaskProduct<'_> {
        match self {
            Product::Nothing => TaskProduct::Nothing,
            Product::Checkpoint { row, .. } => TaskProduct::Checkpoint(row),
            Product::Dataset { row, ranges, .. } => TaskProduct::Dataset(row, ranges),
        }
    }

    /// Removes the product's file (it could not be registered).
    fn remove_file(&self) {
        if let Product::Checkpoint { path, .. } | Product::Dataset { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Product::Nothing => "the task's end",
            Product::Checkpoint { .. } => "the checkpoint",
            Product::Dataset { .. } => "the result dataset",
        })
    }
}

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
    pub stopping: Arc<AtomicBool>,
    /// Since when tasks find the server out of file descriptors.
    pub descriptor_shortage: DescriptorShortage,
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
    fn seen(&self) -> std::time::Instant {
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
    fn over(&self) {
        lock(&self.0).take();
    }
}

impl WorkerContext {
    /// Writes the task's state to the database (from a worker thread); whether it did. A
    /// failure is logged: the task itself is not affected.
    fn record(&self, task: &Task, cluster: &ResourceRow) -> bool {
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

/// Whether the database notes unsaved direct-IO changes of a network, and how many
/// direct-IO steps are under way.
#[derive(Debug, Default)]
struct UnsavedNote {
    noted: bool,
    steps: usize,
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

/// Starts the workers of the clusters whose tasks a start queued again, `clusters` in the
/// order of their first such task: each asks for a task slot in that order, before the next
/// one does, so the clusters of each user take their turns as they did before the restart
/// (a worker's later tasks then wait for their owner's next turn, as always).
pub fn start_resumed_workers(clusters: Vec<Arc<ClusterHandle>>, ctx: &WorkerContext) {
    for cluster in clusters {
        if !cluster.claim_worker(ctx) {
            continue;
        }
        cluster.run_next_task_when_free(ctx);
    }
}

/// How a task that ran is to be recorded.
enum Ending {
    /// It ended in this state, with this product.
    End(TaskState, Product),
    /// A task that the shutdown stopped part of the way: queued again with this work
    /// (as [`Work::stored`] writes it), to go on where it stopped at the next start.
    Requeue(String),
}

/// How a task's work came to its end.
enum Ran {
    /// It did all it was to do, and made this (boxed: the other variant is small).
    Done(Box<Product>),
    /// It stopped before (its cancel flag); `goes_on` if it kept what it did so far to go
    /// on from (a train task's network; a request task's result so far, set aside), and
    /// `began` unless it stopped before it changed anything.
    Stopped { goes_on: bool, began: bool },
    /// It failed before it changed anything (its datasets or its result could not be
    /// opened, a save's checkpoint could not be written): the network is as it was.
    NotBegun(anyhow::Error),
}

/// How [`ClusterHandle::record_end`] recorded a task.
enum Recorded {
    /// It ended in this state.
    Ended(TaskState),
    /// It is queued again, for the next start.
    Requeued,
}

/// Why a task that the shutdown stopped while it ran was aborted.
fn shut_down_before_the_end(task: &Task) -> anyhow::Error {
    anyhow::anyhow!(
        "the server shut down before the task ended: it stopped after {} of {} cycles",
        task.info().current_cycle,
        task.total
    )
}

/// The clusters of the server.
#[derive(Default)]
pub struct Clusters {
    map: Mutex<HashMap<String, Arc<ClusterHandle>>>,
}

impl Clusters {
    /// Registers a cluster.
    pub fn insert(&self, cluster: Arc<ClusterHandle>) {
        lock(&self.map).insert(cluster.row.uuid.clone(), cluster);
    }

    /// A cluster visible in the scope.
    pub fn get(&self, scope: &Scope, uuid: &str) -> Option<Arc<ClusterHandle>> {
        lock(&self.map)
            .get(uuid)
            .filter(|c| scope.contains(&c.row.project_id, &c.row.owner_id))
            .cloned()
    }

    /// Removes a cluster (and stops its work).
    pub fn remove(&self, uuid: &str) -> Option<Arc<ClusterHandle>> {
        let cluster = lock(&self.map).remove(uuid)?;
        cluster.delete();
        Some(cluster)
    }

    /// Every cluster.
    pub fn all(&self) -> Vec<Arc<ClusterHandle>> {
        lock(&self.map).values().cloned().collect()
    }

    /// Tells running tasks to stop at their next row and keeps queued ones from starting, as
    /// soon as the server begins to stop (before the API and the websocket sessions have
    /// closed, which may take seconds). [`Clusters::shut_down`] then waits for the workers.
    /// Returns the tasks still running, with their clusters.
    pub fn stop_tasks(&self, ctx: &WorkerContext) -> Vec<(Arc<ClusterHandle>, Arc<Task>)> {
        ctx.stopping.store(true, Ordering::Relaxed);
        self.all()
            .into_iter()
            .filter_map(|cluster| Some((cluster.clone(), cluster.stop_work()?)))
            .collect()
    }

    /// Stops all work for a shutdown and saves every network: queued tasks stay recorded as
    /// queued (the next start queues them again), a running task stops at its next row (its
    /// worker saves the network and records it: a train task as queued again, to go on where
    /// it stopped), and networks that direct IO changed are saved. Every other running task
    /// stopped this way gets an error-log entry. Waits at most `patience` for the workers.
    /// Returns the names of the clusters whose networks could not be saved (their changes
    /// since the last save are lost with the process).
    pub async fn shut_down(
        &self,
        ctx: &WorkerContext,
        patience: std::time::Duration,
    ) -> Vec<String> {
        // A running task that stops in time is explained by its worker.
        let stopped = self.stop_tasks(ctx);
        let clusters = self.all();
        let deadline = tokio::time::Instant::now() + patience;
        while clusters.iter().any(|c| c.is_working()) {
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(
                    "tasks did not stop within {patience:?}; their networks may be older"
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let ctx = ctx.clone();
        let work = tokio::task::spawn_blocking(move || {
            for (cluster, task) in &stopped {
                // One that ended (finished with its last row, or aborted and explained by
                // its worker), or was queued again by its worker, is done.
                if task.state() != TaskState::Active {
                    continue;
                }
                // Not recorded: its record keeps the progress it started with, which the
                // next start takes for what its network keeps.
                ctx.log_error(task, &cluster.row, &shut_down_before_the_end(task));
            }
            let mut unsaved = Vec::new();
            for cluster in &clusters {
                // A network that keeps what a task did whose end the database misses stays
                // as last saved: the next start finds the task queued or active, and would
                // run a queued one again on top of what it did.
                if !cluster.record_missed_ends(&ctx) {
                    tracing::error!(
                        cluster = cluster.row.uuid,
                        "the ends of some of the cluster's tasks cannot be recorded, so its \
                         network is left as last saved (the next start runs those that are \
                         queued in the database again, and reports those that are active as \
                         aborted)"
                    );
                    unsaved.push(format!(
                        "'{}' (left as last saved: the ends of some of its tasks cannot be \
                         recorded, and those that the database has queued run again at the \
                         next start)",
                        cluster.row.name
                    ));
                    continue;
                }
                match cluster.save_network_if_changed() {
                    Ok(()) => ctx.forget_unsaved_note(cluster),
                    Err(e) => {
                        tracing::error!(
                            cluster = cluster.row.uuid,
                            "cannot save the cluster's network: {e}"
                        );
                        unsaved.push(format!("'{}' ({e})", cluster.row.name));
                    }
                }
            }
            unsaved
        });
        work.await.unwrap_or_else(|e| {
            tracing::error!("saving the clusters failed: {e}");
            vec!["all (the saving failed)".to_owned()]
        })
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

    #[test]
    fn the_spare_core_goes_to_one_task_at_a_time() {
        let budget = CoreBudget::new(16);
        assert_eq!(budget.claim(), 1);
        assert_eq!(budget.claim(), 0);
        budget.release(1);
        assert_eq!(budget.claim(), 1);
        assert_eq!(CoreBudget::new(1).claim(), 0);
    }

    /// A batch that panics (the worker survives it) gives its spare core back.
    #[test]
    fn a_panicking_batch_gives_its_core_back() {
        let budget = CoreBudget::new(2);
        let mut cluster = Cluster::from_template_text(
            "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\nhexagons:\n    1,1,1\n    \
             2,1,1\ninputs:\n    x:\n        \
             target: 1,1,1\n        number_of_inputs: 1\noutputs:\n    y:\n        \
             target: 2,1,1\n        number_of_outputs: 1\n",
            1,
        )
        .unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_threads(&mut cluster, &budget, |_| -> Result<(), _> {
                panic!("an engine bug")
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(budget.claim(), 1);
    }

    /// A named pipe where a checkpoint or network belongs is refused at once; opening it
    /// for reading would wait for a writer for ever.
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"bytes").unwrap();
        assert_eq!(read_regular_file(&file).unwrap(), b"bytes");
        let pipe = dir.path().join("pipe");
        hanami_testkit::named_pipe(&pipe);
        let refused = read_regular_file(&pipe).unwrap_err();
        assert_eq!(refused.to_string(), "not a regular file");
        assert!(read_regular_file(dir.path()).is_err());
    }

    /// A save that comes after the deletion (a task's end-of-run save, say, racing with the
    /// delete request) writes nothing: the deleted cluster's file stays removed.
    #[test]
    fn a_deletion_during_the_stop_is_not_taken_for_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let row = ResourceRow::new("c", "cluster", "owner", "project", "network");
        let cluster = ClusterHandle::new(row, None, dir.path().join("network"));
        let work = Work::Save {
            owner_id: "owner".into(),
            project_id: "project".into(),
        };
        let task = Arc::new(Task::new("t".into(), "task".into(), 1, work));
        {
            let mut control = lock(&cluster.control);
            control.tasks.push(task.clone());
            control.active = Some(task.clone());
        }
        assert!(task.start().is_some());
        // The shutdown marks the running task; its owner then deletes it: the deletion
        // decides how it ends (aborted, not queued again for the next start).
        assert!(cluster.stop_work().is_some());
        assert!(task.stopped_by_shutdown.load(Ordering::Relaxed));
        assert!(matches!(
            cluster.delete_task("t"),
            Some(TaskRemoval::Stopping(_))
        ));
        assert!(!task.stopped_by_shutdown.load(Ordering::Relaxed));
        assert!(task.cancel.load(Ordering::Relaxed));
        // Once the stop has queued it again (for the next start: it is not in this run's
        // queue), a deletion withdraws it as a queued task without a place (a second one
        // finds it withdrawn), and forgets it once its row is gone.
        task.requeue();
        let Some(TaskRemoval::Withdrawn {
            task: withdrawn,
            place: None,
        }) = cluster.delete_task("t")
        else {
            panic!("not withdrawn");
        };
        assert!(matches!(
            cluster.delete_task("t"),
            Some(TaskRemoval::BeingDeleted)
        ));
        assert_eq!(cluster.tasks().len(), 1);
        cluster.forget_withdrawn(&withdrawn);
        assert_eq!(task.state(), TaskState::Aborted);
        assert!(cluster.tasks().is_empty());
    }

    #[test]
    fn a_deleted_cluster_saves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("network");
        let row = ResourceRow::new("c", "cluster", "owner", "project", "network");
        let cluster = ClusterHandle::new(row, None, file.clone());
        cluster.save_network().unwrap();
        assert!(file.exists());
        cluster.delete();
        cluster.remove_network_file().unwrap();
        cluster.save_network().unwrap();
        assert!(!file.exists());
    }
}
