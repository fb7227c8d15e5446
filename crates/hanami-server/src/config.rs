//! Server configuration: built-in defaults, overridden by a TOML file, overridden by
//! command-line flags and their `HANAMI_*` environment twins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;

/// Command line of `hanami`. Every flag can also be given as an environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "hanami",
    version,
    about = "The Hanami AI server",
    after_help = "On the first start (no global admin in the database yet) the variables \
                  HANAMI_ADMIN_USER_ID, HANAMI_ADMIN_USER_NAME and HANAMI_ADMIN_PASSWORD create \
                  one. Flags override the TOML file, which overrides the defaults; the README \
                  lists every setting. The first line on stdout is the address to use."
)]
pub struct Args {
    /// TOML configuration file (every key optional; see README).
    #[arg(short, long, env = "HANAMI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on (an IP address, not a host name); port 0 picks a free
    /// one. Default: 127.0.0.1:11418.
    #[arg(long, env = "HANAMI_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Data directory: database, token key, datasets, checkpoints, the clusters' networks,
    /// temporary files. Default: ./hanami-data.
    #[arg(long, env = "HANAMI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate (chain) for HTTPS; needs --tls-key.
    #[arg(long, env = "HANAMI_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS; needs --tls-cert.
    #[arg(long, env = "HANAMI_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Lifetime of issued tokens, in seconds (1 to ten years). Default: 3600.
    #[arg(
        long,
        env = "HANAMI_TOKEN_EXPIRY",
        value_parser = expiry_seconds,
        allow_negative_numbers = true
    )]
    pub token_expiry: Option<u64>,
    /// Policy file; the built-in default policy is used without one.
    #[arg(long, env = "HANAMI_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
}

/// The keys of the TOML file; all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default, deserialize_with = "listen_address")]
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    token_expiry: Option<u64>,
    policy_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    max_upload_bytes: Option<u64>,
    upload_timeout: Option<u64>,
    header_timeout: Option<u64>,
    write_timeout: Option<u64>,
    cluster_memory_mib: Option<u64>,
    clusters_memory_mib: Option<u64>,
    min_free_disk_mib: Option<u64>,
    log_retention_days: Option<u64>,
    max_running_tasks: Option<usize>,
    max_connections_per_client: Option<usize>,
    max_ended_tasks: Option<usize>,
}

/// PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// HTTPS certificate and key, if HTTPS is on.
    pub tls: Option<TlsFiles>,
    /// Lifetime of issued tokens.
    pub token_expiry: Duration,
    /// Policy file, or `None` for the built-in policy.
    pub policy_file: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest file a dataset upload may declare, in bytes.
    pub max_upload_bytes: u64,
    /// Unfinished uploads idle for longer than this are removed, and websocket sessions
    /// (upload or direct IO) silent for longer are closed.
    pub upload_timeout: Duration,
    /// How long a connection may take to send a request's headers, and then its body (also
    /// a new or idle keep-alive connection that sends nothing); it is closed after that.
    pub header_timeout: Duration,
    /// How long writes to a connection may wait without the client taking a byte; it is
    /// closed after that.
    pub write_timeout: Duration,
    /// Memory budget of each cluster's network in bytes: growth beyond it is refused.
    pub cluster_memory_limit: usize,
    /// Memory budget of all clusters' networks together in bytes: growth beyond it is
    /// refused, and so are new clusters and restores that do not fit.
    pub clusters_memory_limit: usize,
    /// Days that audit- and error-log entries are kept; `None`: for ever.
    pub log_retention_days: Option<u32>,
    /// Disk space in bytes that uploads, request results and checkpoints must leave free in
    /// the data directory (`min_free_disk_mib`, but at least what a start needs).
    pub min_free_disk: u64,
    /// How many tasks run at once, over all clusters; the others wait in their queues.
    pub max_running_tasks: usize,
    /// How many connections one client network may hold at once; further ones are refused.
    pub max_connections_per_client: usize,
    /// How many ended tasks a cluster keeps listed; the oldest beyond it are forgotten when
    /// a new task is queued.
    pub max_ended_tasks: usize,
    /// Which paths the config file gave, for the notes on errors about them.
    pub origins: FileOrigins,
}

