//! What a command takes from this machine ([`Local`]: local files given as arguments, a
//! password typed at the prompt, flag pairs), and the checks and reads of local files.

use std::io::Read as _;
use std::path::Path;

use hanami_sdk::types::clusters::MAX_TEMPLATE_BYTES;

use crate::cli::{
    ClusterCmd, Command, DatasetCmd, DatasetCreateCmd, TaskCmd, TaskCreateCmd, UserCmd, parse_pairs,
};
use crate::error::CliError;
use crate::password::{self, Terminal};

/// `NAME:VALUE` pairs of a flag, parsed.
type Pairs = Vec<(String, String)>;

/// What a command takes from this machine (files, a password typed at the prompt, flag
/// values parsed further than clap does), read and checked before anything goes over the
/// network.
pub(crate) enum Local {
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
    pub(crate) fn read(command: &Command) -> Result<Self, CliError> {
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

/// A file to upload, checked as the SDK checks it before an upload (a readable, non-empty
/// regular file: an upload announces its size first), with the messages of [`readable`].
fn uploadable(path: &Path, what: &str) -> Result<(), CliError> {
    match hanami_sdk::upload_file_size(path) {
        Ok(_) => Ok(()),
        Err(hanami_sdk::Error::File { source, .. }) => Err(unreadable(path, what, &source)),
        Err(other) => Err(CliError::msg(other.to_string())),
    }
}

/// Reads a whole local file of at most `limit` bytes, with the messages of [`readable`]. A
/// longer one (or an endless device) is refused once `limit` bytes are read.
pub(crate) fn read_local(path: &Path, what: &str, limit: usize) -> Result<Vec<u8>, CliError> {
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
