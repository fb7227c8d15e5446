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
