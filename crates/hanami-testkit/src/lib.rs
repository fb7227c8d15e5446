//! Integration-test support shared by the Hanami-rs crates (a dev-dependency only): the
//! real `hanami` server binary on a free loopback port with a temporary data directory
//! and the test admin, the seed template of the documentation, generated MNIST-like IDX
//! data, file hashes, and relays that lose chosen answers or hold back chosen requests.
//!
//! The server binary is a parameter: a test crate that builds it passes
//! `env!("CARGO_BIN_EXE_hanami")`, others find or build it themselves.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The admin every test server starts with.
pub const ADMIN: &str = "asdf";
/// Its password.
pub const ADMIN_PW: &str = "asdfasdf";
/// Its display name.
pub const ADMIN_NAME: &str = "the admin";

/// The environment variables that create the initial admin.
const ADMIN_ENV: [&str; 3] = [
    "HANAMI_ADMIN_USER_ID",
    "HANAMI_ADMIN_USER_NAME",
    "HANAMI_ADMIN_PASSWORD",
];

/// The environment variables that create the test admin, for a server started without
/// [`Launch`] (with `Command::envs`).
pub fn admin_env() -> impl Iterator<Item = (&'static str, &'static str)> {
    ADMIN_ENV.into_iter().zip([ADMIN, ADMIN_NAME, ADMIN_PW])
}

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a server: binary, extra arguments, environment and data directory.
pub struct Launch {
    binary: PathBuf,
    /// `--listen`: `127.0.0.1:0` unless [`Launch::listen`] says otherwise.
    listen: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl Launch {
    /// A server from `binary` with the test admin in its environment and a fresh temporary
    /// data directory.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            listen: "127.0.0.1:0".to_owned(),
            args: Vec::new(),
            env: admin_env()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            data_dir: None,
        }
    }

    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Listens on `address` (`IP:PORT`) instead of a free loopback port.
    pub fn listen(mut self, address: &str) -> Self {
        address.clone_into(&mut self.listen);
        self
    }

    /// Uses the given data directory instead of a temporary one (it is kept afterwards).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Sets a variable of the server's environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Makes a debug build of the server wait `ms` milliseconds each time it reaches the
    /// pause point `point` (`HANAMI_PAUSE_AT`), so that a test can act in that moment.
    pub fn pause_at(self, point: &str, ms: u64) -> Self {
        self.env("HANAMI_PAUSE_AT", &format!("{point}={ms}"))
    }

    /// Starts without the admin variables.
    pub fn without_admin_env(mut self) -> Self {
        self.env
            .retain(|(key, _)| !ADMIN_ENV.contains(&key.as_str()));
        self
    }

    /// Starts and waits until the server prints its address; panics with its standard
    /// error if it does not.
    pub fn start(self) -> TestServer {
        match self.try_start() {
            Ok(server) => server,
            Err(stderr) => panic!("server did not start:\n{stderr}"),
        }
    }

    /// Starts and waits until the server prints its address (its first line of standard
    /// output; a free loopback port unless [`Launch::listen`] says otherwise); on failure
    /// returns what the server wrote to standard error. Standard error is forwarded to the
    /// test's, each line prefixed `[hanami]`.
    pub fn try_start(self) -> Result<TestServer, String> {
        let (tmp, data_dir) = match self.data_dir.clone() {
            Some(dir) => (None, dir),
            None => {
                let tmp = tempfile::tempdir().expect("temporary directory");
                let dir = tmp.path().join("data");
                (Some(tmp), dir)
            }
        };
        let mut child = self.spawn(&data_dir);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let logged = Arc::new(Mutex::new(String::new()));
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn({
            let logged = logged.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[hanami] {line}");
                    let mut text = logged.lock().unwrap_or_else(|e| e.into_inner());
                    text.push_str(&line);
                    text.push('\n');
                }
                let _ = err_tx.send(());
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(url)) => Ok(TestServer {
                child: Some(child),
                url,
                data_dir,
                binary: self.binary,
                tmp,
                logged,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = err_rx.recv_timeout(Duration::from_secs(5));
                Err(std::mem::take(
                    &mut *logged.lock().unwrap_or_else(|e| e.into_inner()),
                ))
            }
        }
    }
}

