//! Clusters, hosts and checkpoints.

use base64::Engine as _;
use hanami_types::clusters::{
    CreateClusterRequest, LoadClusterRequest, LoadStarted, MODE_DIRECT, MODE_TASK, ModeChanged,
    Resource, SaveClusterRequest, SaveStarted, SetModeRequest, SwitchHostRequest,
};
use hanami_types::list::ListTable;

use crate::{Client, Result};

impl Client {
    /// Creates a cluster from template text (empty: a cluster without a network, to restore a
    /// checkpoint into).
    pub async fn create_cluster(&self, name: &str, template: &str) -> Result<Resource> {
        let body = CreateClusterRequest {
            name: name.to_owned(),
            template: base64::engine::general_purpose::STANDARD.encode(template),
        };
        self.post("cluster", &body).await
    }

    /// One cluster.
    pub async fn cluster(&self, uuid: &str) -> Result<Resource> {
        self.get("cluster", &[("uuid", uuid)]).await
    }

    /// All clusters visible to the caller.
    pub async fn clusters(&self) -> Result<ListTable> {
        self.get("cluster/all", &[]).await
    }

    /// Deletes a cluster: its running task stops and its queued tasks go with it (a queued
    /// save makes no checkpoint, a queued request no result); the result datasets and
    /// checkpoints made before stay.
    pub async fn delete_cluster(&self, uuid: &str) -> Result<()> {
        self.delete("cluster", &[("uuid", uuid)]).await
    }

    /// Queues a checkpoint of a cluster as a task of the cluster: the answer's uuid is the
    /// task's, to wait for with [`Client::wait_for_task`], and the checkpoint's once it is
    /// made.
    pub async fn save_cluster(&self, cluster_uuid: &str, name: &str) -> Result<SaveStarted> {
        let body = SaveClusterRequest {
            name: name.to_owned(),
            cluster_uuid: cluster_uuid.to_owned(),
        };
        self.post("cluster/save", &body).await
    }

    /// Queues the restore of a checkpoint into a cluster, as a task of the cluster: the
    /// answer's uuid is the task's (see [`Client::wait_for_task`]). The checkpoint may be
    /// deleted once this has answered; the restore still reads it (unless the server stops
    /// before the restore starts: the restart aborts it then, saying why). The clusters of one
    /// user keep at most 16 restores queued in all ([`Error::Conflict`](crate::Error::Conflict)
    /// beyond).
    pub async fn restore_cluster(
        &self,
        cluster_uuid: &str,
        checkpoint_uuid: &str,
    ) -> Result<LoadStarted> {
        let body = LoadClusterRequest {
            cluster_uuid: cluster_uuid.to_owned(),
            checkpoint_uuid: checkpoint_uuid.to_owned(),
        };
        self.post("cluster/load", &body).await
    }

    /// Switches a cluster to DIRECT (`true`) or TASK mode.
    pub async fn set_direct_mode(&self, cluster_uuid: &str, direct: bool) -> Result<ModeChanged> {
        let body = SetModeRequest {
            uuid: cluster_uuid.to_owned(),
            new_state: if direct { MODE_DIRECT } else { MODE_TASK }.to_owned(),
            connection_uuid: None,
        };
        self.put("cluster/set_mode", &body).await
    }

    /// Moves a cluster to another logical host.
    pub async fn switch_host(&self, cluster_uuid: &str, host_uuid: &str) -> Result<Resource> {
        let body = SwitchHostRequest {
            cluster_uuid: cluster_uuid.to_owned(),
            host_uuid: host_uuid.to_owned(),
        };
        self.put("cluster/switch_host", &body).await
    }

    /// The logical hosts.
    pub async fn hosts(&self) -> Result<ListTable> {
        self.get("host/all", &[]).await
    }

    /// One checkpoint.
    pub async fn checkpoint(&self, uuid: &str) -> Result<Resource> {
        self.get("checkpoint", &[("uuid", uuid)]).await
    }

    /// All checkpoints visible to the caller.
    pub async fn checkpoints(&self) -> Result<ListTable> {
        self.get("checkpoint/all", &[]).await
    }

    /// Deletes a checkpoint.
    pub async fn delete_checkpoint(&self, uuid: &str) -> Result<()> {
        self.delete("checkpoint", &[("uuid", uuid)]).await
    }
}
