//! The REST API: one dispatcher that every request passes through, and the endpoint table.
//!
//! Processing order (as the original, whose clients depend on the status codes):
//! 1. method and path checks, body and query decoding (400);
//! 2. `POST token` (login) runs without a token;
//! 3. token check (400 for a malformed token, 401 for an invalid or expired one, or one
//!    whose user or project assignment no longer exists);
//! 4. policy check of (endpoint, method, role) (401; unknown endpoints are not in the policy,
//!    so they also answer 401);
//! 5. endpoint lookup (400 for endpoints the policy lists but nobody implements) and input
//!    validation against the endpoint's declared fields (400);
//! 6. audit-log entry for every state-changing request, also for one refused in 5 (its
//!    400 follows the entry);
//! 7. the handler.

mod checkpoints;
mod clusters;
mod datasets;
mod error;
mod hosts;
mod logs;
mod projects;
mod request;
mod tasks;
mod token;
mod users;
pub mod validate;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use hanami_auth::{Caller, Method, TokenError, Verified};
use hanami_store::StoreError;
use hanami_store::resources::{FileNote, Holder, Kind, ResourceRow};
use hanami_store::users::UserRecord;
use hanami_types::scope::Scope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub(crate) use datasets::upload_endpoint;
pub use error::{ApiError, ApiResult};
pub(crate) use request::{JsonRefusal, json_kind, parse_distinct};
pub(crate) use tasks::{REQUEST_ENDPOINT, TRAIN_ENDPOINT, listed};
use validate::{Field, Pattern, PatternCheck};

use crate::state::App;
use crate::websocket;

/// Header that carries the token.
pub const TOKEN_HEADER: &str = "x-auth-token";

type HandlerFuture = Pin<Box<dyn Future<Output = ApiResult<Value>> + Send>>;
type Handler = Box<dyn Fn(App, Caller, Map<String, Value>) -> HandlerFuture + Send + Sync>;

/// One endpoint: its declared inputs and its handler.
struct Endpoint {
    fields: &'static [Field],
    handler: Handler,
}

/// The endpoint table, keyed by endpoint id and method.
pub struct Routes {
    endpoints: HashMap<(&'static str, Method), Endpoint>,
}

impl Default for Routes {
    /// All endpoints of the API.
    fn default() -> Self {
        let mut routes = Self {
            endpoints: HashMap::new(),
        };
        token::register(&mut routes);
        users::register(&mut routes);
        projects::register(&mut routes);
        logs::register(&mut routes);
        datasets::register(&mut routes);
        hosts::register(&mut routes);
        clusters::register(&mut routes);
        tasks::register(&mut routes);
        checkpoints::register(&mut routes);
        routes
    }
}

impl Routes {
    /// Whether some method of `endpoint` has a handler.
    pub fn serves(&self, endpoint: &str) -> bool {
        self.endpoints.keys().any(|(id, _)| *id == endpoint)
    }

