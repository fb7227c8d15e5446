//! The hidden password prompt of `user create` without `-p`.
//!
//! The prompt logic ([`ask_new_password`]) works on any [`HiddenInput`], so it is tested
//! with scripted answers; [`Terminal`] is the real one: it reads from standard input with
//! the terminal's echo switched off and writes the prompts to standard error, so standard
//! output stays clean for `-j`.

use std::io;

/// Where hidden answers come from.
pub trait HiddenInput {
    /// Shows `prompt` and reads one line without echo, without its line ending and the
    /// whitespace around it.
    fn read_hidden(&mut self, prompt: &str) -> io::Result<String>;
}

/// The message when the two entries differ (the original's wording).
pub const MISMATCH: &str = "Mismatch between the two entered passwords";

/// Asks for a new password twice; the two entries must be equal and not empty.
pub fn ask_new_password(input: &mut dyn HiddenInput) -> Result<String, String> {
    let read = |input: &mut dyn HiddenInput, prompt: &str| {
        input
            .read_hidden(prompt)
            .map_err(|e| format!("cannot read the password: {e}"))
    };
    let first = read(input, "Enter Password: ")?;
    let second = read(input, "Enter Password again: ")?;
    if first != second {
        return Err(MISMATCH.to_owned());
    }
    if first.is_empty() {
        return Err("the password must not be empty".to_owned());
    }
    Ok(first)
}

/// The entry of a prompt line: without the line ending and the whitespace around it, as the
/// original CLI reads it.
fn entry(line: &str) -> String {
    line.trim().to_owned()
}

/// The terminal on standard input.
pub struct Terminal;

impl HiddenInput for Terminal {
    fn read_hidden(&mut self, prompt: &str) -> io::Result<String> {
        use std::io::{BufRead as _, IsTerminal as _, Write as _};
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Err(io::Error::other(
                "standard input is not a terminal; pass the password with -p/--password",
            ));
        }
        let line = {
            // Echo goes off before the prompt appears, so nothing typed after the prompt
            // is ever shown.
            let _echo = EchoOff::new()?;
            let mut stderr = io::stderr();
            stderr.write_all(prompt.as_bytes())?;
            stderr.flush()?;
            let mut line = String::new();
            let read = stdin.lock().read_line(&mut line);
            let _ = stderr.write_all(b"\n");
            if read? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "no password entered",
                ));
            }
            line
        };
        Ok(entry(&line))
    }
}

/// Switches the echo of the terminal on standard input off until dropped. A signal that
/// ends the process meanwhile (Ctrl-C at the prompt) switches it on again first: the shell
/// would otherwise be left without echo.
struct EchoOff {
    original: libc::termios,
    /// The actions of [`ENDING_SIGNALS`] before ours.
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

/// Signals whose default action ends the process and that a terminal user sends.
const ENDING_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The terminal settings that [`restore_and_end`] puts back: set while the echo is off.
static SAVED: std::sync::atomic::AtomicPtr<libc::termios> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Signal handler: puts the saved terminal settings back, ends the prompt's line, and lets
/// the signal take its default action (the process ends as it would have).
extern "C" fn restore_and_end(signal: libc::c_int) {
    let saved = SAVED.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: only async-signal-safe calls; `saved` is null or points to the settings that
    // `EchoOff` leaked for exactly this use and never frees.
    unsafe {
        if !saved.is_null() {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
        }
        libc::write(libc::STDERR_FILENO, b"\n".as_ptr().cast(), 1);
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

impl EchoOff {
    fn new() -> io::Result<Self> {
        let mut term = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: fd 0 is a valid descriptor number and `term` is writable memory of the
        // right type; on success tcgetattr has initialised it.
        let original = unsafe {
            if libc::tcgetattr(libc::STDIN_FILENO, term.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            term.assume_init()
        };
        // The handler may run at any moment from here on, so the settings it restores
        // live at a fixed address (a few dozen bytes, leaked once per prompt).
        SAVED.store(
            Box::into_raw(Box::new(original)),
            std::sync::atomic::Ordering::SeqCst,
        );
        let previous = ENDING_SIGNALS
            .into_iter()
            .filter_map(|signal| {
                // SAFETY: zeroed sigactions are valid values to fill; the handler only makes
                // async-signal-safe calls. A signal the caller ignores (`trap '' INT`) stays
                // ignored.
                unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                        || old.sa_sigaction == libc::SIG_IGN
                    {
                        return None;
                    }
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = restore_and_end as extern "C" fn(libc::c_int) as usize;
                    libc::sigemptyset(&mut action.sa_mask);
                    (libc::sigaction(signal, &action, std::ptr::null_mut()) == 0)
                        .then_some((signal, old))
                }
            })
            .collect();
        let echo_off = Self { original, previous };
        let mut hidden = original;
        hidden.c_lflag &= !libc::ECHO;
        // SAFETY: `hidden` is a fully initialised termios obtained from tcgetattr.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &hidden) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(echo_off)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new` on the same descriptor, then the
        // signal actions that were in place before.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.original);
            for (signal, old) in &self.previous {
                libc::sigaction(*signal, old, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripted answers; records the prompts.
    struct Script {
        answers: Vec<io::Result<String>>,
        prompts: Vec<String>,
    }

    impl Script {
        fn new(answers: Vec<io::Result<String>>) -> Self {
            Self {
                answers,
                prompts: Vec::new(),
            }
        }
    }

    impl HiddenInput for Script {
        fn read_hidden(&mut self, prompt: &str) -> io::Result<String> {
            self.prompts.push(prompt.to_owned());
            self.answers.remove(0)
        }
    }

    #[test]
    fn two_equal_entries_give_the_password() {
        let mut script = Script::new(vec![Ok("secret pw".into()), Ok("secret pw".into())]);
        assert_eq!(ask_new_password(&mut script).unwrap(), "secret pw");
        assert_eq!(
            script.prompts,
            ["Enter Password: ", "Enter Password again: "]
        );
    }

    #[test]
    fn a_mismatch_is_refused() {
        let mut script = Script::new(vec![Ok("secret pw".into()), Ok("secret pq".into())]);
        assert_eq!(ask_new_password(&mut script).unwrap_err(), MISMATCH);
    }

    #[test]
    fn empty_entries_and_read_errors_are_refused() {
        let mut script = Script::new(vec![Ok(String::new()), Ok(String::new())]);
        assert!(ask_new_password(&mut script).unwrap_err().contains("empty"));
        let mut script = Script::new(vec![Err(io::Error::other("no terminal"))]);
        let err = ask_new_password(&mut script).unwrap_err();
        assert!(err.contains("no terminal"), "{err}");
        assert_eq!(script.prompts.len(), 1);
    }

    #[test]
    fn the_line_ending_and_surrounding_whitespace_are_stripped() {
        assert_eq!(entry("  secret pw \t\r\n"), "secret pw");
        assert_eq!(entry("pw\n"), "pw");
        assert_eq!(entry("pw"), "pw");
        assert_eq!(entry("   \n"), "");
    }
}
