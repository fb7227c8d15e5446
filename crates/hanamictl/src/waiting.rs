//! Waiting for the end of a queued task (`--wait`): polling its state, showing its cycles,
//! and stopping the wait on Ctrl-C or SIGTERM.

use std::time::{Duration, Instant};

use hanami_sdk::types::tasks::{Task, TaskState};

use crate::cli::Wait;
use crate::connection::Session;
use crate::error::CliError;
use crate::interrupts::StopSignal;
use crate::progress::Progress;

/// How a command waits for the task it queued, with `--wait`.
pub(crate) struct Waiter {
    /// Whether the task's cycles are shown on standard error.
    pub(crate) show_progress: bool,
    /// Ends the waiting (not the task); installed before the task is queued.
    pub(crate) stop: Option<StopSignal>,
}

impl Waiter {
    /// The request that queues a task in `cluster`; with `--wait`, Ctrl-C or SIGTERM ends
    /// it too (status 130), saying that the task may have been queued.
    pub(crate) async fn queue<T>(
        &mut self,
        cluster: &str,
        request: impl Future<Output = T>,
    ) -> Result<T, CliError> {
        self.interruptible(request, || {
            format!(
                "stopped before the server answered; the task may have been queued \
                 (`hanamictl task list -c {cluster}` shows it)"
            )
        })
        .await
    }

    /// A request before a wait (the task's state for `task get --wait`): with `--wait`,
    /// Ctrl-C or SIGTERM ends it too (status 130).
    pub(crate) async fn ask<T>(&mut self, request: impl Future<Output = T>) -> Result<T, CliError> {
        self.interruptible(request, || {
            "stopped before the server answered; nothing was changed".to_owned()
        })
        .await
    }

    /// `request`, or the interruption that `stopped` describes when a signal comes first.
    async fn interruptible<T>(
        &mut self,
        request: impl Future<Output = T>,
        stopped: impl FnOnce() -> String,
    ) -> Result<T, CliError> {
        let Some(stop) = &mut self.stop else {
            return Ok(request.await);
        };
        tokio::select! {
            answer = request => Ok(answer),
            () = stop.received() => Err(CliError::Interrupted(stopped())),
        }
    }

    /// With `--wait` (or `--timeout`), polls the task until it has ended; an aborted task
    /// is an error. A wait may outlive the token: the client then logs in again. Ctrl-C or
    /// SIGTERM stops the waiting (not the task), with status 130.
    pub(crate) async fn wait_if_asked(
        &mut self,
        session: &Session,
        cluster: &str,
        task_uuid: &str,
        wait: &Wait,
    ) -> Result<Option<Task>, CliError> {
        let Some(timeout) = wait.seconds() else {
            return Ok(None);
        };
        let stopped = async {
            match &mut self.stop {
                Some(stop) => stop.received().await,
                None => std::future::pending().await,
            }
        };
        let ended = wait_for_end(session, cluster, task_uuid, timeout, self.show_progress);
        tokio::select! {
            ended = ended => ended.map(Some),
            () = stopped => Err(CliError::Interrupted(format!(
                "stopped waiting; task '{task_uuid}' goes on on the server \
                 (`hanamictl task get -c {cluster} {task_uuid}` shows it, with --wait once \
                 it has ended)"
            ))),
        }
    }
}

/// Whether an error of a call says that the server is out of reach (no connection, or no
/// answer in time), not that the call was wrong.
fn out_of_reach(error: &hanami_sdk::Error) -> bool {
    matches!(
        error,
        hanami_sdk::Error::Transport(_) | hanami_sdk::Error::Timeout { .. }
    )
}

/// How long a wait goes on trying a server that does not answer (one that restarts is back
/// sooner).
const RECONNECT_GRACE: Duration = Duration::from_secs(30);

