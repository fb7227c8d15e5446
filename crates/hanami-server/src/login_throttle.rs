//! Failed logins slow down further guesses.
//!
//! Attempts are counted per user id and client address, so guesses from one address cannot
//! lock a user out of another. The first [`FREE_ATTEMPTS`] attempts in a row are answered at
//! once; from then on each attempt closes the door for a while, twice as long each time, up to
//! [`LONGEST_WAIT`]; an attempt while the door is closed is refused without a password check
//! (so the refusal tells nothing about the password). A successful login forgets the count;
//! [`FORGET_AFTER`] without an attempt forgets it too.
//!
//! An attempt is counted when it starts, not when its check fails: a burst of simultaneous
//! guesses gets no more checks than guesses one after another would.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts in a row that are never delayed.
pub const FREE_ATTEMPTS: u32 = 5;
/// The longest a closed door stays closed.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// How long an account and address without attempts keep their count.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most accounts and addresses tracked at once; beyond it the stalest are forgotten.
const MOST_TRACKED: usize = 65_536;

/// One user id tried from one address.
type Key = (String, IpAddr);

/// The attempts of one [`Key`] since its last successful login.
struct Attempts {
    count: u32,
    last: Instant,
    /// No attempt is checked before this.
    closed_until: Instant,
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

impl LoginThrottle {
    /// Counts an attempt of `user` from `address` at `now`; refused while the door is
    /// closed (the refused attempt is not counted).
    pub fn attempt(&self, user: &str, address: IpAddr, now: Instant) -> Result<(), WaitFor> {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let key = (user.to_owned(), address);
        if let Some(known) = attempts.get_mut(&key) {
            if now < known.closed_until {
                return Err(WaitFor(known.closed_until - now));
            }
            if now.duration_since(known.last) < FORGET_AFTER {
                known.count += 1;
                known.last = now;
                known.closed_until = now + wait_after(known.count);
                return Ok(());
            }
        } else if attempts.len() >= MOST_TRACKED {
            forget_stale(&mut attempts, now);
        }
        attempts.insert(
            key,
            Attempts {
                count: 1,
                last: now,
                closed_until: now + wait_after(1),
            },
        );
        Ok(())
    }

    /// Forgets the attempts of `user` from `address`: it logged in.
    pub fn succeeded(&self, user: &str, address: IpAddr) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        attempts.remove(&(user.to_owned(), address));
    }
}

/// The door's closing after the `count`th attempt in a row: none for the free attempts,
/// then one second, doubling up to [`LONGEST_WAIT`].
fn wait_after(count: u32) -> Duration {
    match count.checked_sub(FREE_ATTEMPTS) {
        None => Duration::ZERO,
        Some(beyond) => Duration::from_secs(1u64 << beyond.min(6)).min(LONGEST_WAIT),
    }
}

/// Makes room for one more key: drops what is stale, and if everything is fresh (many
/// addresses or user ids at once), the half whose doors open first (the least recently
/// tried among the open ones).
fn forget_stale(attempts: &mut HashMap<Key, Attempts>, now: Instant) {
    attempts.retain(|_, a| now < a.closed_until || now.duration_since(a.last) < FORGET_AFTER);
    if attempts.len() >= MOST_TRACKED {
        let mut opening: Vec<Instant> = attempts.values().map(|a| a.closed_until).collect();
        let (_, median, _) = opening.select_nth_unstable(MOST_TRACKED / 2);
        let median = *median;
        attempts.retain(|_, a| a.closed_until > median);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn free_attempts_then_doubling_waits_up_to_a_minute() {
        let throttle = LoginThrottle::default();
        let mut now = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            assert_eq!(throttle.attempt("anna", HERE, now), Ok(()));
        }
        let mut waits = Vec::new();
        for _ in 0..10 {
            assert_eq!(throttle.attempt("anna", HERE, now), Ok(()));
            let WaitFor(wait) = throttle.attempt("anna", HERE, now).unwrap_err();
            // Still closed a moment before the end, open at the end.
            let almost = now + wait - Duration::from_millis(1);
            assert!(throttle.attempt("anna", HERE, almost).is_err());
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    }

    #[test]
    fn counts_are_per_user_and_address_and_end_with_a_login_or_time() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_ATTEMPTS {
            throttle.attempt("anna", HERE, now).unwrap();
        }
        assert!(throttle.attempt("anna", HERE, now).is_err());
        assert_eq!(throttle.attempt("anna", THERE, now), Ok(()));
        assert_eq!(throttle.attempt("bert", HERE, now), Ok(()));
        // After a quiet quarter of an hour, the count starts again.
        let later = now + FORGET_AFTER;
        for _ in 0..FREE_ATTEMPTS - 1 {
            throttle.attempt("anna", HERE, later).unwrap();
        }
        // A login forgets the count at once.
        throttle.succeeded("anna", HERE);
        for _ in 0..FREE_ATTEMPTS - 1 {
            throttle.attempt("anna", HERE, later).unwrap();
        }
        assert_eq!(throttle.attempt("anna", HERE, later), Ok(()));
        assert!(throttle.attempt("anna", HERE, later).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_recently_tried() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_ATTEMPTS {
            throttle.attempt("target", HERE, start).unwrap();
        }
        for i in 0..MOST_TRACKED as u32 + 10 {
            let now = start + Duration::from_millis(u64::from(i) / 100);
            throttle.attempt(&format!("user{i}"), HERE, now).unwrap();
        }
        let tracked = throttle.attempts.lock().unwrap().len();
        assert!(tracked <= MOST_TRACKED, "{tracked}");
        // The closed door of an account under attack is kept over fresh strangers.
        assert!(throttle.attempt("target", HERE, start).is_err());
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(WaitFor(Duration::from_millis(1)).seconds(), 1);
        assert_eq!(WaitFor(Duration::from_secs(2)).seconds(), 2);
        assert_eq!(WaitFor(Duration::from_millis(2001)).seconds(), 3);
    }
}
