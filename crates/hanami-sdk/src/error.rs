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
    /// The server could not be reached or the connection broke; the text names the cause
    /// (a refused connection, a timeout, a refused certificate in words, an address whose
    /// scheme does not match what the server speaks; see [`transport_text`]).
    #[error("connection to the server failed: {}", transport_text(.0))]
    Transport(#[from] reqwest::Error),
    /// A websocket session could not be opened or broke off (a connection refused or cut,
    /// a close without a reason), or it ended earlier and was used again.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The server closed a websocket session for a reason that no other variant stands
    /// for (an upload that sent no chunk for the server's `upload_timeout`, say); the text
    /// is the server's.
    #[error("websocket: the server closed the session: {0}")]
    SessionClosed(String),
    /// A websocket session stalled for the client's answer timeout (see
    /// [`crate::ConnectOptions`]; an opening waits at least [`crate::CONNECT_TIMEOUT`]);
    /// the session is over. A slow server needs a longer answer timeout.
    #[error("websocket: {}", stall.within(*waited))]
    SessionTimeout {
        /// What did not happen in time.
        stall: Stall,
        /// How long the client waited.
        waited: std::time::Duration,
    },
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
    /// A request could not be made because the server's address or an argument makes its
    /// URL invalid or too long (nothing was sent); the text is the cause, without the URL,
    /// which may run to tens of kilobytes.
    #[error(
        "invalid argument: cannot send the request: the server's address or an argument makes \
         its URL invalid or too long ({0})"
    )]
    UnsendableUrl(String),
    /// The caller cancelled the call (an upload's `cancel` future completed first).
    #[error("cancelled")]
    Cancelled,
    /// The client options are unusable (e.g. a malformed certificate).
    #[error("invalid client options: {0}")]
    Options(String),
}

/// The step of a websocket session that did not happen within the answer timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stall {
    /// The connection to `url` did not open (nor did the server refuse it).
    Opening {
        /// The websocket address.
        url: String,
    },
    /// The server took nothing in (it stopped reading and the connection's buffers are
    /// full).
    Sending,
    /// The server sent no answer.
    Answer,
}

impl Stall {
    /// What did not happen within `waited`, in words.
    fn within(&self, waited: std::time::Duration) -> String {
        match self {
            Stall::Opening { url } => format!("no websocket connection to {url} within {waited:?}"),
            Stall::Sending => format!("the server took nothing in for {waited:?}"),
            Stall::Answer => format!("the server did not answer within {waited:?}"),
        }
    }
}

impl Error {
    /// The error for a non-200 answer (its text made readable, see [`readable_body`]).
    pub(crate) fn from_status(status: u16, body: String) -> Self {
        let body = readable_body(status, body);
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

/// Statuses whose answers are Hanami's own (with the server's message, if any).
const HANAMI_STATUSES: [u16; 5] = [400, 401, 404, 409, 500];

/// The text of an error answer as a message: an HTML page (from a web server or proxy that
/// is no Hanami server) by its title instead of its markup, and an answer without text of a
/// status no Hanami call gives by what the status means.
fn readable_body(status: u16, body: String) -> String {
    let head = body.trim_start();
    let head = head.get(..14).unwrap_or(head).to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        let title = page_title(&body)
            .map(|t| format!(" titled '{t}'"))
            .unwrap_or_default();
        return format!(
            "the answer is an HTML page{title}, which a Hanami server does not send: is the \
             address that of a Hanami server?"
        );
    }
    if !body.is_empty() || HANAMI_STATUSES.contains(&status) {
        return body;
    }
    let Some(phrase) = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    else {
        return body;
    };
    let why = match status {
        413 => "the request is too large for the server",
        414 => "the request's URL is too long for the server (is an argument very long?)",
        431 => {
            "the request's URL or headers are too large for the server (is an argument very \
             long?)"
        }
        _ => return phrase.to_owned(),
    };
    format!("{phrase}: {why}")
}

/// The text of an HTML page's `<title>`, white space collapsed, at most 80 characters.
fn page_title(page: &str) -> Option<String> {
    // ASCII lowercasing keeps every byte where it was.
    let lower = page.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title: Vec<&str> = page[start..end].split_whitespace().collect();
    Some(title.join(" ").chars().take(80).collect())
}

/// The text of a failed connection: [`with_causes`], with a refused server certificate
/// named in words (the TLS library names some causes by their code only, such as
/// `Other(OtherError(CaUsedAsEndEntity))` for a self-signed certificate made with openssl)
/// and a note where the address's scheme does not match what the server speaks.
pub fn transport_text(error: &reqwest::Error) -> String {
    described_transport(with_causes(error))
}

/// [`transport_text`] of the text of an error and its causes.
fn described_transport(text: String) -> String {
    if let Some((_, cause)) = text.split_once("invalid peer certificate: ") {
        let code = cause
            .trim_start_matches("Other(OtherError(")
            .trim_end_matches(')');
        let words = match code {
            "UnknownIssuer" | "CaUsedAsEndEntity" | "BadSignature" => {
                format!("no certificate that this client trusts signed it ({code})")
            }
            _ => cause.to_owned(),
        };
        return format!("the server's certificate was refused: {words}");
    }
    // A TLS client got something that is no TLS record: plain HTTP.
    let scheme = if text.contains("InvalidContentType") {
        "the server seems to speak plain HTTP: use an http:// address"
    // An HTTP client got a TLS record where a status line belongs.
    } else if text.contains("invalid HTTP version") {
        "the server seems to speak HTTPS: use an https:// address"
    } else {
        return text;
    };
    format!("{text} ({scheme})")
}

/// An error's text followed by the texts of its causes that it does not already hold
/// (`error sending request …: tcp connect error: Connection refused (os error 111)`).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{Error, described_transport};

