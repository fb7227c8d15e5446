//! Opening the files of the data directory.

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

/// Allocates `size` bytes of disk for `file` (which becomes that long, zero-filled where it
/// was shorter), so that writing it later cannot fail for a full disk and the file system's
/// free space shows the space as taken. Returns whether the space is allocated: on file
/// systems without `fallocate` the file is only extended (sparse), and `false` tells the
/// caller that the writes still need their blocks.
pub fn preallocate(file: &File, size: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    // SAFETY: the descriptor is valid for the lifetime of `file`; posix_fallocate only
    // reads its integer arguments.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(true),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(size).map(|()| false),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}
