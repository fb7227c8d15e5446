//! Failed logins slow down further guesses.
//!
//! Password checks are counted per user id and client network
//! ([`crate::per_network::network`]), so guesses from one network cannot slow down the
//! user's logins from another. Failed checks in a row cost nothing more than the check
//! until the [`FREE_FAILURES`]th; it and each failure after it close the door for a while,
//! twice as long each time, up to [`LONGEST_WAIT`]; an attempt while the door is closed is
//! refused without a check (so the refusal tells nothing about the password). A successful
//! login forgets the failures; [`FORGET_AFTER`] without a check forgets them too.
//!
//! Simultaneous attempts of one user id and network take turns: no more checks run at once
//! than failures are still free (one once the door has closed), so a burst of guesses gets
//! no more checks than guesses one after another would, while correct logins that arrive
//! together all get theirs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use crate::per_network::network;

/// The failed check in a row that closes the door first.
pub const FREE_FAILURES: u32 = 5;
/// The longest a closed door stays closed.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// How long a user id and network without attempts keep their failures.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most user ids and networks tracked at once; beyond it the stalest are forgotten.
const MOST_TRACKED: usize = 65_536;

/// One user id tried from one network.
type Key = (String, IpAddr);

/// The login attempts of one [`Key`].
struct Attempts {
    /// Failed checks since the last successful login.
    failures: u32,
    /// Checks running now.
    checking: u32,
    /// When the last check began or failed.
    last: Instant,
    /// No attempt is checked before this; `None` while the door has not closed. (A time
    /// that merely marked the last event would refuse an attempt that read the clock just
    /// before another one created or settled the entry: correct logins arriving together
    /// were refused as if guessed.)
    closed_until: Option<Instant>,
    /// Wakes the attempts that wait for a turn.
    turn: Arc<Notify>,
}

impl Attempts {
    fn new(now: Instant) -> Self {
        Attempts {
            failures: 0,
            checking: 0,
            last: now,
            closed_until: None,
            turn: Arc::default(),
        }
    }

    /// Whether nothing about this key needs remembering at `now`.
    fn forgettable(&self, now: Instant) -> bool {
        self.checking == 0
            && self.closed_until.is_none_or(|until| now >= until)
            && (self.failures == 0 || now.duration_since(self.last) >= FORGET_AFTER)
    }
}

/// The login attempts of the server's clients.
#[derive(Default)]
pub struct LoginThrottle {
    attempts: Mutex<HashMap<Key, Attempts>>,
}

/// How long an attempt must wait before it may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitFor(pub Duration);

impl WaitFor {
    /// The wait in whole seconds, rounded up (as `Retry-After` gives it).
    pub fn seconds(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

/// What an attempt may do now.
enum Turn {
    /// Check the password.
    Check,
    /// Wait until a running check of the same key has ended (already listening).
    Wait(Pin<Box<OwnedNotified>>),
    /// The door is closed.
    Refused(WaitFor),
}

/// A password check that the throttle let run; tell it how the check ended
/// ([`Check::failed`] or [`Check::succeeded`]). Dropped without, it counts as not made (the
/// client went away).
pub struct Check<'a> {
    throttle: &'a LoginThrottle,
    key: Option<Key>,
}

impl Check<'_> {
    /// The password was wrong (or the user unknown).
    pub fn failed(mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.settle(&key, Some(false), Instant::now());
        }
    }

    /// The password was right: the failures are forgotten.
    pub fn succeeded(mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.settle(&key, Some(true), Instant::now());
        }
    }
}

impl Drop for Check<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.settle(&key, None, Instant::now());
        }
    }
}

