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
//!
//! This module holds the cluster's handle ([`ClusterHandle`]: its modes, its queue, its
//! direct-IO sessions, its network file) and the server's [`Clusters`]; the worker that
//! runs the queued tasks is in `execution`, what the workers share in `context`, the
//! engine threads' core budget in `cores`, and durable and staged file writes in `files`.

mod context;
mod cores;
mod execution;
mod files;
pub mod rows;
pub mod task;
pub mod turns;
mod unreached;

pub use context::{RefusedGrowth, WorkerContext};
pub use cores::CoreBudget;
pub use execution::start_resumed_workers;
pub use files::{
    InPlace, NO_NETWORK, Staged, is_half_written, read_regular_file, staged_path_of_task,
    write_durably,
};
pub(crate) use unreached::note as unreached_note;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hanami_engine::Cluster;
use hanami_store::resources::ResourceRow;
use hanami_store::{Store, now_timestamp};
use hanami_types::scope::Scope;

use crate::slots::{Slot, Slots};
use crate::sync::lock;
use execution::shut_down_before_the_end;
use files::network_bytes;
use task::{Task, TaskState, WorkKind};

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

/// Whether the database notes unsaved changes of a network (of direct IO, or of a task
/// whose network could not be saved), and how many direct-IO steps are under way.
#[derive(Debug, Default)]
struct UnsavedNote {
    noted: bool,
    steps: usize,
    /// When the database last refused the note, and the time the unsaved changes began
    /// that the note was to give: it is tried again [`NOTE_RETRY`] later at the earliest,
    /// not at every direct-IO step (a full disk would be asked, and logged, thousands of
    /// times a second), with that time.
    refused: Option<(std::time::Instant, String)>,
}

/// How long after the database refused a note of unsaved changes it is tried again.
const NOTE_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

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

/// The `HANAMI_FAIL_AT` point (debug builds) at which the first two files that tasks open
/// (their datasets, a save's checkpoint) fail as if the server had run out of file
/// descriptors.
const DESCRIPTORS_POINT: &str = "task:descriptors";

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
        let slot = idle
            .then(|| ctx.slots.try_claim(&self.row.owner_id))
            .flatten();
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
        self.note_unsaved(&mut note, store, &now_timestamp()).await;
    }

    /// Notes in the database that the network in memory keeps training since `since` that
    /// no save has kept (a task whose network could not be saved), unless such a note is
    /// there already: a crash, or a stop whose save fails too, is reported at the next start.
    pub async fn note_unsaved_training(&self, store: &Store, since: &str) {
        let mut note = self.unsaved_note.lock().await;
        self.note_unsaved(&mut note, store, since).await;
    }

    /// Writes the database's note of unsaved changes since `since`, with the saved network
    /// they came after, unless `note` says it is there.
    async fn note_unsaved(&self, note: &mut UnsavedNote, store: &Store, since: &str) {
        if note.noted
            || note
                .refused
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < NOTE_RETRY)
        {
            return;
        }
        // Since the changes that an earlier try could not note, if any.
        let since = note
            .refused
            .take()
            .map_or_else(|| since.to_owned(), |(_, earlier)| earlier);
        let (uuid, base) = (&self.row.uuid, self.saved_network());
        // Not noted where the database refused (a full disk, say): a later step or failed
        // save tries again.
        match store
            .note_unsaved_network(uuid, &since, base.as_deref())
            .await
        {
            Ok(()) => note.noted = true,
            Err(e) => {
                note.refused = Some((std::time::Instant::now(), since));
                tracing::error!(
                    cluster = uuid,
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
        if note.steps > 0 || self.unsaved.load(Ordering::Relaxed) {
            return;
        }
        // Saved: changes the database refused to note are no longer unsaved either.
        note.refused = None;
        if !note.noted {
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
        hanami_store::files::remove_if_present(&self.network_file)
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
    use task::Work;

    /// A running task that a shutdown stopped and its owner then deleted ends as the
    /// deletion decides (aborted), not queued again for the next start; once the stop has
    /// queued it again, a deletion withdraws it.
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

    /// A save that comes after the deletion (a task's end-of-run save, say, racing with the
    /// delete request) writes nothing: the deleted cluster's file stays removed.
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
