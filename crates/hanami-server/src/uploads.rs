//! Unfinished dataset uploads: their temporary files on disk and, in memory, which bytes of
//! each file have arrived.
//!
//! An upload is created by `POST dataset/upload/{mnist,csv}` with one temporary file per
//! uploaded file (`input-file`, and `label-file` for MNIST), filled by websocket sessions at
//! arbitrary positions, and consumed by the finalisation, which needs every byte. Before
//! that, an upload is listed among the datasets ([`Uploads::unfinished`]), but its data is
//! not ready ([`Uploads::stage`]).
//!
//! Upload state lives only in memory: a restart removes all unfinished uploads (their temporary
//! files are deleted at start-up), and uploads idle for longer than the configured timeout are
//! removed by [`Uploads::expire`]. All methods may be called from any thread; the lock of the
//! registry is held only for bookkeeping, never during file I/O. Starts are serialised by a
//! lock of their own (held through their checks and file creation, on a blocking thread), so
//! that the limits hold for starts at the same moment.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::disk::{Ledger, Promise, Shortfall};
use crate::slots::{Slot, Slots};
use hanami_store::files::preallocate;
use hanami_types::scope::Scope;

/// What an upload will become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// An IDX image file and an IDX label file.
    Mnist,
    /// One CSV file.
    Csv,
}

impl UploadKind {
    fn name(self) -> &'static str {
        match self {
            UploadKind::Mnist => "MNIST",
            UploadKind::Csv => "CSV",
        }
    }
}

/// Which file of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// Image file (MNIST) or the CSV file.
    Input,
    /// Label file (MNIST).
    Label,
}

impl FileRole {
    fn name(self, kind: UploadKind) -> &'static str {
        match (kind, self) {
            (UploadKind::Mnist, FileRole::Input) => "image file",
            (UploadKind::Csv, FileRole::Input) => "CSV file",
            (_, FileRole::Label) => "label file",
        }
    }
}

/// Who started an upload, and what it is.
#[derive(Debug, Clone)]
pub struct UploadMeta {
    /// Uuid the dataset will get.
    pub dataset_uuid: String,
    /// Dataset name.
    pub name: String,
    /// MNIST or CSV.
    pub kind: UploadKind,
    /// Uploading user.
    pub owner_id: String,
    /// Project of the upload.
    pub project_id: String,
    /// Creation time.
    pub created_at: String,
}

impl UploadMeta {
    /// The row of the dataset the upload becomes: named and dated as the upload, its file
    /// named by its uuid.
    pub fn dataset_row(&self) -> hanami_store::resources::ResourceRow {
        hanami_store::resources::ResourceRow {
            created_at: self.created_at.clone(),
            ..hanami_store::resources::ResourceRow::new(
                &self.dataset_uuid,
                &self.name,
                &self.owner_id,
                &self.project_id,
                &self.dataset_uuid,
            )
        }
    }
}

/// How far an unfinished upload has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStage {
    /// Bytes are still missing.
    Sending,
    /// Every byte has arrived; the uploader has not asked for the finalisation yet.
    Arrived,
    /// The finalisation is making the dataset.
    Finalising,
}

/// A started upload: its metadata and the uuids of its temporary files, in role order.
#[derive(Debug, Clone)]
pub struct StartedUpload {
    /// The upload.
    pub meta: UploadMeta,
    /// One uuid per requested file.
    pub file_uuids: Vec<String>,
}

/// Most separate byte ranges a temporary file holds: a chunk that would start one more is
/// refused. Chunks sent in order keep one range; a client that sends them out of order
/// (a few at a time, retries) has a few; only a client scattering tiny chunks reaches it.
pub const MAX_RECEIVED_RANGES: usize = 65_536;

/// Byte ranges received so far, by start: disjoint and not touching (touching ones are
/// merged); with their total, so that neither a chunk nor a progress report walks them all.
#[derive(Debug, Default)]
struct Received {
    ranges: BTreeMap<u64, u64>,
    bytes: u64,
}

