//! Behaviour at a terminal, through a pseudo-terminal: the hidden password prompt of
//! `user create` without `-p`, and the upload progress line on standard error.
#![cfg(unix)]

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, command, ctl_env, path_str, pattern_mnist, send_signal};

/// A pseudo-terminal whose slave side is the child's standard input and standard error;
/// standard output stays a pipe, so tables and prompts can be told apart.
struct Terminal {
    master: File,
    seen: mpsc::Receiver<Vec<u8>>,
    screen: String,
    child: Child,
}

impl Terminal {
    fn spawn(server: &Server, args: &[&str]) -> Terminal {
        Self::spawn_ignoring(server, args, &[])
    }

    /// Spawns with the given signals ignored, as `trap '' SIGNAL` in a shell leaves them.
    fn spawn_ignoring(server: &Server, args: &[&str], ignored: &'static [i32]) -> Terminal {
        let (mut master_fd, mut slave_fd) = (0, 0);
        // SAFETY: both pointers are valid for writes; the optional arguments are null.
        let rc = unsafe {
            libc::openpty(
                &mut master_fd,
                &mut slave_fd,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty returned two fresh descriptors that nothing else owns.
        let (master, slave) = unsafe {
            (
                OwnedFd::from_raw_fd(master_fd),
                OwnedFd::from_raw_fd(slave_fd),
            )
        };
        let mut cmd = command(
            &[
                ("HANAMI_ADDRESS", &server.url),
                ("HANAMI_USER", "asdf"),
                ("HANAMI_PW", "asdfasdf"),
            ],
            args,
        );
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .stdout(Stdio::piped());
        // SAFETY: only `signal`, which is async-signal-safe, runs between fork and exec
        // (after `command`'s own, which sets the signals to their defaults).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                for &signal in ignored {
                    libc::signal(signal, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn hanamictl");
        drop(cmd); // closes the parent's copies of the slave side
        let master = File::from(master);
        let mut reader = master.try_clone().unwrap();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the child has exited and the slave side is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            master,
            seen,
            screen: String::new(),
            child,
        }
    }

    /// Waits until the terminal shows `text` (after everything matched before).
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.screen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(bytes) => self.screen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("terminal never showed {text:?}; it shows {:?}", self.screen),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        self.master
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// Waits up to 20 s for the child's exit (then kills it and fails).
    fn exit_status(&mut self) -> std::process::ExitStatus {
        hanami_testkit::exit_within(&mut self.child, Duration::from_secs(20)).unwrap_or_else(|| {
            panic!(
                "hanamictl did not exit; the terminal shows {:?}",
                self.screen
            )
        })
    }

    /// Waits for the exit; returns the status, standard output and the whole screen.
    fn finish(mut self) -> (i32, String, String) {
        // Its standard output (a table or a message) fits the pipe's buffer.
        let status = self.exit_status();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        while let Ok(bytes) = self.seen.recv_timeout(Duration::from_secs(2)) {
            self.screen.push_str(&String::from_utf8_lossy(&bytes));
        }
        (status.code().unwrap_or(-1), stdout, self.screen)
    }
}

#[test]
fn user_create_prompts_twice_without_echo() {
    let server = Server::start();
    let mut term = Terminal::spawn(
        &server,
        &[
            "user",
            "create",
            "--is_admin",
            "-n",
            "prompted user",
            "prompted_user",
        ],
    );
    term.expect("Enter Password: ");
    // Whitespace around an entry is dropped, as the original CLI does.
    term.type_line("  secret-password-1 ");
    term.expect("Enter Password again: ");
    term.type_line("secret-password-1");
    let (code, stdout, screen) = term.finish();
    assert_eq!(code, 0, "stdout: {stdout}\nscreen: {screen}");
    assert!(
        !screen.contains("secret-password-1"),
        "the password was echoed: {screen:?}"
    );
    assert!(!screen.contains("error"), "{screen:?}");
    assert!(stdout.contains("| ID         | prompted_user"), "{stdout}");
    // The password was set: the new (admin) user can log in with it, and only with it.
    server
        .ctl_as(
            "prompted_user",
            "secret-password-1",
            &["user", "get", "prompted_user"],
        )
        .ok();
    server
        .ctl_as(
            "prompted_user",
            "secret-password-2",
            &["user", "get", "prompted_user"],
        )
        .fails_with_status(401);
}

/// Whether the terminal echoes what is typed (the settings are those of the slave side).
fn echoes(master: &File) -> bool {
    use std::os::fd::AsRawFd;
    let mut term = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: the descriptor is the open master side; `term` is writable memory of the type.
    let term = unsafe {
        assert_eq!(libc::tcgetattr(master.as_raw_fd(), term.as_mut_ptr()), 0);
        term.assume_init()
    };
    term.c_lflag & libc::ECHO != 0
}

/// Ctrl-C at the prompt ends the command as a signal does, and leaves the terminal's echo on
/// (it used to stay off, so that the shell showed nothing typed afterwards).
#[test]
fn an_interrupted_prompt_gives_the_echo_back() {
    let server = Server::start();
    // At the first prompt, and at the second (after the first restored the echo once).
    for (signal, at_second) in [(libc::SIGINT, false), (libc::SIGTERM, true)] {
        let mut term = Terminal::spawn(
            &server,
            &["user", "create", "-n", "prompted user", "prompted_user"],
        );
        term.expect("Enter Password: ");
        if at_second {
            term.type_line("secret-password-1");
            term.expect("Enter Password again: ");
        }
        assert!(
            !echoes(&term.master),
            "the prompt should hide what is typed"
        );
        send_signal(&term.child, signal);
        let status = term.exit_status();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(signal)
        );
        assert!(
            echoes(&term.master),
            "the echo stayed off after signal {signal}"
        );
    }
    server
        .ctl(&["user", "get", "prompted_user"])
        .fails_with_status(404);
}

/// A signal that the caller ignores (`trap '' INT`) stays ignored at the prompt.
#[test]
fn an_ignored_interrupt_stays_ignored_at_the_prompt() {
    let server = Server::start();
    let mut term = Terminal::spawn_ignoring(
        &server,
        &["user", "create", "-n", "prompted user", "prompted_user"],
        &[libc::SIGINT],
    );
    term.expect("Enter Password: ");
    send_signal(&term.child, libc::SIGINT);
    term.type_line("secret-password-1");
    term.expect("Enter Password again: ");
    term.type_line("secret-password-1");
    let (code, stdout, screen) = term.finish();
    assert_eq!(code, 0, "stdout: {stdout}\nscreen: {screen}");
    server.ctl(&["user", "get", "prompted_user"]).ok();
}

#[test]
fn a_password_mismatch_is_refused() {
    let server = Server::start();
    let mut term = Terminal::spawn(
        &server,
        &["user", "create", "-n", "prompted user", "prompted_user"],
    );
    term.expect("Enter Password: ");
    term.type_line("secret-password-1");
    term.expect("Enter Password again: ");
    term.type_line("secret-password-2");
    let (code, stdout, screen) = term.finish();
    assert_eq!(code, 1, "{screen}");
    assert_eq!(stdout, "");
    assert!(
        screen.contains("error: Mismatch between the two entered passwords"),
        "{screen:?}"
    );
    server
        .ctl(&["user", "get", "prompted_user"])
        .fails_with_status(404);
}

#[test]
fn without_a_terminal_and_without_p_user_create_fails() {
    let server = Server::start();
    let run = ctl_env(
        &[
            ("HANAMI_ADDRESS", &server.url),
            ("HANAMI_USER", "asdf"),
            ("HANAMI_PW", "asdfasdf"),
        ],
        &["user", "create", "-n", "prompted user", "prompted_user"],
    )
    .fails();
    assert!(
        run.stderr.contains("not a terminal") && run.stderr.contains("-p/--password"),
        "{}",
        run.stderr
    );
    server
        .ctl(&["user", "get", "prompted_user"])
        .fails_with_status(404);
}

#[test]
fn uploads_show_progress_on_a_terminal_but_not_with_json() {
    let server = Server::start();
    let (images, labels) = pattern_mnist(server.dir.path(), "progress", 400);
    let term = Terminal::spawn(
        &server,
        &[
            "dataset",
            "create",
            "mnist",
            "-i",
            &images,
            "-l",
            &labels,
            "progress_dataset",
        ],
    );
    let (code, stdout, screen) = term.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("uploading progress_dataset:"), "{screen:?}");
    assert!(
        screen.contains("100.0 % (") && screen.contains("; the server makes the dataset…"),
        "{screen:?}"
    );
    assert!(
        stdout.contains("| NAME              | progress_dataset"),
        "{stdout}"
    );

    // `--wait` shows the task's progress on the terminal too.
    let cluster = server
        .ctl(&[
            "cluster",
            "create",
            "-j",
            "-t",
            &server.template(),
            "progress_cluster",
        ])
        .ok()
        .json()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let term = Terminal::spawn(
        &server,
        &[
            "cluster",
            "save",
            "--wait",
            "-n",
            "progress_checkpoint",
            &cluster,
        ],
    );
    let (code, stdout, screen) = term.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains(": finished, cycle 1 of 1"), "{screen:?}");
    assert!(stdout.contains("| NAME | progress_checkpoint"), "{stdout}");

    let csv = server.write("p.csv", "a,b\n1,2\n");
    let term = Terminal::spawn(
        &server,
        &[
            "dataset",
            "create",
            "csv",
            "-j",
            "-i",
            &path_str(&csv),
            "quiet_dataset",
        ],
    );
    let (code, stdout, screen) = term.finish();
    assert_eq!(code, 0, "{screen}");
    assert_eq!(screen, "", "-j keeps the terminal quiet");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["name"], "quiet_dataset");
}
