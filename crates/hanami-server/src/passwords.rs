//! Password hashing off the async runtime, on a fixed set of threads.
//!
//! An argon2 hash takes about 19 MiB and 20 ms. Run on the runtime's blocking pool, a flood of
//! login attempts (no token needed) ran hundreds of hashes at once and left gigabytes in the
//! allocator's per-thread arenas. Here at most one hash per thread runs at a time, so memory
//! stays at a few hashes' worth, and further attempts wait their turn, for a limited time
//! ([`MAX_WAIT`] in the server): the server answers requests whose clients closed their sending side (see
//! `connections`), so it cannot tell a client that gave up, and under a flood a queue
//! without a bound would make everyone wait for hashes nobody reads.
//!
//! Logins ([`PasswordWorkers::run_for`]) also take turns by client network: no network has
//! more checks queued or running than there are threads, so a flood of logins from one
//! network (random user ids cost a check each) leaves the others a place near the front.

use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::per_network::PerNetwork;

type Job = Box<dyn FnOnce() + Send>;

/// Most password threads: logins need no more, and each running check holds about 19 MiB.
pub const MAX_THREADS: usize = 4;

/// The threads that hash and verify passwords.
pub struct PasswordWorkers {
    jobs: mpsc::Sender<Job>,
    max_wait: Duration,
    /// Each client network's turns: as many as there are threads.
    per_client: PerNetwork,
}

/// Longest time a password job waits for a thread before it is given up.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// A password job that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PasswordJobFailed {
    /// It waited too long for a thread: too many password checks at once.
    #[error("the server is busy checking other passwords; try again in a moment")]
    Busy,
    /// It panicked.
    #[error("the password check failed unexpectedly")]
    Panicked,
}

impl PasswordWorkers {
    /// Starts `threads` workers (at least one, at most [`MAX_THREADS`]), whose jobs wait
    /// `max_wait` at most; they end when this value is dropped.
    pub fn new(threads: usize, max_wait: Duration) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = threads.clamp(1, MAX_THREADS);
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hanami-passwords-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job, not while running it.
                        let job = crate::sync::lock(&queue).recv();
                        let Ok(job) = job else { return };
                        // A panicking job fails only its own caller (its answer channel
                        // closes); the worker goes on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .expect("cannot start a password thread");
        }
        Self {
            jobs,
            max_wait,
            per_client: PerNetwork::new(threads),
        }
    }

    /// Runs `work` on a worker once one is free.
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, PasswordJobFailed> {
        self.queue(Instant::now(), work).await
    }

    /// Runs `work` for a client at `client` once its network's turn has come and a worker
    /// is free; the wait for both together is bounded as for [`PasswordWorkers::run`].
    pub async fn run_for<R: Send + 'static>(
        &self,
        client: IpAddr,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, PasswordJobFailed> {
        let asked = Instant::now();
        let _turn = tokio::time::timeout(self.max_wait, self.per_client.take(client))
            .await
            .map_err(|_| PasswordJobFailed::Busy)?;
        self.queue(asked, work).await
    }

    /// Queues `work`, which is given up if no worker took it within the limit from `asked`.
    async fn queue<R: Send + 'static>(
        &self,
        asked: Instant,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, PasswordJobFailed> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let max_wait = self.max_wait;
        self.jobs
            .send(Box::new(move || {
                // A caller that has gone (its request was dropped) costs nothing, and one
                // that waited too long gets `Busy` instead of a late hash.
                if answer.is_closed() {
                    return;
                }
                let _ = answer.send(if asked.elapsed() > max_wait {
                    Err(PasswordJobFailed::Busy)
                } else {
                    Ok(work())
                });
            }))
            .map_err(|_| PasswordJobFailed::Panicked)?;
        answered.await.map_err(|_| PasswordJobFailed::Panicked)?
    }
}

#[cfg(test)]
mod tests {
    use super::PasswordWorkers;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn at_most_one_job_per_thread_runs_and_panics_are_contained() {
        let workers = Arc::new(PasswordWorkers::new(2, super::MAX_WAIT));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..12)
            .map(|i| {
                let (workers, running, most) = (workers.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    workers
                        .run(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(10));
                            running.fetch_sub(1, Ordering::SeqCst);
                            i * 2
                        })
                        .await
                })
            })
            .collect();
        for (i, job) in jobs.into_iter().enumerate() {
            assert_eq!(job.await.unwrap().unwrap(), i * 2);
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        // A job whose caller has gone is skipped.
        let ran = Arc::new(AtomicUsize::new(0));
        let (blocker, blocked) = (workers.clone(), Arc::new(std::sync::Barrier::new(3)));
        let holds: Vec<_> = (0..2)
            .map(|_| {
                let (blocker, blocked) = (blocker.clone(), blocked.clone());
                tokio::spawn(async move { blocker.run(move || blocked.wait()).await })
            })
            .collect();
        let counted = ran.clone();
        let abandoned = tokio::spawn(async move {
            workers_run_counted(&blocker, counted).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        blocked.wait();
        for hold in holds {
            hold.await.unwrap().unwrap();
        }
        assert_eq!(workers.run(|| 9).await.unwrap(), 9);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        // A job that panics fails its caller only.
        assert!(workers.run(|| panic!("boom")).await.is_err());
        assert_eq!(workers.run(|| 7).await.unwrap(), 7);
        assert_eq!(workers.run(|| 8).await.unwrap(), 8);
    }

    #[tokio::test]
    async fn jobs_that_waited_too_long_are_given_up() {
        let workers = Arc::new(PasswordWorkers::new(1, Duration::from_millis(50)));
        let slow = workers.clone();
        let holding = tokio::spawn(async move {
            slow.run(|| std::thread::sleep(Duration::from_millis(200)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = ran.clone();
        let late = workers
            .run(move || counted.fetch_add(1, Ordering::SeqCst))
            .await;
        assert!(
            matches!(late, Err(super::PasswordJobFailed::Busy)),
            "{late:?}"
        );
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        holding.await.unwrap().unwrap();
        assert_eq!(workers.run(|| 5).await.unwrap(), 5);
    }

    /// Logins from a network that has as many checks under way as there are threads wait
    /// for the network's turn, not in the queue, so another network's login goes first.
    #[tokio::test]
    async fn a_flood_from_one_network_does_not_queue_ahead_of_others() {
        let workers = Arc::new(PasswordWorkers::new(1, super::MAX_WAIT));
        let flood: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let other: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let first = {
            let (workers, order) = (workers.clone(), order.clone());
            tokio::spawn(async move {
                workers
                    .run_for(flood, move || {
                        released.recv().unwrap();
                        order.lock().unwrap().push("flood 0");
                    })
                    .await
            })
        };
        let mut logins = vec![first];
        let mut login = |client, name: &'static str| {
            let (workers, order) = (workers.clone(), order.clone());
            logins.push(tokio::spawn(async move {
                workers
                    .run_for(client, move || order.lock().unwrap().push(name))
                    .await
            }));
        };
        for name in ["flood 1", "flood 2", "flood 3"] {
            login(flood, name);
        }
        // Every login asked so far waits (for the thread or for its network's turn).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        login(other, "other");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        for login in logins {
            login.await.unwrap().unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["flood 0", "other", "flood 1", "flood 2", "flood 3"]
        );
    }

    async fn workers_run_counted(workers: &PasswordWorkers, ran: Arc<AtomicUsize>) {
        let _ = workers
            .run(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .await;
    }
}
