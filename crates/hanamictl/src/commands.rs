//! Running a parsed command: local checks, login, the SDK call, and the output.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hanami_sdk::types::clusters::MAX_TEMPLATE_BYTES;
use hanami_sdk::types::tasks::{Task, TaskState};
use hanami_sdk::{Client, ConnectOptions};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{
    CheckpointCmd, Cli, ClusterCmd, Command, DatasetCmd, DatasetCreateCmd, HostCmd, LogCmd,
    ProjectCmd, TaskCmd, TaskCreateCmd, UserCmd, UserProjectCmd, Wait, parse_pairs,
};
use crate::error::CliError;
use crate::interrupts::{StopSignal, UploadInterrupts};
use crate::output;
use crate::password::{self, Terminal};
use crate::progress::Progress;
use hanami_sdk::types::websocket::{CLOSED_SHUTTING_DOWN, CLOSED_UPLOAD_GONE};

/// Fields of a project, in display order.
const PROJECT: &[&str] = &["id", "name", "creator_id", "created_at"];
/// Fields of a user.
const USER: &[&str] = &[
    "id",
    "name",
    "is_admin",
    "projects",
    "creator_id",
    "created_at",
];
/// Fields of a user's project assignment.
const ASSIGNMENT: &[&str] = &["project_id", "role", "is_project_admin"];
/// Fields of the caller's scope after a project switch.
const SCOPE: &[&str] = &[
    "id",
    "name",
    "is_admin",
    "project_id",
    "role",
    "is_project_admin",
];
/// Fields of a single dataset.
const DATASET: &[&str] = &[
    "uuid",
    "name",
    "version",
    "number_of_columns",
    "number_of_rows",
    "description",
    "visibility",
    "owner_id",
    "project_id",
    "created_at",
];
/// Fields of clusters, checkpoints and dataset lists.
const RESOURCE: &[&str] = &[
    "uuid",
    "name",
    "visibility",
    "owner_id",
    "project_id",
    "created_at",
];
/// Fields of a task (`note` only when the server sends one).
const TASK: &[&str] = &[
    "uuid",
    "state",
    "current_cycle",
    "total_number_of_cycles",
    "queue_timestamp",
    "start_timestamp",
    "end_timestamp",
    "?note",
];
/// Columns of the task list (as in the original: only these two).
const TASK_LIST: &[&str] = &["uuid", "state"];
/// Fields of the answer to `cluster task_mode`.
const MODE: &[&str] = &["uuid", "name", "new_state", "created_at"];
/// Fields of the answer to `cluster save`.
const SAVE: &[&str] = &["uuid", "name"];
/// Fields of the answer to `cluster restore`.
const RESTORE: &[&str] = &["uuid"];
/// Fields of the answer to `dataset check`.
const CHECK: &[&str] = &["accuracy"];
/// Columns of the host list.
const HOST: &[&str] = &["uuid", "type"];
/// Columns of the audit log.
const AUDIT_LOG: &[&str] = hanami_sdk::types::list::AUDIT_LOG_COLUMNS;
/// Columns of the error log.
const ERROR_LOG: &[&str] = hanami_sdk::types::list::ERROR_LOG_COLUMNS;

/// What a command prints on success.
enum Shown {
    /// One object as a key/value table.
    Single(Value, &'static [&'static str]),
    /// A `{"header", "body"}` list as a table.
    List(Value, &'static [&'static str]),
    /// An object whose `key` holds an array of objects, shown as a table.
    Objects(Value, &'static str, &'static [&'static str]),
    /// A fixed line (deletes); printed even with `-j`, as by the original.
    Line(String),
    /// Nothing more: the command wrote its output itself (an export).
    Nothing,
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("wire types always serialize")
}

fn single(value: &impl Serialize, fields: &'static [&'static str]) -> Shown {
    Shown::Single(to_json(value), fields)
}

fn list(value: &impl Serialize, fields: &'static [&'static str]) -> Shown {
    Shown::List(to_json(value), fields)
}

fn deleted(kind: &str, id: &str) -> Shown {
    Shown::Line(format!("successfully deleted {kind} '{id}'"))
}

/// Runs a command and prints its result on standard output.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    let options = connect_options(&cli);
    let shown = match cli.command {
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "hanamictl", &mut script);
            return write_stdout(&String::from_utf8_lossy(&script));
        }
        command => {
            let credentials = Credentials::from_env()?;
            let options = options?;
            let local = Local::read(&command)?;
            let client = credentials.login(&options).await?;
            let session = Session {
                client,
                options,
                project: credentials.project,
            };
            execute(&session, command, local, json).await?
        }
    };
    let text = match shown {
        Shown::Line(line) => format!("{line}\n"),
        Shown::Nothing => String::new(),
        Shown::Single(value, _) | Shown::List(value, _) | Shown::Objects(value, _, _) if json => {
            output::json(&value)
        }
        Shown::Single(value, fields) => output::single_table(&value, fields),
        Shown::List(value, fields) => output::list_table(&value, fields),
        Shown::Objects(value, key, fields) => {
            let items = value
                .get(key)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            output::objects_table(items, fields)
        }
    };
    write_stdout(&text)
}

/// Why an export failed: the server, or writing the CSV.
enum Exported {
    Sdk(hanami_sdk::Error),
    Local(CliError),
}

