//! The audit log (each caller's own state-changing requests) and the error log (admins).

use hanami_auth::{Caller, Method};
use hanami_types::list::ListTable;
use serde::Deserialize;

use super::validate::{Field, Pattern};
use super::{ApiResult, Routes, require_admin};
use crate::state::App;

const LOG_FIELDS: &[Field] = &[
    Field::int("page", 0, 1_000_000_000),
    Field::string("user_id", Some(Pattern::IdExt), 4, 254).optional(),
];

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/audit_log", Method::Get, LOG_FIELDS, audit_log);
    routes.add("v1.0alpha/error_log", Method::Get, LOG_FIELDS, error_log);
}

#[derive(Deserialize)]
struct LogQuery {
    page: u32,
    user_id: Option<String>,
}

/// One page of an audit log: the caller's own, or (global admins only) any user's named by
/// `user_id`, all of it. Pages past the end are empty.
///
/// One's own log starts when one's account was created: a user deleted and created again
/// under the same id is another account, which does not read what the first one did (a
/// global admin may, by naming the id, as for any other).
async fn audit_log(app: App, caller: Caller, query: LogQuery) -> ApiResult<ListTable> {
    let named = query.user_id.is_some();
    let user_id = query.user_id.unwrap_or_else(|| caller.id.clone());
    let since = if caller.is_admin && named {
        None
    } else if user_id == caller.id {
        Some(caller.created_at.as_str())
    } else {
        require_admin(&caller, "read the audit log of other users")?;
        None
    };
    Ok(app.store.audit_page(&user_id, since, query.page).await?)
}

/// One page of the error log of one user, or of all errors without `user_id`.
async fn error_log(app: App, caller: Caller, query: LogQuery) -> ApiResult<ListTable> {
    require_admin(&caller, "read the error log")?;
    Ok(app
        .store
        .error_page(query.user_id.as_deref(), query.page)
        .await?)
}