/// The paths that a config file gave (not overridden by a flag or variable), so that an
/// error about one of them (a missing policy file, an unreadable key) can say where it was
/// set.
#[derive(Debug, Clone, Default)]
pub struct FileOrigins {
    /// The config file.
    file: Option<PathBuf>,
    /// Its keys that gave a path, with the path.
    paths: Vec<(&'static str, PathBuf)>,
}

impl FileOrigins {
    /// One note for each path from the config file that `error` quotes.
    pub fn notes(&self, error: &str) -> Vec<String> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        self.paths
            .iter()
            .filter(|(_, path)| quotes_path(error, &path.display().to_string()))
            .map(|(key, path)| {
                format!(
                    "note: the path '{}' comes from the key {key} of the config file {}",
                    path.display(),
                    file.display()
                )
            })
            .collect()
    }
}

/// Default `max_ended_tasks`.
pub const DEFAULT_MAX_ENDED_TASKS: usize = 10_000;
/// Largest `max_ended_tasks`.
pub const MAX_ENDED_TASKS: usize = 1_000_000;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11418";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "hanami-data";
/// Default token lifetime in seconds.
pub const DEFAULT_TOKEN_EXPIRY: u64 = 3600;
/// Default body limit: 1 MiB, as the original.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default upload limit per file: 4 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 4 << 30;
/// Default idle timeout of unfinished uploads in seconds (the original's 10 minutes).
pub const DEFAULT_UPLOAD_TIMEOUT: u64 = 600;
/// Default time in seconds a connection may take to send a request's headers.
pub const DEFAULT_HEADER_TIMEOUT: u64 = 30;
/// Default time in seconds that writes to a connection may wait for the client. Long: the
/// kernel wakes a waiting writer only once about a third of the socket's send buffer (up to
/// 4 MiB) is free again, so a slow reader looks stalled for that long.
pub const DEFAULT_WRITE_TIMEOUT: u64 = 120;
/// Default memory budget of a cluster's network in MiB (the engine's default).
pub const DEFAULT_CLUSTER_MEMORY_MIB: u64 = 1024;
/// Largest memory budget of a cluster's network, and of all of them, in MiB: 1 TiB.
const MAX_CLUSTER_MEMORY_MIB: u64 = 1 << 20;
/// Used for `clusters_memory_mib` where the machine's memory cannot be read: 4 GiB.
const FALLBACK_CLUSTERS_MEMORY_MIB: u64 = 4 << 10;
/// Default disk space in MiB that uploads leave free for the database, networks and
/// checkpoints.
pub const DEFAULT_MIN_FREE_DISK_MIB: u64 = 256;
/// Largest `log_retention_days`: a hundred years.
const MAX_LOG_RETENTION_DAYS: u32 = 36_500;
/// Largest `min_free_disk_mib`: 1 PiB.
const MAX_MIN_FREE_DISK_MIB: u64 = 1 << 30;
/// Default `max_running_tasks` per core: enough that short tasks rarely wait behind long
/// ones, few enough that the API keeps its share of the cores.
pub const RUNNING_TASKS_PER_CORE: usize = 4;
/// Largest `max_running_tasks`: each running task holds a thread of the runtime's blocking
/// pool (512), which file work of the API needs too.
const MAX_RUNNING_TASKS: usize = 256;
/// Default `max_connections_per_client`: far more than a client's connection pool, its
/// websocket sessions and parallel tasks need, far fewer than the process may hold.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// Largest `max_connections_per_client`.
const MAX_CONNECTIONS_PER_CLIENT: usize = 1 << 20;

