//! Train and request tasks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A task as `POST task/*` and `GET task` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Task uuid.
    pub uuid: String,
    /// Task name.
    pub name: String,
    /// Rows processed so far.
    pub current_cycle: u64,
    /// Rows to process.
    pub total_number_of_cycles: u64,
    /// `queued`, `active`, `aborted` or `finished`.
    pub state: String,
    /// When the task was queued, UTC `YYYY-MM-DD HH:MM:SS`.
    pub queue_timestamp: String,
    /// When it started, or `-`.
    pub start_timestamp: String,
    /// When it ended, or `-`.
    pub end_timestamp: String,
    /// Why the task was aborted, or what it could not do (growth refused by a memory
    /// budget); absent when there is nothing to tell. Not in the original's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Body of `POST /v1.0alpha/task/train`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainTaskRequest {
    /// Task name.
    pub name: String,
    /// Cluster uuid.
    pub cluster_uuid: String,
    /// Input name → dataset uuid (the name is also the dataset's column group).
    pub inputs: BTreeMap<String, String>,
    /// Output name → dataset uuid holding the expected values.
    pub outputs: BTreeMap<String, String>,
}

/// Body of `POST /v1.0alpha/task/request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTaskRequest {
    /// Task name.
    pub name: String,
    /// Cluster uuid.
    pub cluster_uuid: String,
    /// Input name → dataset uuid.
    pub inputs: BTreeMap<String, String>,
    /// Output name → name of the result dataset (whose uuid is the task's).
    pub results: BTreeMap<String, String>,
}
