//! Users and their project assignments (global admins only, except listing one's own
//! projects).

use hanami_auth::{ADMIN_PROJECT, Caller, Method, password};
use hanami_store::StoreError;
use hanami_store::resources::{DeleteError, Holder};
use hanami_store::users::NewUser;
use hanami_types::list::{ListTable, USER_COLUMNS};
use hanami_types::users::{
    AssignProjectRequest, CreateUserRequest, ProjectAssignment, UpdateUserRequest, User,
    UserProjects,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::{Field, Pattern};
use super::{ApiError, ApiResult, NoInput, Routes, require_admin};
use crate::state::App;

const USER_ID: Field = Field::string("id", Some(Pattern::IdExt), 4, 254);
const PROJECT_ID: Field = Field::string("project_id", Some(Pattern::Id), 4, 254);

const CREATE_FIELDS: &[Field] = &[
    USER_ID,
    Field::name("name"),
    Field::string("password", None, 8, 4096),
    Field::boolean("is_admin").optional(),
];
const UPDATE_FIELDS: &[Field] = &[
    USER_ID,
    Field::name("name").optional(),
    Field::string("password", None, 8, 4096).optional(),
    Field::boolean("is_admin").optional(),
];
const GET_FIELDS: &[Field] = &[Field::string("id", Some(Pattern::IdExt), 4, 256)];
const DELETE_FIELDS: &[Field] = &[USER_ID];
const ASSIGN_FIELDS: &[Field] = &[
    USER_ID,
    PROJECT_ID,
    Field::string("role", Some(Pattern::Id), 4, 254),
    Field::boolean("is_project_admin").optional(),
];
const UNASSIGN_FIELDS: &[Field] = &[USER_ID, PROJECT_ID];
const LIST_PROJECTS_FIELDS: &[Field] =
    &[Field::string("user_id", Some(Pattern::IdExt), 4, 254).optional()];

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/user", Method::Post, CREATE_FIELDS, create);
    routes.add("v1.0alpha/user", Method::Put, UPDATE_FIELDS, update);
    routes.add("v1.0alpha/user", Method::Get, GET_FIELDS, get);
    routes.add("v1.0alpha/user/all", Method::Get, &[], list);
    routes.add("v1.0alpha/user", Method::Delete, DELETE_FIELDS, delete);
    routes.add(
        "v1.0alpha/user/project",
        Method::Post,
        ASSIGN_FIELDS,
        assign,
    );
    routes.add(
        "v1.0alpha/user/project",
        Method::Delete,
        UNASSIGN_FIELDS,
        unassign,
    );
    routes.add(
        "v1.0alpha/user/project",
        Method::Get,
        LIST_PROJECTS_FIELDS,
        projects_of,
    );
}

const MANAGE: &str = "manage users";

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("User with id '{id}' not found"))
}

async fn create(app: App, caller: Caller, request: CreateUserRequest) -> ApiResult<User> {
    require_admin(&caller, MANAGE)?;
    let secret = request.password.clone();
    let pw_hash = app
        .passwords
        .run(move || password::hash(&secret))
        .await
        .map_err(super::token::password_job_error)?;
    let new = NewUser {
        id: &request.id,
        name: &request.name,
        creator_id: &caller.id,
        is_admin: request.is_admin,
        pw_hash: &pw_hash,
    };
    app.store.create_user(new).await.map_err(|e| match e {
        StoreError::Duplicate => {
            ApiError::Conflict(format!("User with id '{}' already exists.", request.id))
        }
        other => other.into(),
    })
}

/// `PUT user` (an addition): changes a user's name, password or global admin flag. A new
/// password ends the user's tokens (a token names its account by the password's hash), the
/// others take effect with each token's next request.
async fn update(app: App, caller: Caller, request: UpdateUserRequest) -> ApiResult<User> {
    require_admin(&caller, MANAGE)?;
    if request.name.is_none() && request.password.is_none() && request.is_admin.is_none() {
        return Err(ApiError::BadRequest(
            "Nothing to change: give 'name', 'password' or 'is_admin'".into(),
        ));
    }
    if request.id == caller.id && request.is_admin == Some(false) {
        return Err(ApiError::Conflict(format!(
            "User with id '{}' tries to take away his own admin rights, which is not allowed.",
            request.id
        )));
    }
    let pw_hash = match request.password {
        Some(secret) => Some(
            app.passwords
                .run(move || password::hash(&secret))
                .await
                .map_err(super::token::password_job_error)?,
        ),
        None => None,
    };
    // Two admins taking each other's rights at once leave one of them.
    let _owners = app.owner_changes.lock().await;
    super::require_admin_now(&app, &caller).await?;
    app.store
        .update_user(
            &request.id,
            request.name.as_deref(),
            pw_hash.as_deref(),
            request.is_admin,
        )
        .await?
        .ok_or_else(|| not_found(&request.id))
}

#[derive(Deserialize)]
struct UserId {
    id: String,
}

async fn get(app: App, caller: Caller, query: UserId) -> ApiResult<User> {
    require_admin(&caller, MANAGE)?;
    app.store
        .user(&query.id)
        .await?
        .ok_or_else(|| not_found(&query.id))
}

