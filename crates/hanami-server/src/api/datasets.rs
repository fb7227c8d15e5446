//! Datasets: upload initialisation and finalisation, progress, get, list, delete, and the
//! accuracy check of a request result against a labelled dataset.

use hanami_auth::{Caller, Method};
use hanami_engine::argmax;
use hanami_store::dataset::{self, Checksum, ColumnRange, DatasetReader};
use hanami_store::resources::{FileNote, Kind, ResourceRow};
use hanami_types::datasets::{
    CsvFinalizeRequest, CsvUploadRequest, Dataset, DatasetCheck, DatasetRows, DatasetUuid,
    MAX_ROW_VALUES, MnistFinalizeRequest, MnistUploadRequest, UploadProgress, UploadStarted,
};
use hanami_types::list::ListTable;
use hanami_types::scope::Scope;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::capitalized;
use super::validate::Field;
use super::{ApiError, ApiResult, NoInput, Routes};
use crate::clusters::task::TaskState;
use crate::file_faults::dataset_unusable;
use crate::state::App;
use crate::uploads::{
    FileRole, Finalization, FinalizeError, StartError, UploadKind, UploadMeta, UploadStage,
};

const NAME: Field = Field::name("name");
const UUID: Field = Field::uuid("uuid");
const INPUT_FILE: Field = Field::uuid("uuid_input_file");
const LABEL_FILE: Field = Field::uuid("uuid_label_file");
const MAX_DECLARED_SIZE: i64 = 10_000_000_000;
const INPUT_SIZE: Field = Field::int("input_data_size", 1, MAX_DECLARED_SIZE);
const LABEL_SIZE: Field = Field::int("label_data_size", 1, MAX_DECLARED_SIZE);
const CHECK_FIELDS: &[Field] = &[Field::uuid("dataset_uuid"), Field::uuid("result_uuid")];

/// Endpoint id of an upload kind (POST starts, PUT finishes); its POST entry in the policy
/// decides the upload's websocket sessions too.
pub fn upload_endpoint(kind: UploadKind) -> &'static str {
    match kind {
        UploadKind::Mnist => "v1.0alpha/dataset/upload/mnist",
        UploadKind::Csv => "v1.0alpha/dataset/upload/csv",
    }
}

pub(super) fn register(routes: &mut Routes) {
    let (mnist, csv) = (
        upload_endpoint(UploadKind::Mnist),
        upload_endpoint(UploadKind::Csv),
    );
    routes.add(
        mnist,
        Method::Post,
        &[NAME, INPUT_SIZE, LABEL_SIZE],
        start_mnist,
    );
    routes.add(csv, Method::Post, &[NAME, INPUT_SIZE], start_csv);
    routes.add(
        mnist,
        Method::Put,
        &[UUID, INPUT_FILE, LABEL_FILE],
        finish_mnist,
    );
    routes.add(csv, Method::Put, &[UUID, INPUT_FILE], finish_csv);
    routes.add("v1.0alpha/dataset/progress", Method::Get, &[UUID], progress);
    routes.add("v1.0alpha/dataset", Method::Get, &[UUID], get);
    routes.add("v1.0alpha/dataset/all", Method::Get, &[], list);
    routes.add("v1.0alpha/dataset", Method::Delete, &[UUID], delete);
    routes.add("v1.0alpha/dataset/check", Method::Get, CHECK_FIELDS, check);
    routes.add("v1.0alpha/dataset/rows", Method::Get, ROWS_FIELDS, rows);
}

/// Answers of `dataset/rows` whose rows are read at once; more wait their turn, so that many
/// large answers asked for together take the server's memory only a few at a time.
static ROW_ANSWERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Accuracy checks that read their datasets at once; more wait their turn, so that many
/// asked for together take neither the blocking threads (which cluster workers need too)
/// nor the disk from everything else.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Comparisons of whole dataset files with their checksums for requests (accuracy checks,
/// rows, queued tasks) that run at once; more wait their turn, for the same reasons.
static WHOLE_FILE_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

const ROWS_FIELDS: &[Field] = &[
    UUID,
    Field::int("start", 0, i64::MAX).optional(),
    Field::int("count", 1, i64::MAX),
];

fn not_found(uuid: &str) -> ApiError {
    ApiError::UnknownResource {
        kind: Kind::Dataset,
        uuid: uuid.to_owned(),
    }
}

