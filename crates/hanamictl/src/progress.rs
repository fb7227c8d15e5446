//! A one-line progress display on standard error, for uploads and `--wait`.
//!
//! It is only drawn when standard error is a terminal and `-j` is off, so standard output
//! stays clean for scripts and nothing is written into logs of piped runs.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Least time between two redraws of an upload's line (its chunks come much faster).
const UPLOAD_REDRAW: Duration = Duration::from_millis(100);

/// A progress line that redraws itself with `\r`.
pub struct Progress {
    label: String,
    enabled: bool,
    drawn: bool,
    last: String,
    /// When an upload's line was last drawn.
    drawn_at: Option<Instant>,
    remark: Option<String>,
}

impl Progress {
    /// A progress line for `label`; `enabled == false` makes every call a no-op.
    pub fn new(label: &str, enabled: bool) -> Self {
        Self {
            label: label.to_owned(),
            enabled,
            drawn: false,
            last: String::new(),
            drawn_at: None,
            remark: None,
        }
    }

    /// Upload progress: `sent` of `total` bytes (redrawn at most ten times a second, and
    /// at the end).
    pub fn update(&mut self, sent: u64, total: u64) {
        let now = Instant::now();
        if self.enabled && redraw_due(self.drawn_at, now, sent >= total) {
            self.drawn_at = Some(now);
            let line = fit(&self.label, terminal_columns(), |label| {
                upload_line(label, sent, total)
            });
            self.draw(line);
        }
    }

    /// Task progress: state and cycles.
    pub fn cycles(&mut self, state: &str, current: u64, total: u64) {
        if self.enabled {
            let line = fit(&self.label, terminal_columns(), |label| {
                format!("{label}: {state}, cycle {current} of {total}")
            });
            self.draw(line);
        }
    }

    /// A remark on its own line (above the progress line), shown once until it changes.
    pub fn remark(&mut self, text: Option<&str>) {
        if self.enabled && text != self.remark.as_deref() {
            if let Some(text) = text {
                self.finish();
                let _ = writeln!(std::io::stderr(), "note: {text}");
            }
            self.remark = text.map(str::to_owned);
        }
    }

    fn draw(&mut self, line: String) {
        if line == self.last {
            return;
        }
        let pad = self
            .last
            .chars()
            .count()
            .saturating_sub(line.chars().count());
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{line}{}", " ".repeat(pad));
        let _ = stderr.flush();
        self.drawn = true;
        self.last = line;
    }

    /// Ends the line (if anything was drawn).
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
            self.last.clear();
        }
    }
}

impl Drop for Progress {
    /// Whatever ends the progress (an error, an interruption), the next line starts fresh.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether an upload's line is drawn now: the first time, at the end, and otherwise once
/// [`UPLOAD_REDRAW`] has passed since it was last drawn.
fn redraw_due(drawn_at: Option<Instant>, now: Instant, done: bool) -> bool {
    done || drawn_at.is_none_or(|at| now.duration_since(at) >= UPLOAD_REDRAW)
}

/// The line that `line` makes of `label`, with the label shortened (ending in `…`) so that
/// the line stays narrower than a terminal of `columns`: a wider line would wrap, and each
/// redraw would leave a line behind.
fn fit(label: &str, columns: Option<usize>, line: impl Fn(&str) -> String) -> String {
    use unicode_width::UnicodeWidthStr as _;
    let full = line(label);
    let Some(columns) = columns.filter(|&c| full.width() >= c) else {
        return full;
    };
    // Room for the `…` and for the cursor after the line.
    let room = label.width().saturating_sub(full.width() + 2 - columns);
    let shortened = line(&format!("{}…", start_of(label, room)));
    if shortened.width() < columns {
        return shortened;
    }
    // Too narrow even for the numbers: the line's start.
    start_of(&shortened, columns - 1)
}

/// The longest start of `text` at most `room` columns wide.
fn start_of(text: &str, mut room: usize) -> String {
    use unicode_width::UnicodeWidthChar as _;
    text.chars()
        .take_while(|c| {
            let w = c.width().unwrap_or(0);
            let fits = w <= room;
            room = room.saturating_sub(w);
            fits
        })
        .collect()
}

/// The width of the terminal on standard error, if it is one.
fn terminal_columns() -> Option<usize> {
    // SAFETY: TIOCGWINSZ only fills the `winsize` it is given.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// `uploading NAME:  42.0 % (1.2 MiB of 2.9 MiB)`; once every byte is sent, the server makes
/// the dataset of them (which takes seconds for large files), and the line says so.
pub fn upload_line(label: &str, sent: u64, total: u64) -> String {
    // Rounded down, so that 100.0 % means every byte.
    let percent = if sent >= total {
        100.0
    } else {
        (sent as u128 * 1000 / total as u128) as f64 / 10.0
    };
    let sent_all = if sent >= total {
        "; the server makes the dataset…"
    } else {
        ""
    };
    format!(
        "uploading {label}: {percent:5.1} % ({} of {}){sent_all}",
        size(sent),
        size(total)
    )
}

/// A byte count for people: `512 B`, `1.5 KiB`, `27.4 MiB`, `1.2 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_lines_are_redrawn_ten_times_a_second_and_at_the_end() {
        let start = Instant::now();
        assert!(redraw_due(None, start, false));
        let soon = start + Duration::from_millis(30);
        assert!(!redraw_due(Some(start), soon, false));
        assert!(redraw_due(Some(start), soon, true));
        assert!(redraw_due(Some(start), start + UPLOAD_REDRAW, false));
    }

    #[test]
    fn lines_fit_the_terminal() {
        let line = |label: &str| upload_line(label, 512, 1024);
        let label = "a_very_long_dataset_name_for_a_narrow_terminal";
        assert_eq!(fit(label, None, line), line(label));
        assert_eq!(fit(label, Some(200), line), line(label));
        let fitted = fit(label, Some(60), line);
        assert_eq!(
            fitted,
            "uploading a_very_long_dataset_…:  50.0 % (512 B of 1.0 KiB)"
        );
        assert_eq!(fitted.chars().count(), 59);
        // Too narrow for the numbers: the line is cut.
        assert_eq!(fit(label, Some(20), line), "uploading …:  50.0 ");
        // Wide characters count twice.
        let fitted = fit("日本語のデータセット", Some(42), line);
        assert_eq!(fitted, "uploading 日…:  50.0 % (512 B of 1.0 KiB)");
    }

    #[test]
    fn sizes_and_lines_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(47_040_016), "44.9 MiB");
        assert_eq!(
            upload_line("train", 1024 * 1024, 4 * 1024 * 1024),
            "uploading train:  25.0 % (1.0 MiB of 4.0 MiB)"
        );
        assert_eq!(
            upload_line("empty", 0, 0),
            "uploading empty: 100.0 % (0 B of 0 B); the server makes the dataset…"
        );
        // Not 100.0 % before the last byte.
        assert_eq!(
            upload_line("big", 9_999, 10_000),
            "uploading big:  99.9 % (9.8 KiB of 9.8 KiB)"
        );
    }
}
