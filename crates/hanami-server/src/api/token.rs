//! Login, token renewal (and project switch), and access validation.

use hanami_auth::{
    ADMIN_PROJECT, Caller, Method, Tags, Verified, account_tag, assignment_tag, password,
};
use hanami_store::users::UserRecord;
use hanami_types::auth::{AuthInfo, RenewTokenRequest, TokenRequest, TokenResponse};
use hanami_types::users::User;
use serde::Deserialize;
use std::net::IpAddr;

use super::validate::{Field, Pattern};
use super::{ApiError, ApiResult, AssignmentCheck, Routes, TokenRefused};
use crate::state::App;

/// Endpoint id of login and renewal.
pub const LOGIN_ENDPOINT: &str = "v1.0alpha/token";

/// Inputs of `POST token`.
pub const LOGIN_FIELDS: &[Field] = &[
    Field::string("id", Some(Pattern::IdExt), 4, 254),
    Field::string("password", None, 8, 4096),
];

/// Inputs of `PUT token`.
pub(super) const RENEW_FIELDS: &[Field] = &[Field::string("project_id", Some(Pattern::Id), 4, 254)];

const AUTH_FIELDS: &[Field] = &[
    Field::string("endpoint", Some(Pattern::Endpoint), 4, 256).optional(),
    Field::int("http_type", 1, 5).optional(),
];

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/auth", Method::Get, AUTH_FIELDS, check_access);
}

const ACCESS_DENIED: &str = "ACCESS DENIED!\nUser or password is incorrect.";

/// The answer to a password check that did not complete: a 409 when the server is too busy
/// with others (try again), a 500 when it failed.
pub(super) fn password_job_error(e: crate::passwords::PasswordJobFailed) -> ApiError {
    match e {
        e @ crate::passwords::PasswordJobFailed::Busy => ApiError::Conflict(format!("{e}")),
        e => ApiError::Internal(e.into()),
    }
}

/// `POST token`: checks the password and issues a token for the user's first project
/// (global admins: the `admin` project). Attempts from a client network that failed too
/// often for this user id wait (see [`crate::login_throttle`]).
pub async fn login(app: &App, request: TokenRequest, client: IpAddr) -> ApiResult<TokenResponse> {
    let check = app
        .logins
        .attempt(&request.id, client)
        .await
        .map_err(ApiError::TooManyLogins)?;
    let record = app.store.user_record(&request.id).await?;
    let valid = app
        .passwords
        .run_for(client, move || match &record {
            Some(r) if password::verify(&request.password, &r.pw_hash) => record,
            Some(_) => None,
            None => {
                password::verify_dummy(&request.password);
                None
            }
        })
        .await
        .map_err(password_job_error)?;
    let Some(record) = valid else {
        check.failed();
        return Err(ApiError::Unauthorized(ACCESS_DENIED.into()));
    };
    check.succeeded();
    let user = &record.user;
    let caller = if user.is_admin {
        admin_context(user)
    } else {
        let first = user.projects.first().ok_or_else(|| {
            ApiError::Unauthorized(format!(
                "User with id '{}' has no project assigned.",
                user.id
            ))
        })?;
        context(user, &first.project_id, &first.role, first.is_project_admin)
    };
    Ok(token_response(app, &record, &caller))
}

/// `PUT token`: a fresh token for the caller of `verified` in the chosen project, with the
/// user's current name, admin flag and role. The token is checked again against the same
/// reading of the user that the new token is made from: a token revoked while the request
/// was on its way (its user taken out of its project, even if put back since) gets none.
pub(super) async fn renew(
    app: &App,
    verified: &Verified,
    request: RenewTokenRequest,
) -> ApiResult<TokenResponse> {
    crate::crash_point::reached_async("token-renew:checked").await;
    let id = &verified.caller.id;
    let record = app
        .store
        .user_record(id)
        .await?
        .ok_or_else(|| TokenRefused::UserGone(id.clone()))?;
    super::caller_in(&record, verified, AssignmentCheck::AtIssue)?;
    let chosen = current_context(&record.user, &request.project_id).ok_or_else(|| {
        ApiError::Unauthorized(format!(
            "User with id '{}' is not assigned to the project with id '{}'.",
            record.user.id, request.project_id
        ))
    })?;
    Ok(token_response(app, &record, &chosen))
}

