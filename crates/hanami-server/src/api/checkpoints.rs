//! Checkpoints: get, list, delete (they are created by `cluster/save`).

use hanami_auth::{Caller, Method};
use hanami_store::resources::Kind;
use hanami_types::clusters::Resource;
use hanami_types::list::ListTable;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::{Field, Pattern};
use super::{ApiError, ApiResult, NoInput, Routes};
use crate::state::App;

const UUID: Field = Field::string("uuid", Some(Pattern::Uuid), 36, 36);

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/checkpoint", Method::Get, &[UUID], get);
    routes.add("v1.0alpha/checkpoint/all", Method::Get, &[], list);
    routes.add("v1.0alpha/checkpoint", Method::Delete, &[UUID], delete);
}

/// The 404 of a checkpoint outside the caller's scope or unknown.
pub fn not_found(uuid: &str) -> ApiError {
    ApiError::NotFound(format!("Checkpoint with uuid '{uuid}' not found"))
}

/// The 409 for a checkpoint that `caller` cannot find because its save is pending (`then`:
/// what to do once it is saved); `Ok` when it is not pending (then it is unknown, or its
/// save finished since the caller looked).
fn refuse_pending(app: &App, caller: &Caller, uuid: &str, then: &str) -> ApiResult<()> {
    match super::clusters::unsaved_checkpoint(app, &caller.scope(), uuid, then) {
        Some(pending) => Err(pending),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct ByUuid {
    uuid: String,
}

async fn get(app: App, caller: Caller, query: ByUuid) -> ApiResult<Resource> {
    let look = async || {
        app.store
            .resource(Kind::Checkpoint, &caller.scope(), &query.uuid)
            .await
    };
    let row = match look().await? {
        Some(row) => row,
        None => {
            refuse_pending(&app, &caller, &query.uuid, "get it")?;
            // Its save may have finished between the two looks.
            look().await?.ok_or_else(|| not_found(&query.uuid))?
        }
    };
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
        refuse_pending(&app, &caller, &query.uuid, "delete it")?;
        // Its save may have finished between the two looks.
        delete().await?.ok_or_else(|| not_found(&query.uuid))?;
    }
    Ok(Map::new())
}
