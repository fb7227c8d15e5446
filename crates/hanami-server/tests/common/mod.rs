//! Test support: this crate's `hanami` binary started through `hanami-testkit`, and a
//! small HTTP client for it.
#![allow(dead_code)] // each test file uses a different part of this module

use std::path::{Path, PathBuf};

use hanami_testkit::Launch;
#[allow(unused_imports)] // as dead_code above: not every test file uses every name
pub use hanami_testkit::{ADMIN, ADMIN_PW, SEED_TEMPLATE, TestServer, mnist_files, sha256};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// How to start the server under test (the test admin, a temporary data directory).
pub fn launch() -> Launch {
    Launch::new(env!("CARGO_BIN_EXE_hanami"))
}

/// `launch()` with a configuration file of `toml`, written as `hanami.toml` into `dir`; also
/// returns the file's path.
pub fn launch_with_config(dir: &Path, toml: &str) -> (Launch, PathBuf) {
    let path = dir.join("hanami.toml");
    std::fs::write(&path, toml).unwrap();
    let launch = launch().args(&["--config", path.to_str().unwrap()]);
    (launch, path)
}

/// `launch` serving HTTPS with a new self-signed certificate for `localhost` and
/// `127.0.0.1`, written as PEM files into `dir`; also returns the certificate.
pub fn with_https(launch: Launch, dir: &Path) -> (Launch, rcgen::CertifiedKey) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    // As a careful operator keeps it (others reading it are warned about).
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let launch = launch.args(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    (launch, cert)
}

/// Reads `stream` until the server closes it, which must take about a second (the
/// `header_timeout = 1` of the server) and at most ten; returns how the read ended and what
/// came.
pub async fn read_until_closed_by_timeout(
    mut stream: impl tokio::io::AsyncRead + Unpin,
) -> (std::io::Result<usize>, Vec<u8>) {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncReadExt;

    let opened = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection");
    assert!(
        opened.elapsed() >= Duration::from_millis(800),
        "closed after {:?}, before the timeout",
        opened.elapsed()
    );
    (read, rest)
}

/// Starting the server under test, and API clients for it.
pub trait ServerExt {
    /// A server with default settings and the test admin.
    fn start() -> Self;

    /// A client without a token.
    fn client(&self) -> Client;

    /// A client logged in as the test admin.
    async fn admin(&self) -> Client {
        self.login(ADMIN, ADMIN_PW).await
    }

    /// A client logged in as the given user.
    async fn login(&self, id: &str, password: &str) -> Client {
        let mut client = self.client();
        let resp = client
            .post(
                "token",
                &serde_json::json!({"id": id, "password": password}),
            )
            .await;
        assert_eq!(resp.status, 200, "login of {id}: {}", resp.body);
        client.token = Some(resp.json()["token"].as_str().unwrap().to_owned());
        client
    }
}

impl ServerExt for TestServer {
    fn start() -> Self {
        launch().start()
    }

    fn client(&self) -> Client {
        Client::new(&self.url)
    }
}

/// An HTTP response, read completely.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// Content-Type header.
    pub content_type: String,
    /// Retry-After header, if any.
    pub retry_after: Option<String>,
    /// Connection header, if any.
    pub connection: Option<String>,
}

impl Resp {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts the status and returns self.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "body: {}", self.body);
        self
    }
}

/// A minimal API client (the SDK is tested separately).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Token sent in `X-Auth-Token`.
    pub token: Option<String>,
}

impl Client {
    /// A client for a base address.
    pub fn new(base: &str) -> Self {
        Self::with_http(base, reqwest::Client::new())
    }

    /// A client with a custom reqwest client (TLS settings).
    pub fn with_http(base: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            base: base.to_owned(),
            token: None,
        }
    }

    /// Sends a request to `/v1.0alpha/<path>`.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<String>) -> Resp {
        let mut request = self
            .http
            .request(method, format!("{}/v1.0alpha/{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Auth-Token", token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request failed");
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let connection = header("connection");
        Resp {
            status,
            body: response.text().await.unwrap(),
            content_type,
            retry_after,
            connection,
        }
    }

    /// GET with a query string (may be empty).
    pub async fn get(&self, path_and_query: &str) -> Resp {
        self.send(reqwest::Method::GET, path_and_query, None).await
    }

    /// DELETE with a query string.
    pub async fn delete(&self, path_and_query: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path_and_query, None)
            .await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body.to_string()))
            .await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PUT, path, Some(body.to_string()))
            .await
    }
}