/// The context of `user` in `project_id` as the database has it now (role and project-admin
/// flag of the assignment); `None` if the user is not in that project. A global admin works
/// with role `admin` wherever it works (its own `admin` project or one it is assigned to:
/// that only decides where its new resources belong) and sees everything.
pub(super) fn current_context(user: &User, project_id: &str) -> Option<Caller> {
    if user.is_admin && project_id == ADMIN_PROJECT {
        return Some(admin_context(user));
    }
    let assignment = user.projects.iter().find(|p| p.project_id == project_id)?;
    Some(if user.is_admin {
        context(user, &assignment.project_id, "admin", true)
    } else {
        context(
            user,
            &assignment.project_id,
            &assignment.role,
            assignment.is_project_admin,
        )
    })
}

/// The context user `user_id` has in project `project_id` now; `None` if the user was
/// deleted or taken out of the project since a request of theirs was checked. Callers that
/// act on the answer hold `App::owner_changes`, so that it stays true while they do.
pub(super) async fn context_now(
    app: &App,
    user_id: &str,
    project_id: &str,
) -> ApiResult<Option<Caller>> {
    let user = app.store.user_record(user_id).await?.map(|r| r.user);
    Ok(user.and_then(|user| current_context(&user, project_id)))
}

#[derive(Deserialize)]
struct AccessQuery {
    endpoint: Option<String>,
    http_type: Option<u8>,
}

/// `GET auth`: the caller's context; with `endpoint`, also whether the policy lets the
/// caller use it with `http_type` (1 DELETE, 2 GET, 3 HEAD, 4 POST, 5 PUT; default GET).
async fn check_access(app: App, caller: Caller, query: AccessQuery) -> ApiResult<AuthInfo> {
    if let Some(endpoint) = &query.endpoint {
        let method = match query.http_type.unwrap_or(2) {
            1 => Some(Method::Delete),
            2 => Some(Method::Get),
            4 => Some(Method::Post),
            5 => Some(Method::Put),
            _ => None, // HEAD is never allowed
        };
        let allowed = method.is_some_and(|m| app.policy.allows(endpoint, m, &caller.role));
        if !allowed {
            return Err(ApiError::Unauthorized(
                hanami_types::websocket::POLICY_DENIED.into(),
            ));
        }
    }
    Ok(caller.info())
}

fn admin_context(user: &User) -> Caller {
    context(user, ADMIN_PROJECT, "admin", true)
}

fn context(user: &User, project_id: &str, role: &str, is_project_admin: bool) -> Caller {
    Caller {
        created_at: user.created_at.clone(),
        creator_id: user.creator_id.clone(),
        id: user.id.clone(),
        is_admin: user.is_admin,
        is_project_admin,
        name: user.name.clone(),
        project_id: project_id.to_owned(),
        role: role.to_owned(),
    }
}

/// The token for `caller`, a context of the user of `record`, bound to the user's account
/// and to its assignment to the caller's project (see [`tags_of`]).
fn token_response(app: &App, record: &UserRecord, caller: &Caller) -> TokenResponse {
    let user = &record.user;
    TokenResponse {
        id: user.id.clone(),
        name: user.name.clone(),
        is_admin: user.is_admin,
        token: app
            .tokens
            .issue(caller, &tags_of(record, &caller.project_id)),
    }
}

/// The tags a token for the user of `record` in `project_id` carries now: of the account,
/// and of its assignment to the project (of none in a global admin's own `admin` project).
pub(super) fn tags_of(record: &UserRecord, project_id: &str) -> Tags {
    let number = if record.user.is_admin && project_id == ADMIN_PROJECT {
        None
    } else {
        record.assignment_number(project_id)
    };
    Tags {
        account: account_tag(&record.pw_hash),
        assignment: assignment_tag(&record.pw_hash, number),
    }
}
