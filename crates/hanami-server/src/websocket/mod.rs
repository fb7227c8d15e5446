//! Websocket sessions on the server's port (any path): file uploads into the temporary files
//! of unfinished dataset uploads, and direct IO with a cluster in DIRECT mode.
//!
//! A session starts with a JSON [`SessionInit`] (token, target, uuid); the server answers with
//! a JSON [`SessionReply`] in a binary frame. A file-upload session then receives one
//! `FileUpload_Message` per binary frame and answers each with one
//! `FileUploadResponse_Message`. A refused start, a malformed message or a chunk outside the
//! declared file size is answered with `success: false` and a message, and the socket is
//! closed; nothing else is affected.
//!
//! A direct-IO session receives `ClusterIO_Message`s: values for inputs and expected outputs
//! are staged; the message marked last runs one training step (answered with a train-end
//! message) or one request (answered with one message per output, raw values). Every other
//! message is answered with an acknowledgement. An invalid message closes the socket with a
//! close frame that says why.

mod direct;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hanami_auth::{Method, Scope, Verified};
use hanami_store::resources::Kind;
use hanami_types::websocket::proto::{FileUploadMessage, FileUploadResponseMessage};
use hanami_types::websocket::{
    CLOSED_ACCESS_WITHDRAWN, CLOSED_UPLOAD_FINALISING, CLOSED_UPLOAD_GONE, POLICY_DENIED,
    SessionInit, SessionReply, TARGET_CLUSTER, TARGET_FILE_UPLOAD,
};
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{self, JsonRefusal, TokenRefused, json_kind, parse_distinct};
use crate::clusters::{DirectSessionSlot, MAX_DIRECT_SESSIONS, Mode};
use crate::per_network::{PerNetwork, Share};
use crate::slots::Slot;
use crate::state::{App, InFlight};
use crate::uploads::{MAX_UPLOAD_SESSIONS, UploadKind, UploadTarget};

/// Largest websocket message accepted (uploads come in 128 KiB chunks).
const MAX_MESSAGE_BYTES: usize = hanami_types::websocket::MAX_MESSAGE_BYTES;
/// How long a new socket may take to send its first message while no other opening waits
/// for its turn (see [`SessionStarts`]).
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new socket may take to send its first message once another opening waits
/// for its turn: every socket that waits for its first message holds one of the
/// [`SessionStarts`], and openings beyond them wait (first come, first served), so sockets
/// that send nothing hold up others this long at most. Clients send the start right after
/// the opening, within a round trip.
const CONTENDED_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most websocket sessions of one client network that wait for their first message at
/// once (see [`SessionStarts`]).
pub const MAX_SESSION_STARTS_PER_NETWORK: usize = 8;
/// Most websocket sessions of all clients that wait for their first message at once.
pub const MAX_SESSION_STARTS: usize = 64;

/// The websocket sessions that have not sent their first message yet: each may take up to
/// [`MAX_MESSAGE_BYTES`] of memory for it (the library takes in a whole message before the
/// server sees it) before anything says who sends it, so a client network may have
/// [`MAX_SESSION_STARTS_PER_NETWORK`] and all clients [`MAX_SESSION_STARTS`] of them at once.
/// A further opening waits for its turn before it is switched to a websocket.
#[derive(Clone)]
pub struct SessionStarts {
    per_network: PerNetwork,
    all: Arc<Semaphore>,
    /// The openings that wait for their turn.
    waiting: Arc<tokio::sync::watch::Sender<Waiting>>,
}

impl Default for SessionStarts {
    fn default() -> Self {
        SessionStarts {
            per_network: PerNetwork::new(MAX_SESSION_STARTS_PER_NETWORK),
            all: Arc::new(Semaphore::new(MAX_SESSION_STARTS)),
            waiting: Arc::default(),
        }
    }
}

/// How many openings wait for their turn: for a start of all clients (any silent session
/// holds one up), and for one of their own network's (by network: only that network's
/// silent sessions hold it up). Networks without waiting openings are not listed.
#[derive(Debug, Default)]
struct Waiting {
    all: usize,
    by_network: std::collections::HashMap<IpAddr, usize>,
}

/// An opening counted in [`Waiting`] while it waits for its turn: for a start of its
/// network's (`Some`) or of all clients (`None`).
struct Queued<'a> {
    waiting: &'a tokio::sync::watch::Sender<Waiting>,
    network: Option<IpAddr>,
}