async fn list(app: App, caller: Caller, _: NoInput) -> ApiResult<ListTable> {
    require_admin(&caller, MANAGE)?;
    let mut table = ListTable::new(USER_COLUMNS);
    for user in app.store.users().await? {
        table.body.push(vec![
            Value::String(user.created_at),
            Value::String(user.id),
            Value::String(user.name),
            Value::String(user.creator_id),
            serde_json::to_value(user.projects).map_err(|e| ApiError::Internal(e.into()))?,
            Value::Bool(user.is_admin),
        ]);
    }
    Ok(table)
}

async fn delete(app: App, caller: Caller, query: UserId) -> ApiResult<Map<String, Value>> {
    require_admin(&caller, MANAGE)?;
    if query.id == caller.id {
        return Err(ApiError::Conflict(format!(
            "User with id '{}' tries to delete himself, which is not allowed.",
            query.id
        )));
    }
    let who = format!("User with id '{}'", query.id);
    // No upload can be registered for the user between this check and the deletion.
    let _owners = app.owner_changes.lock().await;
    super::require_admin_now(&app, &caller).await?;
    let pending = [
        app.uploads
            .still_uploading(&who, |upload| upload.owner_id == query.id),
        super::tasks::still_promised(&app, &who, |promise| promise.owner_id == query.id),
    ];
    super::refuse_while_pending(&app, &who, pending, Holder::Owner(&query.id)).await?;
    match app.store.delete_user(&query.id).await {
        Ok(()) => Ok(Map::new()),
        Err(DeleteError::NotFound) => Err(not_found(&query.id)),
        Err(DeleteError::InUse(what)) => Err(ApiError::Conflict(format!(
            "User with id '{}' still owns {what}; delete them first (a user created later \
             with this id would own them).",
            query.id
        ))),
        Err(DeleteError::Store(e)) => Err(e.into()),
    }
}

async fn assign(app: App, caller: Caller, request: AssignProjectRequest) -> ApiResult<User> {
    require_admin(&caller, "assign projects to users")?;
    if app.store.user(&request.id).await?.is_none() {
        return Err(not_found(&request.id));
    }
    if app.store.project(&request.project_id).await?.is_none() {
        let reserved = if request.project_id == ADMIN_PROJECT {
            " (the id is reserved for the context of the global admins, which no project \
             assignment gives: create the user as a global admin for it)"
        } else {
            ""
        };
        return Err(ApiError::NotFound(format!(
            "Project with id '{}' not found{reserved}",
            request.project_id
        )));
    }
    // A role the policy never names could call nothing at all.
    let roles = app.policy.roles();
    if !roles.contains(&request.role.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "Role '{}' is not in the server's policy (its roles: {})",
            request.role,
            app.policy.roles_text()
        )));
    }
    let assignment = ProjectAssignment {
        project_id: request.project_id.clone(),
        role: request.role,
        is_project_admin: request.is_project_admin,
    };
    match app.store.assign_project(&request.id, &assignment).await {
        Ok(()) => {}
        Err(StoreError::Duplicate) => {
            return Err(ApiError::Conflict(format!(
                "Project with ID '{}' is already assigned to user with id '{}'.",
                request.project_id, request.id
            )));
        }
        // The user or project was deleted between the checks and the insert.
        Err(StoreError::NotFound) => return Err(not_found(&request.id)),
        Err(e) => return Err(e.into()),
    }
    app.store
        .user(&request.id)
        .await?
        .ok_or_else(|| not_found(&request.id))
}

#[derive(Deserialize)]
struct Unassign {
    id: String,
    project_id: String,
}

async fn unassign(app: App, caller: Caller, query: Unassign) -> ApiResult<User> {
    require_admin(&caller, "remove projects from users")?;
    if app.store.user(&query.id).await?.is_none() {
        return Err(not_found(&query.id));
    }
    // A checkpoint or result dataset made for the user in the project after this would
    // belong to someone who can no longer see it; no such task is queued while this holds.
    let _owners = app.owner_changes.lock().await;
    let who = format!(
        "User with id '{}' in project '{}'",
        query.id, query.project_id
    );
    let promised = super::tasks::still_promised(&app, &who, |promise| {
        promise.owner_id == query.id && promise.project_id == query.project_id
    });
    if let Some(refusal) = promised {
        return Err(ApiError::Conflict(refusal));
    }
    if !app
        .store
        .unassign_project(&query.id, &query.project_id)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "Project with ID '{}' is not assigned to user with id '{}' and so it can not be \
             removed from the user.",
            query.project_id, query.id
        )));
    }
    app.store
        .user(&query.id)
        .await?
        .ok_or_else(|| not_found(&query.id))
}

#[derive(Deserialize)]
struct ProjectsQuery {
    user_id: Option<String>,
}

/// Without `user_id` the caller's own projects; only global admins may ask about others.
async fn projects_of(app: App, caller: Caller, query: ProjectsQuery) -> ApiResult<UserProjects> {
    let user_id = query.user_id.unwrap_or_else(|| caller.id.clone());
    if user_id != caller.id {
        require_admin(&caller, "list the projects of other users")?;
    }
    let user = app
        .store
        .user(&user_id)
        .await?
        .ok_or_else(|| not_found(&user_id))?;
    let mut projects = user.projects;
    if user.is_admin {
        projects.push(ProjectAssignment {
            project_id: ADMIN_PROJECT.into(),
            role: "admin".into(),
            is_project_admin: true,
        });
    }
    Ok(UserProjects { projects })
}
