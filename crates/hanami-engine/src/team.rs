//! A pair of threads for splitting a hexagon's neuron blocks across two cores: the calling
//! thread and one dedicated worker that waits for work by spinning, so that a hand-off costs
//! well under a microsecond (a rayon fork-join per hexagon costs more than the work it
//! splits, see `docs/benchmarks.md`). An idle worker parks after a short while, so a cluster
//! that does nothing costs no CPU.
//!
//! The worker only helps: a job whose worker part has not started when the calling thread has
//! finished its own part is withdrawn, and the caller does not wait for it. So a worker that
//! is asleep, or whose core the operating system gave to another process, delays nobody (a
//! caller that waited for it would spin for a whole time slice).

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN_TIME: Duration = Duration::from_micros(200);

/// A job: called with the part index 1 on the worker.
type Job = *const (dyn Fn(usize) + Sync);

/// Items of a mutable slice handed out one at a time, each to exactly one of the threads that
/// claim them (in order), without a lock per item.
pub(crate) struct Claims<'a, T> {
    items: *mut T,
    len: usize,
    /// The next index to hand out, on a cache line of its own (both threads update it).
    next: Padded,
    _items: PhantomData<&'a mut [T]>,
}

/// An atomic counter alone on its cache lines.
#[repr(align(128))]
struct Padded(AtomicUsize);

// SAFETY: every index is handed out at most once (an atomic fetch-and-add), so no two threads
// get the same item; the items themselves go to other threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Claims<'_, T> {}

impl<'a, T> Claims<'a, T> {
    /// Hands out the items of `items`.
    pub(crate) fn new(items: &'a mut [T]) -> Self {
        Claims {
            items: items.as_mut_ptr(),
            len: items.len(),
            next: Padded(AtomicUsize::new(0)),
            _items: PhantomData,
        }
    }

    /// The next item nobody has claimed yet, if any.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn claim(&self) -> Option<&mut T> {
        let index = self.next.0.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `index` is below the length, so inside the slice, which `self` borrows
        // mutably for `'a`; no other claim returns the same index (see `Sync` above).
        (index < self.len).then(|| unsafe { &mut *self.items.add(index) })
    }
}

/// State shared between the calling thread and the worker.
struct Shared {
    /// Incremented by the caller for each job (and for the stop request).
    posted: AtomicU64,
    /// The number of the last job the worker finished.
    finished: AtomicU64,
    /// The number of the last job that the worker claimed (it runs it) or that the caller
    /// withdrew (the worker never touches it). Job `n` is posted only when this is `n − 1`.
    claimed: AtomicU64,
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

/// Work that only the calling thread does beside a job of the [`Pair`] (or beside the items of
/// a parallel run), while the worker may be running its part.
pub(crate) enum Own<'a> {
    /// Nothing.
    Nothing,
    /// Before the caller's part of the job (the worker starts on the shared work meanwhile).
    First(&'a mut dyn FnMut()),
    /// After the caller's part, before it waits for the worker's (so it fills that wait).
    Last(&'a mut dyn FnMut()),
}

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
            claimed: AtomicU64::new(0),
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

    /// Runs `job(0)` on the calling thread and, if the worker gets to it before `job(0)` has
    /// returned, `job(1)` on the worker; returns when both are done. `job(1)` may not run at
    /// all, so a job must not leave work to it alone: both parts take work from a shared
    /// queue until it is empty. A panic in either is propagated. (`&mut self`: one job at a
    /// time.)
    ///
    /// `own` is the calling thread's own work beside the job, before or after `job(0)`,
    /// while the worker may run `job(1)`.
    pub(crate) fn run(&mut self, mut own: Own<'_>, job: &(dyn Fn(usize) + Sync)) {
        let shared = &*self.shared;
        // SAFETY: only the lifetime is erased. The worker calls the job only after claiming
        // it, and before it publishes `finished`; this function does not return (nor unwind)
        // before it has either withdrawn the job (then the worker never reads it) or seen
        // `finished` for it (`Wait` below), so the job outlives every use.
        let erased: Job = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Job>(job as *const _)
        };
        // SAFETY: the worker does not read `job` now: the previous job was withdrawn (never
        // read) or finished, and this one is not posted yet.
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
        if let Own::First(first) = &mut own {
            first();
        }
        job(0);
        if let Own::Last(last) = &mut own {
            last();
        }
        drop(wait);
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a hanami-engine worker thread panicked");
        }
    }
}