impl Config {
    /// Builds the configuration from the command line, the environment and the config file.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        // Where a setting that only the file gives came from, for its error message.
        let in_file = match &args.config {
            Some(path) => format!(" (in the config file {})", path.display()),
            None => String::new(),
        };
        // The paths that the file gives, unless a flag or variable overrides them.
        let mut origins = FileOrigins {
            file: args.config.clone(),
            paths: Vec::new(),
        };
        // A flag's (or its variable's) path, else the file's, which is noted for errors; an
        // empty one from the file is refused here, where its key and file can be named.
        let mut from_file = |key: &'static str, flag: Option<PathBuf>, given: Option<PathBuf>| {
            match (flag, given) {
                (None, Some(path)) if path.as_os_str().is_empty() => {
                    bail!("{key} is an empty path{in_file}: give one, or leave the setting out")
                }
                (None, Some(path)) => {
                    origins.paths.push((key, path.clone()));
                    Ok(Some(path))
                }
                (flag, _) => Ok(flag),
            }
        };
        let cert = from_file("tls_cert", args.tls_cert, file.tls_cert)?;
        let key = from_file("tls_key", args.tls_key, file.tls_key)?;
        let policy_file = from_file("policy_file", args.policy_file, file.policy_file)?;
        let data_dir = from_file("data_dir", args.data_dir, file.data_dir)?;
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => bail!(
                "HTTPS needs a key as well as the certificate: give --tls-key (HANAMI_TLS_KEY, \
                 or tls_key in the config file)"
            ),
            (None, Some(_)) => bail!(
                "HTTPS needs a certificate as well as the key: give --tls-cert \
                 (HANAMI_TLS_CERT, or tls_cert in the config file)"
            ),
        };
        let max_body_bytes = file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024, not {max_body_bytes}{in_file}");
        }
        let upload_timeout = seconds(
            "upload_timeout",
            file.upload_timeout.unwrap_or(DEFAULT_UPLOAD_TIMEOUT),
            &in_file,
        )?;
        let header_timeout = seconds(
            "header_timeout",
            file.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT),
            &in_file,
        )?;
        let write_timeout = seconds(
            "write_timeout",
            file.write_timeout.unwrap_or(DEFAULT_WRITE_TIMEOUT),
            &in_file,
        )?;
        // A flag's (or its variable's) range was checked by the parser, which names it.
        let token_expiry = match args.token_expiry {
            Some(value) => Duration::from_secs(value),
            None => seconds(
                "token_expiry",
                file.token_expiry.unwrap_or(DEFAULT_TOKEN_EXPIRY),
                &in_file,
            )?,
        };
        let max_upload_bytes = file.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD_BYTES);
        if max_upload_bytes == 0 {
            bail!("max_upload_bytes must be at least 1, not 0{in_file}");
        }
        let cluster_memory_limit = memory_budget(
            "cluster_memory_mib",
            file.cluster_memory_mib
                .unwrap_or(DEFAULT_CLUSTER_MEMORY_MIB),
            &in_file,
        )?;
        let clusters_memory_limit = memory_budget(
            "clusters_memory_mib",
            file.clusters_memory_mib
                .unwrap_or_else(default_clusters_memory_mib),
            &in_file,
        )?;
        let min_free_disk_mib = file.min_free_disk_mib.unwrap_or(DEFAULT_MIN_FREE_DISK_MIB);
        if min_free_disk_mib > MAX_MIN_FREE_DISK_MIB {
            bail!(
                "min_free_disk_mib must be at most {MAX_MIN_FREE_DISK_MIB}, not \
                 {min_free_disk_mib}{in_file}"
            );
        }
        let max_running_tasks = file.max_running_tasks.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores * RUNNING_TASKS_PER_CORE).min(MAX_RUNNING_TASKS)
        });
        let max_running_tasks = count(
            "max_running_tasks",
            max_running_tasks,
            MAX_RUNNING_TASKS,
            &in_file,
        )?;
        let max_connections_per_client = count(
            "max_connections_per_client",
            file.max_connections_per_client
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_CLIENT),
            MAX_CONNECTIONS_PER_CLIENT,
            &in_file,
        )?;
        let max_ended_tasks = count(
            "max_ended_tasks",
            file.max_ended_tasks.unwrap_or(DEFAULT_MAX_ENDED_TASKS),
            MAX_ENDED_TASKS,
            &in_file,
        )?;
        // 0 keeps the logs for ever, as the original did.
        let log_retention_days = match file.log_retention_days.filter(|&days| days > 0) {
            Some(days) => Some(
                u32::try_from(days)
                    .ok()
                    .filter(|&days| days <= MAX_LOG_RETENTION_DAYS)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "log_retention_days must be at most {MAX_LOG_RETENTION_DAYS} (0: \
                             keep for ever), not {days}{in_file}"
                        )
                    })?,
            ),
            None => None,
        };
        // (An empty one from the file is refused above, and the flag refuses its own.)
        let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(Self {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            data_dir,
            tls,
            token_expiry,
            policy_file,
            max_body_bytes,
            max_upload_bytes,
            upload_timeout,
            header_timeout,
            write_timeout,
            cluster_memory_limit,
            clusters_memory_limit,
            min_free_disk: (min_free_disk_mib << 20).max(crate::disk::MIN_FREE_TO_START),
            log_retention_days,
            max_running_tasks,
            max_connections_per_client,
            max_ended_tasks,
            origins,
        })
    }
}

