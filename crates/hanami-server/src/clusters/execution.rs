//! The worker of a cluster: how it waits for a task slot, runs the queued tasks one after
//! another, and makes each task's end, product and network durable together.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use anyhow::Context;
use hanami_engine::{Cluster, GrowthStats, one_hot};
use hanami_store::dataset::{Checksum, ContentSummary, DatasetWriter};
use hanami_store::resources::{Kind, ResourceRow};
use hanami_store::tasks::TaskProduct;
use hanami_store::{StoreError, now_timestamp};
use hanami_types::scope::Scope;

use super::cores::with_threads;
use super::rows::{self, DatasetRows, Side};
use super::task::{ResultTarget, Task, TaskState, Work, WorkKind};
use super::turns::TaskSlot;
use super::{
    ClusterHandle, Control, DESCRIPTORS_POINT, InPlace, Interfaces, MissedEnd, Mode, RefusedGrowth,
    StagedNetwork, WorkerContext, lock, unreached, write_durably,
};

/// The `HANAMI_FAIL_AT` point (debug builds) at which every write of a task's state or end
/// to the database fails, as on a full disk.
pub(super) const RECORD_POINT: &str = "task:record";

/// The `HANAMI_FAIL_AT` point (debug builds) at which the later record of an end that the
/// database missed fails (see [`ClusterHandle::record_missed_ends`]).
const RECORD_AGAIN_POINT: &str = "task:record-again";

/// The error of a database write that `HANAMI_FAIL_AT` makes fail.
pub(super) fn injected_store_failure() -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(
        "failure injected (HANAMI_FAIL_AT)",
    )))
}

/// How long a task that cannot open its files, because the server has run out of file
/// descriptors, waits for some to come free before it is aborted.
const DESCRIPTOR_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Pause between two tries of such a task to open its files.
pub(super) const DESCRIPTOR_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Pause between two tries to record a task's end in a database that another program
/// locks (each try itself waits the database's busy timeout first).
const LOCKED_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

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

impl ClusterHandle {
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

