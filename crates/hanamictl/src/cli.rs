//! The command tree: `hanamictl <resource> <verb> [flags] [ARG]`.
//!
//! Command names, positional arguments, short and long flag names (including the original's
//! `--json_output`, `--is_admin`, `--inputFilePath` and `--labelFilePath`) and which flags
//! are required follow the original CLI. Additions are marked as such in their help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The help heading of the flags that every command takes, so that a command's help lists
/// its own flags apart from them.
const GLOBAL: &str = "Global options";

/// Command-line client of the Hanami AI server.
///
/// Every command logs in afresh with HANAMI_ADDRESS (e.g. http://127.0.0.1:11418),
/// HANAMI_USER and HANAMI_PW. With HANAMI_PROJECT set, the token is switched into that
/// project after login.
#[derive(Debug, Parser)]
// `args_override_self`: a flag given twice counts once, as with the original's flags.
#[command(
    name = "hanamictl",
    version,
    arg_required_else_help = true,
    args_override_self = true
)]
pub struct Cli {
    /// Print the server's JSON answer instead of a table
    #[arg(
        short = 'j',
        long = "json_output",
        visible_alias = "json",
        global = true,
        help_heading = GLOBAL
    )]
    pub json: bool,

    /// Accept any TLS certificate of the server (self-signed test servers; addition). The
    /// variable takes 1/0, true/false, yes/no, on/off
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "HANAMI_INSECURE",
        value_parser = yes_or_no
    )]
    pub insecure: bool,

    /// Trust this PEM certificate (a private CA or a self-signed server certificate;
    /// addition)
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "HANAMI_CA_CERT",
        value_name = "FILE"
    )]
    pub ca_cert: Option<PathBuf>,

    /// Give up when the server stays silent this long while an answer is due (addition;
    /// 1 to 86400; opening a connection may take 10 seconds)
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "HANAMI_ANSWER_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = hanami_sdk::DEFAULT_ANSWER_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        allow_negative_numbers = true
    )]
    pub answer_timeout: u64,

    /// The resource to work on.
    #[command(subcommand)]
    pub command: Command,
}

/// A yes-or-no value as `HANAMI_INSECURE` takes it (any case).
fn yes_or_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
        _ => Err("expected one of 1/0, true/false, yes/no, on/off".to_owned()),
    }
}

impl Command {
    /// The waiting options of a command that queues a task or shows one.
    pub fn wait(&self) -> Option<&Wait> {
        match self {
            Command::Cluster(ClusterCmd::Save { wait, .. } | ClusterCmd::Restore { wait, .. })
            | Command::Task(
                TaskCmd::Create(
                    TaskCreateCmd::Train { wait, .. } | TaskCreateCmd::Request { wait, .. },
                )
                | TaskCmd::Get { wait, .. },
            ) => Some(wait),
            _ => None,
        }
    }
}

/// Top-level resources.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage projects (global admins only)
    #[command(subcommand, arg_required_else_help = true)]
    Project(ProjectCmd),
    /// Manage users and their project assignments
    #[command(subcommand, arg_required_else_help = true)]
    User(UserCmd),
    /// Upload, inspect, check and delete datasets
    #[command(subcommand, arg_required_else_help = true)]
    Dataset(DatasetCmd),
    /// Create, inspect, save, restore and delete clusters
    #[command(subcommand, arg_required_else_help = true)]
    Cluster(ClusterCmd),
    /// Queue, inspect and delete train and request tasks of a cluster
    #[command(subcommand, arg_required_else_help = true)]
    Task(TaskCmd),
    /// Inspect and delete checkpoints
    #[command(subcommand, arg_required_else_help = true)]
    Checkpoint(CheckpointCmd),
    /// List the logical hosts
    #[command(subcommand, arg_required_else_help = true)]
    Host(HostCmd),
    /// Read the audit log (who changed what) and the error log (what failed, and why)
    /// (addition to the original CLI)
    #[command(subcommand, arg_required_else_help = true)]
    Log(LogCmd),
    /// Print a shell completion script (e.g. `source <(hanamictl completion bash)`)
    Completion {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Extra words after a list command, accepted and ignored as by the original.
#[derive(Debug, Args)]
pub struct Ignored {
    #[arg(hide = true)]
    _ignored: Vec<String>,
}

/// `project` verbs.
#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Create a new empty project
    Create {
        /// Display name of the project
        #[arg(short, long)]
        name: String,
        /// ID of the new project
        #[arg(value_name = "PROJECT_ID")]
        id: String,
    },
    /// Show a project
    Get {
        /// ID of the project
        #[arg(value_name = "PROJECT_ID")]
        id: String,
    },
    /// List all projects
    List(Ignored),
    /// Delete a project
    Delete {
        /// ID of the project
        #[arg(value_name = "PROJECT_ID")]
        id: String,
    },
}