/// What a request task that will write a result dataset is doing, for refusals.
fn written_by(cluster: &str, state: TaskState) -> String {
    format!(
        "the request task that writes it (on cluster '{cluster}') is {}",
        state.as_str()
    )
}

/// The row of dataset `uuid` in `scope`; 409 if it is an unfinished upload there (listed,
/// but without data yet) or the result of a request task that has not ended, else 404.
pub(super) async fn dataset_row(app: &App, scope: &Scope, uuid: &str) -> ApiResult<ResourceRow> {
    let look = async || app.store.resource(Kind::Dataset, scope, uuid).await;
    if let Some(row) = look().await? {
        return Ok(row);
    }
    // What would make the row: a finalisation inserts it before it ends its upload, and a
    // request task records its result before its end, so a row made since the first look
    // is found by the second.
    let unfinished = app.uploads.stage(scope, uuid);
    let writing = super::tasks::pending_product(app, scope, Kind::Dataset, uuid);
    look().await?.ok_or_else(|| {
        let not_ready = |why: &str| {
            ApiError::Conflict(format!("Dataset with uuid '{uuid}' is not ready: {why}"))
        };
        match unfinished {
            Some(UploadStage::Sending) => not_ready(
                "its upload has not been finalised yet; delete the dataset to cancel the upload",
            ),
            Some(UploadStage::Arrived) => not_ready(
                "its upload has not been finalised yet (all of its bytes have arrived); delete \
                 the dataset to cancel the upload",
            ),
            Some(UploadStage::Finalising) => {
                not_ready("its upload is being made into the dataset; ask again in a moment")
            }
            None => match writing {
                Some((cluster, state)) => not_ready(&format!(
                    "{}; ask again once that task has finished",
                    written_by(&cluster, state)
                )),
                None => not_found(uuid),
            },
        }
    })
}

fn check_size(app: &App, field: &str, size: u64) -> ApiResult<()> {
    let limit = app.config.max_upload_bytes;
    if size > limit {
        return Err(ApiError::BadRequest(format!(
            "Given item '{field}' declares {size} bytes, more than this server accepts per file \
             ({limit} bytes)"
        )));
    }
    Ok(())
}

async fn start_upload(
    app: &App,
    caller: &Caller,
    name: String,
    kind: UploadKind,
    files: Vec<(FileRole, u64)>,
) -> ApiResult<UploadStarted> {
    let meta = UploadMeta {
        dataset_uuid: uuid::Uuid::new_v4().to_string(),
        name,
        kind,
        owner_id: caller.id.clone(),
        project_id: caller.project_id.clone(),
        created_at: hanami_store::now_timestamp(),
    };
    let owners = app.owner_changes.lock().await;
    // The caller was checked when the request came in; its user may have been deleted, or
    // taken out of the project, since.
    if super::token::context_now(app, &caller.id, &caller.project_id)
        .await?
        .is_none()
    {
        return Err(ApiError::Conflict(format!(
            "Cannot start the upload: user '{}' no longer exists or is no longer assigned to \
             project '{}'",
            caller.id, caller.project_id
        )));
    }
    let uploads = app.uploads.clone();
    let started = tokio::task::spawn_blocking(move || uploads.start(meta, &files))
        .await?
        .map_err(|e| match e {
            StartError::Refused(why) => ApiError::Conflict(why),
            StartError::Io(e) => ApiError::Internal(e),
        })?;
    drop(owners);
    // Registered, not yet answered (a test holds the answer back here).
    crate::crash_point::reached_async("upload:registered").await;
    let mut file_uuids = started.file_uuids.into_iter();
    Ok(UploadStarted {
        created_at: started.meta.created_at,
        uuid: started.meta.dataset_uuid,
        name: started.meta.name,
        owner_id: started.meta.owner_id,
        project_id: started.meta.project_id,
        visibility: "private".into(),
        uuid_input_file: file_uuids.next().expect("one file per role"),
        uuid_label_file: file_uuids.next(),
    })
}

/// `POST dataset/upload/mnist`: temporary files for an IDX image and label file.
async fn start_mnist(
    app: App,
    caller: Caller,
    request: MnistUploadRequest,
) -> ApiResult<UploadStarted> {
    check_size(&app, "input_data_size", request.input_data_size)?;
    check_size(&app, "label_data_size", request.label_data_size)?;
    let files = vec![
        (FileRole::Input, request.input_data_size),
        (FileRole::Label, request.label_data_size),
    ];
    start_upload(&app, &caller, request.name, UploadKind::Mnist, files).await
}

