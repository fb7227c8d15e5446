//! The audit log (who changed what) and the error log (internal errors).

use hanami_types::list::{AUDIT_LOG_COLUMNS, ERROR_LOG_COLUMNS, ListTable};
use hanami_types::logs::LOG_PAGE_SIZE;
use serde_json::Value;
use sqlx::SqliteConnection;

use crate::db::Columns;
use crate::{Store, StoreError, now_timestamp};

/// One internal error, as recorded.
#[derive(Debug, Clone)]
pub struct ErrorEntry<'a> {
    /// Id returned to the client, so that an operator can find the entry.
    pub error_id: &'a str,
    /// Caller's user id, empty outside a request.
    pub user_id: &'a str,
    /// Where it happened (endpoint id and method, or a background job's name).
    pub context: &'a str,
    /// The request's inputs, passwords removed.
    pub input_values: &'a Value,
    /// What went wrong.
    pub message: &'a str,
}

impl Store {
    /// Records a state-changing request.
    pub async fn append_audit(
        &self,
        user_id: &str,
        endpoint: &str,
        request_type: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (created_at, user_id, endpoint, request_type) VALUES (?, ?, ?, ?)",
        )
        .bind(now_timestamp())
        .bind(user_id)
        .bind(endpoint)
        .bind(request_type)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One page (of [`LOG_PAGE_SIZE`] rows, oldest first) of a user's audit log; with
    /// `since` (a timestamp as [`crate::now_timestamp`] writes it), only the rows written
    /// then or later.
    pub async fn audit_page(
        &self,
        user_id: &str,
        since: Option<&str>,
        page: u32,
    ) -> Result<ListTable, StoreError> {
        let rows = sqlx::query(
            "SELECT created_at, user_id, endpoint, request_type FROM audit_log \
             WHERE user_id = ? AND (? IS NULL OR created_at >= ?) ORDER BY seq LIMIT ? OFFSET ?",
        )
        .bind(user_id)
        .bind(since)
        .bind(since)
        .bind(LOG_PAGE_SIZE)
        .bind(i64::from(page) * i64::from(LOG_PAGE_SIZE))
        .fetch_all(&self.reads)
        .await?;
        let mut table = ListTable::new(AUDIT_LOG_COLUMNS);
        for row in &rows {
            let row = Columns::of("audit_log", row);
            table.body.push(
                ["created_at", "user_id", "endpoint", "request_type"]
                    .iter()
                    .map(|c| row.get(c).map(Value::String))
                    .collect::<Result<_, _>>()?,
            );
        }
        Ok(table)
    }

    /// Records an internal error.
    pub async fn append_error(&self, entry: ErrorEntry<'_>) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_error(&mut conn, entry).await
    }

    /// One page of the error log, of one user or (with `None`) of everybody.
    pub async fn error_page(
        &self,
        user_id: Option<&str>,
        page: u32,
    ) -> Result<ListTable, StoreError> {
        // Two statements, so that one user's page is found through the index by user (a
        // condition that may or may not name a user kept SQLite from using it); the one for
        // everybody binds no user, so its `?1 IS NULL` always holds.
        let sql = match user_id {
            Some(_) => {
                "SELECT created_at, user_id, component, context, input_values, message, error_id \
                 FROM error_log WHERE user_id = ?1 ORDER BY seq LIMIT ?2 OFFSET ?3"
            }
            None => {
                "SELECT created_at, user_id, component, context, input_values, message, error_id \
                 FROM error_log WHERE ?1 IS NULL ORDER BY seq LIMIT ?2 OFFSET ?3"
            }
        };
        let rows = sqlx::query(sql)
            .bind(user_id)
            .bind(LOG_PAGE_SIZE)
            .bind(i64::from(page) * i64::from(LOG_PAGE_SIZE))
            .fetch_all(&self.reads)
            .await?;
        let mut table = ListTable::new(ERROR_LOG_COLUMNS);
        for row in &rows {
            let row = Columns::of("error_log", row);
            let inputs: String = row.get("input_values")?;
            let message: String = row.get("message")?;
            let error_id: String = row.get("error_id")?;
            table.body.push(vec![
                Value::String(row.get("created_at")?),
                Value::String(row.get("user_id")?),
                Value::String(row.get("component")?),
                Value::String(row.get("context")?),
                serde_json::from_str(&inputs).unwrap_or(Value::String(inputs)),
                Value::String(format!("[{error_id}] {message}")),
            ]);
        }
        Ok(table)
    }

    /// Removes the audit- and error-log entries from before `cutoff` (a timestamp as
    /// [`crate::now_timestamp`] writes them); returns how many.
    pub async fn remove_logs_before(&self, cutoff: &str) -> Result<u64, StoreError> {
        /// Rows removed per statement, so that other writers never wait long.
        const BATCH: i64 = 10_000;
        let mut removed = 0;
        for table in ["audit_log", "error_log"] {
            loop {
                // Timestamps are written in one fixed format, so they order as text.
                let batch = sqlx::query(&format!(
                    "DELETE FROM {table} WHERE seq IN \
                     (SELECT seq FROM {table} WHERE created_at < ? LIMIT ?)"
                ))
                .bind(cutoff)
                .bind(BATCH)
                .execute(&self.pool)
                .await?
                .rows_affected();
                removed += batch;
                if batch < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

/// Inserts an error-log entry (see [`Store::append_error`]).
pub(crate) async fn insert_error(
    conn: &mut SqliteConnection,
    entry: ErrorEntry<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO error_log (created_at, error_id, user_id, component, context, \
         input_values, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(now_timestamp())
    .bind(entry.error_id)
    .bind(entry.user_id)
    .bind("")
    .bind(entry.context)
    .bind(entry.input_values.to_string())
    .bind(entry.message)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