/// The count given by the setting `key`, checked to lie between 1 and `most`. `origin` tells
/// an error where the value came from.
fn count(key: &str, value: usize, most: usize, origin: &str) -> anyhow::Result<usize> {
    if !(1..=most).contains(&value) {
        bail!("{key} must be between 1 and {most}, not {value}{origin}");
    }
    Ok(value)
}

/// A memory budget given in MiB by the setting `key`, in bytes: 1 MiB to
/// [`MAX_CLUSTER_MEMORY_MIB`]. `origin` tells an error where the value came from.
fn memory_budget(key: &str, mib: u64, origin: &str) -> anyhow::Result<usize> {
    if !(1..=MAX_CLUSTER_MEMORY_MIB).contains(&mib) {
        bail!("{key} must be between 1 and {MAX_CLUSTER_MEMORY_MIB}, not {mib}{origin}");
    }
    usize::try_from(mib << 20).with_context(|| format!("{key} is too large for this machine"))
}

/// The default of `clusters_memory_mib`: half of the machine's memory, which leaves the
/// other half to datasets being written, checkpoints being made, uploads and the system.
fn default_clusters_memory_mib() -> u64 {
    // SAFETY: sysconf only reads system parameters.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page_size)) {
        (Ok(pages), Ok(size)) if pages > 0 && size > 0 => {
            (pages.saturating_mul(size) >> 21).clamp(1, MAX_CLUSTER_MEMORY_MIB)
        }
        _ => FALLBACK_CLUSTERS_MEMORY_MIB,
    }
}

/// The longest time a setting in seconds may give: ten years (clocks and timers overflow
/// somewhere beyond).
const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A listen address: an IP address and a port (`127.0.0.1:11418`, `[::1]:11418`), with a
/// message that says so (the standard one is "invalid socket address syntax").
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "'{text}' is no listen address: give an IP address and a port, like \
             127.0.0.1:11418, [::1]:11418 or 0.0.0.0:11418 (no host names)"
        )
    })
}