/// `POST dataset/upload/csv`: a temporary file for a CSV file.
async fn start_csv(
    app: App,
    caller: Caller,
    request: CsvUploadRequest,
) -> ApiResult<UploadStarted> {
    check_size(&app, "input_data_size", request.input_data_size)?;
    let files = vec![(FileRole::Input, request.input_data_size)];
    start_upload(&app, &caller, request.name, UploadKind::Csv, files).await
}

/// Validates and converts a complete upload into a dataset file, then registers the dataset.
///
/// Runs as its own task, so a client that disconnects midway cannot leave a converted file
/// without its database row.
async fn finish_upload(
    app: App,
    caller: Caller,
    dataset_uuid: String,
    kind: UploadKind,
    file_uuids: Vec<String>,
) -> ApiResult<DatasetUuid> {
    let uuids: Vec<&str> = file_uuids.iter().map(String::as_str).collect();
    let claim = app
        .uploads
        .begin_finalize(&caller.scope(), &dataset_uuid, kind, &uuids)
        .map_err(|e| match e {
            FinalizeError::NotFound(m) => ApiError::NotFound(m),
            FinalizeError::Invalid(m) => ApiError::BadRequest(m),
            FinalizeError::Busy(m) => ApiError::Conflict(m),
        })?;
    // A stopping server waits for it (see `InFlight::finalisation`).
    let counted = crate::state::InFlight::finalisation(&app);
    let task = tokio::spawn(async move {
        let _counted = counted;
        let row = claim.meta.dataset_row();
        // A crash before the row is in leaves a file that nobody was told of: noted, the
        // next start removes it.
        app.store
            .note_unregistered_file(Kind::Dataset, &row.file_name)
            .await?;
        let made = make_dataset(&app, claim, kind, &row).await;
        // Its file is gone (or kept for another attempt, which notes it again). A database
        // that another program locks would keep the answer waiting as long again: the note
        // stays, and the next start finds no file for it.
        if let Err(e) = &made
            && !e.database_is_locked()
        {
            super::forget_file_note(&app, FileNote::Unregistered, Kind::Dataset, &row.file_name)
                .await;
        }
        made
    });
    task.await?
}

/// Ends the upload of `claim`: its temporary files (up to `max_upload_bytes` each, which
/// take a while to remove on some file systems) go on a blocking thread.
async fn end_upload(claim: Finalization) {
    if let Err(e) = tokio::task::spawn_blocking(move || claim.finish()).await {
        tracing::warn!("ending an upload failed: {e}");
    }
}

/// Converts the complete upload of `claim` into the file of dataset `row`, then registers
/// the dataset.
async fn make_dataset(
    app: &App,
    claim: Finalization,
    kind: UploadKind,
    row: &ResourceRow,
) -> ApiResult<DatasetUuid> {
    let dataset_uuid = &row.uuid;
    let dest = app.paths.datasets().join(&row.file_name);
    let (paths, name) = (claim.paths.clone(), claim.meta.name.clone());
    let allocated = claim.dataset_allocated();
    let converted = tokio::task::spawn_blocking({
        let dest = dest.clone();
        move || {
            crate::crash_point::reached("upload:converting");
            match kind {
                UploadKind::Mnist => {
                    dataset::convert_mnist(&paths[0], &paths[1], &name, &dest, allocated)
                }
                UploadKind::Csv => dataset::convert_csv(&paths[0], &name, &dest, allocated),
            }
        }
    })
    .await?;
    let written = match converted {
        Ok(written) => written,
        Err(e) if e.is_invalid_input() => {
            // The files can never become a dataset: drop them with the upload.
            end_upload(claim).await;
            return Err(ApiError::BadRequest(e.to_string()));
        }
        Err(e) if e.is_disk_full() => {
            // Another program took the space the upload had promised: the upload stays
            // (dropping the claim keeps it) for another attempt.
            tracing::warn!("cannot convert upload '{dataset_uuid}': {e}");
            return Err(ApiError::Conflict(format!(
                "The disk of the server is full, so the upload of dataset \
                 '{dataset_uuid}' cannot be made into its dataset now; the upload is \
                 kept until {} s pass without activity: finalise it again once there \
                 is space (ask the administrator)",
                app.config.upload_timeout.as_secs()
            )));
        }
        Err(e) => return Err(ApiError::Internal(anyhow::Error::new(e))),
    };
    crate::crash_point::reached_async("upload:converted").await;
    // Dated when the upload started, as the upload's answer and listing said.
    if let Err(e) = app.store.insert_dataset(row, &written.content).await {
        super::remove_file(dest).await;
        if matches!(e, hanami_store::StoreError::OwnerGone { .. }) {
            // Nobody can finish it any more.
            end_upload(claim).await;
        }
        return Err(e.into());
    }
    end_upload(claim).await;
    tracing::info!(
        "dataset '{}' ({}) made from an upload: {} rows",
        row.name,
        row.uuid,
        written.header.number_of_rows
    );
    Ok(DatasetUuid {
        uuid: row.uuid.clone(),
    })
}