/// `user` verbs.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a new user (prompts twice for the password unless -p is given)
    Create {
        /// Display name of the user
        #[arg(short, long)]
        name: String,
        /// Password of the new user; leave it out to be prompted
        ///
        /// Visible in the shell history and the process list: meant for automated tests only.
        #[arg(short, long)]
        password: Option<String>,
        /// Make the user a global admin
        #[arg(long = "is_admin")]
        is_admin: bool,
        /// ID of the new user
        #[arg(value_name = "USER_ID")]
        id: String,
    },
    /// Show a user
    Get {
        /// ID of the user
        #[arg(value_name = "USER_ID")]
        id: String,
    },
    /// List all users
    List(Ignored),
    /// Delete a user (not yourself)
    Delete {
        /// ID of the user
        #[arg(value_name = "USER_ID")]
        id: String,
    },
    /// Change a user's name, password or global admin rights (addition to the original CLI)
    #[command(arg_required_else_help = true)]
    #[command(group(
        clap::ArgGroup::new("change")
            .args(["name", "new_password", "password", "is_admin"])
            .required(true)
            .multiple(true)
    ))]
    Update {
        /// New display name
        #[arg(short, long)]
        name: Option<String>,
        /// Ask twice for a new password (the user's tokens stop working)
        #[arg(long = "new_password", visible_alias = "new-password")]
        new_password: bool,
        /// A new password, given here instead of asked for
        ///
        /// Visible in the shell history and the process list: meant for automated tests only.
        #[arg(short, long, conflicts_with = "new_password")]
        password: Option<String>,
        /// Whether the user is a global admin from now on
        #[arg(long = "is_admin", value_name = "true|false")]
        is_admin: Option<bool>,
        /// ID of the user
        #[arg(value_name = "USER_ID")]
        id: String,
    },
    /// Manage the projects of a user (addition to the original CLI)
    #[command(subcommand, arg_required_else_help = true)]
    Project(UserProjectCmd),
}

/// `user project` verbs (additions to the original CLI).
#[derive(Debug, Subcommand)]
pub enum UserProjectCmd {
    /// Assign a project to a user with a role
    Add {
        /// The project to assign
        #[arg(short, long, value_name = "PROJECT_ID")]
        project: String,
        /// Role in the project (the default policy knows `admin` and `member`)
        #[arg(short, long)]
        role: String,
        /// Let the user access all resources of the project
        #[arg(long = "is_project_admin")]
        is_project_admin: bool,
        /// ID of the user
        #[arg(value_name = "USER_ID")]
        id: String,
    },
    /// Remove a project from a user
    Remove {
        /// The project to remove
        #[arg(short, long, value_name = "PROJECT_ID")]
        project: String,
        /// ID of the user
        #[arg(value_name = "USER_ID")]
        id: String,
    },
    /// List the projects of a user (default: your own)
    List {
        /// ID of the user (global admins only)
        #[arg(value_name = "USER_ID")]
        id: Option<String>,
    },
    /// Switch your token into a project and show the resulting scope
    ///
    /// The CLI keeps no state, so this only checks the switch and shows the scope; set
    /// HANAMI_PROJECT to work in a project with every command.
    Switch {
        /// The project to switch to
        #[arg(value_name = "PROJECT_ID")]
        project: String,
    },
}

