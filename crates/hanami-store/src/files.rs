//! Opening and removing the files of the data directory.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens a file for reading without waiting: a named pipe put where a data file belongs
/// would otherwise block the opening thread until a writer comes (for ever). Whether it
/// is a regular file is the caller's check (`metadata().is_file()`).
pub fn open_without_waiting(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Removes the file at `path`; one that is not there is fine (it is gone either way).
/// Blocking: removing a large file takes a while on some file systems.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Allocates `size` bytes of disk for `file` (which becomes that long, zero-filled where it
/// was shorter), so that writing it later cannot fail for a full disk and the file system's
/// free space shows the space as taken. Returns whether the space is allocated: on file
/// systems without `fallocate` the file is only extended (sparse), and `false` tells the
/// caller that the writes still need their blocks.
///
/// Linux's `fallocate` is called, not `posix_fallocate`: where the file system cannot
/// allocate, glibc's `posix_fallocate` writes a byte into every block instead, which for a
/// file of gigabytes takes minutes.
pub fn preallocate(file: &File, size: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    if len == 0 {
        // fallocate refuses an empty range (EINVAL).
        return Ok(true);
    }
    loop {
        // SAFETY: the descriptor is valid for the lifetime of `file`; fallocate only reads
        // its integer arguments.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Not supported by the file system (POSIX allows EINVAL for it), or by a
            // sandbox's filter of system calls.
            Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                return file.set_len(size).map(|()| false);
            }
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// The file takes its length with its blocks where the file system allocates (the
    /// temporary folder's does), and an empty size is no error.
    #[test]
    fn preallocated_files_hold_their_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        assert!(preallocate(&file, 0).unwrap());
        assert_eq!(file.metadata().unwrap().len(), 0);
        let allocated = preallocate(&file, 3 << 20).unwrap();
        let metadata = file.metadata().unwrap();
        assert_eq!(metadata.len(), 3 << 20);
        assert_eq!(
            allocated,
            metadata.blocks() * 512 >= 3 << 20,
            "{metadata:?}"
        );
        remove_if_present(&path).unwrap();
        assert!(!path.exists());
        remove_if_present(&path).unwrap();
        assert!(
            remove_if_present(dir.path()).is_err(),
            "a folder is not removed"
        );
    }
}
