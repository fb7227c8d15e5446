//! The task records of clusters. The server keeps its live tasks in memory and writes each
//! change of state here, so that after a restart it can list what became of every task: a
//! queued task keeps its work here until it starts, so that a restart queues it again (as
//! does a train or request task that a shutdown stopped: it is recorded as queued again,
//! with its work, by [`Store::requeue_task`]); the ones that a crash left started and not
//! ended are marked aborted.

use hanami_types::tasks::TaskState;
use sqlx::sqlite::SqliteRow;

use crate::dataset::ContentSummary;
use crate::db::Columns;
use crate::logs::{ErrorEntry, insert_error};
use crate::resources::{Kind, ResourceRow, insert_dataset_row, insert_row};
use crate::{Store, StoreError};

/// What a task produced besides a changed network, registered with its end.
#[derive(Debug, Clone, Copy)]
pub enum TaskProduct<'a> {
    /// Nothing (training, a restore, an aborted task).
    Nothing,
    /// A checkpoint.
    Checkpoint(&'a ResourceRow),
    /// A request's result dataset, with the summary of its content.
    Dataset(&'a ResourceRow, &'a ContentSummary),
}

/// One task as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Task uuid.
    pub uuid: String,
    /// The cluster the task belongs to.
    pub cluster_uuid: String,
    /// Task name.
    pub name: String,
    /// Cycles to run.
    pub total: u64,
    /// Cycles done when the state was last recorded.
    pub current: u64,
    /// Queued, active, aborted or finished.
    pub state: TaskState,
    /// When it was queued.
    pub queued_at: String,
    /// When it started, if it did.
    pub started_at: Option<String>,
    /// When it ended, if it did.
    pub ended_at: Option<String>,
    /// Why it was aborted, or what it could not do; `None` if there is nothing to tell.
    pub note: Option<String>,
}

/// A task that had not ended when the server stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedTask {
    /// The task.
    pub row: TaskRow,
    /// What it was queued to do, as given to [`Store::insert_task`] (or, for a task that a
    /// shutdown stopped, [`Store::requeue_task`]), while it is queued; `None` once it has
    /// started, and for tasks queued by versions before work was kept.
    pub work: Option<String>,
}

/// The columns that [`from_row`] reads (a task's `work`, large for tasks over many
/// interfaces, is read only where it is needed).
const TASK_COLUMNS: &str =
    "uuid, cluster_uuid, name, total, current, state, queued_at, started_at, ended_at, note";

fn from_row(row: &SqliteRow) -> Result<TaskRow, StoreError> {
    let row = Columns::of("tasks", row);
    let count = |name: &str| row.get::<i64>(name).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(TaskRow {
        uuid: row.get("uuid")?,
        cluster_uuid: row.get("cluster_uuid")?,
        name: row.get("name")?,
        total: count("total")?,
        current: count("current")?,
        // Only the four names are ever written; another (a hand-edited database) reads as
        // aborted, which every start then leaves alone.
        state: TaskState::parse(row.get("state")?).unwrap_or(TaskState::Aborted),
        queued_at: row.get("queued_at")?,
        started_at: row.get("started_at")?,
        ended_at: row.get("ended_at")?,
        note: row.get("note")?,
    })
}

/// The assignment that adds the text `?1` to a task's note (after its note so far, if it
/// has one).
const APPEND_NOTE: &str = "note = CASE WHEN note IS NULL THEN ?1 ELSE note || '; ' || ?1 END";