/// Writes rows `start..start + count` of a dataset (to its end without `count`) as CSV into
/// `output` or onto standard output, in parts of at most
/// [`MAX_ROW_VALUES`](hanami_sdk::types::datasets::MAX_ROW_VALUES) values (an answer of
/// `dataset/rows`). The header names each column after its column group: a group of one
/// column by its name, a wider one as `name_0`, `name_1`, … A regular file (or a new one)
/// is written beside `output` and renamed onto it once complete, so that a failed export
/// leaves an existing file as it was; see [`Destination`].
async fn export(
    client: &Client,
    uuid: &str,
    start: u64,
    count: Option<u64>,
    output: Option<&Path>,
) -> Result<Shown, Exported> {
    let dataset = client.dataset(uuid).await.map_err(Exported::Sdk)?;
    let (rows, columns) = (dataset.number_of_rows, dataset.number_of_columns);
    if start > rows {
        return Err(Exported::Local(CliError::msg(format!(
            "dataset '{uuid}' has {rows} rows: --start is at most {rows}"
        ))));
    }
    let most = hanami_sdk::types::datasets::MAX_ROW_VALUES;
    if columns > most {
        return Err(Exported::Local(CliError::msg(format!(
            "dataset '{uuid}' has rows of {columns} values, more than the {most} that the \
             server sends at once: its rows cannot be exported"
        ))));
    }
    let mut names: Vec<String> = (0..columns).map(|c| format!("column_{c}")).collect();
    for (name, range) in &dataset.description {
        let width = range.end_column.saturating_sub(range.start_column);
        for c in range.start_column..range.end_column.min(columns) {
            names[c as usize] = if width == 1 {
                name.clone()
            } else {
                format!("{name}_{}", c - range.start_column)
            };
        }
    }
    let end = count.map_or(rows, |n| start.saturating_add(n).min(rows));
    let destination = output.map(Destination::of);
    // Opened here and held until the rename: the lock on a partial file keeps other exports
    // out of it until it has its place.
    let file = match destination.as_ref().map(Destination::open).transpose() {
        Ok(file) => file,
        // Nothing of this export's to remove (another export's partial file stays).
        Err(e) => return Err(left_as_it_was(e, destination.as_ref())),
    };
    let into = destination.as_ref().zip(file.as_ref());
    let writing = write_rows(client, uuid, &names, start..end, into);
    // Ctrl-C or SIGTERM while a partial file is written: it is removed below, as after any
    // failure, instead of staying behind when the signal ends the program.
    let existed = match &destination {
        Some(Destination::Replace { kept, .. }) => Some(kept.is_some()),
        _ => None,
    };
    let stop = existed.and_then(|_| StopSignal::install());
    let written = match (stop, output, existed) {
        (Some(mut stop), Some(path), Some(existed)) => tokio::select! {
            written = writing => written,
            () = stop.received() => Err(Exported::Local(CliError::Interrupted(if existed {
                format!("stopped: {} was left as it was", path.display())
            } else {
                format!("stopped: {} was not made", path.display())
            }))),
        },
        _ => writing.await,
    };
    let (Some(path), Some(destination)) = (output, destination) else {
        return written.map(|()| Shown::Nothing);
    };
    match (written, destination) {
        (
            Ok(()),
            Destination::Replace {
                file,
                partial,
                kept,
            },
        ) => {
            if let Some(permissions) = kept {
                // Best effort: the file's mode, which the rename would otherwise lose.
                let _ = std::fs::set_permissions(&partial, permissions);
            }
            std::fs::rename(&partial, &file).map_err(|e| {
                let _ = std::fs::remove_file(&partial);
                Exported::Local(CliError::msg(format!(
                    "cannot move the export into {}: {e}",
                    path.display()
                )))
            })?;
        }
        (Ok(()), Destination::Into(_)) => {}
        (Ok(()), Destination::Standard { .. }) => return Ok(Shown::Nothing),
        (Err(e), destination @ Destination::Replace { .. }) => {
            let _ = std::fs::remove_file(destination.written());
            return Err(left_as_it_was(e, Some(&destination)));
        }
        (Err(e), Destination::Into(_) | Destination::Standard { .. }) => return Err(e),
    }
    let done = end - start;
    Ok(Shown::Line(format!(
        "wrote {done} row{} of dataset '{uuid}' to {}",
        if done == 1 { "" } else { "s" },
        path.display()
    )))
}

/// The error of a failed upload of the dataset `name`, worded for what became of it.
fn upload_failed(name: &str, error: hanami_sdk::Error, session: &Session) -> CliError {
    use hanami_sdk::Error as E;
    let failed = |detail: &str| CliError::msg(format!("upload of '{name}' failed: {detail}"));
    match error {
        E::Cancelled => CliError::Interrupted(format!(
            "upload of '{name}' interrupted; the server was asked to discard what had arrived"
        )),
        // Not a failed upload: a retry would make a second dataset.
        e @ (E::CreatedUnread { .. } | E::FinalizeUnanswered { .. }) => {
            CliError::msg(e.to_string())
        }
        // The server's words for an upload that went away under the session.
        E::NotFound(gone) if gone == CLOSED_UPLOAD_GONE => failed(&format!(
            "{gone} (its dataset was deleted, it sent nothing for the server's upload_timeout, \
             or another session finished it; `hanamictl dataset list` shows what became of it)"
        )),
        // Its session refused for the same reason (gone before the session started).
        E::NotFound(body) => failed(&format!("status 404: {body}")),
        E::Status { status: 503, body } if body == CLOSED_SHUTTING_DOWN => failed(&format!(
            "status 503: {body}; a stopping server discards unfinished uploads: upload again \
             once it is back"
        )),
        // The SDK's limits on a session's opening, sends and answers.
        e @ E::SessionTimeout { .. } => failed(&format!(
            "{e}\n(the server did not answer in time; a slow server needs a longer \
             --answer-timeout or HANAMI_ANSWER_TIMEOUT; `hanamictl dataset list` shows whether \
             the upload is still there)"
        )),
        // A session cut off (one closed with a reason says it all).
        e @ E::WebSocket(_) => failed(&format!(
            "{e}\n(the connection to the server broke or was refused: is the server still \
             running? `hanamictl dataset list` shows whether the upload is still there)"
        )),
        e => session
            .error(e)
            .context(&format!("upload of '{name}' failed")),
    }
}

/// A note on standard error for an empty first page of a log filtered by a user: the
/// server answers an unknown user id with no entries, as the original did, so a typo
/// would otherwise look like a user who did nothing.
fn note_empty_log(entries: &hanami_sdk::types::list::ListTable, page: &crate::cli::LogPage) {
    if let (Some(user), 0, true) = (&page.user, page.page, entries.body.is_empty()) {
        crate::error::report(format_args!(
            "note: no entries for the user id '{user}' (`hanamictl user get {user}` says \
             whether that user exists)"
        ));
    }
}

/// An export's error, saying of a file that it replaces that it was left as it was.
fn left_as_it_was(error: Exported, destination: Option<&Destination>) -> Exported {
    match (error, destination) {
        (
            Exported::Local(e),
            Some(Destination::Replace {
                file,
                kept: Some(_),
                ..
            }),
        ) => Exported::Local(e.context(&format!("{} was left as it was", file.display()))),
        (other, _) => other,
    }
}

/// Where `dataset export -o PATH` writes.
enum Destination {
    /// A regular file (behind links too: `file` is where they lead) or nothing yet: written
    /// as `partial` beside it, then renamed onto it, with the permissions it had (`kept`).
    /// The partial file is locked while this export owns it (see [`open_partial`]).
    Replace {
        file: PathBuf,
        partial: PathBuf,
        kept: Option<std::fs::Permissions>,
    },
    /// Anything else (a named pipe, a device, a link to nothing yet): written into, which a
    /// rename would replace instead.
    Into(PathBuf),
    /// What standard output or error is (`-o /dev/stdout`): written through that stream
    /// itself, as the shell set it up (`>> file` appends, and what the shell writes into
    /// a `> file` afterwards comes after the rows), with no line about it there.
    Standard { path: PathBuf, stream: Stream },
}