/// Withdraws job `number` if the worker has not claimed it, else waits until the worker has
/// finished it; also when the caller unwinds.
struct Wait<'a> {
    shared: &'a Shared,
    number: u64,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let shared = self.shared;
        if shared
            .claimed
            .compare_exchange(
                self.number - 1,
                self.number,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return;
        }
        let mut spins = 0u32;
        while shared.finished.load(Ordering::Acquire) < self.number {
            spins += 1;
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                // The worker was descheduled inside the job: let it run.
                thread::yield_now();
            }
        }
        if thread::panicking() {
            // The caller's own panic goes on; a panic of the worker's part of the same job
            // must not be reported by the next job.
            shared.panicked.store(false, Ordering::Relaxed);
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
        if shared
            .claimed
            .compare_exchange(number - 1, number, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // The caller withdrew the job: it is done without us.
            continue;
        }
        // SAFETY: the acquire load above saw the increment that published this job, which
        // the caller wrote before it; the claim succeeded, so the caller keeps it alive until
        // `finished` says done.
        let job = unsafe { (*shared.job.get()).expect("a posted job") };
        // SAFETY: as above, the pointee is alive and `Sync`.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)(1) })) {
            shared.panicked.store(true, Ordering::Relaxed);
            // Not dropped: a payload whose drop panics would end this thread before it
            // reports the job finished, and the caller would wait for ever.
            std::mem::forget(payload);
        }
        shared.finished.store(number, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Part 0 waits (up to a second) until part 1 has started, so the worker's part runs.
    fn wait_for(flag: &AtomicBool) {
        let start = Instant::now();
        while !flag.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(1) {
            std::hint::spin_loop();
        }
    }

    /// The caller's own work runs once per job: `First` before the caller's part of the job
    /// starts, `Last` after it has ended (when no item is left to claim).
    #[test]
    fn own_work_runs_once_before_or_after_the_callers_part() {
        let mut pair = Pair::new().unwrap();
        for round in 0..1000u64 {
            let mut items = vec![0u64; 2 + (round % 10) as usize];
            let claims = Claims::new(&mut items);
            // 0: the caller's part has not started, 1: it runs, 2: it has ended.
            let caller = AtomicUsize::new(0);
            let job = |part: usize| {
                if part == 0 {
                    caller.store(1, Ordering::Relaxed);
                }
                while let Some(item) = claims.claim() {
                    *item += 1;
                }
                if part == 0 {
                    caller.store(2, Ordering::Relaxed);
                }
            };
            let mut seen = Vec::new();
            let mut look = || seen.push(caller.load(Ordering::Relaxed));
            let first = round % 2 == 0;
            pair.run(
                if first {
                    Own::First(&mut look)
                } else {
                    Own::Last(&mut look)
                },
                &job,
            );
            assert_eq!(seen, [if first { 0 } else { 2 }], "round {round}");
            assert!(items.iter().all(|&n| n == 1), "round {round}: {items:?}");
        }
    }

    #[test]
    fn claims_hand_out_every_item_once() {
        let mut pair = Pair::new().unwrap();
        for round in 0..1000u64 {
            let mut items = vec![0u64; 1 + (round % 40) as usize];
            let claims = Claims::new(&mut items);
            pair.run(Own::Nothing, &|_| {
                while let Some(item) = claims.claim() {
                    *item += 1;
                }
            });
            assert!(items.iter().all(|&n| n == 1), "round {round}: {items:?}");
        }
    }

    #[test]
    fn shared_work_is_done_once_whoever_takes_it() {
        let mut pair = Pair::new().unwrap();
        for round in 0..1000 {
            let next = AtomicUsize::new(0);
            let done: Vec<AtomicUsize> = (0..8).map(|_| AtomicUsize::new(0)).collect();
            pair.run(Own::Nothing, &|_| {
                loop {
                    let item = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = done.get(item) else { break };
                    slot.fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(
                done.iter().all(|d| d.load(Ordering::Relaxed) == 1),
                "round {round}"
            );
        }
    }

    #[test]
    fn the_worker_takes_part_also_after_parking() {
        let mut pair = Pair::new().unwrap();
        for pause in [0, 5] {
            // After the pause the worker has parked; it still wakes up.
            thread::sleep(Duration::from_millis(pause));
            let started = AtomicBool::new(false);
            let parts = AtomicUsize::new(0);
            pair.run(Own::Nothing, &|part| {
                parts.fetch_add(part + 1, Ordering::Relaxed);
                if part == 1 {
                    started.store(true, Ordering::Release);
                } else {
                    wait_for(&started);
                }
            });
            assert!(started.load(Ordering::Relaxed));
            assert_eq!(parts.load(Ordering::Relaxed), 3);
        }
    }

    /// Runs one job whose worker part, once started, runs `worker` (which panics), while
    /// the caller's part waits for that start and then runs `caller`; returns whether the
    /// run panicked.
    fn run_panicking(
        pair: &mut Pair,
        worker: &(dyn Fn() + Sync),
        caller: &(dyn Fn() + Sync),
    ) -> bool {
        let started = AtomicBool::new(false);
        let result = catch_unwind(AssertUnwindSafe(|| {
            pair.run(Own::Nothing, &|part| {
                if part == 1 {
                    started.store(true, Ordering::Release);
                    worker();
                } else {
                    wait_for(&started);
                    caller();
                }
            });
        }));
        assert!(started.load(Ordering::Relaxed), "the worker took part");
        result.is_err()
    }

    #[test]
    fn a_panic_on_both_threads_is_reported_once() {
        let mut pair = Pair::new().unwrap();
        let failing = run_panicking(&mut pair, &|| panic!("worker fails"), &|| {
            panic!("caller fails")
        });
        assert!(failing);
        // The worker's panic belonged to that job: the next one runs without a panic.
        pair.run(Own::Nothing, &|_| {});
    }

    /// A panic payload whose drop panics too.
    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("payload drop fails");
        }
    }

    #[test]
    fn a_worker_panic_whose_payload_panics_on_drop_does_not_hang_the_caller() {
        let (done, finished) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut pair = Pair::new().unwrap();
            let worker = || std::panic::panic_any(PanicsOnDrop);
            let _ = done.send(run_panicking(&mut pair, &worker, &|| {}));
        });
        let reported = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("the caller came back");
        assert!(reported, "the worker's panic reached the caller");
    }

    #[test]
    fn a_worker_panic_reaches_the_caller() {
        let mut pair = Pair::new().unwrap();
        assert!(run_panicking(&mut pair, &|| panic!("worker fails"), &|| {}));
        // The pair stays usable.
        pair.run(Own::Nothing, &|_| {});
    }
}