/// SQLite stores integers as `i64`.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Records a new task (after the ones already recorded for its cluster), with what it
    /// will do (`work`, in the caller's format), kept while it stays queued.
    pub async fn insert_task(&self, task: &TaskRow, work: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tasks (uuid, cluster_uuid, name, total, current, state, queued_at, \
             started_at, ended_at, note, work) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&task.uuid)
        .bind(&task.cluster_uuid)
        .bind(&task.name)
        .bind(int(task.total))
        .bind(int(task.current))
        .bind(task.state.as_str())
        .bind(&task.queued_at)
        .bind(&task.started_at)
        .bind(&task.ended_at)
        .bind(&task.note)
        .bind(work)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// Records a task's progress, state, timestamps and note; its work is forgotten once it
    /// is no longer queued.
    pub async fn update_task(&self, task: &TaskRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tasks SET current = ?, state = ?, started_at = ?, ended_at = ?, note = ?, \
             work = CASE WHEN ? = 'queued' THEN work END WHERE uuid = ?",
        )
        .bind(int(task.current))
        .bind(task.state.as_str())
        .bind(&task.started_at)
        .bind(&task.ended_at)
        .bind(&task.note)
        .bind(task.state.as_str())
        .bind(&task.uuid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a task.
    pub async fn delete_task(&self, uuid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tasks WHERE uuid = ?")
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets every task of a cluster.
    pub async fn delete_cluster_tasks(&self, cluster_uuid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tasks WHERE cluster_uuid = ?")
            .bind(cluster_uuid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tasks of a cluster in queue order.
    pub async fn cluster_tasks(&self, cluster_uuid: &str) -> Result<Vec<TaskRow>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE cluster_uuid = ? ORDER BY seq");
        let rows = sqlx::query(&sql)
            .bind(cluster_uuid)
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records a task's end together with what it produced, in one transaction, so that a
    /// crash leaves either both or neither. `network_pending`: the network the task changed
    /// is written beside its cluster's file but not yet in place (see
    /// [`Store::network_in_place`]). [`StoreError::OwnerGone`] if the product's owner or
    /// project is gone; nothing is recorded then.
    pub async fn end_task(
        &self,
        task: &TaskRow,
        product: TaskProduct<'_>,
        network_pending: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        match product {
            TaskProduct::Nothing => {}
            TaskProduct::Checkpoint(row) => insert_row(&mut tx, Kind::Checkpoint, row).await?,
            TaskProduct::Dataset(row, content) => insert_dataset_row(&mut tx, row, content).await?,
        }
        sqlx::query(
            "UPDATE tasks SET current = ?, state = ?, started_at = ?, ended_at = ?, note = ?, \
             network_pending = ?, work = NULL WHERE uuid = ?",
        )
        .bind(int(task.current))
        .bind(task.state.as_str())
        .bind(&task.started_at)
        .bind(&task.ended_at)
        .bind(&task.note)
        .bind(network_pending)
        .bind(&task.uuid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a task that stopped part of the way (a train or request task at the server's
    /// shutdown) as queued again, with its progress, note, `work` and the time it first
    /// started, to go on where it stopped at the next start. `network_pending` as for
    /// [`Store::end_task`]: the network with what the task did so far becomes durable together
    /// with this record.
    pub async fn requeue_task(
        &self,
        task: &TaskRow,
        work: &str,
        network_pending: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tasks SET current = ?, state = 'queued', started_at = ?, ended_at = NULL, \
             note = ?, network_pending = ?, work = ? WHERE uuid = ?",
        )
        .bind(int(task.current))
        .bind(&task.started_at)
        .bind(&task.note)
        .bind(network_pending)
        .bind(work)
        .bind(&task.uuid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes that the network a task's end left pending is in place.
    pub async fn network_in_place(&self, task_uuid: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tasks SET network_pending = 0 WHERE uuid = ?")
            .bind(task_uuid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tasks whose network [`Store::end_task`] left pending, as `(cluster, task)` in
    /// queue order (at start-up: a crash came between recording the end and putting the
    /// network in place).
    pub async fn pending_networks(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT cluster_uuid, uuid FROM tasks WHERE network_pending = 1 ORDER BY seq",
        )
        .fetch_all(&self.reads)
        .await?;
        Columns::pairs("tasks", &rows, ("cluster_uuid", "uuid"))
    }

    /// Marks a task that had ended, or stopped to be queued again, as aborted after all,
    /// adding `note` to its note (at start-up: the network its recorded end left pending
    /// cannot be put in place). One that had stopped ends now.
    pub async fn abort_ended_task(&self, uuid: &str, note: &str) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE tasks SET state = 'aborted', work = NULL, {APPEND_NOTE}, \
             ended_at = COALESCE(ended_at, ?2) WHERE uuid = ?3"
        ))
        .bind(note)
        .bind(crate::now_timestamp())
        .bind(uuid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes that every pending network is in place (after start-up put them there).
    pub async fn all_networks_in_place(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE tasks SET network_pending = 0 WHERE network_pending = 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tasks that had not ended, in queue order over all clusters (at start-up: the
    /// server stopped or crashed while they were queued or active).
    pub async fn unfinished_tasks(&self) -> Result<Vec<UnfinishedTask>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS}, work FROM tasks WHERE state IN ('queued', 'active') \
             ORDER BY seq"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.reads).await?;
        rows.iter()
            .map(|row| {
                Ok(UnfinishedTask {
                    row: from_row(row)?,
                    work: Columns::of("tasks", row).get("work")?,
                })
            })
            .collect()
    }

    /// Marks a task that had not ended as aborted at `ended_at`, adds `note` to its note, and
    /// writes its error-log entry, in one transaction (a crash leaves either both or neither,
    /// so the next start tells about it again). `false` if it had ended meanwhile.
    pub async fn abort_unfinished_task(
        &self,
        uuid: &str,
        ended_at: &str,
        note: &str,
        error: ErrorEntry<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let aborted = sqlx::query(&format!(
            "UPDATE tasks SET state = 'aborted', ended_at = ?2, work = NULL, {APPEND_NOTE} \
             WHERE uuid = ?3 AND state IN ('queued', 'active')"
        ))
        .bind(note)
        .bind(ended_at)
        .bind(uuid)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if aborted {
            insert_error(&mut tx, error).await?;
        }
        tx.commit().await?;
        Ok(aborted)
    }

    /// Forgets the tasks of clusters that no longer exist.
    pub async fn delete_orphan_tasks(&self) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM tasks WHERE cluster_uuid NOT IN (SELECT uuid FROM clusters)")
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }
}