/// Standard output or standard error.
#[derive(Clone, Copy)]
enum Stream {
    Output,
    Error,
}

impl Destination {
    fn of(path: &Path) -> Destination {
        let replace = |file: PathBuf, kept| {
            let mut name = std::ffi::OsString::from(".");
            name.push(file.file_name().unwrap_or_default());
            name.push(".hanamictl-partial");
            let partial = file.with_file_name(name);
            Destination::Replace {
                file,
                partial,
                kept,
            }
        };
        match std::fs::metadata(path) {
            // `-o /dev/stdout` onto a file the shell opened (`>> file` appends): written
            // into as the shell set it up, not replaced.
            Ok(meta) if let Some(stream) = standard_stream(&meta) => Destination::Standard {
                path: path.to_owned(),
                stream,
            },
            Ok(meta) if meta.is_file() => replace(
                std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
                Some(meta.permissions()),
            ),
            Ok(_) => Destination::Into(path.to_owned()),
            Err(_) if std::fs::symlink_metadata(path).is_err() => replace(path.to_owned(), None),
            Err(_) => Destination::Into(path.to_owned()),
        }
    }

    /// Opens the file the rows are written to: a partial file anew (see [`open_partial`]),
    /// a standard stream as a copy of its descriptor (which shares the shell's position in
    /// a file, where opening `/dev/stdout` again would start one of its own), anything else
    /// to be appended to.
    fn open(&self) -> Result<std::fs::File, Exported> {
        use std::os::fd::AsFd;
        let opened = match self {
            Destination::Replace { partial, file, .. } => open_partial(partial, file),
            Destination::Standard { stream, .. } => match stream {
                Stream::Output => std::io::stdout().as_fd().try_clone_to_owned(),
                Stream::Error => std::io::stderr().as_fd().try_clone_to_owned(),
            }
            .map(std::fs::File::from),
            Destination::Into(path) => std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path),
        };
        opened.map_err(|e| self.failed("create", e))
    }

    /// The error of a failure to `what` (create, write to) the file written.
    fn failed(&self, what: &str, e: std::io::Error) -> Exported {
        let written = self.written();
        let folder = written.parent().filter(|f| !f.as_os_str().is_empty());
        Exported::Local(CliError::msg(match folder {
            // Named after the file asked for: the partial file beside it is a detail.
            Some(folder) if e.kind() == std::io::ErrorKind::NotFound && !folder.is_dir() => {
                format!(
                    "cannot {what} {}: the folder {} does not exist",
                    self.asked().display(),
                    folder.display()
                )
            }
            _ => format!("cannot {what} {}: {e}", written.display()),
        }))
    }

    /// The file the rows end up in.
    fn asked(&self) -> &Path {
        match self {
            Destination::Replace { file, .. } => file,
            Destination::Into(path) | Destination::Standard { path, .. } => path,
        }
    }

    /// The file the rows are written to.
    fn written(&self) -> &Path {
        match self {
            Destination::Replace { partial, .. } => partial,
            Destination::Into(path) | Destination::Standard { path, .. } => path,
        }
    }
}

/// Opens the partial file of an export into `file` for this export alone: locked (the lock
/// goes with the file's last descriptor), emptied, never through a link. A partial file
/// that another export holds is refused (two exports wrote into one partial file, and the
/// one that failed removed the other's); one that an export killed before it could remove
/// it is taken over. A file that the export holding it renamed or removed between this
/// opening and the lock is let go, and the name opened again.
fn open_partial(partial: &Path, file: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    loop {
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(partial)?;
        match opened.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!(
                        "another export into {} is under way; try again once it has ended",
                        file.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let held = opened.metadata()?;
        let named = std::fs::symlink_metadata(partial);
        if named.is_ok_and(|named| (named.dev(), named.ino()) == (held.dev(), held.ino())) {
            opened.set_len(0)?;
            return Ok(opened);
        }
    }
}

/// The standard stream whose file `meta` is, if any.
fn standard_stream(meta: &std::fs::Metadata) -> Option<Stream> {
    use std::os::unix::fs::MetadataExt;
    [
        ("/dev/stdout", Stream::Output),
        ("/dev/stderr", Stream::Error),
    ]
    .into_iter()
    .find(|(standard, _)| {
        std::fs::metadata(standard).is_ok_and(|s| (s.dev(), s.ino()) == (meta.dev(), meta.ino()))
    })
    .map(|(_, stream)| stream)
}

/// Writes the header `names` and the dataset's `rows` as CSV into the opened file of
/// `into`, or onto standard output without one; a closed pipe ends it quietly.
async fn write_rows(
    client: &Client,
    uuid: &str,
    names: &[String],
    rows: std::ops::Range<u64>,
    into: Option<(&Destination, &std::fs::File)>,
) -> Result<(), Exported> {
    let local = |what: &str, e: std::io::Error| match into {
        Some((destination, _)) => destination.failed(what, e),
        None => Exported::Local(CliError::msg(format!("cannot {what} standard output: {e}"))),
    };
    let sink: Box<dyn std::io::Write + '_> = match into {
        Some((_, file)) => Box::new(file),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(sink);
    // `| head`, also behind `-o /dev/stdout`: the reader has what it wanted.
    let to_standard = matches!(into, None | Some((Destination::Standard { .. }, _)));
    let mut write = |text: &str| match out.write_all(text.as_bytes()) {
        Err(e) if to_standard && e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        other => other.map(|()| true).map_err(|e| local("write to", e)),
    };
    let mut going = write(&(names.join(",") + "\n"))?;
    let columns = names.len() as u64;
    let per_answer = (hanami_sdk::types::datasets::MAX_ROW_VALUES / columns.max(1)).max(1);
    let mut next = rows.start;
    while going && next < rows.end {
        let part = client
            .dataset_rows(uuid, next, per_answer.min(rows.end - next))
            .await
            .map_err(Exported::Sdk)?;
        if part.rows.is_empty() {
            break;
        }
        next += part.rows.len() as u64;
        let mut text = String::new();
        for row in &part.rows {
            let cells: Vec<String> = row.iter().map(f32::to_string).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        going = write(&text)?;
    }
    match out.flush() {
        Err(e) if to_standard && e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| local("write to", e)),
    }
}

/// Writes to standard output; a closed pipe (`| head`) ends the program quietly.
fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| CliError::msg(format!("cannot write the output: {e}"))),
    }
}

/// `NAME:VALUE` pairs of a flag, parsed.
type Pairs = Vec<(String, String)>;

