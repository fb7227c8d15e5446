//! The table shape every list endpoint answers with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A list response: column names and rows with one cell per column, in the same order.
///
/// Clients index rows by position (column 1 is the `uuid` or `id` of database-backed
/// lists), so the column order of each endpoint is part of the wire contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListTable {
    /// Column names.
    pub header: Vec<String>,
    /// Rows; each has exactly one cell per header entry.
    pub body: Vec<Vec<Value>>,
}

impl ListTable {
    /// An empty table with the given columns.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            body: Vec::new(),
        }
    }

    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// Column order of `GET user/all`.
pub const USER_COLUMNS: &[&str] = &[
    "created_at",
    "id",
    "name",
    "creator_id",
    "projects",
    "is_admin",
];
/// Column order of `GET project/all`.
pub const PROJECT_COLUMNS: &[&str] = &["created_at", "id", "name", "creator_id"];
/// Column order of the resource lists (`dataset/all`, `cluster/all`, `checkpoint/all`).
pub const RESOURCE_COLUMNS: &[&str] = &[
    "created_at",
    "uuid",
    "project_id",
    "owner_id",
    "visibility",
    "name",
];
/// Column order of `GET audit_log`.
pub const AUDIT_LOG_COLUMNS: &[&str] = &["created_at", "user_id", "endpoint", "request_type"];
/// Column order of `GET error_log`.
pub const ERROR_LOG_COLUMNS: &[&str] = &[
    "created_at",
    "user_id",
    "component",
    "context",
    "input_values",
    "message",
];
/// Column order of `GET task/all` (every cell is a string).
pub const TASK_COLUMNS: &[&str] = &["uuid", "state", "percentage", "queued", "start", "end"];
/// Column order of `GET host/all`.
pub const HOST_COLUMNS: &[&str] = &["uuid", "type"];
