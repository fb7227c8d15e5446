//! The logged-in client and its HTTP plumbing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hanami_types::API_PREFIX;
use hanami_types::auth::{AuthInfo, RenewTokenRequest, TokenRequest, TokenResponse};
use prost::bytes::Bytes;
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
    /// fails with [`Error::Transport`] or [`Error::SessionTimeout`] instead of waiting forever.
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

/// A client logged in to a Hanami server. Cheap to clone; a clone has its own token (a
/// project switch of one does not change the other).
///
/// Tokens expire (the server's `token_expiry`, an hour by default). When the server refuses
/// the token of a call as expired, the client logs in again with the user and password it
/// logged in with, switches back into the project it was in, and repeats the call once; so
/// waiting for long tasks and long uploads outlive the token. So it does when the user was
/// taken out of the token's project and assigned to it again (a role change: the removal
/// revoked the token). A token refused for another reason (the user is not in its project
/// any more, say), or one whose project the client cannot tell (a server whose tokens are
/// no JWTs), is not renewed.
pub struct Client {
    pub(crate) http: reqwest::Client,
    address: String,
    auth: Auth,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// See [`ConnectOptions::answer_timeout`].
    pub(crate) answer_timeout: Duration,
}

impl Clone for Client {
    fn clone(&self) -> Self {
        Self {
            http: self.http.clone(),
            address: self.address.clone(),
            auth: Auth {
                token: Mutex::new(self.auth.token()),
                project: Mutex::new(self.auth.project()),
                login: self.auth.login.clone(),
            },
            tls: self.tls.clone(),
            answer_timeout: self.answer_timeout,
        }
    }
}

/// A client's token, and what it takes to get a new one.
struct Auth {
    token: Mutex<String>,
    /// The project of the token (`None` where the token does not tell), chosen again after
    /// a new login.
    project: Mutex<Option<String>>,
    /// User and password of the login.
    login: TokenRequest,
}

impl Auth {
    fn token(&self) -> String {
        self.token.lock().expect("token lock").clone()
    }

    fn project(&self) -> Option<String> {
        self.project.lock().expect("project lock").clone()
    }

    fn set(&self, token: String, project: Option<String>) {
        *self.token.lock().expect("token lock") = token;
        *self.project.lock().expect("project lock") = project;
    }
}

/// The project a token is bound to, read from its payload: a JWT whose `user` claim holds
/// the caller's context as a JSON string, on the original server as on this one. `None` for
/// a token of another form. Not verified (the server does that); only used to return to the
/// same project after a new login.
fn project_of(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let user: serde_json::Value = serde_json::from_str(claims.get("user")?.as_str()?).ok()?;
    Some(user.get("project_id")?.as_str()?.to_owned())
}

/// Whether a 401 body says that a new login would be let in where the token was refused:
/// it has expired (the original server says no more than its first sentence for an expired
/// or otherwise invalid token), or its user's assignment to its project was made anew.
fn token_expired(body: &str) -> bool {
    body == "Failed to validate JWT-Token" || renewable(body)
}

/// Whether the refusal of a websocket session says the same.
pub(crate) fn session_token_expired(reason: &str) -> bool {
    reason == "Token invalid" || renewable(reason)
}

/// Whether a Hanami-rs server's reason for refusing a token says that a new login is let in.
fn renewable(reason: &str) -> bool {
    use hanami_types::auth::{OUTDATED_TOKEN, REASSIGNED_SINCE};
    [EXPIRED, REASSIGNED_SINCE, OUTDATED_TOKEN]
        .iter()
        .any(|said| reason.contains(said))
}