    /// Adds an endpoint whose handler takes a typed input and answers a typed output.
    fn add<I, O, F, Fut>(
        &mut self,
        endpoint: &'static str,
        method: Method,
        fields: &'static [Field],
        handler: F,
    ) where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(App, Caller, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ApiResult<O>> + Send + 'static,
    {
        let handler: Handler = Box::new(move |app, caller, input| match typed_input::<I>(input) {
            Ok(input) => {
                let fut = handler(app, caller, input);
                Box::pin(async move {
                    let output = fut.await?;
                    serde_json::to_value(output).map_err(|e| ApiError::Internal(e.into()))
                })
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        });
        let previous = self
            .endpoints
            .insert((endpoint, method), Endpoint { fields, handler });
        assert!(
            previous.is_none(),
            "endpoint {method} {endpoint} registered twice"
        );
    }
}

/// Input of endpoints that take none.
#[derive(serde::Deserialize)]
struct NoInput {}

/// What is known about a request, for the error log (and whether its body was read).
#[derive(Default)]
struct RequestFacts {
    user_id: String,
    context: String,
    input: Map<String, Value>,
    /// The body was read to its end.
    body_read: bool,
}

/// The axum handler for every request: websocket upgrades (on any path) and REST calls.
pub async fn dispatch(State(app): State<App>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut response = if is_websocket_upgrade(&parts.headers) {
        match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
            Ok(ws) => return websocket::upgrade(app, ws, client_address(&parts)).await,
            // A 400 as for any other bad request (the library answers 405 to a method
            // other than GET, 426 where the connection cannot be upgraded).
            Err(rejection) => ApiError::BadRequest(format!(
                "Invalid websocket opening: {}",
                rejection.body_text()
            ))
            .response(),
        }
    } else {
        let mut facts = RequestFacts::default();
        let announced_body = announces_body(&parts.headers);
        let mut response = match process(&app, &parts, body, &mut facts).await {
            Ok(value) => json_response(&value),
            Err(ApiError::Internal(cause)) => internal_error(&app, &facts, cause).await,
            Err(e) => e.response(),
        };
        if announced_body && !facts.body_read {
            // What is left of the body would be read as the next request: the connection
            // closes after this answer, and says so, so that the client does not send its
            // next request on it (it would find the connection closed under it).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    };
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER_NAME));
    response
}

/// The `Server` header of every REST answer: the original's, which clients may look for.
const SERVER_NAME: &str = "ToriiGateway";

async fn process(
    app: &App,
    parts: &Parts,
    body: Body,
    facts: &mut RequestFacts,
) -> ApiResult<Value> {
    let method = Method::parse(parts.method.as_str()).ok_or_else(|| {
        ApiError::BadRequest(format!("Invalid request-method '{}'", parts.method))
    })?;
    let endpoint = request::endpoint_id(parts.uri.path())?;
    facts.context = format!("{method} {endpoint}");
    let mut input = read_input(app, parts, body, method, facts).await?;

    if endpoint == token::LOGIN_ENDPOINT && method == Method::Post {
        validate::validate(token::LOGIN_FIELDS, &mut input)?;
        facts.user_id = input["id"].as_str().unwrap_or_default().to_owned();
        let answer = token::login(app, typed_input(input)?, client_address(parts)).await?;
        return serde_json::to_value(answer).map_err(|e| ApiError::Internal(e.into()));
    }

    let token = token_header(&parts.headers)?;
    check_endpoint_id(endpoint)?;
    let verified = verify_signature(app, token)?;
    let caller = current_caller(app, &verified, AssignmentCheck::AtIssue).await?;
    facts.user_id = caller.id.clone();
    if !app.policy.allows(endpoint, method, &caller.role) {
        return Err(ApiError::Unauthorized(
            hanami_types::websocket::POLICY_DENIED.into(),
        ));
    }
    // The input is checked before the audit entry is written (which refused requests get
    // too), so that a request refused for its input gets its 400 also where the audit log
    // cannot be written (a database that another program locks): it does nothing.
    let target = match app.routes.endpoints.get(&(endpoint, method)) {
        Some(route) => Ok(Target::Route(route)),
        None if endpoint == token::LOGIN_ENDPOINT && method == Method::Put => Ok(Target::Renewal),
        None => Err(ApiError::BadRequest(format!(
            "No endpoint found for path '{endpoint}' and type {method}"
        ))),
    };
    let checked =
        target.and_then(|target| validate::validate(target.fields(), &mut input).map(|()| target));
    let missing_audit = |why: &dyn std::fmt::Display| {
        tracing::error!(
            "the audit log misses {method} {endpoint} by '{}', refused for its input: it could \
             not be written: {why}",
            caller.id
        );
    };
    let mut audit_after = false;
    if method != Method::Get {
        match app
            .store
            .append_audit(&caller.id, endpoint, method.as_str())
            .await
        {
            Ok(()) => {}
            // A full disk must not keep anyone from freeing space: a deletion goes ahead,
            // and its entry is written after it, when it has made room.
            Err(e) if method == Method::Delete && e.is_disk_full() => audit_after = true,
            Err(e) if checked.is_err() => missing_audit(&e),
            Err(e) => return Err(e.into()),
        }
    }
    let route = match checked {
        Ok(Target::Route(route)) => route,
        Ok(Target::Renewal) => {
            // It checks the token again, against the reading of the user it makes the new
            // token from.
            let answer = token::renew(app, &verified, typed_input(input)?).await?;
            return serde_json::to_value(answer).map_err(|e| ApiError::Internal(e.into()));
        }
        Err(refused) => {
            if audit_after {
                missing_audit(&"the disk is full");
            }
            return Err(refused);
        }
    };
    let user_id = caller.id.clone();
    let scope = caller.scope();
    let answer = match (route.handler)(app.clone(), caller, input).await {
        Err(ApiError::UnknownResource { kind, uuid }) => {
            Err(with_kind_hint(app, &scope, kind, uuid).await)
        }
        answer => answer,
    };
    if audit_after
        && let Err(e) = app
            .store
            .append_audit(&user_id, endpoint, method.as_str())
            .await
    {
        tracing::error!(
            "the audit log misses {method} {endpoint} by '{user_id}': it could not be written \
             (the disk is full): {e}"
        );
    }
    answer
}

/// The input of a request: its JSON body (for POST and PUT) and its query together, with
/// no `token` field (the token travels in the header only; a body field of that name is
/// dropped, as the original did); noted in `facts` without its secrets. Refused before the
/// body is read, on every endpoint: a password in the address, and two tokens (of which
/// one would be taken silently).
async fn read_input(
    app: &App,
    parts: &Parts,
    body: Body,
    method: Method,
    facts: &mut RequestFacts,
) -> ApiResult<Map<String, Value>> {
    if let Some(query) = parts.uri.query() {
        request::refuse_password_in(query)?;
    }
    if parts.headers.get_all(TOKEN_HEADER).iter().nth(1).is_some() {
        return Err(ApiError::BadRequest(
            "Header 'X-Auth-Token' came more than once: send one token".into(),
        ));
    }
    let mut input = match method {
        Method::Post | Method::Put => {
            refuse_undecoded_codings(&parts.headers)?;
            let expects_continue = parts
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            let bytes = read_body(app, body, expects_continue).await?;
            facts.body_read = true;
            request::parse_body(&bytes)?
        }
        Method::Get | Method::Delete => Map::new(),
    };
    if let Some(query) = parts.uri.query() {
        request::merge_query(query, &mut input)?;
    }
    input.remove("token");
    facts.input = without_secrets(&input);
    Ok(input)
}

/// What serves a request to an endpoint other than the login.
enum Target<'a> {
    /// A handler of the route table.
    Route(&'a Endpoint),
    /// `PUT token`, which takes the token itself, not only its caller (see [`token::renew`]).
    Renewal,
}

impl Target<'_> {
    /// The declared inputs.
    fn fields(&self) -> &'static [Field] {
        match self {
            Target::Route(route) => route.fields,
            Target::Renewal => token::RENEW_FIELDS,
        }
    }
}