/// `dataset` verbs.
#[derive(Debug, Subcommand)]
pub enum DatasetCmd {
    /// Upload a new dataset
    #[command(subcommand, arg_required_else_help = true)]
    Create(DatasetCreateCmd),
    /// Check a request result against the labels of a reference dataset (accuracy in %)
    Check {
        /// UUID of the reference dataset (the one with the labels)
        #[arg(short, long, value_name = "REFERENCE_DATASET_UUID")]
        reference: String,
        /// UUID of the result dataset to check (the request task's UUID)
        #[arg(value_name = "DATASET_UUID")]
        uuid: String,
    },
    /// Show a dataset
    Get {
        /// UUID of the dataset
        #[arg(value_name = "DATASET_UUID")]
        uuid: String,
    },
    /// List all visible datasets
    List(Ignored),
    /// Delete a dataset
    Delete {
        /// UUID of the dataset
        #[arg(value_name = "DATASET_UUID")]
        uuid: String,
    },
    /// Write a dataset's rows as CSV, e.g. the values a request task wrote (addition)
    Export {
        /// First row to write (from 0)
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Most rows to write (default: all from --start on)
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Write into this file instead of standard output
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// UUID of the dataset (a request's result has its task's UUID)
        #[arg(value_name = "DATASET_UUID")]
        uuid: String,
    },
}

/// `dataset create` kinds.
#[derive(Debug, Subcommand)]
pub enum DatasetCreateCmd {
    /// Upload an MNIST image file and label file (IDX format) as one dataset
    Mnist {
        /// Local MNIST image file (e.g. train-images-idx3-ubyte)
        #[arg(short, long = "inputFilePath", value_name = "PATH")]
        input: PathBuf,
        /// Local MNIST label file (e.g. train-labels-idx1-ubyte)
        #[arg(short, long = "labelFilePath", value_name = "PATH")]
        label: PathBuf,
        /// Name of the new dataset
        #[arg(value_name = "DATASET_NAME")]
        name: String,
    },
    /// Upload a CSV file (a header line with column names, then numeric rows)
    Csv {
        /// Local CSV file
        #[arg(short, long = "inputFilePath", value_name = "PATH")]
        input: PathBuf,
        /// Name of the new dataset
        #[arg(value_name = "DATASET_NAME")]
        name: String,
    },
}

/// `cluster` verbs.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Create a cluster from a cluster-template file
    Create {
        /// Path to the cluster template
        #[arg(short, long, value_name = "PATH")]
        template: PathBuf,
        /// Name of the new cluster
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Show a cluster
    Get {
        /// UUID of the cluster
        #[arg(value_name = "CLUSTER_UUID")]
        uuid: String,
    },
    /// List all visible clusters
    List(Ignored),
    /// Delete a cluster
    Delete {
        /// UUID of the cluster
        #[arg(value_name = "CLUSTER_UUID")]
        uuid: String,
    },
    /// Queue a checkpoint of a cluster; the printed UUID is the new checkpoint's
    Save {
        /// Name of the checkpoint
        #[arg(short, long)]
        name: String,
        #[command(flatten)]
        wait: Wait,
        /// UUID of the cluster
        #[arg(value_name = "CLUSTER_UUID")]
        uuid: String,
    },
    /// Queue the restore of a checkpoint into a cluster
    Restore {
        /// UUID of the checkpoint
        #[arg(short, long, value_name = "CHECKPOINT_UUID")]
        checkpoint: String,
        #[command(flatten)]
        wait: Wait,
        /// UUID of the cluster
        #[arg(value_name = "CLUSTER_UUID")]
        uuid: String,
    },
    /// Move a cluster to another logical host (addition to the original CLI)
    #[command(name = "switch_host", visible_alias = "switch-host")]
    SwitchHost {
        /// UUID of the target host (see `hanamictl host list`)
        #[arg(short = 'H', long, value_name = "HOST_UUID")]
        host: String,
        /// UUID of the cluster
        #[arg(value_name = "CLUSTER_UUID")]
        uuid: String,
    },
    /// Switch a cluster back to TASK mode, where its queued tasks run (addition to the
    /// original CLI: a direct-IO client that ended without switching back leaves its cluster
    /// in DIRECT mode)
    #[command(name = "task_mode", visible_alias = "task-mode")]
    TaskMode {
        /// UUID of the cluster
        #[arg(value_name = "CLUSTER_UUID")]
        uuid: String,
    },
}

/// Optional waiting for a task (an addition: by default nothing waits).
#[derive(Debug, Args)]
pub struct Wait {
    /// Wait until the task has ended; exit 1 if it was aborted, 130 on Ctrl-C (the task
    /// goes on; addition)
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds (1 to 315360000, ten years; default 3600;
    /// implies --wait; addition)
    #[arg(
        long,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=315_360_000),
        allow_negative_numbers = true
    )]
    timeout: Option<u64>,
}