impl Launch {
    /// Starts the server on the given data directory and kills it (SIGKILL, as a crash
    /// would) as soon as a line of its standard error contains `needle`. Returns whether
    /// one did within 30 s (the server is killed then in any case).
    pub fn kill_when_logged(self, data_dir: &Path, needle: &str) -> bool {
        let mut child = self.spawn(data_dir);
        let stderr = child.stderr.take().expect("piped stderr");
        let needle = needle.to_owned();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
            let seen = lines.any(|line| {
                eprintln!("[hanami] {line}");
                line.contains(&needle)
            });
            let _ = tx.send(seen);
            for _ in lines {}
        });
        let seen = rx.recv_timeout(START_TIMEOUT).unwrap_or(false);
        let _ = child.kill();
        let _ = child.wait();
        seen
    }

    /// Spawns the server on `data_dir` with piped standard output and error.
    fn spawn(&self, data_dir: &Path) -> Child {
        let mut command = Command::new(&self.binary);
        command
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in ADMIN_ENV {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()))
    }
}

/// A running server process; killed when dropped.
pub struct TestServer {
    child: Option<Child>,
    /// Base address, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// Data directory (kept for restarts).
    pub data_dir: PathBuf,
    binary: PathBuf,
    tmp: Option<tempfile::TempDir>,
    /// What the server wrote to standard error so far.
    logged: Arc<Mutex<String>>,
}

