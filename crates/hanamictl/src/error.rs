//! The CLI's error: what goes to standard error before the exit with status 1 (130 after
//! an interruption).

use std::fmt;
use std::io::Write as _;

use hanami_sdk::ConnectOptions;

/// Writes `line` to standard error. A closed or full standard error is ignored: the exit
/// status still tells what happened (printing macros would panic instead).
pub fn report(line: impl fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with a status other than 200: printed as
    /// `status <code>: err <body>`, the original's format that scripts match.
    Status {
        /// The HTTP status.
        code: u16,
        /// The server's message.
        body: String,
    },
    /// Anything else: printed as `error: <message>`.
    Other(String),
    /// Ctrl-C or SIGTERM ended the command early: printed as `error: <message>`, exit
    /// status 130 (as the signal's default action would give a shell).
    Interrupted(String),
}

impl CliError {
    /// An error with a message.
    pub fn msg(message: impl Into<String>) -> Self {
        CliError::Other(message.into())
    }

    /// An SDK error of a call to `address`; `options` (what the client trusts) decide the
    /// hint for a refused certificate.
    pub fn sdk(error: hanami_sdk::Error, address: &str, options: &ConnectOptions) -> Self {
        use hanami_sdk::Error as E;
        let code = error.status();
        match (code, error) {
            (
                Some(code),
                E::BadRequest(body)
                | E::Unauthorized(body)
                | E::NotFound(body)
                | E::Conflict(body)
                | E::Internal(body)
                | E::Status { body, .. },
            ) => CliError::Status {
                code,
                body: with_rule_in_words(code, body),
            },
            // The URL could not be made (an argument of 100,000 characters, an address
            // like `http://[::1`).
            (_, E::UnsendableUrl(cause)) => CliError::Other(format!(
                "cannot send the request: HANAMI_ADDRESS or an argument \
                 makes its URL invalid or too long ({cause})"
            )),
            (_, E::Transport(e)) => {
                let mut text = hanami_sdk::transport_text(&e);
                if e.is_timeout() && e.is_connect() {
                    // TCP or TLS handshake: no answer timeout applies yet.
                    text.push_str(&format!(
                        "\n(no connection within {} s: the TCP or TLS handshake did not \
                         complete; is HANAMI_ADDRESS the server's address, with the right \
                         http:// or https:// scheme?)",
                        hanami_sdk::CONNECT_TIMEOUT.as_secs()
                    ));
                } else if e.is_connect() && text.contains("Connection refused") {
                    text.push_str(
                        "\n(nothing listens there: is the server running, and is \
                         HANAMI_ADDRESS its address and port?)",
                    );
                } else if e.is_timeout() {
                    text.push_str(
                        "\n(the server did not answer in time; a slow server needs a longer \
                         --answer-timeout or HANAMI_ANSWER_TIMEOUT)",
                    );
                } else if let Some(hint) = certificate_hint(&text, options) {
                    text.push('\n');
                    text.push_str(hint);
                } else if text.contains("connection closed before message completed") {
                    text.push_str(
                        "\n(the server closed the connection without an answer: is the server \
                         still running?)",
                    );
                }
                CliError::Other(format!("cannot reach {address}: {text}"))
            }
            // The SDK's words of what it refused, as the CLI's own.
            (_, E::InvalidArgument(message)) => CliError::Other(message),
            // Only the CA certificate makes the options unusable.
            (_, E::Options(message)) if options.root_certificate_pem.is_some() => CliError::Other(
                format!("{message} (the file of --ca-cert or HANAMI_CA_CERT)"),
            ),
            (_, other) => CliError::Other(other.to_string()),
        }
    }

    /// The exit status of the command: 130 after an interruption, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Interrupted(_) => 130,
            _ => 1,
        }
    }

    /// Prefixes the message of a non-HTTP error; HTTP errors keep their exact format.
    pub fn context(self, context: &str) -> Self {
        match self {
            CliError::Other(message) => CliError::Other(format!("{context}: {message}")),
            status => status,
        }
    }
}

/// What to do about a refused server certificate, for the error text of a TLS failure.
fn certificate_hint(text: &str, options: &ConnectOptions) -> Option<&'static str> {
    // A trusted certificate with the issuer's name but another key gives `BadSignature`.
    let unknown_issuer = ["UnknownIssuer", "CaUsedAsEndEntity", "BadSignature"]
        .iter()
        .any(|cause| text.contains(cause));
    if text.contains("not valid for") || text.contains("NotValidForName") {
        Some(
            "(the server's certificate does not name the host of HANAMI_ADDRESS: it needs a \
             subjectAltName for it, e.g. openssl's -addext subjectAltName=IP:127.0.0.1; \
             --insecure skips the check)",
        )
    } else if unknown_issuer && options.root_certificate_pem.is_some() {
        Some(
            "(the certificate given with --ca-cert or HANAMI_CA_CERT did not sign the \
             server's certificate: give the certificate of the CA that issued it, or the \
             server's own certificate only if that is self-signed; or pass --insecure for a \
             test server)",
        )
    } else if unknown_issuer {
        Some(
            "(the server's certificate is self-signed or issued by a private CA: trust it \
             with --ca-cert FILE or HANAMI_CA_CERT, or pass --insecure or set \
             HANAMI_INSECURE=1 for a test server)",
        )
    } else if text.contains("certificate") {
        Some(
            "(the server's certificate was refused; --insecure or HANAMI_INSECURE=1 skips \
             the check for a test server)",
        )
    } else {
        None
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Status { code, body } => write!(f, "status {code}: err {body}"),
            CliError::Other(message) | CliError::Interrupted(message) => {
                write!(f, "error: {message}")
            }
        }
    }
}

/// A 400 that names the regular expression a value failed (the API's wording) gets a note
/// with the rule in words.
fn with_rule_in_words(code: u16, body: String) -> String {
    use hanami_sdk::types::pattern::Pattern;
    match Pattern::named_in(&body).filter(|_| code == 400) {
        Some(pattern) => {
            // The server checks the pattern first, so a value that fails it (an empty one,
            // say) would meet the length rule of ids and names only afterwards.
            let length = match pattern {
                Pattern::Id | Pattern::IdExt | Pattern::Name => ", 4 to 254 characters long",
                _ => "",
            };
            format!("{body}\nnote: the value must be {}{length}", pattern.rule())
        }
        None => body,
    }
}
