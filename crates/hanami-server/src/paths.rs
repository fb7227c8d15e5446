//! Where the server keeps its files inside the data directory.

use std::path::{Path, PathBuf};

/// Whether a file in the server's folders of unfinished uploads and of results so far
/// bears a name the server gives: a uuid, or a hidden temporary name ending in
/// `.hanami-tmp` (the start's write check). Other files there are not the server's.
pub fn is_own_file_name(name: &str) -> bool {
    hanami_types::is_uuid(name) || hanami_store::dataset::is_temp_file_name(name)
}

/// What to do about a refused write in the data directory (empty for other errors).
fn permission_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (the data directory and everything in it must be writable by the user the \
             server runs as)"
        }
        std::io::ErrorKind::ReadOnlyFilesystem => {
            " (the data directory must be on a file system mounted for writing)"
        }
        _ => "",
    }
}

/// The layout of the data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The layout below `root` (nothing is created).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// Creates the directory and its sub-folders, and checks that the server can create
    /// files in each sub-folder (a read-only one failed only at the first upload, network
    /// save or checkpoint, with a 500); an error names the folder that failed.
    pub fn create(&self) -> anyhow::Result<()> {
        for dir in [
            &self.root,
            &self.datasets(),
            &self.checkpoints(),
            &self.clusters(),
            &self.uploads(),
            &self.partial_results(),
        ] {
            if dir.exists() && !dir.is_dir() {
                anyhow::bail!("{} exists and is not a directory", dir.display());
            }
            std::fs::create_dir_all(dir).map_err(|e| {
                // A folder on the way that the server's user may not enter hides whether
                // the directory exists at all.
                if let Err(looked) = std::fs::metadata(dir)
                    && looked.kind() == std::io::ErrorKind::PermissionDenied
                {
                    anyhow::anyhow!(
                        "cannot reach directory {}: {looked} (the user the server runs as \
                         must be able to enter every folder on the way to the data \
                         directory, and to write in the data directory)",
                        dir.display()
                    )
                } else {
                    anyhow::anyhow!(
                        "cannot create directory {}: {e}{}",
                        dir.display(),
                        permission_hint(&e)
                    )
                }
            })?;
            if *dir == self.root {
                continue; // The lock file, created next, shows whether the root takes files.
            }
            // A temporary name that a start removes, should a crash leave the file behind.
            let probe = dir.join(format!(".write-check-{}.hanami-tmp", std::process::id()));
            std::fs::write(&probe, b"")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create files in {}: {e}{}",
                        dir.display(),
                        permission_hint(&e)
                    )
                })?;
        }
        Ok(())
    }

    /// Takes the data directory for this process: an exclusive lock on its `hanami.lock`,
    /// held while the returned value lives (and released by the kernel if the process dies).
    /// Fails if another server holds it.
    pub fn lock(&self) -> anyhow::Result<DataDirLock> {
        use std::os::fd::AsRawFd;
        let path = self.root.join("hanami.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                anyhow::anyhow!("cannot open {}: {e}{}", path.display(), permission_hint(&e))
            })?;
        // SAFETY: flock only reads its integer arguments; the descriptor is valid while
        // `file` lives.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::WouldBlock {
                anyhow::bail!(
                    "the data directory {} is in use by another hanami server (it holds the \
                     lock on {}): stop that server, or give this one another data directory \
                     (--data-dir, HANAMI_DATA_DIR, data_dir)",
                    self.root.display(),
                    path.display()
                );
            }
            anyhow::bail!("cannot lock {}: {error}", path.display());
        }
        Ok(DataDirLock { _file: file })
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("hanami.db")
    }

    /// The token signing key.
    pub fn token_key(&self) -> PathBuf {
        self.root.join("token.key")
    }

    /// The uuid of the server's one logical host (the CPU), kept across restarts.
    pub fn host_id(&self) -> PathBuf {
        self.root.join("host.id")
    }

    /// Dataset files, one per dataset.
    pub fn datasets(&self) -> PathBuf {
        self.root.join("datasets")
    }

    /// Checkpoint files, one per checkpoint.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The saved networks of the clusters, one file per cluster that has a network.
    pub fn clusters(&self) -> PathBuf {
        self.root.join("clusters")
    }

    /// Temporary files of unfinished uploads.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// The results so far of request tasks that a shutdown stopped part of the way, one file
    /// per task, named after it, until the task goes on at the next start.
    pub fn partial_results(&self) -> PathBuf {
        self.root.join("partial-results")
    }

    /// Where the result so far of request task `task_uuid` waits for it to go on.
    pub fn partial_result(&self, task_uuid: &str) -> PathBuf {
        self.partial_results().join(task_uuid)
    }

    /// Removes the result so far of request task `task_uuid`, if it has one (it will not go
    /// on). A failure is only logged: the next start removes what no task goes on with.
    /// Blocking.
    pub fn remove_partial_result(&self, task_uuid: &str) {
        let path = self.partial_result(task_uuid);
        if let Err(e) = hanami_store::files::remove_if_present(&path) {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }

    /// Files of the folders above that no database row references, set aside at start
    /// (never deleted by the server: a database restored from an older backup does not
    /// know the files made since).
    pub fn unreferenced(&self) -> PathBuf {
        self.root.join("unreferenced")
    }

    /// Moves `file` (in one of the resource folders) into that folder's part of
    /// [`DataDir::unreferenced`] under `name` (`name.1`, `name.2` … if that is taken: nothing
    /// set aside is ever replaced), and returns where it went. Blocking; errors name the path.
    pub fn set_aside(&self, file: &Path, name: &std::ffi::OsStr) -> std::io::Result<PathBuf> {
        let folder = file.parent().and_then(Path::file_name).unwrap_or_default();
        let aside = self.unreferenced().join(folder);
        let named = |action: &str, path: &Path, e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("cannot {action} {}: {e}", path.display()))
        };
        std::fs::create_dir_all(&aside).map_err(|e| named("create", &aside, e))?;
        let target = match self.latest_aside(folder, name) {
            None => aside.join(name),
            Some((_, n)) => {
                let mut numbered = name.to_owned();
                numbered.push(format!(".{}", n + 1));
                aside.join(numbered)
            }
        };
        std::fs::rename(file, &target).map_err(|e| named("move", file, e))?;
        Ok(target)
    }

    /// The last file [`DataDir::set_aside`] put under `name` from the folder `folder`: of
    /// `name`, `name.1`, `name.2`, … the one with the highest number (0 for `name` itself),
    /// whatever was removed in between; `None` if there is none.
    pub fn latest_aside(
        &self,
        folder: &std::ffi::OsStr,
        name: &std::ffi::OsStr,
    ) -> Option<(PathBuf, u32)> {
        let aside = self.unreferenced().join(folder);
        let name = name.to_str()?;
        std::fs::read_dir(&aside)
            .ok()?
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name();
                let number = match file.to_str()?.strip_prefix(name)? {
                    "" => 0,
                    rest => rest.strip_prefix('.')?.parse::<u32>().ok()?,
                };
                Some((aside.join(&file), number))
            })
            .max_by_key(|(_, number)| *number)
    }

    /// How many resource files (datasets, checkpoints, networks) the folders hold, not
    /// counting half-written ones that a crash left (start-up removes those); 0 where the
    /// folders do not exist yet.
    pub fn resource_file_count(&self) -> usize {
        [self.datasets(), self.checkpoints(), self.clusters()]
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter(|entry| {
                let half_written = crate::clusters::is_half_written(&entry.path())
                    || hanami_store::dataset::is_temp_file_name(
                        &entry.file_name().to_string_lossy(),
                    );
                !half_written
            })
            .count()
    }
}