/// What a command takes from this machine (files, a password typed at the prompt, flag
/// values parsed further than clap does), read and checked before anything goes over the
/// network.
enum Local {
    /// Nothing beyond the command line.
    Nothing,
    /// The text of a cluster template.
    Template(String),
    /// The pairs of a training task.
    Train { inputs: Pairs, outputs: Pairs },
    /// The pairs of a request task, with its one result.
    Request {
        inputs: Pairs,
        result: (String, String),
    },
    /// The password of a new user, or a user's new password.
    Password(String),
}

impl Local {
    /// Reads and checks what `command` takes from this machine.
    fn read(command: &Command) -> Result<Self, CliError> {
        let pairs = |items: &[String], flag: &str, shape: &str| {
            parse_pairs(items, flag, shape).map_err(CliError::msg)
        };
        const UUIDS: &str = "HEXAGON:DATASET_UUID";
        Ok(match command {
            Command::Cluster(ClusterCmd::Create { template, .. }) => {
                let bytes = read_local(template, "template", MAX_TEMPLATE_BYTES)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    CliError::msg(format!(
                        "the template file '{}' is not UTF-8 text",
                        template.display()
                    ))
                })?;
                Local::Template(text)
            }
            Command::Dataset(DatasetCmd::Create(DatasetCreateCmd::Mnist {
                input, label, ..
            })) => {
                uploadable(input, "input")?;
                uploadable(label, "label")?;
                Local::Nothing
            }
            Command::Dataset(DatasetCmd::Create(DatasetCreateCmd::Csv { input, .. })) => {
                uploadable(input, "input")?;
                Local::Nothing
            }
            Command::Task(TaskCmd::Create(TaskCreateCmd::Train { input, output, .. })) => {
                Local::Train {
                    inputs: pairs(input, "-i/--input", UUIDS)?,
                    outputs: pairs(output, "-o/--output", UUIDS)?,
                }
            }
            Command::Task(TaskCmd::Create(TaskCreateCmd::Request { input, result, .. })) => {
                let inputs = pairs(input, "-i/--input", UUIDS)?;
                let result = pairs(result, "-r/--result", "HEXAGON:DATASET_NAME")?;
                let Ok([result]) = <[_; 1]>::try_from(result) else {
                    return Err(CliError::msg(
                        "give exactly one -r/--result pair: a request task has one result dataset",
                    ));
                };
                Local::Request { inputs, result }
            }
            Command::User(UserCmd::Create { password, .. }) => Local::Password(match password {
                Some(password) => password.clone(),
                None => password::ask_new_password(&mut Terminal).map_err(CliError::msg)?,
            }),
            Command::User(UserCmd::Update {
                password,
                new_password,
                ..
            }) => match (password, new_password) {
                (Some(password), _) => Local::Password(password.clone()),
                (None, true) => Local::Password(
                    password::ask_new_password(&mut Terminal).map_err(CliError::msg)?,
                ),
                (None, false) => Local::Nothing,
            },
            _ => Local::Nothing,
        })
    }
}

/// The error for a command whose [`Local`] is of another command: a bug of this program.
fn local_mismatch() -> CliError {
    CliError::msg("internal error: the command's local inputs were not read")
}

/// Fails early with a clear message if a local file cannot be opened. A pipe or device is
/// not opened here (that could wait for a writer): whoever reads it says more (uploads
/// refuse them, a template may come from a process substitution).
fn readable(path: &Path, what: &str) -> Result<(), CliError> {
    let metadata = std::fs::metadata(path).map_err(|e| unreadable(path, what, &e))?;
    if metadata.is_dir() {
        return Err(unreadable(
            path,
            what,
            &std::io::Error::other("is a directory"),
        ));
    }
    if metadata.is_file() {
        std::fs::File::open(path).map_err(|e| unreadable(path, what, &e))?;
    }
    Ok(())
}

/// [`readable`] for a file to upload, which must be a regular file: an upload announces its
/// size first.
fn uploadable(path: &Path, what: &str) -> Result<(), CliError> {
    readable(path, what)?;
    if std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file()) {
        Ok(())
    } else {
        Err(unreadable(
            path,
            what,
            &std::io::Error::other(
                "not a regular file (uploads announce their size first, so pipes and devices \
                 cannot be uploaded; save the data to a file)",
            ),
        ))
    }
}

/// Largest CA certificate file read, in bytes (a bundle of a few hundred certificates).
const MAX_CA_CERT_BYTES: usize = 1 << 20;

/// Reads a whole local file of at most `limit` bytes, with the messages of [`readable`]. A
/// longer one (or an endless device) is refused once `limit` bytes are read.
fn read_local(path: &Path, what: &str, limit: usize) -> Result<Vec<u8>, CliError> {
    readable(path, what)?;
    let file = std::fs::File::open(path).map_err(|e| unreadable(path, what, &e))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(path, what, &e))?;
    if bytes.len() > limit {
        return Err(CliError::msg(format!(
            "the {what} file '{}' is larger than {limit} bytes, the most it may hold",
            path.display()
        )));
    }
    Ok(bytes)
}

fn unreadable(path: &Path, what: &str, error: &std::io::Error) -> CliError {
    CliError::msg(format!(
        "cannot read the {what} file '{}': {error}",
        path.display()
    ))
}

/// TLS settings from `--insecure` and `--ca-cert`, and `--answer-timeout`.
fn connect_options(cli: &Cli) -> Result<ConnectOptions, CliError> {
    let root_certificate_pem = cli
        .ca_cert
        .as_deref()
        .map(|path| {
            let pem = read_local(path, "CA certificate", MAX_CA_CERT_BYTES)?;
            let count = |marker: &[u8]| pem.windows(marker.len()).filter(|w| w == &marker).count();
            let begun = count(b"-----BEGIN CERTIFICATE-----");
            let problem = if begun == 0 {
                "holds no PEM certificate (a block '-----BEGIN CERTIFICATE-----')"
            } else if count(b"-----END CERTIFICATE-----") < begun {
                "is cut short: a certificate has no end line '-----END CERTIFICATE-----'"
            } else {
                return Ok(pem);
            };
            Err(CliError::msg(format!(
                "the CA certificate file '{}' (--ca-cert or HANAMI_CA_CERT) {problem}",
                path.display()
            )))
        })
        .transpose()?;
    Ok(ConnectOptions {
        accept_invalid_certs: cli.insecure,
        root_certificate_pem,
        answer_timeout: Duration::from_secs(cli.answer_timeout),
    })
}

