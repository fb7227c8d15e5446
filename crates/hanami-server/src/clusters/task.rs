//! One task of a cluster: what it does, and its progress as clients see it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hanami_store::now_timestamp;
use hanami_store::resources::Kind;
use hanami_store::tasks::TaskRow;
use hanami_types::tasks::Task as TaskInfo;
pub use hanami_types::tasks::TaskState;

use super::rows::Binding;

/// Where a request task writes its results.
pub struct ResultTarget {
    /// Output interface whose values are recorded.
    pub output: String,
    /// Values per row (the output's size).
    pub columns: u64,
    /// Name of the result dataset.
    pub name: String,
    /// Owner of the result dataset (the task's creator).
    pub owner_id: String,
    /// Project of the result dataset.
    pub project_id: String,
}

/// What a task does.
pub enum Work {
    /// Train on the rows of the bound datasets.
    Train(Vec<Binding>),
    /// Run requests on the rows of the bound datasets and record one output.
    Request(Vec<Binding>, ResultTarget),
    /// Write a checkpoint of the cluster; its uuid is the task's.
    Save {
        /// Checkpoint owner.
        owner_id: String,
        /// Checkpoint project.
        project_id: String,
    },
    /// Replace the cluster's network by a checkpoint's, read when the task starts.
    Restore {
        /// The checkpoint (for messages).
        checkpoint_uuid: String,
        /// Its file, opened when the task was queued (so it outlives the checkpoint's
        /// deletion), at its start.
        file: std::fs::File,
    },
}

/// What kind of work a task does, for messages and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkKind {
    /// [`Work::Train`].
    Train,
    /// [`Work::Request`].
    Request,
    /// [`Work::Save`].
    Save,
    /// [`Work::Restore`].
    Restore,
}

impl std::fmt::Display for WorkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkKind::Train => "train",
            WorkKind::Request => "request",
            WorkKind::Save => "save",
            WorkKind::Restore => "restore",
        })
    }
}

impl Work {
    /// What kind of work it is.
    pub fn kind(&self) -> WorkKind {
        match self {
            Work::Train(_) => WorkKind::Train,
            Work::Request(..) => WorkKind::Request,
            Work::Save { .. } => WorkKind::Save,
            Work::Restore { .. } => WorkKind::Restore,
        }
    }

    /// Whether the work changes the network (requests do too: they may grow it).
    pub fn changes_network(&self) -> bool {
        !matches!(self, Work::Save { .. })
    }

    /// The resource the work creates at its end, if any.
    fn promise(&self) -> Option<Promise> {
        let (kind, owner_id, project_id) = match self {
            Work::Save {
                owner_id,
                project_id,
            } => (Kind::Checkpoint, owner_id, project_id),
            Work::Request(_, target) => (Kind::Dataset, &target.owner_id, &target.project_id),
            Work::Train(_) | Work::Restore { .. } => return None,
        };
        Some(Promise {
            kind,
            owner_id: owner_id.clone(),
            project_id: project_id.clone(),
        })
    }
}

/// A resource that a task creates when it ends (a checkpoint, whose uuid is the task's, or a
/// result dataset), and whose it will be. While the task has not ended, its owner and
/// project are not deleted: a user or project created later under the same id would get it.
pub struct Promise {
    /// [`Kind::Checkpoint`] or [`Kind::Dataset`].
    pub kind: Kind,
    /// The resource's owner (the task's creator).
    pub owner_id: String,
    /// The resource's project.
    pub project_id: String,
}

struct Timeline {
    state: TaskState,
    start: Option<String>,
    end: Option<String>,
    /// See [`Task::add_note`].
    note: Option<String>,
}

/// A task and its progress. Shared between the API and the cluster's worker.
pub struct Task {
    /// Task uuid.
    pub uuid: String,
    /// Task name.
    pub name: String,
    /// Rows to process (1 for checkpoint tasks).
    pub total: u64,
    /// What the task does; `None` for tasks of an earlier run of the server.
    pub kind: Option<WorkKind>,
    /// What the task creates at its end; `None` for tasks that create nothing and for
    /// tasks of an earlier run of the server (they have ended).
    pub promise: Option<Promise>,
    queued_at: String,
    current: AtomicU64,
    timeline: Mutex<Timeline>,
    work: Mutex<Option<Work>>,
    /// Set to stop the task at the next row boundary.
    pub cancel: AtomicBool,
    /// Set (before `cancel`, under the cluster's control lock) when the server's shutdown
    /// stopped the running task, not its deletion.
    pub stopped_by_shutdown: AtomicBool,
    done: tokio::sync::watch::Sender<bool>,
}

impl Task {
    /// A new queued task.
    pub fn new(uuid: String, name: String, total: u64, work: Work) -> Self {
        Self {
            uuid,
            name,
            total,
            kind: Some(work.kind()),
            promise: work.promise(),
            queued_at: now_timestamp(),
            current: AtomicU64::new(0),
            timeline: Mutex::new(Timeline {
                state: TaskState::Queued,
                start: None,
                end: None,
                note: None,
            }),
            work: Mutex::new(Some(work)),
            cancel: AtomicBool::new(false),
            stopped_by_shutdown: AtomicBool::new(false),
            done: tokio::sync::watch::channel(false).0,
        }
    }