    /// Starts the worker if tasks wait and none runs, with `slot` if the caller took one.
    pub(super) fn start_worker(
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
        // Where a shutdown stopped it before (0 for a fresh task).
        let went_on_from = task.progress();
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
            Some((work, Ok(Ok(Ran::Stopped { kept, .. })))) => self.stopped(task, work, kept, ctx),
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
            Recorded::Requeued if task.progress() == 0 => tracing::info!(
                "{} ({}) stopped by the shutdown before its first cycle; it runs at the next \
                 start",
                task.described(&self.row.name),
                task.uuid
            ),
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
                let went_on = if went_on_from > 0 {
                    format!(
                        " (this run began at cycle {went_on_from} of {}, where a shutdown had \
                         stopped it)",
                        task.total
                    )
                } else {
                    String::new()
                };
                tracing::info!(
                    "{} ({}) {} after {:.1} s{went_on}",
                    task.described(&self.row.name),
                    task.uuid,
                    state.as_str(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }

    /// How a task that stopped before its end (its cancel flag) ends: one that the shutdown
    /// stopped and that `kept` something to go on from (a train task's network, a request's
    /// result so far) is queued again with its `work` (and the checksum of a result so far
    /// set aside, which the next start checks it against); any other is aborted, with
    /// a note saying why. Decided under the control lock, where a deletion of the task takes
    /// back the shutdown's mark: a task the shutdown queues again is then no longer active
    /// for a deletion, which withdraws it as a queued one (with no place in this run's
    /// queue) and forgets it once its row is deleted.
    fn stopped(&self, task: &Task, work: &Work, kept: Kept, ctx: &WorkerContext) -> Ending {
        let (goes_on, set_aside) = match kept {
            Kept::Nothing => (false, None),
            Kept::Progress => (true, None),
            Kept::SetAside(checksum) => (true, Some(checksum)),
        };
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
            return Ending::Requeue(work.stored_going_on(set_aside));
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
        let mut recorded = self.record_waiting(task, &ending, ended_at, staged.is_some(), ctx);
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
                self.end_not_recorded(e, missed, &product, staged, ctx);
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

    /// Records `task`'s end (or, for [`Ending::Requeue`], that it is queued again) with
    /// whether a staged network goes with it; while another program locks the database, it
    /// tries again (each try waits the database's busy timeout) until the server stops or
    /// the cluster is deleted, the first wait told in the server log and the task's note.
    fn record_waiting(
        &self,
        task: &Task,
        ending: &Ending,
        ended_at: &str,
        staged: bool,
        ctx: &WorkerContext,
    ) -> Result<(), StoreError> {
        let mut waited = false;
        let recorded = loop {
            let recorded = ctx.runtime.block_on(async {
                if crate::crash_point::fails(RECORD_POINT) {
                    return Err(injected_store_failure());
                }
                match ending {
                    Ending::Requeue(work) => {
                        let row = task.record_requeued(&self.row.uuid);
                        ctx.store.requeue_task(&row, work, staged).await
                    }
                    Ending::End(state, product) => {
                        let row = task.record_as_ended(&self.row.uuid, *state, ended_at);
                        ctx.store.end_task(&row, product.as_stored(), staged).await
                    }
                }
            });
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
        recorded
    }

    /// After the database refused the end of `missed`'s task (`e`): nothing of the end is
    /// recorded, so the network file stays as it was; the network in memory, with what the
    /// task did, is saved at shutdown, unless the server is stopping because its wait for a
    /// locked database was cut short: then the next start reports the task as one that left
    /// nothing behind (its record says it is still active), and so it must. A product stays
    /// on disk and goes to `unreferenced/` at the next start. The end is tried again later
    /// (see `missed_ends`), but for a wait cut short by the stop where the task's record,
    /// still active, says what the next start must report.
    fn end_not_recorded(
        &self,
        e: StoreError,
        missed: MissedEnd,
        product: &Product,
        staged: Option<StagedNetwork<'_>>,
        ctx: &WorkerContext,
    ) {
        let cut_short = e.is_locked() && ctx.stopping.load(Ordering::Relaxed);
        // Changes that no save kept before the task are saved all the same.
        let carries_unsaved = staged.as_ref().is_some_and(|s| s.carries_unsaved);
        if staged.is_some() && (!cut_short || carries_unsaved) {
            self.unsaved.store(true, Ordering::Relaxed);
        }
        drop(staged);
        let kept = match product {
            Product::Nothing => String::new(),
            _ => format!(
                "; {product} is not registered (its file is moved to unreferenced/ at the next \
                 start)"
            ),
        };
        let network = if cut_short && !self.unsaved.load(Ordering::Relaxed) {
            "the server stops, and the cluster's network stays the one saved before the task"
        } else {
            "the cluster's network in memory keeps what the task did"
        };
        let e = anyhow::Error::new(e).context(format!(
            "the task's end cannot be recorded in the database{kept}; {network}"
        ));
        ctx.log_error(&missed.task, &self.row, &e);
        if !cut_short || !missed.start_recorded {
            lock(&self.missed_ends).push(missed);
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
        // Should the stop's save fail too, or the server crash, the next start reports the
        // loss (as it does for direct IO).
        let since = task.run_started().unwrap_or_else(now_timestamp);
        ctx.runtime
            .block_on(self.note_unsaved_training(&ctx.store, &since));
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
                return Ok(Ok(Ran::Stopped {
                    kept: Kept::Progress,
                    began: false,
                }));
            }
            let lasted = ctx.descriptor_shortage.seen().elapsed();
            if lasted >= DESCRIPTOR_WAIT {
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
                    &ctx.verified,
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
                        kept: Kept::Progress,
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
            let rows = DatasetRows::open(&interfaces, bindings, first..task.total, &ctx.verified)?;
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
        crate::crash_point::reached("request:opened");
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
                    kept: Kept::Nothing,
                    began: true,
                });
            }
            if writer.rows_written() == 0 {
                // Not a row answered: nothing to set aside (dropping the writer removes its
                // file), and the task runs from its start (its network is saved as it is).
                return Ok(Ran::Stopped {
                    kept: Kept::Progress,
                    began: true,
                });
            }
            let kept = match writer.suspend(&partial) {
                Ok((rows, checksum)) if rows == task.progress() => {
                    crate::crash_point::reached("request-stop:set-aside");
                    Kept::SetAside(checksum)
                }
                Ok((rows, _)) => {
                    // Never so: the rows written are the rows answered.
                    let e = anyhow::anyhow!(
                        "its result so far holds {rows} rows, not the {} it answered",
                        task.progress()
                    );
                    ctx.log_error(task, &self.row, &e);
                    Kept::Nothing
                }
                Err(e) => {
                    let e = anyhow::Error::new(e).context(
                        "cannot set the result so far aside, so the task cannot go on at the \
                         next start",
                    );
                    ctx.log_error(task, &self.row, &e);
                    Kept::Nothing
                }
            };
            return Ok(Ran::Stopped { kept, began: true });
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
            content: Box::new(written.content),
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
    // Clients read the task's note: the file's path is for the server log only.
    let cannot = || {
        tracing::warn!(
            "cannot go on with the result so far in {}",
            partial.display()
        );
        "cannot go on with the result so far that the server set aside when it stopped the \
         task (run the task again for its whole result)"
    };
    let writer = DatasetWriter::resume(partial, path, target.so_far).with_context(cannot)?;
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

/// What a task that ran to its end produced besides its network; registered with its end.
enum Product {
    /// Nothing (training, a restore).
    Nothing,
    /// A checkpoint, written to `path`.
    Checkpoint { row: ResourceRow, path: PathBuf },
    /// A request's result dataset, written to `path`.
    Dataset {
        row: ResourceRow,
        /// Boxed: the other products are small.
        content: Box<ContentSummary>,
        path: PathBuf,
    },
}

impl Product {
    /// The product as the database records it.
    fn as_stored(&self) -> TaskProduct<'_> {
        match self {
            Product::Nothing => TaskProduct::Nothing,
            Product::Checkpoint { row, .. } => TaskProduct::Checkpoint(row),
            Product::Dataset { row, content, .. } => TaskProduct::Dataset(row, content),
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
    /// It stopped before (its cancel flag), keeping `kept` to go on from, and `began`
    /// unless it stopped before it changed anything.
    Stopped { kept: Kept, began: bool },
    /// It failed before it changed anything (its datasets or its result could not be
    /// opened, a save's checkpoint could not be written): the network is as it was.
    NotBegun(anyhow::Error),
}

/// What a task that stopped before its end kept to go on from at the next start.
#[derive(Clone, Copy)]
enum Kept {
    /// Nothing: it cannot go on.
    Nothing,
    /// What it did so far as it is: a train task's network, or nothing done yet (then also
    /// a request task's result so far from an earlier start, unchanged).
    Progress,
    /// A request task's result so far, set aside with this checksum.
    SetAside(Checksum),
}

/// How [`ClusterHandle::record_end`] recorded a task.
enum Recorded {
    /// It ended in this state.
    Ended(TaskState),
    /// It is queued again, for the next start.
    Requeued,
}

/// Why a task that the shutdown stopped while it ran was aborted.
pub(super) fn shut_down_before_the_end(task: &Task) -> anyhow::Error {
    anyhow::anyhow!(
        "the server shut down before the task ended: it stopped after {} of {} cycles",
        task.info().current_cycle,
        task.total
    )
}
