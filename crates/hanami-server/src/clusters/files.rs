//! Durable and staged file writes: files written under a temporary name, synced and renamed
//! into place, the staged networks of tasks, and reads that refuse anything but a regular
//! file.

use std::path::{Path, PathBuf};

use hanami_engine::Cluster;

/// What the network file of a cluster without a network holds.
pub const NO_NETWORK: &[u8] = b"hanami-rs: this cluster has no network\n";

/// Reads a whole file that must be a regular one: a named pipe or device put in its place
/// is refused at once instead of blocking the reading thread (a cluster's worker, and with
/// it the shutdown) for ever.
pub fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = hanami_store::files::open_without_waiting(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Extension of the temporary files of [`write_durably`].
const HALF_WRITTEN: &str = "partial";

/// Whether `path` is a temporary file of [`write_durably`] or a staged network; found at
/// start (after pending networks are put in place), a crash left it.
pub fn is_half_written(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == HALF_WRITTEN)
}

/// Writes a file under a temporary name, fsyncs it and renames it into place.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // On failure the staged file is removed when dropped.
    Staged::write(path, bytes)?.put_in_place()
}

/// The bytes of a cluster's network file.
pub(super) fn network_bytes(network: Option<&Cluster>) -> std::borrow::Cow<'static, [u8]> {
    match network {
        Some(cluster) => cluster.save().into(),
        None => NO_NETWORK.into(),
    }
}

/// A file written and synced under a temporary name (ending in `.partial`), not yet renamed
/// into place; dropped before [`Staged::put_in_place`] succeeded, it is removed (unless
/// [`Staged::keep`] says otherwise).
pub struct Staged {
    temp: PathBuf,
    path: PathBuf,
    /// Renamed, or to be left where it is.
    settled: bool,
}

impl Staged {
    /// Writes and syncs `bytes` beside `path`.
    fn write(path: &Path, bytes: &[u8]) -> std::io::Result<Self> {
        Self::write_as(path, staged_path(path), bytes)
    }

    /// Writes and syncs `bytes` to `temp`, to be renamed to `path`.
    pub(super) fn write_as(path: &Path, temp: PathBuf, bytes: &[u8]) -> std::io::Result<Self> {
        use std::io::Write;
        let staged = Staged {
            temp,
            path: path.to_owned(),
            settled: false,
        };
        // On failure the drop removes the half-written file, which would otherwise hold on to
        // the space of a full disk until the restart.
        std::fs::File::create(&staged.temp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })?;
        Ok(staged)
    }

    /// The staged file `temp` of `path` that an earlier run wrote and synced (found at
    /// start-up).
    pub fn found(path: &Path, temp: &Path) -> Self {
        Staged {
            temp: temp.to_owned(),
            path: path.to_owned(),
            settled: false,
        }
    }

    /// Leaves the staged file where it is when dropped (a start-up puts it in place).
    pub fn keep(mut self) {
        self.settled = true;
    }

    /// Renames the file into place and syncs its folder.
    pub fn put_in_place(&mut self) -> std::io::Result<()> {
        match self.rename_into_place("folder-sync")? {
            InPlace::Synced => Ok(()),
            InPlace::FolderNotSynced(e) => Err(e),
        }
    }

    /// Renames the file into place (an error: it is not), then syncs its folder; `sync_point`
    /// names the sync for `HANAMI_FAIL_AT` (debug builds), which makes it fail.
    pub fn rename_into_place(&mut self, sync_point: &str) -> std::io::Result<InPlace> {
        std::fs::rename(&self.temp, &self.path)?;
        self.settled = true;
        let synced = match self.path.parent() {
            _ if crate::crash_point::fails(sync_point) => {
                Err(std::io::Error::other("failure injected (HANAMI_FAIL_AT)"))
            }
            Some(dir) => std::fs::File::open(dir).and_then(|dir| dir.sync_all()),
            None => Ok(()),
        };
        Ok(match synced {
            Ok(()) => InPlace::Synced,
            Err(e) => InPlace::FolderNotSynced(e),
        })
    }
}

/// A file renamed into place, and whether the rename is durable.
pub enum InPlace {
    /// Its folder is synced: the rename survives a crash.
    Synced,
    /// Its folder could not be synced (the rename is done, but a crash could undo it).
    FolderNotSynced(std::io::Error),
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.settled {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Where [`Staged::write`] writes the file for `path`.
fn staged_path(path: &Path) -> PathBuf {
    path.with_extension(HALF_WRITTEN)
}

/// Where a task stages the network file `path` of its cluster: named after the task, so
/// that a start puts in place only the network of a task whose end it finds recorded.
pub fn staged_path_of_task(path: &Path, task_uuid: &str) -> PathBuf {
    path.with_extension(format!("{task_uuid}.{HALF_WRITTEN}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A named pipe where a checkpoint or network belongs is refused at once; opening it
    /// for reading would wait for a writer for ever.
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"bytes").unwrap();
        assert_eq!(read_regular_file(&file).unwrap(), b"bytes");
        let pipe = dir.path().join("pipe");
        hanami_testkit::named_pipe(&pipe);
        let refused = read_regular_file(&pipe).unwrap_err();
        assert_eq!(refused.to_string(), "not a regular file");
        assert!(read_regular_file(dir.path()).is_err());
    }
}
