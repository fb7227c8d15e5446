//! The state shared by all request handlers.

use std::sync::Arc;

use hanami_auth::{Policy, TokenKey};
use hanami_store::Store;

use crate::api::Routes;
use crate::clusters::{Clusters, WorkerContext};
use crate::config::Config;
use crate::paths::DataDir;
use crate::uploads::Uploads;

/// Shared application state; cheap to clone.
pub type App = Arc<AppState>;

/// Everything a handler may need.
pub struct AppState {
    /// Effective configuration.
    pub config: Config,
    /// Layout of the data directory.
    pub paths: DataDir,
    /// This server's exclusive hold of the data directory, for as long as it runs (held,
    /// never read).
    pub _data_dir_lock: crate::paths::DataDirLock,
    /// The database.
    pub store: Store,
    /// Unfinished dataset uploads.
    pub uploads: Arc<Uploads>,
    /// Signs and verifies tokens.
    pub tokens: TokenKey,
    /// Hashes and checks passwords, a bounded number at a time.
    pub passwords: crate::passwords::PasswordWorkers,
    /// Failed logins per user id and client address, which delay further guesses.
    pub logins: crate::login_throttle::LoginThrottle,
    /// Which role may call what.
    pub policy: Policy,
    /// The clusters and their task queues.
    pub clusters: Clusters,
    /// Held from the check of a new cluster's name to its registration (after the insert of
    /// its row), so that two requests at the same moment cannot both take one name, and a
    /// deletion never finds the row of a cluster that is not registered yet.
    pub cluster_names: tokio::sync::Mutex<()>,
    /// What cluster workers need.
    pub workers: WorkerContext,
    /// Power, speed and temperature of the machine, sampled once a second.
    pub measurements: Arc<crate::host_info::Measurements>,
    /// Uuid of the one logical host (the CPU), chosen at start-up.
    pub cpu_host: String,
    /// The endpoint table.
    pub routes: Routes,
    /// Turns `true` when the server begins to shut down; open websocket sessions then close
    /// with a reason.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Open websocket sessions (see [`InFlight::session`]).
    pub sessions: tokio::sync::watch::Sender<usize>,
    /// Direct-IO steps running at once over all sessions: as many as tasks may run
    /// (`max_running_tasks`), so that sessions on many clusters cannot take every core.
    pub direct_steps: tokio::sync::Semaphore,
    /// Websocket sessions that have not sent their first message yet, bounded per client
    /// network and in all (see `SessionStarts` in the websocket module).
    pub session_starts: crate::websocket::SessionStarts,
    /// Uploads being converted into datasets and registered (see
    /// [`InFlight::finalisation`]).
    pub finalisations: tokio::sync::watch::Sender<usize>,
    /// Held while a user or a project is deleted and while an upload is registered, so that
    /// no upload can be registered for an owner that is being deleted (the deletion checks
    /// for unfinished uploads first).
    pub owner_changes: tokio::sync::Mutex<()>,
    /// Held from the count of a user's queued restores until the restore asked for is
    /// queued, so that restores asked for at once cannot all pass the count.
    pub restore_admission: tokio::sync::Mutex<()>,
}

impl AppState {
    /// Resolves once the server begins to shut down.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// Waits until `counter` (one of [`AppState::sessions`] and [`AppState::finalisations`])
    /// is 0, for `limit` at most; true if it is. At shutdown websocket sessions close with a
    /// reason, and a process that exits first resets their connections; finalisations
    /// register the datasets of uploads whose every chunk was acknowledged.
    pub async fn all_ended(
        &self,
        counter: &tokio::sync::watch::Sender<usize>,
        limit: std::time::Duration,
    ) -> bool {
        let mut count = counter.subscribe();
        tokio::time::timeout(limit, count.wait_for(|open| *open == 0))
            .await
            .is_ok()
    }
}

/// Counts one piece of work in one of the counters of [`AppState`] while it lives.
pub struct InFlight {
    app: App,
    counter: fn(&AppState) -> &tokio::sync::watch::Sender<usize>,
}

impl InFlight {
    /// Counts a websocket session in [`AppState::sessions`].
    pub fn session(app: &App) -> Self {
        Self::new(app, |state| &state.sessions)
    }

    /// Counts an upload's finalisation in [`AppState::finalisations`].
    pub fn finalisation(app: &App) -> Self {
        Self::new(app, |state| &state.finalisations)
    }

    fn new(app: &App, counter: fn(&AppState) -> &tokio::sync::watch::Sender<usize>) -> Self {
        counter(app).send_modify(|open| *open += 1);
        Self {
            app: app.clone(),
            counter,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        (self.counter)(&self.app).send_modify(|open| *open -= 1);
    }
}
