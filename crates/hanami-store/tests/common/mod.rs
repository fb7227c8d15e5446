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

/// Runs `statements` on the database file at `path` outside the store (the store must be
/// closed): to take it back to an older schema, or change it as another program would.
pub async fn alter(path: &Path, statements: &[&str]) {
    let url = format!("sqlite://{}", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for sql in statements {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}