/// A request's input (checked against its declared fields) as the type its handler takes.
fn typed_input<I: DeserializeOwned>(input: Map<String, Value>) -> ApiResult<I> {
    serde_json::from_value(Value::Object(input))
        .map_err(|e| ApiError::BadRequest(format!("Invalid input: {e}")))
}

/// The 404 of a cluster, dataset or checkpoint `uuid` of `kind`, with the kind the uuid
/// does belong to where it is another resource the caller sees (a dataset's uuid given as a
/// cluster's, say).
async fn with_kind_hint(app: &App, scope: &Scope, kind: Kind, uuid: String) -> ApiError {
    let hint = kind_hint(app, scope, kind, &uuid).await;
    let plain = ApiError::UnknownResource { kind, uuid };
    match hint {
        Some(hint) => ApiError::NotFound(format!("{plain}{hint}")),
        None => plain,
    }
}

/// `: that is a dataset's uuid` where `uuid`, not one of a `kind` that `scope` sees, is
/// another resource's that it sees; `None` otherwise.
pub(crate) async fn kind_hint(app: &App, scope: &Scope, kind: Kind, uuid: &str) -> Option<String> {
    for other in [Kind::Cluster, Kind::Dataset, Kind::Checkpoint] {
        if other != kind && matches!(app.store.resource(other, scope, uuid).await, Ok(Some(_))) {
            return Some(format!(": that is a {}'s uuid", other.word()));
        }
    }
    None
}