async fn finish_mnist(
    app: App,
    caller: Caller,
    request: MnistFinalizeRequest,
) -> ApiResult<DatasetUuid> {
    let files = vec![request.uuid_input_file, request.uuid_label_file];
    finish_upload(app, caller, request.uuid, UploadKind::Mnist, files).await
}

async fn finish_csv(
    app: App,
    caller: Caller,
    request: CsvFinalizeRequest,
) -> ApiResult<DatasetUuid> {
    finish_upload(
        app,
        caller,
        request.uuid,
        UploadKind::Csv,
        vec![request.uuid_input_file],
    )
    .await
}

#[derive(Deserialize)]
struct ByUuid {
    uuid: String,
}

/// `GET dataset/progress`: whether an upload is complete (finished datasets are).
async fn progress(app: App, caller: Caller, query: ByUuid) -> ApiResult<UploadProgress> {
    let scope = caller.scope();
    let complete = match app.uploads.progress(&scope, &query.uuid) {
        Some(complete) => complete,
        None => {
            if app
                .store
                .resource(Kind::Dataset, &scope, &query.uuid)
                .await?
                .is_none()
            {
                let hint = super::kind_hint(&app, &scope, Kind::Dataset, &query.uuid).await;
                return Err(ApiError::NotFound(format!(
                    "Neither a dataset nor an unfinished upload with uuid '{}' found ({}){}",
                    query.uuid,
                    app.uploads.how_uploads_end(),
                    hint.unwrap_or_default()
                )));
            }
            true
        }
    };
    Ok(UploadProgress {
        uuid: query.uuid,
        complete,
    })
}

/// Opens the file of a dataset. A file that is missing, damaged (changed outside the
/// server), unreadable for the server or lost on the disk answers 409 with what to do (see
/// [`refusal`]), and is logged for the operator; any other failure is the server's (500).
/// A dataset deleted since its row was read answers 404, as it would have a moment later.
pub(super) async fn open(app: &App, row: &ResourceRow) -> ApiResult<DatasetReader> {
    let path = app.paths.datasets().join(&row.file_name);
    let opened = path.clone();
    let uuid = &row.uuid;
    match tokio::task::spawn_blocking(move || DatasetReader::open(opened)).await? {
        Ok(reader) => Ok(reader),
        Err(e)
            if e.is_missing_file()
                && app
                    .store
                    .resource(Kind::Dataset, &Scope::All, uuid)
                    .await?
                    .is_none() =>
        {
            Err(not_found(uuid))
        }
        Err(e) => Err(refusal(uuid, &path, e, "open")),
    }
}

/// Opens the file of a dataset as [`open`] does, and compares it with the checksum recorded
/// when it was written (where one was): a file that changed since answers 409 as a damaged
/// one.
async fn open_verified(app: &App, scope: &Scope, row: &ResourceRow) -> ApiResult<DatasetReader> {
    let reader = open(app, row).await?;
    let recorded = app.store.dataset_checksum(scope, &row.uuid).await?;
    verify(app, &reader, &row.uuid, recorded).await?;
    Ok(reader)
}