/// What Hanami-rs servers say of an expired token, after the reason's first sentence (with
/// a hint after it from 2026-12 on).
const EXPIRED: &str = ": the token has expired";

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Logs in with default TLS settings. `address` is the server's base URL,
    /// `http://HOST:PORT` or `https://HOST:PORT` (see [`ServerAddress`];
    /// [`Error::InvalidArgument`] for another form).
    ///
    /// The server checks the form of what it is sent before the credentials, as the
    /// original did: an id of the wrong form or outside 4 to 254 characters, or a password
    /// outside 8 to 4096 characters, is [`Error::BadRequest`] (the same holds for the ids,
    /// names and passwords of the calls that create users and projects); a wrong password
    /// or an unknown user is [`Error::Unauthorized`].
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
            // A Hanami server never redirects; following one would send the password and
            // the token (a header of its own, which redirects to another host keep) there.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(options.answer_timeout);
        let login = TokenRequest {
            id: user.to_owned(),
            password: password.to_owned(),
        };
        let client = Self {
            http: http.build()?,
            address: server_address(address)?,
            auth: Auth {
                token: Mutex::new(String::new()),
                project: Mutex::new(None),
                login,
            },
            tls,
            answer_timeout: options.answer_timeout,
        };
        client.log_in("", None).await?;
        Ok(client)
    }

    /// Logs in with the client's user and password, into `project` (the server's choice
    /// for `None`), and uses the new token; the answer of the last step. Does nothing but
    /// answer `None` when the token is no longer `stale` (another call renewed it
    /// meanwhile).
    async fn log_in(&self, stale: &str, project: Option<&str>) -> Result<Option<TokenResponse>> {
        if self.auth.token() != stale {
            return Ok(None);
        }
        let login = json(&self.auth.login)?;
        let mut answer: TokenResponse = self
            .send(Method::POST, "token", &[], Some(login), "")
            .await?;
        if let Some(project_id) = project {
            let renew = json(&RenewTokenRequest {
                project_id: project_id.to_owned(),
            })?;
            answer = self
                .send(Method::PUT, "token", &[], Some(renew), &answer.token)
                .await?;
        }
        let project = project
            .map(str::to_owned)
            .or_else(|| project_of(&answer.token));
        self.auth.set(answer.token.clone(), project);
        Ok(Some(answer))
    }

    /// Logs in again after the server refused `stale` as expired (or revoked by a new
    /// assignment to its project), back into the token's
    /// project (so that a changed list of assignments cannot move the client into another
    /// project unnoticed). `false` where the project is unknown: then nothing is renewed.
    pub(crate) async fn renew(&self, stale: &str) -> Result<bool> {
        let Some(project) = self.auth.project() else {
            return Ok(false);
        };
        self.log_in(stale, Some(&project)).await?;
        Ok(true)
    }

    /// The server address this client talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The current token.
    pub fn token(&self) -> String {
        self.auth.token()
    }

    /// The caller's context (`GET auth`).
    pub async fn auth_info(&self) -> Result<AuthInfo> {
        self.get("auth", &[]).await
    }

    /// Renews the token, bound to `project_id` (`PUT token`); this client uses the new token,
    /// and returns to that project when it logs in again. With an expired token it logs in
    /// straight into `project_id`.
    pub async fn switch_project(&mut self, project_id: &str) -> Result<TokenResponse> {
        let token = self.auth.token();
        let body = json(&RenewTokenRequest {
            project_id: project_id.to_owned(),
        })?;
        match self
            .send::<TokenResponse>(Method::PUT, "token", &[], Some(body), &token)
            .await
        {
            Ok(answer) => {
                self.auth
                    .set(answer.token.clone(), Some(project_id.to_owned()));
                Ok(answer)
            }
            Err(Error::Unauthorized(m)) if token_expired(&m) => {
                let answer = self.log_in(&token, Some(project_id)).await?;
                answer.ok_or_else(|| Error::Unauthorized(m))
            }
            Err(e) => Err(e),
        }
    }

    /// Calls `/v1.0alpha/<endpoint>` and parses the JSON answer; a refused token is renewed
    /// once (see [`Client`]).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let body = body.map(json).transpose()?;
        let token = self.auth.token();
        match self
            .send(method.clone(), endpoint, query, body.clone(), &token)
            .await
        {
            Err(Error::Unauthorized(m)) if token_expired(&m) => {
                if !self.renew(&token).await? {
                    return Err(Error::Unauthorized(m));
                }
                let token = self.auth.token();
                self.send(method, endpoint, query, body, &token).await
            }
            answer => answer,
        }
    }

    /// One HTTP request with `token` (none if empty).
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
        token: &str,
    ) -> Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{API_PREFIX}/{endpoint}", self.address));
        if !token.is_empty() {
            request = request.header("X-Auth-Token", token);
        }
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(unsendable)?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(redirect_error(status, response.headers()));
        }
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
        match self.address.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}/"),
            None => format!("ws://{}/", self.address.trim_start_matches("http://")),
        }
    }
}