/// The address of the client that sent a request (the unspecified address where the
/// connection did not record one, as in unit tests that call the router directly).
fn client_address(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |info| info.0.ip())
}

/// Refuses a body in a transfer or content coding that the server does not decode (the HTTP
/// library takes `chunked` off and passes the rest on as if it were plain).
fn refuse_undecoded_codings(headers: &HeaderMap) -> ApiResult<()> {
    for (name, plain) in [
        (header::TRANSFER_ENCODING, "chunked"),
        (header::CONTENT_ENCODING, "identity"),
    ] {
        for value in headers.get_all(&name) {
            let codings = String::from_utf8_lossy(value.as_bytes());
            let undecoded = codings
                .split(',')
                .map(str::trim)
                .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(plain));
            if let Some(coding) = undecoded {
                return Err(ApiError::BadRequest(format!(
                    "The {name} '{coding}' is not supported: send the body as plain JSON"
                )));
            }
        }
    }
    Ok(())
}

/// Whether a request announces a body (a length above 0, or a transfer coding).
fn announces_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .is_some_and(|length| length.trim() != "0")
}

/// How much of a body refused for its size is read and dropped before the refusal.
const DRAIN_BYTES: u64 = 16 << 20;

/// Reads a request body of at most `max_body_bytes`, which must arrive within
/// `header_timeout` (a client that announces a body and sends none is not waited for).
///
/// A body beyond the limit is refused. The rest of it is read and dropped first
/// ([`drain`]), so that a client still sending it reads the refusal; but a body announced
/// beyond the limit is refused before any of it is read where the client waits for a go
/// (`Expect: 100-continue`, which reading would give) or where the announced rest is more
/// than [`DRAIN_BYTES`].
async fn read_body(
    app: &App,
    mut body: Body,
    expects_continue: bool,
) -> ApiResult<axum::body::Bytes> {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    let limit = app.config.max_body_bytes;
    let wait = app.config.header_timeout;
    let deadline = tokio::time::Instant::now() + wait;
    let announced = body.size_hint().lower();
    if announced > limit as u64 {
        if !expects_continue && announced - limit as u64 <= DRAIN_BYTES {
            drain(body, deadline).await;
        }
        return Err(body_too_large(limit));
    }
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => return Ok(bytes.into()),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > limit {
                    drain(body, deadline).await;
                    return Err(body_too_large(limit));
                }
                bytes.extend_from_slice(&data);
            }
            Ok(Some(Err(e))) => {
                return Err(ApiError::BadRequest(format!(
                    "The request body could not be read: {e}"
                )));
            }
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "The request body did not arrive within {} s",
                    wait.as_secs()
                )));
            }
        }
    }
}