/// Compares the open file of dataset `uuid` with the checksum `recorded` when it was written
/// (nothing to compare without one): the 409 of a damaged dataset where they differ. Reads
/// the whole file (a few at a time: [`WHOLE_FILE_READS`]), unless it matched before and has
/// not changed since (the server's [`VerifiedFiles`](hanami_store::dataset::VerifiedFiles)).
pub(super) async fn verify(
    app: &App,
    reader: &DatasetReader,
    uuid: &str,
    recorded: Option<Checksum>,
) -> ApiResult<()> {
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let verified = app.workers.verified.clone();
    let (looked_at, memo) = (reader.clone(), verified.clone());
    // A look at the file's status, which a hung network file system can hold up.
    let remembered =
        tokio::task::spawn_blocking(move || looked_at.verified_before(recorded, &memo)).await?;
    let compared = match remembered {
        Ok(true) => Ok(()),
        Ok(false) => {
            let _turn = WHOLE_FILE_READS
                .acquire()
                .await
                .expect("the semaphore is never closed");
            // Another request may have compared it while this one waited: then the memo
            // answers.
            let checked = reader.clone();
            tokio::task::spawn_blocking(move || checked.verify(recorded, &verified)).await?
        }
        Err(e) => Err(e),
    };
    compared.map_err(|e| refusal(uuid, reader.path(), e, "read"))
}

/// What a failed opening or read (`action`) of the file at `path` of dataset `uuid`
/// answers: the 409 of a file missing, unreadable for the server, damaged or lost on the
/// disk, else the server's error.
fn refusal(
    uuid: &str,
    path: &std::path::Path,
    e: dataset::DatasetFileError,
    action: &str,
) -> ApiError {
    match dataset_unusable(uuid, path, &e) {
        Some(unusable) => ApiError::Conflict(capitalized(&unusable)),
        None => ApiError::Internal(
            anyhow::Error::new(e).context(format!("cannot {action} the file of dataset '{uuid}'")),
        ),
    }
}

async fn get(app: App, caller: Caller, query: ByUuid) -> ApiResult<Dataset> {
    let row = dataset_row(&app, &caller.scope(), &query.uuid).await?;
    let reader = open(&app, &row).await?;
    let header = reader.header();
    Ok(Dataset {
        uuid: row.uuid,
        name: row.name,
        description: header
            .description
            .iter()
            .map(|(k, r)| {
                let range = hanami_types::datasets::ColumnRange {
                    start_column: r.start_column,
                    end_column: r.end_column,
                };
                (k.clone(), range)
            })
            .collect(),
        owner_id: row.owner_id,
        project_id: row.project_id,
        visibility: row.visibility,
        version: header.version().to_owned(),
        number_of_rows: header.number_of_rows,
        number_of_columns: header.number_of_columns,
        created_at: Some(row.created_at),
    })
}

/// `GET dataset/all`: the datasets, then the unfinished uploads (as the original listed
/// their rows, made when an upload starts), so that a user can find and delete an upload
/// whose client went away.
async fn list(app: App, caller: Caller, _: NoInput) -> ApiResult<ListTable> {
    let scope = caller.scope();
    // The uploads first: a finalisation inserts the dataset's row before it ends the
    // upload, so an upload that ends meanwhile is found in the table (and only there). One
    // cancelled or expired meanwhile is still listed, as it was a moment ago.
    let unfinished = app.uploads.unfinished(&scope);
    let mut table = app.store.resource_list(Kind::Dataset, &scope).await?;
    let listed: std::collections::HashSet<String> = table
        .body
        .iter()
        .filter_map(|line| Some(line.get(1)?.as_str()?.to_owned()))
        .collect();
    for upload in unfinished {
        if !listed.contains(&upload.dataset_uuid) {
            table.body.push(upload.dataset_row().into_list_line());
        }
    }
    Ok(table)
}