/// A server address as the clients take it: `http://` or `https://` (in any case), a host
/// with an optional port (1 to 65535), and a path only for a server behind a proxy that
/// serves it under that path (it goes in front of every endpoint, as with the original
/// CLI); no query, fragment or white space (a blank or line break left from a file or a
/// variable). Trailing slashes are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// The address as the client uses it: `scheme://host[:port][/path]`, the scheme in
    /// lower case.
    pub base: String,
    /// Its path, if it has one.
    pub path: Option<String>,
}

/// Why a text is no [`ServerAddress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRefused {
    /// What the address must be besides `http://HOST:PORT` or `https://HOST:PORT` (empty
    /// where the form itself is wrong).
    why: &'static str,
    /// The text given.
    got: String,
}

impl AddressRefused {
    /// The refusal for an address that came from `subject` (`HANAMI_ADDRESS`, say).
    pub fn message(&self, subject: &str) -> String {
        format!(
            "{subject} must be http://HOST:PORT or https://HOST:PORT{}, got {:?}",
            self.why, self.got
        )
    }
}

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message("the server address"))
    }
}

impl std::error::Error for AddressRefused {}

impl std::str::FromStr for ServerAddress {
    type Err = AddressRefused;

    fn from_str(raw: &str) -> std::result::Result<Self, AddressRefused> {
        let refused = |why| AddressRefused {
            why,
            got: raw.to_owned(),
        };
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| refused(""))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(refused(""));
        }
        let rest = rest.trim_end_matches('/');
        let (host, path) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(rest[at..].to_owned())),
            None => (rest, None),
        };
        if host.contains('@') {
            return Err(refused(
                " without a user or password in it (the client logs in with its own)",
            ));
        }
        // The host before a port (an IPv6 address keeps its colons inside brackets).
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.contains(']') => name,
            _ => host,
        };
        if name.is_empty() {
            return Err(refused(""));
        }
        if rest.contains(char::is_whitespace) {
            return Err(refused(" without spaces"));
        }
        if rest.contains(['?', '#']) {
            return Err(refused(
                " without a query or fragment (the client adds /v1.0alpha/... itself)",
            ));
        }
        // A port, if given, after the last ':' (outside an IPv6 address's brackets).
        if let Some((_, port)) = host.rsplit_once(':')
            && !port.contains(']')
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(refused(" with a port from 1 to 65535"));
        }
        Ok(Self {
            base: format!("{scheme}://{rest}"),
            path,
        })
    }
}

/// The address the client keeps, or [`Error::InvalidArgument`] saying what it must be.
fn server_address(address: &str) -> Result<String> {
    address
        .parse::<ServerAddress>()
        .map(|address| address.base)
        .map_err(|refused| Error::InvalidArgument(refused.message("the server address")))
}

/// A request body as JSON (cheap to clone for a repeated call).
fn json(body: &(impl Serialize + ?Sized)) -> Result<Bytes> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// The error of a redirect (`status`, with its `headers`), which the clients do not follow:
/// it names the target.
pub(crate) fn redirect_error(status: u16, headers: &reqwest::header::HeaderMap) -> Error {
    let location = headers
        .get(reqwest::header::LOCATION)
        .map(|to| String::from_utf8_lossy(to.as_bytes()).into_owned());
    Error::Status {
        status,
        body: redirected(location.as_deref()),
    }
}

