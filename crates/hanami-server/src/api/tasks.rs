//! Train and request tasks: validated completely at creation (cluster, interface names,
//! datasets, their column groups and widths), then queued on their cluster. When a task
//! starts, its worker checks the interfaces again (a restore may have come first) and opens
//! the datasets (a deleted one fails the task).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hanami_auth::{Caller, Method};
use hanami_store::dataset::{Checksum, DatasetReader, ValueRanges};
use hanami_types::list::{ListTable, TASK_COLUMNS};
use hanami_types::tasks::{RequestTaskRequest, Task as TaskInfo, TrainTaskRequest};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::clusters::visible;
use super::validate::{Field, Pattern, PatternCheck};
use super::{ApiError, ApiResult, Routes};
use crate::clusters::rows::{Binding, Side};
use crate::clusters::task::{Promise, ResultTarget, Task, TaskState, Work};
use crate::clusters::{ClusterHandle, Interface, Mode, TaskRemoval};
use crate::state::App;

const NAME: Field = Field::name("name");
const CLUSTER_UUID: Field = Field::uuid("cluster_uuid");
const UUID: Field = Field::uuid("uuid");
const TRAIN_FIELDS: &[Field] = &[
    NAME,
    CLUSTER_UUID,
    Field::map("inputs"),
    Field::map("outputs"),
];
const REQUEST_FIELDS: &[Field] = &[
    NAME,
    CLUSTER_UUID,
    Field::map("inputs"),
    Field::map("results"),
];

/// Endpoint id of train tasks; its policy entry decides direct-IO training too.
pub const TRAIN_ENDPOINT: &str = "v1.0alpha/task/train";
/// Endpoint id of request tasks; its policy entry decides direct-IO requests too.
pub const REQUEST_ENDPOINT: &str = "v1.0alpha/task/request";

pub(super) fn register(routes: &mut Routes) {
    routes.add(TRAIN_ENDPOINT, Method::Post, TRAIN_FIELDS, train);
    routes.add(REQUEST_ENDPOINT, Method::Post, REQUEST_FIELDS, request);
    routes.add("v1.0alpha/task", Method::Get, &[UUID, CLUSTER_UUID], get);
    routes.add("v1.0alpha/task/all", Method::Get, &[CLUSTER_UUID], list);
    routes.add(
        "v1.0alpha/task",
        Method::Delete,
        &[UUID, CLUSTER_UUID],
        delete,
    );
}

/// The row counts of the datasets a task reads, each once, in the order they are bound.
type RowCounts = Vec<(String, u64)>;

