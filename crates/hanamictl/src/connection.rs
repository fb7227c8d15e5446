//! Connecting to the server: its address and the login from the environment, the TLS
//! options and answer timeout of the flags, and the logged-in [`Session`].

use std::time::Duration;

use hanami_sdk::{Client, ConnectOptions};

use crate::cli::Cli;
use crate::error::CliError;
use crate::local::read_local;

/// Largest CA certificate file read, in bytes (a bundle of a few hundred certificates).
const MAX_CA_CERT_BYTES: usize = 1 << 20;

/// TLS settings from `--insecure` and `--ca-cert`, and `--answer-timeout`.
pub(crate) fn connect_options(cli: &Cli) -> Result<ConnectOptions, CliError> {
    let root_certificate_pem = cli
        .ca_cert
        .as_deref()
        .map(|path| {
            let pem = read_local(path, "CA certificate", MAX_CA_CERT_BYTES)
                .map_err(|e| e.context("--ca-cert or HANAMI_CA_CERT"))?;
            let count = |marker: &[u8]| pem.windows(marker.len()).filter(|w| w == &marker).count();
            let begun = count(b"-----BEGIN CERTIFICATE-----");
            let problem = if begun == 0 {
                "holds no PEM certificate (a block '-----BEGIN CERTIFICATE-----')"
            } else if count(b"-----END CERTIFICATE-----") < begun {
                "is cut short: a certificate has no end line '-----END CERTIFICATE-----'"
            } else {
                return Ok(pem);
            };
            Err(CliError::msg(format!(
                "the CA certificate file '{}' (--ca-cert or HANAMI_CA_CERT) {problem}",
                path.display()
            )))
        })
        .transpose()?;
    Ok(ConnectOptions {
        accept_invalid_certs: cli.insecure,
        root_certificate_pem,
        answer_timeout: Duration::from_secs(cli.answer_timeout),
    })
}

/// A variable of the environment that must be set; unset and empty are the same.
fn env(name: &str) -> Result<String, CliError> {
    optional_env(name)?.ok_or_else(|| {
        CliError::msg(format!(
            "{name} is not set (export HANAMI_ADDRESS, HANAMI_USER and HANAMI_PW)"
        ))
    })
}

/// A variable of the environment, `None` where unset or empty; one that is not UTF-8 is
/// an error (taking it as unset would act on the wrong project, say).
fn optional_env(name: &str) -> Result<Option<String>, CliError> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value).filter(|v| !v.is_empty())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(CliError::msg(format!("{name} is not valid UTF-8")))
        }
    }
}

/// Server address and login from the environment.
pub(crate) struct Credentials {
    address: String,
    /// The address's path (for a server behind a proxy), if it has one.
    path: Option<String>,
    user: String,
    password: String,
    pub(crate) project: Option<String>,
}

impl Credentials {
    /// Reads `HANAMI_USER`, `HANAMI_PW`, `HANAMI_ADDRESS` (in this order, as the original)
    /// and the optional `HANAMI_PROJECT`.
    pub(crate) fn from_env() -> Result<Self, CliError> {
        let user = env("HANAMI_USER")?;
        let password = env("HANAMI_PW")?;
        // As the SDK takes it; the path is kept for the hint when the server answers 401.
        let hanami_sdk::ServerAddress {
            base: address,
            path,
        } = env("HANAMI_ADDRESS")?
            .parse()
            .map_err(|refused: hanami_sdk::AddressRefused| {
                CliError::msg(refused.message("HANAMI_ADDRESS"))
            })?;
        let project = optional_env("HANAMI_PROJECT")?;
        Ok(Self {
            address,
            path,
            user,
            password,
            project,
        })
    }

    /// Logs in, and switches into `HANAMI_PROJECT` if it is set.
    pub(crate) async fn login(&self, options: &ConnectOptions) -> Result<Client, CliError> {
        let sdk = |e| CliError::sdk(e, &self.address, options);
        let mut client = Client::login_with(&self.address, &self.user, &self.password, options)
            .await
            .map_err(|e| match (sdk(e), &self.path) {
                // A server answers an unknown path so, and this path is not the server's.
                // The server checks a password's length before it checks the password.
                (CliError::Status { code: 400, body }, _)
                    if body.starts_with("Given item 'password' is shorter than") =>
                {
                    CliError::Status {
                        code: 400,
                        body: format!(
                            "{body}\nnote: the password comes from the variable HANAMI_PW, \
                             which is too short to be any user's password"
                        ),
                    }
                }
                // The user never typed the id either.
                (CliError::Status { code: 400, body }, _) if body.contains("'id'") => {
                    CliError::Status {
                        code: 400,
                        body: format!(
                            "{body}\nnote: the user id comes from the variable HANAMI_USER \
                             ({:?})",
                            self.user
                        ),
                    }
                }
                (CliError::Status { code: 401, body }, Some(path)) => CliError::Status {
                    code: 401,
                    body: format!(
                        "{body}\nnote: HANAMI_ADDRESS has the path '{path}', which a Hanami \
                         server does not know: the address is http://HOST:PORT, with a path \
                         only behind a proxy that serves the server under it"
                    ),
                },
                // White space at an end of the password (a line break left from a file
                // or `echo`, say), which the user cannot see in the variable.
                (CliError::Status { code: 401, body }, None)
                    if self.password.trim() != self.password =>
                {
                    CliError::Status {
                        code: 401,
                        body: format!(
                            "{body}\nnote: the password comes from the variable HANAMI_PW, \
                             which ends or starts with white space (a line break, say): is \
                             that part of the password?"
                        ),
                    }
                }
                (other, _) => other,
            })?;
        if let Some(project) = &self.project {
            client
                .switch_project(project)
                .await
                .map_err(|e| match sdk(e) {
                    // The user never typed `project_id`: say where it came from.
                    CliError::Status { code, body } => CliError::Status {
                        code,
                        body: format!(
                            "{body}\nnote: the project comes from the variable \
                             HANAMI_PROJECT ('{project}')"
                        ),
                    },
                    other => other,
                })?;
        }
        Ok(client)
    }
}

/// A logged-in client, the options it connected with (for error hints) and the project
/// of `HANAMI_PROJECT`.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) options: ConnectOptions,
    pub(crate) project: Option<String>,
}

impl Session {
    /// The CLI's error for an SDK error of a call to this session's server.
    pub(crate) fn error(&self, error: hanami_sdk::Error) -> CliError {
        CliError::sdk(error, self.client.address(), &self.options)
    }
}
