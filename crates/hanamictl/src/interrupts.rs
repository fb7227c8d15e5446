//! Ctrl-C and SIGTERM. During a dataset upload the first one withdraws the upload from the
//! server before the command ends, any later one ends it at once, saying what becomes of the
//! upload; while a command waits for a task, one stops the waiting (see [`StopSignal`]).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;

/// Ctrl-C and SIGTERM caught from its installation on, for commands that wait and end with
/// a word on what goes on without them. A signal that the caller ignores (`trap '' INT`, a
/// shell's background job) stays ignored, as at the password prompt.
pub struct StopSignal {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl StopSignal {
    /// Catches the signals from now on (a signal before the first [`StopSignal::received`]
    /// is not lost); `None` where the handlers cannot be installed (the signals then keep
    /// their default action).
    pub fn install() -> Option<Self> {
        let catch = |kind: SignalKind| -> Option<Option<Signal>> {
            if ignored(kind.as_raw_value()) {
                Some(None)
            } else {
                signal(kind).ok().map(Some)
            }
        };
        Some(StopSignal {
            interrupt: catch(SignalKind::interrupt())?,
            terminate: catch(SignalKind::terminate())?,
        })
    }

    /// Completes once a signal has come (never where both are ignored).
    pub async fn received(&mut self) {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => {}
            () = next(&mut self.terminate) => {}
        }
    }
}

/// Whether `signal` is ignored (as the process inherited it: the handlers of this module
/// are installed only where it is not).
fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: a zeroed sigaction is a valid value for `sigaction` to fill; nothing is
    // changed.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// Where an upload is, as far as a signal is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Files are being sent: a signal withdraws the upload.
    Sending,
    /// A signal came while sending, and the upload is being withdrawn.
    Withdrawing,
    /// Every byte arrived: the server makes the dataset whatever the client does.
    Finishing,
    /// The upload is over (made, withdrawn or failed).
    Over,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        [Phase::Sending, Phase::Withdrawing, Phase::Finishing]
            .into_iter()
            .find(|p| *p as u8 == value)
            .unwrap_or(Phase::Over)
    }

    /// What a signal that ends the command in this phase tells the user about the upload of
    /// the dataset `name`.
    fn farewell(self, name: &str) -> Option<String> {
        match self {
            Phase::Sending | Phase::Over => None,
            Phase::Withdrawing => Some(format!(
                "interrupted again: the upload of '{name}' may not have been withdrawn; \
                 `hanamictl dataset list` shows it until the server removes it after its \
                 upload_timeout, and `hanamictl dataset delete` cancels it at once"
            )),
            Phase::Finishing => Some(format!(
                "interrupted after every byte of '{name}' had arrived: the server makes the \
                 dataset anyway, and `hanamictl dataset list` shows it shortly (the newest \
                 dataset of that name)"
            )),
        }
    }
}

/// Signal handling for one upload.
pub struct UploadInterrupts {
    shared: Arc<Shared>,
}

struct Shared {
    /// Notified by the first signal while the upload may still be withdrawn.
    cancel: Notify,
    /// The [`Phase`].
    phase: AtomicU8,
}

impl Shared {
    /// Moves from `from` to `to`; false if the upload was in another phase.
    fn advance(&self, from: Phase, to: Phase) -> bool {
        self.phase
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

impl UploadInterrupts {
    /// Installs the handlers for the upload of the dataset `name`; call it before the
    /// upload starts. While the upload may still be withdrawn, the first signal cancels it;
    /// any other signal ends the process at once with status 130, as it would end without
    /// handlers, after a line on standard error about what becomes of the upload. `None`
    /// where the handlers cannot be installed (the signals then keep their default action).
    pub fn install(name: &str) -> Option<Self> {
        let mut signals = StopSignal::install()?;
        let shared = Arc::new(Shared {
            cancel: Notify::new(),
            phase: AtomicU8::new(Phase::Sending as u8),
        });
        let listener = shared.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            loop {
                signals.received().await;
                if listener.advance(Phase::Sending, Phase::Withdrawing) {
                    listener.cancel.notify_one();
                } else {
                    let phase = Phase::from_u8(listener.phase.load(Ordering::SeqCst));
                    if let Some(farewell) = phase.farewell(&name) {
                        // On a terminal, the progress line or the `^C` ends first.
                        let fresh_line = if std::io::stderr().is_terminal() {
                            "\n"
                        } else {
                            ""
                        };
                        crate::error::report(format_args!("{fresh_line}error: {farewell}"));
                    }
                    std::process::exit(130);
                }
            }
        });
        Some(UploadInterrupts { shared })
    }

    /// Completes on the first signal while the upload may be withdrawn. Dropping this
    /// future ends that phase (the SDK drops it when the upload reaches its finalisation,
    /// or after withdrawing a failed one, or when the registration failed, when the command
    /// ends at once): signals end the process from then on.
    pub async fn cancelled(&self) {
        struct EndOfPhase<'a>(&'a Shared);
        impl Drop for EndOfPhase<'_> {
            fn drop(&mut self) {
                self.0.advance(Phase::Sending, Phase::Finishing);
            }
        }
        let _end = EndOfPhase(&self.shared);
        self.shared.cancel.notified().await;
    }
}

impl Drop for UploadInterrupts {
    fn drop(&mut self) {
        self.shared.phase.store(Phase::Over as u8, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_signal_says_what_becomes_of_the_upload() {
        for phase in [
            Phase::Sending,
            Phase::Withdrawing,
            Phase::Finishing,
            Phase::Over,
        ] {
            assert_eq!(Phase::from_u8(phase as u8), phase);
        }
        assert!(Phase::Over.farewell("d").is_none());
        let finishing = Phase::Finishing.farewell("train").unwrap();
        assert!(finishing.contains("'train'") && finishing.contains("dataset list"));
        let withdrawing = Phase::Withdrawing.farewell("train").unwrap();
        assert!(withdrawing.contains("may not have been withdrawn"));
    }

    #[test]
    fn the_phases_only_move_forward_from_where_they_are() {
        let shared = Shared {
            cancel: Notify::new(),
            phase: AtomicU8::new(Phase::Sending as u8),
        };
        assert!(shared.advance(Phase::Sending, Phase::Withdrawing));
        // The end of the sending phase does not hide a withdrawal under way.
        assert!(!shared.advance(Phase::Sending, Phase::Finishing));
        assert_eq!(
            Phase::from_u8(shared.phase.load(Ordering::SeqCst)),
            Phase::Withdrawing
        );
    }
}
