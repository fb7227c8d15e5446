//! Persistence of the Hanami server: the SQLite database (users, projects, resources, logs)
//! and the file store for datasets, checkpoints and temporary uploads.

pub mod dataset;
