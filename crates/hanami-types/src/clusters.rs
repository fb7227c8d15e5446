//! Clusters, their modes and hosts, and checkpoints.

use serde::{Deserialize, Serialize};

/// A cluster (or checkpoint) as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Creation time.
    pub created_at: String,
    /// Uuid.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Owning user.
    pub owner_id: String,
    /// Owning project.
    pub project_id: String,
    /// Always `private`.
    pub visibility: String,
}

/// Body of `POST /v1.0alpha/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateClusterRequest {
    /// Cluster name, unique among the clusters the caller sees.
    pub name: String,
    /// Base64 of the cluster template; empty for a cluster without a network (a target for
    /// restoring a checkpoint).
    #[serde(default)]
    pub template: String,
}

/// Largest cluster template, in bytes, that a server takes (before its base64 encoding).
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;

/// The two modes of a cluster.
pub const MODE_TASK: &str = "TASK";
/// Direct mode: driven sample by sample over a websocket; tasks wait.
pub const MODE_DIRECT: &str = "DIRECT";

/// Body of `PUT /v1.0alpha/cluster/set_mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetModeRequest {
    /// Cluster uuid.
    pub uuid: String,
    /// `TASK` or `DIRECT`.
    pub new_state: String,
    /// Accepted and ignored (the original's clients send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_uuid: Option<String>,
}

/// Answer of `PUT /v1.0alpha/cluster/set_mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeChanged {
    /// Cluster creation time.
    pub created_at: String,
    /// Cluster uuid.
    pub uuid: String,
    /// Cluster name.
    pub name: String,
    /// The new mode.
    pub new_state: String,
}

/// Body of `PUT /v1.0alpha/cluster/switch_host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchHostRequest {
    /// Cluster uuid.
    pub cluster_uuid: String,
    /// Host uuid from `GET host/all`.
    pub host_uuid: String,
}

/// Body of `POST /v1.0alpha/cluster/save`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveClusterRequest {
    /// Name of the checkpoint (and of the save task).
    pub name: String,
    /// Cluster uuid.
    pub cluster_uuid: String,
}

/// Answer of `POST /v1.0alpha/cluster/save`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveStarted {
    /// Uuid of the save task, which is also the uuid of the checkpoint it creates.
    pub uuid: String,
    /// Checkpoint name.
    pub name: String,
}

/// Body of `POST /v1.0alpha/cluster/load`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadClusterRequest {
    /// Cluster that takes over the checkpoint's network.
    pub cluster_uuid: String,
    /// The checkpoint.
    pub checkpoint_uuid: String,
}

/// Answer of `POST /v1.0alpha/cluster/load`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStarted {
    /// Uuid of the restore task.
    pub uuid: String,
}