/// The TOML `listen` key through [`parse_listen`].
fn listen_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = <String as Deserialize>::deserialize(deserializer)?;
    parse_listen(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The setting `key` of `value` seconds, which must lie within 1 s and [`MAX_SECONDS`].
/// `origin` tells an error where the value came from.
fn seconds(key: &str, value: u64, origin: &str) -> anyhow::Result<Duration> {
    if !(1..=MAX_SECONDS).contains(&value) {
        bail!("{key} must be between 1 and {MAX_SECONDS} seconds (ten years), not {value}{origin}");
    }
    Ok(Duration::from_secs(value))
}

/// Whether `error` quotes `path` as a path of its own: not as part of a longer word, path
/// or address (a `data_dir` of `.` is not quoted by `127.0.0.1:11418`).
fn quotes_path(error: &str, path: &str) -> bool {
    let stands_apart = |c: Option<char>, after: bool| match c {
        None => true,
        Some(c) => c.is_whitespace() || "'\"()`,;".contains(c) || (after && c == ':'),
    };
    !path.is_empty()
        && error.match_indices(path).any(|(at, _)| {
            stands_apart(error[..at].chars().next_back(), false)
                && stands_apart(error[at + path.len()..].chars().next(), true)
        })
}

/// `--token-expiry` (and its variable): whole seconds, 1 to ten years.
fn expiry_seconds(text: &str) -> Result<u64, String> {
    let value: i128 = text
        .trim()
        .parse()
        .map_err(|_| "not a whole number of seconds".to_owned())?;
    u64::try_from(value)
        .ok()
        .filter(|seconds| (1..=MAX_SECONDS).contains(seconds))
        .ok_or_else(|| {
            format!("must be between 1 and {MAX_SECONDS} seconds (ten years), not {value}")
        })
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = read_text_file(path, "config file")?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "invalid config file {}: {}",
            path.display(),
            in_plain_words(&e.to_string())
        )
    })
}

/// A TOML error with the names of Rust's number types (`expected u64`) said in words.
fn in_plain_words(error: &str) -> String {
    ["u64", "usize", "u32"]
        .iter()
        .fold(error.to_owned(), |text, kind| {
            text.replace(
                &format!("expected {kind}"),
                "expected a whole number (not negative, without quotes)",
            )
        })
}

/// The largest settings file (configuration, policy, PEM certificate or key) read.
const MAX_SETTINGS_FILE_BYTES: u64 = 1 << 20;

/// Reads a settings file that `what` names in errors (`config file`, `policy file`, …):
/// only a regular file (a named pipe would hold the start until some program writes to it,
/// a device such as `/dev/zero` would fill the memory), of at most 1 MiB.
pub(crate) fn read_settings_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    if path.as_os_str().is_empty() {
        bail!("the {what} is an empty path: give one, or leave the setting out");
    }
    let shown = path.display();
    let cannot_read = || format!("cannot read {what} {shown}");
    let file = hanami_store::files::open_without_waiting(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", cannot_read(), with_remedy(&e)))?;
    let kind = file.metadata().with_context(cannot_read)?.file_type();
    if !kind.is_file() {
        bail!(
            "the {what} {shown} is {}, not a regular file",
            other_kind(kind)
        );
    }
    let mut bytes = Vec::new();
    file.take(MAX_SETTINGS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(cannot_read)?;
    if bytes.len() as u64 > MAX_SETTINGS_FILE_BYTES {
        bail!("the {what} {shown} is larger than 1 MiB: is it the right file?");
    }
    Ok(bytes)
}

/// An error opening a settings file, with what to do where that is clear.
fn with_remedy(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "{error}; the user the server runs as must be able to read it (and to enter the \
             folders above it)"
        )
    } else {
        error.to_string()
    }
}

/// What a file that is no regular one is, in words.
fn other_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "a special file"
    }
}

