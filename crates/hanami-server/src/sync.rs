//! Locks as the server takes them.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, also after a thread panicked while holding it: every critical section of
/// the server leaves its data consistent, so a poisoned lock is still usable (and one
/// panic does not take every later request with it).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
