//! Running a parsed command: local checks, login, the SDK call, and the output.

use std::io::{IsTerminal as _, Write as _};

use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{
    CheckpointCmd, Cli, ClusterCmd, Command, DatasetCmd, DatasetCreateCmd, HostCmd, LogCmd,
    ProjectCmd, TaskCmd, TaskCreateCmd, UserCmd, UserProjectCmd,
};
use crate::connection::{Credentials, Session, connect_options};
use crate::error::CliError;
use crate::export::{Exported, export};
use crate::interrupts::{StopSignal, UploadInterrupts};
use crate::local::Local;
use crate::output;
use crate::progress::Progress;
use crate::waiting::Waiter;
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
pub(crate) enum Shown {
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

/// Notes on standard error for page `number` of a log (`entries`): which page `-p last`
/// found, and, for an empty first page of a log filtered by a user, that the id may be a
/// typo (the server answers an unknown user id with no entries, as the original did).
fn note_log_page(
    entries: &hanami_sdk::types::list::ListTable,
    page: &crate::cli::LogPage,
    number: u64,
) {
    if page.page == crate::cli::Page::Last {
        match number {
            0 => crate::error::report(format_args!("note: page 0 is the only one")),
            _ => crate::error::report(format_args!(
                "note: page {number} is the last (`-p {}` shows the entries before)",
                number - 1
            )),
        }
    }
    if let (Some(user), 0, true) = (&page.user, number, entries.body.is_empty()) {
        crate::error::report(format_args!(
            "note: no entries for the user id '{user}' (`hanamictl user get {user}` says \
             whether that user exists)"
        ));
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

/// The error for a command whose [`Local`] is of another command: a bug of this program.
fn local_mismatch() -> CliError {
    CliError::msg("internal error: the command's local inputs were not read")
}

fn as_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// Runs `command` as the user of `session`, with its local inputs (`local`, read before
/// the login): what to show.
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
            .is_some_and(|w| w.seconds().is_some())
            .then(StopSignal::install)
            .flatten(),
    };
    Ok(match command {
        Command::Completion { .. } => unreachable!("handled without login"),
        Command::Project(cmd) => project(session, cmd).await?,
        Command::User(cmd) => user(session, cmd, local).await?,
        Command::Dataset(cmd) => dataset(session, cmd, progress_allowed).await?,
        Command::Cluster(cmd) => cluster(session, cmd, local, &mut waiter).await?,
        Command::Task(cmd) => task(session, cmd, local, &mut waiter).await?,
        Command::Checkpoint(cmd) => checkpoint(session, cmd).await?,
        Command::Host(HostCmd::List(_)) => list(&client.hosts().await.map_err(sdk)?, HOST),
        Command::Log(cmd) => log(session, cmd).await?,
    })
}

/// Runs a `log audit …` or `log error …` command.
async fn log(session: &Session, cmd: LogCmd) -> Result<Shown, CliError> {
    let client = &session.client;
    let (page, fields) = match &cmd {
        LogCmd::Audit(page) => (page, AUDIT_LOG),
        LogCmd::Error(page) => (page, ERROR_LOG),
    };
    let user = page.user.as_deref();
    let read = async |number| match &cmd {
        LogCmd::Audit(_) => client.audit_log(user, number).await,
        LogCmd::Error(_) => client.error_log(user, number).await,
    };
    let (number, entries) = crate::logs::read_page(page.page, read)
        .await
        .map_err(|e| session.error(e))?;
    note_log_page(&entries, page, number);
    Ok(list(&entries, fields))
}

/// Runs a `project …` command.
async fn project(session: &Session, cmd: ProjectCmd) -> Result<Shown, CliError> {
    let client = &session.client;
    let sdk = |e| session.error(e);
    Ok(match cmd {
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
    })
}

/// Runs a `user …` command.
async fn user(session: &Session, cmd: UserCmd, local: Local) -> Result<Shown, CliError> {
    let client = &session.client;
    let sdk = |e| session.error(e);
    Ok(match cmd {
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
    })
}

/// Runs a `dataset …` command.
async fn dataset(
    session: &Session,
    cmd: DatasetCmd,
    progress_allowed: bool,
) -> Result<Shown, CliError> {
    let client = &session.client;
    let sdk = |e| session.error(e);
    Ok(match cmd {
        DatasetCmd::Create(kind) => {
            let (DatasetCreateCmd::Mnist { name, .. } | DatasetCreateCmd::Csv { name, .. }) = &kind;
            let interrupts = UploadInterrupts::install(name);
            let cancel = || async {
                match &interrupts {
                    Some(interrupts) => interrupts.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            let mut progress = Progress::new(name, progress_allowed);
            let mut shown = |sent, total| progress.update(sent, total);
            let dataset = match &kind {
                DatasetCreateCmd::Mnist { input, label, .. } => {
                    client
                        .upload_mnist_until(name, input, label, &mut shown, cancel())
                        .await
                }
                DatasetCreateCmd::Csv { input, .. } => {
                    client
                        .upload_csv_until(name, input, &mut shown, cancel())
                        .await
                }
            };
            progress.finish();
            drop(interrupts);
            let dataset = dataset.map_err(|e| upload_failed(name, e, session))?;
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
    })
}

/// Runs a `cluster …` command.
async fn cluster(
    session: &Session,
    cmd: ClusterCmd,
    local: Local,
    waiter: &mut Waiter,
) -> Result<Shown, CliError> {
    let client = &session.client;
    let sdk = |e| session.error(e);
    Ok(match cmd {
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
        ClusterCmd::Get { uuid } => single(&client.cluster(&uuid).await.map_err(sdk)?, RESOURCE),
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
    })
}

/// Runs a `task …` command.
async fn task(
    session: &Session,
    cmd: TaskCmd,
    local: Local,
    waiter: &mut Waiter,
) -> Result<Shown, CliError> {
    let client = &session.client;
    let sdk = |e| session.error(e);
    Ok(match cmd {
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
                    let queued = client.request(&name, &cluster, &inputs, (hexagon, result_name));
                    let task = waiter
                        .queue(&cluster, queued)
                        .await?
                        .map_err(|e| with_flag_names(sdk(e)))?;
                    (cluster, wait, task)
                }
                _ => return Err(local_mismatch()),
            };
            shown_after_wait(session, waiter, &cluster, task, &wait).await?
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
            shown_after_wait(session, waiter, &cluster, task, &wait).await?
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
    })
}

/// What `task create` and `task get` show of `task`: the task as it ended, with `--wait`,
/// else as it is.
async fn shown_after_wait(
    session: &Session,
    waiter: &mut Waiter,
    cluster: &str,
    task: hanami_sdk::types::tasks::Task,
    wait: &crate::cli::Wait,
) -> Result<Shown, CliError> {
    let done = waiter
        .wait_if_asked(session, cluster, &task.uuid, wait)
        .await?;
    Ok(single(done.as_ref().unwrap_or(&task), TASK))
}

/// Runs a `checkpoint …` command.
async fn checkpoint(session: &Session, cmd: CheckpointCmd) -> Result<Shown, CliError> {
    let client = &session.client;
    let sdk = |e| session.error(e);
    Ok(match cmd {
        CheckpointCmd::Get { uuid } => {
            single(&client.checkpoint(&uuid).await.map_err(sdk)?, RESOURCE)
        }
        CheckpointCmd::List(_) => list(&client.checkpoints().await.map_err(sdk)?, RESOURCE),
        CheckpointCmd::Delete { uuid } => {
            client.delete_checkpoint(&uuid).await.map_err(sdk)?;
            deleted("checkpoint", &uuid)
        }
    })
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