impl<'a> Queued<'a> {
    fn new(waiting: &'a tokio::sync::watch::Sender<Waiting>, network: Option<IpAddr>) -> Self {
        waiting.send_modify(|waiting| match network {
            Some(network) => *waiting.by_network.entry(network).or_default() += 1,
            None => waiting.all += 1,
        });
        Queued { waiting, network }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.waiting.send_modify(|waiting| match self.network {
            Some(network) => {
                if let std::collections::hash_map::Entry::Occupied(mut entry) =
                    waiting.by_network.entry(network)
                {
                    *entry.get_mut() -= 1;
                    if *entry.get() == 0 {
                        entry.remove();
                    }
                }
            }
            None => waiting.all -= 1,
        });
    }
}

/// A session start of [`SessionStarts`], given back when dropped.
pub struct SessionStart {
    _network: Share,
    _all: OwnedSemaphorePermit,
    /// The client's network.
    network: IpAddr,
}

impl SessionStarts {
    /// A start for a session of a client at `address`, once its network and all clients
    /// have fewer than they may (first come, first served).
    pub async fn take(&self, address: IpAddr) -> SessionStart {
        let client_network = crate::per_network::network(address);
        let network = match self.per_network.try_take(address) {
            Some(share) => share,
            None => {
                let _queued = Queued::new(&self.waiting, Some(client_network));
                self.per_network.take(address).await
            }
        };
        let all = match self.all.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let _queued = Queued::new(&self.waiting, None);
                self.all
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        SessionStart {
            _network: network,
            _all: all,
            network: client_network,
        }
    }

    /// Waits until a session of `start` that opened at `opened` and has sent nothing since
    /// has waited long enough for its first message: [`CONTENDED_INIT_TIMEOUT`] once
    /// another opening waits for a start of all clients or of the session's network,
    /// [`INIT_TIMEOUT`] at most. (Every such session that sees an opening wait is closed
    /// then, not just as many as wait: a start given back goes to the first opening in
    /// line. One that looks only after the openings got their turns waits on.)
    async fn first_message_deadline(&self, start: &SessionStart, opened: tokio::time::Instant) {
        tokio::time::sleep_until(opened + CONTENDED_INIT_TIMEOUT).await;
        let mut waiting = self.waiting.subscribe();
        let network = start.network;
        tokio::select! {
            _ = waiting.wait_for(|w| w.all > 0 || w.by_network.contains_key(&network)) => {}
            () = tokio::time::sleep_until(opened + INIT_TIMEOUT) => {}
        }
    }
}

/// Accepts a websocket upgrade of a client at `address` once it may have one more session
/// waiting for its first message (see [`SessionStarts`]); refused with 429 when that took
/// longer than `header_timeout`, and with 503 when the server stops meanwhile.
pub async fn upgrade(app: App, ws: WebSocketUpgrade, address: IpAddr) -> Response {
    let limit = app.config.header_timeout;
    let start = tokio::select! {
        start = tokio::time::timeout(limit, app.session_starts.take(address)) => start,
        () = app.stopping() => {
            return (StatusCode::SERVICE_UNAVAILABLE, SHUTTING_DOWN).into_response();
        }
    };
    let Ok(start) = start else {
        let text = format!(
            "Too many websocket sessions are waiting for their first message (at most \
             {MAX_SESSION_STARTS_PER_NETWORK} from one client, {MAX_SESSION_STARTS} in all), \
             and none sent it within {} s: send the session start right after opening one, \
             and try again",
            limit.as_secs()
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            text,
        )
            .into_response();
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(app, socket, start))
}