impl Wait {
    /// How long a wait lasts at most where `--timeout` does not say.
    const DEFAULT_SECONDS: u64 = 3600;

    /// How many seconds to wait for the task's end at most, if the command waits at all
    /// (`--wait`, or `--timeout` alone).
    pub fn seconds(&self) -> Option<u64> {
        (self.wait || self.timeout.is_some()).then(|| self.timeout.unwrap_or(Self::DEFAULT_SECONDS))
    }
}

/// `task` verbs.
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Queue a new task
    #[command(subcommand, arg_required_else_help = true)]
    Create(TaskCreateCmd),
    /// Show a task of a cluster (with --wait, once it has ended)
    Get {
        /// UUID of the cluster
        #[arg(short, long, value_name = "CLUSTER_UUID")]
        cluster: String,
        #[command(flatten)]
        wait: Wait,
        /// UUID of the task
        #[arg(value_name = "TASK_UUID")]
        uuid: String,
    },
    /// List the tasks of a cluster
    List {
        /// UUID of the cluster
        #[arg(short, long, value_name = "CLUSTER_UUID")]
        cluster: String,
        #[command(flatten)]
        ignored: Ignored,
    },
    /// Delete a task (stops it if it runs; the result dataset of a finished request task
    /// stays, one that was stopped leaves none)
    Delete {
        /// UUID of the cluster
        #[arg(short, long, value_name = "CLUSTER_UUID")]
        cluster: String,
        /// UUID of the task
        #[arg(value_name = "TASK_UUID")]
        uuid: String,
    },
}

/// `task create` kinds.
#[derive(Debug, Subcommand)]
pub enum TaskCreateCmd {
    /// Queue a train task
    Train {
        /// Input hexagon and dataset, HEXAGON:DATASET_UUID (repeatable, or comma-separated)
        #[arg(
            short,
            long,
            required = true,
            value_delimiter = ',',
            value_name = "HEXAGON:DATASET_UUID"
        )]
        input: Vec<String>,
        /// Output hexagon and dataset with the expected values, HEXAGON:DATASET_UUID
        /// (repeatable, or comma-separated)
        #[arg(
            short,
            long,
            required = true,
            value_delimiter = ',',
            value_name = "HEXAGON:DATASET_UUID"
        )]
        output: Vec<String>,
        /// UUID of the cluster
        #[arg(short, long, value_name = "CLUSTER_UUID")]
        cluster: String,
        #[command(flatten)]
        wait: Wait,
        /// Name of the task
        #[arg(value_name = "TASK_NAME")]
        name: String,
    },
    /// Queue a request task; its result becomes a dataset with the task's UUID
    Request {
        /// Input hexagon and dataset, HEXAGON:DATASET_UUID (repeatable, or comma-separated)
        #[arg(
            short,
            long,
            required = true,
            value_delimiter = ',',
            value_name = "HEXAGON:DATASET_UUID"
        )]
        input: Vec<String>,
        /// Output hexagon and name of the new result dataset, HEXAGON:DATASET_NAME (exactly
        /// one: a request task writes one result dataset)
        #[arg(
            short,
            long,
            required = true,
            value_delimiter = ',',
            value_name = "HEXAGON:DATASET_NAME"
        )]
        result: Vec<String>,
        /// UUID of the cluster
        #[arg(short, long, value_name = "CLUSTER_UUID")]
        cluster: String,
        #[command(flatten)]
        wait: Wait,
        /// Name of the task
        #[arg(value_name = "TASK_NAME")]
        name: String,
    },
}

/// `checkpoint` verbs.
#[derive(Debug, Subcommand)]
pub enum CheckpointCmd {
    /// Show a checkpoint
    Get {
        /// UUID of the checkpoint
        #[arg(value_name = "CHECKPOINT_UUID")]
        uuid: String,
    },
    /// List all visible checkpoints
    List(Ignored),
    /// Delete a checkpoint
    Delete {
        /// UUID of the checkpoint
        #[arg(value_name = "CHECKPOINT_UUID")]
        uuid: String,
    },
}

/// `host` verbs.
#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// List the logical hosts (this server has one: the CPU, with all its cores)
    List(Ignored),
}

