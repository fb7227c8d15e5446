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
    /// Where the task is: `queued`, `active`, `aborted` or `finished` on the wire.
    pub state: TaskState,
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

/// The states of a task, named on the wire in lower case. These four are all the original
/// API and this server know; an answer with another word does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting in the cluster's queue.
    Queued,
    /// Being processed.
    Active,
    /// Stopped before its end (deleted while active, its cluster deleted, or failed); the
    /// task's `note` says why.
    Aborted,
    /// Done.
    Finished,
}

impl TaskState {
    /// The state as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Active => "active",
            TaskState::Aborted => "aborted",
            TaskState::Finished => "finished",
        }
    }

    /// The state of a wire name (`None` for an unknown one).
    pub fn parse(name: &str) -> Option<Self> {
        [
            TaskState::Queued,
            TaskState::Active,
            TaskState::Aborted,
            TaskState::Finished,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether the task has ended (`aborted` or `finished`).
    pub fn ended(self) -> bool {
        matches!(self, TaskState::Aborted | TaskState::Finished)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

#[cfg(test)]
mod tests {
    use super::TaskState;

    #[test]
    fn states_are_lower_case_words_on_the_wire() {
        for (state, word) in [
            (TaskState::Queued, "queued"),
            (TaskState::Active, "active"),
            (TaskState::Aborted, "aborted"),
            (TaskState::Finished, "finished"),
        ] {
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{word}\"")
            );
            assert_eq!(
                serde_json::from_str::<TaskState>(&format!("\"{word}\"")).unwrap(),
                state
            );
            assert_eq!(TaskState::parse(word), Some(state));
            assert_eq!(state.to_string(), word);
            assert_eq!(state.ended(), word == "aborted" || word == "finished");
        }
        assert!(serde_json::from_str::<TaskState>("\"running\"").is_err());
        assert_eq!(TaskState::parse("Queued"), None);
    }
}
