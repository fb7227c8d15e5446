//! Opening the database and applying migrations.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Executor, Row, Sqlite, SqlitePool};

/// The schema migrations, in order. Never edit one that has shipped: add a new one. The
/// steps of an upgrade run in one transaction, so a step cannot use what SQLite ignores or
/// refuses in one (`PRAGMA foreign_keys`, `PRAGMA journal_mode`, `VACUUM`).
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_users_projects_logs.sql"),
    include_str!("../migrations/0002_datasets.sql"),
    include_str!("../migrations/0003_clusters_checkpoints.sql"),
    include_str!("../migrations/0004_tasks_and_cluster_state.sql"),
    include_str!("../migrations/0005_dataset_value_ranges.sql"),
    include_str!("../migrations/0006_task_notes.sql"),
    include_str!("../migrations/0007_unsaved_direct_io.sql"),
    include_str!("../migrations/0008_task_network_pending.sql"),
    include_str!("../migrations/0009_removed_files.sql"),
    include_str!("../migrations/0010_unsaved_base.sql"),
    include_str!("../migrations/0011_queued_work.sql"),
    include_str!("../migrations/0012_unregistered_files.sql"),
    include_str!("../migrations/0013_log_and_assignment_indexes.sql"),
    include_str!("../migrations/0014_dataset_checksums.sql"),
];

/// The tables of the schema that [`MIGRATIONS`] make (a test holds the two together).
const TABLES: &[&str] = &[
    "users",
    "projects",
    "user_projects",
    "audit_log",
    "error_log",
    "datasets",
    "clusters",
    "checkpoints",
    "tasks",
    "removed_files",
    "unregistered_files",
];

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key exists already.
    #[error("already exists")]
    Duplicate,
    /// A row the operation depends on does not exist.
    #[error("not found")]
    NotFound,
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A resource could not be recorded: its owner or its project was deleted meanwhile.
    #[error("user '{owner_id}' or project '{project_id}' no longer exists")]
    OwnerGone {
        /// The resource's owner.
        owner_id: String,
        /// The resource's project.
        project_id: String,
    },
    /// A value in the database cannot be read back (changed from outside).
    #[error("the database holds an unreadable {what}")]
    Corrupt {
        /// What could not be read, and why.
        what: String,
    },
    /// The file holds tables but no schema version of this server: another program's
    /// database.
    #[error("the database holds tables of another program ({tables}) and none of this server")]
    Foreign {
        /// Some of its tables' names.
        tables: String,
    },
    /// The database was written by a newer version of Hanami.
    #[error("database schema version {found} is newer than this server knows ({known})")]
    FutureSchema {
        /// Version found in the file.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
}

/// A value that cannot be read as its column's type is [`StoreError::Corrupt`] (the
/// store's readers of table rows name the table too); every other error is
/// [`StoreError::Database`].
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { index, source } => StoreError::Corrupt {
                what: format!("value in the column {index} of a row ({source})"),
            },
            e => StoreError::Database(e),
        }
    }
}

impl StoreError {
    /// Whether the database could not write because the disk (or the file system's quota) is
    /// full: `SQLITE_FULL`, or such an I/O error.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Io(io)) => matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => self.sqlite_failure() == Some(SqliteFailure::Full),
        }
    }

    /// Whether the database stayed locked for longer than a write waits for it
    /// (`SQLITE_BUSY` after the busy timeout), or every write connection was taken that long
    /// by writes waiting so: usually because another program holds the lock. (The server's
    /// own write transactions begin with a write or `BEGIN IMMEDIATE`, so they meet the lock
    /// through the busy timeout, never at once.)
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut))
            || self.sqlite_code() == Some(SQLITE_BUSY)
    }

    /// What SQLite said went wrong, for the failures whose remedies differ; `None` for other
    /// errors.
    pub fn sqlite_failure(&self) -> Option<SqliteFailure> {
        Some(match self.sqlite_code()? {
            5 | 6 => SqliteFailure::Locked,
            8 => SqliteFailure::ReadOnly,
            10 => SqliteFailure::Io,
            11 | 26 => SqliteFailure::Corrupt,
            13 => SqliteFailure::Full,
            14 => SqliteFailure::CannotOpen,
            _ => return None,
        })
    }

    /// SQLite's primary result code of a database error (`SQLITE_BUSY` = 5, …), if it is one.
    fn sqlite_code(&self) -> Option<i32> {
        match self {
            StoreError::Database(e) => sqlite_code(e),
            _ => None,
        }
    }

    /// Maps a unique-constraint violation to [`StoreError::Duplicate`].
    pub(crate) fn from_insert(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
            _ => StoreError::Database(e),
        }
    }
}

