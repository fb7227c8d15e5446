//! A pair of threads for splitting a hexagon's neuron blocks across two cores: the calling
//! thread and one dedicated worker that waits for work by spinning, so that a hand-off costs
//! well under a microsecond (a rayon fork-join per hexagon costs more than the work it
//! splits, see `docs/benchmarks.md`). An idle worker parks after a short while, so a cluster
//! that does nothing costs no CPU.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN_TIME: Duration = Duration::from_micros(200);

/// A job: called with the part index 1 on the worker.
type Job = *const (dyn Fn(usize) + Sync);

/// State shared between the calling thread and the worker.
struct Shared {
    /// Incremented by the caller for each job (and for the stop request).
    posted: AtomicU64,
    /// The number of the last job the worker finished.
    finished: AtomicU64,
    /// Whether the worker is about to park or parked.
    sleeping: AtomicBool,
    stop: AtomicBool,
    /// Whether a job panicked on the worker.
    panicked: AtomicBool,
    /// The current job; written only by the caller before it increments `posted`, read only
    /// by the worker after it has seen that increment.
    job: UnsafeCell<Option<Job>>,
}

// SAFETY: `job` is the only non-`Sync` field. The caller writes it only while the worker is
// idle (before publishing the job with a release increment of `posted`, and never again until
// the worker has published `finished` for it); the worker reads it only after an acquire load
// of `posted` saw the increment. The pointee is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: see above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// The calling thread plus one spinning worker thread.
pub(crate) struct Pair {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").finish_non_exhaustive()
    }
}

impl Pair {
    /// Starts the worker thread.
    pub(crate) fn new() -> std::io::Result<Pair> {
        let shared = Arc::new(Shared {
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            job: UnsafeCell::new(None),
        });
        let worker = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("hanami-engine-worker".into())
            .spawn(move || work(&worker))?;
        Ok(Pair {
            shared,
            handle: Some(handle),
        })
    }

    /// Runs `job(0)` on the calling thread and `job(1)` on the worker, and returns when both
    /// are done. A panic in either is propagated. (`&mut self`: one job at a time.)
    pub(crate) fn run(&mut self, job: &(dyn Fn(usize) + Sync)) {
        let shared = &*self.shared;
        // SAFETY: only the lifetime is erased. The worker calls the job before it publishes
        // `finished`, and this function does not return (nor unwind) before it has seen
        // `finished` for this job (`Wait` below), so the job outlives every use.
        let erased: Job = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Job>(job as *const _)
        };
        // SAFETY: the worker is idle (the previous `run` waited for it), so nobody reads
        // `job` now.
        unsafe { *shared.job.get() = Some(erased) };
        let number = shared.posted.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(handle) = self
            .handle
            .as_ref()
            .filter(|_| shared.sleeping.load(Ordering::SeqCst))
        {
            handle.thread().unpark();
        }
        let wait = Wait { shared, number };
        job(0);
        drop(wait);
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a hanami-engine worker thread panicked");
        }
    }
}

/// Waits until the worker has finished job `number`, also when the caller unwinds.
struct Wait<'a> {
    shared: &'a Shared,
    number: u64,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        while self.shared.finished.load(Ordering::Acquire) < self.number {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.posted.fetch_add(1, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// The worker's loop: wait for a job (spinning, then parked), run it, report it.
fn work(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        let mut since = Instant::now();
        let mut spins = 0u32;
        let number = loop {
            let number = shared.posted.load(Ordering::Acquire);
            if number != seen {
                break number;
            }
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(1024) && since.elapsed() > SPIN_TIME {
                shared.sleeping.store(true, Ordering::SeqCst);
                if shared.posted.load(Ordering::SeqCst) == seen {
                    thread::park();
                }
                shared.sleeping.store(false, Ordering::SeqCst);
                since = Instant::now();
            }
        };
        seen = number;
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: the acquire load above saw the increment that published this job, which
        // the caller wrote before it; the caller keeps it alive until `finished` says done.
        let job = unsafe { (*shared.job.get()).expect("a posted job") };
        // SAFETY: as above, the pointee is alive and `Sync`.
        if catch_unwind(AssertUnwindSafe(|| unsafe { (*job)(1) })).is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
        shared.finished.store(number, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn both_parts_run_every_time() {
        let mut pair = Pair::new().unwrap();
        let count = AtomicUsize::new(0);
        for _ in 0..1000 {
            pair.run(&|part| {
                count.fetch_add(part + 1, Ordering::Relaxed);
            });
        }
        assert_eq!(count.load(Ordering::Relaxed), 3000);
        // After parking, the worker still wakes up.
        thread::sleep(Duration::from_millis(5));
        pair.run(&|part| {
            count.fetch_add(part + 1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 3003);
    }

    #[test]
    fn a_worker_panic_reaches_the_caller() {
        let mut pair = Pair::new().unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            pair.run(&|part| assert_eq!(part, 0, "worker fails"));
        }));
        assert!(result.is_err());
        // The pair stays usable.
        pair.run(&|_| {});
    }
}
