//! Checkpoints: get, list, delete (they are created by `cluster/save`).

use std::path::PathBuf;

use hanami_auth::{Caller, Method};
use hanami_store::resources::{Kind, ResourceRow};
use hanami_types::clusters::Resource;
use hanami_types::list::ListTable;
use hanami_types::scope::Scope;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::Field;
use super::{ApiError, ApiResult, NoInput, Routes};
use crate::file_faults;
use crate::state::App;

const UUID: Field = Field::uuid("uuid");

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/checkpoint", Method::Get, &[UUID], get);
    routes.add("v1.0alpha/checkpoint/all", Method::Get, &[], list);
    routes.add("v1.0alpha/checkpoint", Method::Delete, &[UUID], delete);
}

/// The 404 of a checkpoint outside the caller's scope or unknown.
pub fn not_found(uuid: &str) -> ApiError {
    ApiError::UnknownResource {
        kind: Kind::Checkpoint,
        uuid: uuid.to_owned(),
    }
}

/// The 409 for a checkpoint in `scope` that cannot be found because its save is still
/// queued or running (`then`: what to do once it is saved, "restore it"); `Ok` when it is
/// not pending (then it is unknown, or its save finished since it was looked for).
fn refuse_pending(app: &App, scope: &Scope, uuid: &str, then: &str) -> ApiResult<()> {
    match super::tasks::pending_product(app, scope, Kind::Checkpoint, uuid) {
        Some((cluster, state)) => Err(ApiError::Conflict(format!(
            "Checkpoint '{uuid}' is not saved yet: its save task on cluster '{cluster}' is {}; \
             {then} once that task has finished (or delete the task)",
            state.as_str()
        ))),
        None => Ok(()),
    }
}

/// The row of checkpoint `uuid` in `scope`; the 409 of [`refuse_pending`] for one whose save
/// has not finished (`then`: what to do once it has), else the 404.
pub(super) async fn checkpoint_row(
    app: &App,
    scope: &Scope,
    uuid: &str,
    then: &str,
) -> ApiResult<ResourceRow> {
    let look = async || app.store.resource(Kind::Checkpoint, scope, uuid).await;
    if let Some(row) = look().await? {
        return Ok(row);
    }
    refuse_pending(app, scope, uuid, then)?;
    // Its save may have finished between the two looks.
    look().await?.ok_or_else(|| not_found(uuid))
}

#[derive(Deserialize)]
struct ByUuid {
    uuid: String,
}

/// What is wrong with a checkpoint's file, changed or removed outside the server (its
/// header is read, not the whole file: the checksum is checked when it is restored);
/// `None` when nothing is seen. Other failures are the server's.
pub(super) async fn file_problem(path: PathBuf) -> ApiResult<Option<FileProblem>> {
    Ok(open_file(path).await?.err())
}

/// Opens a checkpoint's file for a restore after the checks of [`file_problem`]. The open
/// file stays readable when the checkpoint is deleted before the restore starts.
pub(super) async fn open_file(path: PathBuf) -> ApiResult<Result<std::fs::File, FileProblem>> {
    use std::io::{Read as _, Seek as _};
    let opened = path.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let path = opened;
        // Before opening: a socket cannot be opened at all.
        if !std::fs::metadata(&path)?.is_file() {
            return Ok(Err(FileProblem::NotAFile));
        }
        let mut file = hanami_store::files::open_without_waiting(&path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Ok(Err(FileProblem::NotAFile));
        }
        let mut head = Vec::with_capacity(hanami_engine::CHECKPOINT_HEADER_BYTES);
        (&mut file)
            .take(hanami_engine::CHECKPOINT_HEADER_BYTES as u64)
            .read_to_end(&mut head)?;
        file.rewind()?;
        std::io::Result::Ok(
            match hanami_engine::check_checkpoint_header(&head, metadata.len()) {
                Ok(()) => Ok(file),
                Err(hanami_engine::CheckpointError::UnsupportedVersion { found }) => {
                    Err(FileProblem::OtherVersion(found))
                }
                Err(e) => Err(FileProblem::Damaged(e.to_string())),
            },
        )
    })
    .await?;
    match checked {
        Ok(opened) => Ok(opened),
        Err(e) => match FileProblem::of(&e) {
            Some(problem) => {
                if let FileProblem::Lost = problem {
                    tracing::warn!("cannot read checkpoint file {}: {e}", path.display());
                }
                Ok(Err(problem))
            }
            None => Err(ApiError::Internal(
                anyhow::Error::new(e).context("cannot check a checkpoint's file"),
            )),
        },
    }
}

/// What can be wrong with a checkpoint's file (see [`open_file`]).
pub(super) enum FileProblem {
    /// No file where the row says.
    Missing,
    /// A folder, a named pipe or a device in its place.
    NotAFile,
    /// The server may not read it.
    Unreadable,
    /// Written in another format version (by a newer server, say): that version.
    OtherVersion(u32),
    /// Not a checkpoint, or truncated or extended: why.
    Damaged(String),
    /// The disk could not read it back (an input/output error).
    Lost,
}

