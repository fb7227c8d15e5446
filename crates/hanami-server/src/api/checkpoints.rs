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

/// The error for a checkpoint that `caller` cannot find: 409 while its save is pending
/// (`then`: what to do once it is saved), else 404.
fn missing(app: &App, caller: &Caller, uuid: &str, then: &str) -> ApiError {
    super::clusters::unsaved_checkpoint(app, &caller.scope(), uuid, then)
        .unwrap_or_else(|| not_found(uuid))
}

#[derive(Deserialize)]
struct ByUuid {
    uuid: String,
}

async fn get(app: App, caller: Caller, query: ByUuid) -> ApiResult<Resource> {
    let row = app
        .store
        .resource(Kind::Checkpoint, &caller.scope(), &query.uuid)
        .await?
        .ok_or_else(|| missing(&app, &caller, &query.uuid, "get it"))?;
    Ok(super::clusters::resource(&row))
}

async fn list(app: App, caller: Caller, _: NoInput) -> ApiResult<ListTable> {
    Ok(app
        .store
        .resource_list(Kind::Checkpoint, &caller.scope())
        .await?)
}

async fn delete(app: App, caller: Caller, query: ByUuid) -> ApiResult<Map<String, Value>> {
    let dir = app.paths.checkpoints();
    super::delete_with_file(&app, Kind::Checkpoint, &caller.scope(), &query.uuid, dir)
        .await?
        .ok_or_else(|| missing(&app, &caller, &query.uuid, "delete it"))?;
    Ok(Map::new())
}
