//! Clusters: create from a template, get, list, delete, modes, host, and checkpoint
//! save/restore (queued as tasks of the cluster).

use std::sync::Arc;

use anyhow::Context;
use base64::Engine as _;
use hanami_auth::{Caller, Method};
use hanami_engine::{Cluster, ClusterOptions, Template};
use hanami_store::resources::{FileNote, Kind, ResourceRow};
use hanami_types::clusters::{
    CreateClusterRequest, LoadClusterRequest, LoadStarted, ModeChanged, Resource,
    SaveClusterRequest, SaveStarted, SetModeRequest, SwitchHostRequest,
};
use hanami_types::list::ListTable;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::{Field, Pattern};
use super::{ApiError, ApiResult, NoInput, Routes};
use crate::clusters::task::{Task, Work, WorkKind};
use crate::clusters::{ClusterHandle, Mode};
use crate::memory::NetworkMemory;
use crate::state::App;

const NAME: Field = Field::name("name");
const UUID: Field = Field::uuid("uuid");
const CLUSTER_UUID: Field = Field::uuid("cluster_uuid");
/// Base64 of a template of at most 1 MiB.
const TEMPLATE: Field = Field::string("template", None, 0, 1_400_000).optional();

// The clients' limit (`hanami_types`) is the engine's.
const _: () = assert!(
    hanami_types::clusters::MAX_TEMPLATE_BYTES
        == hanami_engine::template::limits::MAX_TEMPLATE_BYTES
);

const LOAD_FIELDS: &[Field] = &[CLUSTER_UUID, Field::uuid("checkpoint_uuid")];
const MODE_FIELDS: &[Field] = &[
    UUID,
    Field::string("new_state", Some(Pattern::Mode), 4, 6),
    Field::uuid("connection_uuid").optional(),
];
const HOST_FIELDS: &[Field] = &[CLUSTER_UUID, Field::uuid("host_uuid")];

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/cluster", Method::Post, &[NAME, TEMPLATE], create);
    routes.add("v1.0alpha/cluster", Method::Get, &[UUID], get);
    routes.add("v1.0alpha/cluster/all", Method::Get, &[], list);
    routes.add("v1.0alpha/cluster", Method::Delete, &[UUID], delete);
    routes.add(
        "v1.0alpha/cluster/save",
        Method::Post,
        &[NAME, CLUSTER_UUID],
        save,
    );
    routes.add("v1.0alpha/cluster/load", Method::Post, LOAD_FIELDS, load);
    routes.add(
        "v1.0alpha/cluster/set_mode",
        Method::Put,
        MODE_FIELDS,
        set_mode,
    );
    routes.add(
        "v1.0alpha/cluster/switch_host",
        Method::Put,
        HOST_FIELDS,
        switch_host,
    );
}

/// The 404 of a cluster outside the caller's scope or unknown.
pub fn not_found(uuid: &str) -> ApiError {
    ApiError::UnknownResource {
        kind: Kind::Cluster,
        uuid: uuid.to_owned(),
    }
}

/// A cluster visible to the caller, or its 404.
pub fn visible(app: &App, caller: &Caller, uuid: &str) -> ApiResult<Arc<ClusterHandle>> {
    app.clusters
        .get(&caller.scope(), uuid)
        .ok_or_else(|| not_found(uuid))
}

/// The API shape of a resource row.
pub fn resource(row: &ResourceRow) -> Resource {
    Resource {
        created_at: row.created_at.clone(),
        uuid: row.uuid.clone(),
        name: row.name.clone(),
        owner_id: row.owner_id.clone(),
        project_id: row.project_id.clone(),
        visibility: row.visibility.clone(),
    }
}

