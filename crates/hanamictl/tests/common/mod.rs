//! Test support: the real `hanami` server (started through `hanami-testkit`) with a
//! temporary directory for the test's files, the `hanamictl` binary run against it, parsers
//! for its tables, and generated MNIST-like data.
//!
//! The server binary is not a target of this crate: it is `$HANAMI_BIN` if set, otherwise
//! `hanami` next to the `hanamictl` binary, built once per test binary with
//! `cargo build -p hanami-server --bin hanami` (a no-op when it is fresh).
#![allow(dead_code)] // each test file uses a different part of this module

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[allow(unused_imports)] // as dead_code above: not every test file uses every name
pub use hanami_testkit::{ADMIN, ADMIN_PW, SEED_TEMPLATE};
use hanami_testkit::{Launch, TestServer};
use serde_json::Value;

/// The environment variables the CLI reads; removed from every child unless set on purpose.
const CLI_ENV: &[&str] = &[
    "HANAMI_ADDRESS",
    "HANAMI_USER",
    "HANAMI_PW",
    "HANAMI_PROJECT",
    "HANAMI_INSECURE",
    "HANAMI_CA_CERT",
    "HANAMI_ANSWER_TIMEOUT",
];

/// Path of the CLI under test.
pub fn hanamictl() -> &'static str {
    env!("CARGO_BIN_EXE_hanamictl")
}

/// Path of the server binary (built on first use).
pub fn server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("HANAMI_BIN") {
            return PathBuf::from(bin);
        }
        let profile_dir = Path::new(hanamictl()).parent().expect("binary directory");
        let target_dir = profile_dir.parent().expect("target directory");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let bin = profile_dir.join(format!("hanami{}", std::env::consts::EXE_SUFFIX));
        if !stale(&bin, &workspace) {
            return bin;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(&workspace)
            .args(["build", "-p", "hanami-server", "--bin", "hanami"])
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build for the server");
        assert!(status.success(), "building the hanami server failed");
        assert!(bin.exists(), "{} is missing", bin.display());
        bin
    })
}

/// Whether the server binary is missing or older than a source file of the workspace (any
/// crate but this one and the test kit, and the root manifest and lock file). `cargo test --workspace` has
/// always just built it; a plain `cargo test -p hanamictl` may find it missing or old.
fn stale(bin: &Path, workspace: &Path) -> bool {
    fn newer(path: &Path, than: std::time::SystemTime) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        if meta.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "hanamictl" || n == "hanami-testkit" || n == "target")
            {
                return false;
            }
            let Ok(entries) = std::fs::read_dir(path) else {
                return false;
            };
            entries.flatten().any(|e| newer(&e.path(), than))
        } else {
            meta.modified().is_ok_and(|m| m > than)
        }
    }
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return true;
    };
    ["crates", "Cargo.toml", "Cargo.lock"]
        .iter()
        .any(|p| newer(&workspace.join(p), built))
}

/// A running server (see [`TestServer`]) and a temporary directory for the test's files.
pub struct Server {
    server: TestServer,
    /// Temporary directory: data directory and files made by the test.
    pub dir: tempfile::TempDir,
}

