//! Errors of the client.

/// Result of a client call.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong in a call. More kinds may come (`#[non_exhaustive]`): match the ones
/// you handle and keep a fallback arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 400: the server refused the input; the message says why.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: not logged in, token expired, or not allowed.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 404: no such resource (or not visible to this user).
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 500: the server failed; the message carries its error id.
    #[error("internal server error: {0}")]
    Internal(String),
    /// Any other status.
    #[error("unexpected status {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The body text.
        body: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("connection to the server failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// A websocket session failed or the server refused a message in it.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// A local file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// An upload made its dataset, but reading the new dataset back failed (the server
    /// stopped right after the finalisation, say): the dataset exists under `uuid`.
    #[error("dataset '{uuid}' was created, but reading it back failed: {source}")]
    CreatedUnread {
        /// The new dataset.
        uuid: String,
        /// Why it could not be read.
        source: Box<Error>,
    },
    /// An upload's finalisation got no answer (the connection broke, the server stopped),
    /// after the server had every byte: the server may still register the dataset under
    /// `uuid` (a stopping server finishes conversions it began), so look for it before
    /// uploading again.
    #[error(
        "the server had every byte of the upload but did not answer its finalisation ({source}); \
         it may still register the dataset as '{uuid}': look for it (dataset get) before \
         uploading again"
    )]
    FinalizeUnanswered {
        /// The dataset the upload would make.
        uuid: String,
        /// Why no answer came.
        source: Box<Error>,
    },
    /// A wait ended at the caller's limit (or the client's, for an upload's last bytes)
    /// while the task or upload was still under way; it may still end later.
    #[error("{what} after {waited:?}")]
    Timeout {
        /// What was still under way, e.g. `task <uuid> is still active`.
        what: String,
        /// How long the client waited.
        waited: std::time::Duration,
    },
    /// An argument cannot be used (checked before anything is sent): an address without
    /// `http://` or `https://`, an interface named twice, nothing to send.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The caller cancelled the call (an upload's `cancel` future completed first).
    #[error("cancelled")]
    Cancelled,
    /// The client options are unusable (e.g. a malformed certificate).
    #[error("invalid client options: {0}")]
    Options(String),
}

impl Error {
    /// The error for a non-200 answer.
    pub(crate) fn from_status(status: u16, body: String) -> Self {
        match status {
            400 => Error::BadRequest(body),
            401 => Error::Unauthorized(body),
            404 => Error::NotFound(body),
            409 => Error::Conflict(body),
            500 => Error::Internal(body),
            _ => Error::Status { status, body },
        }
    }

    /// The HTTP status behind the error, if it came from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::BadRequest(_) => Some(400),
            Error::Unauthorized(_) => Some(401),
            Error::NotFound(_) => Some(404),
            Error::Conflict(_) => Some(409),
            Error::Internal(_) => Some(500),
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