/// The line and column (both from 1, columns in characters) just after `text`, valid UTF-8;
/// a leading byte-order mark does not count, as in the template's own positions.
fn position(text: &[u8]) -> (usize, usize) {
    let text = std::str::from_utf8(text).unwrap_or_default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let line = text.matches('\n').count() + 1;
    let column = text
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

/// Builds the network of a base64 template (`None` for an empty template), under the
/// networks' memory budgets.
fn build(encoded: &str, memory: &NetworkMemory) -> ApiResult<Option<Cluster>> {
    if encoded.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| {
            ApiError::BadRequest("Uploaded template is not a valid base64-String.".into())
        })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = position(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
        ApiError::BadRequest(format!(
            "Uploaded template is not valid UTF-8 text: line {line}, column {column}: the bytes \
             there are no UTF-8 character"
        ))
    })?;
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::BadRequest(format!(
            "Uploaded template is not a valid cluster-template: {e}"
        ))
    };
    let template = Template::parse(&text).map_err(|e| invalid(&e))?;
    let options = ClusterOptions {
        seed: rand::random(),
        memory_limit: memory.per_cluster,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::new(&template, options).map_err(|e| match e {
        // The engine's own template checks, including outputs it can never grow into.
        e @ (hanami_engine::EngineError::Template(_)
        | hanami_engine::EngineError::UnreachableOutput { .. }
        | hanami_engine::EngineError::OutputMissedByGrowthPlan { .. }
        | hanami_engine::EngineError::UnconnectedInput { .. }
        | hanami_engine::EngineError::InputMissedByGrowthPlan { .. }) => invalid(&e),
        other => ApiError::Internal(anyhow::Error::new(other).context("cannot build the cluster")),
    })?;
    let bytes = cluster.size().bytes;
    if bytes > memory.per_cluster {
        return Err(ApiError::BadRequest(format!(
            "Uploaded template makes a network of {} before it learns anything, more than the \
             {} MiB a cluster's network may hold (cluster_memory_mib): it could never grow",
            crate::memory::size(bytes),
            memory.per_cluster >> 20
        )));
    }
    if bytes > memory.pool.limit() {
        // No deletion would make room: the message must not suggest one.
        return Err(ApiError::BadRequest(format!(
            "Uploaded template makes a network of {} before it learns anything, more than the \
             {} MiB all clusters' networks may hold together (clusters_memory_mib): it could \
             never fit",
            crate::memory::size(bytes),
            memory.pool.limit() >> 20
        )));
    }
    memory.try_adopt(&mut cluster).map_err(|e| {
        ApiError::Conflict(format!(
            "Cannot create the cluster: {e}. Delete clusters that are no longer needed; the \
             clusters of all users share this budget, so ask an administrator where others' \
             fill it."
        ))
    })?;
    Ok(Some(cluster))
}

/// The 409 for a cluster name that is taken in the caller's scope.
async fn check_name_free(app: &App, caller: &Caller, name: &str) -> ApiResult<()> {
    if app
        .store
        .resource_name_taken(Kind::Cluster, &caller.scope(), name)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "Cluster with name '{name}' already exists."
        )));
    }
    Ok(())
}

