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

    /// Creates the directory and its sub-folders.
    pub fn create(&self) -> std::io::Result<()> {
        for dir in [
            &self.root,
            &self.datasets(),
            &self.checkpoints(),
            &self.clusters(),
            &self.uploads(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("hanami.db")
    }

    /// The token signing key.
    pub fn token_key(&self) -> PathBuf {
        self.root.join("token.key")
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
}
