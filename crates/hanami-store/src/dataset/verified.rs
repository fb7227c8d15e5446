//! Which dataset files were found to match their checksum, so that a file read again and
//! again (an export page after page, task after task on one dataset) is read whole for the
//! comparison once per change of the file, not at every use.
//!
//! A file is known by its stamp (device, inode, length, modification and change times).
//! On the local file systems of Linux the kernel sets the change time at every write and no
//! program can set it back, so a file written since has another stamp (a write through a
//! shared memory map of the file is stamped when its page is first written after it was
//! saved to disk: dataset files are read-only, and the server maps none). Elsewhere (network
//! and FUSE file systems, whose times the server or another program reports; FAT, which has
//! no change time) nothing is remembered, and every use compares.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Checksum;

/// How many files are remembered at most; beyond, one is forgotten for each new one (a file
/// forgotten is only compared again at its next use).
const REMEMBERED: usize = 4096;

/// How long a file must have been unchanged when its comparison began for the comparison to
/// be remembered, by default. A file system whose clock steps coarsely (by a second, say)
/// gives a change made in the same step as the last one the same stamp; a file unchanged
/// for longer than a step before the comparison began gets a later time at any change made
/// during or after it.
const SETTLED: Duration = Duration::from_secs(3);

/// The file systems (`statfs` magic numbers) whose change times the kernel keeps itself:
/// ext2/3/4, XFS, Btrfs, tmpfs, overlay, F2FS, ZFS and bcachefs.
const KEEPING_CHANGE_TIMES: [u32; 8] = [
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0x794C_7630,
    0xF2F5_2010,
    0x2FC1_2FC1,
    0xCA45_1A4E,
];

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

    /// Whether files in `dir` can be remembered: whether it lies on a file system whose
    /// change times the kernel keeps (see the module's documentation). Where not, every use
    /// of a dataset there reads its whole file for the comparison.
    pub fn remembers_in(dir: &std::path::Path) -> bool {
        File::open(dir).is_ok_and(|dir| keeps_change_times(&dir))
    }

    /// Whether the file with this stamp was found to match `checksum`.
    pub(super) fn matched(&self, stamp: &FileStamp, checksum: Checksum) -> bool {
        self.lock().get(stamp) == Some(&checksum)
    }

    /// Records that the file with this stamp, unchanged while it was read from `started` on,
    /// matched `checksum`, where its last change lies far enough before `started` (see
    /// [`SETTLED`]).
    pub(super) fn remember(&self, stamp: FileStamp, checksum: Checksum, started: SystemTime) {
        if !stamp.changed_before(started, self.settled) {
            return;
        }
        let mut matched = self.lock();
        if matched.len() >= REMEMBERED
            && !matched.contains_key(&stamp)
            && let Some(forgotten) = matched.keys().next().copied()
        {
            matched.remove(&forgotten);
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
/// length, and when its content and its inode last changed. Where the kernel keeps change
/// times (see the module's documentation), a file written since has another stamp.
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

    /// Whether the file's last change lies more than `settled` before `then`.
    fn changed_before(&self, then: SystemTime, settled: Duration) -> bool {
        let (secs, nanos) = self.changed;
        let Ok(secs) = u64::try_from(secs) else {
            return false;
        };
        let changed = UNIX_EPOCH + Duration::new(secs, u32::try_from(nanos).unwrap_or(0));
        then.duration_since(changed)
            .is_ok_and(|since| since > settled)
    }
}

/// Whether `file` lies on a file system whose change times the kernel keeps itself (see the
/// module's documentation); `false` where that cannot be told.
pub(super) fn keeps_change_times(file: &File) -> bool {
    // SAFETY: `statfs` is plain old data, and the call only writes the value passed to it.
    let mut about = unsafe { std::mem::zeroed::<libc::statfs>() };
    // SAFETY: the descriptor is open for as long as `file` lives.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut about) } != 0 {
        return false;
    }
    // The magic numbers fit 32 bits; the field is wider on some targets.
    #[allow(clippy::unnecessary_cast)]
    let kind = about.f_type as u32;
    KEEPING_CHANGE_TIMES.contains(&kind)
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
    fn a_file_changed_shortly_before_its_comparison_is_not_remembered() {
        let verified = VerifiedFiles::default();
        let checksum: Checksum = "xxh3:0123456789abcdef".parse().unwrap();
        let now = SystemTime::now();
        let fresh = stamp(now_secs());
        verified.remember(fresh, checksum, now);
        assert!(!verified.matched(&fresh, checksum));
        // Exactly the settled time before: not more than it.
        let secs = now_secs();
        let borderline = stamp(secs - 3);
        let began = UNIX_EPOCH + Duration::from_secs(secs as u64);
        verified.remember(borderline, checksum, began);
        assert!(!verified.matched(&borderline, checksum));
        let old = stamp(now_secs() - 10);
        verified.remember(old, checksum, now);
        assert!(verified.matched(&old, checksum));
        let other: Checksum = "xxh3:0123456789abcdee".parse().unwrap();
        assert!(!verified.matched(&old, other));
        // A change time after the comparison began (a clock set back) is not settled either.
        let future = stamp(now_secs() + 100);
        verified.remember(future, checksum, now);
        assert!(!verified.matched(&future, checksum));
    }

    #[test]
    fn files_are_remembered_only_where_the_kernel_keeps_change_times() {
        // Where this fails, the memo tests of file.rs cannot pass: a temporary directory
        // on a network or FUSE file system.
        let dir = tempfile::tempdir().unwrap();
        assert!(VerifiedFiles::remembers_in(dir.path()));
        assert!(!VerifiedFiles::remembers_in(std::path::Path::new("/proc")));
        assert!(!VerifiedFiles::remembers_in(&dir.path().join("missing")));
    }

    #[test]
    fn the_memo_stays_bounded_and_keeps_the_newest() {
        let verified = VerifiedFiles::new(Duration::ZERO);
        let checksum: Checksum = "xxh3:0123456789abcdef".parse().unwrap();
        let now = SystemTime::now();
        for second in 0..REMEMBERED as i64 + 10 {
            verified.remember(stamp(second + 1), checksum, now);
        }
        let remembered = verified.lock().len();
        assert_eq!(remembered, REMEMBERED);
        assert!(verified.matched(&stamp(REMEMBERED as i64 + 10), checksum));
    }
}
