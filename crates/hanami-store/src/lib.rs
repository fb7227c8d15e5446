//! Persistence of the Hanami server: the SQLite database (users, projects, resources, tasks,
//! logs) and the file store for datasets, checkpoints and uploads.
//!
//! [`Store`] is a cheap-to-clone handle on a connection pool; every method is async and may
//! be called from any task. Schema changes are numbered SQL files in `migrations/`, applied
//! in order at [`Store::open`] and recorded in SQLite's `user_version`. The [`dataset`]
//! module is synchronous file I/O: the dataset file format and the upload converters.

pub mod dataset;
mod db;
pub mod files;
pub mod logs;
pub mod projects;
pub mod resources;
pub mod tasks;
pub mod users;

pub use db::{SqliteFailure, Store, StoreError, now_timestamp, timestamp_days_ago};
