//! Named points at which tests crash or hold up the server on purpose. With
//! `HANAMI_CRASH_AT=<point>` in its environment, a debug build aborts (as a power cut or
//! `kill -9` would stop it, without unwinding or cleaning up) when it first reaches that
//! point, to prove that a crash there loses nothing. With `HANAMI_PAUSE_AT=<point>=<ms>`,
//! the thread that reaches the point sleeps that many milliseconds there, every time, so
//! that a test can act in a moment that is otherwise too short to hit. Release builds have
//! no such points and ignore both variables.

/// The variable that names the point to crash at.
#[cfg(debug_assertions)]
const CRASH_VARIABLE: &str = "HANAMI_CRASH_AT";

/// The variable that names the point to pause at, and for how long.
#[cfg(debug_assertions)]
const PAUSE_VARIABLE: &str = "HANAMI_PAUSE_AT";

/// Aborts the process here if `HANAMI_CRASH_AT` names `point`, or sleeps if
/// `HANAMI_PAUSE_AT` does (debug builds only).
#[cfg(debug_assertions)]
pub fn reached(point: &str) {
    use std::sync::OnceLock;
    use std::time::Duration;
    static CRASH: OnceLock<Option<String>> = OnceLock::new();
    static PAUSE: OnceLock<Option<(String, Duration)>> = OnceLock::new();
    if CRASH
        .get_or_init(|| std::env::var(CRASH_VARIABLE).ok())
        .as_deref()
        == Some(point)
    {
        eprintln!("crashing at {point} ({CRASH_VARIABLE})");
        std::process::abort();
    }
    let pause = PAUSE.get_or_init(|| {
        let value = std::env::var(PAUSE_VARIABLE).ok()?;
        let (at, ms) = value.rsplit_once('=')?;
        Some((at.to_owned(), Duration::from_millis(ms.parse().ok()?)))
    });
    if let Some((at, duration)) = pause
        && at == point
    {
        eprintln!("pausing at {point} ({PAUSE_VARIABLE})");
        std::thread::sleep(*duration);
    }
}

/// Does nothing: release builds have no crash or pause points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn reached(_point: &str) {}
