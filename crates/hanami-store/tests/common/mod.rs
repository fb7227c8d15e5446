//! What the store's test files share: a fresh store, and a database taken back to an older
//! schema.

use std::path::Path;

use hanami_store::Store;

/// A store in a new temporary directory (kept alive by the returned guard).
pub async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
    (dir, store)
}

/// Adds the global admin `owner`, whom the resources of these tests belong to.
pub async fn add_owner(store: &Store) {
    store
        .create_user(hanami_store::users::NewUser {
            id: "owner",
            name: "Owner",
            creator_id: "root",
            is_admin: true,
            pw_hash: "hash",
        })
        .await
        .unwrap();
}

/// Runs `statements` on the database file at `path` outside the store (the store must be
/// closed): to take it back to an older schema, or change it as another program would.
pub async fn alter(path: &Path, statements: &[&str]) {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for sql in statements {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// The statements that undo each migration from the fifth on, newest first, with the schema
/// version each leaves.
const UNDO: &[(i64, &[&str])] = &[
    (13, &["ALTER TABLE datasets DROP COLUMN checksum"]),
    (
        12,
        &[
            "DROP INDEX audit_log_by_time",
            "DROP INDEX error_log_by_time",
            "DROP INDEX user_projects_by_project",
        ],
    ),
    (
        11,
        &[
            "DROP TRIGGER datasets_registered_file",
            "DROP TRIGGER clusters_registered_file",
            "DROP TABLE unregistered_files",
        ],
    ),
    (10, &["ALTER TABLE tasks DROP COLUMN work"]),
    (9, &["ALTER TABLE clusters DROP COLUMN unsaved_base"]),
    (
        8,
        &[
            "DROP TRIGGER datasets_removed_file",
            "DROP TRIGGER checkpoints_removed_file",
            "DROP TRIGGER clusters_removed_file",
            "DROP TABLE removed_files",
        ],
    ),
    (7, &["ALTER TABLE tasks DROP COLUMN network_pending"]),
    (6, &["ALTER TABLE clusters DROP COLUMN unsaved_since"]),
    (5, &["ALTER TABLE tasks DROP COLUMN note"]),
    (4, &["ALTER TABLE datasets DROP COLUMN value_ranges"]),
];

/// Takes the database file at `path` (its store closed) back to schema `version`, keeping
/// its rows, as an older server would have left it.
pub async fn back_to_schema(path: &Path, version: i64) {
    let mut statements: Vec<String> = UNDO
        .iter()
        .filter(|(leaves, _)| *leaves >= version)
        .flat_map(|(_, undo)| undo.iter().map(|s| (*s).to_owned()))
        .collect();
    statements.push(format!("PRAGMA user_version = {version}"));
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    alter(path, &statements).await;
}

/// A dataset's content summary without value ranges, with checksum `checksum` (its text).
pub fn content(checksum: &str) -> hanami_store::dataset::ContentSummary {
    hanami_store::dataset::ContentSummary {
        value_ranges: Default::default(),
        checksum: checksum.parse().unwrap(),
    }
}