impl Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Server {
    /// A server with default settings and the test admin.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line arguments.
    pub fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Launch::new(server_binary())
            .args(args)
            .data_dir(&dir.path().join("data"))
            .start();
        Server { server, dir }
    }

    /// Kills the server, leaves it down for `down_for` and starts it again on the same
    /// data directory and address.
    pub fn crash_and_restart_at_same_address(self, down_for: Duration) -> Self {
        Server {
            server: self.server.crash_and_restart_at_same_address(down_for),
            dir: self.dir,
        }
    }

    /// Runs `hanamictl` as the admin.
    pub fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_as(ADMIN, ADMIN_PW, args)
    }

    /// Runs `hanamictl` as a given user.
    pub fn ctl_as(&self, user: &str, password: &str, args: &[&str]) -> Run {
        ctl_env(&self.env(user, password), args)
    }

    /// The command that runs `hanamictl` as the admin, to start it in the background.
    pub fn command(&self, args: &[&str]) -> Command {
        command(&self.env(ADMIN, ADMIN_PW), args)
    }

    /// Switches a cluster to DIRECT mode (`true`, which holds its task queue) or back to
    /// TASK mode, through the SDK (the CLI has no command for it).
    pub fn set_direct_mode(&self, cluster: &str, direct: bool) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            hanami_sdk::Client::login(&self.url, ADMIN, ADMIN_PW)
                .await
                .unwrap()
                .set_direct_mode(cluster, direct)
                .await
                .unwrap();
        });
    }

    /// The CLI environment of a user of this server.
    fn env<'a>(&'a self, user: &'a str, password: &'a str) -> [(&'a str, &'a str); 3] {
        [
            ("HANAMI_ADDRESS", &self.url),
            ("HANAMI_USER", user),
            ("HANAMI_PW", password),
        ]
    }

    /// A file in the test's temporary directory.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// The seed template as a file.
    pub fn template(&self) -> String {
        path_str(&self.write("cluster_template", SEED_TEMPLATE))
    }

    /// Uploads a learnable MNIST-like dataset of `count` rows (files named after `name`)
    /// through `dataset create mnist`; returns its uuid.
    pub fn mnist_dataset(&self, name: &str, count: u32) -> String {
        let (images, labels) = pattern_mnist(self.dir.path(), name, count);
        self.ctl(&[
            "dataset", "create", "mnist", "-j", "-i", &images, "-l", &labels, name,
        ])
        .ok()
        .uuid()
    }

    /// Creates a cluster of the seed template through `cluster create`; returns its uuid.
    pub fn seed_cluster(&self, name: &str) -> String {
        self.ctl(&["cluster", "create", "-j", "-t", &self.template(), name])
            .ok()
            .uuid()
    }

    /// Polls `task get -j` until the task is `finished`; panics on `aborted` or timeout.
    pub fn wait_finished(&self, cluster: &str, task: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let task_json = self
                .ctl(&["task", "get", "-j", "-c", cluster, task])
                .ok()
                .json();
            match task_json["state"].as_str() {
                Some("finished") => return task_json,
                Some("queued" | "active") => {}
                other => panic!("task {task} ended {other:?}: {task_json}"),
            }
            assert!(
                Instant::now() < deadline,
                "task {task} did not finish: {task_json}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A path as `&str`-able text.
pub fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_owned()
}

/// Prepares a `hanamictl` command with exactly the given CLI environment, and the signals
/// the tests send at their defaults (also where the tests run with them ignored: a shell's
/// background job ignores SIGINT, and `hanamictl` keeps what it inherits ignored).
pub fn command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(hanamictl());
    // SAFETY: only `signal`, which is async-signal-safe, runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            for signal in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    for name in CLI_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).args(args);
    command
}

/// Starts a prepared `hanamictl` command in the background, with no standard input and both
/// outputs piped (for `wait_with_output` or [`interrupt`]).
pub fn spawn(mut command: impl std::borrow::BorrowMut<Command>) -> std::process::Child {
    command
        .borrow_mut()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hanamictl")
}