/// Resolves `{interface name: dataset uuid}` into bindings; returns them and the row counts
/// of their datasets.
async fn bind(
    app: &App,
    caller: &Caller,
    cluster: &ClusterHandle,
    side: Side,
    map: &BTreeMap<String, String>,
) -> ApiResult<(Vec<Binding>, RowCounts)> {
    let interfaces = cluster.interfaces();
    let mut bindings = Vec::with_capacity(map.len());
    let mut rows = RowCounts::new();
    // Each dataset is looked up, opened and its value ranges read once, however many
    // interfaces it binds (a wide CSV dataset's description and ranges take megabytes).
    let mut opened: HashMap<String, Opened> = HashMap::new();
    for (name, dataset_uuid) in map {
        let interface: &Interface = match side {
            Side::Input => interfaces.input(name),
            Side::Output => interfaces.output(name),
        }
        .ok_or_else(|| {
            let all = match side {
                Side::Input => &interfaces.inputs,
                Side::Output => &interfaces.outputs,
            };
            ApiError::NotFound(format!(
                "Cluster '{}' has no {} named '{name}' (its {}s: {})",
                cluster.row.uuid,
                side.word(),
                side.word(),
                listed(all.iter().map(|i| i.name.as_str()), LISTED)
            ))
        })?;
        Pattern::Uuid.check(&format!("{}s.{name}", side.word()), dataset_uuid)?;
        let dataset_uuid = &dataset_uuid.to_ascii_lowercase();
        if !opened.contains_key(dataset_uuid) {
            let row = super::datasets::dataset_row(app, &caller.scope(), dataset_uuid).await?;
            let reader = super::datasets::open(app, &row).await?;
            let path = app.paths.datasets().join(&row.file_name);
            // Outputs check their expected values against them.
            let ranges = match side {
                Side::Output => {
                    app.store
                        .value_ranges(&caller.scope(), dataset_uuid)
                        .await?
                }
                Side::Input => None,
            };
            let checksum = app
                .store
                .dataset_checksum(&caller.scope(), dataset_uuid)
                .await?;
            let dataset = Opened {
                path,
                reader,
                ranges,
                checksum,
            };
            opened.insert(dataset_uuid.clone(), dataset);
        }
        let dataset = &opened[dataset_uuid];
        let reader = &dataset.reader;
        // Refusals that the file's description decides: a description changed on disk is
        // told as the damage it is, not as a dataset that does not fit the cluster.
        let damaged = || super::datasets::verify(app, reader, dataset_uuid, dataset.checksum);
        let Some(columns) = reader.header().column_range(name) else {
            damaged().await?;
            // In the order of the columns, as the file has them.
            let mut groups: Vec<_> = reader.header().description.iter().collect();
            groups.sort_by_key(|(_, range)| range.start_column);
            return Err(ApiError::NotFound(format!(
                "Dataset '{dataset_uuid}' has no columns named '{name}' (its column groups: {})",
                listed(groups.iter().map(|(group, _)| group.as_str()), LISTED)
            )));
        };
        if columns.width() != interface.size as u64 {
            damaged().await?;
            let plural =
                |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            return Err(ApiError::BadRequest(format!(
                "Dataset '{dataset_uuid}' has {} named '{name}', but {} '{name}' of the cluster \
                 has {}",
                plural(columns.width(), "column"),
                side.word(),
                plural(interface.size as u64, "neuron")
            )));
        }
        if !rows.iter().any(|(uuid, _)| uuid == dataset_uuid) {
            rows.push((dataset_uuid.clone(), reader.header().number_of_rows));
        }
        if side == Side::Output {
            expected_values_fit(dataset.ranges.as_ref(), dataset_uuid, name)?;
        }
        bindings.push(Binding {
            name: name.clone(),
            side,
            dataset_uuid: dataset_uuid.clone(),
            path: dataset.path.clone(),
            columns,
            checksum: dataset.checksum,
        });
    }
    Ok((bindings, rows))
}

/// How many cycles a task over datasets of these row counts runs: as many as the shortest
/// has rows (row `i` of each is paired). 400 for none.
fn cycles(rows: &RowCounts) -> ApiResult<u64> {
    require_rows(rows.iter().map(|&(_, n)| n).min().unwrap_or(0))
}

/// The note of a task whose datasets differ in length: it pairs their first rows and
/// leaves the rest, which is rarely what was meant with datasets of different sizes.
fn unequal_rows_note(rows: &RowCounts) -> Option<String> {
    let shortest = rows.iter().map(|&(_, n)| n).min()?;
    if rows.iter().all(|&(_, n)| n == shortest) {
        return None;
    }
    let each: Vec<String> = rows
        .iter()
        .map(|(uuid, n)| format!("{n} in '{uuid}'"))
        .collect();
    let each = listed(each.iter().map(String::as_str), LISTED);
    Some(format!(
        "its datasets have different numbers of rows ({each}): it runs {shortest} cycles, \
         row i of each dataset with row i of the others; check that these are the datasets \
         meant"
    ))
}

/// A dataset that [`bind`] binds interfaces to, as read once for all of them.
struct Opened {
    path: PathBuf,
    reader: DatasetReader,
    /// Its value ranges where it binds outputs (`None` for inputs, and for datasets from
    /// before they were recorded).
    ranges: Option<ValueRanges>,
    /// The checksum of its file, which the task checks the file against when it starts
    /// (`None` for datasets from before checksums were recorded).
    checksum: Option<Checksum>,
}