/// Reads and drops the rest of a body refused for its size (until `deadline`, while parts
/// keep coming at most a second apart, and at most [`DRAIN_BYTES`]), so that a client still
/// sending it gets to read the refusal: answering at once closed the connection under its
/// writes, and the client saw a broken connection instead of the reason.
async fn drain(mut body: Body, deadline: tokio::time::Instant) {
    use http_body_util::BodyExt;
    const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
    let mut left = DRAIN_BYTES;
    loop {
        let until = deadline.min(tokio::time::Instant::now() + PAUSE);
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await else {
            return;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let Some(rest) = left.checked_sub(data.len() as u64).filter(|rest| *rest > 0) else {
            return;
        };
        left = rest;
    }
}

/// The refusal of a body beyond `limit` bytes, with the largest cluster template that fits.
fn body_too_large(limit: usize) -> ApiError {
    // Four base64 characters for three bytes, less room for the JSON around the template
    // (its name may take 254 bytes).
    let template = limit.saturating_sub(300) / 4 * 3;
    let fits = if template >= 10 << 10 {
        format!("{} KiB", template >> 10)
    } else {
        format!("{template} bytes")
    };
    ApiError::BadRequest(format!(
        "Request body is larger than the limit of {limit} bytes (the server's max_body_bytes; \
         a cluster template travels base64-encoded in it, so templates of up to {fits} fit)"
    ))
}

/// The token of a request (empty without the header), checked for its characters.
fn token_header(headers: &HeaderMap) -> ApiResult<&str> {
    let token = match headers.get(TOKEN_HEADER) {
        Some(value) => value
            .to_str()
            .map_err(|_| ApiError::BadRequest("Header 'X-Auth-Token' is not ASCII".into()))?,
        None => "",
    };
    Pattern::Token.check("token", token)?;
    Ok(token)
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenRefused {
    /// No token came with the request (no `X-Auth-Token` header, or an empty one).
    #[error("no token was sent (in the X-Auth-Token header)")]
    Missing,
    /// Not a token this server issued, or tampered with.
    #[error("the token is not valid")]
    Invalid,
    /// Issued here, but past its expiry.
    #[error("the token has expired: log in again for a new one")]
    Expired,
    /// Its user was deleted (and maybe created again: another account), or given another
    /// password.
    #[error(
        "the account of user '{0}' that the token was issued for no longer exists, or its \
         password was changed: log in again"
    )]
    UserGone(String),
    /// Its user left the project the token is for.
    #[error("user '{user}' is no longer assigned to project '{project}'")]
    NotAssigned {
        /// The token's user.
        user: String,
        /// The token's project.
        project: String,
    },
    /// Its user left the project the token is for and was assigned to it again: the
    /// removal revoked the token for good.
    #[error(
        "user '{user}' was taken out of project '{project}' {}: log in again",
        hanami_types::auth::REASSIGNED_SINCE
    )]
    Reassigned {
        /// The token's user.
        user: String,
        /// The token's project.
        project: String,
    },
    /// It is for the global admins' own project, and its user is no global admin any more.
    #[error("user '{0}' is no longer a global admin (the token is for the global admins' project)")]
    NoLongerAdmin(String),
    /// An older version issued it, without the tag of its assignment.
    #[error("{}: log in again", hanami_types::auth::OUTDATED_TOKEN)]
    Outdated,
    /// The user could not be looked up.
    #[error(transparent)]
    Store(#[from] hanami_store::StoreError),
}

impl From<TokenRefused> for ApiError {
    fn from(refused: TokenRefused) -> Self {
        match refused {
            TokenRefused::Invalid => ApiError::Unauthorized("Failed to validate JWT-Token".into()),
            TokenRefused::Store(e) => e.into(),
            other => ApiError::Unauthorized(format!("Failed to validate JWT-Token: {other}")),
        }
    }
}

/// Which assignment of its user to its project a token holds on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentCheck {
    /// The one it was issued under: a removal revokes the token for good (every request,
    /// and the start of every websocket session).
    AtIssue,
    /// Whichever the user has now: an open websocket session follows its user's role, also
    /// where it changed by a removal and a new assignment between two of its checks.
    Current,
}

/// Checks a token's signature and expiry only.
pub fn verify_signature(app: &App, token: &str) -> Result<Verified, TokenRefused> {
    if token.is_empty() {
        return Err(TokenRefused::Missing);
    }
    app.tokens.verify(token).map_err(|e| match e {
        TokenError::Expired => TokenRefused::Expired,
        _ => TokenRefused::Invalid,
    })
}

/// The context a verified token grants now: tokens are revoked with their user or project
/// assignment (the original kept them valid until expiry; `held` says whether an assignment
/// made anew revives them), and carry the role the user has now, not the one at login. A
/// user deleted and created again under the same id is another account. (Open websocket
/// sessions ask this again while they run.)
pub async fn current_caller(
    app: &App,
    verified: &Verified,
    held: AssignmentCheck,
) -> Result<Caller, TokenRefused> {
    let record = app
        .store
        .user_record(&verified.caller.id)
        .await?
        .ok_or_else(|| TokenRefused::UserGone(verified.caller.id.clone()))?;
    caller_in(&record, verified, held)
}