impl LoginThrottle {
    /// Waits for a turn to check a password of `user` from `address`; refused while the door
    /// of that user id and network is closed (the refused attempt is not counted).
    pub async fn attempt(&self, user: &str, address: IpAddr) -> Result<Check<'_>, WaitFor> {
        let key = (user.to_owned(), network(address));
        loop {
            match self.take_turn(&key, Instant::now()) {
                Turn::Check => {
                    return Ok(Check {
                        throttle: self,
                        key: Some(key),
                    });
                }
                Turn::Refused(wait) => return Err(wait),
                Turn::Wait(turn) => turn.await,
            }
        }
    }

    fn take_turn(&self, key: &Key, now: Instant) -> Turn {
        let mut attempts = crate::sync::lock(&self.attempts);
        if !attempts.contains_key(key) && attempts.len() >= MOST_TRACKED {
            forget_stale(&mut attempts, now);
        }
        let known = attempts
            .entry(key.clone())
            .or_insert_with(|| Attempts::new(now));
        if known.forgettable(now) {
            known.failures = 0;
        }
        if let Some(until) = known.closed_until
            && now < until
        {
            return Turn::Refused(WaitFor(until - now));
        }
        let turns = FREE_FAILURES.saturating_sub(known.failures).max(1);
        if known.checking < turns {
            known.checking += 1;
            known.last = now;
            Turn::Check
        } else {
            // Listening before the lock is released, so that no end of a check is missed.
            let mut turn = Box::pin(known.turn.clone().notified_owned());
            turn.as_mut().enable();
            Turn::Wait(turn)
        }
    }

    /// Ends a check: `Some(true)` succeeded, `Some(false)` failed, `None` not made.
    fn settle(&self, key: &Key, succeeded: Option<bool>, now: Instant) {
        let mut attempts = crate::sync::lock(&self.attempts);
        let Some(known) = attempts.get_mut(key) else {
            return;
        };
        known.checking = known.checking.saturating_sub(1);
        match succeeded {
            Some(true) => {
                known.failures = 0;
                known.closed_until = None;
            }
            Some(false) => {
                known.failures += 1;
                known.last = now;
                let wait = wait_after(known.failures);
                known.closed_until = (!wait.is_zero()).then(|| now + wait);
            }
            None => {}
        }
        known.turn.notify_waiters();
        if known.forgettable(now) {
            attempts.remove(key);
        }
    }
}

/// The door's closing after the `failures`th failed check in a row: none for the free
/// ones, then one second, doubling up to [`LONGEST_WAIT`].
fn wait_after(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(beyond) => Duration::from_secs(1u64 << beyond.min(6)).min(LONGEST_WAIT),
    }
}