/// Names for a message, the first `shown` of them and how many more there are (a CSV
/// dataset may have thousands of columns).
pub(crate) fn listed<'a>(names: impl ExactSizeIterator<Item = &'a str>, shown: usize) -> String {
    let more = names.len().saturating_sub(shown);
    let mut text = names.take(shown).collect::<Vec<_>>().join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Names a message lists at most.
const LISTED: usize = 20;

/// Refuses a dataset field as expected values of an output when its recorded values leave
/// [0, 1], the range of the output neurons' sigmoid (the engine would stop the task at the
/// first such row). Datasets from before value ranges were recorded are checked as the task
/// reads them.
fn expected_values_fit(
    ranges: Option<&ValueRanges>,
    dataset_uuid: &str,
    field: &str,
) -> ApiResult<()> {
    match ranges.and_then(|ranges| ranges.get(field)) {
        Some(range) if !range.within(0.0, 1.0) => Err(ApiError::BadRequest(format!(
            "Dataset '{dataset_uuid}' holds values from {range} in '{field}', but expected \
             values of an output must lie between 0 and 1 (the output neurons' range): scale \
             them, e.g. to one-hot columns or (value - min) / (max - min)"
        ))),
        _ => Ok(()),
    }
}

fn require_network(cluster: &ClusterHandle) -> ApiResult<()> {
    if cluster.has_network() {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "Cluster '{}' has no network yet: restore a checkpoint into it first",
            cluster.row.uuid
        )))
    }
}

fn require_entries(map: &BTreeMap<String, String>, field: &str) -> ApiResult<()> {
    if map.is_empty() {
        Err(ApiError::BadRequest(format!(
            "Given item '{field}' must name at least one interface"
        )))
    } else {
        Ok(())
    }
}

fn require_rows(rows: u64) -> ApiResult<u64> {
    if rows == 0 {
        Err(ApiError::BadRequest(
            "The given datasets have no rows".into(),
        ))
    } else {
        Ok(rows)
    }
}

/// Queues a task and answers as the original: state `queued` and no timestamps, whatever
/// the task is doing already, but the live cycle count.
async fn queue(
    app: &App,
    cluster: &Arc<ClusterHandle>,
    name: String,
    rows: &RowCounts,
    work: Work,
    note: Option<String>,
) -> ApiResult<TaskInfo> {
    let task = Arc::new(Task::new(
        uuid::Uuid::new_v4().to_string(),
        name,
        cycles(rows)?,
        work,
    ));
    for note in [unequal_rows_note(rows), note].into_iter().flatten() {
        task.add_note(&note);
    }
    enqueue(app, cluster, &task).await?;
    Ok(TaskInfo {
        state: TaskState::Queued,
        start_timestamp: "-".into(),
        end_timestamp: "-".into(),
        ..task.info()
    })
}

/// Most tasks one cluster keeps queued: each is a database row and holds its work in memory,
/// so that a runaway client cannot grow them without bound. (Requests that arrive together
/// may pass the check together and go a few beyond it.)
const MAX_QUEUED_TASKS: usize = 1000;

/// Records a task in the database, then queues it on its cluster. Returns whether the
/// cluster was idle (the task starts right away); 404 if the cluster was deleted meanwhile,
/// 409 if it has [`MAX_QUEUED_TASKS`] queued.
pub(super) async fn enqueue(
    app: &App,
    cluster: &Arc<ClusterHandle>,
    task: &Arc<Task>,
) -> ApiResult<bool> {
    let queued = cluster.queue_length();
    if queued >= MAX_QUEUED_TASKS {
        return Err(ApiError::Conflict(format!(
            "Cluster '{}' has {queued} tasks queued, the most it keeps; wait until some have \
             run (a cluster in DIRECT mode runs none) or delete some",
            cluster.row.uuid
        )));
    }
    // A task that will create a resource is queued only while the resource's owner and
    // project exist; their deletion is refused from then until the task has ended (see
    // `still_promised`), so a user or project created again under the same id never gets it.
    let owners = match &task.promise {
        Some(promise) => {
            let owners = app.owner_changes.lock().await;
            let owner = &promise.owner_id;
            let project = &promise.project_id;
            if super::token::context_now(app, owner, project)
                .await?
                .is_none()
            {
                return Err(ApiError::Conflict(format!(
                    "Cannot queue the task: user '{owner}' no longer exists or is no longer \
                     assigned to project '{project}'"
                )));
            }
            Some(owners)
        }
        None => None,
    };
    app.store
        .insert_task(
            &task.record(&cluster.row.uuid),
            task.stored_work().as_deref(),
        )
        .await?;
    let queued = cluster.enqueue(task.clone(), &app.workers);
    // Queued (or refused): the owners' deletions see the task from now on.
    drop(owners);
    match queued {
        Some(idle) => {
            for uuid in cluster.forget_ended_beyond(app.config.max_ended_tasks) {
                if let Err(e) = forget_task(app, &uuid).await {
                    // Listed again after a restart, and forgotten at the next task then.
                    tracing::warn!("cannot remove the record of ended task '{uuid}': {e}");
                }
            }
            Ok(idle)
        }
        None => {
            // The deletion may have removed the cluster's task records before this one
            // was written.
            app.store.delete_task(&task.uuid).await?;
            Err(super::clusters::not_found(&cluster.row.uuid))
        }
    }
}

