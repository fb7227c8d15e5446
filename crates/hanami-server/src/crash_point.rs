//! Named points at which tests crash or hold up the server on purpose. With
//! `HANAMI_CRASH_AT=<point>` in its environment, a debug build aborts (as a power cut or
//! `kill -9` would stop it, without unwinding or cleaning up) when it first reaches that
//! point, to prove that a crash there loses nothing. With `HANAMI_PAUSE_AT=<point>=<ms>`,
//! the thread that reaches the point sleeps that many milliseconds there, every time, so
//! that a test can act in a moment that is otherwise too short to hit. With
//! `HANAMI_FAIL_AT=<point>[,<point>…]`, the operations at those points fail (see [`fails`]),
//! or, at some, only the first few times (see [`fails_first`]).
//! Release builds have no such points and ignore these variables.

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
    if let Some(duration) = crash_or_pause(point) {
        std::thread::sleep(duration);
    }
}

/// [`reached`] for async code: the pause lets other tasks run, and the caller's future may
/// be dropped during it, as at any other await (debug builds only).
#[cfg(debug_assertions)]
pub async fn reached_async(point: &str) {
    if let Some(duration) = crash_or_pause(point) {
        tokio::time::sleep(duration).await;
    }
}

/// Aborts the process if `HANAMI_CRASH_AT` names `point`; how long to pause if
/// `HANAMI_PAUSE_AT` does.
#[cfg(debug_assertions)]
fn crash_or_pause(point: &str) -> Option<std::time::Duration> {
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
    let (at, duration) = pause.as_ref()?;
    (at == point).then(|| {
        eprintln!("pausing at {point} ({PAUSE_VARIABLE})");
        *duration
    })
}

/// The variable that names the points (separated by commas) at which operations are to fail.
#[cfg(debug_assertions)]
const FAIL_VARIABLE: &str = "HANAMI_FAIL_AT";

/// Whether `HANAMI_FAIL_AT` names `point` (debug builds only): the caller then acts as if
/// the operation there had failed, so that a test can see what a rare I/O failure does.
#[cfg(debug_assertions)]
pub fn fails(point: &str) -> bool {
    use std::sync::OnceLock;
    static FAIL: OnceLock<Option<String>> = OnceLock::new();
    FAIL.get_or_init(|| std::env::var(FAIL_VARIABLE).ok())
        .as_deref()
        .is_some_and(|points| points.split(',').any(|named| named == point))
}

/// Whether `HANAMI_FAIL_AT` names `point` and this is one of the first `times` times that
/// the process reaches it (debug builds only): a failure that goes away by itself.
#[cfg(debug_assertions)]
pub fn fails_first(point: &str, times: u32) -> bool {
    use std::sync::Mutex;
    static REACHED: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
    if !fails(point) {
        return false;
    }
    let mut reached = crate::sync::lock(&REACHED);
    let count = match reached.iter_mut().find(|(named, _)| named == point) {
        Some((_, count)) => count,
        None => {
            reached.push((point.to_owned(), 0));
            &mut reached.last_mut().expect("just pushed").1
        }
    };
    *count = count.saturating_add(1);
    *count <= times
}

/// Never: release builds have no failure points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn fails_first(_point: &str, _times: u32) -> bool {
    false
}

/// Never: release builds have no failure points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn fails(_point: &str) -> bool {
    false
}

/// Does nothing: release builds have no crash or pause points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn reached(_point: &str) {}

/// Does nothing: release builds have no crash or pause points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub async fn reached_async(_point: &str) {}