impl Received {
    /// Adds `start..end`, merged with the ranges it overlaps or touches.
    fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        // Ranges are disjoint, so their ends grow with their starts: going down from the
        // last range that starts by `end`, the merged ones are those that end at `start` or
        // later.
        let merged: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|&(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in merged {
            self.ranges.remove(&s);
            self.bytes -= e - s;
            start = start.min(s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
        self.bytes += end - start;
    }

    /// Whether adding `start..end` would make one more range (it touches none).
    fn would_add_range(&self, start: u64, end: u64) -> bool {
        start < end
            && self
                .ranges
                .range(..=end)
                .next_back()
                .is_none_or(|(_, &e)| e < start)
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }
}

struct TempFile {
    uuid: String,
    role: FileRole,
    path: PathBuf,
    size: u64,
    file: Arc<File>,
    received: Received,
    /// Websocket sessions open on the file (see [`UploadTarget::claim_session`]).
    sessions: Slots,
}

impl TempFile {
    fn complete(&self) -> bool {
        self.received.bytes() == self.size
    }
}

struct Upload {
    meta: UploadMeta,
    files: Vec<TempFile>,
    /// When it started (`meta.created_at` counts whole seconds).
    started: Instant,
    last_activity: Instant,
    writes_in_flight: usize,
    finalizing: bool,
    /// Dropped with the upload (cancelled, expired or finished), which ends the wait of
    /// its websocket sessions ([`UploadTarget::gone`]).
    alive: tokio::sync::watch::Sender<()>,
    /// The space of the dataset the upload becomes, promised until the upload ends (after
    /// its conversion, or when it is cancelled or expires) or the dataset's file holds it
    /// (allocated when the conversion starts). Its files hold their own space where the
    /// file system allocates it up front; where it cannot (the files stay sparse), their
    /// share stays promised too, which errs on the safe side.
    space: Promise,
    /// The dataset's share of `space` (see [`dataset_space`]).
    dataset_bytes: u64,
    /// What a finalisation under way gave back of that share once the dataset's file held
    /// it (0 before).
    dataset_released: u64,
}

impl Upload {
    fn complete(&self) -> bool {
        self.files.iter().all(TempFile::complete)
    }
}

/// Most websocket sessions open on one temporary file at once: a client needs one (and a
/// retry may overlap a session that is ending); each holds a connection open.
pub const MAX_UPLOAD_SESSIONS: usize = 4;

/// A temporary file a websocket session writes to.
#[derive(Clone)]
pub struct UploadTarget {
    kind: UploadKind,
    dataset_uuid: String,
    file_uuid: String,
    file: Arc<File>,
    size: u64,
    alive: tokio::sync::watch::Receiver<()>,
    sessions: Slots,
}

impl UploadTarget {
    /// A slot for one more session on the file; `None` if [`MAX_UPLOAD_SESSIONS`] are open.
    pub fn claim_session(&self) -> Option<Slot> {
        self.sessions.claim(MAX_UPLOAD_SESSIONS)
    }

    /// What the upload becomes.
    pub fn kind(&self) -> UploadKind {
        self.kind
    }

    /// The uuid of the dataset the upload becomes.
    pub fn dataset_uuid(&self) -> &str {
        &self.dataset_uuid
    }

    /// Resolves once the upload is gone (cancelled, expired or finished): a session that
    /// waits for chunks then lets go of the file, whose disk space is freed.
    pub async fn gone(&mut self) {
        while self.alive.changed().await.is_ok() {}
    }
}

/// Why a chunk was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The chunk reaches past the declared file size.
    #[error(
        "chunk at position {position} with {len} bytes ends past the declared file size of {size} bytes"
    )]
    OutOfBounds {
        /// Chunk position.
        position: u64,
        /// Chunk length.
        len: u64,
        /// Declared size.
        size: u64,
    },
    /// The chunk would leave the file in more than [`MAX_RECEIVED_RANGES`] pieces.
    #[error(
        "chunk at position {position} would leave the file in more than {MAX_RECEIVED_RANGES} \
         separate pieces: send the chunks in order, or fill the gaps between those sent first"
    )]
    Scattered {
        /// Chunk position.
        position: u64,
    },
    /// The upload was cancelled, finalised or expired.
    #[error("{}", hanami_types::websocket::CLOSED_UPLOAD_GONE)]
    Gone,
    /// The upload is being finalised.
    #[error("{}", hanami_types::websocket::CLOSED_UPLOAD_FINALISING)]
    Finalising,
    /// Writing to disk failed.
    #[error("failed to write data to disk: {0}")]
    Io(#[from] std::io::Error),
}

/// Why an upload cannot be finalised.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// No such upload in the caller's scope, or the file uuids do not belong to it.
    #[error("{0}")]
    NotFound(String),
    /// The upload is of the other kind, or not all bytes have arrived.
    #[error("{0}")]
    Invalid(String),
    /// Another finalisation or a chunk write is running.
    #[error("{0}")]
    Busy(String),
}

/// The files of an upload being finalised. Dropping it without [`Finalization::finish`] makes
/// the upload available again (for another attempt).
pub struct Finalization {
    uploads: Arc<Uploads>,
    /// The upload.
    pub meta: UploadMeta,
    /// Temporary file paths, in role order (input, then label).
    pub paths: Vec<PathBuf>,
    done: bool,
}

impl Finalization {
    /// Removes the upload and its temporary files (after success, or after a validation
    /// failure that makes the upload useless).
    pub fn finish(mut self) {
        self.done = true;
        self.uploads.remove(&self.meta.dataset_uuid);
    }

    /// What the conversion calls once the dataset's file holds its space: the promise of
    /// that space is given back, so that it does not count twice while the file is written
    /// (it is promised again if this finalisation fails and the upload stays).
    pub fn dataset_allocated(&self) -> impl FnOnce() + Send + 'static {
        let uploads = self.uploads.clone();
        let dataset_uuid = self.meta.dataset_uuid.clone();
        move || {
            if let Some(upload) = uploads.lock().get_mut(&dataset_uuid)
                && upload.dataset_released == 0
            {
                upload.dataset_released = upload.space.release(upload.dataset_bytes);
            }
        }
    }
}

impl Drop for Finalization {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(upload) = self.uploads.lock().get_mut(&self.meta.dataset_uuid) {
            upload.finalizing = false;
            upload.last_activity = Instant::now();
            // The failed conversion removed the file that held it; a new attempt needs it.
            let released = std::mem::take(&mut upload.dataset_released);
            upload.space.take_back(released);
        }
    }
}

