//! How task notes and API answers tell of a dataset's file that the server cannot use: what
//! is wrong with it, and what to do; the answers about a checkpoint's file use the same
//! words.

use std::path::Path;

use hanami_store::dataset::DatasetFileError;

/// What to do about a dataset whose file is missing or damaged: make it again (an uploaded
/// dataset by uploading it, a request task's result by running that task again).
pub const REMAKE_DATASET: &str =
    "delete it and upload it again (a request task's result: run that task again)";

/// What is wrong with a file that is not where the server keeps it.
pub const MISSING: &str = "is missing from the server's data directory";

/// What is wrong with a file that the disk could not read back.
pub const LOST_ON_DISK: &str =
    "could not be read back from the disk (an input/output error; the server log has the path)";

/// What is wrong with a file that the server may not read.
pub const UNREADABLE: &str = "cannot be read by the server (permission denied)";

/// What to do about such a file: it is fine, only its owner or mode changed outside the
/// server (deleting it would lose it).
pub const GIVE_ACCESS_BACK: &str = "the server's administrator must give the server's user \
     access to it again (its owner or mode was changed outside the server, by a restore from \
     a backup, say)";

/// The sentence for dataset `uuid` whose file at `path` is missing, unreadable for the
/// server, damaged or lost on the disk (`e`): "the file of dataset '…' …, so the dataset
/// cannot be used; …" with what to do, logged with the path for the operator (the sentence
/// names no path); `None` for other errors.
pub fn dataset_unusable(uuid: &str, path: &Path, e: &DatasetFileError) -> Option<String> {
    let (what, todo) = if e.is_missing_file() {
        (MISSING.to_owned(), REMAKE_DATASET)
    } else if e.is_unreadable_file() {
        (UNREADABLE.to_owned(), GIVE_ACCESS_BACK)
    } else if e.is_lost_on_disk() {
        (LOST_ON_DISK.to_owned(), REMAKE_DATASET)
    } else if e.is_damaged_file() {
        (format!("is damaged ({e})"), REMAKE_DATASET)
    } else {
        return None;
    };
    tracing::warn!("dataset '{uuid}' cannot be used: {}: {e}", path.display());
    Some(format!(
        "the file of dataset '{uuid}' {what}, so the dataset cannot be used; {todo}"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hanami_store::dataset::DatasetFileError;

    use super::dataset_unusable;

    fn io(action: &'static str, source: std::io::Error) -> DatasetFileError {
        DatasetFileError::Io {
            action,
            path: "/data/datasets/d".into(),
            source,
        }
    }

    /// A file the server may not read is the administrator's to mend, not its owner's to
    /// delete and upload again (that advice lost a sound dataset); a missing one is the
    /// owner's; none names the server's path; other errors are not the file's.
    #[test]
    fn each_fault_says_what_to_do() {
        let path = Path::new("/data/datasets/d");
        let said = |e: DatasetFileError| dataset_unusable("d", path, &e).unwrap();
        let unreadable = said(io("open", std::io::ErrorKind::PermissionDenied.into()));
        assert!(
            unreadable.contains("permission denied")
                && unreadable.contains("the server's administrator must give")
                && !unreadable.contains("upload it again"),
            "{unreadable}"
        );
        let lost = said(io("read", std::io::Error::from_raw_os_error(libc::EIO)));
        assert!(
            lost.starts_with("the file of dataset 'd' could not be read back from the disk")
                && !lost.contains("/data")
                && lost.contains("upload it again"),
            "{lost}"
        );
        let missing = said(io("open", std::io::ErrorKind::NotFound.into()));
        assert!(
            missing.ends_with(
                "delete it and upload it again (a request task's result: run that \
                 task again)"
            ),
            "{missing}"
        );
        let other = io("open", std::io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(dataset_unusable("d", path, &other), None);
    }
}