/// Creates a project and assigns an existing user to it as a plain member.
pub async fn also_member(admin: &Client, user: &str, project: &str) {
    admin
        .post(
            "project",
            &serde_json::json!({"id": project, "name": "Another Project"}),
        )
        .await
        .expect(200);
    assign(admin, user, project, false).await;
}

/// Assigns a user to a project with role `member`.
async fn assign(admin: &Client, user: &str, project: &str, is_project_admin: bool) {
    admin
        .post(
            "user/project",
            &serde_json::json!({"id": user, "project_id": project, "role": "member",
                                "is_project_admin": is_project_admin}),
        )
        .await
        .expect(200);
}

/// Creates a project and a user assigned to it, and logs the user in.
pub async fn member(
    server: &TestServer,
    admin: &Client,
    user: &str,
    project: &str,
    is_project_admin: bool,
) -> Client {
    let _ = admin
        .post(
            "project",
            &serde_json::json!({"id": project, "name": "Some Project"}),
        )
        .await;
    admin
        .post(
            "user",
            &serde_json::json!({"id": user, "name": "Some User", "password": "password1",
                                "is_admin": false}),
        )
        .await
        .expect(200);
    assign(admin, user, project, is_project_admin).await;
    server.login(user, "password1").await
}

/// Writes `text` into a CSV file in `dir` and uploads it as dataset `name`; returns its uuid.
pub async fn upload_csv_text(
    client: &hanami_sdk::Client,
    dir: &Path,
    name: &str,
    text: &str,
) -> String {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, text).unwrap();
    client
        .upload_csv(name, &path)
        .await
        .unwrap_or_else(|e| panic!("upload {name}: {e}"))
        .uuid
}

/// Creates a cluster of the seed template through the SDK; returns its uuid.
pub async fn seed_cluster(client: &hanami_sdk::Client, name: &str) -> String {
    client
        .create_cluster(name, SEED_TEMPLATE)
        .await
        .unwrap_or_else(|e| panic!("create cluster {name}: {e}"))
        .uuid
}

/// Logs in through the SDK.
pub async fn sdk(server: &TestServer, user: &str, password: &str) -> hanami_sdk::Client {
    hanami_sdk::Client::login(&server.url, user, password)
        .await
        .unwrap_or_else(|e| panic!("SDK login of {user}: {e}"))
}