impl TestServer {
    /// What the server has written to standard error so far (`RUST_LOG` is `warn` unless
    /// [`Launch::env`] sets it).
    pub fn logged(&self) -> String {
        self.logged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the server has logged every one of `lines` (its log is read on a thread of
    /// its own, so a line can come a moment after what caused it); panics with the log after
    /// 10 s.
    pub fn wait_until_logged(&self, lines: &[&str]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !lines.iter().all(|line| self.logged().contains(line)) {
            assert!(
                std::time::Instant::now() < deadline,
                "{lines:?} not in the log:\n{}",
                self.logged()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many files (sockets included) the server process has open.
    pub fn open_files(&self) -> usize {
        let pid = self.child.as_ref().expect("the server runs").id();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the server's open files")
            .count()
    }

    /// How many files under `dir` the server process has open.
    pub fn files_open_under(&self, dir: &Path) -> usize {
        let pid = self.child.as_ref().expect("the server runs").id();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the server's open files")
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// The most memory the server process has held so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> u64 {
        self.memory_status("VmHWM:")
    }

    /// The memory the server process holds now (`VmRSS`), in bytes.
    pub fn memory(&self) -> u64 {
        self.memory_status("VmRSS:")
    }

    /// A memory line of `/proc/<pid>/status`, in bytes.
    fn memory_status(&self, key: &str) -> u64 {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("a {key} line"));
        kib << 10
    }

    /// Stops the server with SIGTERM and waits for it (5 s at most, then it is killed);
    /// returns whether it exited cleanly. Stopping a stopped server returns `true`.
    pub fn stop(&mut self) -> bool {
        self.stop_within(Duration::from_secs(5))
    }

    /// [`TestServer::stop`], waiting up to `limit` before the server is killed.
    pub fn stop_within(&mut self, limit: Duration) -> bool {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        self.wait_for_exit(limit)
    }

    /// Waits up to `limit` for a server that was asked to stop ([`TestServer::signal_stop`])
    /// to exit, without a signal of its own (a second SIGTERM makes the server stop at once,
    /// not cleanly); kills it after `limit`. Returns whether it exited cleanly; `true` for a
    /// stopped server.
    pub fn wait_for_exit(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        exit_within(&mut child, limit).is_some_and(|status| status.success())
    }

    /// Stops this server (asserting a clean shutdown) and starts the same binary with the
    /// test admin and no extra arguments on the same data directory.
    pub fn restart(self) -> TestServer {
        self.restart_with(|launch| launch)
    }

    /// [`TestServer::restart`], with `configure` applied to the new server's launch (which
    /// has the test admin and no other arguments or variables).
    pub fn restart_with(mut self, configure: impl FnOnce(Launch) -> Launch) -> TestServer {
        assert!(self.stop(), "server did not shut down cleanly");
        let launch = configure(Launch::new(&self.binary));
        self.succeeded_by(launch)
    }

    /// Asks the server to stop (SIGTERM) without waiting for it.
    pub fn signal_stop(&self) {
        self.signal("TERM");
    }

    /// Sends the server the signal `name` (`STOP`, `CONT`, ...) without waiting for it.
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("the server runs");
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status();
    }

    /// Waits (30 s at most) until this server, started with `HANAMI_CRASH_AT=<point>` (a
    /// debug build's crash point), has crashed there, and starts the same binary on the same
    /// data directory with the test admin and no other arguments or variables.
    pub fn crashed_at(self, point: &str) -> TestServer {
        self.crashed_at_with(point, |launch| launch)
    }

    /// [`TestServer::crashed_at`], with `configure` applied to the new server's launch.
    pub fn crashed_at_with(
        mut self,
        point: &str,
        configure: impl FnOnce(Launch) -> Launch,
    ) -> TestServer {
        let mut child = self.child.take().expect("the server runs");
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the server") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not crash at {point}:\n{}", self.logged());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "the server exited cleanly: {status}");
        self.wait_until_logged(&[&format!("crashing at {point} (HANAMI_CRASH_AT)")]);
        let launch = configure(Launch::new(&self.binary));
        self.succeeded_by(launch)
    }

    /// Kills this server without warning (SIGKILL), leaves it down for `down_for`, and
    /// starts the same binary on the same data directory and address, with the test admin
    /// and no other arguments or variables: clients that knew the killed server reach the
    /// new one. (Another process could take the port while it is free; the system hands
    /// out free ports at random, so that is unlikely within seconds.)
    pub fn crash_and_restart_at_same_address(mut self, down_for: Duration) -> TestServer {
        self.kill();
        std::thread::sleep(down_for);
        let launch = Launch::new(&self.binary).listen(self.url.trim_start_matches("http://"));
        self.succeeded_by(launch)
    }

    /// Kills this server without warning (SIGKILL, as a crash or a power cut would stop it)
    /// and starts the same binary on the same data directory.
    pub fn crash_and_restart(mut self) -> TestServer {
        self.kill();
        let launch = Launch::new(&self.binary);
        self.succeeded_by(launch)
    }

    /// Kills the process at once (SIGKILL), if it still runs.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts `launch` on this (stopped) server's data directory, which the new server
    /// keeps, temporary directory included.
    fn succeeded_by(mut self, launch: Launch) -> TestServer {
        let mut next = launch.data_dir(&self.data_dir).start();
        next.tmp = self.tmp.take();
        next
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits up to `limit` for `child` to exit and returns how it ended; `None` where it had not
/// ended by then (it is killed).
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The template of the documentation: 784 inputs `picture`, 10 outputs `label`.
pub use hanami_engine::template::DOCUMENTATION_TEMPLATE as SEED_TEMPLATE;

/// Pixels of one 28×28 image.
const PIXELS: usize = 28 * 28;

/// IDX image and label files of `count` 28×28 images with arbitrary pixels; labels cycle
/// through 0..=9. Written to `dir` as `mnist-<count>-images-idx3-ubyte` and
/// `mnist-<count>-labels-idx1-ubyte`.
pub fn mnist_files(dir: &Path, count: u32) -> (PathBuf, PathBuf) {
    let pixels: Vec<u8> = (0..count as usize * PIXELS)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
    write_idx(dir, &format!("mnist-{count}"), &pixels, &labels)
}

/// A learnable MNIST-like IDX pair: image `i` has label `i % 10` and lights two rows of
/// pixels that belong to its class, plus ten noise pixels drawn from `noise_seed`. Written
/// to `dir` as `<name>-images-idx3-ubyte` and `<name>-labels-idx1-ubyte`.
pub fn pattern_mnist(dir: &Path, name: &str, count: u32, noise_seed: u32) -> (PathBuf, PathBuf) {
    let mut pixels = Vec::with_capacity(count as usize * PIXELS);
    let mut labels = Vec::with_capacity(count as usize);
    let mut noise = noise_seed;
    for i in 0..count {
        let class = (i % 10) as usize;
        let mut image = [0u8; PIXELS];
        for row in [class * 2 + 4, class * 2 + 5] {
            image[row * 28 + 4..row * 28 + 24].fill(200);
        }
        for _ in 0..10 {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
            image[(noise >> 8) as usize % PIXELS] = 120;
        }
        pixels.extend_from_slice(&image);
        labels.push(class as u8);
    }
    write_idx(dir, name, &pixels, &labels)
}

/// Writes 28×28 images and their labels as an IDX pair `<name>-images-idx3-ubyte`,
/// `<name>-labels-idx1-ubyte` in `dir`.
fn write_idx(dir: &Path, name: &str, pixels: &[u8], labels: &[u8]) -> (PathBuf, PathBuf) {
    assert_eq!(
        pixels.len(),
        labels.len() * PIXELS,
        "pixels for every label"
    );
    let count = u32::try_from(labels.len()).expect("IDX count");
    let mut images = Vec::with_capacity(16 + pixels.len());
    for n in [0x0803u32, count, 28, 28] {
        images.extend_from_slice(&n.to_be_bytes());
    }
    images.extend_from_slice(pixels);
    let mut label_file = Vec::with_capacity(8 + labels.len());
    for n in [0x0801u32, count] {
        label_file.extend_from_slice(&n.to_be_bytes());
    }
    label_file.extend_from_slice(labels);
    let image_path = dir.join(format!("{name}-images-idx3-ubyte"));
    let label_path = dir.join(format!("{name}-labels-idx1-ubyte"));
    std::fs::write(&image_path, images)
        .unwrap_or_else(|e| panic!("write {}: {e}", image_path.display()));
    std::fs::write(&label_path, label_file)
        .unwrap_or_else(|e| panic!("write {}: {e}", label_path.display()));
    (image_path, label_path)
}

/// Flips the bits `mask` (not 0) of the byte at offset `at` of the file at `path`, as bit rot
/// or another program would change it (the server's read-only dataset files are made
/// writable for it first); flipping them again puts the byte back.
pub fn flip_byte(path: &Path, at: u64, mask: u8) {
    use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
    assert_ne!(mask, 0, "a mask that changes nothing");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ mask], at).unwrap();
}

/// Makes a named pipe at `path` (for tests of files that must be regular ones: opening a
/// pipe without a writer waits for ever).
pub fn named_pipe(path: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// A file that another user of this machine finds but may not read (a CSV file, mode 000,
/// in a folder of `/tmp` that others may enter), and a copy of `program` there that they
/// may run: the folder (removed when dropped), the file and a command for the copy that
/// runs as that user (root reads any file, so a test run by root runs it as `nobody`).
pub fn unreadable_file_for(program: &Path) -> (tempfile::TempDir, PathBuf, Command) {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let shared = tempfile::Builder::new()
        .tempdir_in("/tmp")
        .expect("a folder in /tmp");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755))
        .expect("folder mode");
    let secret = shared.path().join("secret.csv");
    std::fs::write(&secret, "a,b\n1,2\n").expect("write the file");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("file mode");
    let copy = shared
        .path()
        .join(program.file_name().expect("a program file"));
    std::fs::copy(program, &copy).expect("copy the program");
    let mut command = Command::new(&copy);
    // SAFETY: `geteuid` only reads the process's user id.
    if unsafe { libc::geteuid() } == 0 {
        command.uid(65534).gid(65534);
    }
    (shared, secret, command)
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let content = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    sha2::Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A TCP proxy on a free loopback port in front of a server that passes every connection
/// through both ways, except that the answer to a request starting with its prefix never
/// arrives: the request reaches the server, and when the server's answer begins the proxy
/// closes the connection (as a connection that broke while the answer was on its way).
pub struct AnswerDroppingProxy {
    /// Base address of the proxy, e.g. `http://127.0.0.1:40124`.
    pub url: String,
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AnswerDroppingProxy {
    /// Starts a proxy in front of the server at `server_url` (`http://host:port`) that
    /// drops the answers to requests starting with `dropped_request`.
    pub fn start(server_url: &str, dropped_request: &'static [u8]) -> Self {
        let dropped = std::sync::Arc::<std::sync::atomic::AtomicUsize>::default();
        let count = dropped.clone();
        let url = relay_connections(server_url, move |client, upstream| {
            relay(client, upstream, dropped_request, count.clone());
        });
        Self { url, dropped }
    }

    /// How many answers the proxy has dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A relay on a free loopback port in front of the server at `server_url`
/// (`http://host:port`) that holds back the first request containing `hold`, and all after
/// it on its connection: the server never sees it, so it never answers (its own side of
/// the connection is closed, so that it can stop without waiting). Returns the relay's
/// base address, and a receiver that hears when a request was held.
pub fn holding_relay(server_url: &str, hold: &'static str) -> (String, mpsc::Receiver<()>) {
    use std::io::{Read, Write};
    let (held, holding) = mpsc::channel();
    let held = std::sync::Mutex::new(held);
    let url = relay_connections(server_url, move |mut client, mut upstream| {
        let (Ok(mut client_reader), Ok(mut upstream_reader)) =
            (client.try_clone(), upstream.try_clone())
        else {
            return;
        };
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut upstream_reader, &mut client);
        });
        let mut buffer = [0u8; 65536];
        while let Ok(n @ 1..) = client_reader.read(&mut buffer) {
            if String::from_utf8_lossy(&buffer[..n]).contains(hold) {
                let _ = upstream.shutdown(std::net::Shutdown::Both);
                let _ = held.lock().map(|held| held.send(()));
                std::thread::sleep(Duration::from_secs(600));
                return;
            }
            if upstream.write_all(&buffer[..n]).is_err() {
                return;
            }
        }
    });
    (url, holding)
}