/// `log` verbs.
#[derive(Debug, Subcommand)]
pub enum LogCmd {
    /// Show a page of the audit log: your own entries, or another user's (global admins)
    Audit(LogPage),
    /// Show a page of the error log (global admins): every entry, or one user's
    Error(LogPage),
}

/// Which page of a log, and whose entries.
#[derive(Debug, Args)]
pub struct LogPage {
    /// Only the entries of this user
    #[arg(short, long, value_name = "USER_ID")]
    pub user: Option<String>,
    /// The page: 100 entries each, oldest first, counted from 0; `last` for the newest
    #[arg(
        short,
        long,
        default_value = "0",
        value_name = "N|last",
        value_parser = parse_page,
        allow_negative_numbers = true
    )]
    pub page: Page,
}

/// A page of a log, as `-p/--page` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The page of this number, counted from 0.
    Number(u64),
    /// The last page with entries (page 0 of an empty log).
    Last,
}

/// Reads `-p/--page`: a page number, or `last`.
fn parse_page(text: &str) -> Result<Page, String> {
    if text == "last" {
        return Ok(Page::Last);
    }
    text.parse()
        .map(Page::Number)
        .map_err(|_| format!("'{text}' is neither a page number (0 or more) nor 'last'"))
}

/// Splits `HEXAGON:VALUE` items into pairs; every item must have exactly one `:` with text
/// on both sides, and no hexagon may appear twice. `shape` is how the flag's help writes
/// them (`HEXAGON:DATASET_UUID`), for the message.
pub fn parse_pairs(
    items: &[String],
    flag: &str,
    shape: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(items.len());
    for item in items {
        let mut parts = item.split(':').map(str::trim);
        let (name, value) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(value), None) if !name.is_empty() && !value.is_empty() => {
                (name, value)
            }
            _ => {
                return Err(format!(
                    "malformed value '{item}' for {flag}: expected {shape}"
                ));
            }
        };
        if pairs.iter().any(|(n, _)| n == name) {
            return Err(format!("hexagon '{name}' is given twice in {flag}"));
        }
        pairs.push((name.to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

/// The group command that `words` name, as far as they name one (`hanamictl project -j`:
/// `project`): the command whose help stands for a missing verb.
pub fn group_help(words: &[std::ffi::OsString]) -> clap::Command {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    command.build();
    // The commands as clap found them (flags and their values skipped), despite the error.
    let found = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(words)
        .ok();
    let mut matches = found.as_ref();
    while let Some((name, sub)) = matches.and_then(|m| m.subcommand()) {
        match command.find_subcommand(name) {
            Some(group) => command = group.clone(),
            None => break,
        }
        matches = Some(sub);
    }
    command
}

/// A hint for a usage error that the documentation's own request-task example causes
/// (`task create train … -r label:output_dataset`): `-r` belongs to `task create request`,
/// as `-o` belongs to `task create train`. Clap alone suggests passing the flag as a value.
pub fn usage_hint(error: &clap::Error, words: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() == ErrorKind::MissingRequiredArgument {
        // The documentation prints a cluster's and a task's uuid run together.
        let joined = words
            .iter()
            .filter_map(|w| w.to_str())
            .find(|w| joined_uuids(w))?;
        return Some(format!(
            "note: '{joined}' is two uuids run together: give them as two words, separated \
             by a space"
        ));
    }
    if error.kind() == ErrorKind::InvalidSubcommand {
        return verb_hint(error, words);
    }
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(argument)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let creates = |kind: &str| {
        words
            .windows(3)
            .any(|w| w[0] == "task" && w[1] == "create" && w[2] == kind)
    };
    let result_flag = argument == "-r" || argument.starts_with("--result");
    let output_flag = argument == "-o" || argument.starts_with("--output");
    if result_flag && creates("train") {
        Some(
            "note: a request task is `task create request … -r HEXAGON:RESULT_NAME` (the \
             value after ':' names the new result dataset); `task create train` takes the \
             expected values with `-o HEXAGON:DATASET_UUID`"
                .to_owned(),
        )
    } else if output_flag && creates("request") {
        Some(
            "note: a request task takes no expected values: it names the output to answer \
             and its new result dataset with `-r HEXAGON:RESULT_NAME`; `-o` belongs to \
             `task create train`"
                .to_owned(),
        )
    } else {
        None
    }
}

/// A hint for a verb that a group command lacks but a user may well try: `show` where the
/// group has `get`, and saving or restoring a checkpoint, which goes through its cluster.
fn verb_hint(error: &clap::Error, words: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(verb)) = error.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let group = group_help(words);
    match (group.get_name(), verb.as_str()) {
        ("checkpoint", "save" | "create" | "restore" | "load") => Some(
            "note: a checkpoint is saved and restored through its cluster: `hanamictl cluster \
             save --name NAME CLUSTER_UUID` and `hanamictl cluster restore --checkpoint \
             CHECKPOINT_UUID CLUSTER_UUID`"
                .to_owned(),
        ),
        (_, "show" | "info") => {
            let get = group.find_subcommand("get")?;
            Some(format!(
                "note: `{}` shows one",
                get.get_bin_name().unwrap_or("get")
            ))
        }
        _ => None,
    }
}

/// Whether `word` is two uuids (8-4-4-4-12 hexadecimal digits) run together, or joined by
/// '-'.
fn joined_uuids(word: &str) -> bool {
    use hanami_sdk::types::is_uuid;
    let second = match word.len() {
        72 => 36,
        73 if word.as_bytes()[36] == b'-' => 37,
        _ => return false,
    };
    word.is_char_boundary(36) && is_uuid(&word[..36]) && is_uuid(&word[second..])
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A command's help lists its own flags first, the global ones under their own heading.
    #[test]
    fn global_flags_have_a_heading_of_their_own() {
        let mut cli = Cli::command();
        // Building hands the global flags down to the subcommands.
        cli.build();
        let help = cli
            .find_subcommand_mut("task")
            .and_then(|c| c.find_subcommand_mut("create"))
            .and_then(|c| c.find_subcommand_mut("request"))
            .unwrap()
            .render_help()
            .to_string();
        let (own, global) = help.split_once("Global options:").unwrap();
        for flag in ["--input", "--result", "--cluster", "--wait", "--timeout"] {
            assert!(
                own.contains(flag) && !global.contains(flag),
                "{flag}: {help}"
            );
        }
        for flag in [
            "--json_output",
            "--insecure",
            "--ca-cert",
            "--answer-timeout",
        ] {
            assert!(
                global.contains(flag) && !own.contains(flag),
                "{flag}: {help}"
            );
        }
    }

    #[test]
    fn pairs_are_parsed_and_checked() {
        assert_eq!(
            parse_pairs(&strings(&["picture:abc", "label: def "]), "-i", "H:V").unwrap(),
            [
                ("picture".to_owned(), "abc".to_owned()),
                ("label".to_owned(), "def".to_owned())
            ]
        );
        for bad in ["picture", "picture:", ":abc", "a:b:c", ""] {
            let err =
                parse_pairs(&strings(&[bad]), "-i/--input", "HEXAGON:DATASET_UUID").unwrap_err();
            assert!(
                err.contains("expected HEXAGON:DATASET_UUID"),
                "{bad}: {err}"
            );
            assert!(err.contains("-i/--input"), "{err}");
        }
        let err = parse_pairs(&strings(&["a:x", "a:y"]), "-i", "H:V").unwrap_err();
        assert!(err.contains("given twice"), "{err}");
    }

    #[test]
    fn slices_split_on_commas_and_json_is_global() {
        let cli = Cli::try_parse_from([
            "hanamictl",
            "task",
            "create",
            "train",
            "-i",
            "a:x,b:y",
            "-i",
            "c:z",
            "-o",
            "l:x",
            "-c",
            "cl",
            "name",
            "-j",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::Task(TaskCmd::Create(TaskCreateCmd::Train { input, .. })) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(input, ["a:x", "b:y", "c:z"]);
        let cli = Cli::try_parse_from(["hanamictl", "--json", "host", "list", "extra"]).unwrap();
        assert!(cli.json);
        let cli = Cli::try_parse_from(["hanamictl", "host", "list", "--json_output"]).unwrap();
        assert!(cli.json);
    }

    /// A flag given twice counts once, as with the original's flags (it was a usage error);
    /// repeatable flags still collect every value (`slices_split_on_commas_and_json_is_global`).
    #[test]
    fn flags_given_twice_count_once() {
        for args in [
            &["hanamictl", "-j", "-j", "host", "list"][..],
            &["hanamictl", "--json", "--json_output", "host", "list"],
            &["hanamictl", "host", "list", "-j", "-j"],
            &["hanamictl", "-j", "host", "list", "-j"],
        ] {
            assert!(Cli::try_parse_from(args).unwrap().json, "{args:?}");
        }
    }

    /// A group command given with global flags only stands for its help (`hanamictl -j`,
    /// `hanamictl project -j`), as it does without them.
    #[test]
    fn the_help_of_a_group_given_with_flags_only_is_its_own() {
        let help = |args: &[&str]| {
            let words: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            let error = Cli::command()
                .try_get_matches_from(&words)
                .expect_err("no verb");
            assert_eq!(error.kind(), clap::error::ErrorKind::MissingSubcommand);
            group_help(&words).render_usage().to_string()
        };
        assert_eq!(
            help(&["hanamictl", "-j"]),
            "Usage: hanamictl [OPTIONS] <COMMAND>"
        );
        assert_eq!(
            help(&["hanamictl", "project", "-j"]),
            "Usage: hanamictl project [OPTIONS] <COMMAND>"
        );
        assert_eq!(
            help(&["hanamictl", "-j", "task", "create", "--json"]),
            "Usage: hanamictl task create [OPTIONS] <COMMAND>"
        );
        // Flags with values are no commands.
        assert_eq!(
            help(&["hanamictl", "--answer-timeout", "30", "task", "-j"]),
            "Usage: hanamictl task [OPTIONS] <COMMAND>"
        );
        assert_eq!(
            help(&["hanamictl", "--ca-cert", "project", "-j"]),
            "Usage: hanamictl [OPTIONS] <COMMAND>"
        );
    }

    /// The hint for the usage error of `args`.
    fn hint(args: &[&str]) -> Option<String> {
        let words: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let error = Cli::command()
            .try_get_matches_from(&words)
            .expect_err("a usage error");
        usage_hint(&error, &words)
    }

    /// Verbs that a group lacks but users try are pointed to the right command.
    #[test]
    fn verbs_a_group_lacks_point_to_the_right_command() {
        for group in ["checkpoint", "cluster", "dataset", "project", "user"] {
            assert_eq!(
                hint(&["hanamictl", group, "show", "x"]),
                Some(format!("note: `hanamictl {group} get` shows one"))
            );
        }
        for verb in ["restore", "save"] {
            let told = hint(&["hanamictl", "-j", "checkpoint", verb, "x"]).unwrap();
            assert!(
                told.contains("`hanamictl cluster restore --checkpoint CHECKPOINT_UUID"),
                "{told}"
            );
        }
        assert_eq!(hint(&["hanamictl", "cluster", "frobnicate"]), None);
        // A nested group without `get` gets none (not the top-level group of its name's).
        assert_eq!(hint(&["hanamictl", "user", "project", "show", "x"]), None);
        assert_eq!(
            hint(&["hanamictl", "-j", "task", "show", "x"]),
            Some("note: `hanamictl task get` shows one".to_owned())
        );
    }

    #[test]
    fn result_flags_on_train_tasks_point_to_request_tasks() {
        let seed = [
            "hanamictl",
            "task",
            "create",
            "train",
            "-j",
            "-i",
            "picture:x",
            "-r",
            "label:output_dataset",
            "-c",
            "cl",
            "name",
        ];
        assert!(hint(&seed).is_some_and(|h| h.contains("task create request")));
        let long = [
            "hanamictl",
            "task",
            "create",
            "train",
            "--result=label:x",
            "-c",
            "c",
            "n",
        ];
        assert!(hint(&long).is_some());
        // Other unknown flags, and -r elsewhere, get clap's message alone.
        let other = ["hanamictl", "task", "create", "train", "-x", "-c", "c", "n"];
        assert!(hint(&other).is_none());
        assert!(hint(&["hanamictl", "host", "list", "-r"]).is_none());
        // The other way round: expected values for a request task.
        let request = [
            "hanamictl",
            "task",
            "create",
            "request",
            "-i",
            "a:x",
            "-o",
            "c0:y",
            "-c",
            "c",
            "n",
        ];
        assert!(hint(&request).is_some_and(|h| h.contains("with `-r HEXAGON:RESULT_NAME`")));
    }

    #[test]
    fn two_uuids_run_together_are_pointed_out() {
        // As the documentation prints it, and joined by '-'.
        let cluster = "9f86921d-9a7c-44a2-836c-1683928d9354";
        let task = "2e28e3bb-af45-4fbc-8ce3-c0c9a8e704bc";
        for joined in [format!("{cluster}{task}"), format!("{cluster}-{task}")] {
            let shown = hint(&["hanamictl", "task", "get", "-c", &joined]);
            assert_eq!(
                shown.as_deref(),
                Some(
                    format!(
                        "note: '{joined}' is two uuids run together: give them as two words, \
                         separated by a space"
                    )
                    .as_str()
                )
            );
        }
        // A missing task uuid alone gets clap's message alone.
        assert!(hint(&["hanamictl", "task", "get", "-c", cluster]).is_none());
        // Multi-byte text of that length is no uuid (and no panic).
        let text = "é".repeat(36);
        assert!(hint(&["hanamictl", "task", "get", "-c", &text]).is_none());
    }

    /// A negative number is a bad value of its flag, not an unknown flag.
    #[test]
    fn negative_numbers_are_refused_as_values() {
        for args in [
            &["hanamictl", "log", "audit", "-p", "-1"][..],
            &["hanamictl", "host", "list", "--answer-timeout", "-5"],
            &[
                "hanamictl",
                "task",
                "create",
                "train",
                "--wait",
                "--timeout",
                "-1",
                "-i",
                "a:b",
                "-o",
                "c:d",
                "-c",
                "cl",
                "name",
            ],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(error.contains("invalid value '-"), "{error}");
        }
    }

    /// The help of `--answer-timeout` gives the SDK's connect timeout in words.
    #[test]
    fn the_connect_timeout_in_the_help_is_the_sdks() {
        let help = Cli::command().render_long_help().to_string();
        let seconds = hanami_sdk::CONNECT_TIMEOUT.as_secs();
        assert!(
            help.contains(&format!("opening a connection may take {seconds} seconds")),
            "{help}"
        );
    }

    /// A wait longer than the clock can count was a panic after the task was queued.
    #[test]
    fn wait_timeouts_have_a_range() {
        let wait = |timeout: &str| {
            Cli::try_parse_from([
                "hanamictl",
                "cluster",
                "save",
                "--wait",
                "--timeout",
                timeout,
                "-n",
                "name",
                "cluster",
            ])
            .map(drop)
            .map_err(|e| e.to_string())
        };
        assert!(wait("315360000").is_ok());
        let error = wait("18446744073709551615").unwrap_err();
        assert!(error.contains("not in 1..=315360000"), "{error}");
        // A wait of no time could only fail, after the task was queued.
        let error = wait("0").unwrap_err();
        assert!(error.contains("invalid value '0'"), "{error}");
    }

    /// `--timeout` alone waits as `--wait --timeout` does; without either nothing waits,
    /// and `--wait` alone waits an hour at most.
    #[test]
    fn a_timeout_implies_waiting() {
        let seconds = |flags: &[&str]| {
            let args = [
                &["hanamictl", "task", "get", "-c", "cluster"],
                flags,
                &["task"],
            ];
            let cli = Cli::try_parse_from(args.concat()).expect("valid arguments");
            cli.command.wait().expect("task get can wait").seconds()
        };
        assert_eq!(seconds(&[]), None);
        assert_eq!(seconds(&["--wait"]), Some(3600));
        assert_eq!(seconds(&["--timeout", "7"]), Some(7));
        assert_eq!(seconds(&["--wait", "--timeout", "9"]), Some(9));
    }

    /// `user update` without anything to change is refused before any login.
    #[test]
    fn a_user_update_needs_a_change() {
        let error = Cli::try_parse_from(["hanamictl", "user", "update", "someone"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the following required arguments were not provided")
                && error.contains("--is_admin"),
            "{error}"
        );
        assert!(Cli::try_parse_from(["hanamictl", "user", "update", "-n", "New", "x"]).is_ok());
    }

    #[test]
    fn required_flags_and_arguments_are_enforced() {
        for args in [
            &["hanamictl", "project", "create", "id1"][..],
            &["hanamictl", "project", "get"],
            &[
                "hanamictl",
                "task",
                "create",
                "request",
                "-i",
                "a:b",
                "-c",
                "c",
                "n",
            ],
            &["hanamictl", "dataset", "check", "abc"],
            &["hanamictl", "cluster", "restore", "abc"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