/// [`read_settings_file`] for a text file (UTF-8).
pub(crate) fn read_text_file(path: &Path, what: &str) -> anyhow::Result<String> {
    String::from_utf8(read_settings_file(path, what)?).with_context(|| {
        format!(
            "cannot read {what} {}: it is not UTF-8 text",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("hanami").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn defaults() {
        let c = Config::from_args(args(&[])).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from("hanami-data"));
        assert_eq!(c.token_expiry, Duration::from_secs(3600));
        assert_eq!(
            c.header_timeout,
            Duration::from_secs(DEFAULT_HEADER_TIMEOUT)
        );
        assert!(c.tls.is_none());
        // Half of the machine's memory, as /proc/meminfo counts it.
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let total_kib: usize = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap();
        assert_eq!(c.clusters_memory_limit >> 20, total_kib >> 11);
    }

    #[test]
    fn times_of_zero_or_beyond_ten_years_and_empty_uploads_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.toml");
        for key in [
            "upload_timeout",
            "header_timeout",
            "write_timeout",
            "token_expiry",
        ] {
            for value in ["0", "315360001", "9223372036854775807"] {
                std::fs::write(&path, format!("{key} = {value}\n")).unwrap();
                let err =
                    Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
                assert!(err.to_string().contains(key), "{err:#}");
            }
            std::fs::write(&path, format!("{key} = 315360000\n")).unwrap();
            Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        }
        // The flag's range is the parser's: its error names the flag.
        for value in ["0", "315360001", "-5"] {
            let refused = Args::try_parse_from(["hanami", "--token-expiry", value]).unwrap_err();
            let text = refused.to_string();
            assert!(
                text.contains(&format!("invalid value '{value}' for '--token-expiry")),
                "{text}"
            );
        }
        assert_eq!(
            Config::from_args(args(&["--token-expiry", "315360000"]))
                .unwrap()
                .token_expiry,
            Duration::from_secs(315_360_000)
        );
        std::fs::write(&path, "cluster_memory_mib = 0\n").unwrap();
        let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("cluster_memory_mib"), "{err:#}");
        std::fs::write(&path, "cluster_memory_mib = 3\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.cluster_memory_limit, 3 << 20);
        for value in ["0", "1048577"] {
            std::fs::write(&path, format!("clusters_memory_mib = {value}\n")).unwrap();
            let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
            assert!(err.to_string().contains("clusters_memory_mib"), "{err:#}");
        }
        std::fs::write(&path, "clusters_memory_mib = 5\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.clusters_memory_limit, 5 << 20);
        std::fs::write(&path, "log_retention_days = 30\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.log_retention_days, Some(30));
        std::fs::write(&path, "log_retention_days = 0\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.log_retention_days, None);
        std::fs::write(&path, "log_retention_days = 36501\n").unwrap();
        let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("log_retention_days"), "{err:#}");
        // Never below what a restart needs.
        std::fs::write(&path, "min_free_disk_mib = 0\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.min_free_disk, crate::disk::MIN_FREE_TO_START);
        std::fs::write(&path, "min_free_disk_mib = 1073741825\n").unwrap();
        let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("min_free_disk_mib"), "{err:#}");
        let c = Config::from_args(args(&[])).unwrap();
        assert!(c.max_running_tasks >= RUNNING_TASKS_PER_CORE);
        std::fs::write(&path, "max_running_tasks = 3\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.max_running_tasks, 3);
        for value in ["0", "257"] {
            std::fs::write(&path, format!("max_running_tasks = {value}\n")).unwrap();
            let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
            assert!(err.to_string().contains("max_running_tasks"), "{err:#}");
        }
        assert_eq!(
            Config::from_args(args(&[]))
                .unwrap()
                .max_connections_per_client,
            DEFAULT_MAX_CONNECTIONS_PER_CLIENT
        );
        std::fs::write(&path, "max_connections_per_client = 3\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.max_connections_per_client, 3);
        for value in ["0", "1048577"] {
            std::fs::write(&path, format!("max_connections_per_client = {value}\n")).unwrap();
            let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
            assert!(
                err.to_string().contains("max_connections_per_client"),
                "{err:#}"
            );
        }
        std::fs::write(&path, "max_upload_bytes = 0\n").unwrap();
        let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("max_upload_bytes"), "{err:#}");
        std::fs::write(&path, "header_timeout = 5\n").unwrap();
        let c = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.header_timeout, Duration::from_secs(5));
    }

    /// Counts of 0 or beyond their most are refused, naming the setting, its range and the
    /// file; the most itself is taken.
    #[test]
    fn counts_lie_between_1_and_their_most() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.toml");
        let p = path.to_str().unwrap();
        for (key, most) in [
            ("max_running_tasks", MAX_RUNNING_TASKS),
            ("max_connections_per_client", MAX_CONNECTIONS_PER_CLIENT),
            ("max_ended_tasks", MAX_ENDED_TASKS),
        ] {
            for value in [0, most + 1] {
                std::fs::write(&path, format!("{key} = {value}\n")).unwrap();
                let err = Config::from_args(args(&["--config", p])).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "{key} must be between 1 and {most}, not {value} (in the config file \
                         {p})"
                    )
                );
            }
            std::fs::write(&path, format!("{key} = {most}\n")).unwrap();
            Config::from_args(args(&["--config", p])).unwrap();
        }
    }

    #[test]
    fn settings_files_are_regular_files_of_reasonable_size() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("pipe.toml");
        hanami_testkit::named_pipe(&pipe);
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (1 << 20) + 1]).unwrap();
        let binary = dir.path().join("binary.toml");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        let dir_path = dir.path().to_str().unwrap();
        for (path, expected) in [
            (
                pipe.to_str().unwrap(),
                "is a named pipe, not a regular file",
            ),
            (dir_path, "is a directory, not a regular file"),
            ("/dev/zero", "is a device, not a regular file"),
            (big.to_str().unwrap(), "is larger than 1 MiB"),
            (binary.to_str().unwrap(), "it is not UTF-8 text"),
        ] {
            let err = Config::from_args(args(&["--config", path])).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{path}: {err:#}");
        }
        // Paths in the file may be empty (the command line refuses empty ones).
        let err = read_settings_file(Path::new(""), "policy file").unwrap_err();
        assert!(
            err.to_string().contains("the policy file is an empty path"),
            "{err}"
        );
    }

    #[test]
    fn errors_of_settings_from_the_file_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.toml");
        let p = path.to_str().unwrap();
        std::fs::write(&path, "header_timeout = 0\ntoken_expiry = 0\n").unwrap();
        let err = Config::from_args(args(&["--config", p])).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(&format!("not 0 (in the config file {p})")),
            "{err}"
        );
        // Host names are no listen addresses, and the message says what is.
        std::fs::write(&path, "listen = \"localhost:11418\"\n").unwrap();
        let err = format!(
            "{:#}",
            Config::from_args(args(&["--config", p])).unwrap_err()
        );
        assert!(err.contains("like 127.0.0.1:11418"), "{err}");
        let refused = Args::try_parse_from(["hanami", "--listen", ":11418"]).unwrap_err();
        assert!(refused.to_string().contains("(no host names)"), "{refused}");
        assert_eq!(
            args(&["--listen", "[::1]:7"]).listen,
            Some("[::1]:7".parse().unwrap())
        );
        // A flag's value wins over the file's, which is not checked then.
        std::fs::write(&path, "token_expiry = 0\n").unwrap();
        let c = Config::from_args(args(&["--config", p, "--token-expiry", "9"])).unwrap();
        assert_eq!(c.token_expiry, Duration::from_secs(9));
        // A flag's path wins over an empty one in the file, which is not refused then.
        std::fs::write(&path, "policy_file = \"\"\n").unwrap();
        let c = Config::from_args(args(&["--config", p, "--policy-file", "x.policy"])).unwrap();
        assert_eq!(c.policy_file, Some(PathBuf::from("x.policy")));
        std::fs::write(&path, "data_dir = \"\"\n").unwrap();
        let err = Config::from_args(args(&["--config", p])).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "data_dir is an empty path (in the config file {p}): give one, or leave the \
                 setting out"
            )),
            "{err}"
        );
    }

    #[test]
    fn messages_name_the_value_and_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.toml");
        let p = path.to_str().unwrap();
        for (text, expected) in [
            (
                "max_body_bytes = 100\n",
                "max_body_bytes must be at least 1024, not 100",
            ),
            (
                "max_upload_bytes = 0\n",
                "max_upload_bytes must be at least 1, not 0",
            ),
            (
                "log_retention_days = 40000\n",
                "log_retention_days must be at most 36500 (0: keep for ever), not 40000",
            ),
            (
                "log_retention_days = 5000000000\n",
                "log_retention_days must be at most 36500 (0: keep for ever), not 5000000000",
            ),
            (
                "tls_cert = \"\"\n",
                "tls_cert is an empty path (in the config file",
            ),
            (
                "tls_key = \"\"\n",
                "tls_key is an empty path (in the config file",
            ),
            (
                "policy_file = \"\"\n",
                "policy_file is an empty path (in the config file",
            ),
            (
                "token_expiry = \"7200\"\n",
                "expected a whole number (not negative, without quotes)",
            ),
            (
                "max_running_tasks = -5\n",
                "expected a whole number (not negative, without quotes)",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!(
                "{:#}",
                Config::from_args(args(&["--config", p])).unwrap_err()
            );
            assert!(err.contains(expected), "{text}: {err}");
        }
        for (value, expected) in [
            (
                "0",
                "must be between 1 and 315360000 seconds (ten years), not 0",
            ),
            (
                "-5",
                "must be between 1 and 315360000 seconds (ten years), not -5",
            ),
            ("soon", "not a whole number of seconds"),
        ] {
            let refused = Args::try_parse_from(["hanami", "--token-expiry", value]).unwrap_err();
            assert!(refused.to_string().contains(expected), "{refused}");
        }
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(
            with_remedy(&denied)
                .ends_with("must be able to read it (and to enter the folders above it)")
        );
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(with_remedy(&missing), missing.to_string());
    }

    #[test]
    fn paths_from_the_file_are_named_in_notes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.toml");
        let p = path.to_str().unwrap();
        std::fs::write(
            &path,
            "policy_file = \"nonexist.policy\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .unwrap();
        let c = Config::from_args(args(&["--config", p])).unwrap();
        let error = "cannot read policy file nonexist.policy: No such file or directory";
        assert_eq!(
            c.origins.notes(error),
            [format!(
                "note: the path 'nonexist.policy' comes from the key policy_file of the config \
                 file {p}"
            )]
        );
        assert!(c.origins.notes("cannot bind 127.0.0.1:11418").is_empty());
        // Only the path as a word of its own: not inside another path or an address.
        assert!(quotes_path("cannot read 'k.pem': denied", "k.pem"));
        assert!(quotes_path("k.pem holds no private key", "k.pem"));
        assert!(!quotes_path("cannot read /srv/k.pem: denied", "k.pem"));
        assert!(!quotes_path(
            "cannot listen on 127.0.0.1:11418: in use",
            "."
        ));
        assert!(!quotes_path("cannot read xk.pem2", "k.pem"));
        // A flag's path is not the file's.
        let c =
            Config::from_args(args(&["--config", p, "--policy-file", "nonexist.policy"])).unwrap();
        assert!(c.origins.notes(error).is_empty());
        let c = Config::from_args(args(&["--policy-file", "nonexist.policy"])).unwrap();
        assert!(c.origins.notes(error).is_empty());
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ntoken_expiry = 5\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = Config::from_args(args(&["--config", p, "--token-expiry", "7"])).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.token_expiry, Duration::from_secs(7));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_keys_and_half_tls_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanami.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::from_args(args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
        let err = Config::from_args(args(&["--tls-cert", "a.pem"])).unwrap_err();
        assert!(err.to_string().contains("--tls-key"));
        let err = Config::from_args(args(&["--tls-key", "a.pem"])).unwrap_err();
        assert!(err.to_string().contains("--tls-cert"));
    }
}