async fn session(app: App, mut socket: WebSocket, waiting: SessionStart) {
    let _counted = InFlight::session(&app);
    // The first message (clients' libraries may ping before it), text or binary.
    let opened = tokio::time::Instant::now();
    let deadline = app.session_starts.first_message_deadline(&waiting, opened);
    let first = next_message_before(&app, &mut socket, deadline).await;
    drop(waiting);
    let started = match first {
        Incoming::Text(text) => start(&app, text.as_bytes()).await,
        Incoming::Data(bytes) => start(&app, &bytes).await,
        Incoming::Stopping => {
            close_with(&app, socket, close_code::AWAY, SHUTTING_DOWN).await;
            return;
        }
        Incoming::Idle => {
            let reason = if opened.elapsed() < INIT_TIMEOUT {
                format!(
                    "no session start message within {} s, while other sessions waited for \
                     their turn to start",
                    CONTENDED_INIT_TIMEOUT.as_secs()
                )
            } else {
                format!(
                    "no session start message within {} s",
                    INIT_TIMEOUT.as_secs()
                )
            };
            close_with(&app, socket, close_code::POLICY, &reason).await;
            return;
        }
        Incoming::TooBig => {
            close_with(&app, socket, close_code::SIZE, TOO_BIG).await;
            return;
        }
        Incoming::Violation(code, reason) => {
            close_with(&app, socket, code, &reason).await;
            return;
        }
        Incoming::Closed => {
            answer_close(&mut socket).await;
            return;
        }
        Incoming::Gone => return,
    };
    let (target, mut access) = match started {
        Ok(session) => session,
        Err(error) => {
            let reply = SessionReply {
                success: false,
                uuid: None,
                error: Some(error),
            };
            if socket.send(json_frame(&reply)).await.is_ok() {
                close_with(
                    &app,
                    socket,
                    close_code::POLICY,
                    reply.error.as_deref().unwrap_or(""),
                )
                .await;
            }
            return;
        }
    };
    let reply = SessionReply {
        success: true,
        uuid: Some(uuid::Uuid::new_v4().to_string()),
        error: None,
    };
    if socket.send(json_frame(&reply)).await.is_err() {
        return;
    }
    match target {
        Target::Upload(target, _slot) => upload(&app, socket, target, &mut access).await,
        Target::Cluster(cluster) => direct::session(&app, socket, cluster, &mut access).await,
    }
}

/// What a session is bound to.
enum Target {
    Upload(UploadTarget, Slot),
    Cluster(DirectSessionSlot),
}

/// What a session's socket gave next.
pub(crate) enum Incoming {
    /// A binary message.
    Data(axum::body::Bytes),
    /// A text message: a session's start; once a session runs, nothing it expects.
    Text(axum::extract::ws::Utf8Bytes),
    /// Nothing but pings for the idle time.
    Idle,
    /// A message larger than [`MAX_MESSAGE_BYTES`] (not read).
    TooBig,
    /// The server began to shut down.
    Stopping,
    /// The client broke the websocket protocol: the close code (1002, or 1007 for text that
    /// is not UTF-8) and the reason.
    Violation(u16, String),
    /// The client closed the session: the answer to its close frame waits for
    /// [`answer_close`] (a direct-IO session saves its network first).
    Closed,
    /// The connection broke.
    Gone,
}

/// Waits for the next message of a session. Pings are answered and skipped, and do not count
/// as activity (websocket libraries send them by themselves): `idle` without any other
/// message ends the wait.
pub(crate) async fn next_message(app: &App, socket: &mut WebSocket, idle: Duration) -> Incoming {
    next_message_before(app, socket, tokio::time::sleep(idle)).await
}

/// [`next_message`], waiting until `give_up` completes instead of for a fixed idle time.
async fn next_message_before(
    app: &App,
    socket: &mut WebSocket,
    give_up: impl std::future::Future<Output = ()>,
) -> Incoming {
    let mut give_up = std::pin::pin!(give_up);
    loop {
        let next = tokio::select! {
            // In this order: a stop wins over messages (a client that never pauses must not
            // hold up the shutdown), and a message that has come over the deadline.
            biased;
            () = app.stopping() => return Incoming::Stopping,
            next = socket.recv() => next,
            () = &mut give_up => return Incoming::Idle,
        };
        return match next {
            Some(Ok(Message::Binary(bytes))) => Incoming::Data(bytes),
            Some(Ok(Message::Text(text))) => Incoming::Text(text),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) if is_too_big(&e) => Incoming::TooBig,
            Some(Err(e)) if let Some((code, reason)) = violation(&e) => {
                Incoming::Violation(code, reason)
            }
            Some(Ok(Message::Close(_))) => Incoming::Closed,
            Some(Err(_)) | None => Incoming::Gone,
        };
    }
}

/// Sends the answer to the client's close frame, which the websocket library has queued:
/// without it the client sees the connection fail (close code 1006) instead of a clean
/// close. A client that does not read it is not waited for long.
pub(crate) async fn answer_close(socket: &mut WebSocket) {
    let flushed = futures_util::SinkExt::flush(socket);
    let _ = tokio::time::timeout(Duration::from_secs(1), flushed).await;
}

