//! Which dataset files were found to match their checksum, so that a file read again and
//! again (an export page after page, task after task on one dataset) is read whole for the
//! comparison once per change of the file, not at every use.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Checksum;

/// How many files are remembered at most; the memo starts again empty beyond that (a file
/// forgotten is only compared again at its next use).
const REMEMBERED: usize = 4096;

/// How long after a file's last change a comparison is remembered by default. A file system
/// whose clock steps are coarse (a second, two on FAT) could give a change made just after a
/// comparison the stamp of the file compared; a file that had not changed for longer than a
/// step when it was compared cannot be changed again under the same stamp.
const SETTLED: Duration = Duration::from_secs(2);

/// Dataset files whose content matched a checksum, each known by its stamp at the time
/// (device, inode, length, modification and change times): a file found again with the same
/// stamp is taken as compared. Shared by everything that reads datasets in one process
/// (`Send + Sync`).
#[derive(Debug)]
pub struct VerifiedFiles {
    matched: Mutex<HashMap<FileStamp, Checksum>>,
    settled: Duration,
}

impl Default for VerifiedFiles {
    fn default() -> Self {
        Self::new(SETTLED)
    }
}

impl VerifiedFiles {
    /// An empty memo that remembers files unchanged for at least `settled` when compared.
    pub fn new(settled: Duration) -> Self {
        Self {
            matched: Mutex::new(HashMap::new()),
            settled,
        }
    }

    /// Whether the file with this stamp was found to match `checksum`.
    pub(super) fn matched(&self, stamp: &FileStamp, checksum: Checksum) -> bool {
        self.lock().get(stamp) == Some(&checksum)
    }

    /// Records that the file with this stamp (unchanged while it was read) matched
    /// `checksum`, where its last change lies far enough back (see [`SETTLED`]).
    pub(super) fn remember(&self, stamp: FileStamp, checksum: Checksum) {
        if !stamp.changed_before(SystemTime::now(), self.settled) {
            return;
        }
        let mut matched = self.lock();
        if matched.len() >= REMEMBERED {
            matched.clear();
        }
        matched.insert(stamp, checksum);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileStamp, Checksum>> {
        // The map is consistent after every statement: a panic elsewhere cannot break it.
        self.matched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What tells a file's content apart without reading it: which file (device and inode), its
/// length, and when its content and its inode last changed. The kernel sets the change time
/// at every write and no program can set it back, so a file written since has another stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    /// The stamp of the file these are the metadata of.
    pub(super) fn of(metadata: &Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Whether the file's last change lies at least `settled` before `now`.
    fn changed_before(&self, now: SystemTime, settled: Duration) -> bool {
        let (secs, nanos) = self.changed;
        let Ok(secs) = u64::try_from(secs) else {
            return false;
        };
        let changed = UNIX_EPOCH + Duration::new(secs, u32::try_from(nanos).unwrap_or(0));
        now.duration_since(changed)
            .is_ok_and(|since| since >= settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(changed_secs: i64) -> FileStamp {
        FileStamp {
            device: 1,
            inode: 2,
            len: 3,
            modified: (changed_secs, 0),
            changed: (changed_secs, 0),
        }
    }

    fn now_secs() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn a_file_changed_just_now_is_not_remembered() {
        let verified = VerifiedFiles::default();
        let checksum: Checksum = "xxh3:0123456789abcdef".parse().unwrap();
        let fresh = stamp(now_secs());
        verified.remember(fresh, checksum);
        assert!(!verified.matched(&fresh, checksum));
        let old = stamp(now_secs() - 10);
        verified.remember(old, checksum);
        assert!(verified.matched(&old, checksum));
        let other: Checksum = "xxh3:0123456789abcdee".parse().unwrap();
        assert!(!verified.matched(&old, other));
        // A change time in the future (a clock set back) is not settled either.
        let future = stamp(now_secs() + 100);
        verified.remember(future, checksum);
        assert!(!verified.matched(&future, checksum));
    }

    #[test]
    fn the_memo_stays_bounded() {
        let verified = VerifiedFiles::new(Duration::ZERO);
        let checksum: Checksum = "xxh3:0123456789abcdef".parse().unwrap();
        for second in 0..REMEMBERED as i64 + 10 {
            verified.remember(stamp(second + 1), checksum);
        }
        assert!(verified.lock().len() <= REMEMBERED);
        assert!(verified.matched(&stamp(REMEMBERED as i64 + 10), checksum));
    }
}