async fn create(app: App, caller: Caller, request: CreateClusterRequest) -> ApiResult<Resource> {
    // Checked first so that a taken name costs no network, and again under the lock below.
    check_name_free(&app, &caller, &request.name).await?;
    let template = request.template;
    let memory = app.workers.memory.clone();
    let network = tokio::task::spawn_blocking(move || build(&template, &memory)).await??;
    // A new network leaves the disk reserve free, as uploads do (its file is about as large
    // as the network's memory): past the reserve, a restart could fail for want of space.
    // A cluster without one writes a marker of a few bytes, as small as its database row.
    let space = match &network {
        Some(network) => {
            let size = network.size().bytes as u64;
            let (workers, dir) = (app.workers.clone(), app.paths.clusters());
            // Held until the network is written, below.
            let space = tokio::task::spawn_blocking(move || {
                workers.reserve_disk(&dir, "the cluster's network", size)
            })
            .await?
            .map_err(|e| ApiError::Conflict(format!("Cannot create the cluster: {e:#}")))?;
            Some(space)
        }
        None => None,
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let row = ResourceRow::new(&uuid, &request.name, &caller.id, &caller.project_id, &uuid);
    let cluster = Arc::new(ClusterHandle::new(
        row.clone(),
        network,
        app.paths.clusters().join(&row.file_name),
    ));
    // The network is on disk before the cluster exists; noted, so that a crash before the
    // row is in leaves no file that nobody was told of.
    app.store
        .note_unregistered_file(Kind::Cluster, &row.file_name)
        .await?;
    let saving = cluster.clone();
    tokio::task::spawn_blocking(move || saving.save_network())
        .await?
        .context("cannot save the cluster's network")?;
    drop(space);
    crate::crash_point::reached_async("cluster-create:saved").await;
    // Row and registry entry together, in a task of its own: a client that goes away
    // meanwhile (dropping this handler) cannot leave a row without a cluster.
    let name = request.name;
    tokio::spawn(async move {
        let names = app.cluster_names.lock().await;
        let inserted = match check_name_free(&app, &caller, &name).await {
            Ok(()) => app
                .store
                .insert_resource(Kind::Cluster, &row)
                .await
                .map_err(ApiError::from),
            Err(taken) => Err(taken),
        };
        if let Err(e) = inserted {
            drop(names);
            let removed = tokio::task::spawn_blocking(move || cluster.remove_network_file());
            if matches!(removed.await, Ok(Ok(()))) {
                super::forget_file_note(
                    &app,
                    FileNote::Unregistered,
                    Kind::Cluster,
                    &row.file_name,
                )
                .await;
            }
            return Err(e);
        }
        // Still under the lock: a deletion that finds the row must find the cluster too.
        app.clusters.insert(cluster);
        drop(names);
        Ok(resource(&row))
    })
    .await?
}

#[derive(Deserialize)]
struct ByUuid {
    uuid: String,
}

async fn get(app: App, caller: Caller, query: ByUuid) -> ApiResult<Resource> {
    Ok(resource(&visible(&app, &caller, &query.uuid)?.row))
}

async fn list(app: App, caller: Caller, _: NoInput) -> ApiResult<ListTable> {
    Ok(app
        .store
        .resource_list(Kind::Cluster, &caller.scope())
        .await?)
}

/// Deletes a cluster: its queue is dropped, a running task stops, its saved network and
/// task records are removed; result datasets and checkpoints stay. On a full disk, where the
/// row's deletion cannot be committed, the network file goes first to make room; a cluster
/// whose deletion failed even so (gone from memory, its row left) is deleted by the next
/// attempt.
async fn delete(app: App, caller: Caller, query: ByUuid) -> ApiResult<Map<String, Value>> {
    let scope = caller.scope();
    let mut cluster = app.clusters.get(&scope, &query.uuid);
    let mut file = None;
    if cluster.is_none() {
        // A cluster being created has its row before it is registered (both under this
        // lock); it is no half-deleted one.
        let _creating = app.cluster_names.lock().await;
        cluster = app.clusters.get(&scope, &query.uuid);
        if cluster.is_none() {
            let row = app
                .store
                .resource(Kind::Cluster, &scope, &query.uuid)
                .await?
                .ok_or_else(|| not_found(&query.uuid))?;
            file = Some(app.paths.clusters().join(&row.file_name));
        }
    }
    let uuid = query.uuid;
    // In a task of its own: a client that goes away meanwhile (dropping this handler)
    // cannot leave the row, the task records or the network file behind.
    tokio::spawn(async move {
        // Of deletions at the same moment, only the one that removes the row answers 200,
        // as if they had come one after the other. The one that takes the cluster out of
        // memory cleans up after it in any case (it waits for a save that is under way).
        if let Some(cluster) = &cluster
            && app.clusters.remove(&cluster.row.uuid).is_none()
        {
            return Err(not_found(&uuid));
        }
        // Blocking: it waits for a save of the network that began before the deletion.
        // Whether the file is gone.
        let remove_network = async || match cluster.clone() {
            Some(cluster) => tokio::task::spawn_blocking(move || cluster.remove_network_file())
                .await?
                .context("cannot remove the cluster's saved network")
                .map_err(ApiError::Internal)
                .map(|()| true),
            None => match file.clone() {
                Some(file) => Ok(super::remove_file(file).await),
                None => Ok(true),
            },
        };
        let deleted =
            super::delete_row_making_room(&app, Kind::Cluster, &scope, &uuid, async |_| {
                remove_network().await.map(drop)
            })
            .await?;
        if deleted.is_none() && cluster.is_none() {
            return Err(not_found(&uuid));
        }
        app.store.delete_cluster_tasks(&uuid).await?;
        // Results so far of request tasks that a stop interrupted, which no longer go on.
        for task in cluster.iter().flat_map(|cluster| cluster.tasks()) {
            super::remove_file(app.paths.partial_result(&task.uuid)).await;
        }
        let gone = remove_network().await?;
        match deleted {
            Some(row) => {
                if gone {
                    super::forget_file_note(&app, FileNote::Removed, Kind::Cluster, &row.file_name)
                        .await;
                }
                Ok(Map::new())
            }
            None => Err(not_found(&uuid)),
        }
    })
    .await?
}

/// Queues a checkpoint of the cluster; the task's uuid is the checkpoint's. On an idle
/// cluster the answer comes after the checkpoint is written.
async fn save(app: App, caller: Caller, request: SaveClusterRequest) -> ApiResult<SaveStarted> {
    let cluster = visible(&app, &caller, &request.cluster_uuid)?;
    if !cluster.has_network() {
        return Err(ApiError::Conflict(format!(
            "Cluster '{}' has no network to save yet",
            request.cluster_uuid
        )));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let work = Work::Save {
        owner_id: caller.id.clone(),
        project_id: caller.project_id.clone(),
    };
    let task = Arc::new(Task::new(uuid.clone(), request.name.clone(), 1, work));
    if super::tasks::enqueue(&app, &cluster, &task).await? {
        super::tasks::until_ended(&app, &task).await;
    }
    Ok(SaveStarted {
        uuid,
        name: request.name,
    })
}

/// Most restores the clusters of one user (their owner) keep queued in all: each holds its
/// checkpoint's file open, so that with a bound per cluster, a user with many clusters could
/// take every file descriptor of the server (other users' requests then failed).
const MAX_QUEUED_RESTORES: usize = 16;

/// Queues the restore of a checkpoint (of any cluster) into the cluster. Its file is opened
/// now and read when the restore starts: deleting the checkpoint in between does not keep
/// the restore from finishing (the original's test flow deletes it right away).
async fn load(app: App, caller: Caller, request: LoadClusterRequest) -> ApiResult<LoadStarted> {
    let scope = caller.scope();
    let Some(cluster) = app.clusters.get(&scope, &request.cluster_uuid) else {
        let given = &request.cluster_uuid;
        // A checkpoint's uuid where the cluster's belongs: the two were given swapped.
        if app
            .store
            .resource(Kind::Checkpoint, &scope, given)
            .await?
            .is_some()
        {
            return Err(ApiError::NotFound(format!(
                "Cluster with uuid '{given}' not found: that is a checkpoint's uuid; are the two \
                 swapped? (a restore takes the checkpoint to restore and the cluster to restore \
                 it into)"
            )));
        }
        return Err(not_found(given));
    };
    let admission = app.restore_admission.lock().await;
    let owner = &cluster.row.owner_id;
    let queued: usize = app
        .clusters
        .all()
        .iter()
        .filter(|other| other.row.owner_id == *owner)
        .map(|other| other.queued(WorkKind::Restore))
        .sum();
    if queued >= MAX_QUEUED_RESTORES {
        let whose = if *owner == caller.id {
            "Your clusters have".to_owned()
        } else {
            format!(
                "Cluster '{}' belongs to user '{owner}', whose clusters (in all their projects) \
                 have",
                cluster.row.uuid
            )
        };
        return Err(ApiError::Conflict(format!(
            "{whose} {queued} restores queued, the most one user's clusters keep in all (each \
             holds its checkpoint's file open); wait until some have run (a cluster in DIRECT \
             mode runs none) or delete some"
        )));
    }
    let uuid = &request.checkpoint_uuid;
    let checkpoint = super::checkpoints::checkpoint_row(&app, &scope, uuid, "restore it").await?;
    let path = app.paths.checkpoints().join(&checkpoint.file_name);
    let file = match super::checkpoints::open_file(path).await? {
        Ok(file) => file,
        // Deleted since its row was read: as it would be a moment later.
        Err(super::checkpoints::FileProblem::Missing)
            if app
                .store
                .resource(Kind::Checkpoint, &scope, &checkpoint.uuid)
                .await?
                .is_none() =>
        {
            return Err(super::checkpoints::not_found(&checkpoint.uuid));
        }
        // As `GET checkpoint` answers (it answered 404, which says the checkpoint is gone).
        Err(problem) => return Err(problem.refusal(&checkpoint.uuid)),
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let work = Work::Restore {
        checkpoint_uuid: checkpoint.uuid,
        file_name: checkpoint.file_name,
        file,
    };
    let task = Arc::new(Task::new(uuid.clone(), checkpoint.name, 1, work));
    let started = super::tasks::enqueue(&app, &cluster, &task).await?;
    drop(admission);
    if started {
        super::tasks::until_ended(&app, &task).await;
    }
    Ok(LoadStarted { uuid })
}

async fn set_mode(app: App, caller: Caller, request: SetModeRequest) -> ApiResult<ModeChanged> {
    let cluster = visible(&app, &caller, &request.uuid)?;
    let mode = if request.new_state == "DIRECT" {
        Mode::Direct
    } else {
        Mode::Task
    };
    cluster.set_mode(mode, &app.workers).map_err(|why| {
        ApiError::Conflict(format!(
            "Can not switch cluster to '{}': {why}",
            request.new_state
        ))
    })?;
    Ok(ModeChanged {
        created_at: cluster.row.created_at.clone(),
        uuid: cluster.row.uuid.clone(),
        name: cluster.row.name.clone(),
        new_state: request.new_state,
    })
}

/// Moves a cluster to another logical host; there is one (the CPU), so this only checks.
async fn switch_host(app: App, caller: Caller, request: SwitchHostRequest) -> ApiResult<Resource> {
    let cluster = visible(&app, &caller, &request.cluster_uuid)?;
    if request.host_uuid != app.cpu_host {
        return Err(ApiError::NotFound(format!(
            "Host with uuid '{}' not found",
            request.host_uuid
        )));
    }
    Ok(resource(&cluster.row))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::{NetworkMemory, build};

    #[test]
    fn a_template_that_is_no_utf8_is_refused_with_the_place() {
        let memory = NetworkMemory::new(1 << 30, 1 << 30);
        // Columns count characters: `ä` is one, of two bytes.
        let template = b"version: 1\nsettings:\n    n\xc3\xa4\xffme: 1\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(template);
        let Err(refused) = build(&encoded, &memory) else {
            panic!("accepted");
        };
        assert_eq!(
            refused.message(),
            "Uploaded template is not valid UTF-8 text: line 3, column 7: the bytes there are \
             no UTF-8 character"
        );
        // A leading byte-order mark is not counted.
        let marked = [b"\xef\xbb\xbfab".as_slice(), b"\xff"].concat();
        let encoded = base64::engine::general_purpose::STANDARD.encode(marked);
        let Err(refused) = build(&encoded, &memory) else {
            panic!("accepted");
        };
        assert!(
            refused.message().contains("line 1, column 3:"),
            "{}",
            refused.message()
        );
    }
}
