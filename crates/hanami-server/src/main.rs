//! `hanami`: the Hanami server binary.

use clap::{CommandFactory as _, FromArgMatches as _};
use hanami_server::config::{Args, Config};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    return_large_blocks_to_the_system();
    // A file-size limit (`ulimit -f`, systemd's LimitFSIZE) makes a write beyond it fail
    // with EFBIG, which the server reports, instead of killing the process with SIGXFSZ.
    // SAFETY: setting a signal's disposition to "ignore" before any other thread exists.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // The database holds password hashes, the data directory everyone's datasets and
    // networks: what the server creates is for its own user only.
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe { libc::umask(0o077) };
    hanami_server::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report(&format!("hanami: cannot start the async runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve());
    // Not waited for: blocking work still under way (an upload's conversion that outlasted
    // the stop's patience, which the log calls lost). Dropping the runtime would wait for
    // it, with the signal handlers gone, so a second Ctrl-C could not end the wait.
    runtime.shutdown_background();
    code
}

async fn serve() -> std::process::ExitCode {
    let (filter, warning) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogSink)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    let (result, origins) = match Config::from_args(parse_args()) {
        Ok(config) => {
            let origins = config.origins.clone();
            (hanami_server::run(config).await, origins)
        }
        Err(e) => (Err(e), Default::default()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let text = causes(&e);
            report(&format!("hanami: {text}"));
            for note in origins.notes(&text) {
                report(&note);
            }
            let words: Vec<_> = std::env::args_os().collect();
            for (variable, value) in hanami_flags::variables_quoted(&Args::command(), &words, &text)
            {
                report(&format!(
                    "note: the value '{value}' comes from the variable {variable}"
                ));
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// The log filter for `RUST_LOG`, and a warning about it. Unset or empty means `info`; one
/// the filter cannot take is said so (and `info` used). One that sets no level for all
/// messages (`hyper=debug`, or a misspelt level, which is taken for a target) keeps the
/// others at `warn`, so that warnings and errors are never lost to it.
fn log_filter(text: Option<&str>) -> (EnvFilter, Option<String>) {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return (EnvFilter::new("info"), None);
    };
    if let Err(e) = EnvFilter::try_new(text) {
        return (
            EnvFilter::new("info"),
            Some(format!(
                "RUST_LOG '{text}' is not a valid log filter ({e}): logging at info"
            )),
        );
    }
    let directives: Vec<&str> = text.split(',').map(str::trim).collect();
    let is_level = |d: &str| d.parse::<tracing_subscriber::filter::LevelFilter>().is_ok();
    if directives.iter().any(|d| is_level(d)) {
        return (EnvFilter::new(text), None);
    }
    let warning = directives
        .iter()
        .find(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|word| {
            format!(
                "RUST_LOG names '{word}', which is taken for a module, not a level (trace, \
                 debug, info, warn, error or off): the other messages log at warn"
            )
        });
    (EnvFilter::new(format!("warn,{text}")), warning)
}

/// Standard error for the log, ignoring write failures. With stderr closed (a `| tee` that
/// died), tracing would report each failed write with `eprintln!`, which panics there and
/// took down whichever thread logged: the signal handler's, for one, so SIGTERM and SIGINT
/// were ignored from then on.
struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// The command line and the variables that stand for its flags (empty variables count as
/// unset, see `hanami_flags`). Usage errors end the process with clap's status 2, help and
/// version with 0.
fn parse_args() -> Args {
    let words: Vec<_> = std::env::args_os().collect();
    let command = hanami_flags::without_unused_variables(Args::command(), &words);
    match command
        .try_get_matches_from(&words)
        .and_then(|matches| Args::from_arg_matches(&matches))
    {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            if let Some(variable) = hanami_flags::variable_behind(&e, &Args::command(), &words) {
                report(&format!(
                    "note: the value comes from the variable {variable}"
                ));
            }
            std::process::exit(e.exit_code());
        }
    }
}

/// An error and its causes, joined by `: `, leaving out a cause whose text the one before
/// already holds (wrapped database errors repeated SQLite's message three times).
fn causes(e: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut last = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !last.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        last = part;
    }
    text
}

/// Writes a last message to standard error, if it is still open.
fn report(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Makes glibc's allocator map blocks of 4 MiB and more on their own and unmap them when
/// they are freed. By default it raises that threshold to the size of the largest block
/// freed so far (up to 32 MiB), after which such blocks stay in its per-thread arenas: each
/// login's 19 MiB password hash then stayed in the process, gigabytes after a burst of
/// logins, and so did the buffers of a large upload's conversion.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 4 << 20;
        // SAFETY: mallopt only changes allocator parameters; it is called before any other
        // thread exists.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the filter for `RUST_LOG` is, as its directives read, and whether it warns.
    fn filter(text: Option<&str>) -> (String, bool) {
        let (filter, warning) = log_filter(text);
        (filter.to_string(), warning.is_some())
    }

    #[test]
    fn a_log_filter_without_a_level_for_all_keeps_warnings() {
        assert_eq!(filter(None), ("info".into(), false));
        assert_eq!(filter(Some("")), ("info".into(), false));
        assert_eq!(filter(Some("debug")), ("debug".into(), false));
        assert_eq!(
            filter(Some("hyper=debug,off")),
            ("hyper=debug,off".into(), false)
        );
        assert_eq!(filter(Some("==")), ("info".into(), true));
        // Targets only: the rest at warn; a bare word is likely a misspelt level.
        let (text, warned) = filter(Some("hyper=debug"));
        assert!(
            text.contains("warn") && text.contains("hyper=debug") && !warned,
            "{text}"
        );
        let (text, warned) = filter(Some("nonsense_level"));
        assert!(text.contains("warn") && warned, "{text}");
    }
}
