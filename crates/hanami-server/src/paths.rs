//! Where the server keeps its files inside the data directory.

use std::path::{Path, PathBuf};

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

    /// Creates the directory and its sub-folders; an error names the folder that failed.
    pub fn create(&self) -> anyhow::Result<()> {
        for dir in [
            &self.root,
            &self.datasets(),
            &self.checkpoints(),
            &self.clusters(),
            &self.uploads(),
        ] {
            if dir.exists() && !dir.is_dir() {
                anyhow::bail!("{} exists and is not a directory", dir.display());
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create directory {}: {e}", dir.display()))?;
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
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock only reads its integer arguments; the descriptor is valid while
        // `file` lives.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::WouldBlock {
                anyhow::bail!(
                    "the data directory {} is in use by another hanami server",
                    self.root.display()
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

    /// Files of the folders above that no database row references, set aside at start
    /// (never deleted by the server: a database restored from an older backup does not
    /// know the files made since).
    pub fn unreferenced(&self) -> PathBuf {
        self.root.join("unreferenced")
    }

    /// Moves `file` (in one of the resource folders) into that folder's part of
    /// [`DataDir::unreferenced`] under `name`, and returns where it went. Blocking.
    pub fn set_aside(&self, file: &Path, name: &std::ffi::OsStr) -> std::io::Result<PathBuf> {
        let folder = file.parent().and_then(Path::file_name).unwrap_or_default();
        let aside = self.unreferenced().join(folder);
        std::fs::create_dir_all(&aside)?;
        let target = aside.join(name);
        std::fs::rename(file, &target)?;
        Ok(target)
    }

    /// How many resource files (datasets, checkpoints, networks) the folders hold; 0 where
    /// they do not exist yet.
    pub fn resource_file_count(&self) -> usize {
        [self.datasets(), self.checkpoints(), self.clusters()]
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .count()
    }
}

/// The exclusive hold of a data directory (see [`DataDir::lock`]): the open, locked file.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}