/// Why a session closes after a message beyond [`MAX_MESSAGE_BYTES`] before it started.
const TOO_BIG: &str = "message too big: a websocket message may hold at most 16 MiB";

/// Why an upload session closes after a chunk beyond [`MAX_MESSAGE_BYTES`].
const CHUNK_TOO_BIG: &str =
    "message too big: a websocket message may hold at most 16 MiB (send smaller chunks)";

/// The close code and reason for a websocket error that is the client's breach of the
/// protocol (RFC 6455 §7.4.1: 1007 for text that is not UTF-8, 1002 for the rest); `None`
/// for other errors (the connection broke). Told by the websocket library's texts, as in
/// [`is_too_big`]; the connection can still take a close frame after either.
fn violation(error: &axum::Error) -> Option<(u16, String)> {
    let text = error.to_string();
    // The library's word for a connection that ended without a close frame: it broke.
    if text.ends_with("Connection reset without closing handshake") {
        None
    } else if text.starts_with("WebSocket protocol error") {
        Some((close_code::PROTOCOL, text))
    } else if text.starts_with("UTF-8 encoding error") {
        Some((close_code::INVALID, text))
    } else {
        None
    }
}

/// Whether a websocket error is the refusal of a message beyond [`MAX_MESSAGE_BYTES`]. The
/// websocket library's error type is not exported through axum, so it is told by its text
/// (a test sends such a message).
fn is_too_big(error: &axum::Error) -> bool {
    error.to_string().contains("Message too long")
}

/// Why sessions close when the server stops.
pub(crate) const SHUTTING_DOWN: &str = hanami_types::websocket::CLOSED_SHUTTING_DOWN;

/// How often an open session checks again that its user may still use it.
const RECHECK: Duration = Duration::from_secs(1);

/// The token a session was opened with, checked again while the session runs: a user
/// deleted, taken out of the project or demoted loses its open sessions too. (Its expiry is
/// not checked again: a token only has to be valid when a session starts.)
pub(crate) struct Access {
    verified: Verified,
    /// The temporary file or the cluster of the session.
    target_uuid: String,
    /// What the session may do, by the policy file (which names REST endpoints only).
    uses: Uses,
    /// The caller's role when the access was checked last.
    role: String,
    checked: Instant,
}

/// The REST endpoints whose policy entries (for POST) decide who may use a session: an
/// upload's is the one that starts that kind of upload; direct IO's are those of train and
/// request tasks (a session needs either, each step the one of its kind).
#[derive(Clone, Copy)]
enum Uses {
    Upload(UploadKind),
    DirectIo,
}

impl Uses {
    fn allowed(self, app: &App, role: &str) -> bool {
        match self {
            Uses::Upload(kind) => app
                .policy
                .allows(api::upload_endpoint(kind), Method::Post, role),
            Uses::DirectIo => [api::TRAIN_ENDPOINT, api::REQUEST_ENDPOINT]
                .iter()
                .any(|endpoint| app.policy.allows(endpoint, Method::Post, role)),
        }
    }
}

impl Access {
    /// Whether the policy lets the session's user call `endpoint` with POST (by the role
    /// of the last check): each direct-IO step needs the entry of its kind of task.
    pub(crate) fn may(&self, app: &App, endpoint: &str) -> Result<(), String> {
        if app.policy.allows(endpoint, Method::Post, &self.role) {
            Ok(())
        } else {
            Err(POLICY_DENIED.to_owned())
        }
    }