    #[test]
    fn certificate_causes_are_put_in_words() {
        let prefix = "error sending request for url (https://127.0.0.1:1/v1.0alpha/token): \
                      client error (Connect): invalid peer certificate: ";
        // openssl's self-signed certificates are CA certificates.
        assert_eq!(
            described_transport(format!("{prefix}Other(OtherError(CaUsedAsEndEntity))")),
            "the server's certificate was refused: no certificate that this client trusts \
             signed it (CaUsedAsEndEntity)"
        );
        // Causes the library words itself are kept.
        let expired = "certificate expired: verification time 2, but certificate is not \
                       valid after 1";
        assert_eq!(
            described_transport(format!("{prefix}{expired}")),
            format!("the server's certificate was refused: {expired}")
        );
        let refused = "tcp connect error: Connection refused (os error 111)";
        assert_eq!(described_transport(refused.to_owned()), refused);
    }

    #[test]
    fn a_scheme_that_does_not_match_the_server_is_pointed_out() {
        let tls_to_plain = "client error (Connect): received corrupt message of type \
                            InvalidContentType";
        assert_eq!(
            described_transport(tls_to_plain.to_owned()),
            format!(
                "{tls_to_plain} (the server seems to speak plain HTTP: use an http:// address)"
            )
        );
        let plain_to_tls = "client error (SendRequest): invalid HTTP version parsed";
        assert_eq!(
            described_transport(plain_to_tls.to_owned()),
            format!("{plain_to_tls} (the server seems to speak HTTPS: use an https:// address)")
        );
    }

    #[test]
    fn html_pages_and_empty_answers_are_explained() {
        let page = "\n<!DOCTYPE html>\n<html><head><TITLE>501 Not\n  Implemented</TITLE></head>\
                    <body>unsupported method</body></html>";
        let error = Error::from_status(501, page.to_owned());
        assert_eq!(
            error.to_string(),
            "unexpected status 501: the answer is an HTML page titled '501 Not Implemented', \
             which a Hanami server does not send: is the address that of a Hanami server?"
        );
        // Also for Hanami's statuses: a proxy's 404 page.
        let error = Error::from_status(404, "<html><body>no</body></html>".to_owned());
        assert!(
            matches!(&error, Error::NotFound(m) if m.starts_with("the answer is an HTML page,")),
            "{error:?}"
        );
        assert_eq!(
            Error::from_status(431, String::new()).to_string(),
            "unexpected status 431: Request Header Fields Too Large: the request's URL or \
             headers are too large for the server (is an argument very long?)"
        );
        assert_eq!(
            Error::from_status(503, String::new()).to_string(),
            "unexpected status 503: Service Unavailable"
        );
        // Hanami's own answers keep their text, also an empty one.
        assert!(
            matches!(Error::from_status(500, String::new()), Error::Internal(m) if m.is_empty())
        );
        assert!(matches!(Error::from_status(400, "x".into()), Error::BadRequest(m) if m == "x"));
    }
}
