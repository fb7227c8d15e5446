//! Start-up and shutdown of the server.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use hanami_auth::{Policy, TokenKey, password};
use hanami_engine::Cluster;
use hanami_store::dataset;
use hanami_store::logs::ErrorEntry;
use hanami_store::resources::{FileNote, Kind, ResourceRow};
use hanami_store::tasks::UnfinishedTask;
use hanami_store::users::NewUser;
use hanami_store::{SqliteFailure, Store, StoreError, now_timestamp};
use hanami_types::projects::Project;
use hanami_types::scope::{ADMIN_PROJECT, Scope};
use hanami_types::tasks::TaskState;
use hanami_types::users::User;

use crate::api::validate::Pattern;
use crate::api::{self, Routes};
use crate::clusters::task::{Task, Work, WorkKind};
use crate::clusters::{self, ClusterHandle, Clusters, CoreBudget, WorkerContext};
use crate::config::Config;
use crate::connections::{self, Plain, configure_http1};
use crate::host_info;
use crate::memory::NetworkMemory;
use crate::passwords::PasswordWorkers;
use crate::paths::DataDir;
use crate::state::{App, AppState};
use crate::uploads::{UploadLimits, Uploads};

/// Environment variables that create the first global admin.
const ADMIN_ID_VAR: &str = "HANAMI_ADMIN_USER_ID";
const ADMIN_NAME_VAR: &str = "HANAMI_ADMIN_USER_NAME";
const ADMIN_PASSWORD_VAR: &str = "HANAMI_ADMIN_PASSWORD";