    fn timeline(&self) -> std::sync::MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> TaskState {
        self.timeline().state
    }

    /// A task recorded by an earlier run of the server; it has ended (start-up aborts the ones
    /// that had not), so it has no work.
    pub fn recorded(row: TaskRow) -> Self {
        let state = TaskState::parse(&row.state).unwrap_or(TaskState::Aborted);
        let (done, _) = tokio::sync::watch::channel(state.ended());
        Self {
            uuid: row.uuid,
            name: row.name,
            total: row.total,
            // Only the work tells; an ended task has none.
            kind: None,
            promise: None,
            queued_at: row.queued_at,
            current: AtomicU64::new(row.current),
            timeline: Mutex::new(Timeline {
                state,
                start: row.started_at,
                end: row.ended_at,
                note: row.note,
            }),
            work: Mutex::new(None),
            cancel: AtomicBool::new(false),
            stopped_by_shutdown: AtomicBool::new(false),
            done,
        }
    }

    /// The task as the database records it.
    pub fn record(&self, cluster_uuid: &str) -> TaskRow {
        let timeline = self.timeline();
        TaskRow {
            uuid: self.uuid.clone(),
            cluster_uuid: cluster_uuid.to_owned(),
            name: self.name.clone(),
            total: self.total,
            current: self.current.load(Ordering::Relaxed),
            state: timeline.state.as_str().to_owned(),
            queued_at: self.queued_at.clone(),
            started_at: timeline.start.clone(),
            ended_at: timeline.end.clone(),
            note: timeline.note.clone(),
        }
    }

    /// The task as the database records it once it has ended in `state` at `ended_at`
    /// (recorded before [`Task::end_at`] tells anyone).
    pub fn record_as_ended(&self, cluster_uuid: &str, state: TaskState, ended_at: &str) -> TaskRow {
        TaskRow {
            state: state.as_str().to_owned(),
            ended_at: Some(ended_at.to_owned()),
            ..self.record(cluster_uuid)
        }
    }

    /// Adds to what the task's owner is told about its end (`GET task` shows it; the error
    /// log, which only admins read, has the same text): why it was aborted, or what it could
    /// not do.
    pub fn add_note(&self, text: &str) {
        let mut timeline = self.timeline();
        timeline.note = Some(match timeline.note.take() {
            Some(earlier) => format!("{earlier}; {text}"),
            None => text.to_owned(),
        });
    }

    /// The task in words, for logs: `train task 'name' of cluster 'cluster'`.
    pub fn described(&self, cluster_name: &str) -> String {
        let kind = self.kind.map_or(String::new(), |kind| format!("{kind} "));
        format!("{kind}task '{}' of cluster '{cluster_name}'", self.name)
    }

    /// Marks the task active and hands its work to the worker (once).
    pub fn start(&self) -> Option<Work> {
        let mut timeline = self.timeline();
        timeline.state = TaskState::Active;
        timeline.start = Some(now_timestamp());
        self.work.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Records progress.
    pub fn set_progress(&self, rows: u64) {
        self.current.store(rows, Ordering::Relaxed);
    }

    /// Ends the task now and wakes those waiting for the end.
    pub fn end(&self, state: TaskState) {
        self.end_at(state, now_timestamp());
    }

    /// Ends the task at `ended_at` and wakes those waiting for the end. Work it never
    /// started is dropped (a restore's open checkpoint file with it).
    pub fn end_at(&self, state: TaskState, ended_at: String) {
        {
            let mut timeline = self.timeline();
            timeline.state = state;
            timeline.end = Some(ended_at);
        }
        drop(self.work.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.done.send_replace(true);
    }

    /// Waits until the task has ended.
    pub async fn ended(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// The task as `GET task` shows it.
    pub fn info(&self) -> TaskInfo {
        let timeline = self.timeline();
        let stamp = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
        TaskInfo {
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            current_cycle: self.current.load(Ordering::Relaxed),
            total_number_of_cycles: self.total,
            state: timeline.state,
            queue_timestamp: self.queued_at.clone(),
            start_timestamp: stamp(&timeline.start),
            end_timestamp: stamp(&timeline.end),
            note: timeline.note.clone(),
        }
    }

    /// The task as a row of `GET task/all`: uuid, state, percentage, queued, start, end.
    pub fn row(&self) -> [String; 6] {
        let info = self.info();
        let fraction = info.current_cycle as f32 / info.total_number_of_cycles.max(1) as f32;
        [
            info.uuid,
            info.state.to_string(),
            format!("{fraction:.6}"),
            info.queue_timestamp,
            info.start_timestamp,
            info.end_timestamp,
        ]
    }
}
