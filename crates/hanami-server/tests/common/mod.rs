//! Test support: the real `hanami` binary on a free loopback port with a temporary data
//! directory, and a small HTTP client for it.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The admin every test server starts with.
pub const ADMIN: &str = "asdf";
/// Its password.
pub const ADMIN_PW: &str = "asdfasdf";

/// A running server process.
pub struct TestServer {
    child: Option<Child>,
    /// Base address, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// Data directory (kept for restarts).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// How to start a server.
pub struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            env: vec![
                ("HANAMI_ADMIN_USER_ID".into(), ADMIN.into()),
                ("HANAMI_ADMIN_USER_NAME".into(), "the admin".into()),
                ("HANAMI_ADMIN_PASSWORD".into(), ADMIN_PW.into()),
            ],
            data_dir: None,
        }
    }
}

impl Launch {
    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Uses an existing data directory.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Starts without the admin variables.
    pub fn without_admin_env(mut self) -> Self {
        self.env.clear();
        self
    }

    /// Starts and waits until the server prints its address.
    pub fn start(self) -> TestServer {
        match self.try_start() {
            Ok(server) => server,
            Err(stderr) => panic!("server did not start:\n{stderr}"),
        }
    }

    /// Starts; on failure returns what the server wrote to stderr.
    pub fn try_start(self) -> Result<TestServer, String> {
        let (tmp, data_dir) = match self.data_dir {
            Some(dir) => (None, dir),
            None => {
                let tmp = tempfile::tempdir().unwrap();
                let dir = tmp.path().join("data");
                (Some(tmp), dir)
            }
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_hanami"));
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.args)
            .env_remove("HANAMI_ADMIN_USER_ID")
            .env_remove("HANAMI_ADMIN_USER_NAME")
            .env_remove("HANAMI_ADMIN_PASSWORD")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn hanami");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {}
        });
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[hanami] {line}");
                text.push_str(&line);
                text.push('\n');
            }
            let _ = err_tx.send(text);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(url)) => Ok(TestServer {
                child: Some(child),
                url,
                data_dir,
                _tmp: tmp,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(err_rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default())
            }
        }
    }
}

impl TestServer {
    /// A server with default settings and the test admin.
    pub fn start() -> Self {
        Launch::default().start()
    }

    /// Stops the server with SIGTERM and waits for it; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Stops this server and starts a new one on the same data directory.
    pub fn restart(mut self) -> TestServer {
        assert!(self.stop(), "server did not shut down cleanly");
        let tmp = self._tmp.take();
        let mut next = Launch::default().data_dir(&self.data_dir).start();
        next._tmp = tmp;
        next
    }

    /// A client without a token.
    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// A client logged in as the test admin.
    pub async fn admin(&self) -> Client {
        self.login(ADMIN, ADMIN_PW).await
    }

    /// A client logged in as the given user.
    pub async fn login(&self, id: &str, password: &str) -> Client {
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

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Resp {
            status,
            body: response.text().await.unwrap(),
            content_type,
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
    admin
        .post(
            "user/project",
            &serde_json::json!({"id": user, "project_id": project, "role": "member",
                                "is_project_admin": is_project_admin}),
        )
        .await
        .expect(200);
    server.login(user, "password1").await
}

/// Logs in through the SDK.
pub async fn sdk(server: &TestServer, user: &str, password: &str) -> hanami_sdk::Client {
    hanami_sdk::Client::login(&server.url, user, password)
        .await
        .unwrap_or_else(|e| panic!("SDK login of {user}: {e}"))
}

/// IDX image and label files of `count` 28×28 images; labels cycle through 0..=9.
pub fn mnist_files(dir: &Path, count: u32) -> (PathBuf, PathBuf) {
    let mut images = Vec::with_capacity(16 + count as usize * 784);
    images.extend_from_slice(&0x0803u32.to_be_bytes());
    images.extend_from_slice(&count.to_be_bytes());
    images.extend_from_slice(&28u32.to_be_bytes());
    images.extend_from_slice(&28u32.to_be_bytes());
    for i in 0..count as usize * 784 {
        images.push((i * 7 % 251) as u8);
    }
    let mut labels = Vec::with_capacity(8 + count as usize);
    labels.extend_from_slice(&0x0801u32.to_be_bytes());
    labels.extend_from_slice(&count.to_be_bytes());
    labels.extend((0..count).map(|i| (i % 10) as u8));
    let image_path = dir.join(format!("images-{count}"));
    let label_path = dir.join(format!("labels-{count}"));
    std::fs::write(&image_path, images).unwrap();
    std::fs::write(&label_path, labels).unwrap();
    (image_path, label_path)
}

/// SHA-256 of a file, hex.
pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The template of the documentation: 784 inputs `picture`, 10 outputs `label`.
pub const SEED_TEMPLATE: &str = "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n    \
    refractory_time: 1\n    max_connection_distance: 1\n    enable_reduction: false\nhexagons:\n    \
    1,1,1\n    2,1,1\n    3,1,1\n\ninputs:\n    picture:\n        target: 1,1,1\n        \
    number_of_inputs: 784\n\noutputs:\n    label:\n        target: 3,1,1\n        \
    number_of_outputs: 10\n";

/// A learnable MNIST-like IDX pair: image `i` has label `i % 10` and lights two rows of
/// pixels that belong to its class, plus a few noise pixels.
pub fn pattern_mnist(dir: &Path, name: &str, count: u32) -> (PathBuf, PathBuf) {
    let mut images = Vec::with_capacity(16 + count as usize * 784);
    for n in [0x0803u32, count, 28, 28] {
        images.extend_from_slice(&n.to_be_bytes());
    }
    let mut labels = Vec::with_capacity(8 + count as usize);
    labels.extend_from_slice(&0x0801u32.to_be_bytes());
    labels.extend_from_slice(&count.to_be_bytes());
    let mut noise = 12345u32;
    for i in 0..count {
        let class = (i % 10) as usize;
        let mut image = [0u8; 784];
        for row in [class * 2 + 4, class * 2 + 5] {
            for col in 4..24 {
                image[row * 28 + col] = 200;
            }
        }
        for _ in 0..10 {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
            image[(noise >> 8) as usize % 784] = 120;
        }
        images.extend_from_slice(&image);
        labels.push(class as u8);
    }
    let image_path = dir.join(format!("{name}-images"));
    let label_path = dir.join(format!("{name}-labels"));
    std::fs::write(&image_path, images).unwrap();
    std::fs::write(&label_path, labels).unwrap();
    (image_path, label_path)
}