/// Runs the server until SIGINT, SIGTERM or SIGHUP.
///
/// The first line on stdout is the address clients should use, e.g. `http://127.0.0.1:11418`
/// (the loopback address when the server listens on all interfaces).
pub async fn run(config: Config) -> anyhow::Result<()> {
    // The certificate and key first: a server that cannot serve must change nothing.
    let tls_config = match &config.tls {
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let server_config =
                crate::certificate::tls_server_config(tls).context("cannot load the TLS files")?;
            Some(axum_server::tls_rustls::RustlsConfig::from_config(
                Arc::new(server_config),
            ))
        }
        None => None,
    };
    // The policy file too (an invalid one used to leave a database with the first admin).
    let routes = Routes::default();
    let policy = match &config.policy_file {
        Some(path) => {
            let policy = load_policy(path)?;
            warn_of_foreign_endpoints(&policy, &routes, path);
            tracing::info!("access rules from the policy file {}", path.display());
            policy
        }
        None => Policy::builtin(),
    };
    // The port too: a port in use must change nothing either. Connections wait in the
    // backlog until everything is ready.
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "; another program listens on that port: stop it, or give this server another \
                 address (--listen, HANAMI_LISTEN, listen)"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "; that IP address is not one of this machine's: give one of its own \
                 (127.0.0.1 for this machine only, 0.0.0.0 or :: for every interface)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "; ports below 1024 need privileges: give a port from 1024 up"
            }
            _ => "",
        };
        anyhow::anyhow!("cannot listen on {}: {e}{hint}", config.listen)
    })?;
    listener.set_nonblocking(true)?;
    let database = DataDir::new(&config.data_dir).database();
    let (app, resumed) = prepare(config, routes, policy)
        .await
        .map_err(|e| with_database_hint(e, &database))?;
    let address = listener.local_addr()?;
    // Before the address is printed: a client that stops the server as soon as it reads the
    // address must not find the signals' default action (the process killed) still in place.
    let signals = crate::shutdown::ShutdownSignals::install();
    // Only now: a stop must find them stoppable.
    if !resumed.is_empty() {
        tracing::info!(
            "queued {} task(s) again that were queued, or that the stop interrupted, when the \
             server stopped",
            resumed.len()
        );
    }
    let mut starting: Vec<Arc<ClusterHandle>> = Vec::new();
    let mut seen = HashSet::new();
    for (cluster, task) in resumed {
        cluster.resume(task);
        if seen.insert(cluster.row.uuid.clone()) {
            starting.push(cluster);
        }
    }
    clusters::start_resumed_workers(starting, &app.workers);
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    {
        // Informational: a closed standard output must not stop the server.
        let mut stdout = std::io::stdout().lock();
        let reachable = client_address(address);
        let _ = writeln!(stdout, "{scheme}://{reachable}").and_then(|()| stdout.flush());
    }
    tracing::info!("listening on {scheme}://{address}");

    let handle = axum_server::Handle::new();
    tokio::spawn(crate::shutdown::on_signal(
        signals,
        handle.clone(),
        app.clone(),
    ));
    tokio::spawn(expire_uploads(app.uploads.clone()));
    if let Some(days) = app.config.log_retention_days {
        tokio::spawn(remove_old_log_entries(app.store.clone(), days));
    }
    tokio::spawn(host_info::sample_every_second(app.measurements.clone()));
    tokio::spawn(crate::dataset_checksums::record_missing(app.clone()));
    let router = Router::new()
        .fallback(api::dispatch)
        .with_state(app.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let clients = connections::ClientLimit::new(app.config.max_connections_per_client);
    match tls_config {
        Some(tls_config) => {
            let acceptor = connections::Tls::new(
                tls_config,
                app.config.header_timeout,
                app.config.write_timeout,
                app.stopping.subscribe(),
                clients,
            );
            let mut server = axum_server::from_tcp(listener).acceptor(acceptor);
            configure_http1(server.http_builder(), app.config.header_timeout);
            server.handle(handle).serve(router).await?;
        }
        None => {
            let mut server = axum_server::from_tcp(listener).acceptor(Plain {
                header: app.config.header_timeout,
                write: app.config.write_timeout,
                clients,
            });
            configure_http1(server.http_builder(), app.config.header_timeout);
            server.handle(handle).serve(router).await?;
        }
    }
    // Websocket sessions outlive the listener: they close with a reason first (a direct-IO
    // session's network is then saved with the others).
    app.all_ended(&app.sessions, Duration::from_secs(5)).await;
    // Unfinished uploads die with the process: their files go now, not at the next start.
    let uploads = app.uploads.clone();
    match tokio::task::spawn_blocking(move || uploads.discard_unfinished()).await {
        Ok(0) => {}
        Ok(discarded) => tracing::info!(
            "removed {discarded} unfinished upload(s), which a restart could not continue"
        ),
        Err(e) => tracing::warn!("cannot remove the unfinished uploads: {e}"),
    }
    // Uploads whose conversion began are registered: their clients were told every chunk
    // arrived, and a restart would drop them. Meanwhile the tasks stop and the networks
    // are saved.
    let finalisations = async {
        let converting = *app.finalisations.borrow();
        if converting > 0 {
            tracing::info!("waiting for {converting} upload(s) being converted into datasets");
            if !app
                .all_ended(&app.finalisations, FINALISATION_PATIENCE)
                .await
            {
                tracing::error!(
                    "uploads still being converted after {} s are lost (their clients may \
                     upload them again)",
                    FINALISATION_PATIENCE.as_secs()
                );
            }
        }
    };
    let (unsaved, ()) = tokio::join!(
        app.clusters
            .shut_down(&app.workers, Duration::from_secs(60)),
        finalisations
    );
    app.store.close().await;
    if !unsaved.is_empty() {
        // A stop that lost training must not look like a clean one.
        bail!(
            "stopped, but the networks of these clusters could not be saved, and what they \
             learned since their last save is lost: {}",
            unsaved.join(", ")
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long a stopping server waits for uploads being converted into datasets.
const FINALISATION_PATIENCE: Duration = Duration::from_secs(120);

/// Everything before the listener: directories, database, admin, token key, and the clusters
/// of earlier runs, with the tasks to queue again (see [`load_clusters`]).
async fn prepare(
    config: Config,
    routes: Routes,
    policy: Policy,
) -> anyhow::Result<(App, Vec<Resumed>)> {
    let data_dir = &config.data_dir;
    let paths = DataDir::new(data_dir);
    if !data_dir.exists() {
        // A first start without the admin leaves no data directory behind.
        admin_from_env()?;
    }
    paths
        .create()
        .with_context(|| format!("cannot prepare data directory {}", data_dir.display()))?;
    // Before anything in it is read or changed: a second server would abort the first
    // one's tasks and write over its files.
    let data_dir_lock = paths.lock()?;
    refuse_a_lost_database(&paths)?;
    // First, as the temporary files of uploads that died with an earlier run may hold the
    // space the start needs.
    let disk = Arc::new(crate::disk::Ledger::default());
    let uploads = Arc::new(
        Uploads::new(
            &paths.uploads(),
            config.upload_timeout,
            UploadLimits::with_free_disk(config.min_free_disk),
            disk.clone(),
        )
        .context("cannot clean up the temporary upload files")?,
    );
    // SQLite maps its WAL index into memory: on a full disk it crashed with SIGBUS.
    let free = crate::disk::free_space(data_dir)
        .with_context(|| format!("cannot check the free disk of {}", data_dir.display()))?;
    enough_to_start(free, data_dir)?;
    // Uploads keep twice the reserve.
    let refused = if free < config.min_free_disk {
        Some((
            "",
            "uploads, new clusters, request tasks and checkpoint saves",
        ))
    } else if free < config.min_free_disk.saturating_mul(2) {
        Some((" twice", "uploads"))
    } else {
        None
    };
    if let Some((twice, what)) = refused {
        tracing::warn!(
            "the disk of the data directory {} has {} MiB free, less than{twice} the {} MiB \
             that min_free_disk_mib keeps free: {what} will be refused until there is more \
             room (or the setting is lower)",
            data_dir.display(),
            free >> 20,
            config.min_free_disk >> 20
        );
    }
    let store = Store::open(&paths.database())
        .await
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    if let Some(before) = store.upgraded_from() {
        tracing::info!(
            "the database was brought from schema version {before} to {}: servers that know \
             only version {before} or older can no longer open it (a copy of the data \
             directory from before the start keeps them working)",
            Store::SCHEMA_VERSION
        );
    }
    // Files that an earlier run made are new again only where they were lost (a copy of
    // the data directory that left them out, say).
    let earlier_run = !store.users().await?.is_empty();
    ensure_admin(&store).await?;
    warn_of_roles_the_policy_lacks(&store.users().await?, &policy);
    warn_of_admin_lookalikes(&store.projects().await?);
    if !hanami_store::dataset::VerifiedFiles::remembers_in(&paths.datasets()) {
        tracing::warn!(
            "{} lies on a file system whose change times the server cannot rely on (a \
             network or FUSE file system, FAT): every use of a dataset there reads its whole \
             file to compare it with its checksum, an export once per page; a local file \
             system of Linux (ext4, XFS, Btrfs, tmpfs, …) lets it compare a file once per \
             change",
            paths.datasets().display()
        );
    }
    warn_if_others_may_change_dir(data_dir);
    let key_was_there = paths.token_key().exists();
    let tokens = TokenKey::load_or_create(&paths.token_key(), config.token_expiry)?;
    if earlier_run && !key_was_there {
        tracing::warn!(
            "{} was missing, so a new token key was made: tokens issued before no longer \
             work (their users log in again); copy the key with the rest of the data \
             directory",
            paths.token_key().display()
        );
    }
    warn_if_others_may_use(
        &paths.token_key(),
        0o066,
        "whoever reads or replaces it can make tokens for any user; let only the server's \
         user have it (chmod 600)",
    );
    warn_if_another_user_owns(
        &paths.token_key(),
        "that user can replace it, and so make tokens for any user",
    );
    let host_was_there = paths.host_id().exists();
    let cpu_host = host_id(&paths.host_id())?;
    if earlier_run && !host_was_there {
        tracing::warn!(
            "{} was missing, so the CPU host has a new uuid: clients that noted the old one \
             (for switch_host) need the new one, {cpu_host}",
            paths.host_id().display()
        );
    }
    // A request's result and a save's checkpoint are named after their task: one that had
    // not ended is aborted below, and what it wrote was never registered.
    let unended: HashSet<String> = store
        .unfinished_tasks()
        .await?
        .into_iter()
        .map(|task| task.row.uuid)
        .collect();
    set_aside_unreferenced_files(&store, Kind::Dataset, &paths.datasets(), &paths, &unended)
        .await?;
    set_aside_unreferenced_files(
        &store,
        Kind::Checkpoint,
        &paths.checkpoints(),
        &paths,
        &unended,
    )
    .await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = WorkerContext {
        store: store.clone(),
        paths: paths.clone(),
        runtime: tokio::runtime::Handle::current(),
        cores: Arc::new(CoreBudget::new(cores)),
        slots: crate::clusters::turns::TaskSlots::new(config.max_running_tasks),
        memory: NetworkMemory::new(config.cluster_memory_limit, config.clusters_memory_limit),
        min_free_disk: config.min_free_disk,
        disk,
        stopping: Arc::default(),
        descriptor_shortage: Default::default(),
        verified: Arc::default(),
    };
    let (clusters, resumed) = load_clusters(&store, &paths, &workers.memory).await?;
    let direct_steps = tokio::sync::Semaphore::new(config.max_running_tasks);
    let app = Arc::new(AppState {
        config,
        paths,
        _data_dir_lock: data_dir_lock,
        store,
        uploads,
        tokens,
        passwords: PasswordWorkers::new(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            crate::passwords::MAX_WAIT,
        ),
        logins: Default::default(),
        policy,
        clusters,
        cluster_names: tokio::sync::Mutex::new(()),
        workers,
        measurements: Arc::default(),
        cpu_host,
        routes,
        stopping: tokio::sync::watch::Sender::new(false),
        sessions: tokio::sync::watch::Sender::new(0),
        session_starts: crate::websocket::SessionStarts::default(),
        direct_steps,
        finalisations: tokio::sync::watch::Sender::new(0),
        owner_changes: tokio::sync::Mutex::new(()),
        restore_admission: tokio::sync::Mutex::new(()),
    });
    Ok((app, resumed))
}

/// The uuid of the logical host saved in `path`, or a new one saved there: hosts keep their
/// uuid across restarts, so a uuid that clients noted stays valid.
fn host_id(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let id = text.trim();
            if !Pattern::Uuid.matches(id) {
                bail!(
                    "{} does not hold a host uuid; remove it to get a new one",
                    path.display()
                );
            }
            Ok(id.to_ascii_lowercase())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            crate::clusters::write_durably(path, id.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

/// A task of an earlier run to queue again, with its cluster.
type Resumed = (Arc<ClusterHandle>, Arc<Task>);

/// Brings back the clusters of earlier runs, each with its saved network and its task list.
/// Tasks that were queued when the server stopped (cleanly or not), and train and request
/// tasks that a clean stop recorded as queued again, are returned with their clusters, in
/// queue order, to be queued again; tasks that had started and not ended, and queued ones
/// whose work cannot be brought back, are recorded as aborted, with an error-log entry each.
async fn load_clusters(
    store: &Store,
    paths: &DataDir,
    memory: &NetworkMemory,
) -> anyhow::Result<(Clusters, Vec<Resumed>)> {
    // Before the stale temporary files go: a staged network may be one of them.
    complete_pending_networks(store, paths).await?;
    set_aside_unreferenced_files(
        store,
        Kind::Cluster,
        &paths.clusters(),
        paths,
        &HashSet::new(),
    )
    .await?;
    let clusters = Clusters::default();
    let mut unsaved = 0;
    for row in store.all_resources(Kind::Cluster).await? {
        if row.file_name.is_empty() {
            // Created by a version that kept networks in memory only: the network is gone.
            store
                .delete_resource(Kind::Cluster, &Scope::All, &row.uuid)
                .await?;
            unsaved += 1;
            continue;
        }
        let file = paths.clusters().join(&row.file_name);
        let network = saved_network(store, paths, &row, &file, memory).await?;
        clusters.insert(Arc::new(ClusterHandle::new(row, network, file)));
    }
    if unsaved > 0 {
        tracing::info!(
            "removed {unsaved} cluster(s) of an older version, which did not save networks; \
             restore checkpoints to get them back"
        );
    }
    for unsaved in store.unsaved_networks().await? {
        let (uuid, since) = (&unsaved.uuid, &unsaved.since);
        if let Some(cluster) = clusters.get(&Scope::All, uuid) {
            let name = &cluster.row.name;
            let in_place = cluster.saved_network();
            // A network set aside as damaged or missing at this start is no later save.
            let saved_since = cluster.has_network() && in_place != unsaved.base;
            let message = if unsaved.base.is_some() && saved_since {
                // A save came after the training began; what came after that save (if
                // anything) is lost.
                format!(
                    "cluster '{name}': the server stopped right after it saved the network, \
                     with what its network learned since {since} up to that save; training \
                     after the save, if there was any, is lost"
                )
            } else {
                format!(
                    "cluster '{name}': what its network learned since {since} (through direct \
                     IO, or in tasks whose network could not be saved) is lost: the server \
                     stopped before it saved the network (a crash, a kill, or a save that \
                     failed, as on a full disk: the error log or the server log of that run \
                     tells), which is as it was saved before"
                )
            };
            log_startup_error(store, &cluster.row.owner_id, uuid, &message).await;
        }
        store.note_saved_network(uuid).await?;
    }
    store.delete_orphan_tasks().await?;
    let ended_at = now_timestamp();
    let mut resumed = Vec::new();
    for UnfinishedTask { row: task, work } in store.unfinished_tasks().await? {
        let Some(cluster) = clusters.get(&Scope::All, &task.cluster_uuid) else {
            continue;
        };
        let message = match (task.state, work) {
            (TaskState::Queued, Some(work)) => match Work::from_stored(&work, paths) {
                Ok(work) => {
                    resumed.push((cluster, Arc::new(Task::resumed(task, work))));
                    continue;
                }
                Err(why) => format!(
                    "task '{}' of cluster '{}' was queued when the server stopped and cannot be \
                     queued again: {why:#}; it is aborted",
                    task.name, cluster.row.name
                ),
            },
            (TaskState::Queued, None) => format!(
                "task '{}' of cluster '{}' was queued when the server stopped, and its end was \
                 not recorded; an older version of the server queued it, which kept no record \
                 of what queued tasks were to do, so it is aborted: queue it again",
                task.name, cluster.row.name
            ),
            // (Only queued and active tasks are unfinished.)
            (_, _) => unended_task_message(&task, &cluster, paths),
        };
        // The note and the error-log entry are written with the abort, so that a crash
        // during this start leaves the task to the next one, which tells it again.
        let error_id = crate::error_log::new_id();
        let inputs = serde_json::json!({ "uuid": task.uuid });
        let entry = ErrorEntry {
            error_id: &error_id,
            user_id: &cluster.row.owner_id,
            context: STARTUP,
            input_values: &inputs,
            message: &message,
        };
        if store
            .abort_unfinished_task(&task.uuid, &ended_at, &message, entry.clone())
            .await?
        {
            crate::error_log::trace(&entry);
        }
    }
    remove_unneeded_partial_results(paths, &resumed)?;
    // Each cluster's list in queue order, the tasks to queue again among the others.
    let queued: HashMap<&str, &Arc<Task>> = resumed
        .iter()
        .map(|(_, task)| (task.uuid.as_str(), task))
        .collect();
    for cluster in clusters.all() {
        let tasks = store.cluster_tasks(&cluster.row.uuid).await?;
        cluster.add_recorded_tasks(tasks.into_iter().map(
            |row| match queued.get(row.uuid.as_str()) {
                Some(task) => Arc::clone(task),
                None => Arc::new(Task::recorded(row)),
            },
        ));
    }
    Ok((clusters, resumed))
}

/// The note of task `task` of `cluster`, which was active when the server stopped and
/// whose end was not recorded: what its abort leaves of what it did.
fn unended_task_message(
    task: &hanami_store::tasks::TaskRow,
    cluster: &ClusterHandle,
    paths: &DataDir,
) -> String {
    // A stop ends active tasks itself, so a task still active here outlived a crash (or a
    // stop that could not wait for it). Its end was not recorded, and a task's network and
    // product become durable only with its end: it left nothing behind since it started. A
    // train or request task that an earlier stop interrupted started again with the cycles
    // it had done, which its network keeps (its record's progress is set when it starts,
    // and not before its end; the start removes a request's result so far).
    let network = paths.clusters().join(&cluster.row.file_name);
    // (A cluster without a network has only its marker, which this start may have
    // written.)
    let saved_since = task.current == 0
        && cluster.has_network()
        && saved_after(&network, task.started_at.as_deref());
    let outcome = if saved_since {
        // The server went on after the end failed to be recorded, and saved the
        // network in memory, which kept what the task did, with a later task, a
        // direct-IO session or its stop.
        "no result or checkpoint of it was registered, but the cluster's network \
         was saved after the task started, and may keep what it did: check the \
         cluster before you run the task again"
            .to_owned()
    } else if task.current == 0 {
        "nothing it did is kept: the cluster's network is as it was saved before \
         the task (what a train or request task learned is lost), and no result \
         dataset or checkpoint of it was registered; run it again"
            .to_owned()
    } else {
        format!(
            "the cluster's network keeps only its first {} cycles, which it did \
             before an earlier stop of the server interrupted it: what it did after \
             it went on is lost, and no result of it was registered",
            task.current
        )
    };
    // How many cycles the network keeps, where that is known.
    let kept = if saved_since {
        String::new()
    } else {
        format!(" ({} of its {} cycles kept)", task.current, task.total)
    };
    format!(
        "task '{}' of cluster '{}' was {} when the server stopped, and its end \
         was not recorded (a crash, a kill, or a database that could not be \
         written, as on a full disk); it is aborted, and {outcome}{kept}",
        task.name, cluster.row.name, task.state
    )
}

/// Removes the results so far that no request task goes on with (one that a crash cut off
/// after it went on, or whose stop was not recorded; one deleted while its file could not
/// be removed): only a request task queued again with cycles done goes on with its own.
fn remove_unneeded_partial_results(paths: &DataDir, resumed: &[Resumed]) -> anyhow::Result<()> {
    let needed: HashSet<&str> = resumed
        .iter()
        .filter(|(_, task)| task.kind == Some(WorkKind::Request) && task.progress() > 0)
        .map(|(_, task)| task.uuid.as_str())
        .collect();
    let dir = paths.partial_results();
    let cannot = || format!("cannot clean up {}", dir.display());
    for entry in std::fs::read_dir(&dir).with_context(cannot)? {
        let entry = entry.with_context(cannot)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if needed.contains(name.as_str()) {
            continue;
        }
        if entry.file_type().with_context(cannot)?.is_dir() {
            // Not the server's: it keeps only files here.
            tracing::warn!(
                "left {}: a folder in the server's folder of results so far, which it does not \
                 use; remove it",
                entry.path().display()
            );
            continue;
        }
        if !crate::paths::is_own_file_name(&name) {
            // Not the server's either: its files are named after their tasks.
            tracing::warn!(
                "left {}: a file in the server's folder of results so far that the server did \
                 not make; move it away",
                entry.path().display()
            );
            continue;
        }
        std::fs::remove_file(entry.path()).with_context(cannot)?;
        tracing::info!(
            "removed {}: no queued request task goes on with it",
            entry.path().display()
        );
    }
    Ok(())
}

/// The network a cluster saved, or `None` for a cluster without one. A missing or
/// damaged file is reported in the error log once: a damaged file is kept in
/// `unreferenced/clusters/`, and either is replaced by the no-network marker.
async fn saved_network(
    store: &Store,
    paths: &DataDir,
    row: &ResourceRow,
    file: &Path,
    memory: &NetworkMemory,
) -> anyhow::Result<Option<Cluster>> {
    let reading = file.to_owned();
    let read = tokio::task::spawn_blocking(move || clusters::read_regular_file(&reading)).await?;
    let problem = match read {
        Ok(bytes) if bytes == clusters::NO_NETWORK => return Ok(None),
        Ok(bytes) => match tokio::task::spawn_blocking(move || Cluster::restore(&bytes)).await? {
            Ok(mut network) => {
                // Brought back even if the clusters together are beyond their budget now
                // (a lowered clusters_memory_mib): nothing is lost, they only stop growing.
                memory.adopt(&mut network);
                return Ok(Some(network));
            }
            Err(e) => {
                let name = format!("{}.damaged", row.file_name);
                let aside = paths
                    .set_aside(file, name.as_ref())
                    .with_context(|| format!("cannot move {} aside", file.display()))?;
                format!(
                    "cannot be restored ({e}); the file is kept as {}",
                    aside.display()
                )
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // An earlier start may have set it aside as damaged and stopped (a crash)
            // before it said so.
            let damaged = format!("{}.damaged", row.file_name);
            match paths.latest_aside("clusters".as_ref(), damaged.as_ref()) {
                Some((copy, _)) => format!(
                    "is missing from the data directory; an earlier start kept a damaged copy \
                     as {}",
                    copy.display()
                ),
                None => {
                    "is missing from the data directory (removed outside the server?)".to_owned()
                }
            }
        }
        // A folder, a named pipe or a device in its place (`read_regular_file`).
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            let name = format!("{}.damaged", row.file_name);
            let aside = paths
                .set_aside(file, name.as_ref())
                .with_context(|| format!("cannot move {} aside", file.display()))?;
            format!(
                "is not a regular file; what was there is kept as {}",
                aside.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let message = format!(
        "the saved network of cluster '{}' {problem}; the cluster has no network until a \
         checkpoint is restored into it",
        row.name
    );
    log_startup_error(store, &row.owner_id, &row.uuid, &message).await;
    // Said once: from now on it is a cluster without a network.
    let marker = file.to_owned();
    tokio::task::spawn_blocking(move || clusters::write_durably(&marker, clusters::NO_NETWORK))
        .await?
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(None)
}

/// The error log's context of problems found at start-up.
const STARTUP: &str = "server start-up";

/// Writes a problem found at start-up to the server log and the error log.
async fn log_startup_error(store: &Store, user_id: &str, subject: &str, message: &str) {
    let inputs = serde_json::json!({ "uuid": subject });
    crate::error_log::record(store, user_id, STARTUP, &inputs, message).await;
}

/// Whether the file at `path` was last written more than a second after `started` (a
/// recorded timestamp, `YYYY-MM-DD HH:MM:SS` in UTC; timestamps count whole seconds).
fn saved_after(path: &Path, started: Option<&str>) -> bool {
    let Some(started) =
        started.and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok())
    else {
        return false;
    };
    let Ok(written) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    let written = chrono::DateTime::<chrono::Utc>::from(written).naive_utc();
    written > started + chrono::Duration::seconds(1)
}

/// Puts in place the networks whose tasks' ends were recorded by a run that crashed before it
/// renamed them into place (see `clusters::Staged`).
async fn complete_pending_networks(store: &Store, paths: &DataDir) -> anyhow::Result<()> {
    let pending = store.pending_networks().await?;
    if pending.is_empty() {
        return Ok(());
    }
    let clusters: HashMap<String, ResourceRow> = store
        .all_resources(Kind::Cluster)
        .await?
        .into_iter()
        .map(|row| (row.uuid.clone(), row))
        .collect();
    for (cluster, task) in pending {
        let Some(row) = clusters
            .get(&cluster)
            .filter(|row| !row.file_name.is_empty())
        else {
            continue;
        };
        let file = paths.clusters().join(&row.file_name);
        let staged = clusters::staged_path_of_task(&file, &task);
        let checked = staged.clone();
        let lost =
            tokio::task::spawn_blocking(move || complete_staged_network(&file, &checked)).await??;
        if let Some(why) = lost {
            // Its end (or its stop, to go on at this start) was recorded, its network is not
            // in place: it did not end well after all. Recorded so before the file is moved
            // aside: a start that found no file would take it for renamed before the crash.
            let message = format!(
                "the network that task {task} of cluster '{}' saved when it ended (or when a \
                 shutdown stopped it) {why}; the cluster keeps the network it had before, so \
                 the task is aborted (the saved file is moved to unreferenced/clusters/)",
                row.name
            );
            log_startup_error(store, &row.owner_id, &task, &message).await;
            store.abort_ended_task(&task, &message).await?;
            crate::crash_point::reached_async("start:lost-network-recorded").await;
            let shared = paths.clone();
            tokio::task::spawn_blocking(move || {
                let name = staged.file_name().unwrap_or_default().to_owned();
                shared.set_aside(&staged, &name)
            })
            .await??;
        }
    }
    store.all_networks_in_place().await?;
    Ok(())
}

/// Renames the network `staged` for `file` into place if it is there and whole (it was
/// synced before its task's end was recorded); returns why not where it is damaged or cannot
/// be renamed (the file in place is checked as at every start). It is left where it is then.
fn complete_staged_network(file: &Path, staged: &Path) -> anyhow::Result<Option<String>> {
    let bytes = match clusters::read_regular_file(staged) {
        Ok(bytes) => bytes,
        // Renamed before the crash.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", staged.display())),
    };
    if !(bytes == clusters::NO_NETWORK || Cluster::restore(&bytes).is_ok()) {
        return Ok(Some("is damaged".to_owned()));
    }
    let mut found = clusters::Staged::found(file, staged);
    match found.rename_into_place("start:folder-sync") {
        Ok(in_place) => {
            tracing::warn!(
                "put the saved network {} in place: the server stopped after it recorded the \
                 end of the task that saved it, before the rename",
                file.display()
            );
            if let clusters::InPlace::FolderNotSynced(e) = in_place {
                tracing::warn!(
                    "the folder of {} cannot be synced ({e}): a crash before the system \
                     writes it could undo the rename",
                    file.display()
                );
            }
            Ok(None)
        }
        Err(e) => {
            found.keep();
            Ok(Some(format!("cannot be put in place ({e})")))
        }
    }
}

/// Cleans up the files of a kind that no database row references: removes the files of
/// deleted rows (a crash came between deleting a row and its file), of new rows never
/// registered (a crash came between writing the file and inserting the row) and the
/// writers' half-written temporary files, and moves the others to `unreferenced/`: the products of
/// tasks the database shows unended (`unended`: a crash came between writing the file and
/// registering it with the task's end, or the database is older than the files) with a
/// word on that, and files of unknown origin.
async fn set_aside_unreferenced_files(
    store: &Store,
    kind: Kind,
    dir: &Path,
    paths: &DataDir,
    unended: &HashSet<String>,
) -> anyhow::Result<()> {
    let referenced: HashSet<String> = store.resource_file_names(kind).await?.into_iter().collect();
    let deleted: HashSet<String> = store
        .noted_files(FileNote::Removed, kind)
        .await?
        .into_iter()
        .collect();
    let any_deleted = !deleted.is_empty();
    let unregistered: HashSet<String> = store
        .noted_files(FileNote::Unregistered, kind)
        .await?
        .into_iter()
        .collect();
    let any_unregistered = !unregistered.is_empty();
    let unended = unended.clone();
    let dir = dir.to_owned();
    let dir_name = dir.clone();
    let paths = paths.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let stale = dataset::remove_stale_temp_files(&dir)?;
        if stale > 0 {
            tracing::info!(
                "removed {stale} half-written temporary file(s) from {}: writes that a crash \
                 interrupted",
                dir.display()
            );
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if referenced.contains(&name) {
                continue;
            }
            if !entry.file_type()?.is_file() {
                // The server writes regular files only: a folder or link put here by hand
                // (or in place of a file that was deleted since) is set aside, never removed.
                let target = paths.set_aside(&entry.path(), &entry.file_name())?;
                tracing::warn!(
                    "moved {} to {}: it is not a regular file, and no database row references \
                     it; delete it if it is not needed",
                    entry.path().display(),
                    target.display()
                );
                continue;
            }
            let removable = if clusters::is_half_written(&entry.path()) {
                Some("a save that a crash interrupted".to_owned())
            } else if deleted.contains(&name) {
                Some(format!(
                    "the file of a deleted {}, whose removal a crash interrupted",
                    kind.word()
                ))
            } else if unregistered.contains(&name) {
                Some(format!(
                    "the file of a new {} that a crash cut short before it was registered \
                     (nobody was told of it)",
                    kind.word()
                ))
            } else {
                None
            };
            if let Some(why) = removable {
                std::fs::remove_file(entry.path())?;
                tracing::info!("removed {}: {why}", entry.path().display());
                continue;
            }
            // Kept, not removed: a database older than the files (a backup put back) would
            // take a registered result for one that a crash left behind.
            let why = if unended.contains(&name) {
                format!(
                    "written by task {name}, which the database shows unended (a crash came \
                     before its end was recorded, or the database is older than the files)"
                )
            } else {
                "no database row references it (left by a crash, or made after the backup \
                 the database came from)"
                    .to_owned()
            };
            let target = paths.set_aside(&entry.path(), &entry.file_name())?;
            tracing::warn!(
                "moved {} to {}: {why}; delete it if it is not needed",
                entry.path().display(),
                target.display()
            );
        }
        Ok(())
    })
    .await?
    .with_context(|| format!("cannot clean up {}", dir_name.display()))?;
    // Left for the next start if this fails: the files are gone, the notes harmless.
    for (note, any) in [
        (FileNote::Removed, any_deleted),
        (FileNote::Unregistered, any_unregistered),
    ] {
        if any && let Err(e) = store.forget_noted_files(note, kind, None).await {
            tracing::warn!(
                "cannot forget the database's notes of {} files ({note:?}): {e}",
                kind.word()
            );
        }
    }
    Ok(())
}

/// Warns of projects whose id is the global admins' `admin` in another case (`Admin`):
/// earlier servers let them be made, and people take them for the admins' project.
fn warn_of_admin_lookalikes(projects: &[Project]) {
    for project in projects {
        if project.id != ADMIN_PROJECT && project.id.eq_ignore_ascii_case(ADMIN_PROJECT) {
            tracing::warn!(
                "project '{}' has the id of the global admins' project '{ADMIN_PROJECT}' in \
                 another case, which new projects may no longer have; it is a project like \
                 any other, but people may take it for the admins' project: move its \
                 members to a project of another id",
                project.id
            );
        }
    }
}

/// Warns of roles that users have and the policy does not name (a policy file that dropped
/// or renamed one): such a user can log in but call nothing where the role applies.
fn warn_of_roles_the_policy_lacks(users: &[User], policy: &Policy) {
    let known = policy.roles();
    // Each role in the order it is first met, with who has it.
    let mut lacking: Vec<(&str, Vec<String>)> = Vec::new();
    let holders = users.iter().flat_map(|user| {
        let roles: Vec<(&str, String)> = if user.is_admin {
            // A global admin acts as `admin` in every project.
            vec![("admin", format!("global admin '{}'", user.id))]
        } else {
            user.projects
                .iter()
                .map(|a| {
                    let holder = format!("'{}' in project '{}'", user.id, a.project_id);
                    (a.role.as_str(), holder)
                })
                .collect()
        };
        roles
    });
    for (role, holder) in holders.filter(|(role, _)| !known.contains(role)) {
        match lacking.iter_mut().find(|(r, _)| *r == role) {
            Some((_, holders)) => holders.push(holder),
            None => lacking.push((role, vec![holder])),
        }
    }
    for (role, holders) in lacking {
        let named = crate::api::listed(holders.iter().map(String::as_str), 5);
        tracing::warn!(
            "the policy names no role '{role}', which {} user assignment(s) have ({named}): \
             they can log in there but call nothing; add the role to the policy or assign \
             them another (its roles: {})",
            holders.len(),
            policy.roles_text()
        );
    }
}

use crate::disk::MIN_FREE_TO_START;

/// Refuses to start with less than [`MIN_FREE_TO_START`] bytes free in the data directory.
fn enough_to_start(free: u64, data_dir: &Path) -> anyhow::Result<()> {
    if free < MIN_FREE_TO_START {
        bail!(
            "the disk of the data directory {} is almost full ({} KiB free, {} MiB needed to \
             start): free space first",
            data_dir.display(),
            free >> 10,
            MIN_FREE_TO_START >> 20
        );
    }
    Ok(())
}

/// Refuses to start on a data directory whose database is missing or empty while it holds
/// dataset, checkpoint or network files: a new database would reference none of them (they
/// used to be deleted as unreferenced).
fn refuse_a_lost_database(paths: &DataDir) -> anyhow::Result<()> {
    let database = paths.database();
    let metadata = std::fs::metadata(&database);
    if metadata.as_ref().is_ok_and(|m| !m.is_file()) {
        // SQLite only says that it cannot open it.
        bail!(
            "the database {} is not a file (a directory, say): move it away, and put the \
             database file of this data directory in its place, or nothing to start with an \
             empty server",
            database.display()
        );
    }
    let lost = metadata.map_or(true, |m| m.len() == 0);
    let files = paths.resource_file_count();
    if lost && files > 0 {
        bail!(
            "the data directory holds {files} dataset, checkpoint and network file(s), but its \
             database {} is missing or empty: restore it from a backup, or move the folders \
             datasets, checkpoints and clusters away to start with an empty server",
            database.display()
        );
    }
    Ok(())
}

/// Says first what the operator can do when SQLite found fault with the database file
/// itself (its own words stay behind, without the path).
fn with_database_hint(e: anyhow::Error, database: &Path) -> anyhow::Error {
    let store_error = e
        .chain()
        .find_map(|cause| cause.downcast_ref::<StoreError>());
    let hint = match store_error {
        Some(StoreError::FutureSchema { .. }) => {
            "was written by a newer version of the server, and cannot be converted back: run \
             that version on this data directory, or restore a backup of the directory made \
             before it was used"
        }
        Some(StoreError::Corrupt { .. }) => "is damaged: restore it from a backup",
        Some(StoreError::Foreign { .. }) => {
            "is not this server's: give the server another data directory (its own database \
             is made there), or move the file away if it is not needed"
        }
        Some(store_error) => match store_error.sqlite_failure() {
            Some(SqliteFailure::Locked) => {
                "is locked by another program (a sqlite3 shell or a backup tool, say): stop \
                 it, then start the server again"
            }
            Some(SqliteFailure::ReadOnly) => {
                "cannot be written: make it, its -wal and -shm files and its directory \
                 writable for the user the server runs as"
            }
            Some(SqliteFailure::Io) => {
                "could not be read or written: the disk or file system reported an error"
            }
            Some(SqliteFailure::Corrupt) => {
                "is damaged or not a SQLite database: restore it from a backup"
            }
            Some(SqliteFailure::CannotOpen) => {
                "cannot be opened: check that its directory is accessible to the server"
            }
            Some(SqliteFailure::Full) | None => return e,
        },
        None => return e,
    };
    e.context(format!("the database {} {hint}", database.display()))
}

/// Periodically removes idle unfinished uploads.
async fn expire_uploads(uploads: Arc<Uploads>) {
    let mut tick = tokio::time::interval(uploads.expiry_interval());
    loop {
        tick.tick().await;
        let uploads = uploads.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || uploads.expire()).await {
            tracing::error!("upload expiry failed: {e}");
        }
    }
}

/// Removes audit- and error-log entries older than `days` days, at start and every hour.
async fn remove_old_log_entries(store: Store, days: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match store
            .remove_logs_before(&hanami_store::timestamp_days_ago(days))
            .await
        {
            Ok(0) => {}
            Ok(removed) => {
                let unit = if days == 1 { "day" } else { "days" };
                tracing::info!("removed {removed} log entries older than {days} {unit}");
            }
            Err(e) => tracing::error!("cannot remove old log entries: {e}"),
        }
    }
}

fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = crate::config::read_text_file(path, "policy file")?;
    Policy::parse(&text).with_context(|| format!("invalid policy file {}", path.display()))
}

/// Logs the endpoint ids of a policy file that neither this server nor the original's
/// policy know (a typing error, say): their rules have no effect.
fn warn_of_foreign_endpoints(policy: &Policy, routes: &Routes, path: &Path) {
    let foreign = foreign_endpoints(policy, routes);
    if !foreign.is_empty() {
        tracing::warn!(
            "policy file {}: no such endpoints, their rules have no effect: {}",
            path.display(),
            foreign.join(", ")
        );
    }
    if let Some(lines) = lines_list(policy.ignored_blocks()) {
        tracing::warn!(
            "policy file {}: blocks that repeat the endpoint of an earlier block are ignored \
             (put all of an endpoint's methods in its first block), at line(s) {lines}",
            path.display()
        );
    }
}

/// `3, 17` for line numbers; `None` for none.
fn lines_list(lines: &[usize]) -> Option<String> {
    (!lines.is_empty()).then(|| {
        lines
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The endpoint ids of `policy` that neither `routes` serve nor the built-in policy names,
/// sorted.
fn foreign_endpoints<'a>(policy: &'a Policy, routes: &Routes) -> Vec<&'a str> {
    let builtin = Policy::builtin();
    let mut foreign: Vec<&str> = policy
        .endpoints()
        .filter(|id| !routes.serves(id) && !builtin.knows(id))
        .collect();
    foreign.sort_unstable();
    foreign
}

/// Warns when the mode of a secret `key` lets others (the bits of `mask`) read or change
/// it: the token key (a copied or restored data directory; group and others), whose reader
/// can make tokens for any user, or the HTTPS private key (others: a group such as Debian's
/// `ssl-cert` may share it), whose reader can pose as the server. `risk` says what follows
/// and what to do.
pub(crate) fn warn_if_others_may_use(key: &Path, mask: u32, risk: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(key) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & mask != 0 {
            tracing::warn!(
                "{} can be read or changed by other users of this machine (mode {mode:o}): \
                 {risk}",
                key.display()
            );
        }
    }
}

/// Warns when a user other than the server's own (and root) owns `path`; `risk` says what
/// that user can do.
fn warn_if_another_user_owns(path: &Path, risk: &str) {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid only reads the process's effective user id.
    let me = unsafe { libc::geteuid() };
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.uid() != me
        && metadata.uid() != 0
    {
        tracing::warn!(
            "{} belongs to another user of this machine (uid {}): {risk}; give it to the \
             server's user (chown {me})",
            path.display(),
            metadata.uid()
        );
    }
}

/// Warns when others may change the data directory, and so replace its token key or its
/// database: anyone (its mode lets others write), a group that is not the server's own, or
/// another user who owns it.
fn warn_if_others_may_change_dir(dir: &Path) {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Ok(metadata) = std::fs::metadata(dir) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    let others = mode & 0o002 != 0;
    let foreign_group = mode & 0o020 != 0 && !own_group(metadata.gid());
    if others || foreign_group {
        let remedy = if others {
            "chmod o-w"
        } else {
            "chmod g-w, or chgrp it to the server's group"
        };
        tracing::warn!(
            "{} can be changed by other users of this machine (mode {mode:o}): they can \
             replace its token key or its database; let only the server's user and group \
             change it ({remedy})",
            dir.display()
        );
    }
    warn_if_another_user_owns(dir, "that user can replace its token key or its database");
}

/// Whether `gid` is one of the server process's groups.
fn own_group(gid: u32) -> bool {
    // SAFETY: getegid only reads the process's group id.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: with a length of 0, getgroups only counts the supplementary groups.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(count) else {
        return false;
    };
    let mut groups: Vec<libc::gid_t> = vec![0; len];
    // SAFETY: `groups` has room for the `count` ids getgroups may write.
    let written = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    usize::try_from(written).is_ok_and(|written| groups[..written.min(len)].contains(&gid))
}

/// Creates the first global admin from the environment when no admin exists yet.
async fn ensure_admin(store: &Store) -> anyhow::Result<()> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if store.has_admin().await? {
        if var(ADMIN_PASSWORD_VAR).is_some() {
            // Someone may expect it to change the admin's password.
            tracing::info!(
                "an admin user exists already, so {ADMIN_ID_VAR}, {ADMIN_NAME_VAR} and \
                 {ADMIN_PASSWORD_VAR} change nothing: they only create the first admin"
            );
        }
        return Ok(());
    }
    let (id, name, secret) = admin_from_env()?;
    if store.user_record(&id).await?.is_some() {
        bail!(
            "the database has no global admin, and user '{id}' ({ADMIN_ID_VAR}) exists but is \
             none: give {ADMIN_ID_VAR} an id that no user has, to create a new global admin \
             (who can then make '{id}' one again)"
        );
    }
    let pw_hash = tokio::task::spawn_blocking(move || password::hash(&secret)).await?;
    store
        .create_user(NewUser {
            id: &id,
            name: &name,
            creator_id: "HANAMI_INIT",
            is_admin: true,
            pw_hash: &pw_hash,
        })
        .await
        .with_context(|| format!("cannot create the admin user '{id}'"))?;
    tracing::info!("created the first admin user '{id}'");
    Ok(())
}