/// A variable of the environment that must be set; unset and empty are the same.
fn env(name: &str) -> Result<String, CliError> {
    optional_env(name)?.ok_or_else(|| {
        CliError::msg(format!(
            "{name} is not set (export HANAMI_ADDRESS, HANAMI_USER and HANAMI_PW)"
        ))
    })
}

/// A variable of the environment, `None` where unset or empty; one that is not UTF-8 is
/// an error (taking it as unset would act on the wrong project, say).
fn optional_env(name: &str) -> Result<Option<String>, CliError> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value).filter(|v| !v.is_empty())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(CliError::msg(format!("{name} is not valid UTF-8")))
        }
    }
}

/// The server's address from `HANAMI_ADDRESS`: `http://` or `https://` (in any case),
/// `host:port`, and a path only for a server behind a proxy that serves it under that path
/// (it goes in front of every endpoint, as with the original CLI); no query or fragment, and
/// a trailing `/` is dropped. Returns the address and its path, if it has one.
fn server_address(raw: &str) -> Result<(String, Option<String>), CliError> {
    let refused = |why: &str| {
        CliError::msg(format!(
            "HANAMI_ADDRESS must be http://HOST:PORT or https://HOST:PORT{why}, got '{raw}'"
        ))
    };
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| refused(""))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(refused(""));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, path) = match rest.find('/') {
        Some(at) => (&rest[..at], Some(rest[at..].to_owned())),
        None => (rest, None),
    };
    if host.is_empty() {
        return Err(refused(""));
    }
    if rest.contains(char::is_whitespace) {
        return Err(refused(" without spaces"));
    }
    if rest.contains(['?', '#']) {
        return Err(refused(
            " without a query or fragment (hanamictl adds /v1.0alpha/... itself)",
        ));
    }
    // A port, if given, after the last ':' (outside an IPv6 address's brackets).
    if let Some((_, port)) = host.rsplit_once(':')
        && !port.contains(']')
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(refused(" with a port from 1 to 65535"));
    }
    Ok((format!("{scheme}://{rest}"), path))
}

/// Server address and login from the environment.
struct Credentials {
    address: String,
    /// The address's path (for a server behind a proxy), if it has one.
    path: Option<String>,
    user: String,
    password: String,
    project: Option<String>,
}

impl Credentials {
    /// Reads `HANAMI_USER`, `HANAMI_PW`, `HANAMI_ADDRESS` (in this order, as the original)
    /// and the optional `HANAMI_PROJECT`.
    fn from_env() -> Result<Self, CliError> {
        let user = env("HANAMI_USER")?;
        let password = env("HANAMI_PW")?;
        let (address, path) = server_address(&env("HANAMI_ADDRESS")?)?;
        let project = optional_env("HANAMI_PROJECT")?;
        Ok(Self {
            address,
            path,
            user,
            password,
            project,
        })
    }

    /// Logs in, and switches into `HANAMI_PROJECT` if it is set.
    async fn login(&self, options: &ConnectOptions) -> Result<Client, CliError> {
        let sdk = |e| CliError::sdk(e, &self.address, options);
        let mut client = Client::login_with(&self.address, &self.user, &self.password, options)
            .await
            .map_err(|e| match (sdk(e), &self.path) {
                // A server answers an unknown path so, and this path is not the server's.
                // The server checks a password's length before it checks the password.
                (CliError::Status { code: 400, body }, _)
                    if body.starts_with("Given item 'password' is shorter than") =>
                {
                    CliError::Status {
                        code: 400,
                        body: format!(
                            "{body}\nnote: the password comes from the variable HANAMI_PW, \
                             which is too short to be any user's password"
                        ),
                    }
                }
                // The user never typed the id either.
                (CliError::Status { code: 400, body }, _) if body.contains("'id'") => {
                    CliError::Status {
                        code: 400,
                        body: format!(
                            "{body}\nnote: the user id comes from the variable HANAMI_USER \
                             ({:?})",
                            self.user
                        ),
                    }
                }
                (CliError::Status { code: 401, body }, Some(path)) => CliError::Status {
                    code: 401,
                    body: format!(
                        "{body}\nnote: HANAMI_ADDRESS has the path '{path}', which a Hanami \
                         server does not know: the address is http://HOST:PORT, with a path \
                         only behind a proxy that serves the server under it"
                    ),
                },
                // White space at an end of the password (a line break left from a file
                // or `echo`, say), which the user cannot see in the variable.
                (CliError::Status { code: 401, body }, None)
                    if self.password.trim() != self.password =>
                {
                    CliError::Status {
                        code: 401,
                        body: format!(
                            "{body}\nnote: the password comes from the variable HANAMI_PW, \
                             which ends or starts with white space (a line break, say): is \
                             that part of the password?"
                        ),
                    }
                }
                (other, _) => other,
            })?;
        if let Some(project) = &self.project {
            client
                .switch_project(project)
                .await
                .map_err(|e| match sdk(e) {
                    // The user never typed `project_id`: say where it came from.
                    CliError::Status { code, body } => CliError::Status {
                        code,
                        body: format!(
                            "{body}\nnote: the project comes from the variable \
                             HANAMI_PROJECT ('{project}')"
                        ),
                    },
                    other => other,
                })?;
        }
        Ok(client)
    }
}

fn as_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// A logged-in client, the options it connected with (for error hints) and the project
/// of `HANAMI_PROJECT`.
struct Session {
    client: Client,
    options: ConnectOptions,
    project: Option<String>,
}

impl Session {
    /// The CLI's error for an SDK error of a call to this session's server.
    fn error(&self, error: hanami_sdk::Error) -> CliError {
        CliError::sdk(error, self.client.address(), &self.options)
    }
}

