//! A one-line progress display on standard error, for uploads and `--wait`.
//!
//! It is only drawn when standard error is a terminal and `-j` is off, so standard output
//! stays clean for scripts and nothing is written into logs of piped runs.

use std::io::Write as _;

/// A progress line that redraws itself with `\r`.
pub struct Progress {
    label: String,
    enabled: bool,
    drawn: bool,
    last: String,
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
            remark: None,
        }
    }

    /// Upload progress: `sent` of `total` bytes.
    pub fn update(&mut self, sent: u64, total: u64) {
        if self.enabled {
            let line = upload_line(&self.label, sent, total);
            self.draw(line);
        }
    }

    /// Task progress: state and cycles.
    pub fn cycles(&mut self, state: &str, current: u64, total: u64) {
        if self.enabled {
            let line = format!("{}: {state}, cycle {current} of {total}", self.label);
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

/// `uploading NAME:  42.0 % (1.2 MiB of 2.9 MiB)`.
pub fn upload_line(label: &str, sent: u64, total: u64) -> String {
    let percent = if total == 0 {
        100.0
    } else {
        sent as f64 * 100.0 / total as f64
    };
    format!(
        "uploading {label}: {percent:5.1} % ({} of {})",
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
            "uploading empty: 100.0 % (0 B of 0 B)"
        );
    }
}