/// The exclusive hold of a data directory (see [`DataDir::lock`]): the open, locked file.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

#[cfg(test)]
mod tests {
    use super::{DataDir, permission_hint};

    /// Files set aside under one name are numbered on from the highest number there,
    /// whatever an operator removed in between, and the latest is found the same way.
    #[test]
    fn files_set_aside_are_numbered_on_from_the_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = DataDir::new(tmp.path());
        paths.create().unwrap();
        let name = std::ffi::OsStr::new("n.damaged");
        let folder = std::ffi::OsStr::new("clusters");
        assert_eq!(paths.latest_aside(folder, name), None);
        let set_aside = |content: &str| {
            let file = paths.clusters().join("n");
            std::fs::write(&file, content).unwrap();
            paths.set_aside(&file, name).unwrap()
        };
        let first = set_aside("1");
        let second = set_aside("2");
        let third = set_aside("3");
        assert_eq!(third.file_name().unwrap(), "n.damaged.2");
        std::fs::remove_file(&first).unwrap();
        std::fs::remove_file(&second).unwrap();
        assert_eq!(paths.latest_aside(folder, name), Some((third.clone(), 2)));
        let fourth = set_aside("4");
        assert_eq!(fourth.file_name().unwrap(), "n.damaged.3");
        assert_eq!(std::fs::read_to_string(&third).unwrap(), "3");
        // Other names beside it do not count.
        std::fs::write(
            paths.unreferenced().join("clusters").join("n.damaged.x"),
            "",
        )
        .unwrap();
        std::fs::write(
            paths.unreferenced().join("clusters").join("m.damaged.9"),
            "",
        )
        .unwrap();
        assert_eq!(paths.latest_aside(folder, name), Some((fourth, 3)));
    }

    /// Half-written files that a crash left are no resources: they do not make an empty
    /// database look lost (start-up removes them).
    #[test]
    fn resource_files_leave_half_written_ones_out() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = DataDir::new(tmp.path());
        paths.create().unwrap();
        assert_eq!(paths.resource_file_count(), 0);
        std::fs::write(paths.datasets().join("a.partial"), "half").unwrap();
        std::fs::write(paths.checkpoints().join(".b.1.2.hanami-tmp"), "half").unwrap();
        std::fs::create_dir(paths.clusters().join("folder")).unwrap();
        assert_eq!(paths.resource_file_count(), 0);
        std::fs::write(paths.clusters().join("c"), "network").unwrap();
        std::fs::write(paths.datasets().join("d"), "dataset").unwrap();
        assert_eq!(paths.resource_file_count(), 2);
    }

    /// A folder the server cannot create files in stops the start, naming the folder
    /// (here one that no user can write to: /proc, behind a link).
    #[test]
    fn folders_without_write_access_are_found_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = DataDir::new(tmp.path());
        std::os::unix::fs::symlink("/proc", paths.datasets()).unwrap();
        let error = paths.create().unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "cannot create files in {}: ",
                paths.datasets().display()
            )),
            "{error}"
        );
        std::fs::remove_file(paths.datasets()).unwrap();
        paths.create().unwrap();
        // The checks leave nothing behind: the root holds the five folders, they nothing.
        let names = |dir: &std::path::Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            names(tmp.path()),
            [
                "checkpoints",
                "clusters",
                "datasets",
                "partial-results",
                "uploads"
            ]
        );
        assert!(names(&paths.datasets()).is_empty());
        assert!(names(&paths.uploads()).is_empty());
    }

    /// A refused write says what to do about it; other errors get no hint.
    #[test]
    fn refused_writes_get_a_hint() {
        use std::io::{Error, ErrorKind};
        let hint = |kind| permission_hint(&Error::from(kind));
        assert!(hint(ErrorKind::PermissionDenied).contains("must be writable by the user"));
        assert!(hint(ErrorKind::ReadOnlyFilesystem).contains("mounted for writing"));
        assert_eq!(hint(ErrorKind::NotFound), "");
    }

    #[test]
    fn nothing_set_aside_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = DataDir::new(tmp.path());
        paths.create().unwrap();
        let mut kept = Vec::new();
        for text in ["first", "second", "third"] {
            let file = paths.datasets().join("foo");
            std::fs::write(&file, text).unwrap();
            kept.push(paths.set_aside(&file, "foo".as_ref()).unwrap());
        }
        let aside = paths.unreferenced().join("datasets");
        assert_eq!(
            kept,
            [aside.join("foo"), aside.join("foo.1"), aside.join("foo.2")]
        );
        for (path, text) in kept.iter().zip(["first", "second", "third"]) {
            assert_eq!(std::fs::read_to_string(path).unwrap(), text);
        }
    }

    #[test]
    fn a_failure_names_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = DataDir::new(tmp.path());
        paths.create().unwrap();
        // A file where the folder for set-aside files belongs.
        std::fs::write(paths.unreferenced(), "").unwrap();
        let file = paths.datasets().join("foo");
        std::fs::write(&file, "data").unwrap();
        let e = paths.set_aside(&file, "foo".as_ref()).unwrap_err();
        let wanted = format!(
            "cannot create {}",
            paths.unreferenced().join("datasets").display()
        );
        assert!(e.to_string().starts_with(&wanted), "{e}");
        assert!(file.exists());
    }
}