/// The error text of a redirect to `location`, which the clients do not follow.
fn redirected(location: Option<&str>) -> String {
    match location {
        Some(to) => format!(
            "the server redirects to {to}, which a Hanami server does not do: use that address \
             instead if you trust it (the clients do not follow redirects, which would take the \
             password and the token along)"
        ),
        None => "the server answers with a redirect, which a Hanami server does not send: is \
                 the address that of a Hanami server?"
            .to_owned(),
    }
}

/// A request that could not be made (the server's address or an argument makes its URL
/// invalid or too long) as [`Error::UnsendableUrl`], without the URL, which may run to
/// tens of kilobytes; any other failure as [`Error::Transport`].
fn unsendable(error: reqwest::Error) -> Error {
    if error.is_builder() {
        Error::UnsendableUrl(crate::with_causes(&error.without_url()))
    } else {
        Error::Transport(error)
    }
}
#[cfg(test)]
mod tests {
    use super::{ServerAddress, server_address, session_token_expired, token_expired};

    /// The refusals after which a new login is let in renew the token (their texts as a
    /// Hanami-rs server words them); the others do not.
    #[test]
    fn refusals_that_a_new_login_mends_renew_the_token() {
        use hanami_types::auth::{OUTDATED_TOKEN, REASSIGNED_SINCE};
        let head = "Failed to validate JWT-Token";
        let renewed = [
            head.to_owned(),
            format!("{head}: the token has expired: log in again for a new one"),
            format!(
                "{head}: user 'u' was taken out of project 'p' {REASSIGNED_SINCE}: log in again"
            ),
            format!("{head}: {OUTDATED_TOKEN}: log in again"),
        ];
        for body in renewed {
            assert!(token_expired(&body), "{body}");
        }
        assert!(session_token_expired(&format!(
            "Token invalid: {OUTDATED_TOKEN}: log in again"
        )));
        for kept in [
            format!("{head}: user 'u' is no longer assigned to project 'p'"),
            format!(
                "{head}: the account of user 'u' that the token was issued for no longer \
                 exists, or its password was changed: log in again"
            ),
        ] {
            assert!(!token_expired(&kept), "{kept}");
        }
    }

    #[test]
    fn addresses_need_an_http_scheme() {
        assert_eq!(server_address("HTTPS://host:1/").unwrap(), "https://host:1");
        assert_eq!(
            server_address("http://127.0.0.1:11418").unwrap(),
            "http://127.0.0.1:11418"
        );
        assert_eq!(
            "https://host:1/prefix/".parse::<ServerAddress>().unwrap(),
            ServerAddress {
                base: "https://host:1/prefix".into(),
                path: Some("/prefix".into()),
            }
        );
        for bad in [
            "127.0.0.1:11418",
            "ftp://host",
            "",
            "httpx://host",
            "http:/host",
            "http://",
            "http://:80",
        ] {
            let error = server_address(bad).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "invalid argument: the server address must be http://HOST:PORT or \
                     https://HOST:PORT, got {bad:?}"
                )
            );
        }
        for (wrong, why) in [
            ("http://127.0.0.1:11418 ", "without spaces"),
            ("http://127.0.0.1:11418/\n", "without spaces"),
            ("http://host: 1", "without spaces"),
            ("http://host:0", "with a port from 1 to 65535"),
            ("http://host:65536", "with a port from 1 to 65535"),
            ("http://host:1/?a=b", "without a query or fragment"),
            ("http://user:pw@host:1", "without a user or password in it"),
        ] {
            let error = server_address(wrong).unwrap_err().to_string();
            assert!(
                error.contains(why) && error.ends_with(&format!("got {wrong:?}")),
                "{error}"
            );
        }
        assert_eq!(
            server_address("http://[::1]:80").unwrap(),
            "http://[::1]:80"
        );
    }
}