/// Limits on unfinished uploads: each holds its files open and their disk space reserved
/// until it ends.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Most unfinished uploads of one user.
    pub per_user: usize,
    /// Most unfinished uploads in all.
    pub total: usize,
    /// The server's reserve of free disk (`min_free_disk_mib`): uploads leave twice this
    /// free beyond their files and their dataset, the second half for the server's own
    /// writes: checkpoints, request results and new clusters' networks, which leave only
    /// the reserve.
    pub min_free_disk: u64,
}

impl UploadLimits {
    /// The limits of a server that keeps `min_free_disk` bytes free: 32 uploads per user,
    /// 256 in all.
    pub fn with_free_disk(min_free_disk: u64) -> Self {
        Self {
            per_user: 32,
            total: 256,
            min_free_disk,
        }
    }
}

/// Why an upload did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A limit stands in the way; the text says which.
    #[error("{0}")]
    Refused(String),
    /// The free disk space could not be found out, or the temporary files not made.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// The registry of unfinished uploads.
pub struct Uploads {
    dir: PathBuf,
    timeout: Duration,
    limits: UploadLimits,
    uploads: Mutex<HashMap<String, Upload>>,
    /// Held through a start (checks, files, registration), so that starts at the same moment
    /// cannot together pass a limit that each passes alone.
    starting: Mutex<()>,
    /// Disk space promised to writes under way, shared with the tasks' results and
    /// checkpoints.
    disk: Arc<Ledger>,
}