/// The context a verified token grants its user as `record` has the user (see
/// [`current_caller`]).
pub(super) fn caller_in(
    record: &UserRecord,
    verified: &Verified,
    held: AssignmentCheck,
) -> Result<Caller, TokenRefused> {
    let caller = &verified.caller;
    let now = token::tags_of(record, &caller.project_id);
    // Tokens of versions before the `account` claim have neither tag.
    if verified.tags.account.is_empty() {
        return Err(TokenRefused::Outdated);
    }
    if now.account != verified.tags.account {
        return Err(TokenRefused::UserGone(caller.id.clone()));
    }
    if verified.tags.assignment.is_empty() {
        return Err(TokenRefused::Outdated);
    }
    let context = token::current_context(&record.user, &caller.project_id).ok_or_else(|| {
        if caller.project_id == hanami_auth::ADMIN_PROJECT {
            TokenRefused::NoLongerAdmin(caller.id.clone())
        } else {
            TokenRefused::NotAssigned {
                user: caller.id.clone(),
                project: caller.project_id.clone(),
            }
        }
    })?;
    if held == AssignmentCheck::AtIssue && now.assignment != verified.tags.assignment {
        return Err(TokenRefused::Reassigned {
            user: caller.id.clone(),
            project: caller.project_id.clone(),
        });
    }
    Ok(context)
}

/// Checks the characters and length of an endpoint id.
fn check_endpoint_id(endpoint: &str) -> ApiResult<()> {
    Pattern::Endpoint.check("endpoint", endpoint)?;
    // At least 4 characters already (`endpoint_id` refuses shorter paths); the upper bound
    // in the original's words for lengths (the pattern allows ASCII only, so bytes are
    // characters).
    if endpoint.len() > 256 {
        return Err(ApiError::BadRequest(
            "Given item 'endpoint' is longer than 256 characters".into(),
        ));
    }
    Ok(())
}

/// Refuses callers that are not global admins.
pub fn require_admin(caller: &Caller, what: &str) -> ApiResult<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(format!(
            "Only global admins may {what}."
        )))
    }
}

/// Refuses a caller who is no global admin in the token's project any more: the token was
/// checked when the request came in, and another admin may have deleted the user, or taken
/// it out of that project, since (two admins deleting each other at once would otherwise
/// both succeed). Call with `App::owner_changes` held, as deletions of users and projects
/// do.
pub async fn require_admin_now(app: &App, caller: &Caller) -> ApiResult<()> {
    let now = token::context_now(app, &caller.id, &caller.project_id).await?;
    if now.is_some_and(|now| now.is_admin) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(format!(
            "User with id '{}' no longer exists as a global admin in this token's project \
             (deleted, or taken out of the project, while this request was on its way)",
            caller.id
        )))
    }
}

/// Refuses (409) the deletion of a user or project (`who`, e.g. "User with id 'x'", holding
/// as `holder`) while it has unfinished uploads or tasks that will create resources for it
/// (`pending`: the refusals of those checks), naming them all and also the resources it
/// already owns, so that one answer lists everything in the way.
pub async fn refuse_while_pending(
    app: &App,
    who: &str,
    pending: [Option<String>; 2],
    holder: Holder<'_>,
) -> ApiResult<()> {
    let pending: Vec<String> = pending.into_iter().flatten().collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut refusal = pending.join(" ");
    if let Some(held) = app.store.holdings(holder).await? {
        refusal.push_str(&format!(" {who} also still owns {held}; delete them too."));
    }
    Err(ApiError::Conflict(refusal))
}

/// Deletes the row of a resource kept in a file of `dir`, then the file; `None` if no such
/// row is in the scope (see [`delete_row_making_room`] for a full disk).
async fn delete_with_file(
    app: &App,
    kind: Kind,
    scope: &Scope,
    uuid: &str,
    dir: PathBuf,
) -> ApiResult<Option<ResourceRow>> {
    let remove = async |row: &ResourceRow| {
        remove_file(dir.join(&row.file_name)).await;
        Ok(())
    };
    let row = delete_row_making_room(app, kind, scope, uuid, remove).await?;
    if let Some(row) = &row
        && remove_file(dir.join(&row.file_name)).await
    {
        forget_file_note(app, FileNote::Removed, kind, &row.file_name).await;
    }
    Ok(row)
}

/// Forgets the database's `note` of a file, now that the file is gone or registered (a note
/// left behind only makes the next start look for the file again).
async fn forget_file_note(app: &App, note: FileNote, kind: Kind, file_name: &str) {
    if let Err(e) = app
        .store
        .forget_noted_files(note, kind, Some(file_name))
        .await
    {
        tracing::warn!("cannot forget the database's note of file {file_name} ({note:?}): {e}");
    }
}