/// Deletes a dataset, or cancels an upload that has not been finalised (its temporary files
/// go at once instead of after `upload_timeout`).
async fn delete(app: App, caller: Caller, query: ByUuid) -> ApiResult<Map<String, Value>> {
    let scope = caller.scope();
    let delete = async || {
        let dir = app.paths.datasets();
        super::delete_with_file(&app, Kind::Dataset, &scope, &query.uuid, dir).await
    };
    match delete().await? {
        Some(_) => {}
        None => {
            let (uploads, uuid, in_scope) =
                (app.uploads.clone(), query.uuid.clone(), scope.clone());
            // Removing the temporary files is blocking file I/O.
            let cancelled = tokio::task::spawn_blocking(move || uploads.cancel(&in_scope, &uuid))
                .await?
                .map_err(|e| ApiError::Conflict(e.to_string()))?;
            if !cancelled {
                if let Some((cluster, state)) =
                    super::tasks::pending_product(&app, &scope, Kind::Dataset, &query.uuid)
                {
                    return Err(ApiError::Conflict(format!(
                        "Dataset with uuid '{}' is not written yet: {}; delete that task to \
                         stop it, or delete the dataset once the task has finished",
                        query.uuid,
                        written_by(&cluster, state)
                    )));
                }
                // Its request task may have finished between the two looks.
                delete().await?.ok_or_else(|| not_found(&query.uuid))?;
            }
        }
    }
    Ok(Map::new())
}

#[derive(Deserialize)]
struct CheckQuery {
    dataset_uuid: String,
    result_uuid: String,
}

/// `GET dataset/check`: the percentage of rows whose result (one value per class, e.g. the
/// one-hot rows of a request result) has its largest value at the same index as the
/// reference dataset's `label` columns.
async fn check(app: App, caller: Caller, query: CheckQuery) -> ApiResult<DatasetCheck> {
    let scope = caller.scope();
    let reference = dataset_row(&app, &scope, &query.dataset_uuid).await?;
    let result = dataset_row(&app, &scope, &query.result_uuid).await?;
    let _turn = CHECKS
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let uuids = (reference.uuid.clone(), result.uuid.clone());
    let reference = open_verified(&app, &scope, &reference).await?;
    let result = open_verified(&app, &scope, &result).await?;
    let accuracy = tokio::task::spawn_blocking(move || {
        crate::crash_point::reached("dataset-check:comparing");
        compare((&uuids.0, &reference), (&uuids.1, &result))
    })
    .await??;
    Ok(DatasetCheck { accuracy })
}

#[derive(Deserialize)]
struct RowsQuery {
    uuid: String,
    #[serde(default)]
    start: u64,
    count: u64,
}

/// `GET dataset/rows` (an addition): up to `count` rows from row `start` on, so that a
/// client can read what a request task wrote (the original had no way to read a dataset's
/// values). Fewer rows where the dataset ends; a start beyond its end, or more than
/// [`MAX_ROW_VALUES`] values in the answer, is a 400. The file is compared with its checksum
/// before its rows are read (once per change of the file: the pages of an export read it
/// whole once).
async fn rows(app: App, caller: Caller, query: RowsQuery) -> ApiResult<DatasetRows> {
    let scope = caller.scope();
    let row = dataset_row(&app, &scope, &query.uuid).await?;
    let reader = open(&app, &row).await?;
    let header = reader.header();
    let (total, columns) = (header.number_of_rows, header.number_of_columns);
    if query.start > total {
        return Err(ApiError::BadRequest(format!(
            "Dataset with UUID '{}' has {total} rows: 'start' is at most {total}",
            row.uuid
        )));
    }
    if columns > MAX_ROW_VALUES {
        return Err(ApiError::BadRequest(format!(
            "Dataset '{}' has rows of {columns} values, more than the {MAX_ROW_VALUES} an \
             answer holds: its rows cannot be read this way",
            row.uuid
        )));
    }
    // What the answer would hold decides, so that "all of it" works for a small dataset.
    let count = query.count.min(total - query.start);
    let most = MAX_ROW_VALUES / columns.max(1);
    if count > most {
        return Err(ApiError::BadRequest(format!(
            "'count' is at most {most} for dataset '{}': an answer holds at most \
             {MAX_ROW_VALUES} values, and its rows have {columns} each; read it in parts \
             with 'start'",
            row.uuid
        )));
    }
    // What the header decides comes first: a refused request reads no more of the file.
    let recorded = app.store.dataset_checksum(&scope, &row.uuid).await?;
    verify(&app, &reader, &row.uuid, recorded).await?;
    crate::crash_point::reached_async("dataset-rows:compared").await;
    // Taken only now, so that answers from files compared before do not wait for files
    // being compared.
    let _turn = ROW_ANSWERS
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let start = query.start;
    let read = reader.clone();
    let values = tokio::task::spawn_blocking(move || {
        let mut values = vec![0.0f32; (count * columns) as usize];
        read.read_rows_f32(
            start,
            count as usize,
            ColumnRange::new(0, columns),
            &mut values,
        )
        .map(|()| values)
    })
    .await?
    .map_err(|e| refusal(&row.uuid, reader.path(), e, "read"))?;
    Ok(DatasetRows {
        uuid: row.uuid,
        start,
        number_of_rows: total,
        number_of_columns: columns,
        rows: values
            .chunks(columns.max(1) as usize)
            .map(<[f32]>::to_vec)
            .collect(),
    })
}

