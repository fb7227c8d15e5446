//! Projects (global admins only).

use hanami_auth::{ADMIN_PROJECT, Caller, Method};
use hanami_store::StoreError;
use hanami_store::resources::{DeleteError, Holder};
use hanami_types::list::{ListTable, PROJECT_COLUMNS};
use hanami_types::projects::{CreateProjectRequest, Project};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::{Field, Pattern};
use super::{ApiError, ApiResult, NoInput, Routes, require_admin};
use crate::state::App;

const PROJECT_ID: Field = Field::string("id", Some(Pattern::Id), 4, 254);
const CREATE_FIELDS: &[Field] = &[PROJECT_ID, Field::name("name")];
const ID_FIELDS: &[Field] = &[PROJECT_ID];

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/project", Method::Post, CREATE_FIELDS, create);
    routes.add("v1.0alpha/project", Method::Get, ID_FIELDS, get);
    routes.add("v1.0alpha/project/all", Method::Get, &[], list);
    routes.add("v1.0alpha/project", Method::Delete, ID_FIELDS, delete);
}

const MANAGE: &str = "manage projects";

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Project with id '{id}' not found"))
}

async fn create(app: App, caller: Caller, request: CreateProjectRequest) -> ApiResult<Project> {
    require_admin(&caller, MANAGE)?;
    if request.id.eq_ignore_ascii_case(ADMIN_PROJECT) {
        // The global admins' resources carry this project id; one that differs only in
        // case would be taken for it by people, if not by the server.
        return Err(ApiError::Conflict(format!(
            "Project id '{}' is reserved for the global admins{}.",
            request.id,
            if request.id == ADMIN_PROJECT {
                String::new()
            } else {
                format!(" (as '{ADMIN_PROJECT}', in any case)")
            }
        )));
    }
    app.store
        .create_project(&request.id, &request.name, &caller.id)
        .await
        .map_err(|e| match e {
            StoreError::Duplicate => {
                ApiError::Conflict(format!("Project with id '{}' already exists.", request.id))
            }
            other => other.into(),
        })
}

#[derive(Deserialize)]
struct ProjectId {
    id: String,
}

async fn get(app: App, caller: Caller, query: ProjectId) -> ApiResult<Project> {
    require_admin(&caller, MANAGE)?;
    app.store
        .project(&query.id)
        .await?
        .ok_or_else(|| not_found(&query.id))
}

async fn list(app: App, caller: Caller, _: NoInput) -> ApiResult<ListTable> {
    require_admin(&caller, MANAGE)?;
    let mut table = ListTable::new(PROJECT_COLUMNS);
    for p in app.store.projects().await? {
        table.body.push(
            [p.created_at, p.id, p.name, p.creator_id]
                .into_iter()
                .map(Value::String)
                .collect(),
        );
    }
    Ok(table)
}

/// Deletes a project and its user assignments; refused while resources belong to it.
async fn delete(app: App, caller: Caller, query: ProjectId) -> ApiResult<Map<String, Value>> {
    require_admin(&caller, MANAGE)?;
    let who = format!("Project with id '{}'", query.id);
    // No upload can be registered in the project between this check and the deletion.
    let _owners = app.owner_changes.lock().await;
    super::require_admin_now(&app, &caller).await?;
    // Only a project that exists can be in use: the global admins' own `admin` holds their
    // uploads and tasks but is no project (unless a database from before its id was
    // reserved has one), and answers 404 like any other unknown id.
    if app.store.project(&query.id).await?.is_none() {
        return Err(not_found(&query.id));
    }
    let pending = [
        app.uploads
            .still_uploading(&who, |upload| upload.project_id == query.id),
        super::tasks::still_promised(&app, &who, |promise| promise.project_id == query.id),
    ];
    super::refuse_while_pending(&app, &who, pending, Holder::Project(&query.id)).await?;
    match app.store.delete_project(&query.id).await {
        Ok(()) => Ok(Map::new()),
        Err(DeleteError::NotFound) => Err(not_found(&query.id)),
        Err(DeleteError::InUse(what)) => Err(ApiError::Conflict(format!(
            "Project with id '{}' still owns {what}; delete them first.",
            query.id
        ))),
        Err(DeleteError::Store(e)) => Err(e.into()),
    }
}