async fn execute(
    session: &Session,
    command: Command,
    local: Local,
    json: bool,
) -> Result<Shown, CliError> {
    let client = &session.client;
    let sdk = |e| session.error(e);
    let progress_allowed = !json && std::io::stderr().is_terminal();
    // Before the task is queued, so that no Ctrl-C between its creation and the wait ends
    // the command without a word about the task.
    let mut waiter = Waiter {
        show_progress: progress_allowed,
        stop: command
            .wait()
            .is_some_and(|w| w.wait)
            .then(StopSignal::install)
            .flatten(),
    };
    Ok(match command {
        Command::Completion { .. } => unreachable!("handled without login"),
        Command::Project(cmd) => match cmd {
            ProjectCmd::Create { name, id } => single(
                &client.create_project(&id, &name).await.map_err(sdk)?,
                PROJECT,
            ),
            ProjectCmd::Get { id } => single(&client.project(&id).await.map_err(sdk)?, PROJECT),
            ProjectCmd::List(_) => list(&client.projects().await.map_err(sdk)?, PROJECT),
            ProjectCmd::Delete { id } => {
                client.delete_project(&id).await.map_err(sdk)?;
                deleted("project", &id)
            }
        },
        Command::User(cmd) => match cmd {
            UserCmd::Create {
                name, is_admin, id, ..
            } => {
                let Local::Password(password) = local else {
                    return Err(local_mismatch());
                };
                let user = client
                    .create_user(&id, &name, &password, is_admin)
                    .await
                    .map_err(sdk)?;
                single(&user, USER)
            }
            UserCmd::Get { id } => single(&client.user(&id).await.map_err(sdk)?, USER),
            UserCmd::List(_) => list(&client.users().await.map_err(sdk)?, USER),
            UserCmd::Delete { id } => {
                client.delete_user(&id).await.map_err(sdk)?;
                deleted("user", &id)
            }
            UserCmd::Update {
                name, is_admin, id, ..
            } => {
                let password = match local {
                    Local::Password(password) => Some(password),
                    Local::Nothing => None,
                    _ => return Err(local_mismatch()),
                };
                let change = hanami_sdk::types::users::UpdateUserRequest {
                    id,
                    name,
                    password,
                    is_admin,
                };
                single(&client.update_user(&change).await.map_err(sdk)?, USER)
            }
            UserCmd::Project(cmd) => match cmd {
                UserProjectCmd::Add {
                    project,
                    role,
                    is_project_admin,
                    id,
                } => {
                    let user = client
                        .assign_project(&id, &project, &role, is_project_admin)
                        .await
                        .map_err(sdk)?;
                    single(&user, USER)
                }
                UserProjectCmd::Remove { project, id } => single(
                    &client.unassign_project(&id, &project).await.map_err(sdk)?,
                    USER,
                ),
                UserProjectCmd::List { id } => {
                    let projects = client.projects_of_user(id.as_deref()).await.map_err(sdk)?;
                    // Only global admins have the synthetic `admin` entry; in their other
                    // projects the listed role is kept but not used.
                    let listed = &projects.projects;
                    if listed.len() > 1 && listed.iter().any(|p| p.project_id == "admin") {
                        crate::error::report(
                            "note: a global admin acts as `admin` and project admin in every \
                             project, whatever role is listed there",
                        );
                    }
                    Shown::Objects(to_json(&projects), "projects", ASSIGNMENT)
                }
                UserProjectCmd::Switch { project } => {
                    let mut switched = client.clone();
                    switched.switch_project(&project).await.map_err(sdk)?;
                    // The switch holds for this command's token only.
                    if session.project.as_deref() != Some(project.as_str()) {
                        crate::error::report(format_args!(
                            "note: hanamictl logs in anew for every command; to work in \
                             project '{project}', set HANAMI_PROJECT={project}"
                        ));
                    }
                    single(&switched.auth_info().await.map_err(sdk)?, SCOPE)
                }
            },
        },
        Command::Dataset(cmd) => match cmd {
            DatasetCmd::Create(kind) => {
                let (DatasetCreateCmd::Mnist { name, .. } | DatasetCreateCmd::Csv { name, .. }) =
                    &kind;
                let interrupts = UploadInterrupts::install(name);
                let cancel = || async {
                    match &interrupts {
                        Some(interrupts) => interrupts.cancelled().await,
                        None => std::future::pending().await,
                    }
                };
                let (name, dataset) = match kind {
                    DatasetCreateCmd::Mnist { input, label, name } => {
                        let mut progress = Progress::new(&name, progress_allowed);
                        let dataset = client
                            .upload_mnist_until(
                                &name,
                                &input,
                                &label,
                                &mut |s, t| progress.update(s, t),
                                cancel(),
                            )
                            .await;
                        progress.finish();
                        (name, dataset)
                    }
                    DatasetCreateCmd::Csv { input, name } => {
                        let mut progress = Progress::new(&name, progress_allowed);
                        let dataset = client
                            .upload_csv_until(
                                &name,
                                &input,
                                &mut |s, t| progress.update(s, t),
                                cancel(),
                            )
                            .await;
                        progress.finish();
                        (name, dataset)
                    }
                };
                drop(interrupts);
                let dataset = dataset.map_err(|e| upload_failed(&name, e, session))?;
                single(&dataset, DATASET)
            }
            DatasetCmd::Check { reference, uuid } => {
                let accuracy = client.check_dataset(&reference, &uuid).await.map_err(sdk)?;
                Shown::Single(json!({ "accuracy": accuracy }), CHECK)
            }
            DatasetCmd::Get { uuid } => single(&client.dataset(&uuid).await.map_err(sdk)?, DATASET),
            DatasetCmd::List(_) => list(&client.datasets().await.map_err(sdk)?, RESOURCE),
            DatasetCmd::Delete { uuid } => {
                client.delete_dataset(&uuid).await.map_err(sdk)?;
                deleted("dataset", &uuid)
            }
            DatasetCmd::Export {
                start,
                count,
                output,
                uuid,
            } => export(client, &uuid, start, count, output.as_deref())
                .await
                .map_err(|e| match e {
                    Exported::Sdk(e) => sdk(e),
                    Exported::Local(e) => e,
                })?,
        },
        Command::Cluster(cmd) => match cmd {
            ClusterCmd::Create { name, .. } => {
                let Local::Template(template) = local else {
                    return Err(local_mismatch());
                };
                let created = client.create_cluster(&name, &template).await.map_err(sdk)?;
                if template.is_empty() {
                    // Allowed (a cluster to restore a checkpoint into), but a truncated file
                    // is an easy mistake, and tasks only fail later.
                    crate::error::report(
                        "note: the template file is empty, so the cluster has no network: \
                         restore a checkpoint into it (cluster restore) before tasks can use it",
                    );
                }
                single(&created, RESOURCE)
            }
            ClusterCmd::Get { uuid } => {
                single(&client.cluster(&uuid).await.map_err(sdk)?, RESOURCE)
            }
            ClusterCmd::List(_) => list(&client.clusters().await.map_err(sdk)?, RESOURCE),
            ClusterCmd::Delete { uuid } => {
                client.delete_cluster(&uuid).await.map_err(sdk)?;
                deleted("cluster", &uuid)
            }
            ClusterCmd::Save { name, wait, uuid } => {
                let saved = waiter
                    .queue(&uuid, client.save_cluster(&uuid, &name))
                    .await?
                    .map_err(sdk)?;
                waiter
                    .wait_if_asked(session, &uuid, &saved.uuid, &wait)
                    .await?;
                single(&saved, SAVE)
            }
            ClusterCmd::Restore {
                checkpoint,
                wait,
                uuid,
            } => {
                let started = waiter
                    .queue(&uuid, client.restore_cluster(&uuid, &checkpoint))
                    .await?
                    .map_err(sdk)?;
                waiter
                    .wait_if_asked(session, &uuid, &started.uuid, &wait)
                    .await?;
                single(&started, RESTORE)
            }
            ClusterCmd::SwitchHost { host, uuid } => single(
                &client.switch_host(&uuid, &host).await.map_err(sdk)?,
                RESOURCE,
            ),
            ClusterCmd::TaskMode { uuid } => single(
                &client.set_direct_mode(&uuid, false).await.map_err(sdk)?,
                MODE,
            ),
        },
        Command::Task(cmd) => match cmd {
            TaskCmd::Create(kind) => {
                let (cluster, wait, task) = match (kind, local) {
                    (
                        TaskCreateCmd::Train {
                            cluster,
                            wait,
                            name,
                            ..
                        },
                        Local::Train { inputs, outputs },
                    ) => {
                        let (inputs, outputs) = (as_refs(&inputs), as_refs(&outputs));
                        let queued = client.train(&name, &cluster, &inputs, &outputs);
                        let task = waiter
                            .queue(&cluster, queued)
                            .await?
                            .map_err(|e| with_flag_names(sdk(e)))?;
                        (cluster, wait, task)
                    }
                    (
                        TaskCreateCmd::Request {
                            cluster,
                            wait,
                            name,
                            ..
                        },
                        Local::Request { inputs, result },
                    ) => {
                        let (hexagon, result_name) = &result;
                        let inputs = as_refs(&inputs);
                        let queued =
                            client.request(&name, &cluster, &inputs, (hexagon, result_name));
                        let task = waiter
                            .queue(&cluster, queued)
                            .await?
                            .map_err(|e| with_flag_names(sdk(e)))?;
                        (cluster, wait, task)
                    }
                    _ => return Err(local_mismatch()),
                };
                match waiter
                    .wait_if_asked(session, &cluster, &task.uuid, &wait)
                    .await?
                {
                    Some(done) => single(&done, TASK),
                    None => single(&task, TASK),
                }
            }
            TaskCmd::Get {
                cluster,
                uuid,
                wait,
            } => {
                let task = waiter
                    .ask(client.task(&cluster, &uuid))
                    .await?
                    .map_err(sdk)?;
                match waiter
                    .wait_if_asked(session, &cluster, &task.uuid, &wait)
                    .await?
                {
                    Some(done) => single(&done, TASK),
                    None => single(&task, TASK),
                }
            }
            TaskCmd::List { cluster, .. } => {
                list(&client.tasks(&cluster).await.map_err(sdk)?, TASK_LIST)
            }
            TaskCmd::Delete { cluster, uuid } => {
                client.delete_task(&cluster, &uuid).await.map_err(sdk)?;
                // A running task is only told to stop, and stays listed: say so, instead
                // of "deleted" for a task that the next `task list` still shows.
                match client.task(&cluster, &uuid).await {
                    Ok(_) => Shown::Line(format!(
                        "task '{uuid}' was running: it stops at its next row and stays \
                         listed as aborted (delete it again to remove it from the list)"
                    )),
                    Err(hanami_sdk::Error::NotFound(_)) => deleted("task", &uuid),
                    Err(e) => {
                        crate::error::report(format_args!(
                            "note: which of the two could not be checked: {}",
                            sdk(e)
                        ));
                        Shown::Line(format!(
                            "task '{uuid}' deleted, or stopping if it was running"
                        ))
                    }
                }
            }
        },
        Command::Checkpoint(cmd) => match cmd {
            CheckpointCmd::Get { uuid } => {
                single(&client.checkpoint(&uuid).await.map_err(sdk)?, RESOURCE)
            }
            CheckpointCmd::List(_) => list(&client.checkpoints().await.map_err(sdk)?, RESOURCE),
            CheckpointCmd::Delete { uuid } => {
                client.delete_checkpoint(&uuid).await.map_err(sdk)?;
                deleted("checkpoint", &uuid)
            }
        },
        Command::Host(HostCmd::List(_)) => list(&client.hosts().await.map_err(sdk)?, HOST),
        Command::Log(LogCmd::Audit(page)) => {
            let entries = client
                .audit_log(page.user.as_deref(), page.page)
                .await
                .map_err(sdk)?;
            note_empty_log(&entries, &page);
            list(&entries, AUDIT_LOG)
        }
        Command::Log(LogCmd::Error(page)) => {
            let entries = client
                .error_log(page.user.as_deref(), page.page)
                .await
                .map_err(sdk)?;
            note_empty_log(&entries, &page);
            list(&entries, ERROR_LOG)
        }
    })
}