/// The first admin's id, name and password from the environment, checked as the API checks
/// them (the admin must be able to log in); an error names what is missing or wrong.
fn admin_from_env() -> anyhow::Result<(String, String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(id), Some(name), Some(secret)) = (
        var(ADMIN_ID_VAR),
        var(ADMIN_NAME_VAR),
        var(ADMIN_PASSWORD_VAR),
    ) else {
        let missing: Vec<&str> = [ADMIN_ID_VAR, ADMIN_NAME_VAR, ADMIN_PASSWORD_VAR]
            .into_iter()
            .filter(|name| var(name).is_none())
            .collect();
        let which = if missing.len() < 3 {
            format!(" ({} not set)", missing.join(" and "))
        } else {
            String::new()
        };
        bail!(
            "no admin user exists yet: set {ADMIN_ID_VAR}, {ADMIN_NAME_VAR} and \
             {ADMIN_PASSWORD_VAR} to create the first one{which}"
        );
    };
    if !Pattern::IdExt.matches(&id) || !(4..=254).contains(&id.len()) {
        bail!(
            "{ADMIN_ID_VAR} must be 4 to 254 characters: a letter, then letters, digits, '_' or '@'"
        );
    }
    if !Pattern::Name.matches(&name) || !(4..=254).contains(&name.len()) {
        bail!(
            "{ADMIN_NAME_VAR} must be 4 to 254 characters: a letter, then letters, digits, \
             '_', '-' or spaces"
        );
    }
    if !(8..=4096).contains(&secret.len()) {
        bail!(
            "{ADMIN_PASSWORD_VAR} must be 8 to 4096 bytes long (in UTF-8: as many characters \
             where all are ASCII)"
        );
    }
    Ok((id, name, secret))
}