/// Waits until a task that started at once has ended, the server stops (the stop may keep
/// it from starting after all: it then runs at the next start), or its end waits for a
/// database that another program locks (which may take as long as the lock lasts; the
/// caller then polls the task).
pub(super) async fn until_ended(app: &App, task: &Task) {
    let mut stopping = app.stopping.subscribe();
    tokio::select! {
        () = task.ended() => {}
        _ = stopping.wait_for(|stopping| *stopping) => {}
        () = task.end_waits() => {}
    }
}

/// The cluster and state of the task that will create the resource `uuid` of `kind`
/// (a checkpoint or a request's result dataset) visible in `scope`, while that task has not
/// ended. Whose the resource will be decides, as for made ones (not whose the cluster is).
/// A task records its product before its end, so a caller that looks here before it looks
/// for the resource itself finds one or the other.
pub(super) fn pending_product(
    app: &App,
    scope: &hanami_types::scope::Scope,
    kind: hanami_store::resources::Kind,
    uuid: &str,
) -> Option<(String, TaskState)> {
    app.clusters.all().into_iter().find_map(|cluster| {
        let task = cluster.task(uuid)?;
        let product = task
            .promise
            .as_ref()
            .filter(|promise| promise.kind == kind)?;
        let state = task.state();
        (scope.contains(&product.project_id, &product.owner_id) && !state.ended())
            .then(|| (cluster.row.uuid.clone(), state))
    })
}

/// A 409 for deleting `who` (a user or a project) while tasks that have not ended will
/// create a checkpoint or result dataset for it; `whose` picks those tasks' promises. Call
/// with `App::owner_changes` held.
pub(super) fn still_promised(
    app: &App,
    who: &str,
    whose: impl Fn(&Promise) -> bool,
) -> Option<String> {
    let pending: Vec<String> = app
        .clusters
        .all()
        .iter()
        .flat_map(|cluster| {
            cluster.tasks().into_iter().filter_map(|task| {
                let promised = task.promise.as_ref().is_some_and(&whose);
                (promised && !task.state().ended())
                    .then(|| format!("task '{}' of cluster '{}'", task.uuid, cluster.row.uuid))
            })
        })
        .collect();
    (!pending.is_empty()).then(|| {
        format!(
            "{who} still has {} queued or running task(s) that will create a checkpoint or \
             result dataset for it ({}); wait for them to end or delete them first.",
            pending.len(),
            pending.join(", ")
        )
    })
}

async fn train(app: App, caller: Caller, request: TrainTaskRequest) -> ApiResult<TaskInfo> {
    let cluster = visible(&app, &caller, &request.cluster_uuid)?;
    require_network(&cluster)?;
    require_entries(&request.inputs, "inputs")?;
    require_entries(&request.outputs, "outputs")?;
    let (mut bindings, mut rows) =
        bind(&app, &caller, &cluster, Side::Input, &request.inputs).await?;
    let (outputs, output_rows) =
        bind(&app, &caller, &cluster, Side::Output, &request.outputs).await?;
    bindings.extend(outputs);
    for (uuid, count) in output_rows {
        if !rows.iter().any(|(known, _)| *known == uuid) {
            rows.push((uuid, count));
        }
    }
    queue(
        &app,
        &cluster,
        request.name,
        &rows,
        Work::Train(bindings),
        None,
    )
    .await
}