/// A failure that SQLite reported, by what it means for the database's files (from its
/// primary result codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteFailure {
    /// Another connection or program holds a lock (`SQLITE_BUSY`, `SQLITE_LOCKED`).
    Locked,
    /// The files cannot be written (`SQLITE_READONLY`).
    ReadOnly,
    /// The disk or file system reported an error (`SQLITE_IOERR`).
    Io,
    /// The file is damaged or no SQLite database (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    Corrupt,
    /// The disk is full (`SQLITE_FULL`).
    Full,
    /// A file of the database cannot be opened (`SQLITE_CANTOPEN`): out of file
    /// descriptors, say, or a directory that became inaccessible.
    CannotOpen,
}

/// SQLite's result code `SQLITE_BUSY`.
const SQLITE_BUSY: i32 = 5;

/// How long a write waits for SQLite's write lock, and for a free write connection.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Whether a connection given back to the pool may be used again: not where it is still
/// inside a transaction by sqlx's count. A COMMIT that fails on a full disk ends the
/// transaction in SQLite, so the ROLLBACK of the dropped transaction fails and the count
/// stays one up; the next transaction on that connection would then be a SAVEPOINT, which
/// a rollback leaves open, holding the write lock for good (every write waited for it and
/// failed as "locked by another program"), and a `BEGIN IMMEDIATE` would be refused. Such
/// a connection is closed instead (closing rolls back whatever is open).
async fn outside_transaction(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    // Waits for the connection's worker: the rollback of a dropped transaction was queued
    // before.
    drop(conn.lock_handle().await?);
    Ok(!sqlx::Connection::is_in_transaction(conn))
}

/// SQLite's primary result code of an sqlx error, if it is a database error (sqlx reports
/// the extended code, whose low byte is the primary one).
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db.code()?.parse::<i32>().ok().map(|code| code & 0xff),
        _ => None,
    }
}

/// One row of a table, read column by column. SQLite keeps a value of any type in any column
/// of these tables, so a database changed from outside may hold, say, a BLOB where a name
/// belongs: such a value is [`StoreError::Corrupt`], naming the table and the column, where
/// sqlx's `Row::get` panicked (at start-up, with a backtrace instead of the advice to restore
/// the database).
pub(crate) struct Columns<'r> {
    table: &'static str,
    row: &'r SqliteRow,
}

impl<'r> Columns<'r> {
    /// The row `row` of the table `table`.
    pub(crate) fn of(table: &'static str, row: &'r SqliteRow) -> Self {
        Self { table, row }
    }

    /// The value of a column (a NULL reads as `None`, an empty text or 0). Only a value
    /// that cannot be read as `T` is damage; a column the query did not select is the
    /// program's error.
    pub(crate) fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.row.try_get(column).map_err(|e| match e {
            sqlx::Error::ColumnDecode { source, .. } => StoreError::Corrupt {
                what: format!(
                    "value in the column '{column}' of the table '{}' ({source})",
                    self.table
                ),
            },
            e => StoreError::Database(e),
        })
    }

    /// The values of one column in rows of `table`, as [`Columns::get`] reads them.
    pub(crate) fn all<T>(
        table: &'static str,
        rows: &'r [SqliteRow],
        column: &str,
    ) -> Result<Vec<T>, StoreError>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        rows.iter()
            .map(|row| Columns::of(table, row).get(column))
            .collect()
    }

    /// The values of two text columns in rows of `table`, as pairs.
    pub(crate) fn pairs(
        table: &'static str,
        rows: &'r [SqliteRow],
        (first, second): (&str, &str),
    ) -> Result<Vec<(String, String)>, StoreError> {
        rows.iter()
            .map(|row| {
                let row = Columns::of(table, row);
                Ok((row.get(first)?, row.get(second)?))
            })
            .collect()
    }
}

/// The current UTC time as the API shows timestamps: `YYYY-MM-DD HH:MM:SS`.
pub fn now_timestamp() -> String {
    chrono::Utc::now().format(TIMESTAMP).to_string()
}

/// The UTC time `days` days ago, written as [`now_timestamp`] writes it.
pub fn timestamp_days_ago(days: u32) -> String {
    (chrono::Utc::now() - chrono::Duration::days(i64::from(days)))
        .format(TIMESTAMP)
        .to_string()
}

const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S";

