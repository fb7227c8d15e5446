//! Resources that belong to a project and an owner: datasets, clusters and checkpoints. They
//! share one row shape and one set of queries; every lookup takes the caller's [`Scope`], so
//! a resource outside it is indistinguishable from one that does not exist.

use hanami_types::list::{ListTable, RESOURCE_COLUMNS};
use hanami_types::scope::{ADMIN_PROJECT, Scope};
use serde_json::Value;
use sqlx::SqliteConnection;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use crate::dataset::{Checksum, ContentSummary, ValueRanges};
use crate::db::Columns;
use crate::{Store, StoreError, now_timestamp};

/// What the database notes of a file that no row references, so that a start can remove
/// the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileNote {
    /// The file of a deleted row, until the file is gone (the deletion notes it, by trigger).
    Removed,
    /// The file of a dataset or cluster being made, until its row is inserted (which forgets
    /// the note, by trigger): a crash in between left a file that nobody was told of.
    Unregistered,
}

impl FileNote {
    fn table(self) -> &'static str {
        match self {
            FileNote::Removed => "removed_files",
            FileNote::Unregistered => "unregistered_files",
        }
    }
}

/// The kinds of resources, one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Datasets (file in the dataset folder).
    Dataset,
    /// Clusters (network saved in the cluster folder).
    Cluster,
    /// Checkpoints (file in the checkpoint folder).
    Checkpoint,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Dataset => "datasets",
            Kind::Cluster => "clusters",
            Kind::Checkpoint => "checkpoints",
        }
    }

    /// The kind's name in messages: `dataset`, `cluster`, `checkpoint`.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Dataset => "dataset",
            Kind::Cluster => "cluster",
            Kind::Checkpoint => "checkpoint",
        }
    }
}

/// Why a project or user could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No such project or user.
    #[error("not found")]
    NotFound,
    /// Resources still belong to it; the text names what, e.g. `2 dataset(s) (d1, d2), 1
    /// cluster(s) (c1)`.
    #[error("still owns {0}")]
    InUse(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DeleteError {
    fn from(e: sqlx::Error) -> Self {
        DeleteError::Store(e.into())
    }
}

/// Whose resources to count.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// Everything in a project.
    Project(&'a str),
    /// Everything a user owns, in any project.
    Owner(&'a str),
}

/// How many uuids of each kind of resource a refused deletion names.
const NAMED_RESOURCES: usize = 3;

/// The resources `holder` has, in words, with the uuids of the oldest of each kind
/// (`2 dataset(s) (d1, d2), 1 cluster(s) (c1)`; `…` after the third); `None` if none.
async fn held_resources(
    conn: &mut SqliteConnection,
    holder: Holder<'_>,
) -> Result<Option<String>, StoreError> {
    let (column, id) = match holder {
        Holder::Project(id) => ("project_id", id),
        Holder::Owner(id) => ("owner_id", id),
    };
    let mut held = Vec::new();
    for kind in [Kind::Dataset, Kind::Cluster, Kind::Checkpoint] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE {column} = ?",
            kind.table()
        ))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        if n > 0 {
            let rows = sqlx::query(&format!(
                "SELECT uuid FROM {} WHERE {column} = ? ORDER BY created_at, uuid LIMIT ?",
                kind.table()
            ))
            .bind(id)
            .bind(NAMED_RESOURCES as i64)
            .fetch_all(&mut *conn)
            .await?;
            let mut uuids: Vec<String> = Columns::all(kind.table(), &rows, "uuid")?;
            if n > NAMED_RESOURCES as i64 {
                uuids.push("…".to_owned());
            }
            held.push(format!("{n} {}(s) ({})", kind.word(), uuids.join(", ")));
        }
    }
    Ok((!held.is_empty()).then(|| held.join(", ")))
}

