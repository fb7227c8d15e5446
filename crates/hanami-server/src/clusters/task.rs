//! One task of a cluster: what it does, and its progress as clients see it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use hanami_store::dataset::{Checksum, ColumnRange};
use hanami_store::now_timestamp;
use hanami_store::resources::Kind;
use hanami_store::tasks::TaskRow;
use hanami_types::tasks::Task as TaskInfo;
pub use hanami_types::tasks::TaskState;
use serde::{Deserialize, Serialize};

use super::rows::{Binding, Side};
use crate::paths::DataDir;

/// Where a request task writes its results.
#[derive(Clone, Serialize, Deserialize)]
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
    /// The checksum of the result so far that a shutdown set aside, which the task goes on
    /// with at the next start (`None` until then, and in work stored by versions before
    /// checksums).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub so_far: Option<Checksum>,
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
        /// The name of its file in the checkpoints' folder.
        file_name: String,
        /// That file, opened when the task was queued (so it outlives the checkpoint's
        /// deletion), at its start.
        file: std::fs::File,
    },
}

/// How the note of a task that a shutdown stopped, to go on at the next start, begins.
const STOPPED_AFTER: &str = "a shutdown of the server stopped it after ";

/// How that note ends while the task waits to go on.
const TO_GO_ON: &str = ", to go on from there at the next start";

/// How that note ends once the task went on (after the cycles it says).
const WENT_ON: &str = ", and it went on from there at the next start";

/// How that note ends when the task ended at the next start without going on.
const DID_NOT_GO_ON: &str = ", and it could not go on from there at the next start";

