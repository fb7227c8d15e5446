//! The logged-in client and its HTTP plumbing.

use std::sync::Arc;
use std::time::Duration;

use hanami_types::API_PREFIX;
use hanami_types::auth::{AuthInfo, RenewTokenRequest, TokenRequest, TokenResponse};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, tls};

/// How long a connection to the server may take to open (TCP, TLS and websocket handshakes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`ConnectOptions::answer_timeout`]: long enough for the server to convert a
/// large dataset upload before it answers.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// How to connect: TLS trust settings and how long to wait for the server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Accept any server certificate (self-signed test servers). Never use it in production.
    pub accept_invalid_certs: bool,
    /// An extra trusted root certificate, PEM-encoded (for a server with its own CA).
    pub root_certificate_pem: Option<Vec<u8>>,
    /// How long the server may stay silent while an answer is due (an HTTP response or a
    /// websocket reply), or take nothing in while a websocket message is sent; the call then
    /// fails with [`Error::Transport`] or [`Error::WebSocket`] instead of waiting forever.
    pub answer_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            accept_invalid_certs: false,
            root_certificate_pem: None,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
        }
    }
}

/// A client logged in to a Hanami server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    address: String,
    token: String,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// See [`ConnectOptions::answer_timeout`].
    pub(crate) answer_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Logs in with default TLS settings.
    pub async fn login(address: &str, user: &str, password: &str) -> Result<Self> {
        Self::login_with(address, user, password, &ConnectOptions::default()).await
    }

    /// Logs in with explicit TLS settings.
    pub async fn login_with(
        address: &str,
        user: &str,
        password: &str,
        options: &ConnectOptions,
    ) -> Result<Self> {
        // HTTPS and WSS check certificates alike.
        let tls = tls::client_config(options)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(options.answer_timeout);
        let mut client = Self {
            http: http.build()?,
            address: address.trim_end_matches('/').to_owned(),
            token: String::new(),
            tls,
            answer_timeout: options.answer_timeout,
        };
        let answer: TokenResponse = client
            .call(
                Method::POST,
                "token",
                &[],
                Some(&TokenRequest {
                    id: user.to_owned(),
                    password: password.to_owned(),
                }),
            )
            .await?;
        client.token = answer.token;
        Ok(client)
    }

    /// The server address this client talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The current token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The caller's context (`GET auth`).
    pub async fn auth_info(&self) -> Result<AuthInfo> {
        self.get("auth", &[]).await
    }

    /// Renews the token, bound to `project_id` (`PUT token`); this client uses the new token.
    pub async fn switch_project(&mut self, project_id: &str) -> Result<TokenResponse> {
        let answer: TokenResponse = self
            .call(
                Method::PUT,
                "token",
                &[],
                Some(&RenewTokenRequest {
                    project_id: project_id.to_owned(),
                }),
            )
            .await?;
        self.token.clone_from(&answer.token);
        Ok(answer)
    }

    /// Calls `/v1.0alpha/<endpoint>` and parses the JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{API_PREFIX}/{endpoint}", self.address));
        if !self.token.is_empty() {
            request = request.header("X-Auth-Token", &self.token);
        }
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            let json = serde_json::to_vec(body).map_err(|e| Error::Protocol(e.to_string()))?;
            request = request.body(json);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != 200 {
            return Err(Error::from_status(status, text));
        }
        serde_json::from_str(&text).map_err(|e| Error::Protocol(format!("{e}: {text}")))
    }

    /// GET with query parameters.
    pub async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.call(Method::GET, endpoint, query, None::<&()>).await
    }

    /// DELETE with query parameters; the server answers `{}`.
    pub async fn delete(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<()> {
        let _: serde_json::Value = self
            .call(Method::DELETE, endpoint, query, None::<&()>)
            .await?;
        Ok(())
    }

    /// POST with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.call(Method::POST, endpoint, &[], Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.call(Method::PUT, endpoint, &[], Some(body)).await
    }

    /// The websocket address of the server (`ws://` or `wss://`, path `/`).
    pub(crate) fn websocket_url(&self) -> String {
        let rest = self
            .address
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}/"))
            .or_else(|| {
                self.address
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}/"))
            });
        rest.unwrap_or_else(|| format!("ws://{}/", self.address))
    }
}
