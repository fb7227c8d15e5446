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

    /// The rows as values of `T`, each read from an object of its cells keyed by the column
    /// names: a struct with fields named after the columns it wants (the others are ignored,
    /// unless it denies unknown fields).
    pub fn rows_as<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, serde_json::Error> {
        self.body
            .iter()
            .map(|row| {
                let cells = self.header.iter().cloned().zip(row.iter().cloned());
                serde_json::from_value(Value::Object(cells.collect()))
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Named {
        uuid: String,
        name: String,
    }

    #[test]
    fn rows_read_as_structs_by_column_name() {
        let mut table = ListTable::new(RESOURCE_COLUMNS);
        table.body.push(
            ["2026-12-01 04:00:00", "u-1", "p", "o", "private", "first"]
                .map(Value::from)
                .to_vec(),
        );
        let rows: Vec<Named> = table.rows_as().unwrap();
        assert_eq!(
            rows,
            [Named {
                uuid: "u-1".into(),
                name: "first".into()
            }]
        );
        // A column the struct wants and the table lacks is an error, not a default.
        #[derive(Deserialize)]
        struct Wanting {
            state: String,
        }
        if let Ok(rows) = table.rows_as::<Wanting>() {
            panic!("read a state {:?} that the table lacks", rows[0].state);
        }
        assert!(
            ListTable::new(TASK_COLUMNS)
                .rows_as::<Named>()
                .unwrap()
                .is_empty()
        );
    }
}