fn invalid(uuid: &str, why: String) -> ApiError {
    ApiError::BadRequest(format!(
        "Dataset with UUID '{uuid}' is invalid and can not be compared: {why}"
    ))
}

/// The accuracy of the dataset `result` that a request task wrote against the labels of
/// the dataset `reference` it ran on, each given by its uuid and open file.
fn compare(
    (ref_uuid, reference): (&str, &DatasetReader),
    (res_uuid, result): (&str, &DatasetReader),
) -> ApiResult<f64> {
    let (ref_header, res_header) = (reference.header(), result.header());
    let labels = ref_header.column_range("label").ok_or_else(|| {
        // A reference without labels and a "result" with them: the two were given swapped.
        let swapped = if res_header.column_range("label").is_some() {
            "; the other dataset has them: the two look swapped (the reference is the \
             dataset with labels that the request task ran on, the result is the dataset the \
             request task wrote, named by the task's uuid)"
        } else {
            ""
        };
        invalid(ref_uuid, format!("it has no 'label' columns{swapped}"))
    })?;
    if labels.width() < 2 {
        // The argmax of one column is always 0: every row would count as correct.
        return Err(invalid(
            ref_uuid,
            "its 'label' is a single column; the check compares the index of the largest \
             value, which needs one column per class (one-hot labels)"
                .into(),
        ));
    }
    let outputs = ColumnRange::new(0, res_header.number_of_columns);
    if outputs.width() != labels.width() {
        return Err(invalid(
            res_uuid,
            format!(
                "it has {} columns, but the reference has {} label columns",
                outputs.width(),
                labels.width()
            ),
        ));
    }
    let rows = res_header.number_of_rows;
    if rows == 0 || rows != ref_header.number_of_rows {
        return Err(invalid(
            res_uuid,
            format!(
                "it has {rows} rows, but the reference has {}",
                ref_header.number_of_rows
            ),
        ));
    }
    let of_reference = |e| refusal(ref_uuid, reference.path(), e, "read");
    let of_result = |e| refusal(res_uuid, result.path(), e, "read");
    let mut expected = reference.rows(labels, 0..rows).map_err(of_reference)?;
    let mut actual = result.rows(outputs, 0..rows).map_err(of_result)?;
    let mut correct: u64 = 0;
    while let (Some(e), Some(a)) = (
        expected.next_row().map_err(of_reference)?.map(argmax),
        actual.next_row().map_err(of_result)?.map(argmax),
    ) {
        correct += u64::from(e == a);
    }
    Ok(percent(correct, rows))
}

/// `correct` of `rows` in percent, by the original's formula (in `f32`, so 10,000 rows give
/// its very values), except that its rounding may not leave a perfect result short of 100
/// or carry any beyond, nor round an imperfect one up to 100 (other row counts than the
/// original's 10,000: 97 of 97 gave 99.99999, 45 of 45 gave 100.00001, and from about 11
/// million rows all but one gave 100).
fn percent(correct: u64, rows: u64) -> f64 {
    /// The largest `f32` below 100.
    const NEARLY_100: f32 = 99.99999;
    if correct >= rows {
        return 100.0;
    }
    f64::from(((correct as f32) * (100.0 / rows as f32)).min(NEARLY_100))
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_keep_the_original_figures_and_stay_within_0_and_100() {
        // The original's answers for 10,000 rows (transcript).
        assert_eq!(percent(9073, 10_000), 90.72999572753906);
        assert_eq!(percent(9082, 10_000), 90.81999969482422);
        for rows in (1..=20_000).chain([11_220_384, 1 << 40]) {
            assert_eq!(percent(rows, rows), 100.0, "{rows}");
            assert_eq!(percent(0, rows), 0.0);
            assert!(percent(rows - 1, rows) < 100.0, "{rows}");
        }
        assert_eq!(f32::from_bits(100f32.to_bits() - 1), 99.99999);
    }
}