/// Sends `signal` to a child process.
pub fn send_signal(child: &std::process::Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to a child process of this test.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Interrupts a `hanamictl` (SIGINT, as Ctrl-C would), which must end with status 130;
/// returns its standard error.
#[track_caller]
pub fn interrupt(child: std::process::Child) -> String {
    send_signal(&child, libc::SIGINT);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    stderr
}

/// Runs `hanamictl` with exactly the given CLI environment and no standard input.
pub fn ctl_env(env: &[(&str, &str)], args: &[&str]) -> Run {
    let output = command(env, args)
        .stdin(Stdio::null())
        .output()
        .expect("run hanamictl");
    Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// The result of one `hanamictl` run.
#[derive(Debug)]
pub struct Run {
    /// The arguments (for messages).
    pub args: Vec<String>,
    /// Exit status.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts exit status 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "hanamictl {:?} failed:\nstdout: {}\nstderr: {}",
            self.args, self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit status 1 and nothing on standard output.
    #[track_caller]
    pub fn fails(self) -> Self {
        assert_eq!(
            self.code, 1,
            "hanamictl {:?} should fail:\nstdout: {}\nstderr: {}",
            self.args, self.stdout, self.stderr
        );
        assert_eq!(
            self.stdout, "",
            "hanamictl {:?}: output on failure",
            self.args
        );
        self
    }

    /// Asserts a failure with an HTTP status line `status <code>: err ...` on stderr.
    #[track_caller]
    pub fn fails_with_status(self, code: u16) -> Self {
        let run = self.fails();
        let prefix = format!("status {code}: err ");
        assert!(
            run.stderr.starts_with(&prefix) && run.stderr.ends_with('\n'),
            "hanamictl {:?}: expected '{prefix}...', got {:?}",
            run.args,
            run.stderr
        );
        run
    }

    /// Standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// The `uuid` of the object printed as JSON (`-j`).
    #[track_caller]
    pub fn uuid(&self) -> String {
        let json = self.json();
        json["uuid"]
            .as_str()
            .unwrap_or_else(|| panic!("no uuid: {json}"))
            .to_owned()
    }

    /// Standard output as a key/value table; checks its borders.
    #[track_caller]
    pub fn single(&self) -> Vec<(String, String)> {
        let lines = table_lines(&self.stdout);
        assert!(lines.len() >= 3, "not a table: {}", self.stdout);
        assert_eq!(lines[0], lines[lines.len() - 1], "{}", self.stdout);
        let rows: Vec<Vec<String>> = lines[1..lines.len() - 1].iter().map(|l| cells(l)).collect();
        joined(rows)
            .into_iter()
            .map(|cells| {
                assert_eq!(cells.len(), 2, "not a key/value row: {cells:?}");
                (cells[0].clone(), cells[1].clone())
            })
            .collect()
    }

    /// The value of a row of a key/value table.
    #[track_caller]
    pub fn field(&self, key: &str) -> String {
        self.single()
            .into_iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no row {key}: {}", self.stdout))
            .1
    }

    /// The row names of a key/value table.
    #[track_caller]
    pub fn keys(&self) -> Vec<String> {
        self.single().into_iter().map(|(k, _)| k).collect()
    }

    /// Standard output as a list table: headers and rows; checks its borders.
    #[track_caller]
    pub fn list(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let lines = table_lines(&self.stdout);
        assert!(lines.len() >= 4, "not a list table: {}", self.stdout);
        let border = lines[0];
        assert_eq!(lines[2], border, "{}", self.stdout);
        assert_eq!(lines[lines.len() - 1], border, "{}", self.stdout);
        let headers = cells(lines[1]);
        let rows: Vec<Vec<String>> = lines[3..lines.len() - 1].iter().map(|l| cells(l)).collect();
        let rows = joined(rows);
        for row in &rows {
            assert_eq!(row.len(), headers.len(), "{}", self.stdout);
        }
        (headers, rows)
    }
}

/// The lines of a bordered table; all have the same width and the borders are `+--+`.
#[track_caller]
fn table_lines(text: &str) -> Vec<&str> {
    assert!(text.ends_with('\n'), "no final newline: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    let width = lines[0].chars().count();
    for line in &lines {
        assert_eq!(line.chars().count(), width, "ragged table:\n{text}");
        let border = line.starts_with('+') && line.chars().all(|c| c == '+' || c == '-');
        let row = line.starts_with("| ") && line.ends_with(" |");
        assert!(border || row, "not a table line: {line:?}\n{text}");
    }
    lines
}

/// Table rows with the continuation lines of long cells (lines whose first cell is empty)
/// joined to their row: after a space where the line was shorter than the 100 columns a cell
/// line takes (it was broken at a space, which the table leaves out), directly otherwise.
fn joined(lines: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut last_piece: Vec<usize> = Vec::new();
    for line in lines {
        match rows.last_mut() {
            Some(row) if line[0].is_empty() => {
                for (i, piece) in line.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                    if last_piece[i] < 100 {
                        row[i].push(' ');
                    }
                    last_piece[i] = unicode_width::UnicodeWidthStr::width(piece.as_str());
                    row[i].push_str(&piece);
                }
            }
            _ => {
                last_piece = line
                    .iter()
                    .map(|c| unicode_width::UnicodeWidthStr::width(c.as_str()))
                    .collect();
                rows.push(line);
            }
        }
    }
    rows
}

fn cells(line: &str) -> Vec<String> {
    line.trim_start_matches('|')
        .trim_end_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_owned())
        .collect()
}

/// A learnable MNIST-like IDX pair (see [`hanami_testkit::pattern_mnist`]) with the noise
/// the CLI tests were tuned to.
pub fn pattern_mnist(dir: &Path, name: &str, count: u32) -> (String, String) {
    let (images, labels) = hanami_testkit::pattern_mnist(dir, name, count, 12345 ^ count);
    (path_str(&images), path_str(&labels))
}

/// Column headers of the resource lists (datasets, clusters, checkpoints).
pub const RESOURCE_HEADERS: &[&str] = &[
    "UUID",
    "NAME",
    "VISIBILITY",
    "OWNER ID",
    "PROJECT ID",
    "CREATED AT",
];
/// Row names of a cluster or checkpoint.
pub const RESOURCE_KEYS: &[&str] = RESOURCE_HEADERS;
/// Row names of a task.
pub const TASK_KEYS: &[&str] = &[
    "UUID",
    "STATE",
    "CURRENT CYCLE",
    "TOTAL NUMBER OF CYCLES",
    "QUEUE TIMESTAMP",
    "START TIMESTAMP",
    "END TIMESTAMP",
];
/// Row names of a dataset.
pub const DATASET_KEYS: &[&str] = &[
    "UUID",
    "NAME",
    "VERSION",
    "NUMBER OF COLUMNS",
    "NUMBER OF ROWS",
    "DESCRIPTION",
    "VISIBILITY",
    "OWNER ID",
    "PROJECT ID",
    "CREATED AT",
];