/// Makes room for one more key: drops what need not be remembered, and if that frees less
/// than an eighth of the table (many networks or user ids at once), about half of the rest:
/// those whose doors open first, with no check running. Unless nearly every key is being
/// checked at this moment, each full pass frees at least an eighth, so the passes stay rare.
fn forget_stale(attempts: &mut HashMap<Key, Attempts>, now: Instant) {
    attempts.retain(|_, a| !a.forgettable(now));
    if attempts.len() > MOST_TRACKED - MOST_TRACKED / 8 {
        // A door that never closed counts as opening at its last attempt: older ones go first.
        let opens = |a: &Attempts| a.closed_until.unwrap_or(a.last);
        let mut opening: Vec<Instant> = attempts.values().map(opens).collect();
        let middle = opening.len() / 2;
        let (_, median, _) = opening.select_nth_unstable(middle);
        let median = *median;
        attempts.retain(|_, a| a.checking > 0 || opens(a) > median);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn key(user: &str, address: IpAddr) -> Key {
        (user.to_owned(), network(address))
    }

    /// Takes a turn that must be a check, and ends it as failed at `now`.
    fn fail(throttle: &LoginThrottle, key: &Key, now: Instant) {
        assert!(matches!(throttle.take_turn(key, now), Turn::Check));
        throttle.settle(key, Some(false), now);
    }

    fn refused(throttle: &LoginThrottle, key: &Key, now: Instant) -> Option<Duration> {
        match throttle.take_turn(key, now) {
            Turn::Refused(WaitFor(wait)) => Some(wait),
            Turn::Check => {
                throttle.settle(key, None, now);
                None
            }
            Turn::Wait(_) => panic!("nothing is being checked"),
        }
    }

    #[test]
    fn free_failures_then_doubling_waits_up_to_a_minute() {
        let throttle = LoginThrottle::default();
        let anna = key("anna", HERE);
        let mut now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            fail(&throttle, &anna, now);
            assert_eq!(refused(&throttle, &anna, now), None);
        }
        let mut waits = Vec::new();
        for _ in 0..10 {
            fail(&throttle, &anna, now);
            let wait = refused(&throttle, &anna, now).expect("the door closed");
            // Still closed a moment before the end, open at the end.
            let almost = now + wait - Duration::from_millis(1);
            assert!(refused(&throttle, &anna, almost).is_some());
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    }

    #[test]
    fn failures_are_per_user_and_network_and_end_with_a_login_or_time() {
        let throttle = LoginThrottle::default();
        let anna = key("anna", HERE);
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            fail(&throttle, &anna, now);
        }
        assert!(refused(&throttle, &anna, now).is_some());
        assert_eq!(refused(&throttle, &key("anna", THERE), now), None);
        assert_eq!(refused(&throttle, &key("bert", HERE), now), None);
        // After a quiet quarter of an hour, the failures are forgotten.
        let later = now + FORGET_AFTER;
        for _ in 0..FREE_FAILURES - 1 {
            fail(&throttle, &anna, later);
        }
        // A login forgets them at once.
        assert!(matches!(throttle.take_turn(&anna, later), Turn::Check));
        throttle.settle(&anna, Some(true), later);
        assert!(throttle.attempts.lock().unwrap().is_empty());
        for _ in 0..FREE_FAILURES {
            fail(&throttle, &anna, later);
        }
        assert!(refused(&throttle, &anna, later).is_some());
    }

    #[test]
    fn simultaneous_attempts_take_turns_within_the_free_failures() {
        let throttle = LoginThrottle::default();
        let anna = key("anna", HERE);
        let now = Instant::now();
        fail(&throttle, &anna, now);
        fail(&throttle, &anna, now);
        // Three failures left: three checks at once, the fourth attempt waits.
        for _ in 0..3 {
            assert!(matches!(throttle.take_turn(&anna, now), Turn::Check));
        }
        let Turn::Wait(mut waiting) = throttle.take_turn(&anna, now) else {
            panic!("a fourth check at once");
        };
        // The end of a check wakes it (it listened before the end came).
        throttle.settle(&anna, Some(true), now);
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        assert!(waiting.as_mut().poll(&mut context).is_ready());
        // After the success, the failures are forgotten: turns for all.
        assert!(matches!(throttle.take_turn(&anna, now), Turn::Check));
        // Checks that were not made (clients gone) count as nothing.
        for _ in 0..3 {
            throttle.settle(&anna, None, now);
        }
        assert!(throttle.attempts.lock().unwrap().is_empty());
    }

    /// Attempts read the clock before they take the lock, so one may come with an earlier
    /// time than the attempt that created or settled the entry: it is not refused.
    #[test]
    fn an_attempt_that_read_the_clock_first_is_not_refused() {
        let throttle = LoginThrottle::default();
        let anna = key("anna", HERE);
        let early = Instant::now();
        let late = early + Duration::from_millis(3);
        let Turn::Check = throttle.take_turn(&anna, late) else {
            panic!("refused")
        };
        let Turn::Check = throttle.take_turn(&anna, early) else {
            panic!("refused although the door never closed")
        };
        throttle.settle(&anna, Some(true), late);
        throttle.settle(&anna, Some(false), late);
        let Turn::Check = throttle.take_turn(&anna, early) else {
            panic!("refused after a free failure")
        };
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_network() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            fail(&throttle, &key("anna", a), now);
        }
        assert!(refused(&throttle, &key("anna", b), now).is_some());
        assert_eq!(refused(&throttle, &key("anna", other), now), None);
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_closed_doors() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        let target = key("target", HERE);
        for _ in 0..FREE_FAILURES {
            fail(&throttle, &target, start);
        }
        for i in 0..MOST_TRACKED as u32 + 10 {
            let now = start + Duration::from_millis(u64::from(i) / 100);
            let stranger = key(&format!("user{i}"), HERE);
            fail(&throttle, &stranger, now);
        }
        let tracked = throttle.attempts.lock().unwrap().len();
        assert!(tracked <= MOST_TRACKED, "{tracked}");
        // The closed door of an account under attack is kept over fresh strangers.
        assert!(refused(&throttle, &target, start).is_some());
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(WaitFor(Duration::from_millis(1)).seconds(), 1);
        assert_eq!(WaitFor(Duration::from_secs(2)).seconds(), 2);
        assert_eq!(WaitFor(Duration::from_millis(2001)).seconds(), 3);
    }
}