/// `note` with the part that says where a shutdown stopped the task, to go on at the next
/// start, told with `ending` (after the cycles it says) instead.
fn note_stop_told(note: &str, ending: &str) -> String {
    let told = |part: &str| {
        let rest = part
            .strip_prefix(STOPPED_AFTER)
            .filter(|_| part.ends_with(TO_GO_ON))?;
        let cycles = rest.find(" cycles, ")? + " cycles".len();
        Some(format!("{STOPPED_AFTER}{}{ending}", &rest[..cycles]))
    };
    note.split("; ")
        .map(|part| told(part).unwrap_or_else(|| part.to_owned()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// [`Work`] as the database keeps it while its task is queued (JSON), so that a restart
/// queues the task again. Files are named within their folders of the data directory (which
/// may have been moved meanwhile).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredWork {
    Train {
        bindings: Vec<StoredBinding>,
    },
    Request {
        bindings: Vec<StoredBinding>,
        result: ResultTarget,
    },
    Save {
        owner_id: String,
        project_id: String,
    },
    Restore {
        checkpoint_uuid: String,
        file_name: String,
    },
}

/// A [`Binding`] as [`StoredWork`] keeps it.
#[derive(Serialize, Deserialize)]
struct StoredBinding {
    name: String,
    side: Side,
    dataset_uuid: String,
    file_name: String,
    columns: ColumnRange,
    /// Absent for datasets without one, and in work stored by versions before checksums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<Checksum>,
}

/// The last part of `path`, the name of a file within its folder.
fn file_name_of(path: &std::path::Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `folder`/`name`, refusing a name that is not a plain file name (one from a database that
/// another program changed, say).
fn file_in(folder: std::path::PathBuf, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let plain = std::path::Path::new(name)
        .file_name()
        .is_some_and(|plain| plain == name);
    anyhow::ensure!(plain, "'{name}' is not a file name");
    Ok(folder.join(name))
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
    /// The work as the database keeps it while its task is queued.
    pub fn stored(&self) -> String {
        self.stored_going_on(None)
    }

    /// The work as the database keeps it for a task that a shutdown stopped, to go on at the
    /// next start: for a request task, with `set_aside`, the checksum of the result so far
    /// that the stop set aside (`None`: the one it went on with, if any, is unchanged).
    pub fn stored_going_on(&self, set_aside: Option<Checksum>) -> String {
        let bindings = |bindings: &[Binding]| {
            bindings
                .iter()
                .map(|binding| StoredBinding {
                    name: binding.name.clone(),
                    side: binding.side,
                    dataset_uuid: binding.dataset_uuid.clone(),
                    file_name: file_name_of(&binding.path),
                    columns: binding.columns,
                    checksum: binding.checksum,
                })
                .collect()
        };
        let stored = match self {
            Work::Train(list) => StoredWork::Train {
                bindings: bindings(list),
            },
            Work::Request(list, target) => StoredWork::Request {
                bindings: bindings(list),
                result: ResultTarget {
                    so_far: set_aside.or(target.so_far),
                    ..target.clone()
                },
            },
            Work::Save {
                owner_id,
                project_id,
            } => StoredWork::Save {
                owner_id: owner_id.clone(),
                project_id: project_id.clone(),
            },
            Work::Restore {
                checkpoint_uuid,
                file_name,
                ..
            } => StoredWork::Restore {
                checkpoint_uuid: checkpoint_uuid.clone(),
                file_name: file_name.clone(),
            },
        };
        serde_json::to_string(&stored).expect("plain strings and numbers serialize")
    }

    /// The work of a queued task as [`Work::stored`] wrote it, with its files in `paths`; a
    /// restore opens its checkpoint's file now. An error says why the task cannot be queued
    /// again.
    pub fn from_stored(text: &str, paths: &DataDir) -> anyhow::Result<Work> {
        let stored: StoredWork = serde_json::from_str(text)
            .context("what the task was to do is recorded in a form this version cannot read")?;
        let bindings = |list: Vec<StoredBinding>| -> anyhow::Result<Vec<Binding>> {
            list.into_iter()
                .map(|stored| {
                    Ok(Binding {
                        path: file_in(paths.datasets(), &stored.file_name)?,
                        name: stored.name,
                        side: stored.side,
                        dataset_uuid: stored.dataset_uuid,
                        columns: stored.columns,
                        checksum: stored.checksum,
                    })
                })
                .collect()
        };
        Ok(match stored {
            StoredWork::Train { bindings: list } => Work::Train(bindings(list)?),
            StoredWork::Request {
                bindings: list,
                result,
            } => Work::Request(bindings(list)?, result),
            StoredWork::Save {
                owner_id,
                project_id,
            } => Work::Save {
                owner_id,
                project_id,
            },
            StoredWork::Restore {
                checkpoint_uuid,
                file_name,
            } => {
                let path = file_in(paths.checkpoints(), &file_name)?;
                // Without waiting: a named pipe in its place must not hold up the start.
                let file = match hanami_store::files::open_without_waiting(&path) {
                    Ok(file) if file.metadata()?.is_file() => file,
                    Ok(_) => anyhow::bail!(
                        "the file of checkpoint '{checkpoint_uuid}' is not a regular file any more"
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                        "checkpoint '{checkpoint_uuid}' was deleted after the restore was \
                         queued (a queued restore reads a deleted checkpoint only until the \
                         server stops)"
                    ),
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context(format!(
                            "cannot open the file of checkpoint '{checkpoint_uuid}'"
                        )));
                    }
                };
                Work::Restore {
                    checkpoint_uuid,
                    file_name,
                    file,
                }
            }
        })
    }

    /// What kind of work it is.
    pub fn kind(&self) -> WorkKind {
        match self {
            Work::Train(_) => WorkKind::Train,
            Work::Request(..) => WorkKind::Request,
            Work::Save { .. } => WorkKind::Save,
            Work::Restore { .. } => WorkKind::Restore,
        }
    }

    /// The datasets the work reads, as uuid and file (once per binding).
    pub fn datasets(&self) -> impl Iterator<Item = (&str, &std::path::Path)> {
        let bindings: &[Binding] = match self {
            Work::Train(bindings) | Work::Request(bindings, _) => bindings,
            Work::Save { .. } | Work::Restore { .. } => &[],
        };
        bindings
            .iter()
            .map(|binding| (binding.dataset_uuid.as_str(), binding.path.as_path()))
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
    /// When this run of the task began (a task that goes on after a stop runs again).
    run_start: Option<String>,
    end: Option<String>,
    /// See [`Task::add_note`].
    note: Option<String>,
    /// See [`Task::show_waiting`].
    waiting: Option<String>,
}

/// A task and its progress. Shared between the API and the cluster's worker.
pub struct Task {
    /// Task uuid.
    pub uuid: String,
    /// Task name.
    pub name: String,
    /// Rows to process (1 for checkpoint tasks).
    pub total: u64,
    /// What the task does; `None` for ended tasks of an earlier run of the server.
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
    /// Set once the task's end waits for a database that another program locks.
    end_waits: tokio::sync::watch::Sender<bool>,
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
                run_start: None,
                end: None,
                note: None,
                waiting: None,
            }),
            work: Mutex::new(Some(work)),
            cancel: AtomicBool::new(false),
            stopped_by_shutdown: AtomicBool::new(false),
            done: tokio::sync::watch::channel(false).0,
            end_waits: tokio::sync::watch::channel(false).0,
        }
    }

    /// A task that an earlier run of the server recorded as queued, with its work, to be
    /// queued again. A train or request task that a shutdown stopped goes on from the cycles
    /// it did (and keeps its note saying so, and the time it first started).
    pub fn resumed(row: TaskRow, work: Work) -> Self {
        let task = Self {
            queued_at: row.queued_at,
            current: AtomicU64::new(row.current.min(row.total)),
            ..Self::new(row.uuid, row.name, row.total, work)
        };
        let mut timeline = task.timeline();
        timeline.note = row.note;
        timeline.start = row.started_at;
        drop(timeline);
        task
    }

    /// The task's work as the database keeps it while the task is queued; `None` once it
    /// has started or ended.
    pub fn stored_work(&self) -> Option<String> {
        crate::sync::lock(&self.work).as_ref().map(Work::stored)
    }

    fn timeline(&self) -> std::sync::MutexGuard<'_, Timeline> {
        crate::sync::lock(&self.timeline)
    }

    /// The current state.
    pub fn state(&self) -> TaskState {
        self.timeline().state
    }

    /// A task recorded by an earlier run of the server; it has ended (start-up aborts the ones
    /// that had not), so it has no work.
    pub fn recorded(row: TaskRow) -> Self {
        let state = row.state;
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
                run_start: None,
                end: row.ended_at,
                note: row.note,
                waiting: None,
            }),
            work: Mutex::new(None),
            cancel: AtomicBool::new(false),
            stopped_by_shutdown: AtomicBool::new(false),
            done,
            end_waits: tokio::sync::watch::channel(false).0,
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
            state: timeline.state,
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
            state,
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

    /// Shows what the task waits for before it can begin, after its note while it waits
    /// (`GET task`; the database does not keep it); `None` once it no longer waits. Its
    /// end, or its queueing again, ends the wait too.
    pub fn show_waiting(&self, why: Option<String>) {
        self.timeline().waiting = why;
    }

    /// The task in words, for logs: `train task 'name' of cluster 'cluster'`.
    pub fn described(&self, cluster_name: &str) -> String {
        let kind = self.kind.map_or(String::new(), |kind| format!("{kind} "));
        format!("{kind}task '{}' of cluster '{cluster_name}'", self.name)
    }

    /// Marks the task active and hands its work to the worker (once). One that a shutdown
    /// stopped keeps the time it first started.
    pub fn start(&self) -> Option<Work> {
        let mut timeline = self.timeline();
        timeline.state = TaskState::Active;
        let now = now_timestamp();
        timeline.start.get_or_insert_with(|| now.clone());
        timeline.run_start = Some(now);
        crate::sync::lock(&self.work).take()
    }

    /// When this run of the task began (its start, or for a task that went on after a stop,
    /// when it went on); `None` before it started in this server.
    pub fn run_started(&self) -> Option<String> {
        self.timeline().run_start.clone()
    }

    /// Records progress.
    pub fn set_progress(&self, rows: u64) {
        self.current.store(rows, Ordering::Relaxed);
    }

    /// The cycles done.
    pub fn progress(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// Marks a task that a shutdown stopped part of the way as queued again, until the
    /// server stops (it does not run again in this run: its record tells the next start to
    /// run the rest; see [`Task::record_requeued`]).
    pub fn requeue(&self) {
        let mut timeline = self.timeline();
        timeline.state = TaskState::Queued;
        timeline.waiting = None;
    }

    /// The task's note once a shutdown stopped it part of the way, to go on at the next
    /// start: it says where, in place of what an earlier stop's note said; a task stopped
    /// before its first cycle (while it waited for file descriptors, say) is simply queued
    /// again, with its note as it was (no start would tell that it went on from cycle 0).
    fn note_with_stop(&self, note: Option<&str>) -> Option<String> {
        if self.progress() == 0 {
            return note.map(str::to_owned);
        }
        let kept = match self.kind {
            Some(WorkKind::Request) => "whose results are kept",
            _ => "which the cluster's network keeps",
        };
        let stop = format!(
            "{STOPPED_AFTER}{} of {} cycles, {kept}{TO_GO_ON}",
            self.progress(),
            self.total
        );
        let note = note
            .into_iter()
            .flat_map(|note| note.split("; "))
            .filter(|part| !part.starts_with(STOPPED_AFTER))
            .chain([stop.as_str()])
            .collect::<Vec<_>>()
            .join("; ");
        Some(note)
    }

    /// The task as the database records it once a shutdown stopped it part of the way, to go
    /// on at the next start: queued, with its progress, the time it first started and a note
    /// saying where it stopped.
    pub fn record_requeued(&self, cluster_uuid: &str) -> TaskRow {
        let row = self.record(cluster_uuid);
        TaskRow {
            state: TaskState::Queued,
            ended_at: None,
            note: self.note_with_stop(row.note.as_deref()),
            ..row
        }
    }

    /// Notes that the task, which a shutdown stopped part of the way, goes on now (its work is
    /// ready to go on: datasets open, a request's result so far checked).
    pub fn note_going_on(&self) {
        self.tell_stop(WENT_ON);
    }

    /// Notes that the task, which a shutdown stopped part of the way, ended without going on
    /// (nothing if it went on, or was never stopped so).
    pub fn note_not_going_on(&self) {
        self.tell_stop(DID_NOT_GO_ON);
    }

    /// Ends the note's part that says where a shutdown stopped the task with `ending`.
    fn tell_stop(&self, ending: &str) {
        let mut timeline = self.timeline();
        timeline.note = timeline
            .note
            .as_deref()
            .map(|note| note_stop_told(note, ending));
    }

    /// Notes where a shutdown stopped the task, as [`Task::record_requeued`] recorded it.
    pub fn note_stop(&self) {
        let mut timeline = self.timeline();
        timeline.note = self.note_with_stop(timeline.note.as_deref());
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
            timeline.waiting = None;
        }
        drop(crate::sync::lock(&self.work).take());
        self.done.send_replace(true);
    }

    /// Waits until the task has ended.
    pub async fn ended(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Notes that the task's end waits for a database that another program locks, and wakes
    /// those waiting for that.
    pub fn note_end_waits(&self) {
        self.end_waits.send_replace(true);
    }

    /// Waits until the task's end waits for a database that another program locks (which
    /// may not happen).
    pub async fn end_waits(&self) {
        let mut rx = self.end_waits.subscribe();
        let _ = rx.wait_for(|waits| *waits).await;
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
            note: match (&timeline.note, &timeline.waiting) {
                (Some(note), Some(waiting)) => Some(format!("{note}; {waiting}")),
                (note, waiting) => note.clone().or_else(|| waiting.clone()),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A task stopped by several shutdowns says where the last one stopped it, once, and
    /// keeps the rest of its note.
    #[test]
    fn a_stop_note_takes_the_place_of_an_earlier_one() {
        let work = Work::Save {
            owner_id: "owner".into(),
            project_id: "project".into(),
        };
        let task = Task::new("t".into(), "task".into(), 100, work);
        task.add_note("growth refused");
        task.set_progress(30);
        task.note_stop();
        task.add_note("more growth refused");
        task.set_progress(70);
        let recorded = task.record_requeued("cluster");
        let stop = |cycles| {
            format!(
                "a shutdown of the server stopped it after {cycles} of 100 cycles, which the \
                 cluster's network keeps, to go on from there at the next start"
            )
        };
        assert_eq!(
            recorded.note.as_deref(),
            Some(format!("growth refused; more growth refused; {}", stop(70)).as_str())
        );
        assert_eq!(
            (
                recorded.state.as_str(),
                recorded.started_at,
                recorded.current
            ),
            ("queued", None, 70)
        );
        task.note_stop();
        assert_eq!(task.info().note, recorded.note);
    }

    /// A request task's result target: ten values of output `label`, named `answers`.
    fn answers() -> ResultTarget {
        ResultTarget {
            output: "label".to_owned(),
            columns: 10,
            name: "answers".to_owned(),
            owner_id: "owner".to_owned(),
            project_id: "project".to_owned(),
            so_far: None,
        }
    }

    /// What a task waited for is not told once it has ended, or is queued again, whatever
    /// ended the wait (a dataset deleted meanwhile left "waiting since …" in its note).
    #[test]
    fn a_wait_is_not_told_after_the_end() {
        for ends in [true, false] {
            let task = Task::new("t".into(), "task".into(), 10, Work::Train(Vec::new()));
            task.add_note("what happened");
            task.show_waiting(Some("waiting since now".into()));
            assert_eq!(
                task.info().note.as_deref(),
                Some("what happened; waiting since now")
            );
            if ends {
                task.end(TaskState::Aborted);
            } else {
                task.requeue();
            }
            assert_eq!(task.info().note.as_deref(), Some("what happened"));
        }
    }

    /// A stopped request task's note says that its results are kept; once it goes on, that
    /// it went on; a later stop's note takes the place of both.
    #[test]
    fn a_stop_note_tells_what_is_kept_and_then_that_the_task_went_on() {
        let target = answers();
        let task = Task::new(
            "t".into(),
            "task".into(),
            100,
            Work::Request(vec![], target),
        );
        task.add_note("growth refused");
        let stopped = |cycles| {
            format!(
                "growth refused; a shutdown of the server stopped it after {cycles} of 100 \
                 cycles, whose results are kept, to go on from there at the next start"
            )
        };
        let told = |cycles, ending| {
            format!(
                "growth refused; a shutdown of the server stopped it after {cycles} of 100 \
                 cycles, and it {ending} from there at the next start"
            )
        };
        task.set_progress(40);
        task.note_stop();
        assert_eq!(task.info().note, Some(stopped(40)));
        task.note_going_on();
        assert_eq!(task.info().note, Some(told(40, "went on")));
        // Told once, however often it goes on; one that went on did not fail to.
        task.note_going_on();
        task.note_not_going_on();
        assert_eq!(task.info().note, Some(told(40, "went on")));
        // A later stop's note takes the place of the earlier one; one that cannot go on then
        // says so.
        task.set_progress(70);
        task.note_stop();
        assert_eq!(task.info().note, Some(stopped(70)));
        task.note_not_going_on();
        assert_eq!(task.info().note, Some(told(70, "could not go on")));
    }

    /// A task that goes on after a stop keeps the time it first started (also while it is
    /// queued again); a new one gets the time it starts. Each run knows when it began (what
    /// a failed save of its network loses is what it learned since then).
    #[test]
    fn a_task_that_goes_on_keeps_its_first_start() {
        let task = Task::new(
            "t".into(),
            "task".into(),
            100,
            Work::Request(vec![], answers()),
        );
        assert!(task.start().is_some());
        let started = task.record("cluster").started_at;
        assert!(started.is_some());
        task.set_progress(30);
        let row = TaskRow {
            started_at: Some("2026-11-30 09:00:00".into()),
            ..task.record_requeued("cluster")
        };
        assert_eq!(task.record_requeued("cluster").started_at, started);
        let again = Task::resumed(row, Work::Request(vec![], answers()));
        assert_eq!(again.info().start_timestamp, "2026-11-30 09:00:00");
        assert_eq!(again.run_started(), None);
        assert!(again.start().is_some());
        assert_eq!(again.info().start_timestamp, "2026-11-30 09:00:00");
        let run = again.run_started().unwrap();
        assert!(run.as_str() > "2026-11-30 09:00:00", "{run}");
        assert_eq!(again.progress(), 30);
    }

    /// Work comes back as it was stored, with its files in the data directory it is read in
    /// (which may have moved), and a stored file name cannot reach outside its folder.
    #[test]
    fn stored_work_comes_back_within_its_folders() {
        let old = DataDir::new(std::path::Path::new("/old/place"));
        let new = DataDir::new(std::path::Path::new("/new/place"));
        let binding = |name: &str, side| Binding {
            name: name.to_owned(),
            side,
            dataset_uuid: "dataset".to_owned(),
            path: old.datasets().join("dataset-file"),
            columns: ColumnRange::new(3, 7),
            checksum: Some("xxh3:0123456789abcdef".parse().unwrap()),
        };
        let target = answers();
        let work = Work::Request(vec![binding("picture", Side::Input)], target);
        let text = work.stored();
        let Ok(Work::Request(bindings, back)) = Work::from_stored(&text, &new) else {
            panic!("not read back: {text}");
        };
        assert_eq!(bindings.len(), 1);
        let binding = &bindings[0];
        assert_eq!(binding.path, new.datasets().join("dataset-file"));
        assert_eq!(
            (binding.name.as_str(), binding.side, binding.columns),
            ("picture", Side::Input, ColumnRange::new(3, 7))
        );
        assert_eq!(
            binding.checksum.map(|c| c.to_string()).as_deref(),
            Some("xxh3:0123456789abcdef")
        );
        // Work stored by a version before checksums: its datasets are read unchecked.
        let older = text.replace(",\"checksum\":\"xxh3:0123456789abcdef\"", "");
        assert_ne!(older, text);
        let Ok(Work::Request(bindings, _)) = Work::from_stored(&older, &new) else {
            panic!("not read back: {older}");
        };
        assert_eq!(bindings[0].checksum, None);
        assert_eq!(
            (
                back.output,
                back.columns,
                back.name,
                back.owner_id,
                back.project_id
            ),
            (
                "label".to_owned(),
                10,
                "answers".to_owned(),
                "owner".to_owned(),
                "project".to_owned()
            )
        );

        let escaping = text.replace("dataset-file", "../hanami.db");
        let Err(e) = Work::from_stored(&escaping, &new) else {
            panic!("a path outside the datasets' folder was taken");
        };
        assert!(e.to_string().contains("is not a file name"), "{e}");
        let Err(e) = Work::from_stored("{\"kind\":\"dream\"}", &new) else {
            panic!("an unknown kind was taken");
        };
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
