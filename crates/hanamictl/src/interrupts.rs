//! Ctrl-C and SIGTERM during a dataset upload: the first one withdraws the upload from the
//! server before the command ends, any later one ends it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

/// Signal handling for one upload.
pub struct UploadInterrupts {
    shared: Arc<Shared>,
}

struct Shared {
    /// Notified by the first signal while the upload may still be withdrawn.
    cancel: Notify,
    /// Whether the upload may still be withdrawn (before its finalisation).
    cancellable: AtomicBool,
}

impl UploadInterrupts {
    /// Installs the handlers; call it before the upload starts. While the upload may still
    /// be withdrawn, the first signal cancels it; any other signal ends the process at once
    /// with status 130, as it would end without handlers. `None` where the handlers cannot
    /// be installed (the signals then keep their default action).
    pub fn install() -> Option<Self> {
        let mut interrupt = signal(SignalKind::interrupt()).ok()?;
        let mut terminate = signal(SignalKind::terminate()).ok()?;
        let shared = Arc::new(Shared {
            cancel: Notify::new(),
            cancellable: AtomicBool::new(true),
        });
        let listener = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                if listener.cancellable.swap(false, Ordering::SeqCst) {
                    listener.cancel.notify_one();
                } else {
                    std::process::exit(130);
                }
            }
        });
        Some(UploadInterrupts { shared })
    }

    /// Completes on the first signal while the upload may be withdrawn. Dropping this
    /// future ends that phase (the SDK drops it when the upload reaches its finalisation):
    /// signals end the process from then on.
    pub async fn cancelled(&self) {
        struct EndOfPhase<'a>(&'a AtomicBool);
        impl Drop for EndOfPhase<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _end = EndOfPhase(&self.shared.cancellable);
        self.shared.cancel.notified().await;
    }
}

impl Drop for UploadInterrupts {
    fn drop(&mut self) {
        self.shared.cancellable.store(false, Ordering::SeqCst);
    }
}
