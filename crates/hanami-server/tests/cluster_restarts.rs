//! Clusters outlive the server: after a clean stop or a crash, every cluster comes back with
//! the network it had and with its task list; queued tasks are queued again, a train or
//! request task that a clean stop interrupted goes on where it stopped, and tasks that a
//! crash cut off are reported aborted.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    ADMIN, ADMIN_PW, SEED_TEMPLATE, ServerExt, TestServer, launch, pattern_mnist, sdk, sha256,
};
use hanami_sdk::{Client, Error};
use hanami_store::Store;
use hanami_store::resources::{FileNote, Kind, ResourceRow};
use hanami_types::tasks::TaskState;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// The variable that makes a debug build of the server crash at a named point.
const CRASH_AT: &str = "HANAMI_CRASH_AT";

/// Uploads `rows` generated MNIST-like images as `name`; returns the dataset uuid.
async fn upload(client: &Client, dir: &Path, name: &str, rows: u32) -> String {
    let (images, labels) = pattern_mnist(dir, name, rows);
    client
        .upload_mnist(name, &images, &labels)
        .await
        .unwrap()
        .uuid
}

/// A fresh server, a client of its admin, a dataset of `rows` generated images and a cluster
/// of the seed template, both named `name`; the dataset's and the cluster's uuids.
async fn server_with_cluster(name: &str, rows: u32) -> (TestServer, Client, String, String) {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), name, rows).await;
    let cluster = common::seed_cluster(&client, name).await;
    (server, client, dataset, cluster)
}