impl Uploads {
    /// A registry keeping temporary files in `dir`. Files left there by an earlier run are
    /// removed: their upload state died with that run. Files of other names (see
    /// [`crate::paths::is_own_file_name`]) are not the server's: they are left, with a
    /// warning.
    pub fn new(
        dir: &Path,
        timeout: Duration,
        limits: UploadLimits,
        disk: Arc<Ledger>,
    ) -> std::io::Result<Self> {
        let mut stale = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if crate::paths::is_own_file_name(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path())?;
                stale += 1;
            } else {
                tracing::warn!(
                    "left {}: a file in the server's folder of unfinished uploads that the \
                     server did not make; move it away",
                    entry.path().display()
                );
            }
        }
        if stale > 0 {
            tracing::info!("removed {stale} temporary file(s) of unfinished uploads");
        }
        Ok(Self {
            dir: dir.to_owned(),
            timeout,
            limits,
            uploads: Mutex::new(HashMap::new()),
            starting: Mutex::new(()),
            disk,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Upload>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is
        // a single insert, remove or field write), so a poisoned lock is still usable.
        crate::sync::lock(&self.uploads)
    }

    /// Creates an upload with one pre-sized temporary file per entry of `files`, within the
    /// limits (blocking file I/O: call from a blocking thread).
    pub fn start(
        &self,
        meta: UploadMeta,
        files: &[(FileRole, u64)],
    ) -> Result<StartedUpload, StartError> {
        let _serial = crate::sync::lock(&self.starting);
        let dataset_bytes = dataset_space(meta.kind, files.iter().copied());
        let mut space = self.check_limits(&meta, files, dataset_bytes)?;
        let mut temp_files = Vec::with_capacity(files.len());
        for &(role, size) in files {
            let uuid = uuid::Uuid::new_v4().to_string();
            let path = self.dir.join(&uuid);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                // Reserved up front: a full disk fails the upload at its start rather than
                // midway, and chunk writes need no block allocation.
                .and_then(|f| preallocate(&f, size).map(|allocated| (f, allocated)));
            match file {
                Ok((file, allocated)) => {
                    // Allocated files hold their space now; the free space shows it.
                    if allocated {
                        space.release(size);
                    }
                    temp_files.push(TempFile {
                        uuid,
                        role,
                        path,
                        size,
                        file: Arc::new(file),
                        received: Received::default(),
                        sessions: Slots::default(),
                    });
                }
                Err(e) => {
                    remove_files(temp_files.iter().map(|f| f.path.as_path()));
                    let _ = std::fs::remove_file(&path);
                    return Err(anyhow::Error::new(e)
                        .context("cannot create the temporary upload files")
                        .into());
                }
            }
        }
        let started = StartedUpload {
            meta: meta.clone(),
            file_uuids: temp_files.iter().map(|f| f.uuid.clone()).collect(),
        };
        self.lock().insert(
            meta.dataset_uuid.clone(),
            Upload {
                meta,
                files: temp_files,
                started: Instant::now(),
                last_activity: Instant::now(),
                writes_in_flight: 0,
                finalizing: false,
                alive: tokio::sync::watch::Sender::new(()),
                space,
                dataset_bytes,
                dataset_released: 0,
            },
        );
        Ok(started)
    }

    /// Refuses an upload beyond the number of unfinished uploads allowed, or one that would
    /// leave less than twice `min_free_disk` free once its files and the dataset made of them
    /// (`dataset_bytes`, see [`dataset_space`]) are written, beyond the space promised to
    /// other writes under way (the datasets of other unfinished uploads among them). Returns
    /// the promise of that space.
    ///
    /// The server's own writes (checkpoints, request results, new clusters' networks) leave
    /// only `min_free_disk` free, so the second half of what uploads leave stays for them:
    /// uploads that a user starts and never sends, which hold their space until they expire,
    /// cannot keep other users' saves and results from being written.
    fn check_limits(
        &self,
        meta: &UploadMeta,
        files: &[(FileRole, u64)],
        dataset_bytes: u64,
    ) -> Result<Promise, StartError> {
        let limits = self.limits;
        let (mine, all) = {
            let uploads = self.lock();
            let mine = uploads
                .values()
                .filter(|u| u.meta.owner_id == meta.owner_id)
                .count();
            (mine, uploads.len())
        };
        if mine >= limits.per_user {
            return Err(StartError::Refused(format!(
                "User '{}' has {mine} unfinished uploads, the most one user may have; finish or \
                 delete one first",
                meta.owner_id
            )));
        }
        if all >= limits.total {
            return Err(StartError::Refused(format!(
                "The server has {all} unfinished uploads, the most it keeps; try again when \
                 some have ended"
            )));
        }
        let declared: u64 = files.iter().map(|&(_, size)| size).sum();
        let needed = declared.saturating_add(dataset_bytes);
        let keep = limits.min_free_disk.saturating_mul(2);
        match self
            .disk
            .promise(&self.dir, needed, keep)
            .context("cannot find out the free disk space")?
        {
            Ok(promise) => Ok(promise),
            Err(Shortfall { free, promised }) => {
                // The figures of other users' work and of the disk are for the server log.
                tracing::warn!(
                    "upload refused for lack of disk: it needs up to {needed} bytes, {free} are \
                     free, {promised} are promised to writes under way, and {keep} are kept \
                     (twice min_free_disk_mib)"
                );
                Err(StartError::Refused(format!(
                    "Not enough disk space on the server for this upload: it needs up to \
                     {needed} bytes (the files and the dataset made of them), more than the \
                     server has free beside what it keeps for its own work and for work under \
                     way; try again later, or ask the administrator"
                )))
            }
        }
    }

    /// How far an upload visible in `scope` has come; `None` if there is no such upload.
    pub fn stage(&self, scope: &Scope, dataset_uuid: &str) -> Option<UploadStage> {
        let uploads = self.lock();
        let upload = uploads.get(dataset_uuid)?;
        scope
            .contains(&upload.meta.project_id, &upload.meta.owner_id)
            .then(|| match (upload.finalizing, upload.complete()) {
                (true, _) => UploadStage::Finalising,
                (false, true) => UploadStage::Arrived,
                (false, false) => UploadStage::Sending,
            })
    }

    /// Whether all bytes of an upload visible in `scope` have arrived; `None` if there is
    /// no such upload.
    pub fn progress(&self, scope: &Scope, dataset_uuid: &str) -> Option<bool> {
        // A finalisation starts only once every byte has arrived.
        self.stage(scope, dataset_uuid)
            .map(|stage| stage != UploadStage::Sending)
    }

    /// The unfinished uploads visible in `scope`, in the order they started.
    pub fn unfinished(&self, scope: &Scope) -> Vec<UploadMeta> {
        let mut visible: Vec<(Instant, UploadMeta)> = self
            .lock()
            .values()
            .filter(|u| scope.contains(&u.meta.project_id, &u.meta.owner_id))
            .map(|u| (u.started, u.meta.clone()))
            .collect();
        visible.sort_by_key(|(started, _)| *started);
        visible.into_iter().map(|(_, meta)| meta).collect()
    }

    /// The temporary file `file_uuid`, if it belongs to an upload of this user in this
    /// project (only the uploader writes its files).
    pub fn target(&self, user_id: &str, project_id: &str, file_uuid: &str) -> Option<UploadTarget> {
        let uploads = self.lock();
        uploads.values().find_map(|upload| {
            let file = upload.files.iter().find(|f| f.uuid == file_uuid)?;
            (upload.meta.owner_id == user_id && upload.meta.project_id == project_id).then(|| {
                UploadTarget {
                    kind: upload.meta.kind,
                    dataset_uuid: upload.meta.dataset_uuid.clone(),
                    file_uuid: file.uuid.clone(),
                    file: file.file.clone(),
                    size: file.size,
                    alive: upload.alive.subscribe(),
                    sessions: file.sessions.clone(),
                }
            })
        })
    }

    /// Why `who` (e.g. "User with id 'x'") cannot be deleted while it has unfinished
    /// uploads matching `which`; `None` when it has none.
    pub fn still_uploading(
        &self,
        who: &str,
        which: impl Fn(&UploadMeta) -> bool,
    ) -> Option<String> {
        let uuids: Vec<String> = self
            .lock()
            .values()
            .filter(|u| which(&u.meta))
            .map(|u| u.meta.dataset_uuid.clone())
            .collect();
        (!uuids.is_empty()).then(|| {
            format!(
                "{who} still has {} unfinished upload(s) (dataset uuids: {}); delete them by \
                 their dataset uuid, or wait: {}.",
                uuids.len(),
                uuids.join(", "),
                self.how_uploads_end()
            )
        })
    }

    /// Why an upload a client knew may be gone, for its "not found" messages.
    pub fn how_uploads_end(&self) -> String {
        format!(
            "an upload ends when it is finalised or cancelled, after {} s without a chunk, or \
             when the server restarts",
            self.timeout.as_secs()
        )
    }

    /// Whether the upload of dataset `dataset_uuid` is being finalised.
    pub fn finalising(&self, dataset_uuid: &str) -> bool {
        self.lock()
            .get(dataset_uuid)
            .is_some_and(|upload| upload.finalizing)
    }

    /// Writes one chunk at `position` (blocking file I/O: call from a blocking thread).
    pub fn write_chunk(
        &self,
        target: &UploadTarget,
        position: u64,
        data: &[u8],
    ) -> Result<(), ChunkError> {
        let len = data.len() as u64;
        let end = position
            .checked_add(len)
            .filter(|&end| end <= target.size)
            .ok_or(ChunkError::OutOfBounds {
                position,
                len,
                size: target.size,
            })?;
        {
            let mut uploads = self.lock();
            let upload = uploads
                .get_mut(&target.dataset_uuid)
                .ok_or(ChunkError::Gone)?;
            if upload.finalizing {
                return Err(ChunkError::Finalising);
            }
            let scattered = upload
                .files
                .iter()
                .find(|f| f.uuid == target.file_uuid)
                .is_some_and(|f| {
                    f.received.ranges.len() >= MAX_RECEIVED_RANGES
                        && f.received.would_add_range(position, end)
                });
            if scattered {
                return Err(ChunkError::Scattered { position });
            }
            upload.writes_in_flight += 1;
        }
        let written = target.file.write_all_at(data, position);
        let mut uploads = self.lock();
        let upload = uploads
            .get_mut(&target.dataset_uuid)
            .ok_or(ChunkError::Gone)?;
        upload.writes_in_flight -= 1;
        upload.last_activity = Instant::now();
        written?;
        if let Some(file) = upload.files.iter_mut().find(|f| f.uuid == target.file_uuid) {
            file.received.insert(position, end);
        }
        Ok(())
    }

    /// Claims a complete upload visible in `scope` for finalisation. `file_uuids` must be
    /// exactly the upload's files, in role order.
    pub fn begin_finalize(
        self: &Arc<Self>,
        scope: &Scope,
        dataset_uuid: &str,
        kind: UploadKind,
        file_uuids: &[&str],
    ) -> Result<Finalization, FinalizeError> {
        let mut uploads = self.lock();
        let upload = uploads
            .get_mut(dataset_uuid)
            .filter(|u| scope.contains(&u.meta.project_id, &u.meta.owner_id))
            .ok_or_else(|| {
                FinalizeError::NotFound(format!(
                    "No unfinished upload of a dataset with uuid '{dataset_uuid}' found ({})",
                    self.how_uploads_end()
                ))
            })?;
        if upload.meta.kind != kind {
            return Err(FinalizeError::Invalid(format!(
                "Dataset '{dataset_uuid}' is a {} upload, not a {} upload",
                upload.meta.kind.name(),
                kind.name()
            )));
        }
        for (file, uuid) in upload.files.iter().zip(file_uuids) {
            if file.uuid != *uuid {
                return Err(FinalizeError::NotFound(format!(
                    "Temporary file '{uuid}' is not the {} of the upload of dataset '{dataset_uuid}'",
                    file.role.name(kind)
                )));
            }
        }
        if upload.finalizing || upload.writes_in_flight > 0 {
            return Err(FinalizeError::Busy(format!(
                "The upload of dataset '{dataset_uuid}' is still being written or finalised"
            )));
        }
        if let Some(file) = upload.files.iter().find(|f| !f.complete()) {
            return Err(FinalizeError::Invalid(format!(
                "The upload is incomplete: the {} has received {} of {} bytes",
                file.role.name(kind),
                file.received.bytes(),
                file.size
            )));
        }
        upload.finalizing = true;
        Ok(Finalization {
            uploads: self.clone(),
            meta: upload.meta.clone(),
            paths: upload.files.iter().map(|f| f.path.clone()).collect(),
            done: false,
        })
    }

    /// Cancels an unfinished upload visible in `scope` and removes its temporary files
    /// (a chunk being written then fails as for an expired upload). `Ok(false)` if there is
    /// no such upload; an error while it is being finalised.
    pub fn cancel(&self, scope: &Scope, dataset_uuid: &str) -> Result<bool, FinalizeError> {
        let removed = {
            let mut uploads = self.lock();
            match uploads.get(dataset_uuid) {
                Some(u) if scope.contains(&u.meta.project_id, &u.meta.owner_id) => {
                    if u.finalizing {
                        return Err(FinalizeError::Busy(format!(
                            "The upload of dataset '{dataset_uuid}' is being finalised"
                        )));
                    }
                    uploads.remove(dataset_uuid)
                }
                _ => None,
            }
        };
        Ok(match removed {
            Some(upload) => {
                remove_files(upload.files.iter().map(|f| f.path.as_path()));
                true
            }
            None => false,
        })
    }

    fn remove(&self, dataset_uuid: &str) {
        let removed = self.lock().remove(dataset_uuid);
        if let Some(upload) = removed {
            remove_files(upload.files.iter().map(|f| f.path.as_path()));
        }
    }

    /// Removes uploads idle for longer than the timeout; returns how many.
    pub fn expire(&self) -> usize {
        let expired = self.remove_where(|u| {
            !u.finalizing && u.writes_in_flight == 0 && u.last_activity.elapsed() > self.timeout
        });
        for upload in &expired {
            // The check runs every quarter of the timeout, so the idle time is longer.
            tracing::info!(
                "removed the upload of dataset '{}' ({}) after {} s without activity (the \
                 limit is {} s)",
                upload.meta.dataset_uuid,
                upload.meta.name,
                upload.last_activity.elapsed().as_secs(),
                self.timeout.as_secs()
            );
        }
        expired.len()
    }

    /// Removes every upload whose conversion has not begun, for a stopping server (the
    /// uploads' state dies with the process, so their files would wait for the next start);
    /// returns how many. Call it once no session can write chunks any more.
    pub fn discard_unfinished(&self) -> usize {
        self.remove_where(|u| !u.finalizing).len()
    }

    /// Takes the uploads that `remove` picks out of the registry and removes their files;
    /// returns them.
    fn remove_where(&self, remove: impl Fn(&Upload) -> bool) -> Vec<Upload> {
        let removed: Vec<Upload> = self
            .lock()
            .extract_if(|_, upload| remove(upload))
            .map(|(_, upload)| upload)
            .collect();
        for upload in &removed {
            remove_files(upload.files.iter().map(|f| f.path.as_path()));
        }
        removed
    }

    /// How often [`Uploads::expire`] should run.
    pub fn expiry_interval(&self) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(60))
    }
}

