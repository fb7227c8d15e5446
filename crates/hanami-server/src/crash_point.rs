//! Named points at which tests crash the server on purpose, to prove that a crash there
//! loses nothing: with `HANAMI_CRASH_AT=<point>` in its environment, a debug build aborts
//! (as a power cut or `kill -9` would stop it, without unwinding or cleaning up) when it
//! first reaches that point. Release builds have no such points and ignore the variable.

/// The variable that names the point to crash at.
#[cfg(debug_assertions)]
const VARIABLE: &str = "HANAMI_CRASH_AT";

/// Aborts the process here if `HANAMI_CRASH_AT` names `point` (debug builds only).
#[cfg(debug_assertions)]
pub fn reached(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var(VARIABLE).ok()).as_deref() == Some(point) {
        eprintln!("crashing at {point} ({VARIABLE})");
        std::process::abort();
    }
}

/// Does nothing: release builds have no crash points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn reached(_point: &str) {}