/// Saves a checkpoint of the cluster and returns the bytes of its file.
async fn checkpoint_bytes(
    server: &TestServer,
    client: &Client,
    cluster: &str,
    name: &str,
) -> Vec<u8> {
    let saved = client.save_cluster(cluster, name).await.unwrap();
    let done = client
        .wait_for_task(cluster, &saved.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
    std::fs::read(server.data_dir.join("checkpoints").join(&saved.uuid)).unwrap()
}

/// Queues a train task of the cluster on a dataset (pictures and labels); returns its uuid.
async fn queue_training(client: &Client, cluster: &str, name: &str, dataset: &str) -> String {
    client
        .train(
            name,
            cluster,
            &[("picture", dataset)],
            &[("label", dataset)],
        )
        .await
        .unwrap()
        .uuid
}

/// Waits until a task has made progress.
async fn wait_for_progress(client: &Client, cluster: &str, task: &str) {
    let start = Instant::now();
    while client.task(cluster, task).await.unwrap().current_cycle == 0 {
        assert!(start.elapsed() < WAIT, "task {task} made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Queues a request task of the cluster on a dataset's pictures, its result named as the
/// task; returns its uuid.
async fn queue_request(client: &Client, cluster: &str, name: &str, dataset: &str) -> String {
    client
        .request(name, cluster, &[("picture", dataset)], ("label", name))
        .await
        .unwrap()
        .uuid
}

/// Stops the server cleanly once the task has made progress, and starts it again; a client
/// of the new server.
async fn stop_while_running(
    server: TestServer,
    client: &Client,
    cluster: &str,
    task: &str,
) -> (TestServer, Client) {
    wait_for_progress(client, cluster, task).await;
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    (server, client)
}

/// Trains a direct-IO session `times` times on one sample of the seed template's shape (a
/// grey picture labelled 3).
async fn train_seed_sample(session: &mut hanami_sdk::DirectSession, times: usize) {
    let picture = vec![180.0f32; 784];
    let mut label = vec![0.0f32; 10];
    label[3] = 1.0;
    for _ in 0..times {
        session
            .train(&[("picture", &picture)], &[("label", &label)])
            .await
            .unwrap();
    }
}

/// Waits until a task has done more than `cycles` cycles.
async fn wait_until_past(client: &Client, cluster: &str, task: &str, cycles: u64) {
    let begun = Instant::now();
    while client.task(cluster, task).await.unwrap().current_cycle <= cycles {
        assert!(begun.elapsed() < WAIT, "the task did not go on");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Trains the cluster on a dataset (pictures and labels) and waits for the task, which must
/// finish.
async fn train_to_the_end(
    client: &Client,
    cluster: &str,
    name: &str,
    dataset: &str,
) -> hanami_types::tasks::Task {
    let task = queue_training(client, cluster, name, dataset).await;
    finished(client, cluster, &task).await
}

/// Waits for a task, which must finish.
async fn finished(client: &Client, cluster: &str, task: &str) -> hanami_types::tasks::Task {
    let done = client.wait_for_task(cluster, task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    done
}

/// Waits until a file's contents differ from `old` (a checksum).
fn wait_for_change(path: &Path, old: &str) {
    let start = Instant::now();
    while sha256(path) == old {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} did not change",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn clusters_come_back_with_their_networks_and_tasks() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let train = upload(&client, tmp.path(), "train", 2000).await;
    let cluster = client.create_cluster("kept", SEED_TEMPLATE).await.unwrap();
    let empty = client.create_cluster("empty", "").await.unwrap();
    let network = server.data_dir.join("clusters").join(&cluster.uuid);
    assert!(network.is_file(), "a new network is saved at once");
    // A cluster without a network has a marker file: a missing one is a lost one.
    let no_network = server.data_dir.join("clusters").join(&empty.uuid);
    assert_eq!(
        std::fs::read(&no_network).unwrap(),
        hanami_server::NO_NETWORK
    );

    let done = train_to_the_end(&client, &cluster.uuid, "train", &train).await;
    let before_session = sha256(&network);

    // What a direct-IO session trains is saved when the session ends.
    client.set_direct_mode(&cluster.uuid, true).await.unwrap();
    let mut session = client.direct_session(&cluster.uuid).await.unwrap();
    train_seed_sample(&mut session, 20).await;
    session.close().await.unwrap();
    wait_for_change(&network, &before_session);
    client.set_direct_mode(&cluster.uuid, false).await.unwrap();

    let first = checkpoint_bytes(&server, &client, &cluster.uuid, "first").await;
    let tasks = client.tasks(&cluster.uuid).await.unwrap();
    assert_eq!(tasks.body.len(), 2);

    // A clean restart.
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert_eq!(client.cluster(&cluster.uuid).await.unwrap(), cluster);
    assert_eq!(client.cluster(&empty.uuid).await.unwrap(), empty);
    assert_eq!(client.clusters().await.unwrap().body.len(), 2);
    assert_eq!(client.tasks(&cluster.uuid).await.unwrap(), tasks);
    assert_eq!(
        client.task(&cluster.uuid, &done.uuid).await.unwrap(),
        done,
        "the task's record, timestamps included"
    );
    // The same network, bit for bit.
    let second = checkpoint_bytes(&server, &client, &cluster.uuid, "second").await;
    assert!(first == second, "the network changed across the restart");
    // The empty cluster is still empty.
    assert!(matches!(
        client.save_cluster(&empty.uuid, "nothing").await,
        Err(Error::Conflict(_))
    ));

    // A crash right after a task ended loses nothing either: the network is saved before the
    // task is reported finished.
    train_to_the_end(&client, &cluster.uuid, "again", &train).await;
    let third = checkpoint_bytes(&server, &client, &cluster.uuid, "third").await;
    assert!(third != second, "training changed the network");
    let server = server.crash_and_restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let fourth = checkpoint_bytes(&server, &client, &cluster.uuid, "fourth").await;
    assert!(third == fourth, "the network changed across the crash");
    assert_eq!(client.tasks(&cluster.uuid).await.unwrap().body.len(), 6);

    // Deleting a cluster removes its saved network and its tasks for good.
    client.delete_cluster(&cluster.uuid).await.unwrap();
    assert!(!network.exists());
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert!(matches!(
        client.cluster(&cluster.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(client.clusters().await.unwrap().body.len(), 1);

    // A cluster of an older version, which kept networks in memory only, has lost its
    // network: it is removed at start-up (as that version did), the others stay.
    let mut server = server;
    assert!(server.stop());
    let store = Store::open(&server.data_dir.join("hanami.db"))
        .await
        .unwrap();
    let legacy = ResourceRow::new(
        "00000000-0000-4000-8000-000000000000",
        "legacy",
        ADMIN,
        "admin",
        "",
    );
    store.insert_resource(Kind::Cluster, &legacy).await.unwrap();
    store.close().await;
    let server = server.crash_and_restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert!(matches!(
        client.cluster(&legacy.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(client.cluster(&empty.uuid).await.unwrap(), empty);
}

/// The task rows of a cluster as `(uuid, state)`.
async fn states(client: &Client, cluster: &str) -> Vec<(String, String)> {
    client
        .tasks(cluster)
        .await
        .unwrap()
        .body
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Queues `count` train tasks and waits until the first one has made progress.
async fn busy_cluster(client: &Client, dir: &Path, count: usize) -> (String, Vec<String>) {
    let train = upload(client, dir, "long", 20_000).await;
    let cluster = common::seed_cluster(client, "busy").await;
    let mut tasks = Vec::new();
    for i in 0..count {
        tasks.push(queue_training(client, &cluster, &format!("pass_{i}"), &train).await);
    }
    wait_for_progress(client, &cluster, &tasks[0]).await;
    (cluster, tasks)
}

/// The error log's rows of the first page, each whole as text (a task's uuid is among its
/// input values).
async fn error_log_rows(server: &TestServer) -> Vec<String> {
    let log = server
        .admin()
        .await
        .get("error_log?page=0")
        .await
        .expect(200)
        .json();
    log["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect()
}

/// Checks a cluster's tasks after a restart: the ones that finished before the stop stay
/// so; the ones queued after the one that ran at the stop are queued again, keep their queue
/// time and run to their end, with neither note nor error-log entry. The one that ran goes
/// on where it stopped and finishes (after a clean stop), or is aborted with an error-log
/// entry (after a crash); either way its note says so. `before`: the tasks as listed before
/// the stop. Returns the stopped task's note.
async fn check_restarted(
    server: &TestServer,
    client: &Client,
    cluster: &str,
    before: &[hanami_types::tasks::Task],
    crash: bool,
) -> String {
    let listed = states(client, cluster).await;
    assert_eq!(
        listed.iter().map(|t| &t.0).collect::<Vec<_>>(),
        before.iter().map(|t| &t.uuid).collect::<Vec<_>>()
    );
    let mut stopped = None;
    for (i, queued) in before.iter().enumerate() {
        let done = client
            .wait_for_task(cluster, &queued.uuid, WAIT)
            .await
            .unwrap();
        assert_eq!(done.queue_timestamp, queued.queue_timestamp);
        if done.note.is_some() {
            assert!(stopped.is_none(), "two tasks were stopped: {listed:?}");
            stopped = Some((i, done));
        } else {
            assert_eq!(done.state, TaskState::Finished, "{done:?}");
            assert_eq!(done.current_cycle, queued.total_number_of_cycles);
        }
    }
    let (index, task) = stopped.expect("no task has a note");
    assert!(
        index + 1 < before.len(),
        "no task was left queued: {listed:?}"
    );
    let expected = if crash {
        TaskState::Aborted
    } else {
        TaskState::Finished
    };
    assert_eq!(task.state, expected, "{task:?}");
    assert_ne!(task.end_timestamp, "-");
    let entries = error_log_rows(server).await;
    let told = |uuid: &str| entries.iter().filter(|e| e.contains(uuid)).count();
    assert_eq!(told(&task.uuid), usize::from(crash), "{entries:?}");
    for queued in &before[index + 1..] {
        assert_eq!(told(&queued.uuid), 0, "{entries:?}");
    }
    task.note.unwrap_or_default()
}

/// A cluster with three long train tasks, stopped (cleanly, or by a crash) while the first
/// one runs, and started again; checks what [`check_restarted`] checks. Returns the server,
/// a client, the cluster, the stopped task's note and the folder of the uploaded files.
async fn interrupted(crash: bool) -> (TestServer, Client, String, String, tempfile::TempDir) {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, tasks) = busy_cluster(&client, tmp.path(), 3).await;
    let mut before = Vec::new();
    for uuid in &tasks {
        before.push(client.task(&cluster, uuid).await.unwrap());
    }
    let server = if crash {
        server.crash_and_restart()
    } else {
        server.restart_with(|launch| launch.env("RUST_LOG", "info"))
    };
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let note = check_restarted(&server, &client, &cluster, &before, crash).await;
    (server, client, cluster, note, tmp)
}

#[tokio::test]
async fn a_stop_keeps_queued_tasks_and_the_running_one_goes_on() {
    let (server, client, cluster, note, tmp) = interrupted(false).await;
    assert!(
        note.starts_with("a shutdown of the server stopped it after ")
            && note.ends_with(" cycles, and it went on from there at the next start"),
        "{note}"
    );
    // The time the log gives is this start's part, and it says so (logged right after
    // the end is recorded, so perhaps a moment after the client saw it).
    let told = format!(" s (this run began at cycle {} of ", stopped_after(&note));
    server.wait_until_logged(&[&told]);
    let logged = server.logged();
    let line = logged.lines().find(|line| line.contains(&told)).unwrap();
    assert!(line.contains(") finished after "), "{line}");
    let train = upload(&client, tmp.path(), "more", 500).await;
    train_to_the_end(&client, &cluster, "after", &train).await;
}

/// The cycles after which a shutdown stopped a train task, as its note tells.
fn stopped_after(note: &str) -> u64 {
    note.strip_prefix("a shutdown of the server stopped it after ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stop in the note: {note:?}"))
}

/// A train task that a clean stop interrupts goes on where it stopped: it leaves the network
/// that the same training without a stop leaves, bit for bit.
#[tokio::test]
async fn a_train_task_goes_on_after_a_stop_as_if_never_stopped() {
    let (server, client, dataset, cluster) = server_with_cluster("twice", 20_000).await;
    let start = client.save_cluster(&cluster, "start").await.unwrap().uuid;
    client.wait_for_task(&cluster, &start, WAIT).await.unwrap();
    train_to_the_end(&client, &cluster, "whole", &dataset).await;
    let whole = checkpoint_bytes(&server, &client, &cluster, "whole").await;

    let restore = client.restore_cluster(&cluster, &start).await.unwrap();
    client
        .wait_for_task(&cluster, &restore.uuid, WAIT)
        .await
        .unwrap();
    let task = queue_training(&client, &cluster, "stopped", &dataset).await;
    let (server, client) = stop_while_running(server, &client, &cluster, &task).await;
    let done = client.wait_for_task(&cluster, &task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    assert_eq!(done.current_cycle, 20_000);
    // It was stopped part of the way (a task that finished before the stop has no note).
    let cycles = stopped_after(done.note.as_deref().unwrap_or_default());
    assert!(cycles > 0 && cycles < 20_000, "{cycles}");
    let resumed = checkpoint_bytes(&server, &client, &cluster, "resumed").await;
    assert!(
        resumed == whole,
        "the network differs from the one trained without a stop"
    );
}

/// A train task that went on after a clean stop and is then cut off by a crash keeps what it
/// did before the stop (the network saved then), and its note says so.
#[tokio::test]
async fn a_crash_after_a_stop_keeps_the_cycles_before_the_stop() {
    let (server, client, dataset, cluster) = server_with_cluster("twice cut", 40_000).await;
    let task = queue_training(&client, &cluster, "cut twice", &dataset).await;
    let (server, client) = stop_while_running(server, &client, &cluster, &task).await;
    // The network saved at the stop, which the going-on task changes only at its end.
    let network = server.data_dir.join("clusters").join(&cluster);
    let at_stop = sha256(&network);
    // Where the stop left it, as its note tells (its progress goes on at once).
    let noted = client.task(&cluster, &task).await.unwrap().note;
    let kept = stopped_after(noted.as_deref().unwrap_or_default());
    wait_until_past(&client, &cluster, &task, kept).await;
    let server = server.crash_and_restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.task(&cluster, &task).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    assert_eq!(sha256(&network), at_stop);
    let note = done.note.unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "a shutdown of the server stopped it after {kept} of 40000 cycles, and it went on \
             from there at the next start; "
        )) && note.contains(&format!(
            "the cluster's network keeps only its first {kept} cycles, which it did before an \
             earlier stop of the server interrupted it"
        )),
        "{note}"
    );
}

/// The values of a result dataset, as bits.
fn result_values(server: &TestServer, uuid: &str) -> Vec<u32> {
    let file = server.data_dir.join("datasets").join(uuid);
    let reader = hanami_store::dataset::DatasetReader::open(file).unwrap();
    let columns = reader.header().number_of_columns;
    let all = hanami_store::dataset::ColumnRange::new(0, columns);
    let values = reader.load_f32(all).unwrap();
    values.into_iter().map(f32::to_bits).collect()
}

/// The files in the data directory's folder of results so far.
fn partial_results(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.data_dir.join("partial-results"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Rows of the request tasks of [`requests_without_a_stop`].
const REQUEST_ROWS: u64 = 60_000;

/// A server with a trained cluster that answered [`REQUEST_ROWS`] requests from checkpoint
/// `start`, which it has again: the server, a client, the cluster, the dataset of the
/// requests, the result's values and the checkpoint bytes of the network they grew.
async fn requests_without_a_stop() -> (TestServer, Client, String, String, Vec<u32>, Vec<u8>) {
    let (server, client, dataset, cluster) =
        server_with_cluster("answers", REQUEST_ROWS as u32).await;
    let tmp = tempfile::tempdir().unwrap();
    let lessons = upload(&client, tmp.path(), "lessons", 4_000).await;
    train_to_the_end(&client, &cluster, "learn", &lessons).await;
    let start = client.save_cluster(&cluster, "start").await.unwrap().uuid;
    client.wait_for_task(&cluster, &start, WAIT).await.unwrap();
    let whole = queue_request(&client, &cluster, "whole", &dataset).await;
    let done = client.wait_for_task(&cluster, &whole, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished);
    let answers = result_values(&server, &whole);
    // Not one answer for all: a result that could differ.
    let firsts: std::collections::HashSet<&[u32]> = answers.chunks(10).collect();
    assert!(firsts.len() > 1, "every row has the same answer");
    let grown = checkpoint_bytes(&server, &client, &cluster, "grown").await;
    let restore = client.restore_cluster(&cluster, &start).await.unwrap();
    client
        .wait_for_task(&cluster, &restore.uuid, WAIT)
        .await
        .unwrap();
    (server, client, cluster, dataset, answers, grown)
}

/// Checks that request task `task` on `dataset`, which a stop interrupted, finished with the
/// result and the network that [`requests_without_a_stop`] gave without one.
async fn went_on_as_if_never_stopped(
    server: &TestServer,
    client: &Client,
    cluster: &str,
    dataset: &str,
    task: &str,
    answers: &[u32],
    grown: &[u8],
) {
    let done = client.wait_for_task(cluster, task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    assert_eq!(done.current_cycle, REQUEST_ROWS);
    let note = done.note.unwrap_or_default();
    let cycles = stopped_after(&note);
    assert!(cycles > 0 && cycles < REQUEST_ROWS, "{cycles}");
    assert!(
        note.ends_with(" cycles, and it went on from there at the next start"),
        "{note}"
    );
    assert_eq!(
        client.dataset(task).await.unwrap().number_of_rows,
        REQUEST_ROWS
    );
    assert!(
        result_values(server, task) == answers,
        "the result differs from the one without a stop"
    );
    // Its checksum, taken over the result so far and what followed, holds.
    client.check_dataset(dataset, task).await.unwrap();
    let resumed = checkpoint_bytes(server, client, cluster, "resumed").await;
    assert!(
        resumed == grown,
        "the network differs from the one the requests grew without a stop"
    );
    assert!(partial_results(server).is_empty());
}

/// A request task that a clean stop interrupts goes on where it stopped: its result and the
/// network it grew are those of the same requests without a stop, bit for bit.
#[tokio::test]
async fn a_request_task_goes_on_after_a_stop_as_if_never_stopped() {
    let (server, client, cluster, dataset, answers, grown) = requests_without_a_stop().await;
    let task = queue_request(&client, &cluster, "stopped", &dataset).await;
    let (server, client) = stop_while_running(server, &client, &cluster, &task).await;
    went_on_as_if_never_stopped(
        &server, &client, &cluster, &dataset, &task, &answers, &grown,
    )
    .await;
}

/// A crash during a stop, once the stop has recorded a request task to go on (its network so
/// far staged, not yet in place), loses nothing: the next start puts the network in place,
/// and the task goes on as if never stopped.
#[tokio::test]
async fn a_crash_once_a_stop_recorded_a_request_task_loses_nothing() {
    let (server, _, cluster, dataset, answers, grown) = requests_without_a_stop().await;
    let server = server.restart_with(|launch| launch.env(CRASH_AT, "task-end:recorded"));
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = queue_request(&client, &cluster, "stopped", &dataset).await;
    wait_for_progress(&client, &cluster, &task).await;
    server.signal_stop();
    let server = server.crashed_at("task-end:recorded");
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    went_on_as_if_never_stopped(
        &server, &client, &cluster, &dataset, &task, &answers, &grown,
    )
    .await;
}

/// A crash during a stop after a request task's result so far was set aside, before the stop
/// recorded the task to go on, leaves the task aborted and nothing of it behind: the network
/// is the one before the task, and the next start removes the result so far.
#[tokio::test]
async fn a_crash_before_a_stop_recorded_a_request_task_aborts_it() {
    let (server, _, dataset, cluster) = server_with_cluster("set aside", 60_000).await;
    let network = server.data_dir.join("clusters").join(&cluster);
    let before = sha256(&network);
    let server = server.restart_with(|launch| launch.env(CRASH_AT, "request-stop:set-aside"));
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = queue_request(&client, &cluster, "set aside", &dataset).await;
    wait_for_progress(&client, &cluster, &task).await;
    server.signal_stop();
    let server = server.crashed_at("request-stop:set-aside");
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.task(&cluster, &task).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    assert!(
        note.contains("nothing it did is kept") && note.ends_with("(0 of its 60000 cycles kept)"),
        "{note}"
    );
    assert_eq!(sha256(&network), before);
    assert!(partial_results(&server).is_empty());
    assert!(matches!(
        client.dataset(&task).await,
        Err(Error::NotFound(_))
    ));
}

/// A stop that cuts short a task end's wait for a database that another program locks
/// leaves nothing of the task, as the next start then reports: the network saved at the
/// stop was the one with the task's training, while the report said its cycles were lost.
#[tokio::test]
async fn a_stop_during_a_task_end_waiting_for_a_locked_database_leaves_nothing_of_it() {
    let (server, _, dataset, cluster) = server_with_cluster("cut short", 500).await;
    let network = server.data_dir.join("clusters").join(&cluster);
    let before = sha256(&network);
    let mut server = server.restart_with(|launch| launch.pause_at("task-end:before-record", 3000));
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = queue_training(&client, &cluster, "cut short", &dataset).await;
    common::until_paused(&server, "task-end:before-record", 1).await;
    let lock = common::DatabaseLock::take(&server.data_dir).await;
    // Its first try waits the busy timeout (10 s) before it fails.
    let waits = "the task's end waits until it can be recorded";
    common::until_logged(&server, waits, Duration::from_secs(25)).await;
    // The stop waits for the try under way, which fails too.
    assert!(server.stop_within(Duration::from_secs(30)));
    lock.release().await;

    assert_eq!(sha256(&network), before);
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.task(&cluster, &task).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    assert!(note.contains("nothing it did is kept"), "{note}");
}

/// A task whose end the database refused while the server went on, and saved the network
/// that kept what the task did with a later task, is not reported at the next start as
/// having left nothing behind (it said so, while the network kept its training): the
/// database has it active (its start was recorded), and the next start says that the
/// network may keep what it did.
#[tokio::test]
async fn a_task_whose_end_was_refused_is_not_reported_as_lost_once_its_network_was_saved() {
    let (server, client, dataset, cluster) = server_with_cluster("refused end", 50).await;
    // Queued while the cluster waits in DIRECT mode, so that its uuid is known before it runs.
    client.set_direct_mode(&cluster, true).await.unwrap();
    let first = queue_training(&client, &cluster, "refused end", &dataset).await;
    common::change_database(
        &server.data_dir,
        &format!(
            "CREATE TRIGGER refuse_end BEFORE UPDATE OF state ON tasks \
             WHEN NEW.uuid = '{first}' AND NEW.state != 'active' \
             BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END"
        ),
        &[],
    )
    .await;
    client.set_direct_mode(&cluster, false).await.unwrap();
    let refused = client.wait_for_task(&cluster, &first, WAIT).await.unwrap();
    assert_eq!(refused.state, TaskState::Aborted, "{refused:?}");
    // Timestamps count whole seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = queue_training(&client, &cluster, "saved after", &dataset).await;
    let done = client.wait_for_task(&cluster, &second, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    // Its end is still refused at the stop (it is tried again there).
    let mut server = server;
    assert!(server.stop());
    common::change_database(&server.data_dir, "DROP TRIGGER refuse_end", &[]).await;

    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let reported = client.task(&cluster, &first).await.unwrap();
    assert_eq!(reported.state, TaskState::Aborted, "{reported:?}");
    let note = reported.note.unwrap_or_default();
    assert!(
        note.contains(
            "the cluster's network was saved after the task started, and may keep \
             what it did"
        ),
        "{note}"
    );
    assert!(!note.contains("nothing it did is kept"), "{note}");
}

/// A crash after a task did its work, before its end was recorded, leaves nothing of it:
/// the task is aborted, the network is the one before it, and its staged network is gone.
#[tokio::test]
async fn a_crash_before_a_task_end_is_recorded_leaves_nothing_of_it() {
    let (server, _, dataset, cluster) = server_with_cluster("unrecorded", 500).await;
    let folder = server.data_dir.join("clusters");
    let before = sha256(&folder.join(&cluster));
    let server = server.restart_with(|launch| launch.env(CRASH_AT, "task-end:before-record"));
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = queue_training(&client, &cluster, "unrecorded", &dataset).await;
    let server = server.crashed_at("task-end:before-record");
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.task(&cluster, &task).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    assert!(note.contains("nothing it did is kept"), "{note}");
    assert_eq!(sha256(&folder.join(&cluster)), before);
    let files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, [cluster]);
}

/// A task whose dataset was deleted while it ran cannot go on after a stop (the next start
/// could not read the rest): the stop aborts it and says why, and keeps no result so far.
#[tokio::test]
async fn a_task_whose_dataset_was_deleted_while_it_ran_does_not_go_on() {
    dataset_deleted_while_running(false).await;
}

/// The same, with the stop coming between the deletion's removal of the dataset's row and
/// that of its file (the row removed from outside: the file stays).
#[tokio::test]
async fn a_task_whose_dataset_row_was_deleted_while_it_ran_does_not_go_on() {
    dataset_deleted_while_running(true).await;
}

/// A request task whose dataset is deleted while it runs (only its row, if `row_only`),
/// stopped then: checks that it is aborted, saying why, with no result so far kept.
async fn dataset_deleted_while_running(row_only: bool) {
    let (server, client, dataset, cluster) = server_with_cluster("deleted", 60_000).await;
    let task = queue_request(&client, &cluster, "deleted", &dataset).await;
    wait_for_progress(&client, &cluster, &task).await;
    if row_only {
        let sql = "DELETE FROM datasets WHERE uuid = ?";
        common::change_database(&server.data_dir, sql, &[&dataset]).await;
    } else {
        client.delete_dataset(&dataset).await.unwrap();
    }
    let (server, client) = stop_while_running(server, &client, &cluster, &task).await;
    let done = client.task(&cluster, &task).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    assert!(
        note.contains(&format!(
            "dataset '{dataset}', which the task reads, was deleted while it ran, so it cannot \
             go on at the next start: the server shut down before the task ended"
        )),
        "{note}"
    );
    assert!(partial_results(&server).is_empty());
}

/// A request task that a stop interrupts before it answered a row has nothing to set aside:
/// the log says that it runs at the next start (not that it goes on from cycle 0, and then
/// that its result so far went unused), and it does, whole.
#[tokio::test]
async fn a_request_task_stopped_before_its_first_row_runs_at_the_next_start() {
    let (mut server, _, cluster, dataset, answers, _) = requests_without_a_stop().await;
    // Waited for longer than `restart` does: the suite's other servers keep the machine
    // busy (as below, where the stop also waits out the pause).
    assert!(server.stop_within(Duration::from_secs(60)));
    let server = server.restart_with(|launch| {
        launch
            .env("HANAMI_PAUSE_AT", "request:opened=2000")
            .env("RUST_LOG", "info")
    });
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = queue_request(&client, &cluster, "unbegun", &dataset).await;
    common::until_paused(&server, "request:opened", 1).await;
    server.signal_stop();
    let stopped = format!(
        "({task}) stopped by the shutdown before its first cycle; it runs at the next start"
    );
    server.wait_until_logged(&[&stopped]);
    let mut server = server;
    assert!(server.wait_for_exit(Duration::from_secs(60)));
    let server = server.restart_with(|launch| launch.env("RUST_LOG", "info"));
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.wait_for_task(&cluster, &task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    assert!(
        result_values(&server, &task) == answers,
        "the result differs"
    );
    client.check_dataset(&dataset, &task).await.unwrap();
    assert!(
        !server
            .logged()
            .contains("no queued request task goes on with it"),
        "{}",
        server.logged()
    );
}

/// A request task that a stop interrupts twice goes on the second time from the result so
/// far that the second stop set aside (checked against that stop's checksum), as if never
/// stopped.
#[tokio::test]
async fn a_request_task_stopped_twice_goes_on_as_if_never_stopped() {
    let (server, client, cluster, dataset, answers, grown) = requests_without_a_stop().await;
    let task = queue_request(&client, &cluster, "stopped twice", &dataset).await;
    let (server, client) = stop_while_running(server, &client, &cluster, &task).await;
    let noted = client.task(&cluster, &task).await.unwrap().note;
    let kept = stopped_after(noted.as_deref().unwrap_or_default());
    wait_until_past(&client, &cluster, &task, kept).await;
    let (server, client) = stop_while_running(server, &client, &cluster, &task).await;
    let noted = client.task(&cluster, &task).await.unwrap().note;
    // The note tells the second stop, which came later.
    assert!(
        stopped_after(noted.as_deref().unwrap_or_default()) > kept,
        "{noted:?}"
    );
    went_on_as_if_never_stopped(
        &server, &client, &cluster, &dataset, &task, &answers, &grown,
    )
    .await;
}

/// A request task whose result so far was damaged while the server was down (cut short, or
/// a value changed, which only the checksum the stop took tells) cannot go on: it is
/// aborted, its note says that it could not go on and why, and the file is removed.
#[tokio::test]
async fn a_damaged_result_so_far_ends_its_task() {
    result_so_far_damaged(false, "corrupt dataset file: ").await;
}

#[tokio::test]
async fn a_changed_result_so_far_ends_its_task() {
    result_so_far_damaged(true, "its checksum xxh3:").await;
}

/// [`a_damaged_result_so_far_ends_its_task`]: the result so far `changed` in a value, or
/// cut short; the note tells `why`.
async fn result_so_far_damaged(changed: bool, why: &str) {
    let (mut server, client, dataset, cluster) = server_with_cluster("damaged", 60_000).await;
    let task = queue_request(&client, &cluster, "damaged", &dataset).await;
    wait_for_progress(&client, &cluster, &task).await;
    assert!(server.stop());
    let partial = server.data_dir.join("partial-results").join(&task);
    if changed {
        change_last_value(&partial);
    } else {
        let len = std::fs::metadata(&partial).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&partial);
        file.unwrap().set_len(len - 1).unwrap();
    }
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.wait_for_task(&cluster, &task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    let stopped = stopped_after(&note);
    assert!(
        note.contains(&format!(
            "stopped it after {stopped} of 60000 cycles, and it could not go on from there at \
             the next start; cannot go on with the result so far"
        )) && note.contains(why),
        "{note}"
    );
    // What to do, and no path of the server's (the log has it).
    assert!(
        note.contains("(run the task again for its whole result)")
            && !note.contains(&*server.data_dir.to_string_lossy()),
        "{note}"
    );
    server.wait_until_logged(&[&format!(
        "cannot go on with the result so far in {}",
        partial.display()
    )]);
    assert!(partial_results(&server).is_empty());
}

/// A request task that went on after a clean stop and is then cut off by a crash is
/// aborted; the next start removes its result so far.
#[tokio::test]
async fn a_crash_after_a_stop_removes_the_result_so_far() {
    let (server, client, dataset, cluster) = server_with_cluster("answers cut", 60_000).await;
    let task = queue_request(&client, &cluster, "cut short", &dataset).await;
    let (server, client) = stop_while_running(server, &client, &cluster, &task).await;
    let noted = client.task(&cluster, &task).await.unwrap().note;
    let kept = stopped_after(noted.as_deref().unwrap_or_default());
    wait_until_past(&client, &cluster, &task, kept).await;
    // Written on where it was set aside.
    assert_eq!(partial_results(&server), std::slice::from_ref(&task));
    let server = server.crash_and_restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.task(&cluster, &task).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    assert!(
        note.contains(&format!(
            "the cluster's network keeps only its first {kept} cycles, which it did before an \
             earlier stop of the server interrupted it: what it did after it went on is lost, \
             and no result of it was registered"
        )),
        "{note}"
    );
    assert!(partial_results(&server).is_empty());
    assert!(matches!(
        client.dataset(&task).await,
        Err(Error::NotFound(_))
    ));
}

/// A clean stop stops running tasks at once, also while it waits for direct-IO clients to
/// answer their sessions' close (they had seconds to run on, and finished instead of going
/// on at the next start).
#[tokio::test]
async fn a_stop_stops_tasks_before_it_closes_direct_io_sessions() {
    let (server, client, dataset, direct) = server_with_cluster("direct", 60_000).await;
    client.set_direct_mode(&direct, true).await.unwrap();
    // Open, and not read from while the server stops: its close is not answered.
    let _session = client.direct_session(&direct).await.unwrap();
    let cluster = common::seed_cluster(&client, "busy").await;
    let task = queue_training(&client, &cluster, "stopped", &dataset).await;
    wait_for_progress(&client, &cluster, &task).await;
    let before_stop = client.task(&cluster, &task).await.unwrap().current_cycle;
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.wait_for_task(&cluster, &task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    // Stopped within moments of the signal, not once the session had closed (seconds of
    // training later; a 60,000-row pass may even end in that time).
    let stopped = stopped_after(done.note.as_deref().unwrap_or_default());
    assert!(
        stopped - before_stop < 10_000,
        "the task ran on during the stop: {before_stop} cycles before it, {stopped} at it"
    );
}

#[tokio::test]
async fn a_crash_keeps_queued_tasks_and_aborts_the_running_one() {
    let (_server, client, cluster, note, _tmp) = interrupted(true).await;
    assert!(
        note.contains("active when the server stopped, and its end was not")
            && note.contains("what a train or request task learned is lost"),
        "{note}"
    );
    assert!(client.cluster(&cluster).await.is_ok());
}

/// Queues a task of every kind on a cluster in DIRECT mode (where they wait), stops the
/// server (cleanly or by a crash) and starts it again: the cluster comes back in TASK mode,
/// and its tasks run, each with what it was queued to do, except a restore whose checkpoint
/// was deleted while it waited (its file went with the stop), which is aborted saying so.
async fn queued_tasks_come_back(crash: bool) {
    let (server, client, dataset, cluster) = server_with_cluster("waits", 300).await;
    let kept = client
        .save_cluster(&cluster, "untrained")
        .await
        .unwrap()
        .uuid;
    client.wait_for_task(&cluster, &kept, WAIT).await.unwrap();
    let untrained = std::fs::read(server.data_dir.join("checkpoints").join(&kept)).unwrap();
    let doomed = client.save_cluster(&cluster, "doomed").await.unwrap().uuid;
    client.wait_for_task(&cluster, &doomed, WAIT).await.unwrap();
    client.set_direct_mode(&cluster, true).await.unwrap();
    let pair = [("picture", dataset.as_str())];
    let train = client
        .train("train", &cluster, &pair, &[("label", &dataset)])
        .await
        .unwrap();
    // Aborted at the start, among the others.
    let lost = client.restore_cluster(&cluster, &doomed).await.unwrap();
    client.delete_checkpoint(&doomed).await.unwrap();
    let request = client
        .request("request", &cluster, &pair, ("label", "answers"))
        .await
        .unwrap();
    let save = client.save_cluster(&cluster, "trained").await.unwrap();
    let restore = client.restore_cluster(&cluster, &kept).await.unwrap();
    let uuids = [
        &train.uuid,
        &request.uuid,
        &save.uuid,
        &restore.uuid,
        &lost.uuid,
    ];
    let mut before = Vec::new();
    for uuid in uuids {
        let task = client.task(&cluster, uuid).await.unwrap();
        assert_eq!(task.state, TaskState::Queued);
        before.push(task);
    }
    let listed = states(&client, &cluster).await;

    let server = if crash {
        server.crash_and_restart()
    } else {
        server.restart()
    };
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let mut after = Vec::new();
    for uuid in uuids {
        after.push(client.wait_for_task(&cluster, uuid, WAIT).await.unwrap());
    }
    // Listed in the order they were queued.
    let uuids_of = |list: Vec<(String, String)>| list.into_iter().map(|t| t.0).collect::<Vec<_>>();
    assert_eq!(uuids_of(states(&client, &cluster).await), uuids_of(listed));
    for (task, queued) in after[..4].iter().zip(&before) {
        assert_eq!(task.state, TaskState::Finished, "{task:?}");
        assert_eq!(task.queue_timestamp, queued.queue_timestamp);
        assert_eq!(task.current_cycle, queued.total_number_of_cycles);
    }
    assert_eq!(after[0].current_cycle, 300);
    // The request wrote its result; the save holds the trained network, and the restore
    // brought back the untrained one.
    assert_eq!(
        client.dataset(&request.uuid).await.unwrap().number_of_rows,
        300
    );
    let trained = std::fs::read(server.data_dir.join("checkpoints").join(&save.uuid)).unwrap();
    assert!(
        trained != untrained,
        "the training did not run before the save"
    );
    let now = checkpoint_bytes(&server, &client, &cluster, "restored").await;
    assert!(now == untrained, "the restore did not run");
    assert_eq!(after[4].state, TaskState::Aborted);
    let note = after[4].note.clone().unwrap_or_default();
    assert!(
        note.contains(&format!(
            "was queued when the server stopped and cannot be queued again: checkpoint \
             '{doomed}' was deleted after the restore was queued"
        )),
        "{note}"
    );
    assert!(error_log_text(&server).await.contains(&lost.uuid));
    // Back in TASK mode, as every cluster starts.
    client.set_direct_mode(&cluster, true).await.unwrap();
}

/// Tasks queued again at a start keep their turns over all clusters: with one task slot,
/// each cluster's task runs in the order the tasks were queued before the stop (the
/// clusters asked for slots in an order the runtime chose).
#[tokio::test]
async fn queued_tasks_keep_their_turns_over_clusters() {
    const CLUSTERS: usize = 16;
    let config = tempfile::tempdir().unwrap();
    let (launch_one, _) = common::launch_with_config(config.path(), "max_running_tasks = 1\n");
    let mut server = launch_one.start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "data", 200).await;
    for turn in 0..CLUSTERS {
        let cluster = common::seed_cluster(&client, &format!("cluster {turn}")).await;
        // Waits in DIRECT mode, until the restart brings the cluster back in TASK mode.
        client.set_direct_mode(&cluster, true).await.unwrap();
        queue_training(&client, &cluster, &format!("turn {turn:02}"), &dataset).await;
    }
    assert!(server.stop());
    let (launch_again, _) = common::launch_with_config(config.path(), "max_running_tasks = 1\n");
    let server = launch_again
        .data_dir(&server.data_dir)
        .env("RUST_LOG", "info")
        .start();
    let ends: Vec<String> = (0..CLUSTERS)
        .map(|turn| format!("train task 'turn {turn:02}'"))
        .collect();
    let ended: Vec<&str> = ends.iter().map(String::as_str).collect();
    server.wait_until_logged(&ended);
    let log = server.logged();
    let mut order: Vec<&String> = ends.iter().collect();
    order.sort_by_key(|end| log.find(end.as_str()));
    assert_eq!(order, ends.iter().collect::<Vec<_>>(), "{log}");
}

#[tokio::test]
async fn queued_tasks_of_every_kind_run_after_a_stop() {
    queued_tasks_come_back(false).await;
}

#[tokio::test]
async fn queued_tasks_of_every_kind_run_after_a_crash() {
    queued_tasks_come_back(true).await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::seed_cluster(&client, "kept").await;
    let Err(stderr) = launch().data_dir(&server.data_dir).try_start() else {
        panic!("a second server started on the same data directory");
    };
    assert!(
        stderr.contains(&format!(
            "is in use by another hanami server (it holds the lock on {}): stop that server, \
             or give this one another data directory (--data-dir, HANAMI_DATA_DIR, data_dir)",
            server.data_dir.join("hanami.lock").display()
        )),
        "{stderr}"
    );
    // The first one goes on undisturbed, and its successor starts once it has stopped.
    assert!(client.cluster(&cluster).await.is_ok());
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert!(client.cluster(&cluster).await.is_ok());
}

/// A lost database does not take the files with it: the server refuses to start next to
/// dataset, checkpoint and network files it cannot know, and files that no row references
/// are set aside, not deleted.
#[tokio::test]
async fn a_lost_database_keeps_the_files() {
    let mut server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "kept", 20).await;
    let cluster = common::seed_cluster(&client, "kept").await;
    // A file that no row references (say, made after the backup the database came from).
    let stray = server.data_dir.join("datasets").join("stray-file");
    std::fs::write(&stray, "data").unwrap();
    // A folder too (as a checkpoint's file that was replaced by one, then deleted).
    let stray_folder = server.data_dir.join("checkpoints").join("stray-folder");
    std::fs::create_dir(&stray_folder).unwrap();
    std::fs::write(stray_folder.join("inside"), "kept").unwrap();
    assert!(server.stop());
    let data = server.data_dir.clone();
    let moved = data.join("hanami-moved.db");
    std::fs::rename(data.join("hanami.db"), &moved).unwrap();
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started without its database next to its files");
    };
    assert!(stderr.contains("is missing or empty"), "{stderr}");
    assert!(data.join("datasets").join(&dataset).exists());
    assert!(data.join("clusters").join(&cluster).exists());
    std::fs::write(data.join("hanami.db"), "").unwrap();
    assert!(
        launch().data_dir(&data).try_start().is_err(),
        "started on an empty database"
    );
    // A folder in its place is named as such (SQLite only said it could not open it).
    std::fs::remove_file(data.join("hanami.db")).unwrap();
    std::fs::create_dir(data.join("hanami.db")).unwrap();
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started with a folder for its database");
    };
    assert!(stderr.contains("hanami.db is not a file"), "{stderr}");
    std::fs::remove_dir(data.join("hanami.db")).unwrap();
    // The database back: everything is there, the stray file set aside, and the
    // half-written files of saves that a crash interrupted removed (they piled up in
    // `unreferenced/`).
    std::fs::rename(&moved, data.join("hanami.db")).unwrap();
    let half_written = [
        data.join("clusters").join(format!("{cluster}.partial")),
        data.join("checkpoints")
            .join("1b4e28ba-2fa1-11d2-883f-0016d3cca427.partial"),
    ];
    let half_written = [
        half_written[0].clone(),
        half_written[1].clone(),
        // A dataset writer's temporary file.
        data.join("datasets")
            .join(format!(".{dataset}.1234.1.hanami-tmp")),
    ];
    for file in &half_written {
        std::fs::write(file, "half").unwrap();
    }
    let server = launch().data_dir(&data).env("RUST_LOG", "info").start();
    for file in &half_written {
        assert!(!file.exists(), "{}", file.display());
    }
    // Each removal is logged.
    server.wait_until_logged(&[
        "removed 1 half-written temporary file(s) from",
        "a save that a crash interrupted",
    ]);
    assert!(!data.join("unreferenced").join("clusters").exists());
    // The folder is set aside with what it holds.
    assert!(!stray_folder.exists());
    let folder_aside = data.join("unreferenced").join("checkpoints");
    assert_eq!(
        std::fs::read_to_string(folder_aside.join("stray-folder").join("inside")).unwrap(),
        "kept"
    );
    server.wait_until_logged(&["stray-folder", "it is not a regular file"]);
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert_eq!(client.dataset(&dataset).await.unwrap().number_of_rows, 20);
    assert!(client.cluster(&cluster).await.is_ok());
    assert!(!stray.exists());
    let aside = data
        .join("unreferenced")
        .join("datasets")
        .join("stray-file");
    assert_eq!(std::fs::read_to_string(aside).unwrap(), "data");
}

/// A dataset of 20 generated images, a cluster and a checkpoint of it, all named `name`;
/// their uuids.
async fn dataset_cluster_and_checkpoint(client: &Client, name: &str) -> (String, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), name, 20);
    let dataset = client
        .upload_mnist(name, &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(client, name).await;
    let save = client.save_cluster(&cluster, name).await.unwrap().uuid;
    client
        .wait_for_task(&cluster, &save, Duration::from_secs(60))
        .await
        .unwrap();
    (dataset, cluster, save)
}

/// A crash after a new dataset's or cluster's file was written, before its row was
/// registered (nobody was told of it), leaves nothing behind: the next start removes the
/// file instead of piling it up in `unreferenced/`.
#[tokio::test]
async fn a_start_removes_the_files_of_creations_a_crash_cut_short() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("table.csv");
    std::fs::write(&csv, "x,y\n1,0\n2,1\n").unwrap();
    let mut server = TestServer::start();
    for (point, folder, kind) in [
        ("upload:converted", "datasets", "dataset"),
        ("cluster-create:saved", "clusters", "cluster"),
    ] {
        server = server.restart_with(|launch| launch.env(CRASH_AT, point));
        let client = sdk(&server, ADMIN, ADMIN_PW).await;
        let cut_short = if kind == "dataset" {
            client.upload_csv("cut short", &csv).await.map(|_| ())
        } else {
            client
                .create_cluster("cut short", SEED_TEMPLATE)
                .await
                .map(|_| ())
        };
        assert!(cut_short.is_err());
        // The crash point comes after the file was written: without the note it would be
        // set aside.
        server = server.crashed_at(point);
        let data = &server.data_dir;
        assert_eq!(std::fs::read_dir(data.join(folder)).unwrap().count(), 0);
        assert!(!data.join("unreferenced").exists());
    }
    // The notes are forgotten with the files: creations after the start work as before.
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert!(client.upload_csv("table", &csv).await.is_ok());
    common::seed_cluster(&client, "cluster").await;
    let server = server.restart();
    assert!(!server.data_dir.join("unreferenced").exists());
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert_eq!(client.datasets().await.unwrap().body.len(), 1);
    assert_eq!(client.clusters().await.unwrap().body.len(), 1);
}

/// What a crash left between deleting a row and its file is removed at the next start; the
/// products of a task that had not ended go to `unreferenced/` (the database may be older
/// than they), as files of unknown origin do.
#[tokio::test]
async fn a_start_removes_what_deletions_left_and_sets_unended_products_aside() {
    let mut server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let (dataset, kept, save) = dataset_cluster_and_checkpoint(&client, "left").await;
    let deleted = common::seed_cluster(&client, "deleted").await;
    assert!(server.stop());
    let data = server.data_dir.clone();
    // The rows go as a deletion takes them, and the crash comes before their files go.
    let store = Store::open(&data.join("hanami.db")).await.unwrap();
    let all = hanami_types::scope::Scope::All;
    for (kind, uuid) in [
        (Kind::Dataset, &dataset),
        (Kind::Checkpoint, &save),
        (Kind::Cluster, &deleted),
    ] {
        store
            .delete_resource(kind, &all, uuid)
            .await
            .unwrap()
            .unwrap();
    }
    // A request task and a save that had written their files but not ended.
    let unended = "0b6f7a9e-1c7d-4f51-9a43-5d2f1e3c4b5a";
    store
        .insert_task(
            &hanami_store::tasks::TaskRow {
                uuid: unended.into(),
                cluster_uuid: kept.clone(),
                name: "unended".into(),
                total: 20,
                current: 20,
                state: TaskState::Active,
                queued_at: "2026-11-30 10:00:00".into(),
                started_at: Some("2026-11-30 10:00:00".into()),
                ended_at: None,
                note: None,
            },
            None,
        )
        .await
        .unwrap();
    store.close().await;
    let left = [
        data.join("datasets").join(&dataset),
        data.join("checkpoints").join(&save),
        data.join("clusters").join(&deleted),
        data.join("datasets").join(unended),
        data.join("checkpoints").join(unended),
    ];
    for file in &left[3..] {
        std::fs::write(file, "written").unwrap();
    }
    for file in &left {
        assert!(file.exists(), "{}", file.display());
    }
    let stray = data.join("datasets").join("stray-file");
    std::fs::write(&stray, "data").unwrap();

    let mut server = launch().data_dir(&data).start();
    for file in &left {
        assert!(!file.exists(), "{}", file.display());
    }
    let aside = |folder: &str| {
        let mut names: Vec<_> = std::fs::read_dir(data.join("unreferenced").join(folder))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(aside("datasets"), [unended, "stray-file"]);
    assert_eq!(aside("checkpoints"), [unended]);
    assert!(!data.join("unreferenced").join("clusters").exists());
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert!(client.cluster(&kept).await.is_ok());
    let task = client.task(&kept, unended).await.unwrap();
    assert_eq!(task.state, TaskState::Aborted);
    // The notes of the deleted files are gone with them.
    assert!(server.stop());
    assert_no_notes_of_removed_files(&data).await;
}

/// Asserts that the database in `data` (its server stopped) notes no removed files.
async fn assert_no_notes_of_removed_files(data: &Path) {
    let store = Store::open(&data.join("hanami.db")).await.unwrap();
    for kind in [Kind::Dataset, Kind::Checkpoint, Kind::Cluster] {
        assert!(
            store
                .noted_files(FileNote::Removed, kind)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// Deleting through the API removes the file and forgets its note at once.
#[tokio::test]
async fn deletions_leave_no_notes_of_removed_files() {
    let mut server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let (dataset, cluster, save) = dataset_cluster_and_checkpoint(&client, "gone").await;
    client.delete_dataset(&dataset).await.unwrap();
    client.delete_checkpoint(&save).await.unwrap();
    client.delete_cluster(&cluster).await.unwrap();
    assert!(server.stop());
    let data = server.data_dir.clone();
    for folder in ["datasets", "checkpoints", "clusters"] {
        assert_eq!(std::fs::read_dir(data.join(folder)).unwrap().count(), 0);
    }
    assert_no_notes_of_removed_files(&data).await;
}

/// The first page of the error log, as text.
async fn error_log_text(server: &TestServer) -> String {
    let admin = server.admin().await;
    admin.get("error_log?page=0").await.expect(200).json()["body"].to_string()
}

/// A saved network removed outside the server is reported once at the next start (it was
/// taken for "no network yet" without a word), and so is one emptied outside the server
/// (kept aside); the clusters stay, without a network.
#[tokio::test]
async fn a_lost_network_file_is_reported() {
    let mut server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let lost = common::seed_cluster(&client, "lost").await;
    let zeroed = common::seed_cluster(&client, "zeroed").await;
    let folder = common::seed_cluster(&client, "folder").await;
    let empty = client.create_cluster("empty", "").await.unwrap().uuid;
    let interrupted = common::seed_cluster(&client, "interrupted").await;
    assert!(server.stop());
    let file = server.data_dir.join("clusters").join(&lost);
    std::fs::remove_file(&file).unwrap();
    // Set aside as damaged by a start that a crash stopped before it said so.
    let damaged = server.data_dir.join("unreferenced").join("clusters");
    std::fs::create_dir_all(&damaged).unwrap();
    // (An older copy of the same cluster's network is there already.)
    std::fs::write(damaged.join(format!("{interrupted}.damaged")), "older").unwrap();
    let damaged = damaged.join(format!("{interrupted}.damaged.1"));
    std::fs::rename(
        server.data_dir.join("clusters").join(&interrupted),
        &damaged,
    )
    .unwrap();
    let zeroed_file = server.data_dir.join("clusters").join(&zeroed);
    std::fs::write(&zeroed_file, "").unwrap();
    // A folder in place of a network file does not stop the server either.
    let folder_file = server.data_dir.join("clusters").join(&folder);
    std::fs::remove_file(&folder_file).unwrap();
    std::fs::create_dir(&folder_file).unwrap();
    std::fs::write(folder_file.join("inside"), "kept").unwrap();
    let server = launch().data_dir(&server.data_dir).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let log = error_log_text(&server).await;
    assert!(
        log.contains("the saved network of cluster 'lost' is missing from the data directory"),
        "{log}"
    );
    assert!(log.contains(&lost), "{log}");
    assert!(!log.contains(&empty), "{log}");
    assert!(
        log.contains(&format!(
            "the saved network of cluster 'interrupted' is missing from the data directory; an \
             earlier start kept a damaged copy as {}",
            damaged.display()
        )),
        "{log}"
    );
    let aside = server
        .data_dir
        .join("unreferenced")
        .join("clusters")
        .join(format!("{zeroed}.damaged"));
    assert!(
        log.contains("the saved network of cluster 'zeroed' cannot be restored"),
        "{log}"
    );
    assert!(log.contains(&aside.display().to_string()), "{log}");
    assert_eq!(std::fs::metadata(&aside).unwrap().len(), 0);
    assert!(
        log.contains("the saved network of cluster 'folder' is not a regular file"),
        "{log}"
    );
    let folder_aside = aside.with_file_name(format!("{folder}.damaged"));
    assert_eq!(
        std::fs::read_to_string(folder_aside.join("inside")).unwrap(),
        "kept"
    );
    assert!(matches!(
        client.save_cluster(&folder, "nothing").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        client.save_cluster(&lost, "nothing").await,
        Err(Error::Conflict(_))
    ));
    // Said once.
    let server = server.restart();
    let log = error_log_text(&server).await;
    assert_eq!(log.matches("is missing").count(), 2, "{log}");
    assert_eq!(log.matches("cannot be restored").count(), 1, "{log}");
    // A checkpoint restored into it brings a network back.
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let donor = common::seed_cluster(&client, "donor").await;
    let checkpoint = client.save_cluster(&donor, "donor_net").await.unwrap();
    let saved = client
        .wait_for_task(&donor, &checkpoint.uuid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(saved.state, TaskState::Finished);
    let restore = client
        .restore_cluster(&lost, &checkpoint.uuid)
        .await
        .unwrap();
    let restored = client
        .wait_for_task(&lost, &restore.uuid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(restored.state, TaskState::Finished);
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
}

/// A direct-IO session's close returns once the server has saved what the session trained
/// (the server answers the close frame after the save): a crash right after the close loses
/// nothing (the close returned before the save, so a crash then lost the training).
#[tokio::test]
async fn a_closed_direct_io_session_has_saved_its_training() {
    let point = "direct-session:saving";
    let server = common::launch().pause_at(point, 1000).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = client
        .create_cluster("closing", SEED_TEMPLATE)
        .await
        .unwrap()
        .uuid;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let file = server.data_dir.join("clusters").join(&cluster);
    let untrained = std::fs::read(&file).unwrap();
    let mut session = client.direct_session(&cluster).await.unwrap();
    train_seed_sample(&mut session, 5).await;
    session.close().await.unwrap();
    assert_eq!(common::pauses(&server, point), 1);
    assert!(std::fs::read(&file).unwrap() != untrained);
    drop(client);
    let server = server.crash_and_restart();
    let log = error_log_text(&server).await;
    assert!(!log.contains("what its network learned since"), "{log}");

    // A session that the server had closed for a reason of its own says so at the close.
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut session = client.direct_session(&cluster).await.unwrap();
    train_seed_sample(&mut session, 1).await;
    client.set_direct_mode(&cluster, false).await.unwrap();
    let closed = session.close().await;
    assert!(
        matches!(&closed, Err(Error::SessionClosed(m)) if m.contains("left DIRECT mode")),
        "{closed:?}"
    );

    // A server that crashes before it has saved gives no answer: the close says what that
    // may have cost (it returned Ok).
    drop(client);
    let server = server.restart_with(|launch| launch.env(CRASH_AT, point));
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut session = client.direct_session(&cluster).await.unwrap();
    train_seed_sample(&mut session, 1).await;
    let closed = session.close().await;
    assert!(
        matches!(&closed, Err(Error::WebSocket(m)) if m.contains("may not be saved")),
        "{closed:?}"
    );
    server.crashed_at(point);
}

/// What direct IO trained and a crash lost is reported at the next start, once; a session
/// that ended (and so saved its network) leaves nothing to report, and one whose save was
/// in place when the crash came before the server forgot its note is told as such (it was
/// reported lost); a data directory copied meanwhile changes nothing of that.
#[tokio::test]
async fn direct_io_training_lost_in_a_crash_is_reported() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let mut uuids = std::collections::HashMap::new();
    for (name, end) in [
        ("closed", Some(false)),
        ("switched_back", Some(true)),
        ("left_open", None),
        ("copied_at_crash", None),
        ("saved_at_crash", None),
    ] {
        let cluster = client.create_cluster(name, SEED_TEMPLATE).await.unwrap();
        client.set_direct_mode(&cluster.uuid, true).await.unwrap();
        let mut session = client.direct_session(&cluster.uuid).await.unwrap();
        train_seed_sample(&mut session, 5).await;
        match end {
            Some(false) => session.close().await.unwrap(),
            // Leaving DIRECT mode ends the session, which saves the network.
            Some(true) => {
                client.set_direct_mode(&cluster.uuid, false).await.unwrap();
                std::mem::forget(session);
            }
            // Held open across the crash.
            None => std::mem::forget(session),
        }
        uuids.insert(name, cluster.uuid);
    }
    // The ended sessions' saves and notes take a moment after the close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let file = |name: &str| server.data_dir.join("clusters").join(&uuids[name]);
    // A copy of the file in its place (as a copied data directory has): the same network.
    let copy = file("copied_at_crash").with_extension("copy");
    std::fs::copy(file("copied_at_crash"), &copy).unwrap();
    std::fs::rename(&copy, file("copied_at_crash")).unwrap();
    // As a save that the crash caught after its rename: another network is in place.
    std::fs::copy(file("closed"), file("saved_at_crash")).unwrap();
    let server = server.crash_and_restart();
    let log = error_log_text(&server).await;
    assert_eq!(
        log.matches("what its network learned since").count(),
        3,
        "{log}"
    );
    for lost in ["left_open", "copied_at_crash"] {
        assert!(
            log.contains(&format!("cluster '{lost}': what its network learned since")),
            "{log}"
        );
    }
    assert!(
        log.contains(
            "cluster 'saved_at_crash': the server stopped right after it saved the network, \
             with what its network learned since"
        ) && log.contains("up to that save; training after the save, if there was any, is lost"),
        "{log}"
    );
    // Said once.
    let server = server.restart();
    let log = error_log_text(&server).await;
    assert_eq!(
        log.matches("what its network learned since").count(),
        3,
        "{log}"
    );
}

/// What the server creates (database, key, datasets, networks and the folders) only its own
/// user may read: the database holds password hashes.
#[tokio::test]
async fn the_data_directory_is_for_the_server_alone() {
    use std::os::unix::fs::PermissionsExt;
    let (server, _client, dataset, cluster) = server_with_cluster("private", 20).await;
    let data = &server.data_dir;
    let mode =
        |path: std::path::PathBuf| std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    for path in [
        data.clone(),
        data.join("hanami.db"),
        data.join("token.key"),
        data.join("datasets"),
        data.join("clusters"),
        data.join("clusters").join(&cluster),
    ] {
        assert_eq!(mode(path.clone()) & 0o077, 0, "{}", path.display());
    }
    // Finished datasets are read-only besides.
    assert_eq!(mode(data.join("datasets").join(&dataset)), 0o400);
}

/// A server stopped as soon as it printed its address stops cleanly: the signals are
/// taken over before the address is printed (a SIGTERM that came first killed it, now and
/// then, with its default action).
#[tokio::test]
async fn a_server_stopped_at_once_stops_cleanly() {
    for _ in 0..10 {
        let mut server = TestServer::start();
        assert!(server.stop(), "the server did not stop cleanly");
    }
}

/// A start that brings the database to a newer schema says so in the log, and that servers
/// of the version before can no longer open it; later starts say nothing of it.
#[tokio::test]
async fn a_start_that_upgrades_the_database_says_so() {
    let server = TestServer::start();
    let mut server = server.restart_with(|launch| launch.env("RUST_LOG", "info"));
    assert!(!server.logged().contains("the database was brought"));
    assert!(server.stop());
    let data = server.data_dir.clone();
    // As the version before dataset checksums left it.
    common::change_database(&data, "ALTER TABLE datasets DROP COLUMN checksum", &[]).await;
    common::change_database(&data, "PRAGMA user_version = 13", &[]).await;
    let server = launch().data_dir(&data).env("RUST_LOG", "info").start();
    server.wait_until_logged(&[
        "the database was brought from schema version 13 to 14: servers that know only \
         version 13 or older can no longer open it",
    ]);
    let server = server.restart_with(|launch| launch.env("RUST_LOG", "info"));
    sdk(&server, ADMIN, ADMIN_PW).await;
    assert!(!server.logged().contains("the database was brought"));
}

/// A database that SQLite cannot use stops the start with its path, what to do, and
/// SQLite's words once (they came three times, without the path).
#[tokio::test]
async fn a_damaged_or_locked_database_is_named() {
    let mut server = TestServer::start();
    assert!(server.stop());
    let data = server.data_dir.clone();
    let database = data.join("hanami.db");
    let kept = data.join("kept.db");
    std::fs::copy(&database, &kept).unwrap();

    // Locked by another program for longer than the server waits (10 s).
    let lock = common::DatabaseLock::take(&data).await;
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started on a locked database");
    };
    let expected = format!(
        "hanami: the database {} is locked by another program (a sqlite3 shell or a backup \
         tool, say): stop it, then start the server again: ",
        database.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(stderr.matches("database is locked").count(), 1, "{stderr}");
    lock.release().await;

    // Overwritten with something else.
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&database, garbage).unwrap();
    for leftover in ["hanami.db-wal", "hanami.db-shm"] {
        let _ = std::fs::remove_file(data.join(leftover));
    }
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started on a damaged database");
    };
    let expected = format!(
        "the database {} is damaged or not a SQLite database: restore it from a backup",
        database.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(stderr.matches("not a database").count(), 1, "{stderr}");

    // A table removed (it said only "no such table: tasks", from the first query).
    std::fs::copy(&kept, &database).unwrap();
    common::change_database(&data, "DROP TABLE tasks", &[]).await;
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started on a database without its tasks");
    };
    let expected = format!(
        "the database {} is damaged: restore it from a backup: cannot open the database in \
         {}: the database holds an unreadable schema: the table 'tasks' is missing",
        database.display(),
        data.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");

    // A value of the wrong type, as a program outside may write (SQLite keeps it): a BLOB
    // as a user's name (the start panicked with a backtrace).
    std::fs::copy(&kept, &database).unwrap();
    common::change_database(&data, "UPDATE users SET name = X'ff00'", &[]).await;
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started on a database with a BLOB as a name");
    };
    let expected = format!(
        "the database {} is damaged: restore it from a backup: the database holds an \
         unreadable value in the column 'name' of the table 'users' (mismatched types;",
        database.display(),
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Written by a newer version: what to do, and the versions once.
    std::fs::copy(&kept, &database).unwrap();
    common::change_database(&data, "PRAGMA user_version = 999", &[]).await;
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started on a newer database");
    };
    let expected = format!(
        "the database {} was written by a newer version of the server, and cannot be \
         converted back: run that version on this data directory, or restore a backup",
        database.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(stderr.matches("schema version 999").count(), 1, "{stderr}");

    // Another program's database under the name: refused, not taken over (the server's
    // tables were added beside the program's).
    // (An empty file is an empty SQLite database.)
    std::fs::write(&database, "").unwrap();
    common::change_database(&data, "CREATE TABLE foo (x INTEGER)", &[]).await;
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started on another program's database");
    };
    let expected = format!(
        "the database {} is not this server's: give the server another data directory",
        database.display()
    );
    assert!(
        stderr.contains(&expected)
            && stderr.contains("the database holds tables of another program (foo)"),
        "{stderr}"
    );

    // The backup back: it starts.
    std::fs::rename(&kept, &database).unwrap();
    let server = launch().data_dir(&data).start();
    sdk(&server, ADMIN, ADMIN_PW).await;
}

/// A task whose network cannot be saved ends aborted, says why, and leaves no half-written
/// file behind.
#[tokio::test]
async fn a_network_that_cannot_be_saved_aborts_its_task() {
    let (server, client, dataset, cluster) = server_with_cluster("unsavable", 50).await;
    // A directory where the network file belongs: every save fails, root or not.
    let file = server.data_dir.join("clusters").join(&cluster);
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("blocker"), "x").unwrap();
    let task = client
        .train(
            "train",
            &cluster,
            &[("picture", &dataset)],
            &[("label", &dataset)],
        )
        .await
        .unwrap();
    let done = client
        .wait_for_task(&cluster, &task.uuid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let log = server
        .admin()
        .await
        .get("error_log?page=0")
        .await
        .expect(200)
        .body;
    assert!(log.contains("cannot save the cluster's network"), "{log}");
    let partial: Vec<_> = std::fs::read_dir(server.data_dir.join("clusters"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "partial"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
    // The network in memory, which keeps what the task learned, is lost in a crash: the next
    // start says so (it said nothing, and the task's note still promised a save at the stop).
    assert!(!log.contains("learned since"), "{log}");
    let server = server.crash_and_restart();
    let log = error_log_text(&server).await;
    assert_eq!(
        log.matches("cluster 'unsavable': what its network learned since")
            .count(),
        1,
        "{log}"
    );
}

/// A task's end is recorded before its network is renamed into place, so a crash in between
/// leaves the new network staged beside the old one with the end recorded: the next start
/// puts it in place (a task listed finished has its network). A staged file that is not
/// whole (a later save that a crash interrupted) is removed instead.
#[tokio::test]
async fn a_recorded_end_brings_its_staged_network_into_place() {
    let (mut server, client, train, cluster) = server_with_cluster("staged", 300).await;
    let file = server.data_dir.join("clusters").join(&cluster);
    let untrained = std::fs::read(&file).unwrap();
    let task = train_to_the_end(&client, &cluster, "first", &train).await;
    let staged = file.with_extension(format!("{}.partial", task.uuid));
    let trained = std::fs::read(&file).unwrap();
    assert_ne!(trained, untrained);
    assert!(!staged.exists());
    assert!(server.stop());

    // What the crash leaves.
    let leave_pending = |bytes: &[u8]| {
        std::fs::write(&file, &untrained).unwrap();
        std::fs::write(&staged, bytes).unwrap();
        let database = server.data_dir.join("hanami.db");
        let task = task.uuid.clone();
        let cluster = cluster.clone();
        async move {
            let store = Store::open(&database).await.unwrap();
            let row = store
                .cluster_tasks(&cluster)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.uuid == task)
                .unwrap();
            store
                .end_task(&row, hanami_store::tasks::TaskProduct::Nothing, true)
                .await
                .unwrap();
            store.close().await;
        }
    };
    leave_pending(&trained).await;
    let mut server = launch().data_dir(&server.data_dir).start();
    assert_eq!(std::fs::read(&file).unwrap(), trained);
    assert!(!staged.exists());
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let listed = client.task(&cluster, &task.uuid).await.unwrap();
    assert_eq!(listed.state, TaskState::Finished);
    assert_eq!(listed.note, None);
    assert!(server.stop());

    // Done once: a start after it leaves the network alone.
    std::fs::write(&file, &untrained).unwrap();
    let mut server = launch().data_dir(&server.data_dir).start();
    assert_eq!(std::fs::read(&file).unwrap(), untrained);
    assert!(server.stop());

    // Nor is the staged network of another task (whose end was not recorded).
    leave_pending(&trained).await;
    let other = file.with_extension("11111111-2222-4333-8444-555555555555.partial");
    std::fs::rename(&staged, &other).unwrap();
    let mut server = launch().data_dir(&server.data_dir).start();
    assert_eq!(std::fs::read(&file).unwrap(), untrained);
    assert!(!other.exists());
    assert!(server.stop());

    // A damaged staged file is not put in place but kept, and the task, whose network is
    // lost, is aborted with a note saying so.
    leave_pending(&trained[..trained.len() / 2]).await;
    let server = launch().data_dir(&server.data_dir).start();
    assert_eq!(std::fs::read(&file).unwrap(), untrained);
    assert!(!staged.exists());
    let aside = server
        .data_dir
        .join("unreferenced")
        .join("clusters")
        .join(staged.file_name().unwrap());
    assert_eq!(std::fs::read(&aside).unwrap().len(), trained.len() / 2);
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let listed = client.task(&cluster, &task.uuid).await.unwrap();
    assert_eq!(listed.state, TaskState::Aborted);
    let note = listed.note.unwrap_or_default();
    assert!(
        note.contains("is damaged; the cluster keeps the network it had before"),
        "{note}"
    );
    assert!(error_log_text(&server).await.contains(&note));
    let mut server = server;
    assert!(server.stop());

    // A start killed after it recorded that, before it moved the file aside, leaves the
    // task aborted; the next start removes the half-written file. (Moved aside first, a
    // kill left a task whose network was lost finished, or going on.)
    leave_pending(&trained[..trained.len() / 2]).await;
    let crashed = launch()
        .data_dir(&server.data_dir)
        .env(CRASH_AT, "start:lost-network-recorded")
        .try_start();
    match crashed {
        Err(logged) => assert!(
            logged.contains("crashing at start:lost-network-recorded"),
            "{logged}"
        ),
        Ok(_) => panic!("the start did not crash"),
    }
    let server = launch().data_dir(&server.data_dir).start();
    assert_eq!(std::fs::read(&file).unwrap(), untrained);
    assert!(!staged.exists());
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let listed = client.task(&cluster, &task.uuid).await.unwrap();
    assert_eq!(listed.state, TaskState::Aborted);
    assert!(listed.note.unwrap_or_default().contains("is damaged"));
    train_to_the_end(&client, &cluster, "second", &train).await;
}

/// A start that is itself killed while it reports the tasks it aborts leaves the rest to the
/// next start: every task gets its note and its error-log entry, each once.
#[tokio::test]
async fn a_crash_during_the_start_loses_no_task_report() {
    let data = tempfile::tempdir().unwrap();
    let server = launch().data_dir(data.path()).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    // Enough that the killed start cannot report them all before the kill lands.
    let (cluster, tasks) = busy_cluster(&client, tmp.path(), 400).await;
    drop(server);
    // As an older version queued them, without their work: they are aborted at the start.
    common::change_database(data.path(), "UPDATE tasks SET work = NULL", &[]).await;
    assert!(launch().kill_when_logged(data.path(), "when the server stopped, and its end was not"));
    // Killed part of the way: some tasks are reported, the others are still unfinished.
    let store = Store::open(&data.path().join("hanami.db")).await.unwrap();
    let left = store.unfinished_tasks().await.unwrap().len();
    assert!((1..tasks.len()).contains(&left), "{left} unfinished");
    store.close().await;
    let server = launch().data_dir(data.path()).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // The first tasks may have finished while the others were queued.
    let states = states(&client, &cluster).await;
    assert!(
        states
            .iter()
            .all(|(_, s)| s == "aborted" || s == "finished")
    );
    let aborted: Vec<String> = states
        .into_iter()
        .filter_map(|(uuid, state)| (state == "aborted").then_some(uuid))
        .collect();
    assert!(
        aborted.len() >= left,
        "{} aborted, {left} were left",
        aborted.len()
    );
    let mut queued_by_older = 0;
    for task in &aborted {
        let note = client.task(&cluster, task).await.unwrap().note;
        let note = note.unwrap_or_default();
        assert!(
            note.contains("when the server stopped, and its end was not"),
            "{task}: {note}"
        );
        // Those that waited say why they are not queued again.
        if note.contains("an older version of the server queued it, which kept no record") {
            queued_by_older += 1;
        }
    }
    assert!(queued_by_older + 1 >= aborted.len(), "{queued_by_older}");
    // Every task has its error-log entry, once.
    let admin = server.admin().await;
    let mut entries = Vec::new();
    for page in 0.. {
        let rows = admin
            .get(&format!("error_log?page={page}"))
            .await
            .expect(200)
            .json();
        let rows = rows["body"].as_array().unwrap().clone();
        if rows.is_empty() {
            break;
        }
        entries.extend(rows.iter().map(Value::to_string));
    }
    for task in &aborted {
        let told = entries.iter().filter(|e| e.contains(task.as_str())).count();
        assert_eq!(told, 1, "{task}");
    }
}

/// A data directory copied (`cp -a`) after a clean stop is a whole server elsewhere: its
/// datasets, clusters with their networks, checkpoints and tasks, and the tokens the first
/// server issued (the token key is part of it); nothing in it names the folder it was in.
#[tokio::test]
async fn a_data_directory_copied_after_a_stop_runs_elsewhere() {
    let (mut server, client, dataset, cluster) = server_with_cluster("moving", 60).await;
    train_to_the_end(&client, &cluster, "before_the_move", &dataset).await;
    let checkpoint = client.save_cluster(&cluster, "moving_ckpt").await.unwrap();
    finished(&client, &cluster, &checkpoint.uuid).await;
    let token = server.login(ADMIN, ADMIN_PW).await.token.unwrap();
    assert!(server.stop(), "the first server stopped cleanly");
    let network = sha256(&server.data_dir.join("clusters").join(&cluster));

    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("moved here");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&server.data_dir)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    // The first server's folder is gone: only the copy can answer.
    std::fs::remove_dir_all(&server.data_dir).unwrap();
    let moved = launch().data_dir(&copy).start();
    assert_eq!(sha256(&copy.join("clusters").join(&cluster)), network);

    let mut old_token = moved.client();
    old_token.token = Some(token);
    let clusters = old_token.get("cluster/all").await.expect(200).json();
    assert!(clusters.to_string().contains(&cluster), "{clusters}");
    let client = sdk(&moved, ADMIN, ADMIN_PW).await;
    let tasks = client.tasks(&cluster).await.unwrap();
    assert_eq!(tasks.body.len(), 2, "{tasks:?}");
    // (Read by column name, as the SDK's documentation shows.)
    #[derive(serde::Deserialize)]
    struct Listed {
        uuid: String,
        name: String,
    }
    let checkpoints: Vec<Listed> = client.checkpoints().await.unwrap().rows_as().unwrap();
    assert!(
        checkpoints
            .iter()
            .any(|c| c.uuid == checkpoint.uuid && c.name == "moving_ckpt"),
        "{}",
        checkpoint.uuid
    );
    let restore = client
        .restore_cluster(&cluster, &checkpoint.uuid)
        .await
        .unwrap();
    finished(&client, &cluster, &restore.uuid).await;
    let request = queue_request(&client, &cluster, "after_the_move", &dataset).await;
    finished(&client, &cluster, &request).await;
    let accuracy = client.check_dataset(&dataset, &request).await.unwrap();
    assert!((0.0..=100.0).contains(&accuracy), "{accuracy}");
    assert!(!moved.logged().contains("WARN"), "{}", moved.logged());
}

/// A queued task whose stored row cannot be removed (the database refuses the deletion)
/// stays queued in its place, as its row says; it used to be forgotten first, so that the
/// deletion answered with an error and the task came back at the next start, to run after
/// all. Once the database takes the deletion, the task is gone for good.
#[tokio::test]
async fn a_queued_task_whose_row_cannot_be_deleted_stays_queued() {
    let (server, client, dataset, cluster) = server_with_cluster("kept", 50).await;
    // Tasks wait in DIRECT mode.
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut queued = Vec::new();
    for name in ["first", "second", "third"] {
        queued.push(queue_training(&client, &cluster, name, &dataset).await);
    }
    let listed = states(&client, &cluster).await;
    common::change_database(
        &server.data_dir,
        "CREATE TRIGGER keep_tasks BEFORE DELETE ON tasks \
         BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END",
        &[],
    )
    .await;
    let refused = client.delete_task(&cluster, &queued[1]).await.unwrap_err();
    assert!(matches!(refused, Error::Internal(_)), "{refused:?}");
    assert_eq!(states(&client, &cluster).await, listed);

    common::change_database(&server.data_dir, "DROP TRIGGER keep_tasks", &[]).await;
    client.delete_task(&cluster, &queued[1]).await.unwrap();
    let left = [queued[0].as_str(), queued[2].as_str()];
    let uuids = |list: Vec<(String, String)>| list.into_iter().map(|t| t.0).collect::<Vec<_>>();
    assert_eq!(uuids(states(&client, &cluster).await), left);
    // The next start queues the other two again (in TASK mode), and they run.
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert_eq!(uuids(states(&client, &cluster).await), left);
    for uuid in left {
        let task = client.wait_for_task(&cluster, uuid, WAIT).await.unwrap();
        assert_eq!(task.state, TaskState::Finished, "{task:?}");
    }
}

/// A task's network renamed into place whose folder cannot be synced afterwards is in
/// place all the same: the task finishes with what it did and its product (it was reported
/// as a network that could not be saved, and ended aborted), the server log says what a
/// crash could still undo, and the next start finds the network in place.
#[tokio::test]
async fn a_folder_that_cannot_be_synced_after_the_rename_keeps_the_task_s_end() {
    let server = launch()
        .env("HANAMI_FAIL_AT", "task-end:folder-sync")
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "unsynced", 60).await;
    let cluster = common::seed_cluster(&client, "unsynced").await;
    let network = server.data_dir.join("clusters").join(&cluster);
    let untrained = std::fs::read(&network).unwrap();
    let train = queue_training(&client, &cluster, "train", &dataset).await;
    let trained = client.wait_for_task(&cluster, &train, WAIT).await.unwrap();
    assert_eq!(trained.state, TaskState::Finished, "{trained:?}");
    assert_eq!(trained.note, None);
    let after_training = std::fs::read(&network).unwrap();
    assert!(
        after_training != untrained,
        "the trained network is not in place"
    );
    let saved = checkpoint_bytes(&server, &client, &cluster, "after").await;
    assert!(saved == after_training);
    assert!(
        server
            .logged()
            .contains("the cluster's network is in place, but its folder cannot be synced"),
        "{}",
        server.logged()
    );

    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = client.task(&cluster, &train).await.unwrap();
    assert_eq!((task.state, task.note), (TaskState::Finished, None));
    assert!(
        std::fs::read(server.data_dir.join("clusters").join(&cluster)).unwrap() == after_training
    );
    assert!(!error_log_text(&server).await.contains(&train));
}

/// A server on which every write of a task's state to the database fails (as on a full
/// disk) and also, with `again`, the later record of an end the database missed; a cluster
/// whose network file holds its untrained network, and a train task that ended there.
async fn task_whose_end_the_database_missed(again: bool) -> (TestServer, String, String, Vec<u8>) {
    let points = if again {
        "task:record,task:record-again"
    } else {
        "task:record"
    };
    let server = launch().env("HANAMI_FAIL_AT", points).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "missed", 60).await;
    let cluster = common::seed_cluster(&client, "missed").await;
    let untrained = std::fs::read(server.data_dir.join("clusters").join(&cluster)).unwrap();
    let train = queue_training(&client, &cluster, "train", &dataset).await;
    let ended = client.wait_for_task(&cluster, &train, WAIT).await.unwrap();
    assert_eq!(ended.state, TaskState::Aborted, "{ended:?}");
    assert!(
        ended.note.as_deref().is_some_and(|note| note.contains(
            "the task's end cannot be recorded in the database; the cluster's network in \
             memory keeps what the task did"
        )),
        "{ended:?}"
    );
    (server, cluster, train, untrained)
}

/// A task whose end the database missed (its start too: the database has it queued) is
/// recorded as it ended once the database takes writes again, at the latest at shutdown,
/// so the next start neither runs it a second time on the network that keeps what it did
/// (which the shutdown saves) nor lists it as anything but aborted (it ran again and was
/// listed finished).
#[tokio::test]
async fn a_task_end_that_the_database_missed_is_recorded_at_shutdown() {
    let (server, cluster, train, untrained) = task_whose_end_the_database_missed(false).await;
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // Twice, a second apart: a task run again would be active or finished by then.
    for _ in 0..2 {
        let task = client.task(&cluster, &train).await.unwrap();
        assert_eq!(task.state, TaskState::Aborted, "{task:?}");
        let late = "; its end was recorded once the database took writes again";
        assert!(
            task.note.as_deref().is_some_and(|n| n.ends_with(late)),
            "{task:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let network = std::fs::read(server.data_dir.join("clusters").join(&cluster)).unwrap();
    assert!(network != untrained, "the trained network was not saved");
}

/// The end of a task that the database missed is recorded at the next end of a task of its
/// cluster, so a crash after that does not run it again either: the next start runs only
/// the later task, whose own end the database missed too (it is queued there, and its
/// network was never put in place).
#[tokio::test]
async fn a_task_end_that_the_database_missed_is_recorded_at_the_next_end() {
    let server = launch().env("HANAMI_FAIL_AT", "task:record").start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "missed", 60).await;
    let cluster = common::seed_cluster(&client, "missed").await;
    let first = queue_training(&client, &cluster, "first", &dataset).await;
    let second = queue_training(&client, &cluster, "second", &dataset).await;
    for task in [&first, &second] {
        let ended = client.wait_for_task(&cluster, task, WAIT).await.unwrap();
        assert_eq!(ended.state, TaskState::Aborted, "{ended:?}");
    }
    let server = server.crash_and_restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let ran = client.wait_for_task(&cluster, &second, WAIT).await.unwrap();
    assert_eq!((ran.state, ran.note), (TaskState::Finished, None));
    let first = client.task(&cluster, &first).await.unwrap();
    assert_eq!(first.state, TaskState::Aborted, "{first:?}");
}

/// Where the end cannot be recorded at shutdown either, the network stays as last saved
/// (a direct-IO session meanwhile does not save it either): the next start runs the task,
/// queued in the database, once, on the network it started from.
#[tokio::test]
async fn a_network_whose_task_ends_cannot_be_recorded_is_left_as_last_saved() {
    let (mut server, cluster, train, untrained) = task_whose_end_the_database_missed(true).await;
    let network = server.data_dir.join("clusters").join(&cluster);
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut session = client.direct_session(&cluster).await.unwrap();
    for _ in 0..5 {
        let label: Vec<f32> = (0..10).map(|i| f32::from(i == 3)).collect();
        session
            .train(&[("picture", &[1.0; 784])], &[("label", &label)])
            .await
            .unwrap();
    }
    // Not saved, the close goes unanswered, which the client reports.
    let closed = session.close().await;
    assert!(
        matches!(&closed, Err(Error::WebSocket(m)) if m.contains("may not be saved")),
        "{closed:?}"
    );
    server.wait_until_logged(&["the network is not saved after the session: the end of a task"]);
    assert!(std::fs::read(&network).unwrap() == untrained);
    // A stop that lost training says so, also by its status.
    assert!(!server.stop());
    server.wait_until_logged(&[
        "'missed' (left as last saved: the ends of some of its tasks cannot be recorded",
    ]);
    assert!(std::fs::read(&network).unwrap() == untrained);
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let ran = client.wait_for_task(&cluster, &train, WAIT).await.unwrap();
    assert_eq!((ran.state, ran.note), (TaskState::Finished, None));
}

/// A server whose task deletions pause `ms` before they delete the task's row, with a
/// train task queued on a cluster in DIRECT mode; the cluster's and the task's uuids.
async fn task_deletion_paused(ms: u64) -> (TestServer, Client, String, String) {
    let server = launch().pause_at("task-delete:row", ms).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "paused", 20).await;
    let cluster = common::seed_cluster(&client, "paused").await;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let task = queue_training(&client, &cluster, "train", &dataset).await;
    (server, client, cluster, task)
}

/// A second deletion of a queued task whose first deletion is under way answers 409 and
/// changes nothing; the first one then removes it.
#[tokio::test]
async fn a_second_deletion_of_a_queued_task_under_deletion_is_refused() {
    let (_server, client, cluster, task) = task_deletion_paused(1500).await;
    let first = {
        let (client, cluster, task) = (client.clone(), cluster.clone(), task.clone());
        tokio::spawn(async move { client.delete_task(&cluster, &task).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    match client.delete_task(&cluster, &task).await {
        Err(Error::Conflict(message)) => {
            assert!(
                message.contains("is being deleted by another request"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    first.await.unwrap().unwrap();
    assert!(states(&client, &cluster).await.is_empty());
}

/// A deletion of a queued task whose client goes away before the answer still ends: the
/// task is deleted (it was left withdrawn, listed as queued but never run, and every later
/// deletion answered 409).
#[tokio::test]
async fn a_deletion_whose_client_goes_away_still_ends() {
    let (_server, client, cluster, task) = task_deletion_paused(1000).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        client.delete_task(&cluster, &task),
    )
    .await;
    assert!(gave_up.is_err(), "answered within the pause: {gave_up:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !states(&client, &cluster).await.is_empty() {
        assert!(Instant::now() < deadline, "the task was not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        client.delete_task(&cluster, &task).await,
        Err(Error::NotFound(_))
    ));
}

/// A start that puts a crashed task's network in place (its end was recorded, the rename
/// not done) and cannot sync the folder afterwards keeps the task's end and the network:
/// the rename is done (it aborted the task, saying the old network was kept, and then
/// failed the start).
#[tokio::test]
async fn a_start_that_cannot_sync_the_folder_after_completing_a_rename_keeps_it() {
    let (server, client, dataset, cluster) = server_with_cluster("start sync", 60).await;
    drop(client);
    let network = server.data_dir.join("clusters").join(&cluster);
    let untrained = sha256(&network);
    let server = server.restart_with(|launch| launch.env(CRASH_AT, "task-end:recorded"));
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = queue_training(&client, &cluster, "train", &dataset).await;
    let server = server.crashed_at_with("task-end:recorded", |launch| {
        launch.env("HANAMI_FAIL_AT", "start:folder-sync")
    });
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.task(&cluster, &task).await.unwrap();
    assert_eq!((done.state, done.note), (TaskState::Finished, None));
    let staged = std::fs::read_dir(server.data_dir.join("clusters"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(staged, 0);
    assert!(
        server
            .logged()
            .contains("cannot be synced (failure injected (HANAMI_FAIL_AT))"),
        "{}",
        server.logged()
    );
    // The trained network is in place, and the server works with it.
    assert_ne!(sha256(&network), untrained);
    let saved = checkpoint_bytes(&server, &client, &cluster, "after").await;
    assert!(saved == std::fs::read(&network).unwrap());
    assert!(!error_log_text(&server).await.contains(&task));
}

/// A task that cannot open its datasets because the server has run out of file descriptors
/// waits for some to come free and then runs (it was aborted at once, and so was every task
/// queued behind it during a brief shortage); the server log says why it waits.
#[tokio::test]
async fn a_task_waits_for_file_descriptors_to_come_free() {
    // The first two openings of a task's datasets fail with EMFILE.
    let server = launch().env("HANAMI_FAIL_AT", "task:descriptors").start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "descriptors", 60).await;
    let cluster = common::seed_cluster(&client, "descriptors").await;
    let network = server.data_dir.join("clusters").join(&cluster);
    let untrained = std::fs::read(&network).unwrap();
    let started = Instant::now();
    let trained = train_to_the_end(&client, &cluster, "train", &dataset).await;
    assert_eq!(trained.note, None, "{trained:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it did not wait"
    );
    assert!(std::fs::read(&network).unwrap() != untrained);
    let warning = "cannot open its files: the server has run out of file descriptors; it \
                   tries again until the shortage has lasted 60 s";
    assert!(server.logged().contains(warning), "{}", server.logged());
}

/// A train task that fails before it begins (its dataset was deleted after it was queued)
/// leaves the network as it was: it does not save it again, so a network that cannot be
/// saved then (its staging path blocked) does not add "cannot save the cluster's network"
/// to a note about a task that changed nothing.
#[tokio::test]
async fn a_task_that_did_not_begin_does_not_save_the_network() {
    let (server, client, dataset, cluster) = server_with_cluster("unbegun", 60).await;
    let network = server.data_dir.join("clusters").join(&cluster);
    let before = std::fs::read(&network).unwrap();
    client.set_direct_mode(&cluster, true).await.unwrap();
    let orphan = queue_training(&client, &cluster, "orphan", &dataset).await;
    client.delete_dataset(&dataset).await.unwrap();
    let staging = network.with_extension(format!("{orphan}.partial"));
    std::fs::create_dir(&staging).unwrap();
    client.set_direct_mode(&cluster, false).await.unwrap();
    let done = client.wait_for_task(&cluster, &orphan, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    assert!(
        note.contains(&format!(
            "dataset '{dataset}' was deleted after the task was queued"
        )) && !note.contains("cannot save"),
        "{note}"
    );
    assert!(std::fs::read(&network).unwrap() == before);
    assert!(staging.is_dir());
}

/// A task waiting for file descriptors says so in its note while it waits (its owner saw no
/// reason for the wait). A stop that finds it waiting finds it unchanged: it is queued
/// again as it was (no note that it stopped after 0 cycles, which it kept after it ran, and
/// its network not saved again: with that save failing, it was aborted), and runs at the
/// next start.
#[tokio::test]
async fn a_task_stopped_while_it_waits_for_file_descriptors_is_queued_again_as_it_was() {
    // Every opening of a task's datasets fails with EMFILE.
    let server = launch()
        .env("HANAMI_FAIL_AT", "task:descriptors-lasting")
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let dataset = upload(&client, tmp.path(), "stopped waiting", 60).await;
    let cluster = common::seed_cluster(&client, "stopped waiting").await;
    let network = server.data_dir.join("clusters").join(&cluster);
    let untrained = std::fs::read(&network).unwrap();
    let train = queue_training(&client, &cluster, "train", &dataset).await;
    server
        .wait_until_logged(&["cannot open its files: the server has run out of file descriptors"]);
    // Its owner sees why it waits.
    let waiting = client.task(&cluster, &train).await.unwrap();
    assert_eq!(waiting.state, TaskState::Active, "{waiting:?}");
    let note = waiting.note.unwrap_or_default();
    assert!(
        note.starts_with("waiting since ")
            && note.contains("the server has run out of file descriptors (too many open files)")
            && note.ends_with("until the shortage has lasted 60 s"),
        "{note}"
    );
    let staging = network.with_extension(format!("{train}.partial"));
    std::fs::create_dir(&staging).unwrap();
    drop(client);

    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // (The start clears the staging path itself.)
    let _ = std::fs::remove_dir(&staging);
    let trained = finished(&client, &cluster, &train).await;
    assert_eq!(trained.note, None, "{trained:?}");
    assert!(std::fs::read(&network).unwrap() != untrained);
}

/// Changes the last value of a result so far in its last byte (its sign and exponent): the
/// file is still a dataset file, which only its checksum tells from the one set aside.
fn change_last_value(partial: &std::path::Path) {
    let len = std::fs::metadata(partial).unwrap().len();
    hanami_testkit::flip_byte(partial, len - 1, 0x01);
}

/// A request task that went on after a stop and is stopped again while it waits for file
/// descriptors (before it touched its result so far) keeps the checksum of that result:
/// a value changed after the second stop is still caught at the next start.
#[tokio::test]
async fn a_result_so_far_keeps_its_checksum_through_a_stop_during_a_wait() {
    let (server, client, dataset, cluster) = server_with_cluster("waited", 60_000).await;
    let task = queue_request(&client, &cluster, "waited", &dataset).await;
    wait_for_progress(&client, &cluster, &task).await;
    // Every opening of a task's datasets fails with EMFILE: it waits.
    let server =
        server.restart_with(|launch| launch.env("HANAMI_FAIL_AT", "task:descriptors-lasting"));
    server
        .wait_until_logged(&["cannot open its files: the server has run out of file descriptors"]);
    let mut server = server;
    assert!(server.stop());
    change_last_value(&server.data_dir.join("partial-results").join(&task));
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let done = client.wait_for_task(&cluster, &task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let note = done.note.unwrap_or_default();
    assert!(
        note.contains("cannot go on with the result so far") && note.contains("its checksum xxh3:"),
        "{note}"
    );
}

/// A save that cannot write its checkpoint because the server has run out of file
/// descriptors waits for some to come free too, and then makes its checkpoint (it was
/// aborted at once).
#[tokio::test]
async fn a_save_waits_for_file_descriptors_to_come_free() {
    // The first two files that tasks open fail with EMFILE.
    let server = launch().env("HANAMI_FAIL_AT", "task:descriptors").start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::seed_cluster(&client, "save descriptors").await;
    let started = Instant::now();
    let save = client.save_cluster(&cluster, "saved").await.unwrap().uuid;
    let saved = finished(&client, &cluster, &save).await;
    assert_eq!(saved.note, None, "{saved:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it did not wait"
    );
    client.checkpoint(&save).await.unwrap();
    assert!(server.data_dir.join("checkpoints").join(&save).is_file());
    let warning = "cannot open its files: the server has run out of file descriptors";
    assert!(server.logged().contains(warning), "{}", server.logged());
}