/// Deletes the user or project `holder` (its row; assignments follow by cascade) unless it
/// has resources; [`DeleteError::NotFound`] if there is no such row.
pub(crate) async fn delete_unless_holding(
    store: &Store,
    holder: Holder<'_>,
) -> Result<(), DeleteError> {
    let (table, id) = match holder {
        Holder::Project(id) => ("projects", id),
        Holder::Owner(id) => ("users", id),
    };
    // IMMEDIATE: take the write lock first. A deferred transaction that reads and then
    // writes fails at once (SQLITE_BUSY_SNAPSHOT) when another connection wrote meanwhile.
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let in_use = held_resources(&mut tx, holder).await?;
    let exists: Option<i64> = sqlx::query_scalar(&format!("SELECT seq FROM {table} WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(DeleteError::NotFound);
    }
    if let Some(in_use) = in_use {
        return Err(DeleteError::InUse(in_use));
    }
    sqlx::query(&format!("DELETE FROM {table} WHERE id = ?"))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A cluster whose network direct IO changed without a save after it (see
/// [`Store::note_unsaved_network`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsavedNetwork {
    /// The cluster.
    pub uuid: String,
    /// When the first unsaved change came.
    pub since: String,
    /// Which saved network was in place then, in the server's words (`None` from versions
    /// that did not note it).
    pub base: Option<String>,
}

/// A resource's database row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    /// Resource uuid.
    pub uuid: String,
    /// Owning project.
    pub project_id: String,
    /// Owning user.
    pub owner_id: String,
    /// Always `private` at present.
    pub visibility: String,
    /// Resource name.
    pub name: String,
    /// File name inside the resource's folder of the data directory (for a cluster: where its
    /// network is saved; the file exists only while it has one).
    pub file_name: String,
    /// Creation time.
    pub created_at: String,
}

impl ResourceRow {
    /// A new private resource row, created now.
    pub fn new(uuid: &str, name: &str, owner_id: &str, project_id: &str, file_name: &str) -> Self {
        Self {
            uuid: uuid.to_owned(),
            project_id: project_id.to_owned(),
            owner_id: owner_id.to_owned(),
            visibility: "private".to_owned(),
            name: name.to_owned(),
            file_name: file_name.to_owned(),
            created_at: now_timestamp(),
        }
    }

    /// The row as a line of a resource list ([`RESOURCE_COLUMNS`]).
    pub fn into_list_line(self) -> Vec<Value> {
        [
            self.created_at,
            self.uuid,
            self.project_id,
            self.owner_id,
            self.visibility,
            self.name,
        ]
        .into_iter()
        .map(Value::String)
        .collect()
    }
}

/// The columns [`from_row`] reads, selected by name: `SELECT *` also copied each dataset's
/// value ranges (megabytes for a wide CSV dataset) into every row it read.
const ROW_COLUMNS: &str = "uuid, project_id, owner_id, visibility, name, file_name, created_at";

fn from_row(kind: Kind, row: &SqliteRow) -> Result<ResourceRow, StoreError> {
    let row = Columns::of(kind.table(), row);
    Ok(ResourceRow {
        uuid: row.get("uuid")?,
        project_id: row.get("project_id")?,
        owner_id: row.get("owner_id")?,
        visibility: row.get("visibility")?,
        name: row.get("name")?,
        file_name: row.get("file_name")?,
        created_at: row.get("created_at")?,
    })
}

/// Inserts a resource row in one statement, so that the owner and the project cannot be
/// deleted between the check and the insert (their deletion refuses while they have
/// resources).
pub(crate) async fn insert_row(
    conn: &mut SqliteConnection,
    kind: Kind,
    row: &ResourceRow,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(&format!(
        "INSERT INTO {} (uuid, project_id, owner_id, visibility, name, file_name, created_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ?3) \
         AND (?2 = ?8 OR EXISTS (SELECT 1 FROM projects WHERE id = ?2))",
        kind.table()
    ))
    .bind(&row.uuid)
    .bind(&row.project_id)
    .bind(&row.owner_id)
    .bind(&row.visibility)
    .bind(&row.name)
    .bind(&row.file_name)
    .bind(&row.created_at)
    .bind(ADMIN_PROJECT)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_insert)?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::OwnerGone {
            owner_id: row.owner_id.clone(),
            project_id: row.project_id.clone(),
        });
    }
    Ok(())
}

