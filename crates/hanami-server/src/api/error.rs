//! The one error type of the API and how it becomes an HTTP response.
//!
//! Only the status codes the original clients understand are produced: 400, 401, 404, 409
//! and 500 (a login refused for too many failed attempts is a 401 too, with `Retry-After`).
//! Error bodies are plain text. A 500 carries an error id that is also written to the
//! server log and, where the database takes it, the error log, so an operator can find the
//! cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use hanami_store::resources::Kind;

use crate::login_throttle::WaitFor;

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the text says what and where.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid token, or the caller may not do this.
    #[error("{0}")]
    Unauthorized(String),
    /// 401: a login attempt of a user id and address with too many failed attempts, before
    /// the given wait is over.
    #[error("Too many failed logins for this user from this address; try again in {} s", .0.seconds())]
    TooManyLogins(WaitFor),
    /// 404: the resource does not exist (or is outside the caller's scope).
    #[error("{0}")]
    NotFound(String),
    /// 404: no cluster, dataset or checkpoint of this uuid in the caller's scope (the
    /// dispatcher names the kind the uuid does belong to, where the caller sees one).
    #[error("{} with uuid '{uuid}' not found", capitalized(kind.word()))]
    UnknownResource {
        /// The kind asked for.
        kind: Kind,
        /// The uuid given.
        uuid: String,
    },
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 500: something broke inside the server. The cause is logged, not shown.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The message of a client error (empty for internal errors).
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m) => m.clone(),
            e @ (ApiError::TooManyLogins(_) | ApiError::UnknownResource { .. }) => e.to_string(),
            ApiError::Internal(_) => String::new(),
        }
    }

    /// Whether this is an internal error because another program locks the database.
    pub fn database_is_locked(&self) -> bool {
        matches!(self, ApiError::Internal(e) if crate::error_log::database_is_locked(e))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::TooManyLogins(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::UnknownResource { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: the message as plain text, with `Retry-After` where waiting helps.
    pub fn response(&self) -> Response {
        let mut response = text_response(self.status(), self.message());
        if let ApiError::TooManyLogins(wait) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.seconds()));
        }
        response
    }
}

/// `word` with its first letter in upper case.
pub(super) fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A blocking job or a spawned task of a request that panicked (or was cancelled): the
/// server's error.
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<hanami_store::StoreError> for ApiError {
    fn from(e: hanami_store::StoreError) -> Self {
        match e {
            // The caller's account or project was deleted while the request ran.
            e @ hanami_store::StoreError::OwnerGone { .. } => {
                ApiError::Conflict(format!("Cannot record the resource: {e}"))
            }
            e => ApiError::Internal(e.into()),
        }
    }
}

/// A plain-text response with the given status.
pub fn text_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