    /// Whether the session may go on; checks at most once per [`RECHECK`].
    pub(crate) async fn recheck(&mut self, app: &App) -> Result<(), String> {
        if self.checked.elapsed() < RECHECK {
            return Ok(());
        }
        self.checked = Instant::now();
        let held = api::AssignmentCheck::Current;
        let caller = match api::current_caller(app, &self.verified, held).await {
            Ok(caller) => caller,
            // The database could not tell: the session goes on, and asks again next time.
            Err(TokenRefused::Store(e)) => {
                tracing::error!("websocket session: cannot check the token again: {e:#}");
                return Ok(());
            }
            Err(refused) => {
                return Err(format!(
                    "{CLOSED_ACCESS_WITHDRAWN}{}",
                    refusal_text(refused)
                ));
            }
        };
        if !self.uses.allowed(app, &caller.role) {
            return Err(format!("{CLOSED_ACCESS_WITHDRAWN}{POLICY_DENIED}"));
        }
        self.role = caller.role.clone();
        let allowed = if matches!(self.uses, Uses::Upload(_)) {
            app.uploads
                .target(&caller.id, &caller.project_id, &self.target_uuid)
                .is_some()
        } else {
            // A deleted cluster is no question of access (its session says so itself).
            app.clusters
                .get(&Scope::All, &self.target_uuid)
                .is_none_or(|c| caller.scope().contains(&c.row.project_id, &c.row.owner_id))
        };
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{CLOSED_ACCESS_WITHDRAWN}user '{}' may no longer use '{}'",
                caller.id, self.target_uuid
            ))
        }
    }
}

/// The original's text for any refused token, with the reason where there is more to say.
fn refusal_text(refused: TokenRefused) -> String {
    match refused {
        TokenRefused::Invalid => "Token invalid".to_owned(),
        // The session's first message holds the token, not a header.
        TokenRefused::Missing => {
            "Token invalid: the session's first message has no token".to_owned()
        }
        // (A session start gives a 500's words with an error id instead, see `start`.)
        TokenRefused::Store(e) => {
            tracing::error!("websocket session: cannot check the token: {e:#}");
            format!(
                "{}in the server log): the database cannot be asked now; try again",
                hanami_types::websocket::INTERNAL_ERROR
            )
        }
        other => format!("Token invalid: {other}"),
    }
}

fn json_frame(reply: &SessionReply) -> Message {
    Message::Binary(serde_json::to_vec(reply).expect("reply serializes").into())
}

/// Checks the first message of a session (JSON, from a text or a binary frame) and opens
/// its target.
async fn start(app: &App, text: &[u8]) -> Result<(Target, Access), String> {
    let init = parse_start(text)?;
    let (verified, caller) = session_caller(app, &init).await?;
    // The policy first, as for REST calls: a role it refuses learns nothing about targets.
    // An upload that its user may no longer make goes (nobody can finish it now).
    let may = match init.target.as_str() {
        TARGET_FILE_UPLOAD => [UploadKind::Mnist, UploadKind::Csv]
            .into_iter()
            .any(|kind| Uses::Upload(kind).allowed(app, &caller.role)),
        TARGET_CLUSTER => Uses::DirectIo.allowed(app, &caller.role),
        _ => true, // refused below
    };
    if !may {
        if init.target == TARGET_FILE_UPLOAD {
            cancel_orphaned_upload(app, &caller, &init.uuid).await;
        }
        return Err(POLICY_DENIED.to_owned());
    }
    let target = match init.target.as_str() {
        TARGET_FILE_UPLOAD => open_upload(app, &caller, &init.uuid)?,
        TARGET_CLUSTER => open_cluster(app, &caller, &init.uuid).await?,
        other => {
            return Err(format!(
                "unknown session target '{other}', expected '{TARGET_FILE_UPLOAD}' or \
                 '{TARGET_CLUSTER}'"
            ));
        }
    };
    let uses = match &target {
        Target::Upload(upload, _) => Uses::Upload(upload.kind()),
        Target::Cluster(_) => Uses::DirectIo,
    };
    if !uses.allowed(app, &caller.role) {
        if let Target::Upload(upload, _) = &target {
            cancel_upload(app, upload.dataset_uuid().to_owned()).await;
        }
        return Err(POLICY_DENIED.to_owned());
    }
    let access = Access {
        verified,
        target_uuid: init.uuid,
        uses,
        role: caller.role,
        checked: Instant::now(),
    };
    Ok((target, access))
}

/// The first message of a session as the client sent it, its uuid in lowercase (as every
/// uuid the server makes); the refusal says what was expected.
fn parse_start(text: &[u8]) -> Result<SessionInit, String> {
    let expected = "invalid session start message: expected a JSON object {\"token\", \
                    \"target\", \"uuid\"}";
    // Its keys must differ, as those of a REST body.
    let value = parse_distinct(text).map_err(|refusal| match refusal {
        JsonRefusal::Syntax(e) => format!("{expected} ({e})"),
        JsonRefusal::Repeated(repeated) => format!("{expected}, got one that gives {repeated}"),
    })?;
    if !value.is_object() {
        return Err(format!("{expected}, got {}", json_kind(&value)));
    }
    let mut init: SessionInit =
        serde_json::from_value(value).map_err(|e| format!("{expected} ({e})"))?;
    init.uuid.make_ascii_lowercase();
    Ok(init)
}

