//! `dataset export`: writing a dataset's rows as CSV to a file or standard output, so that
//! a failed export leaves an existing file as it was.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hanami_sdk::Client;

use crate::commands::Shown;
use crate::error::CliError;
use crate::interrupts::StopSignal;

/// Why an export failed: the server, or writing the CSV.
pub(crate) enum Exported {
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
pub(crate) async fn export(
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
    let opened = file;
    match (written, destination) {
        (
            Ok(()),
            Destination::Replace {
                file,
                partial,
                kept,
            },
        ) => {
            // On the disk before the rename, so that a power cut after it cannot leave the
            // file replaced by a cut-off export.
            if let Some(Err(e)) = opened.as_ref().map(std::fs::File::sync_all) {
                let _ = std::fs::remove_file(&partial);
                return Err(left_as_it_was(
                    Exported::Local(CliError::msg(format!(
                        "cannot write the export to the disk: {e}"
                    ))),
                    Some(&Destination::Replace {
                        file,
                        partial,
                        kept,
                    }),
                ));
            }
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
            // Best effort: the rename itself on the disk.
            if let Some(folder) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = std::fs::File::open(folder).and_then(|f| f.sync_all());
            }
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
    // Written with the first rows: a dataset the server refuses (a damaged file, say) leaves
    // nothing on standard output, not a header without its rows.
    let mut header = Some(names.join(",") + "\n");
    let mut going = true;
    let columns = names.len() as u64;
    let per_answer = (hanami_sdk::types::datasets::MAX_ROW_VALUES / columns.max(1)).max(1);
    let mut next = rows.start;
    while going && next < rows.end {
        let part = client
            .dataset_rows(uuid, next, per_answer.min(rows.end - next))
            .await
            .map_err(Exported::Sdk)?;
        if part.rows.is_empty() {
            // Fewer rows than the dataset has: not a whole export.
            return Err(Exported::Local(CliError::msg(format!(
                "the server sent no rows of dataset '{uuid}' from row {next} on: the export, \
                 to row {}, is incomplete",
                rows.end
            ))));
        }
        next += part.rows.len() as u64;
        let mut text = header.take().unwrap_or_default();
        for row in &part.rows {
            let cells: Vec<String> = row.iter().map(f32::to_string).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        going = write(&text)?;
    }
    if let Some(header) = header {
        write(&header)?;
    }
    match out.flush() {
        Err(e) if to_standard && e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| local("write to", e)),
    }
}