/// Deletes the row of a resource; `None` if no such row is in the scope. On a full disk,
/// where the deletion cannot be committed, `make_room` runs first (it removes the
/// resource's file), and the deletion is tried again in the room it made; should that fail
/// too, the row stays without its file, which a later deletion removes.
async fn delete_row_making_room(
    app: &App,
    kind: Kind,
    scope: &Scope,
    uuid: &str,
    make_room: impl AsyncFnOnce(&ResourceRow) -> ApiResult<()>,
) -> ApiResult<Option<ResourceRow>> {
    match app.store.delete_resource(kind, scope, uuid).await {
        Err(e) if e.is_disk_full() => {
            let Some(row) = app.store.resource(kind, scope, uuid).await? else {
                return Ok(None);
            };
            tracing::warn!("the disk is full: removing the file of {uuid} before its database row");
            make_room(&row).await?;
            Ok(app.store.delete_resource(kind, scope, uuid).await?)
        }
        deleted => Ok(deleted?),
    }
}

/// Removes a resource's file; whether it is gone (a missing file is fine). Other failures
/// are logged: the row is gone, and the next start removes the file of a deleted row.
async fn remove_file(path: PathBuf) -> bool {
    let result = tokio::task::spawn_blocking(move || {
        hanami_store::files::remove_if_present(&path).map_err(|e| (path, e))
    })
    .await;
    match result {
        Ok(Ok(())) => true,
        Ok(Err((path, e))) => {
            tracing::warn!("cannot remove file {}: {e}", path.display());
            false
        }
        Err(_) => false,
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn without_secrets(input: &Map<String, Value>) -> Map<String, Value> {
    let mut copy = input.clone();
    copy.remove("password");
    copy
}

fn json_response(value: &Value) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn internal_error(app: &App, facts: &RequestFacts, cause: anyhow::Error) -> Response {
    let logged = crate::error_log::record_error(
        &app.store,
        &facts.user_id,
        &facts.context,
        &Value::Object(facts.input.clone()),
        &cause,
    )
    .await;
    error::text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        internal_error_text(&logged, &cause),
    )
}

/// The body of a 500 (and a websocket session's refusal for the same reasons): the error's
/// id, where its entry is, and what the client can do where that is something (another
/// program releasing the database, space on the disk, a larger file-size or
/// file-descriptor limit).
pub(crate) fn internal_error_text(
    logged: &crate::error_log::Logged,
    cause: &anyhow::Error,
) -> String {
    let (start, id) = (hanami_types::websocket::INTERNAL_ERROR, &logged.id);
    let head = if logged.in_error_log {
        format!("{start}error id {id})")
    } else {
        format!("{start}error id {id}, in the server log only)")
    };
    if crate::error_log::database_is_locked(cause) {
        format!(
            "{head}: the server's database is locked by another program (a sqlite3 shell or a \
             backup tool, say); try again once it is released."
        )
    } else if disk_is_full(cause) {
        format!(
            "{head}: the server's disk is full; free space in its data directory and try again."
        )
    } else if file_too_large(cause) {
        format!(
            "{head}: a file would exceed the file-size limit the server runs under (ulimit -f, \
             systemd's LimitFSIZE); raise it and try again."
        )
    } else if crate::error_log::out_of_descriptors(cause) {
        format!(
            "{head}: the server could not open a file: it has run out of file descriptors (too \
             many open files); try again when fewer connections and uploads are open, or raise \
             its limit (ulimit -n, systemd's LimitNOFILE)."
        )
    } else if database_cannot_open(cause) {
        format!(
            "{head}: the server could not open its database's files: it may have run out of \
             file descriptors (try again when fewer connections and uploads are open, or raise \
             its limit: ulimit -n, systemd's LimitNOFILE), or its data directory's \
             permissions changed."
        )
    } else {
        format!("{head}; the server log has the details.")
    }
}

/// Whether an error comes from a full disk (or an exhausted disk quota): the one internal
/// error that clients can do something about, so its answer says so.
fn disk_is_full(cause: &anyhow::Error) -> bool {
    use std::io::ErrorKind;
    caused_by_io(cause, &[ErrorKind::StorageFull, ErrorKind::QuotaExceeded])
        || cause.chain().any(|e| {
            e.downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_disk_full)
        })
}