/// The token of a session start, verified, and its user as the database has them now. An
/// upload whose user left its project (or was deleted) goes, since nobody can finish it
/// now; where the database could not tell, the refusal has a 500's words and an error-log
/// entry.
async fn session_caller(
    app: &App,
    init: &SessionInit,
) -> Result<(Verified, hanami_auth::Caller), String> {
    let verified = api::verify_signature(app, &init.token).map_err(refusal_text)?;
    let caller = if crate::crash_point::fails("session:caller") {
        // As when the server has no file descriptor left for the database.
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        Err(TokenRefused::Store(hanami_store::StoreError::Database(
            sqlx::Error::Io(emfile),
        )))
    } else {
        api::current_caller(app, &verified, api::AssignmentCheck::AtIssue).await
    };
    match caller {
        Ok(caller) => Ok((verified, caller)),
        Err(refused) => {
            // Nobody can finish such an upload now (a client holds the token, not the
            // password that would make a new one).
            if init.target == TARGET_FILE_UPLOAD
                && matches!(
                    refused,
                    TokenRefused::NotAssigned { .. } | TokenRefused::UserGone(_)
                )
            {
                cancel_orphaned_upload(app, &verified.caller, &init.uuid).await;
            }
            // The database could not tell (out of file descriptors, say): a 500's words.
            if let TokenRefused::Store(e) = refused {
                let cause = anyhow::Error::new(e);
                let input = serde_json::json!({"target": init.target, "uuid": init.uuid});
                let logged = crate::error_log::record_error(
                    &app.store,
                    &verified.caller.id,
                    "websocket session start",
                    &input,
                    &cause,
                )
                .await;
                return Err(api::internal_error_text(&logged, &cause));
            }
            Err(refusal_text(refused))
        }
    }
}

/// The upload of temporary file `uuid` that `caller` registered, with a session slot of
/// its own.
fn open_upload(app: &App, caller: &hanami_auth::Caller, uuid: &str) -> Result<Target, String> {
    let upload = app
        .uploads
        .target(&caller.id, &caller.project_id, uuid)
        .ok_or_else(|| {
            format!(
                "Tempfile with UUID '{uuid}' not found ({})",
                app.uploads.how_uploads_end()
            )
        })?;
    if app.uploads.finalising(upload.dataset_uuid()) {
        return Err(format!(
            "Tempfile with UUID '{uuid}' cannot take a session: {CLOSED_UPLOAD_FINALISING}"
        ));
    }
    let slot = upload.claim_session().ok_or_else(|| {
        format!(
            "Tempfile with UUID '{uuid}' has {MAX_UPLOAD_SESSIONS} sessions open, as many as a \
             file may have; close one first"
        )
    })?;
    Ok(Target::Upload(upload, slot))
}

/// A direct-IO slot of cluster `uuid`, visible to `caller`, in DIRECT mode and with a
/// network.
async fn open_cluster(
    app: &App,
    caller: &hanami_auth::Caller,
    uuid: &str,
) -> Result<Target, String> {
    let scope = caller.scope();
    let Some(cluster) = app.clusters.get(&scope, uuid) else {
        let hint = api::kind_hint(app, &scope, Kind::Cluster, uuid).await;
        return Err(format!(
            "Cluster with UUID '{uuid}' not found{}",
            hint.unwrap_or_default()
        ));
    };
    if cluster.mode() != Mode::Direct {
        return Err(format!(
            "Cluster with UUID '{uuid}' is not in DIRECT mode; switch it with PUT \
             cluster/set_mode first (clusters come back in TASK mode when the server restarts)"
        ));
    }
    if !cluster.has_network() {
        return Err(format!(
            "Cluster with UUID '{uuid}' has no network yet: restore a checkpoint into it first"
        ));
    }
    let slot = cluster.claim_direct_session().ok_or_else(|| {
        format!(
            "Cluster with UUID '{uuid}' has {MAX_DIRECT_SESSIONS} direct-IO sessions open, as \
             many as a cluster may have; close one first"
        )
    })?;
    Ok(Target::Cluster(slot))
}