/// Runs `sql` with `params` on the database in `data_dir` from outside the server, as
/// another program (or an older version) would change it.
pub async fn change_database(data_dir: &Path, sql: &str, params: &[&str]) {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(data_dir.join("hanami.db"));
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let mut query = sqlx::query(sql);
    for param in params {
        query = query.bind(*param);
    }
    query
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

/// A learnable MNIST-like IDX pair (see [`hanami_testkit::pattern_mnist`]) with the noise
/// the cluster tests were tuned to.
pub fn pattern_mnist(dir: &Path, name: &str, count: u32) -> (PathBuf, PathBuf) {
    hanami_testkit::pattern_mnist(dir, name, count, 12345)
}

/// A raw websocket client connection to the test server.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a raw websocket to `path` (`/` for sessions) of the test server.
pub async fn open_socket(server: &TestServer, path: &str) -> Socket {
    let url = format!("{}{path}", server.url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Opens a raw websocket for sessions to the test server from the loopback address `from`
/// (another client network than 127.0.0.1 to the server).
pub async fn open_socket_from(server: &TestServer, from: [u8; 4]) -> Socket {
    let to: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind((std::net::Ipv4Addr::from(from), 0).into())
        .unwrap();
    let stream = tcp.connect(to).await.unwrap();
    let url = format!("{}/", server.url.replace("http://", "ws://"));
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    tokio_tungstenite::client_async(url, stream)
        .await
        .unwrap()
        .0
}

/// The next binary message, skipping others; `None` once the session is closed.
pub async fn next_bytes(socket: &mut Socket) -> Option<Vec<u8>> {
    loop {
        match futures_util::StreamExt::next(socket).await? {
            Ok(Message::Binary(b)) => return Some(b.to_vec()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Starts a session on `socket` (`target` is `cluster` or `file_upload`); the server's
/// JSON reply.
pub async fn init(socket: &mut Socket, token: &str, target: &str, uuid: &str) -> serde_json::Value {
    let text = json!({"token": token, "target": target, "uuid": uuid}).to_string();
    futures_util::SinkExt::send(socket, Message::text(text))
        .await
        .unwrap();
    serde_json::from_slice(&next_bytes(socket).await.expect("init reply")).unwrap()
}

/// Writes the header of a masked binary frame that announces `len` payload bytes, and no
/// payload: what the server sees first of a message of that size.
pub async fn announce_frame(socket: &mut Socket, len: u64) {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    write_raw(socket, &header).await;
}

/// Writes `bytes` to the connection under `socket` as they are (frames the websocket library
/// would not send).
pub async fn write_raw(socket: &mut Socket, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    match socket.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.unwrap(),
        _ => unreachable!("a plain connection"),
    }
}

/// The code and reason of the close frame that ends `socket`, skipping other messages;
/// panics when none comes within 10 s.
pub async fn close_frame(socket: &mut Socket) -> (u16, String) {
    loop {
        let next = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_util::StreamExt::next(socket),
        )
        .await;
        match next {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// A cluster of the seed template, switched to DIRECT mode; its uuid.
pub async fn direct_cluster(client: &hanami_sdk::Client, name: &str) -> String {
    let cluster = seed_cluster(client, name).await;
    client.set_direct_mode(&cluster, true).await.unwrap();
    cluster
}

/// A socket with a started direct-IO session on `cluster` (in DIRECT mode).
pub async fn direct_session(server: &TestServer, token: &str, cluster: &str) -> Socket {
    let mut socket = open_socket(server, "/").await;
    let reply = init(&mut socket, token, "cluster", cluster).await;
    assert_eq!(reply["success"], true, "{reply}");
    socket
}

/// Calls `attempt` every 50 ms until it gives `Ok`, for at most `limit`, and returns that
/// value; panics with the last `Err` after the limit. For what the server does shortly
/// after an answer (a slot given back, memory freed, an error-log entry written).
pub async fn eventually<T, F, Fut>(limit: std::time::Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(last) if std::time::Instant::now() > deadline => {
                panic!("not after {limit:?}: {last}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

/// How often the server, started with `HANAMI_PAUSE_AT=<point>=<ms>` (a debug build's pause
/// point), has paused at `point` so far.
pub fn pauses(server: &TestServer, point: &str) -> usize {
    server
        .logged()
        .matches(&format!("pausing at {point} (HANAMI_PAUSE_AT)"))
        .count()
}

/// Waits (10 s at most) until the server has paused at `point` at least `times` times.
pub async fn until_paused(server: &TestServer, point: &str, times: usize) {
    eventually(std::time::Duration::from_secs(10), || async {
        match pauses(server, point) {
            n if n >= times => Ok(()),
            n => Err(format!("paused {n} times at {point}")),
        }
    })
    .await
}

/// Waits (up to `limit`) until the server has logged `line`, without blocking the runtime
/// (`TestServer::wait_until_logged` waits 10 s at most, on the thread).
pub async fn until_logged(server: &TestServer, line: &str, limit: std::time::Duration) {
    eventually(limit, || async {
        match server.logged().contains(line) {
            true => Ok(()),
            false => Err(format!("'{line}' not in the log")),
        }
    })
    .await
}

/// Another program's lock on the database of the data directory `dir`: a connection of its
/// own in an exclusive transaction, until [`DatabaseLock::release`].
pub struct DatabaseLock(sqlx::SqliteConnection);

impl DatabaseLock {
    /// Takes the lock (the database must exist).
    pub async fn take(dir: &Path) -> Self {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.join("hanami.db").display());
        let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .unwrap();
        Self(holder)
    }

    /// Gives the lock back.
    pub async fn release(mut self) {
        use sqlx::Connection;
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
        self.0.close().await.unwrap();
    }
}