/// Handle on the database; clone it freely.
#[derive(Debug, Clone)]
pub struct Store {
    /// Connections for writes (and the reads of a write's transaction).
    pub(crate) pool: SqlitePool,
    /// Connections for reads alone. WAL lets them read while a write is under way or
    /// another program holds the write lock; writes that wait for that lock hold their own
    /// connections, which could otherwise take every one and keep reads (a login, a list)
    /// waiting as long.
    pub(crate) reads: SqlitePool,
    /// The schema version the database had before this opening brought it up to date, if
    /// it was older (and not new).
    upgraded_from: Option<i64>,
}

impl Store {
    /// Opens (creating if needed) the SQLite file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        // The path as it is: through a URL, `%41` and `?` in a folder's name were read as
        // an escape and a query.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit is on disk before it is acted on (a task's end before its network
            // is renamed into place, a dataset's row before the upload is answered): with
            // `Normal`, a power cut could undo commits whose effects on files stayed.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(LOCK_WAIT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(LOCK_WAIT)
            .after_release(|conn, _| Box::pin(outside_transaction(conn)))
            .connect_with(options.clone())
            .await?;
        // Opened after the first connection has made the file and set WAL mode; a write
        // through them fails.
        let reads = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(options.pragma("query_only", "ON"));
        let mut store = Self {
            pool,
            reads,
            upgraded_from: None,
        };
        store.upgraded_from = store.migrate().await?;
        Ok(store)
    }

    /// The schema version the database had before [`Store::open`] brought it up to date to
    /// [`Store::SCHEMA_VERSION`], where it was older than that (and not a new database):
    /// servers of the versions before can no longer open it.
    pub fn upgraded_from(&self) -> Option<i64> {
        self.upgraded_from
    }

    /// The schema version this store brings every database to.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Brings the schema up to date, all steps in one transaction (a step that fails leaves
    /// the database as it was, not at a version between); returns the version before, where
    /// that was older (and not 0, a new database).
    async fn migrate(&self) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await?;
        let known = Self::SCHEMA_VERSION;
        if version > known {
            return Err(StoreError::FutureSchema {
                found: version,
                known,
            });
        }
        if version < 0 {
            return Err(StoreError::Corrupt {
                what: format!("schema version {version} (PRAGMA user_version)"),
            });
        }
        if version == 0 {
            // Another program's database: this server's tables would be added beside its own.
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 4",
            )
            .fetch_all(&mut *conn)
            .await?;
            if !tables.is_empty() {
                return Err(StoreError::Foreign {
                    tables: tables.join(", "),
                });
            }
        }
        if version < known {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            for sql in &MIGRATIONS[version as usize..] {
                tx.execute(*sql).await?;
            }
            tx.execute(format!("PRAGMA user_version = {known}").as_str())
                .await?;
            tx.commit().await?;
        }
        // A table removed from outside is found here, not by the first query that needs it
        // ("no such table", which did not say that the database is damaged).
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut *conn)
                .await?;
        if let Some(missing) = TABLES
            .iter()
            .find(|table| !tables.iter().any(|t| t == *table))
        {
            return Err(StoreError::Corrupt {
                what: format!("schema: the table '{missing}' is missing"),
            });
        }
        Ok((0 < version && version < known).then_some(version))
    }

    /// Closes the pools, waiting for connections in use, and first moves every commit from
    /// the write-ahead log into the database file: SQLite does that at the last close of the
    /// database only, which another program's open connection (or a connection that
    /// outlives the pool) skips, and then a copy of the database file alone (a backup
    /// after a stop) would miss those commits.
    pub async fn close(&self) {
        self.reads.close().await;
        if let Ok(mut conn) = self.pool.acquire().await {
            // Waits for nobody long: a reader that another program keeps on an older
            // snapshot leaves the rest in the log, where the next opening finds it.
            let _ = conn.execute("PRAGMA busy_timeout = 1000").await;
            let _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
            // Not back into the pool with that timeout.
            let _ = conn.close().await;
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::{Columns, Store, StoreError};

    /// A database error keeps sqlx's error as its source, through which answers tell a full
    /// disk or an exhausted descriptor table; a value that cannot be decoded is damage, a
    /// column the query did not select is not.
    #[tokio::test]
    async fn errors_keep_their_cause_and_only_bad_values_are_damage() {
        let emfile = StoreError::from(sqlx::Error::Io(std::io::Error::from_raw_os_error(
            libc::EMFILE,
        )));
        let source = std::error::Error::source(&emfile).expect("a source");
        let io = source.downcast_ref::<sqlx::Error>().expect("sqlx's error");
        assert!(matches!(io, sqlx::Error::Io(e) if e.raw_os_error() == Some(libc::EMFILE)));

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
        let row = sqlx::query("SELECT X'00' AS blob")
            .fetch_one(&store.reads)
            .await
            .unwrap();
        let columns = Columns::of("none", &row);
        assert!(matches!(
            columns.get::<String>("blob"),
            Err(StoreError::Corrupt { what }) if what.starts_with(
                "value in the column 'blob' of the table 'none' (mismatched types;"
            )
        ));
        assert!(matches!(
            columns.get::<String>("missing"),
            Err(StoreError::Database(sqlx::Error::ColumnNotFound(_)))
        ));
        let raw = sqlx::query_scalar::<_, String>("SELECT X'00'")
            .fetch_one(&store.reads)
            .await
            .map_err(StoreError::from);
        assert!(matches!(raw, Err(StoreError::Corrupt { .. })), "{raw:?}");
        store.close().await;
    }

    /// A closed store leaves every commit in the database file itself, also where another
    /// program kept the database open across the close (SQLite's last close then skips its
    /// checkpoint): a copy of that file alone, as a backup after a stop takes it, is whole.
    #[tokio::test]
    async fn a_closed_store_leaves_its_commits_in_the_database_file() {
        use super::{SqliteConnectOptions, SqliteConnection};
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.db");
        let store = Store::open(&path).await.unwrap();
        let options = SqliteConnectOptions::new().filename(&path);
        let mut other = SqliteConnection::connect_with(&options).await.unwrap();
        // It has read the database, so it keeps the write-ahead log open.
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM projects")
            .fetch_one(&mut other)
            .await
            .unwrap();
        store
            .create_project("first", "First", "root")
            .await
            .unwrap();
        store.close().await;
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let copied = Store::open(&copy).await.unwrap();
        let project = copied.project("first").await.unwrap();
        assert_eq!(project.map(|p| p.name).as_deref(), Some("First"));
        copied.close().await;
        other.close().await.unwrap();
    }

    /// The read connections see what the write connections committed, and cannot write.
    #[tokio::test]
    async fn reads_see_committed_writes_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
        store
            .create_project("first", "First", "root")
            .await
            .unwrap();
        assert_eq!(store.project("first").await.unwrap().unwrap().name, "First");
        let refused = sqlx::query("DELETE FROM projects")
            .execute(&store.reads)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("readonly"), "{refused}");
        assert_eq!(store.projects().await.unwrap().len(), 1);
        store.close().await;
    }

    /// A table removed from outside makes the database unusable at the start, saying which.
    #[tokio::test]
    async fn a_missing_table_is_found_at_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.db");
        let store = Store::open(&path).await.unwrap();
        sqlx::query("DROP TABLE tasks")
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;
        match Store::open(&path).await {
            Err(super::StoreError::Corrupt { what }) => {
                assert_eq!(what, "schema: the table 'tasks' is missing")
            }
            other => panic!("{other:?}"),
        }
    }

    /// The tables that the start looks for are those the migrations make.
    #[tokio::test]
    async fn the_tables_looked_for_are_those_of_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
        let mut made: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        made.sort();
        let mut looked_for: Vec<&str> = super::TABLES.to_vec();
        looked_for.sort_unstable();
        assert_eq!(made, looked_for);
        store.close().await;
    }

    /// A connection whose transaction SQLite ended by itself (as a COMMIT that fails on a
    /// full disk does) is not handed out again: it left the database locked for good.
    #[tokio::test]
    async fn a_connection_whose_transaction_sqlite_ended_is_not_used_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
        {
            let mut tx = store.pool.begin().await.unwrap();
            // SQLite's side of the failed COMMIT: the transaction is over, so the
            // transaction's own rollback when it is dropped fails.
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        }
        // Every connection of the pool (all eight at once, so the one given back is among
        // them if it was kept) is outside a transaction.
        let mut held = Vec::new();
        for _ in 0..8 {
            let conn = store.pool.acquire().await.unwrap();
            assert!(!sqlx::Connection::is_in_transaction(&*conn));
            held.push(conn);
        }
        drop(held);
        // A transaction that rolls back leaves the database free for the next write.
        for _ in 0..8 {
            let mut tx = store.pool.begin().await.unwrap();
            sqlx::query(
                "INSERT INTO projects (id, name, creator_id, created_at) \
                         VALUES ('p', 'p', 'root', 'now')",
            )
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.rollback().await.unwrap();
        }
        let started = std::time::Instant::now();
        store
            .create_project("after", "After", "root")
            .await
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        store.close().await;
    }
}