/// Inserts a dataset's row and the summary of its content (see [`Store::insert_dataset`]).
pub(crate) async fn insert_dataset_row(
    conn: &mut SqliteConnection,
    row: &ResourceRow,
    content: &ContentSummary,
) -> Result<(), StoreError> {
    // JSON has no infinities: such fields are left out (tasks check values as they read).
    let finite: ValueRanges = content
        .value_ranges
        .iter()
        .filter(|(_, r)| r.min.is_finite() && r.max.is_finite())
        .map(|(field, r)| (field.clone(), *r))
        .collect();
    let ranges = serde_json::to_string(&finite).expect("finite floats serialize");
    insert_row(&mut *conn, Kind::Dataset, row).await?;
    sqlx::query("UPDATE datasets SET value_ranges = ?1, checksum = ?2 WHERE uuid = ?3")
        .bind(ranges)
        .bind(content.checksum.to_string())
        .bind(&row.uuid)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The bindings `?1` (project) and `?2` (owner) of [`SCOPE_SQL`] for a scope.
fn scope_filter(scope: &Scope) -> (Option<&str>, Option<&str>) {
    match scope {
        Scope::All => (None, None),
        Scope::Project(project) => (Some(project), None),
        Scope::Owned {
            project_id,
            owner_id,
        } => (Some(project_id), Some(owner_id)),
    }
}

const SCOPE_SQL: &str = "(?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR owner_id = ?2)";

impl Store {
    /// The resources `holder` has, in the words of [`DeleteError::InUse`]; `None` if none.
    pub async fn holdings(&self, holder: Holder<'_>) -> Result<Option<String>, StoreError> {
        let mut conn = self.reads.acquire().await?;
        held_resources(&mut conn, holder).await
    }

    /// Inserts a resource row; [`StoreError::OwnerGone`] if its owner or its project (other
    /// than the global admins' `admin`) does not exist.
    pub async fn insert_resource(&self, kind: Kind, row: &ResourceRow) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_row(&mut conn, kind, row).await
    }

    /// Inserts a dataset's row together with the value ranges of its fields (see
    /// [`Store::value_ranges`]; fields with an infinite extreme are not recorded) and the
    /// checksum of its file (see [`Store::dataset_checksum`]); [`StoreError::OwnerGone`] as
    /// [`Store::insert_resource`].
    pub async fn insert_dataset(
        &self,
        row: &ResourceRow,
        content: &ContentSummary,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_dataset_row(&mut tx, row, content).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The smallest and largest value of each field of a dataset visible in the scope, as
    /// recorded when it was written; `None` for datasets from before they were recorded (and
    /// for unknown ones).
    pub async fn value_ranges(
        &self,
        scope: &Scope,
        uuid: &str,
    ) -> Result<Option<ValueRanges>, StoreError> {
        self.dataset_record(scope, uuid, "value_ranges", "value ranges", |text| {
            serde_json::from_str(text).map_err(|e| e.to_string())
        })
        .await
    }

    /// The checksum of the file of a dataset visible in the scope, as recorded when it was
    /// written (or later, for a dataset from before checksums: see
    /// [`record_missing_checksum`](Self::record_missing_checksum)); `None` for such a dataset
    /// until then (and for unknown ones).
    pub async fn dataset_checksum(
        &self,
        scope: &Scope,
        uuid: &str,
    ) -> Result<Option<Checksum>, StoreError> {
        self.dataset_record(scope, uuid, "checksum", "checksum", str::parse)
            .await
    }

    /// The datasets whose file has no checksum recorded (those written before checksums
    /// were), as uuid and file name, oldest first.
    pub async fn datasets_without_checksum(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT uuid, file_name FROM datasets WHERE checksum IS NULL ORDER BY seq")
                .fetch_all(&self.reads)
                .await?;
        Columns::pairs("datasets", &rows, ("uuid", "file_name"))
    }

    /// Records `checksum` for the file of dataset `uuid` where it has none recorded yet;
    /// whether it was (not for a dataset deleted meanwhile, or one that has a checksum).
    pub async fn record_missing_checksum(
        &self,
        uuid: &str,
        checksum: Checksum,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE datasets SET checksum = ?1 WHERE uuid = ?2 AND checksum IS NULL")
                .bind(checksum.to_string())
                .bind(uuid)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What `column` (a text column of the datasets' table) records of a dataset visible in
    /// the scope, read by `parse`; `None` where it is NULL, and for unknown datasets. Text
    /// that does not parse is [`StoreError::Corrupt`], naming `what` and the dataset.
    async fn dataset_record<T>(
        &self,
        scope: &Scope,
        uuid: &str,
        column: &'static str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, StoreError> {
        let (project, owner) = scope_filter(scope);
        let row = sqlx::query(&format!(
            "SELECT {column} FROM datasets WHERE {SCOPE_SQL} AND uuid = ?3"
        ))
        .bind(project)
        .bind(owner)
        .bind(uuid)
        .fetch_optional(&self.reads)
        .await?;
        let text: Option<Option<String>> = row
            .as_ref()
            .map(|row| Columns::of("datasets", row).get(column))
            .transpose()?;
        text.flatten()
            .map(|text| {
                parse(&text).map_err(|e| StoreError::Corrupt {
                    what: format!("{what} of dataset '{uuid}': {e}"),
                })
            })
            .transpose()
    }

    /// A resource visible in the scope.
    pub async fn resource(
        &self,
        kind: Kind,
        scope: &Scope,
        uuid: &str,
    ) -> Result<Option<ResourceRow>, StoreError> {
        Self::one_in_scope(
            &self.reads,
            "SELECT {columns} FROM {table} WHERE {scope} AND uuid = ?3",
            kind,
            scope,
            uuid,
        )
        .await
    }

    /// Runs `sql` (with `{table}`, `{columns}` and `{scope}` filled in, the uuid as `?3`) for
    /// the resource with this uuid visible in the scope, and returns the row it yields.
    async fn one_in_scope(
        pool: &SqlitePool,
        sql: &str,
        kind: Kind,
        scope: &Scope,
        uuid: &str,
    ) -> Result<Option<ResourceRow>, StoreError> {
        let (project, owner) = scope_filter(scope);
        let sql = sql
            .replace("{table}", kind.table())
            .replace("{scope}", SCOPE_SQL)
            .replace("{columns}", ROW_COLUMNS);
        // All rows, not the first: a `DELETE … RETURNING` commits when its statement runs to
        // its end, and only then does a failed commit (a full disk) come back as an error;
        // with the first row alone, the caller saw the row deleted while it stayed.
        let rows = sqlx::query(&sql)
            .bind(project)
            .bind(owner)
            .bind(uuid)
            .fetch_all(pool)
            .await?;
        rows.first().map(|row| from_row(kind, row)).transpose()
    }

    /// Whether a resource with this name is visible in the scope.
    pub async fn resource_name_taken(
        &self,
        kind: Kind,
        scope: &Scope,
        name: &str,
    ) -> Result<bool, StoreError> {
        let (project, owner) = scope_filter(scope);
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {SCOPE_SQL} AND name = ?3",
            kind.table()
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(project)
            .bind(owner)
            .bind(name)
            .fetch_one(&self.reads)
            .await?;
        Ok(n > 0)
    }

    /// The resources visible in the scope, oldest first, as the list table of the API.
    pub async fn resource_list(&self, kind: Kind, scope: &Scope) -> Result<ListTable, StoreError> {
        let (project, owner) = scope_filter(scope);
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM {} WHERE {SCOPE_SQL} ORDER BY seq",
            kind.table()
        );
        let rows = sqlx::query(&sql)
            .bind(project)
            .bind(owner)
            .fetch_all(&self.reads)
            .await?;
        let mut table = ListTable::new(RESOURCE_COLUMNS);
        for row in &rows {
            table.body.push(from_row(kind, row)?.into_list_line());
        }
        Ok(table)
    }

    /// Deletes a resource row visible in the scope and returns it; `None` if there was none.
    pub async fn delete_resource(
        &self,
        kind: Kind,
        scope: &Scope,
        uuid: &str,
    ) -> Result<Option<ResourceRow>, StoreError> {
        Self::one_in_scope(
            &self.pool,
            "DELETE FROM {table} WHERE {scope} AND uuid = ?3 RETURNING {columns}",
            kind,
            scope,
            uuid,
        )
        .await
    }

    /// Every row of a kind, oldest first (for loading the clusters at start-up).
    pub async fn all_resources(&self, kind: Kind) -> Result<Vec<ResourceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM {} ORDER BY seq",
            kind.table()
        ))
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(|row| from_row(kind, row)).collect()
    }

    /// Notes that direct IO changed the network of cluster `uuid` and the change is not saved
    /// yet; the time of the first such change since the last save is kept, with `base`, the
    /// saved network in place then (see [`UnsavedNetwork::base`]).
    pub async fn note_unsaved_network(
        &self,
        uuid: &str,
        since: &str,
        base: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clusters SET unsaved_base = IIF(unsaved_since IS NULL, ?, unsaved_base), \
             unsaved_since = COALESCE(unsaved_since, ?) WHERE uuid = ?",
        )
        .bind(base)
        .bind(since)
        .bind(uuid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes that every change to the network of cluster `uuid` is saved.
    pub async fn note_saved_network(&self, uuid: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE clusters SET unsaved_since = NULL, unsaved_base = NULL WHERE uuid = ?")
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The clusters with unsaved direct-IO changes: at start-up, those whose changes a crash
    /// lost.
    pub async fn unsaved_networks(&self) -> Result<Vec<UnsavedNetwork>, StoreError> {
        let rows = sqlx::query(
            "SELECT uuid, unsaved_since, unsaved_base FROM clusters \
             WHERE unsaved_since IS NOT NULL ORDER BY seq",
        )
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                let row = Columns::of("clusters", row);
                Ok(UnsavedNetwork {
                    uuid: row.get("uuid")?,
                    since: row.get("unsaved_since")?,
                    base: row.get("unsaved_base")?,
                })
            })
            .collect()
    }

    /// File names of all resources of a kind, for removing files nobody references.
    pub async fn resource_file_names(&self, kind: Kind) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!("SELECT file_name FROM {}", kind.table()))
            .fetch_all(&self.reads)
            .await?;
        Columns::all(kind.table(), &rows, "file_name")
    }

    /// The files of a kind that the database notes as `note`.
    pub async fn noted_files(&self, note: FileNote, kind: Kind) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT file_name FROM {} WHERE folder = ?",
            note.table()
        ))
        .bind(kind.table())
        .fetch_all(&self.reads)
        .await?;
        Columns::all(note.table(), &rows, "file_name")
    }

    /// Forgets the `note`s of files of a kind, or only that of `file_name`: the files are
    /// gone.
    pub async fn forget_noted_files(
        &self,
        note: FileNote,
        kind: Kind,
        file_name: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "DELETE FROM {} WHERE folder = ?1 AND (?2 IS NULL OR file_name = ?2)",
            note.table()
        ))
        .bind(kind.table())
        .bind(file_name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes that the file `file_name` of a dataset or cluster is about to be written before
    /// its row exists ([`FileNote::Unregistered`]); inserting the row forgets the note.
    pub async fn note_unregistered_file(
        &self,
        kind: Kind,
        file_name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO unregistered_files (folder, file_name) VALUES (?, ?)")
            .bind(kind.table())
            .bind(file_name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