async fn request(app: App, caller: Caller, request: RequestTaskRequest) -> ApiResult<TaskInfo> {
    let cluster = visible(&app, &caller, &request.cluster_uuid)?;
    require_network(&cluster)?;
    require_entries(&request.inputs, "inputs")?;
    let mut results = request.results.iter();
    let (Some((output, result_name)), None) = (results.next(), results.next()) else {
        return Err(ApiError::BadRequest(
            "Given item 'results' must name exactly one output: the result dataset gets the \
             task's uuid"
                .into(),
        ));
    };
    let interface = cluster
        .interfaces()
        .output(output)
        .cloned()
        .ok_or_else(|| {
            let outputs = cluster.interfaces().outputs;
            ApiError::NotFound(format!(
                "Cluster '{}' has no output named '{output}' (its outputs: {})",
                cluster.row.uuid,
                listed(outputs.iter().map(|o| o.name.as_str()), LISTED)
            ))
        })?;
    let is_uuid = uuid::Uuid::try_parse(result_name).is_ok();
    if is_uuid && Pattern::Name.check("results", result_name).is_err() {
        return Err(ApiError::BadRequest(format!(
            "Given item 'results' names the new result dataset, but '{result_name}' is a uuid, \
             which cannot be a dataset's name (a name starts with a letter): a request task \
             writes a new dataset, with the task's uuid as its uuid"
        )));
    }
    Pattern::Name.check("results", result_name)?;
    if !(4..=254).contains(&result_name.len()) {
        return Err(ApiError::BadRequest(
            "Given item 'results' must name a result dataset of 4 to 254 characters".into(),
        ));
    }
    let (bindings, rows) = bind(&app, &caller, &cluster, Side::Input, &request.inputs).await?;
    // Accepted as a name, but rarely meant as one: the result is a new dataset.
    let uuid_as_name = is_uuid.then(|| {
        format!(
            "its result is a new dataset named '{result_name}', which is a uuid: a request \
             task writes a new dataset, named as given, with the task's uuid as its uuid"
        )
    });
    let target = ResultTarget {
        output: output.clone(),
        columns: interface.size as u64,
        name: result_name.clone(),
        owner_id: caller.id.clone(),
        project_id: caller.project_id.clone(),
        so_far: None,
    };
    queue(
        &app,
        &cluster,
        request.name,
        &rows,
        Work::Request(bindings, target),
        uuid_as_name,
    )
    .await
}

#[derive(Deserialize)]
struct TaskQuery {
    uuid: String,
    cluster_uuid: String,
}

fn task_not_found(query: &TaskQuery) -> ApiError {
    ApiError::NotFound(format!(
        "Task with uuid '{}' not found in cluster '{}'",
        query.uuid, query.cluster_uuid
    ))
}

/// The cluster of a task query; where it names no cluster but the task's uuid names one
/// that holds a task of the given cluster uuid, the 404 says the two look swapped.
fn cluster_of(app: &App, caller: &Caller, query: &TaskQuery) -> ApiResult<Arc<ClusterHandle>> {
    visible(app, caller, &query.cluster_uuid).map_err(|e| {
        let swapped = app
            .clusters
            .get(&caller.scope(), &query.uuid)
            .is_some_and(|cluster| cluster.task(&query.cluster_uuid).is_some());
        if swapped {
            ApiError::NotFound(format!(
                "Cluster with uuid '{}' not found: that is a task's uuid, and '{}' its \
                 cluster's; are the two swapped? (give the task's uuid as 'uuid' and its \
                 cluster's as 'cluster_uuid')",
                query.cluster_uuid, query.uuid
            ))
        } else {
            e
        }
    })
}