/// How a command waits for the task it queued, with `--wait`.
struct Waiter {
    /// Whether the task's cycles are shown on standard error.
    show_progress: bool,
    /// Ends the waiting (not the task); installed before the task is queued.
    stop: Option<StopSignal>,
}

impl Waiter {
    /// The request that queues a task in `cluster`; with `--wait`, Ctrl-C or SIGTERM ends
    /// it too (status 130), saying that the task may have been queued.
    async fn queue<T>(
        &mut self,
        cluster: &str,
        request: impl Future<Output = T>,
    ) -> Result<T, CliError> {
        self.interruptible(request, || {
            format!(
                "stopped before the server answered; the task may have been queued \
                 (`hanamictl task list -c {cluster}` shows it)"
            )
        })
        .await
    }

    /// A request before a wait (the task's state for `task get --wait`): with `--wait`,
    /// Ctrl-C or SIGTERM ends it too (status 130).
    async fn ask<T>(&mut self, request: impl Future<Output = T>) -> Result<T, CliError> {
        self.interruptible(request, || {
            "stopped before the server answered; nothing was changed".to_owned()
        })
        .await
    }

    /// `request`, or the interruption that `stopped` describes when a signal comes first.
    async fn interruptible<T>(
        &mut self,
        request: impl Future<Output = T>,
        stopped: impl FnOnce() -> String,
    ) -> Result<T, CliError> {
        let Some(stop) = &mut self.stop else {
            return Ok(request.await);
        };
        tokio::select! {
            answer = request => Ok(answer),
            () = stop.received() => Err(CliError::Interrupted(stopped())),
        }
    }