/// Accepts connections on a free loopback port and hands each, with a new connection to
/// the server at `server_url`, to `serve` on a thread of its own. Returns the base address.
fn relay_connections(
    server_url: &str,
    serve: impl Fn(std::net::TcpStream, std::net::TcpStream) + Send + Sync + 'static,
) -> String {
    let server = server_url.trim_start_matches("http://").to_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the relay");
    let url = format!("http://{}", listener.local_addr().expect("relay address"));
    let serve = std::sync::Arc::new(serve);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = std::net::TcpStream::connect(&server) else {
                continue;
            };
            let serve = serve.clone();
            std::thread::spawn(move || serve(client, upstream));
        }
    });
    url
}

/// Copies one connection both ways until either side closes; once the client has sent a
/// read that starts with `dropped_request`, the server's next bytes close the connection
/// instead of reaching the client.
fn relay(
    client: std::net::TcpStream,
    upstream: std::net::TcpStream,
    dropped_request: &[u8],
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dropping = std::sync::Arc::new(AtomicBool::new(false));
    let (Ok(mut to_client), Ok(mut from_upstream)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let answers = {
        let dropping = dropping.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            while let Ok(read @ 1..) = from_upstream.read(&mut buffer) {
                if dropping.load(Ordering::SeqCst) {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    // Both ways: this also ends the other thread's read of the client.
                    let _ = to_client.shutdown(Shutdown::Both);
                    return;
                }
                if to_client.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            let _ = to_client.shutdown(Shutdown::Write);
        })
    };
    let (mut from_client, mut to_upstream) = (client, upstream);
    let mut buffer = [0u8; 65536];
    while let Ok(read @ 1..) = from_client.read(&mut buffer) {
        if buffer[..read].starts_with(dropped_request) {
            // Before the request goes on: every byte the server sends from now on
            // answers it (a client sends its next request only after the last answer).
            dropping.store(true, Ordering::SeqCst);
        }
        if to_upstream.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to_upstream.shutdown(Shutdown::Write);
    let _ = answers.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated files must stay byte for byte what they were when the learning tests
    /// of the server and the CLI were tuned to them.
    #[test]
    fn generated_idx_files_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = |(images, labels): (PathBuf, PathBuf)| (sha256(&images), sha256(&labels));
        assert_eq!(
            hashes(mnist_files(dir.path(), 300)),
            (
                "40c2e9da2fb2016ed89be1a39bfb8d546430a3b1767fab914d42d267a8378777".to_owned(),
                "eb1220cd230f7ec8f979ebc81ba2ba485eccfa12c8b459a0d3651986e3efad8d".to_owned()
            )
        );
        assert_eq!(
            hashes(pattern_mnist(dir.path(), "server", 500, 12345)),
            (
                "7e408abe1b1e0d9d398e2ba97caeab307c7e3c4a7c8b67c5171cb8d955a293cd".to_owned(),
                "2bed0e3790b2dac87cb49ca6718054c88d630c4060f2671b4e1557c9e0ca6621".to_owned()
            )
        );
        assert_eq!(
            hashes(pattern_mnist(dir.path(), "cli", 200, 12345 ^ 200)),
            (
                "0eb858922b4613207ca32e835e0d0527e2e5c7ba88ee84b6ca37f1e0dd744fb1".to_owned(),
                "5da3ed91915be22a03984a54478498076ecabc4f2f8577bf1ea337a4d14dc85f".to_owned()
            )
        );
    }

    #[test]
    fn a_server_that_exits_without_an_address_did_not_start() {
        let failed = Launch::new("false").try_start();
        assert!(failed.is_err(), "`false` printed no address");
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256(&path),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