/// The most disk space the dataset made of an upload's files (role and declared size) may
/// take, and 64 KiB for its header. MNIST: the pixels stay bytes, and each label byte becomes
/// ten one-hot bytes. CSV: each value becomes a 4-byte float, from at least two bytes of
/// text (`1,`), and each column a description entry of up to 48 bytes beside its name (a
/// column takes at least two bytes of the header line, and there are at most 65,536).
fn dataset_space(kind: UploadKind, files: impl Iterator<Item = (FileRole, u64)>) -> u64 {
    const HEADER: u64 = 64 << 10;
    files
        .map(|(role, size)| match (kind, role) {
            (UploadKind::Mnist, FileRole::Input) => size,
            (UploadKind::Mnist, FileRole::Label) => size.saturating_mul(10),
            (UploadKind::Csv, _) => size
                .saturating_mul(2)
                .saturating_add(48 * (size / 2).min(1 << 16)),
        })
        .fold(HEADER, u64::saturating_add)
}

fn remove_files<'a>(paths: impl Iterator<Item = &'a Path>) {
    for path in paths {
        if let Err(e) = hanami_store::files::remove_if_present(path) {
            tracing::warn!("cannot remove temporary file {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uploads in `dir` with `timeout`, no free-disk reserve and a disk ledger of their own.
    fn unlimited(dir: &Path, timeout: Duration) -> Uploads {
        Uploads::new(
            dir,
            timeout,
            UploadLimits::with_free_disk(0),
            Arc::default(),
        )
        .unwrap()
    }

    fn ranges(r: &Received) -> Vec<(u64, u64)> {
        r.ranges.iter().map(|(&s, &e)| (s, e)).collect()
    }

    #[test]
    fn received_ranges_merge() {
        let mut r = Received::default();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(r.bytes(), 20);
        assert!(r.would_add_range(21, 29) && !r.would_add_range(20, 21));
        assert!(!r.would_add_range(25, 30) && !r.would_add_range(5, 10));
        r.insert(15, 35);
        assert_eq!(ranges(&r), [(10, 40)]);
        r.insert(0, 10);
        r.insert(40, 50);
        assert_eq!(ranges(&r), [(0, 50)]);
        r.insert(5, 6);
        assert_eq!(r.bytes(), 50);
        r.insert(60, 60);
        assert_eq!(ranges(&r), [(0, 50)]);
        // One chunk over many ranges merges them all.
        for start in (100..200).step_by(10) {
            r.insert(start, start + 5);
        }
        assert_eq!(r.bytes(), 100);
        r.insert(98, 300);
        assert_eq!(ranges(&r), [(0, 50), (98, 300)]);
        assert_eq!(r.bytes(), 252);
    }

    /// Scattered chunks cost a logarithm each, and their number of pieces is bounded (one
    /// client's tiny chunks at every other byte held the lock of all uploads for a scan of
    /// every piece).
    #[test]
    fn scattered_chunks_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = unlimited(dir.path(), Duration::from_secs(60));
        let size = 4 * MAX_RECEIVED_RANGES as u64;
        let started = uploads
            .start(meta(UploadKind::Csv), &[(FileRole::Input, size)])
            .unwrap();
        let target = uploads
            .target("user", "proj", &started.file_uuids[0])
            .unwrap();
        for piece in 0..MAX_RECEIVED_RANGES as u64 {
            uploads.write_chunk(&target, 2 * piece, b"x").unwrap();
        }
        let refused = uploads.write_chunk(&target, size - 1, b"x").unwrap_err();
        assert!(
            matches!(refused, ChunkError::Scattered { position } if position == size - 1),
            "{refused}"
        );
        // Chunks that fill gaps, or extend a piece, are still taken.
        uploads.write_chunk(&target, 1, b"x").unwrap();
        uploads
            .write_chunk(&target, 2 * MAX_RECEIVED_RANGES as u64 - 1, b"xy")
            .unwrap();
    }

    fn meta(kind: UploadKind) -> UploadMeta {
        UploadMeta {
            dataset_uuid: "d".into(),
            name: "name".into(),
            kind,
            owner_id: "user".into(),
            project_id: "proj".into(),
            created_at: "now".into(),
        }
    }

    #[test]
    fn chunks_progress_and_finalize() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Arc::new(unlimited(dir.path(), Duration::from_secs(60)));
        let started = uploads
            .start(
                meta(UploadKind::Mnist),
                &[(FileRole::Input, 10), (FileRole::Label, 3)],
            )
            .unwrap();
        let [input, label] = [&started.file_uuids[0], &started.file_uuids[1]];
        assert!(uploads.target("other", "proj", input).is_none());
        assert!(uploads.target("user", "other", input).is_none());
        let t_in = uploads.target("user", "proj", input).unwrap();
        let t_label = uploads.target("user", "proj", label).unwrap();
        let scope = Scope::All;
        assert_eq!(uploads.progress(&scope, "d"), Some(false));
        assert!(matches!(
            uploads.write_chunk(&t_in, 8, b"abc"),
            Err(ChunkError::OutOfBounds { .. })
        ));
        assert!(uploads.write_chunk(&t_in, u64::MAX, b"a").is_err());
        uploads.write_chunk(&t_in, 5, b"56789").unwrap();
        uploads.write_chunk(&t_in, 0, b"01234").unwrap();
        assert_eq!(uploads.progress(&scope, "d"), Some(false));
        let err = uploads
            .begin_finalize(&scope, "d", UploadKind::Mnist, &[input, label])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("label file has received 0 of 3 bytes"),
            "{err}"
        );
        assert_eq!(uploads.stage(&scope, "d"), Some(UploadStage::Sending));
        uploads.write_chunk(&t_label, 0, b"xyz").unwrap();
        assert_eq!(uploads.progress(&scope, "d"), Some(true));
        assert_eq!(uploads.stage(&scope, "d"), Some(UploadStage::Arrived));
        assert!(matches!(
            uploads.begin_finalize(&scope, "d", UploadKind::Csv, &[input]),
            Err(FinalizeError::Invalid(_))
        ));
        assert!(matches!(
            uploads.begin_finalize(&scope, "d", UploadKind::Mnist, &[label, input]),
            Err(FinalizeError::NotFound(_))
        ));
        let member = Scope::Owned {
            project_id: "proj".into(),
            owner_id: "someone".into(),
        };
        assert!(matches!(
            uploads.begin_finalize(&member, "d", UploadKind::Mnist, &[input, label]),
            Err(FinalizeError::NotFound(_))
        ));

        let claim = uploads
            .begin_finalize(&scope, "d", UploadKind::Mnist, &[input, label])
            .unwrap();
        assert_eq!(std::fs::read(&claim.paths[0]).unwrap(), b"0123456789");
        assert_eq!(uploads.stage(&scope, "d"), Some(UploadStage::Finalising));
        assert_eq!(uploads.progress(&scope, "d"), Some(true));
        assert!(matches!(
            uploads.begin_finalize(&scope, "d", UploadKind::Mnist, &[input, label]),
            Err(FinalizeError::Busy(_))
        ));
        assert!(matches!(
            uploads.write_chunk(&t_in, 0, b"0"),
            Err(ChunkError::Finalising)
        ));
        assert!(uploads.finalising("d") && !uploads.finalising("x"));
        drop(claim); // a failed attempt releases the upload
        let claim = uploads
            .begin_finalize(&scope, "d", UploadKind::Mnist, &[input, label])
            .unwrap();
        let paths = claim.paths.clone();
        claim.finish();
        assert!(paths.iter().all(|p| !p.exists()));
        assert_eq!(uploads.progress(&scope, "d"), None);
    }

    /// Listed in the order they started, whatever their uuids, and only where visible.
    #[test]
    fn unfinished_uploads_are_listed_in_the_order_they_started() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = unlimited(dir.path(), Duration::from_secs(60));
        for uuid in ["c", "a", "b"] {
            let meta = UploadMeta {
                dataset_uuid: uuid.into(),
                ..meta(UploadKind::Csv)
            };
            uploads.start(meta, &[(FileRole::Input, 4)]).unwrap();
        }
        let listed = |scope: &Scope| -> Vec<String> {
            uploads
                .unfinished(scope)
                .into_iter()
                .map(|m| m.dataset_uuid)
                .collect()
        };
        assert_eq!(listed(&Scope::All), ["c", "a", "b"]);
        let stranger = Scope::Owned {
            project_id: "proj".into(),
            owner_id: "someone".into(),
        };
        assert!(listed(&stranger).is_empty());
    }

    #[test]
    fn idle_uploads_expire_and_restarts_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = unlimited(dir.path(), Duration::from_millis(50));
        uploads
            .start(meta(UploadKind::Csv), &[(FileRole::Input, 5)])
            .unwrap();
        assert_eq!(uploads.expire(), 0);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(uploads.expire(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        uploads
            .start(meta(UploadKind::Csv), &[(FileRole::Input, 5)])
            .unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let _again = unlimited(dir.path(), Duration::from_secs(1));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    const MIB: u64 = 1 << 20;

    /// Uploads over a fresh folder with a reserve that leaves `room` bytes above twice of it
    /// (what uploads leave free), the ledger they promise space in, and that reserve. Hold
    /// [`crate::disk::free_space_turn`] meanwhile.
    fn uploads_with_room(room: u64) -> (tempfile::TempDir, Arc<crate::disk::Ledger>, Uploads, u64) {
        let dir = tempfile::tempdir().unwrap();
        let reserve = (crate::disk::free_space(dir.path()).unwrap() - room) / 2;
        let disk = Arc::new(crate::disk::Ledger::default());
        let uploads = Uploads::new(
            dir.path(),
            Duration::from_secs(60),
            UploadLimits::with_free_disk(reserve),
            disk.clone(),
        )
        .unwrap();
        (dir, disk, uploads, reserve)
    }

    /// Starts upload `uuid` of one 50 MiB CSV file: about 153 MiB promised (its file and a
    /// dataset up to twice as large, and 3 MiB for column descriptions), and the file takes
    /// 50 MiB at once.
    fn start_50_mib(uploads: &Uploads, uuid: &str) -> Result<StartedUpload, StartError> {
        let meta = UploadMeta {
            dataset_uuid: uuid.into(),
            ..meta(UploadKind::Csv)
        };
        uploads.start(meta, &[(FileRole::Input, 50 * MIB)])
    }

    #[test]
    fn the_datasets_of_unfinished_uploads_are_counted_against_the_free_space() {
        let _serial = crate::disk::free_space_turn();
        let (dir, disk, uploads, _) = uploads_with_room(400 * MIB);
        let start = |uuid: &str| start_50_mib(&uploads, uuid);
        // 153 of 400; then 153 + 103 owed of 350; then 153 + 206 owed of 300: refused
        // (without the owed datasets it would fit).
        start("first").unwrap();
        start("second").unwrap();
        let refused = start("third").unwrap_err().to_string();
        assert!(
            refused.starts_with("Not enough disk space on the server for this upload"),
            "{refused}"
        );
        // The two datasets stay promised (103 MiB each: their files hold their own space)
        // until their uploads end.
        assert_eq!(disk.promised() >> 20, 206);
        let scope = Scope::All;
        assert!(uploads.cancel(&scope, "first").unwrap());
        assert_eq!(disk.promised() >> 20, 103);
        // Space promised to other writes (a result being written, say) counts too: 153 +
        // 103 + 150 of about 350 is refused, where 153 + 103 would fit.
        let others = disk.promise(dir.path(), 150 * MIB, 0).unwrap().unwrap();
        let refused = start("fourth").unwrap_err().to_string();
        assert!(refused.starts_with("Not enough disk space"), "{refused}");
        drop(others);
        start("fifth").unwrap();
    }

    /// Uploads leave twice the reserve free: the second half stays for the server's own
    /// writes, which leave only the reserve, so uploads that are started and never sent
    /// cannot keep a checkpoint or a request result from being written.
    #[test]
    fn uploads_leave_the_server_room_for_its_own_writes() {
        let _serial = crate::disk::free_space_turn();
        // The reserve is almost half the free space: 200 MiB of room above twice of it.
        let (dir, disk, uploads, reserve) = uploads_with_room(200 * MIB);
        // 153 MiB of 200; the next would leave less than twice the reserve (though far more
        // than the reserve itself, where a server's write may still go).
        start_50_mib(&uploads, "first").unwrap();
        let refused = start_50_mib(&uploads, "second").unwrap_err().to_string();
        assert!(
            refused.starts_with("Not enough disk space on the server for this upload"),
            "{refused}"
        );
        // A write of the server's own may take as much again as the reserve: what uploads
        // leave above it.
        let checkpoint = disk
            .reserve(dir.path(), "the checkpoint", reserve, reserve)
            .unwrap();
        drop(checkpoint);
    }

    /// A dataset's share of an upload's promise is given back once the conversion has
    /// allocated the dataset's file (it would count twice while the file is written), and
    /// promised again when the finalisation fails and the upload stays for another attempt.
    #[test]
    fn the_dataset_stops_counting_once_its_file_holds_its_space() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Arc::new(crate::disk::Ledger::default());
        let uploads = Arc::new(
            Uploads::new(
                dir.path(),
                Duration::from_secs(60),
                UploadLimits::with_free_disk(0),
                disk.clone(),
            )
            .unwrap(),
        );
        let started = uploads
            .start(meta(UploadKind::Csv), &[(FileRole::Input, 4)])
            .unwrap();
        let target = uploads
            .target("user", "proj", &started.file_uuids[0])
            .unwrap();
        uploads.write_chunk(&target, 0, b"a\n1\n").unwrap();
        let dataset = dataset_space(UploadKind::Csv, [(FileRole::Input, 4)].into_iter());
        // The file's 4 bytes too where the file system cannot allocate them up front.
        let promised = disk.promised();
        assert!(promised == dataset || promised == dataset + 4, "{promised}");
        let uuids = [started.file_uuids[0].as_str()];
        let finalize = || {
            uploads
                .begin_finalize(&Scope::All, "d", UploadKind::Csv, &uuids)
                .unwrap()
        };
        let failing = finalize();
        let allocated = failing.dataset_allocated();
        allocated();
        assert_eq!(disk.promised(), promised - dataset);
        drop(failing);
        assert_eq!(disk.promised(), promised);
        let succeeding = finalize();
        succeeding.dataset_allocated()();
        assert_eq!(disk.promised(), promised - dataset);
        succeeding.finish();
        assert_eq!(disk.promised(), 0);
    }
}