/// A task; one that waits because its cluster is in DIRECT mode says so in its note.
async fn get(app: App, caller: Caller, query: TaskQuery) -> ApiResult<TaskInfo> {
    let cluster = cluster_of(&app, &caller, &query)?;
    let task = cluster
        .task(&query.uuid)
        .ok_or_else(|| task_not_found(&query))?;
    let mut info = task.info();
    if info.state == TaskState::Queued && cluster.mode() == Mode::Direct {
        info.note = Some(
            "waiting: the cluster is in DIRECT mode, and its queued tasks start once it is \
             switched back to TASK mode (PUT v1.0alpha/cluster/set_mode, the SDK's \
             switch_to_task_mode, which a direct-IO client calls when it is done, or \
             `hanamictl cluster task_mode`)"
                .to_owned(),
        );
    }
    Ok(info)
}

#[derive(Deserialize)]
struct ClusterQuery {
    cluster_uuid: String,
}

async fn list(app: App, caller: Caller, query: ClusterQuery) -> ApiResult<ListTable> {
    let cluster = visible(&app, &caller, &query.cluster_uuid)?;
    let mut table = ListTable::new(TASK_COLUMNS);
    for task in cluster.tasks() {
        table
            .body
            .push(task.row().into_iter().map(Value::String).collect());
    }
    Ok(table)
}

/// How long deleting a running task waits for it to stop before it answers.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Removes a queued or ended task; an active one is stopped at the next row (the answer
/// waits for that, up to [`STOP_WAIT`]) and stays listed as `aborted`, unless it reached its
/// end before it could see the stop: then it finished, and is removed as an ended task.
/// Result datasets are never deleted.
async fn delete(app: App, caller: Caller, query: TaskQuery) -> ApiResult<Map<String, Value>> {
    let cluster = cluster_of(&app, &caller, &query)?;
    let task = match cluster.delete_task(&query.uuid) {
        Some(TaskRemoval::Forgotten) => return forget_task(&app, &query.uuid).await,
        Some(TaskRemoval::Withdrawn { task, place }) => {
            // The stored row goes first: where it cannot, the task keeps its place. Its own
            // task, so that a client that goes away meanwhile cannot leave it withdrawn.
            let uuid = query.uuid.clone();
            let app = app.clone();
            let finished = tokio::spawn(async move {
                let forgotten = forget_task(&app, &uuid).await;
                match &forgotten {
                    Ok(_) => cluster.forget_withdrawn(&task),
                    Err(_) => cluster.return_withdrawn(task, place, &app.workers),
                }
                forgotten
            })
            .await;
            return finished?;
        }
        Some(TaskRemoval::BeingDeleted) => {
            return Err(ApiError::Conflict(format!(
                "Task with UUID '{}' is being deleted by another request",
                query.uuid
            )));
        }
        Some(TaskRemoval::Stopping(task)) => task,
        None => return Err(task_not_found(&query)),
    };
    // Its worker records how it ends, at its next row: the answer waits for that (for a
    // while), so that the task reads aborted from then on.
    let _ = tokio::time::timeout(STOP_WAIT, task.ended()).await;
    if task.state() == TaskState::Finished
        // (Unless another deletion forgot it meanwhile.)
        && matches!(cluster.delete_task(&query.uuid), Some(TaskRemoval::Forgotten))
    {
        return forget_task(&app, &query.uuid).await;
    }
    Ok(Map::new())
}

/// Removes the stored row of a task that its cluster has forgotten.
async fn forget_task(app: &App, uuid: &str) -> ApiResult<Map<String, Value>> {
    crate::crash_point::reached_async("task-delete:row").await;
    app.store.delete_task(uuid).await?;
    // A request task that a stop interrupted had its result so far set aside.
    super::remove_file(app.paths.partial_result(uuid)).await;
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::{LISTED, listed};

    #[test]
    fn long_lists_of_names_are_cut_short() {
        let names: Vec<String> = (0..25).map(|i| format!("x{i}")).collect();
        let text = listed(names.iter().map(String::as_str), LISTED);
        assert!(text.starts_with("x0, x1, "), "{text}");
        assert!(text.ends_with(", x19 and 5 more"), "{text}");
        assert_eq!(
            listed(names[..2].iter().map(String::as_str), LISTED),
            "x0, x1"
        );
        assert_eq!(listed(std::iter::empty(), LISTED), "");
    }
}