/// The address that clients on this machine can use for a listening address: one that
/// stands for all interfaces (`0.0.0.0`, `::`) is reached through loopback.
fn client_address(bound: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, bound.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rules_for_no_known_endpoint_are_found() {
        let policy = Policy::parse(
            "v1.0alpha/auth\n- GET: admin\nv1.0alpha/nope\n- GET: admin\n\
             v1.0alpha/template\n- GET: admin\nv1.0alpha/clusters\n- GET: admin\n",
        )
        .unwrap();
        // `template` is in the original's policy although nobody serves it.
        assert_eq!(
            foreign_endpoints(&policy, &Routes::default()),
            ["v1.0alpha/clusters", "v1.0alpha/nope"]
        );
        assert_eq!(lines_list(&[3, 17]).as_deref(), Some("3, 17"));
        assert_eq!(lines_list(&[]), None);
    }

    #[test]
    fn the_host_uuid_is_made_once_and_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.id");
        let made = host_id(&path).unwrap();
        assert!(Pattern::Uuid.matches(&made));
        assert_eq!(host_id(&path).unwrap(), made);
        std::fs::write(&path, "not a uuid").unwrap();
        let error = host_id(&path).unwrap_err().to_string();
        assert!(error.contains("does not hold a host uuid"), "{error}");
    }

    #[test]
    fn a_full_disk_stops_the_start() {
        let dir = Path::new("/srv/data");
        let error = enough_to_start(100 << 10, dir).unwrap_err().to_string();
        assert!(
            error.contains("/srv/data is almost full (100 KiB free"),
            "{error}"
        );
        enough_to_start(MIN_FREE_TO_START, dir).unwrap();
    }

    #[test]
    fn all_interfaces_are_announced_as_loopback() {
        for (bound, announced) in [
            ("0.0.0.0:11418", "127.0.0.1:11418"),
            ("[::]:8080", "[::1]:8080"),
            ("127.0.0.1:5", "127.0.0.1:5"),
            ("192.168.1.4:80", "192.168.1.4:80"),
            ("[::1]:7", "[::1]:7"),
        ] {
            let announced: std::net::SocketAddr = announced.parse().unwrap();
            assert_eq!(client_address(bound.parse().unwrap()), announced);
        }
    }
}