/// Polls the task until it has ended or `timeout` seconds have passed; a server out of
/// reach is tried again for up to [`RECONNECT_GRACE`].
async fn wait_for_end(
    session: &Session,
    cluster: &str,
    task_uuid: &str,
    timeout: u64,
    show_progress: bool,
) -> Result<Task, CliError> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let began = Instant::now();
    // Short tasks are seen ending soon after they do; long ones are asked less often.
    let mut polls = hanami_sdk::TaskPolls::default();
    // Ends its line when dropped, also when the waiting is interrupted.
    let mut progress = Progress::new(&format!("task {task_uuid}"), show_progress);
    // Since when the server has been out of reach, if it is.
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let asked = Instant::now();
        // Out of reach, a poll may take what is left of the grace (not the answer timeout).
        let limit = unreachable_since.map_or(Duration::MAX, |since| {
            RECONNECT_GRACE.saturating_sub(since.elapsed())
        });
        let answer = tokio::time::timeout(limit, session.client.task(cluster, task_uuid))
            .await
            .unwrap_or_else(|_| {
                Err(hanami_sdk::Error::Timeout {
                    what: "the task's state".to_owned(),
                    waited: limit,
                })
            });
        let task = match answer {
            Ok(task) => task,
            Err(hanami_sdk::Error::NotFound(_)) => {
                return Err(CliError::msg(format!(
                    "task '{task_uuid}' is gone: it, or its cluster, was deleted while waiting"
                )));
            }
            // A server that restarts is back within seconds, and then tells how the task
            // goes on (one still queued when it stopped is queued again, a train or request
            // task that a clean stop interrupted goes on; one that a crash cut off is listed
            // aborted).
            Err(e) if out_of_reach(&e) => {
                let since = *unreachable_since.get_or_insert(asked);
                if since.elapsed() >= RECONNECT_GRACE || Instant::now() >= deadline {
                    return Err(session.error(e).context(&format!(
                        "lost the server while waiting for task '{task_uuid}' (no answer for \
                         {} s), so how the task goes on is unknown; `hanamictl task get -c \
                         {cluster} {task_uuid}` shows it once the server is back",
                        since.elapsed().as_secs()
                    )));
                }
                progress.remark(Some(
                    "the server does not answer; trying again (a restarted server runs queued \
                     tasks and the train and request tasks its stop interrupted; a crash \
                     aborts the running task)",
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // A refused token (a new password, say): the task does not stop with the wait.
            Err(e) => {
                let note = format!(
                    "note: task '{task_uuid}' was queued and goes on on the server \
                     (`hanamictl task get -c {cluster} {task_uuid}` shows it)"
                );
                return Err(match session.error(e) {
                    CliError::Status { code, body } => CliError::Status {
                        code,
                        body: format!("{body}\n{note}"),
                    },
                    CliError::Other(message) => CliError::Other(format!("{message}\n{note}")),
                    other => other,
                });
            }
        };
        if unreachable_since.take().is_some() {
            progress.remark(None);
        }
        progress.cycles(
            task.state.as_str(),
            task.current_cycle,
            task.total_number_of_cycles,
        );
        // Why a task waits (its cluster in DIRECT mode); why it ended is told below.
        if task.state == TaskState::Queued {
            progress.remark(task.note.as_deref());
        }
        match task.state {
            TaskState::Finished => return Ok(task),
            TaskState::Aborted => {
                let why = task.note.unwrap_or_else(|| {
                    "it was deleted, or it failed (then `hanamictl log error` shows why, to \
                     global admins)"
                        .to_owned()
                });
                return Err(CliError::msg(format!(
                    "task '{task_uuid}' was aborted: {why}"
                )));
            }
            state if Instant::now() >= deadline => {
                let why = task.note.map(|n| format!(" ({n})")).unwrap_or_default();
                return Err(CliError::msg(format!(
                    "task '{task_uuid}' is still {state} after {timeout} s{why}; it goes on \
                     on the server (`hanamictl task get -c {cluster} {task_uuid}` shows it, \
                     with --wait once it has ended)"
                )));
            }
            _ => {}
        }
        tokio::time::sleep(polls.next_pause(began.elapsed())).await;
    }
}
