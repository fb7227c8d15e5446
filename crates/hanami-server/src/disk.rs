//! The disk that holds the data directory, and the space promised to writes under way.

use std::path::Path;
use std::sync::{Arc, Mutex};

/// Free disk that the server needs to start: SQLite extends its files as it opens the
/// database. Uploads, request results and checkpoints always leave this much free, whatever
/// `min_free_disk_mib` says, so that a restart stays possible.
pub const MIN_FREE_TO_START: u64 = 4 << 20;

/// The bytes an unprivileged process may still write to the file system that holds `dir`.
pub(crate) fn free_space(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` has room for the result, which
    // statvfs fills completely when it returns 0.
    if unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call above.
    let stats = unsafe { stats.assume_init() };
    #[allow(
        clippy::useless_conversion,
        reason = "the field types are 32-bit on some targets"
    )]
    Ok(u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize)))
}

/// Disk space promised to writes under way (result datasets and checkpoints being
/// written, the datasets that unfinished uploads will become), which the free space the
/// file system reports does not show yet. Every check of the reserve counts it, so that
/// writes that each fit alone cannot together fill the disk.
#[derive(Debug, Default)]
pub struct Ledger {
    promised: Mutex<u64>,
}

/// Space promised in a [`Ledger`], given back when dropped.
#[derive(Debug)]
pub struct Promise {
    ledger: Arc<Ledger>,
    bytes: u64,
}

/// Why a [`Ledger`] refused a promise, in figures.
#[derive(Debug, Clone, Copy)]
pub struct Shortfall {
    /// Bytes the file system has free.
    pub free: u64,
    /// Bytes of it promised to writes under way.
    pub promised: u64,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // Every update is one addition or subtraction: a poisoned lock is still consistent.
        self.promised.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Promises `size` bytes of the disk that holds `dir` if `keep` bytes stay free beyond
    /// them and everything promised before; [`Shortfall`] otherwise. Blocking (statvfs).
    pub fn promise(
        self: &Arc<Self>,
        dir: &Path,
        size: u64,
        keep: u64,
    ) -> std::io::Result<Result<Promise, Shortfall>> {
        let mut promised = self.lock();
        let free = free_space(dir)?;
        if free < size.saturating_add(keep).saturating_add(*promised) {
            return Ok(Err(Shortfall {
                free,
                promised: *promised,
            }));
        }
        *promised += size;
        Ok(Ok(Promise {
            ledger: self.clone(),
            bytes: size,
        }))
    }

    /// The bytes promised now.
    pub fn promised(&self) -> u64 {
        *self.lock()
    }
}

impl Promise {
    /// Gives back `bytes` of the promise (at most all of it): space that a file now holds
    /// itself, which the free space shows.
    pub fn release(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        *self.ledger.lock() -= bytes;
    }
}

impl Drop for Promise {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.release(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::{Ledger, free_space};
    use std::sync::Arc;

    /// Promises count against later ones until they are given back.
    #[test]
    fn promises_hold_their_space_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::default());
        let free = free_space(dir.path()).unwrap();
        // Room for two promises of a third each, with a margin for the free space to move
        // meanwhile (other programs write to the same disk).
        let third = free / 3;
        let keep = free - 2 * third - third / 4;
        let mut first = ledger.promise(dir.path(), third, keep).unwrap().unwrap();
        let second = ledger.promise(dir.path(), third, keep).unwrap().unwrap();
        let refused = ledger
            .promise(dir.path(), third, keep)
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.promised, 2 * third);
        drop(second);
        assert_eq!(ledger.promised(), third);
        first.release(third / 2);
        assert_eq!(ledger.promised(), third - third / 2);
        let _third = ledger.promise(dir.path(), third, keep).unwrap().unwrap();
        drop(first);
        assert_eq!(ledger.promised(), third);
    }

    #[test]
    fn free_space_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        let missing = free_space(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
