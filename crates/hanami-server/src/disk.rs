//! The disk that holds the data directory, and the space promised to writes under way.

use std::path::Path;
use std::sync::{Arc, Mutex};

/// The turn of a unit test that sets a reserve from the disk's free space, held while it
/// runs, so that those of them that allocate files do not move it under the others.
#[cfg(test)]
pub(crate) fn free_space_turn() -> std::sync::MutexGuard<'static, ()> {
    static FREE_SPACE_TESTS: Mutex<()> = Mutex::new(());
    crate::sync::lock(&FREE_SPACE_TESTS)
}

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
        crate::sync::lock(&self.promised)
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
    #[cfg(test)]
    pub fn promised(&self) -> u64 {
        *self.lock()
    }

    /// [`Ledger::promise`] for `what`, with a refusal that says what it takes, what is kept
    /// and what is free (the share other writes were promised goes to the server log only:
    /// it is other users' work).
    pub fn reserve(
        self: &Arc<Self>,
        dir: &Path,
        what: &str,
        size: u64,
        keep: u64,
    ) -> anyhow::Result<Promise> {
        use anyhow::Context as _;
        let Shortfall { free, promised } = match self
            .promise(dir, size, keep)
            .context("cannot check the free disk")?
        {
            Ok(promise) => return Ok(promise),
            Err(shortfall) => shortfall,
        };
        tracing::warn!(
            "not enough disk space for {what}: it takes {size} bytes, {free} are free, \
             {promised} are promised to writes under way, and {keep} are kept \
             (min_free_disk_mib)"
        );
        let size_of =
            |bytes: u64| crate::memory::size(usize::try_from(bytes).unwrap_or(usize::MAX));
        // Rounded down, as the sizes are rounded up: a refusal never reads as if it fit.
        let unit = if free < 16 << 20 { 1 << 10 } else { 1 << 20 };
        let under_way = if promised > 0 {
            ", part of which other work under way will take"
        } else {
            ""
        };
        // The setting, or the least that keeps a restart possible (the setting below it).
        let kept = if keep <= MIN_FREE_TO_START {
            "the least that keeps a restart possible, whatever min_free_disk_mib says"
        } else {
            "min_free_disk_mib"
        };
        anyhow::bail!(
            "not enough disk space for {what}: it takes {}, and the data directory keeps {} \
             free ({kept}) for the database and networks; {} are free{under_way}",
            size_of(size),
            size_of(keep),
            size_of(free - free % unit)
        );
    }
}

impl Promise {
    /// Gives back `bytes` of the promise (at most all of it): space that a file now holds
    /// itself, which the free space shows. Returns the bytes given back.
    pub fn release(&mut self, bytes: u64) -> u64 {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        *self.ledger.lock() -= bytes;
        bytes
    }

    /// Promises again `bytes` that [`Promise::release`] gave back, whatever the disk holds:
    /// for space that the file that held it gave up (removed after a failure) and that the
    /// same write will need again.
    pub fn take_back(&mut self, bytes: u64) {
        self.bytes += bytes;
        *self.ledger.lock() += bytes;
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
        let _serial = super::free_space_turn();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::default());
        let free = free_space(dir.path()).unwrap();
        // Room for two promises of 64 MiB, with a margin of 32 MiB for the free space to
        // move meanwhile (other tests and programs write to the same disk).
        let third = 64 << 20;
        let keep = free - 2 * third - third / 2;
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

    /// A refusal says what the write takes and what is kept, not what others were promised.
    /// Other processes on the machine change the free space: a round in which it moved by
    /// more than the test's margins is run again.
    #[test]
    fn refusals_name_the_write_and_the_reserve() {
        let _serial = super::free_space_turn();
        let dir = tempfile::tempdir().unwrap();
        let round = || {
            let ledger = Arc::new(Ledger::default());
            let free = free_space(dir.path()).unwrap();
            let keep = free - (256 << 20);
            let others = ledger
                .promise(dir.path(), 192 << 20, keep)
                .unwrap()
                .unwrap();
            let refused = ledger
                .reserve(dir.path(), "the checkpoint", 128 << 20, keep)
                .map_err(|e| e.to_string());
            drop(others);
            let after = ledger
                .reserve(dir.path(), "the checkpoint", 128 << 20, keep)
                .map(drop);
            let moved = free.abs_diff(free_space(dir.path()).unwrap());
            (moved < 32 << 20).then_some((refused, after))
        };
        let (refused, after) = (0..10)
            .find_map(|_| round())
            .expect("the free space moved by 32 MiB or more in each of ten rounds");
        let refused = refused.unwrap_err();
        assert!(
            refused.starts_with("not enough disk space for the checkpoint: it takes 128 MiB")
                && refused.ends_with("part of which other work under way will take")
                // No number in it is the others' 192 MiB (the free space may hold the digits).
                && !refused.split(|c: char| !c.is_ascii_digit()).any(|n| n == "192"),
            "{refused}"
        );
        assert!(after.is_ok());
    }

    /// A refusal under the least reserve names it as such, not as the setting (it said
    /// that min_free_disk_mib, set to 0, kept 4 MiB free).
    #[test]
    fn the_least_reserve_is_named_as_such() {
        let _serial = super::free_space_turn();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::default());
        let free = free_space(dir.path()).unwrap();
        let refused = |keep: u64| {
            ledger
                .reserve(dir.path(), "the checkpoint", free, keep)
                .unwrap_err()
                .to_string()
        };
        let least = refused(super::MIN_FREE_TO_START);
        assert!(
            least.contains(
                "keeps 4096 KiB free (the least that keeps a restart possible, \
                 whatever min_free_disk_mib says)"
            ),
            "{least}"
        );
        let set = refused(256 << 20);
        assert!(
            set.contains("keeps 256 MiB free (min_free_disk_mib)"),
            "{set}"
        );
    }

    #[test]
    fn free_space_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        let missing = free_space(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
