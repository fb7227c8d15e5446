//! Stopping the server on a signal: gracefully on the first, at once on a second.

use std::time::Duration;

use crate::state::App;

/// The signals that stop the server gracefully: SIGINT, SIGTERM, and SIGHUP too (a closing
/// terminal or ssh session sends it, and it killed the server on the spot, losing the
/// running task's training), unless the server was started with SIGHUP ignored (`nohup`
/// says so: then a closing terminal leaves it running, as the Unix convention has it). A
/// second SIGINT or SIGTERM during the stop ends the process at once.
pub(crate) struct ShutdownSignals(Vec<ShutdownSignal>);

/// One signal that [`ShutdownSignals`] listens for.
struct ShutdownSignal {
    stream: tokio::signal::unix::Signal,
    name: &'static str,
    number: i32,
}

impl ShutdownSignals {
    /// Replaces the signals' default action (a signal that arrives from now on is kept
    /// for [`ShutdownSignals::received`]).
    pub(crate) fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            (libc::SIGINT, "SIGINT"),
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGHUP, "SIGHUP"),
        ];
        Self(
            kinds
                .into_iter()
                .filter(|&(number, name)| {
                    let ignored = number == libc::SIGHUP && ignored_at_start(number);
                    if ignored {
                        tracing::info!(
                            "{name} is ignored, as the server was started (by nohup, say): a \
                             closing terminal leaves it running"
                        );
                    }
                    !ignored
                })
                .filter_map(|(number, name)| {
                    signal(SignalKind::from_raw(number))
                        .inspect_err(|e| tracing::warn!("cannot listen for {name}: {e}"))
                        .ok()
                        .map(|stream| ShutdownSignal {
                            stream,
                            name,
                            number,
                        })
                })
                .collect(),
        )
    }

    /// Resolves with the next of the signals that arrives.
    async fn received(&mut self) -> &ShutdownSignal {
        let waits: Vec<_> = self
            .0
            .iter_mut()
            .enumerate()
            .map(|(index, signal)| {
                Box::pin(async move {
                    // `None`: no more signals of this kind can come.
                    if signal.stream.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                    index
                })
            })
            .collect();
        if waits.is_empty() {
            std::future::pending::<()>().await;
        }
        let (index, _, _) = futures_util::future::select_all(waits).await;
        &self.0[index]
    }
}

/// Whether signal `number` is ignored, as the process inherited it (a handler of its own is
/// installed only after this is asked).
fn ignored_at_start(number: i32) -> bool {
    // SAFETY: `sigaction` with no new action only writes the current one into `current`, a
    // zeroed `sigaction` that it may fill.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(number, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// How long a graceful stop waits for the requests under way.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// Stops the server gracefully on the first signal, and at once on a second SIGINT or
/// SIGTERM: for an operator who will not wait for the tasks' networks to be saved or the
/// uploads to be converted. What was not saved then counts as lost at the next start, as
/// after a crash. A SIGHUP during the stop (its terminal closing) changes nothing.
pub(crate) async fn on_signal(mut signals: ShutdownSignals, handle: axum_server::Handle, app: App) {
    let first = signals.received().await.name;
    tracing::info!("shutting down on {first} (a second SIGINT or SIGTERM stops at once)");
    app.stopping.send_replace(true);
    app.clusters.stop_tasks(&app.workers);
    handle.graceful_shutdown(Some(STOP_PATIENCE));
    // Idle connections close at once; those still open a second later hold the stop.
    let held = handle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let open = held.connection_count();
        if open > 0 {
            tracing::info!(
                "the stop waits up to {} s more for {open} connection(s) with requests under \
                 way",
                STOP_PATIENCE.as_secs() - 1
            );
        }
    });
    let second = loop {
        let signal = signals.received().await;
        if signal.number != libc::SIGHUP {
            break signal;
        }
        tracing::info!(
            "SIGHUP during the stop changes nothing (a second SIGINT or SIGTERM stops at once)"
        );
    };
    tracing::warn!(
        "stopping at once on a second {}: tasks still running are listed aborted at the next \
         start, and uploads not yet registered are lost",
        second.name
    );
    std::process::exit(128 + second.number);
}