/// Cancels the upload of `file_uuid` that `owner` registered but can no longer send (the
/// user left its project, or its role may no longer upload): nobody can finish it, and it
/// would keep the user and the project from being deleted until `upload_timeout`.
async fn cancel_orphaned_upload(app: &App, owner: &hanami_auth::Caller, file_uuid: &str) {
    let Some(target) = app.uploads.target(&owner.id, &owner.project_id, file_uuid) else {
        return;
    };
    cancel_upload(app, target.dataset_uuid().to_owned()).await;
}

/// Cancels an unfinished upload: its files go at once.
async fn cancel_upload(app: &App, dataset_uuid: String) {
    let uploads = app.uploads.clone();
    let _ = tokio::task::spawn_blocking(move || uploads.cancel(&Scope::All, &dataset_uuid)).await;
}

/// Stores chunks until the client closes the socket or sends something invalid, the upload
/// is gone (cancelled, expired, finished), no chunk comes for `upload_timeout`, or the user
/// may no longer upload it.
async fn upload(app: &App, mut socket: WebSocket, mut target: UploadTarget, access: &mut Access) {
    let idle = app.config.upload_timeout;
    loop {
        let incoming = tokio::select! {
            // The upload's end wins over a chunk that came meanwhile (as a direct-IO
            // session's end does).
            biased;
            () = target.gone() => {
                refuse(app, socket, CLOSED_UPLOAD_GONE).await;
                return;
            }
            incoming = next_message(app, &mut socket, idle) => incoming,
        };
        let bytes = match incoming {
            Incoming::Data(bytes) => bytes,
            Incoming::Closed => {
                answer_close(&mut socket).await;
                return;
            }
            Incoming::Gone => return,
            Incoming::Stopping => {
                refuse_with(app, socket, close_code::AWAY, SHUTTING_DOWN).await;
                return;
            }
            Incoming::Idle => {
                refuse(app, socket, &format!("no chunk for {} s", idle.as_secs())).await;
                return;
            }
            Incoming::TooBig => {
                refuse_with(app, socket, close_code::SIZE, CHUNK_TOO_BIG).await;
                return;
            }
            Incoming::Violation(code, reason) => {
                close_with(app, socket, code, &reason).await;
                return;
            }
            Incoming::Text(_) => {
                refuse(
                    app,
                    socket,
                    "expected a binary FileUpload_Message, got a text frame",
                )
                .await;
                return;
            }
        };
        let chunk = match FileUploadMessage::decode(bytes) {
            Ok(chunk) => chunk,
            Err(e) => {
                refuse(app, socket, &format!("Got invalid FileUpload-Message: {e}")).await;
                return;
            }
        };
        if let Err(why) = access.recheck(app).await {
            // Nobody can finish it now: its files go at once, and it no longer keeps its
            // user and project from being deleted.
            cancel_upload(app, target.dataset_uuid().to_owned()).await;
            refuse(app, socket, &why).await;
            return;
        }
        // A chunk is at most a few hundred KiB written into the page cache: cheaper to do
        // in place than to hand to the blocking pool.
        let written = tokio::task::block_in_place(|| {
            app.uploads
                .write_chunk(&target, chunk.position, &chunk.data)
        });
        match written {
            Ok(()) => {
                let ok = FileUploadResponseMessage {
                    success: true,
                    error_message: String::new(),
                };
                if socket
                    .send(Message::Binary(ok.encode_to_vec().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                refuse(app, socket, &e.to_string()).await;
                return;
            }
        }
    }
}

/// Answers an upload session with a failed reply and closes it (policy).
async fn refuse(app: &App, socket: WebSocket, message: &str) {
    refuse_with(app, socket, close_code::POLICY, message).await;
}

/// Answers an upload session with a failed reply, then closes it with `code` and the same
/// reason (for clients that see the close before the reply: one whose send failed first).
async fn refuse_with(app: &App, mut socket: WebSocket, code: u16, message: &str) {
    let reply = FileUploadResponseMessage {
        success: false,
        error_message: message.to_owned(),
    };
    let _ = socket
        .send(Message::Binary(reply.encode_to_vec().into()))
        .await;
    close_with(app, socket, code, message).await;
}

/// Closes with `code` (policy: the client's message was refused; away: the server stops)
/// and `reason`, cut to the 123 bytes a close frame holds (see [`close_reason`]). Then, in
/// the background (so that
/// the session's own ending, such as saving a network, does not wait for the client),
/// reads and drops what the client still sends until it answers the close (for
/// [`CLOSING_TIME`] at most): closing the connection with its messages unread would reset
/// it, and the client would lose the reply and the close frame before it read them.
pub(crate) async fn close_with(app: &App, mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: close_reason(reason).into(),
    };
    // A client that reads nothing (its buffers full) is not waited for.
    let sent = tokio::time::timeout(CLOSING_TIME, socket.send(Message::Close(Some(frame)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    // Counted as the session it ends: a stopping server waits for it, as it must not
    // reset a connection whose client has not read the close frame yet.
    let counted = InFlight::session(app);
    tokio::spawn(tokio::time::timeout(CLOSING_TIME, async move {
        let _counted = counted;
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    }));
}

/// `reason` as a close frame holds it: at most 123 bytes, so a longer one is cut at a
/// character and ends with "…" to show that it was (the reply before the close, where there
/// is one, has all of it).
fn close_reason(reason: &str) -> String {
    const MOST: usize = 123;
    const CUT: &str = "…";
    if reason.len() <= MOST {
        return reason.to_owned();
    }
    let end = reason.floor_char_boundary(MOST - CUT.len());
    format!("{}{CUT}", &reason[..end])
}

/// How long a closing session waits for the client's answer to its close frame.
const CLOSING_TIME: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    /// The close reasons of messages that are too big name the limit there is, and fit
    /// their close frame whole.
    #[test]
    fn too_big_reasons_name_the_limit() {
        let limit = format!("at most {} MiB", MAX_MESSAGE_BYTES >> 20);
        assert_eq!(MAX_MESSAGE_BYTES % (1 << 20), 0);
        for reason in [TOO_BIG, CHUNK_TOO_BIG] {
            assert!(reason.contains(&limit), "{reason}");
            assert_eq!(close_reason(reason), reason);
        }
    }

    /// A close reason fits a close frame; a cut one says so, and is cut at a character.
    #[test]
    fn close_reasons_fit_their_frame_and_show_a_cut() {
        assert_eq!(close_reason("short"), "short");
        let exact = "x".repeat(123);
        assert_eq!(close_reason(&exact), exact);
        let long = format!(
            "access withdrawn: user '{}' may no longer use it",
            "é".repeat(80)
        );
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && cut.ends_with('…'), "{cut}");
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }

    /// Each network has its own eight starts, and all networks together sixty-four; one
    /// more waits until one is given back.
    #[tokio::test]
    async fn session_starts_are_bounded_per_network_and_in_all() {
        let starts = SessionStarts::default();
        let address = |n: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        let soon = Duration::from_millis(50);
        let mut mine = Vec::new();
        for _ in 0..MAX_SESSION_STARTS_PER_NETWORK {
            mine.push(starts.take(address(0)).await);
        }
        assert!(
            tokio::time::timeout(soon, starts.take(address(0)))
                .await
                .is_err()
        );
        let mut others = Vec::new();
        for n in 1..=(MAX_SESSION_STARTS - MAX_SESSION_STARTS_PER_NETWORK) as u32 {
            others.push(starts.take(address(n)).await);
        }
        assert!(
            tokio::time::timeout(soon, starts.take(address(1000)))
                .await
                .is_err()
        );
        // Openings are counted while they wait, for a start of all clients or of their
        // network's, and no longer once they have it or gave up (a leak would keep the
        // short limit on for good).
        let waiting = tokio::spawn({
            let starts = starts.clone();
            async move { starts.take(address(1000)).await }
        });
        tokio::time::sleep(soon).await;
        assert_eq!(starts.waiting.borrow().all, 1);
        let own_network = tokio::spawn({
            let starts = starts.clone();
            async move { tokio::time::timeout(soon * 2, starts.take(address(0))).await }
        });
        tokio::time::sleep(soon).await;
        assert_eq!(
            starts.waiting.borrow().by_network.get(&address(0)),
            Some(&1)
        );
        assert!(own_network.await.unwrap().is_err());
        assert!(starts.waiting.borrow().by_network.is_empty());
        mine.pop();
        let _taken = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting opening's turn came")
            .unwrap();
        assert_eq!(starts.waiting.borrow().all, 0);
    }
}