    /// With `--wait`, polls the task until it has ended; an aborted task is an error. A
    /// wait may outlive the token: the client then logs in again. Ctrl-C or SIGTERM stops
    /// the waiting (not the task), with status 130.
    async fn wait_if_asked(
        &mut self,
        session: &Session,
        cluster: &str,
        task_uuid: &str,
        wait: &Wait,
    ) -> Result<Option<Task>, CliError> {
        if !wait.wait {
            return Ok(None);
        }
        let stopped = async {
            match &mut self.stop {
                Some(stop) => stop.received().await,
                None => std::future::pending().await,
            }
        };
        let ended = wait_for_end(
            session,
            cluster,
            task_uuid,
            wait.timeout,
            self.show_progress,
        );
        tokio::select! {
            ended = ended => ended.map(Some),
            () = stopped => Err(CliError::Interrupted(format!(
                "stopped waiting; task '{task_uuid}' goes on on the server \
                 (`hanamictl task get -c {cluster} {task_uuid}` shows it, with --wait once \
                 it has ended)"
            ))),
        }
    }
}

/// A 400 of `task create` names the request's fields (`inputs.picture`, `results`): a note
/// says which flag gave them.
fn with_flag_names(error: CliError) -> CliError {
    const FLAGS: [(&str, &str); 3] = [
        ("inputs", "-i/--input"),
        ("outputs", "-o/--output"),
        ("results", "-r/--result"),
    ];
    match error {
        CliError::Status { code: 400, body } => {
            let named = FLAGS.iter().find(|(field, _)| {
                body.contains(&format!("'{field}'")) || body.contains(&format!("'{field}."))
            });
            let body = match named {
                Some((field, flag)) => {
                    format!("{body}\nnote: the request's '{field}' are the pairs of {flag}")
                }
                None => body,
            };
            CliError::Status { code: 400, body }
        }
        other => other,
    }
}

/// Whether an error of a call says that the server is out of reach (no connection, or no
/// answer in time), not that the call was wrong.
fn out_of_reach(error: &hanami_sdk::Error) -> bool {
    matches!(
        error,
        hanami_sdk::Error::Transport(_) | hanami_sdk::Error::Timeout { .. }
    )
}

/// How long a wait polls every 20 ms, so that short tasks are seen ending soon after they
/// do (then at most 100 ms apart until [`QUICK_POLLS`]).
const FIRST_POLLS: Duration = Duration::from_millis(500);

/// How long a wait polls at least every 100 ms (then every second).
const QUICK_POLLS: Duration = Duration::from_secs(10);

/// How long a wait goes on trying a server that does not answer (one that restarts is back
/// sooner).
const RECONNECT_GRACE: Duration = Duration::from_secs(30);

/// Polls the task until it has ended or `timeout` seconds have passed; a server out of
/// reach is tried again for up to [`RECONNECT_GRACE`].
async fn wait_for_end(
    session: &Session,
    cluster: &str,
    task_uuid: &str,
    timeout: u64,
    show_progress: bool,
) -> Result<Task, CliError> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let began = Instant::now();
    let mut pause = Duration::from_millis(20);
    // Ends its line when dropped, also when the waiting is interrupted.
    let mut progress = Progress::new(&format!("task {task_uuid}"), show_progress);
    // Since when the server has been out of reach, if it is.
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let asked = Instant::now();
        // Out of reach, a poll may take what is left of the grace (not the answer timeout).
        let limit = unreachable_since.map_or(Duration::MAX, |since| {
            RECONNECT_GRACE.saturating_sub(since.elapsed())
        });
        let answer = tokio::time::timeout(limit, session.client.task(cluster, task_uuid))
            .await
            .unwrap_or_else(|_| {
                Err(hanami_sdk::Error::Timeout {
                    what: "the task's state".to_owned(),
                    waited: limit,
                })
            });
        let task = match answer {
            Ok(task) => task,
            Err(hanami_sdk::Error::NotFound(_)) => {
                return Err(CliError::msg(format!(
                    "task '{task_uuid}' is gone: it, or its cluster, was deleted while waiting"
                )));
            }
            // A server that restarts is back within seconds, and then tells how the task
            // goes on (one still queued when it stopped is queued again, a train or request
            // task that a clean stop interrupted goes on; one that a crash cut off is listed
            // aborted).
            Err(e) if out_of_reach(&e) => {
                let since = *unreachable_since.get_or_insert(asked);
                if since.elapsed() >= RECONNECT_GRACE || Instant::now() >= deadline {
                    return Err(session.error(e).context(&format!(
                        "lost the server while waiting for task '{task_uuid}' (no answer for \
                         {} s), so how the task goes on is unknown; `hanamictl task get -c \
                         {cluster} {task_uuid}` shows it once the server is back",
                        since.elapsed().as_secs()
                    )));
                }
                progress.remark(Some(
                    "the server does not answer; trying again (a restarted server runs queued \
                     tasks and the train and request tasks its stop interrupted; a crash \
                     aborts the running task)",
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // A refused token (a new password, say): the task does not stop with the wait.
            Err(e) => {
                let note = format!(
                    "note: task '{task_uuid}' was queued and goes on on the server \
                     (`hanamictl task get -c {cluster} {task_uuid}` shows it)"
                );
                return Err(match session.error(e) {
                    CliError::Status { code, body } => CliError::Status {
                        code,
                        body: format!("{body}\n{note}"),
                    },
                    CliError::Other(message) => CliError::Other(format!("{message}\n{note}")),
                    other => other,
                });
            }
        };
        if unreachable_since.take().is_some() {
            progress.remark(None);
        }
        progress.cycles(
            task.state.as_str(),
            task.current_cycle,
            task.total_number_of_cycles,
        );
        // Why a task waits (its cluster in DIRECT mode); why it ended is told below.
        if task.state == TaskState::Queued {
            progress.remark(task.note.as_deref());
        }
        match task.state {
            TaskState::Finished => return Ok(task),
            TaskState::Aborted => {
                let why = task.note.unwrap_or_else(|| {
                    "it was deleted, or it failed (then `hanamictl log error` shows why, to \
                     global admins)"
                        .to_owned()
                });
                return Err(CliError::msg(format!(
                    "task '{task_uuid}' was aborted: {why}"
                )));
            }
            state if Instant::now() >= deadline => {
                let why = task.note.map(|n| format!(" ({n})")).unwrap_or_default();
                return Err(CliError::msg(format!(
                    "task '{task_uuid}' is still {state} after {timeout} s{why}; it goes on \
                     on the server (`hanamictl task get -c {cluster} {task_uuid}` shows it, \
                     with --wait once it has ended)"
                )));
            }
            _ => {}
        }
        tokio::time::sleep(pause).await;
        // Short tasks are seen ending soon after they do; long ones are asked less often.
        pause = match began.elapsed() {
            waited if waited < FIRST_POLLS => Duration::from_millis(20),
            waited if waited < QUICK_POLLS => (pause * 2).min(Duration::from_millis(100)),
            _ => (pause * 2).min(Duration::from_secs(1)),
        };
    }
}