impl FileProblem {
    /// The problem of the file that an error of reading it shows; `None` where the error is
    /// not the file's (the server's own failure).
    fn of(e: &std::io::Error) -> Option<Self> {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::NotFound => Some(FileProblem::Missing),
            ErrorKind::PermissionDenied => Some(FileProblem::Unreadable),
            _ if e.raw_os_error() == Some(libc::EIO) => Some(FileProblem::Lost),
            _ => None,
        }
    }

    /// The 409 for checkpoint `uuid`, saying what to do.
    pub(super) fn refusal(&self, uuid: &str) -> ApiError {
        let unusable = |what: &str| {
            format!(
                "The file of checkpoint '{uuid}' {what}, so the checkpoint cannot be restored; \
                 delete it"
            )
        };
        ApiError::Conflict(match self {
            FileProblem::Missing => unusable(file_faults::MISSING),
            FileProblem::NotAFile => unusable("is not a regular file"),
            FileProblem::Unreadable => format!(
                "The file of checkpoint '{uuid}' {}, so the checkpoint cannot be restored; {}",
                file_faults::UNREADABLE,
                file_faults::GIVE_ACCESS_BACK
            ),
            FileProblem::Damaged(why) => unusable(&format!("is damaged ({why})")),
            FileProblem::Lost => unusable(file_faults::LOST_ON_DISK),
            // Not damaged: a server that reads that version can restore it.
            FileProblem::OtherVersion(found) => format!(
                "The file of checkpoint '{uuid}' is in checkpoint format version {found}, which \
                 this server does not read (it reads version {}); restore it with a server \
                 that does",
                hanami_engine::FORMAT_VERSION
            ),
        })
    }
}

async fn get(app: App, caller: Caller, query: ByUuid) -> ApiResult<Resource> {
    let scope = caller.scope();
    let row = checkpoint_row(&app, &scope, &query.uuid, "get it").await?;
    let path = app.paths.checkpoints().join(&row.file_name);
    if let Some(problem) = file_problem(path).await? {
        // Deleted meanwhile: as it would be a moment later.
        if app
            .store
            .resource(Kind::Checkpoint, &scope, &query.uuid)
            .await?
            .is_none()
        {
            return Err(not_found(&query.uuid));
        }
        let refusal = problem.refusal(&row.uuid);
        tracing::warn!("checkpoint '{}' cannot be used: {refusal}", row.uuid);
        return Err(refusal);
    }
    Ok(super::clusters::resource(&row))
}

async fn list(app: App, caller: Caller, _: NoInput) -> ApiResult<ListTable> {
    Ok(app
        .store
        .resource_list(Kind::Checkpoint, &caller.scope())
        .await?)
}

async fn delete(app: App, caller: Caller, query: ByUuid) -> ApiResult<Map<String, Value>> {
    let delete = async || {
        let dir = app.paths.checkpoints();
        super::delete_with_file(&app, Kind::Checkpoint, &caller.scope(), &query.uuid, dir).await
    };
    if delete().await?.is_none() {
        refuse_pending(&app, &caller.scope(), &query.uuid, "delete it")?;
        // Its save may have finished between the two looks.
        delete().await?.ok_or_else(|| not_found(&query.uuid))?;
    }
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::FileProblem;

    /// A file the server may not read is the administrator's to mend, not its owner's to
    /// delete (the advice to delete it lost a sound checkpoint); damage is the owner's.
    #[test]
    fn an_unreadable_file_is_not_to_be_deleted() {
        let unreadable = FileProblem::Unreadable.refusal("c").message();
        assert!(
            unreadable.contains("permission denied")
                && unreadable
                    .contains("the server's administrator must give the server's user access")
                && !unreadable.contains("delete it"),
            "{unreadable}"
        );
        let damaged = FileProblem::Damaged("cut".into()).refusal("c");
        assert!(
            damaged.message().ends_with("delete it"),
            "{}",
            damaged.message()
        );
    }

    /// A file the disk cannot read back is the 409 of a lost file, as for datasets (it was a
    /// 500), without the server's path; other errors stay the server's.
    #[test]
    fn a_file_the_disk_cannot_read_is_lost() {
        use std::io::{Error, ErrorKind};
        let problem = |e: Error| FileProblem::of(&e).map(|p| p.refusal("c").message());
        assert_eq!(
            problem(Error::from_raw_os_error(libc::EIO)).unwrap(),
            "The file of checkpoint 'c' could not be read back from the disk (an input/output \
             error; the server log has the path), so the checkpoint cannot be restored; delete it"
        );
        assert!(problem(Error::from(ErrorKind::NotFound)).is_some_and(|m| m.contains("missing")));
        assert_eq!(problem(Error::from_raw_os_error(libc::EMFILE)), None);
    }
}