/// Whether an error comes from the file-size limit of the process (EFBIG).
fn file_too_large(cause: &anyhow::Error) -> bool {
    caused_by_io(cause, &[std::io::ErrorKind::FileTooLarge])
}

/// Whether SQLite could not open one of the database's files (`SQLITE_CANTOPEN`, which it
/// gives instead of the system's code; the database was open at the start): as when the
/// server has run out of file descriptors, or the data directory's permissions changed.
fn database_cannot_open(cause: &anyhow::Error) -> bool {
    cause.chain().any(|e| {
        e.downcast_ref::<StoreError>()
            .is_some_and(|e| e.sqlite_failure() == Some(hanami_store::SqliteFailure::CannotOpen))
    })
}

/// Whether an I/O error of one of these kinds is among the causes.
fn caused_by_io(cause: &anyhow::Error, kinds: &[std::io::ErrorKind]) -> bool {
    cause.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| kinds.contains(&io.kind()))
    })
}

#[cfg(test)]
mod tests {
    use super::{ApiError, body_too_large, disk_is_full, file_too_large, internal_error_text};
    use std::io::{Error, ErrorKind};

    /// A 500 says where its entry is: in the server log only where the error log did not
    /// take it (a full disk refuses it too; that answer sent the reader to the error log).
    #[test]
    fn a_500_says_where_its_entry_is() {
        let full = anyhow::Error::new(Error::from(ErrorKind::StorageFull));
        let logged = |in_error_log| crate::error_log::Logged {
            id: "e1".into(),
            in_error_log,
        };
        assert_eq!(
            internal_error_text(&logged(false), &full),
            "Internal server error (error id e1, in the server log only): the server's disk is \
             full; free space in its data directory and try again."
        );
        assert_eq!(
            internal_error_text(&logged(true), &anyhow::anyhow!("x")),
            "Internal server error (error id e1); the server log has the details."
        );
        let emfile = anyhow::Error::new(Error::from_raw_os_error(libc::EMFILE)).context("open");
        assert!(
            internal_error_text(&logged(true), &emfile).starts_with(
                "Internal server error (error id e1): the server could not open a file: it has \
                 run out of file descriptors (too many open files)"
            ),
            "{}",
            internal_error_text(&logged(true), &emfile)
        );
    }

    #[test]
    fn the_body_limit_names_the_template_that_fits_in_its_unit() {
        let text = |limit| match body_too_large(limit) {
            ApiError::BadRequest(text) => text,
            other => panic!("{other:?}"),
        };
        assert!(text(1 << 20).ends_with("templates of up to 767 KiB fit)"));
        assert!(text(1024).ends_with("templates of up to 543 bytes fit)"));
        assert!(text(100).ends_with("templates of up to 0 bytes fit)"));
    }

    #[test]
    fn a_full_disk_is_recognised_through_contexts() {
        let full = anyhow::Error::new(Error::from(ErrorKind::StorageFull))
            .context("cannot write dataset file")
            .context("finalising the upload");
        assert!(disk_is_full(&full));
        let quota = anyhow::Error::new(Error::from(ErrorKind::QuotaExceeded));
        assert!(disk_is_full(&quota));
        let store = anyhow::Error::new(hanami_store::StoreError::Database(sqlx_io_full()));
        assert!(disk_is_full(&store));
        let other = anyhow::Error::new(Error::from(ErrorKind::PermissionDenied)).context("x");
        assert!(!disk_is_full(&other));
        assert!(!disk_is_full(&anyhow::anyhow!("disk is full")));
        let big = anyhow::Error::new(Error::from(ErrorKind::FileTooLarge)).context("writing");
        assert!(file_too_large(&big) && !disk_is_full(&big));
        assert!(!file_too_large(&full));
    }

    fn sqlx_io_full() -> sqlx::Error {
        sqlx::Error::Io(Error::from(ErrorKind::StorageFull))
    }
}
