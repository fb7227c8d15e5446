//! Clusters, tasks, checkpoints and direct IO end to end: the real server training the real
//! engine on generated data, through the Rust SDK.

mod common;

use std::time::Duration;

use common::{
    ADMIN, ADMIN_PW, SEED_TEMPLATE, ServerExt, TestServer, member, pattern_mnist, sdk, sha256,
};
use hanami_sdk::Error;
use hanami_types::tasks::TaskState;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

/// Inputs `x0` and `x1` of one value each, with a path of their own to outputs `a` and `b`
/// of one value each.
const TWO_INPUTS_TWO_OUTPUTS: &str = concat!(
    "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n",
    "hexagons:\n    1,1,1\n    1,2,1\n    2,1,1\n    2,2,1\n    3,1,1\n    3,2,1\n",
    "inputs:\n    x0:\n        target: 1,1,1\n        number_of_inputs: 1\n",
    "    x1:\n        target: 1,2,1\n        number_of_inputs: 1\n",
    "outputs:\n    a:\n        target: 3,1,1\n        number_of_outputs: 1\n",
    "    b:\n        target: 3,2,1\n        number_of_outputs: 1\n",
);

/// 1,000 rows for [`TWO_INPUTS_TWO_OUTPUTS`]: x0 lit for class `a`, x1 for class `b`, with
/// varying values (growth needs potentials it has not seen); the expected values of `a` are
/// scaled by 100 from row `scale_from` on.
fn two_inputs_csv(scale_from: usize) -> String {
    let mut csv = String::from("x0,x1,a,b\n");
    for row in 0..1000 {
        let lit = 50 + row % 97;
        let (x0, x1) = if row % 2 == 0 { (lit, 0) } else { (0, lit) };
        let a = u32::from(row % 2 == 0);
        let scaled = if row < scale_from { a } else { 100 * a };
        csv.push_str(&format!("{x0},{x1},{scaled},{}\n", 1 - a));
    }
    csv
}

/// Waits for task `task` of `cluster` to end, asserts that it finished, and returns it.
async fn finished(
    client: &hanami_sdk::Client,
    cluster: &str,
    task: &str,
) -> hanami_types::tasks::Task {
    let done = client.wait_for_task(cluster, task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    done
}

/// Trains `cluster` on the `picture` and `label` columns of `data` and waits for the task's
/// end (it must end); returns the task as queued.
async fn train_to_end(
    client: &hanami_sdk::Client,
    cluster: &str,
    data: &str,
    name: &str,
) -> hanami_types::tasks::Task {
    let task = client
        .train(name, cluster, &[("picture", data)], &[("label", data)])
        .await
        .unwrap();
    client
        .wait_for_task(cluster, &task.uuid, WAIT)
        .await
        .unwrap();
    task
}

/// A server with an uploaded train (5,000 rows) and test (500 rows) dataset. (One pass over
/// 5,000 generated samples reliably learns them, whatever the cluster's random seed.)
async fn prepared() -> (
    TestServer,
    hanami_sdk::Client,
    String,
    String,
    tempfile::TempDir,
) {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "train", 5000);
    let train = client
        .upload_mnist("train_set", &images, &labels)
        .await
        .unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "test", 500);
    let test = client
        .upload_mnist("test_set", &images, &labels)
        .await
        .unwrap();
    (server, client, train.uuid, test.uuid, tmp)
}

/// At the default log level the server's log says when a dataset was made from an upload
/// and how each task ended (it said nothing between its start and its stop).
#[tokio::test]
async fn the_log_tells_of_datasets_and_task_ends() {
    let server = common::launch().env("RUST_LOG", "info").start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "logged", 200);
    let dataset = client
        .upload_mnist("logged_set", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = client
        .create_cluster("logged_cluster", SEED_TEMPLATE)
        .await
        .unwrap()
        .uuid;
    let task = train_to_end(&client, &cluster, &dataset, "logged_task").await;
    let expected = [
        format!("dataset 'logged_set' ({dataset}) made from an upload: 200 rows"),
        format!(
            "train task 'logged_task' of cluster 'logged_cluster' ({}) finished after ",
            task.uuid
        ),
    ];
    // The end is logged right after the task's end is recorded.
    server.wait_until_logged(&expected.each_ref().map(String::as_str));
}

/// The clusters of one user keep at most 16 restores queued in all (each holds its
/// checkpoint's file open, so that deleting the checkpoint cannot fail it; with 16 per
/// cluster, a member with many clusters could take every file descriptor of the server, and
/// other users' requests failed), another user's clusters have their own 16, and a queued
/// restore that is deleted lets go of its file.
#[tokio::test]
async fn queued_restores_are_bounded_per_user_and_let_go_of_their_files() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let first = common::seed_cluster(&client, "holding").await;
    let second = common::seed_cluster(&client, "holding too").await;
    let saved = client.save_cluster(&first, "ckpt").await.unwrap().uuid;
    client.wait_for_task(&first, &saved, WAIT).await.unwrap();
    // DIRECT mode holds the queues.
    client.set_direct_mode(&first, true).await.unwrap();
    client.set_direct_mode(&second, true).await.unwrap();
    let checkpoints = server.data_dir.join("checkpoints");
    // Asked for all at once (they all passed the count, and 39 of 40 were queued).
    let clusters: Vec<&String> = (0..40)
        .map(|i| if i % 2 == 0 { &first } else { &second })
        .collect();
    let answers = futures_util::future::join_all(
        clusters
            .iter()
            .map(|cluster| client.restore_cluster(cluster, &saved)),
    )
    .await;
    let mut queued = Vec::new();
    for (cluster, answer) in clusters.iter().zip(answers) {
        match answer {
            Ok(started) => queued.push(((*cluster).clone(), started.uuid)),
            Err(Error::Conflict(m)) => assert!(
                m.starts_with("Your clusters have 16 restores queued, the most one user's"),
                "{m}"
            ),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(queued.len(), 16);
    assert_eq!(server.files_open_under(&checkpoints), 16);
    // Another user's clusters are not held up.
    let admin = server.admin().await;
    common::member(&server, &admin, "other_user", "other_proj", false).await;
    let other = sdk(&server, "other_user", "password1").await;
    let theirs = common::seed_cluster(&other, "theirs").await;
    let their_save = other
        .save_cluster(&theirs, "their ckpt")
        .await
        .unwrap()
        .uuid;
    other
        .wait_for_task(&theirs, &their_save, WAIT)
        .await
        .unwrap();
    let restored = other
        .restore_cluster(&theirs, &their_save)
        .await
        .unwrap()
        .uuid;
    let done = other.wait_for_task(&theirs, &restored, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished);
    for (cluster, task) in &queued {
        client.delete_task(cluster, task).await.unwrap();
    }
    assert_eq!(server.files_open_under(&checkpoints), 0);
    // Room again; the restore runs once the cluster is back in TASK mode.
    let restore = client.restore_cluster(&first, &saved).await.unwrap().uuid;
    client.set_direct_mode(&first, false).await.unwrap();
    let done = client.wait_for_task(&first, &restore, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished);
    // An admin who restores into a user's cluster is told whose count is full.
    other.set_direct_mode(&theirs, true).await.unwrap();
    for _ in 0..16 {
        other.restore_cluster(&theirs, &their_save).await.unwrap();
    }
    let refused = client.restore_cluster(&theirs, &their_save).await;
    let whose = format!(
        "Cluster '{theirs}' belongs to user 'other_user', whose clusters (in all their \
         projects) have 16 restores queued"
    );
    assert!(
        matches!(&refused, Err(Error::Conflict(m)) if m.starts_with(&whose)),
        "{refused:?}"
    );
}

/// A cluster keeps at most 1,000 tasks queued: a runaway client cannot grow the queue (its
/// rows and the tasks' work in memory) without bound.
#[tokio::test]
async fn the_queue_of_a_cluster_is_bounded() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::seed_cluster(&client, "busy").await;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut first = None;
    for i in 0..1000 {
        let saved = client.save_cluster(&cluster, &format!("ckpt{i}")).await;
        first.get_or_insert(saved.unwrap().uuid);
    }
    let refused = client.save_cluster(&cluster, "one_more").await;
    assert!(
        matches!(&refused, Err(Error::Conflict(m)) if m.contains("has 1000 tasks queued")),
        "{refused:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "busy", 10);
    let data = client
        .upload_mnist("busy", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let train = client
        .train(
            "refused",
            &cluster,
            &[("picture", &data)],
            &[("label", &data)],
        )
        .await;
    assert!(matches!(train, Err(Error::Conflict(_))), "{train:?}");
    // One gone, one more fits.
    client.delete_task(&cluster, &first.unwrap()).await.unwrap();
    client.save_cluster(&cluster, "fits").await.unwrap();
}

#[tokio::test]
async fn train_request_check_save_restore() {
    let (server, client, train, test, _tmp) = prepared().await;
    let train_file = server.data_dir.join("datasets").join(&train);
    let test_file = server.data_dir.join("datasets").join(&test);
    let before = (sha256(&train_file), sha256(&test_file));

    let cluster = client
        .create_cluster("cluster_a", SEED_TEMPLATE)
        .await
        .unwrap();
    assert_eq!(cluster.name, "cluster_a");
    assert_eq!(client.cluster(&cluster.uuid).await.unwrap(), cluster);
    let list = client.clusters().await.unwrap();
    assert_eq!(list.body.len(), 1);
    assert_eq!(list.body[0][1], json!(cluster.uuid));

    let task = client
        .train(
            "train_a",
            &cluster.uuid,
            &[("picture", &train)],
            &[("label", &train)],
        )
        .await
        .unwrap();
    assert_eq!(task.state, TaskState::Queued);
    assert_eq!(task.total_number_of_cycles, 5000);
    assert_eq!(task.name, "train_a");
    let done = client
        .wait_for_task(&cluster.uuid, &task.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
    assert_eq!(done.current_cycle, 5000);
    assert_ne!(done.start_timestamp, "-");
    assert_ne!(done.end_timestamp, "-");

    let request = client
        .request(
            "request_a",
            &cluster.uuid,
            &[("picture", &test)],
            ("label", "result_a"),
        )
        .await
        .unwrap();
    let done = client
        .wait_for_task(&cluster.uuid, &request.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
    let tasks = client.tasks(&cluster.uuid).await.unwrap();
    assert_eq!(
        tasks.header,
        ["uuid", "state", "percentage", "queued", "start", "end"]
    );
    assert_eq!(tasks.body.len(), 2);
    assert_eq!(tasks.body[0][0], json!(task.uuid));
    assert_eq!(tasks.body[0][1], "finished");
    assert_eq!(tasks.body[0][2], "1.000000");

    // The result is a dataset with the request task's uuid.
    let result = client.dataset(&request.uuid).await.unwrap();
    assert_eq!(result.name, "result_a");
    assert_eq!(result.number_of_rows, 500);
    assert_eq!(result.number_of_columns, 10);
    assert_eq!(
        serde_json::to_value(&result.description).unwrap(),
        json!({"result_a": {"start_column": 0, "end_column": 10}})
    );
    let accuracy = client.check_dataset(&test, &request.uuid).await.unwrap();
    assert!(accuracy > 80.0, "accuracy {accuracy}");
    // Deleting the task keeps its result.
    client
        .delete_task(&cluster.uuid, &request.uuid)
        .await
        .unwrap();
    assert!(matches!(
        client.delete_task(&cluster.uuid, &request.uuid).await,
        Err(Error::NotFound(_))
    ));
    client.dataset(&request.uuid).await.unwrap();

    // Reading datasets in tasks never changes them.
    assert_eq!((sha256(&train_file), sha256(&test_file)), before);

    // Checkpoint, delete the cluster, restore into an empty one: same answers.
    let saved = client.save_cluster(&cluster.uuid, "ckpt_a").await.unwrap();
    assert_eq!(saved.name, "ckpt_a");
    let checkpoint = client.checkpoint(&saved.uuid).await.unwrap();
    assert_eq!(checkpoint.name, "ckpt_a");
    assert_eq!(
        client.checkpoints().await.unwrap().body[0][1],
        json!(saved.uuid)
    );
    let save_task = client.task(&cluster.uuid, &saved.uuid).await.unwrap();
    assert_eq!(
        (save_task.state.as_str(), save_task.total_number_of_cycles),
        ("finished", 1)
    );
    // A task's and its cluster's uuids given swapped: the answer says so, and nothing goes.
    let said = format!(
        "Cluster with uuid '{}' not found: that is a task's uuid, and '{}' its cluster's; are \
         the two swapped?",
        saved.uuid, cluster.uuid
    );
    let swapped = client.task(&saved.uuid, &cluster.uuid).await;
    assert!(
        matches!(&swapped, Err(Error::NotFound(m)) if m.starts_with(&said)),
        "{swapped:?}"
    );
    let swapped = client.delete_task(&saved.uuid, &cluster.uuid).await;
    assert!(
        matches!(&swapped, Err(Error::NotFound(m)) if m.starts_with(&said)),
        "{swapped:?}"
    );
    client.task(&cluster.uuid, &saved.uuid).await.unwrap();
    client.delete_cluster(&cluster.uuid).await.unwrap();
    assert!(matches!(
        client.cluster(&cluster.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        client.delete_cluster(&cluster.uuid).await,
        Err(Error::NotFound(_))
    ));

    let empty = client.create_cluster("cluster_b", "").await.unwrap();
    let Err(Error::Conflict(_)) = client
        .request(
            "too_early",
            &empty.uuid,
            &[("picture", &test)],
            ("label", "never"),
        )
        .await
    else {
        panic!("a cluster without network accepted a task");
    };
    // Without a network there is nothing to drive directly.
    assert!(matches!(
        client.set_direct_mode(&empty.uuid, true).await,
        Err(Error::Conflict(_))
    ));
    // Given swapped, the answer says which uuid is the checkpoint's.
    let swapped = client.restore_cluster(&saved.uuid, &empty.uuid).await;
    assert!(
        matches!(&swapped, Err(Error::NotFound(m)) if m.contains(
            "not found: that is a checkpoint's uuid; are the two swapped?"
        )),
        "{swapped:?}"
    );
    let restore = client
        .restore_cluster(&empty.uuid, &saved.uuid)
        .await
        .unwrap();
    // The checkpoint may go right after the restore was queued.
    client.delete_checkpoint(&saved.uuid).await.unwrap();
    assert!(matches!(
        client.delete_checkpoint(&saved.uuid).await,
        Err(Error::NotFound(_))
    ));
    let restored = client
        .wait_for_task(&empty.uuid, &restore.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(restored.state, TaskState::Finished);
    let again = client
        .request(
            "request_b",
            &empty.uuid,
            &[("picture", &test)],
            ("label", "result_b"),
        )
        .await
        .unwrap();
    client
        .wait_for_task(&empty.uuid, &again.uuid, WAIT)
        .await
        .unwrap();
    let accuracy_again = client.check_dataset(&test, &again.uuid).await.unwrap();
    assert!(
        (accuracy_again - accuracy).abs() < 5.0,
        "{accuracy} vs {accuracy_again}"
    );
    assert!(
        server
            .data_dir
            .join("checkpoints")
            .read_dir()
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn tasks_are_validated_before_they_are_queued() {
    let (server, client, train, _test, tmp) = prepared().await;
    let cluster = client
        .create_cluster("cluster_v", SEED_TEMPLATE)
        .await
        .unwrap();
    let csv = tmp.path().join("one.csv");
    std::fs::write(&csv, "picture,label\n1,2\n").unwrap();
    let narrow = client.upload_csv("narrow", &csv).await.unwrap();
    let unknown = "8a1b2c3d-0000-4000-8000-123456789abc";
    let c = cluster.uuid.as_str();
    let expect = |r: Result<hanami_sdk::types::tasks::Task, Error>, status: u16, needle: &str| {
        let e = r.expect_err("the task was accepted");
        assert_eq!(e.status(), Some(status), "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    };
    expect(
        client
            .train(
                "task_x",
                unknown,
                &[("picture", &train)],
                &[("label", &train)],
            )
            .await,
        404,
        "Cluster",
    );
    expect(
        client
            .train("task_x", c, &[("pixels", &train)], &[("label", &train)])
            .await,
        404,
        "no input named 'pixels'",
    );
    expect(
        client
            .train("task_x", c, &[("picture", &train)], &[("digit", &train)])
            .await,
        404,
        "no output named 'digit'",
    );
    expect(
        client
            .train("task_x", c, &[("picture", unknown)], &[("label", &train)])
            .await,
        404,
        "not found",
    );
    expect(
        client
            .train(
                "task_x",
                c,
                &[("picture", "not-a-uuid")],
                &[("label", &train)],
            )
            .await,
        400,
        "regex",
    );
    expect(
        client
            .train(
                "task_x",
                c,
                &[("picture", &narrow.uuid)],
                &[("label", &train)],
            )
            .await,
        400,
        "784 neurons",
    );
    expect(
        client.train("task_x", c, &[], &[("label", &train)]).await,
        400,
        "'inputs'",
    );
    expect(
        client.train("task_x", c, &[("picture", &train)], &[]).await,
        400,
        "'outputs'",
    );
    expect(
        client
            .request("task_x", c, &[("picture", &train)], ("digit", "result_x"))
            .await,
        404,
        "no output",
    );
    expect(
        client
            .request("task_x", c, &[("picture", &train)], ("label", "no"))
            .await,
        400,
        "4 to 254",
    );
    expect(
        client
            .request("task_x", c, &[("picture", &train)], ("label", "bad$name"))
            .await,
        400,
        "regex",
    );

    let admin = server.admin().await;
    // Non-string dataset values, several results.
    admin
        .post(
            "task/train",
            &json!({"name": "task_x", "cluster_uuid": c, "inputs": {"picture": 5},
                                     "outputs": {"label": train}}),
        )
        .await
        .expect(400);
    admin
        .post(
            "task/request",
            &json!({"name": "task_x", "cluster_uuid": c, "inputs": {"picture": train},
                                       "results": {"label": "result_x", "other": "result_y"}}),
        )
        .await
        .expect(400);
    admin
        .post(
            "task/train",
            &json!({"name": "task_x", "cluster_uuid": c, "inputs": [],
                                     "outputs": {"label": train}}),
        )
        .await
        .expect(400);
    // A dataset without the column group.
    let labels_only = tmp.path().join("labels.csv");
    std::fs::write(&labels_only, "label\n1\n").unwrap();
    let ds = client
        .upload_csv("labels_only", &labels_only)
        .await
        .unwrap();
    expect(
        client
            .train("task_x", c, &[("picture", &ds.uuid)], &[("label", &train)])
            .await,
        404,
        "no columns named 'picture'",
    );
    // One of the right name but of another width, said in words that fit the count.
    let one_column = tmp.path().join("one_column.csv");
    std::fs::write(&one_column, "picture\n1\n").unwrap();
    let ds = client.upload_csv("one_column", &one_column).await.unwrap();
    expect(
        client
            .train("task_x", c, &[("picture", &ds.uuid)], &[("label", &train)])
            .await,
        400,
        "has 1 column named 'picture', but input 'picture' of the cluster has 784 neurons",
    );
    // No junk tasks were queued.
    assert!(client.tasks(c).await.unwrap().body.is_empty());

    // Template errors.
    admin
        .post("cluster", &json!({"name": "bad_b64", "template": "abc"}))
        .await
        .expect(400);
    let resp = admin
        .post(
            "cluster",
            &json!({"name": "bad_tpl", "template": "dmVyc2lvbjogMgo="}),
        )
        .await
        .expect(400);
    assert!(resp.body.contains("line 1"), "{}", resp.body);
    // An output the network can never grow into (on the -x side of the input, whose
    // hexagon is listed first).
    let swapped = SEED_TEMPLATE
        .replace("target: 1,1,1", "target: 9,9,9")
        .replace("target: 3,1,1", "target: 1,1,1")
        .replace("target: 9,9,9", "target: 3,1,1");
    let backwards = swapped.replace(
        "    1,1,1\n    2,1,1\n    3,1,1\n",
        "    3,1,1\n    2,1,1\n    1,1,1\n",
    );
    assert_ne!(backwards, swapped);
    let refused = client.create_cluster("backwards", &backwards).await;
    assert!(
        matches!(&refused, Err(Error::BadRequest(m)) if m.contains("cannot be reached from any input")),
        "{refused:?}"
    );
    // Listed after another hexagon, an input would reach the network a cycle late.
    let refused = client.create_cluster("late_input", &swapped).await;
    assert!(
        matches!(&refused, Err(Error::BadRequest(m)) if m.contains("list the input hexagons first")),
        "{refused:?}"
    );
    // An input whose only way on is another input's hexagon: its values would be ignored.
    let blocked = "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\nhexagons:\n    \
        1,1,1\n    2,1,1\n    3,1,1\n    4,1,1\ninputs:\n    x1:\n        target: 1,1,1\n        \
        number_of_inputs: 1\n    x2:\n        target: 2,1,1\n        number_of_inputs: 1\n\
        outputs:\n    y:\n        target: 4,1,1\n        number_of_outputs: 1\n";
    let refused = client.create_cluster("blocked", blocked).await;
    assert!(
        matches!(&refused, Err(Error::BadRequest(m))
            if m.contains("line 10, column 5 of the template: input 'x1' on hexagon 1,1,1 \
                cannot reach any output")),
        "{refused:?}"
    );
    admin
        .post("cluster", &json!({"name": "cluster_v", "template": ""}))
        .await
        .expect(409);
    admin
        .post("cluster", &json!({"name": "no_template"}))
        .await
        .expect(200);
    admin.get("cluster?uuid=fail_cluster").await.expect(400);
}

#[tokio::test]
async fn modes_queue_and_direct_io() {
    let (server, client, train, test, _tmp) = prepared().await;
    let cluster = client
        .create_cluster("cluster_d", SEED_TEMPLATE)
        .await
        .unwrap();
    let c = cluster.uuid.as_str();
    let admin = server.admin().await;

    // Direct IO refines a trained network (a fresh network needs varied samples to grow).
    train_to_end(&client, c, &train, "first_train").await;
    // A direct session needs DIRECT mode.
    assert!(client.direct_session(c).await.is_err());
    let changed = client.set_direct_mode(c, true).await.unwrap();
    assert_eq!(changed.new_state, "DIRECT");
    let again = client.set_direct_mode(c, true).await;
    assert!(
        matches!(&again, Err(Error::Conflict(m)) if m.contains("it is already in that mode; \
            if no direct-IO client uses it any more (one may have ended without switching it \
            back), switch it to TASK mode first")),
        "{again:?}"
    );
    // Tasks wait while the cluster is in DIRECT mode.
    let waiting = client
        .train("waits", c, &[("picture", &train)], &[("label", &train)])
        .await
        .unwrap();
    // Waiting for it ends with an error at the timeout, not before and not much later.
    let started = std::time::Instant::now();
    let waited = client
        .wait_for_task(c, &waiting.uuid, Duration::from_millis(300))
        .await;
    assert!(
        matches!(&waited, Err(Error::Timeout { what, waited })
            if what.ends_with("is still queued") && *waited == Duration::from_millis(300)),
        "{waited:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );

    let mut session = client.direct_session(c).await.unwrap();
    let mut picture = vec![0.0f32; 784];
    for col in 4..24 {
        picture[6 * 28 + col] = 200.0;
        picture[7 * 28 + col] = 200.0;
    }
    let mut label = vec![0.0f32; 10];
    label[1] = 1.0;
    // The server seeds each cluster at random; 100 steps teach most networks the picture,
    // some need a few hundred more (the request below checks it was learned).
    let mut learned = false;
    for _ in 0..10 {
        for _ in 0..100 {
            session
                .train(&[("picture", &picture)], &[("label", &label)])
                .await
                .unwrap();
        }
        let outputs = session.request(&[("picture", &picture)]).await.unwrap();
        if hanami_engine::argmax(&outputs[0].1) == 1 {
            learned = true;
            break;
        }
    }
    assert!(
        learned,
        "1,000 direct training steps did not teach the picture"
    );
    // Calls the client refuses before sending anything; the session goes on.
    let mut not_a_number = picture.clone();
    not_a_number[5] = f32::NAN;
    let mut beyond = label.clone();
    beyond[9] = 1.5;
    // More values than one message may carry (the connection broke under the write).
    let huge = vec![0.5f32; 5_000_000];
    for (refused, text) in [
        (session.request(&[]).await, "no values"),
        (
            session.request(&[("picture", &huge)]).await,
            "5000000 values for 'picture' would make a message of about 20000071 bytes; the \
             server takes at most 16777216 bytes (16 MiB) per message, about 4194286 values",
        ),
        (
            session.request(&[("picture", &not_a_number)]).await,
            "value 5 for 'picture' (NaN) is not a finite number",
        ),
        (
            session
                .train(&[("picture", &picture)], &[("label", &beyond)])
                .await
                .map(|()| Vec::new()),
            "expected value 9 for 'label' (1.5) is outside [0, 1]",
        ),
    ] {
        assert!(
            matches!(&refused, Err(Error::InvalidArgument(m)) if m.contains(text)),
            "{refused:?}"
        );
    }
    let outputs = session.request(&[("picture", &picture)]).await.unwrap();
    assert_eq!(outputs[0].0, "label");
    assert_eq!(outputs[0].1.len(), 10);
    assert_eq!(
        hanami_engine::argmax(&outputs[0].1),
        1,
        "{:?}",
        outputs[0].1
    );
    session.close().await.unwrap();
    assert_eq!(
        client.task(c, &waiting.uuid).await.unwrap().state,
        TaskState::Queued
    );

    // Invalid messages close the session; the server stays healthy.
    let mut session = client.direct_session(c).await.unwrap();
    assert!(
        session
            .train(&[("nonexistent", &picture)], &[])
            .await
            .is_err()
    );
    // A training sample needs expected values (sent in this session), within [0, 1].
    let mut session = client.direct_session(c).await.unwrap();
    let refused = session.train(&[("picture", &picture)], &[]).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("needs expected values")),
        "{refused:?}"
    );
    let mut session = client.direct_session(c).await.unwrap();
    let refused = session
        .train(&[("picture", &picture)], &[("label", &[0.0, 2.0])])
        .await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("outside [0, 1]")),
        "{refused:?}"
    );
    // More values than the interface has are refused, naming both counts; fewer update the
    // first values.
    let mut session = client.direct_session(c).await.unwrap();
    let long = vec![1.0f32; 5000];
    let refused = session.request(&[("picture", &long)]).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string()
            .contains("input 'picture' has 784 neurons, but the message holds 5000 values")),
        "{refused:?}"
    );
    // Later calls on the ended session say why it ended; closing it has nothing to do.
    let again = session.request(&[("picture", &picture)]).await;
    assert!(
        matches!(&again, Err(Error::WebSocket(m)) if m.starts_with("the session ended earlier (")
            && m.contains("has 784 neurons, but the message holds 5000 values")
            && m.ends_with("); open a new one")),
        "{again:?}"
    );
    session.close().await.unwrap();
    let mut session = client.direct_session(c).await.unwrap();
    session.request(&[("picture", &[1.0; 10])]).await.unwrap();
    // A call dropped before its answers came ends the session: the next would read them.
    {
        let inputs = [("picture", picture.as_slice())];
        let request = session.request(&inputs);
        tokio::pin!(request);
        // Polled once (the message goes out, the answers cannot be there yet), then dropped.
        tokio::select! {
            biased;
            answered = &mut request => panic!("answered at once: {answered:?}"),
            () = std::future::ready(()) => {}
        }
    }
    let after = session.request(&[("picture", &picture)]).await;
    assert!(
        matches!(&after, Err(Error::WebSocket(m)) if m.contains("an earlier call was dropped")),
        "{after:?}"
    );
    session.close().await.unwrap();

    let changed = client.set_direct_mode(c, false).await.unwrap();
    assert_eq!(changed.new_state, "TASK");
    assert!(matches!(
        client.set_direct_mode(c, false).await,
        Err(Error::Conflict(_))
    ));
    let done = client.wait_for_task(c, &waiting.uuid, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Finished);
    admin
        .put("cluster/set_mode", &json!({"uuid": c, "new_state": "FOO"}))
        .await
        .expect(400);
    // A direct session attached to a TASK-mode cluster is refused.
    assert!(client.direct_session(c).await.is_err());

    // Hosts: one CPU host; switching to it is accepted, unknown hosts are not.
    let hosts = client.hosts().await.unwrap();
    let host = hosts.body[0][0].as_str().unwrap().to_owned();
    assert_eq!(client.switch_host(c, &host).await.unwrap().uuid, c);
    assert!(matches!(
        client
            .switch_host(c, "8a1b2c3d-0000-4000-8000-123456789abc")
            .await,
        Err(Error::NotFound(_))
    ));
    let _ = test;
}

#[tokio::test]
async fn aborting_tasks_and_deleting_clusters() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "big", 60000);
    let big = client
        .upload_mnist("big_set", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = client
        .create_cluster("cluster_x", SEED_TEMPLATE)
        .await
        .unwrap();
    let c = cluster.uuid.as_str();
    let first = client
        .train("first", c, &[("picture", &big)], &[("label", &big)])
        .await
        .unwrap();
    let second = client
        .train("second", c, &[("picture", &big)], &[("label", &big)])
        .await
        .unwrap();
    let third = client
        .train("third", c, &[("picture", &big)], &[("label", &big)])
        .await
        .unwrap();
    assert_eq!(
        client.task(c, &second.uuid).await.unwrap().state,
        TaskState::Queued
    );
    // No DIRECT mode while tasks run or wait, nor without a network: the answer says which.
    let busy = client.set_direct_mode(c, true).await;
    assert!(
        matches!(&busy, Err(Error::Conflict(m)) if m.ends_with("a task is queued or running")),
        "{busy:?}"
    );
    let empty = client.create_cluster("empty_one", "").await.unwrap().uuid;
    let bare = client.set_direct_mode(&empty, true).await;
    assert!(
        matches!(&bare, Err(Error::Conflict(m)) if m.ends_with("it has no network yet: restore a checkpoint into it first")),
        "{bare:?}"
    );
    // Nor tasks or checkpoints: the same conflict, until a checkpoint is restored into it.
    let train = client
        .train("bare", &empty, &[("picture", &big)], &[("label", &big)])
        .await;
    assert!(
        matches!(&train, Err(Error::Conflict(m)) if m.contains("has no network yet")),
        "{train:?}"
    );
    let save = client.save_cluster(&empty, "bare").await;
    assert!(
        matches!(&save, Err(Error::Conflict(m)) if m.contains("has no network to save yet")),
        "{save:?}"
    );
    client.delete_cluster(&empty).await.unwrap();
    // A queued task leaves the queue.
    client.delete_task(c, &second.uuid).await.unwrap();
    assert!(matches!(
        client.task(c, &second.uuid).await,
        Err(Error::NotFound(_))
    ));
    // An active task stops at the next row.
    let active = loop {
        let t = client.task(c, &first.uuid).await.unwrap();
        if t.state == TaskState::Active && t.current_cycle > 0 {
            break t;
        }
        assert!(
            t.state == TaskState::Queued || t.state == TaskState::Active,
            "{t:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    client.delete_task(c, &first.uuid).await.unwrap();
    // The deletion answers once the task has stopped: from then on it reads aborted.
    assert_eq!(
        client.task(c, &first.uuid).await.unwrap().state,
        TaskState::Aborted
    );
    let stopped = client.wait_for_task(c, &first.uuid, WAIT).await.unwrap();
    assert_eq!(stopped.state, TaskState::Aborted);
    assert_eq!(
        stopped.note.as_deref(),
        Some("stopped by its deletion before its end")
    );
    assert!(stopped.current_cycle < 60000, "{stopped:?}");
    assert!(stopped.current_cycle >= active.current_cycle);
    // The next task starts; deleting the cluster stops it.
    loop {
        if client.task(c, &third.uuid).await.unwrap().state == TaskState::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A save and a request queued behind it go with the cluster: no checkpoint, no result.
    let save = client.save_cluster(c, "never_made").await.unwrap();
    let request = client
        .request(
            "never_run",
            c,
            &[("picture", &big)],
            ("label", "never_written"),
        )
        .await
        .unwrap();
    client.delete_cluster(c).await.unwrap();
    assert!(matches!(
        client.task(c, &third.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(client.clusters().await.unwrap().body.is_empty());
    let checkpoint = client.checkpoint(&save.uuid).await;
    assert!(
        matches!(checkpoint, Err(Error::NotFound(_))),
        "{checkpoint:?}"
    );
    assert!(client.checkpoints().await.unwrap().body.is_empty());
    let result = client.dataset(&request.uuid).await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
}

/// A task deleted after its last row, before its end is recorded, can no longer stop: it
/// finishes, and the deletion removes it as it removes any ended task (instead of answering
/// 200 and leaving it listed as finished).
#[tokio::test]
async fn a_task_deleted_as_it_finishes_is_removed() {
    let server = common::launch()
        .pause_at("task-end:before-record", 1500)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "ending", 200);
    let data = client
        .upload_mnist("ending", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "ending").await;
    let task = client
        .train(
            "ending",
            &cluster,
            &[("picture", &data)],
            &[("label", &data)],
        )
        .await
        .unwrap()
        .uuid;
    common::until_paused(&server, "task-end:before-record", 1).await;
    let ending = client.task(&cluster, &task).await.unwrap();
    assert_eq!(ending.state, TaskState::Active, "{ending:?}");
    assert_eq!(ending.current_cycle, 200);
    client.delete_task(&cluster, &task).await.unwrap();
    assert!(matches!(
        client.task(&cluster, &task).await,
        Err(Error::NotFound(_))
    ));
    assert!(client.tasks(&cluster).await.unwrap().body.is_empty());
    // Its stored row is gone too: a restart does not bring it back.
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert!(client.tasks(&cluster).await.unwrap().body.is_empty());
}

/// A task that ends while another program locks the database for longer than the busy
/// timeout (10 s) waits for the lock and is then recorded finished with its result (it was
/// ended aborted, and its complete result left unregistered).
#[tokio::test]
async fn a_task_ending_while_another_program_locks_the_database_waits_for_it() {
    let server = common::launch()
        .pause_at("task-end:before-record", 3000)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "locked", 100);
    let data = client
        .upload_mnist("locked", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "locked").await;
    let task = client
        .request(
            "locked",
            &cluster,
            &[("picture", &data)],
            ("label", "locked-result"),
        )
        .await
        .unwrap()
        .uuid;
    common::until_paused(&server, "task-end:before-record", 1).await;
    let lock = common::DatabaseLock::take(&server.data_dir).await;
    // Its first try waits the busy timeout (10 s) before it fails.
    let waits = "the task's end waits until it can be recorded";
    common::until_logged(&server, waits, Duration::from_secs(25)).await;
    let waiting = client.task(&cluster, &task).await.unwrap();
    assert_eq!(waiting.state, TaskState::Active, "{waiting:?}");
    lock.release().await;

    let done = finished(&client, &cluster, &task).await;
    assert_eq!(done.current_cycle, 100);
    let note = done.note.unwrap_or_default();
    assert!(note.contains("its end waited for the database"), "{note}");
    let result = client.dataset(&task).await.unwrap();
    assert_eq!(result.name, "locked-result");
    // As recorded: a restart finds the same.
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let again = client.task(&cluster, &task).await.unwrap();
    assert_eq!(again.state, TaskState::Finished, "{again:?}");
    client.dataset(&task).await.unwrap();
}

/// A save that starts at once keeps its request until it has ended, but not while its end
/// waits for a database that another program locks: the request answers once the end's
/// first try has waited the busy timeout (it waited as long as the lock lasted), and the
/// save ends once the lock is gone.
#[tokio::test]
async fn a_save_waiting_for_a_locked_database_answers_its_request() {
    let server = common::launch()
        .pause_at("task-end:before-record", 3000)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::seed_cluster(&client, "locked save").await;
    let asked = std::time::Instant::now();
    let save = tokio::spawn({
        let client = client.clone();
        let cluster = cluster.clone();
        async move { client.save_cluster(&cluster, "locked save").await }
    });
    common::until_paused(&server, "task-end:before-record", 1).await;
    let lock = common::DatabaseLock::take(&server.data_dir).await;
    let saved = tokio::time::timeout(Duration::from_secs(25), save)
        .await
        .expect("the request waited for the lock")
        .unwrap()
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );
    let waiting = client.task(&cluster, &saved.uuid).await.unwrap();
    assert_eq!(waiting.state, TaskState::Active, "{waiting:?}");
    lock.release().await;
    finished(&client, &cluster, &saved.uuid).await;
    client.checkpoint(&saved.uuid).await.unwrap();
}

/// A save that starts at once and takes longer than a write waits for the database (here
/// held 11 s before its end) still answers once it is done: the checkpoint is there (the
/// request was answered after 10 s, the save still running).
#[tokio::test]
async fn a_slow_save_that_started_at_once_answers_when_it_is_done() {
    let server = common::launch()
        .pause_at("task-end:before-record", 11_000)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::seed_cluster(&client, "slow save").await;
    let asked = std::time::Instant::now();
    let saved = client.save_cluster(&cluster, "slow save").await.unwrap();
    assert!(
        asked.elapsed() >= Duration::from_secs(11),
        "{:?}",
        asked.elapsed()
    );
    client.checkpoint(&saved.uuid).await.unwrap();
}

/// A cluster keeps its `max_ended_tasks` most recent ended tasks: queuing one more forgets
/// the oldest ended ones, from the list and from the database.
#[tokio::test]
async fn a_cluster_keeps_a_bounded_number_of_ended_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), "max_ended_tasks = 2\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let (images, labels) = pattern_mnist(tmp.path(), "history", 20);
    let data = client
        .upload_mnist("history", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "history").await;
    let mut tasks = Vec::new();
    for name in ["first", "second", "third", "fourth"] {
        let task = client
            .train(name, &cluster, &[("picture", &data)], &[("label", &data)])
            .await
            .unwrap()
            .uuid;
        finished(&client, &cluster, &task).await;
        tasks.push(task);
    }
    let listed = |body: Vec<Vec<serde_json::Value>>| -> Vec<String> {
        body.iter()
            .map(|row| row[0].as_str().unwrap().to_owned())
            .collect()
    };
    // The fourth was queued with three ended: the first was forgotten then.
    assert_eq!(
        listed(client.tasks(&cluster).await.unwrap().body),
        tasks[1..]
    );
    assert!(matches!(
        client.task(&cluster, &tasks[0]).await,
        Err(Error::NotFound(_))
    ));
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    assert_eq!(
        listed(client.tasks(&cluster).await.unwrap().body),
        tasks[1..]
    );
}

/// Direct-IO steps of all sessions run at most `max_running_tasks` at once, as tasks do:
/// sessions on many clusters cannot take every core.
#[tokio::test]
async fn direct_io_steps_take_turns_as_tasks_do() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), "max_running_tasks = 1\n")
        .0
        .pause_at("direct-step", 1500)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let mut steps = Vec::new();
    for name in ["first", "second"] {
        let cluster = common::direct_cluster(&client, name).await;
        let mut session = client.direct_session(&cluster).await.unwrap();
        steps.push(tokio::spawn(async move {
            session.request(&[("picture", &[0.0; 784])]).await
        }));
    }
    let stepping = || common::pauses(&server, "direct-step");
    common::until_paused(&server, "direct-step", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stepping(), 1, "the two steps ran at once");
    for step in steps {
        step.await.unwrap().unwrap();
    }
    assert_eq!(stepping(), 2);
}

#[tokio::test]
async fn clusters_are_scoped_and_block_project_deletion() {
    let server = TestServer::start();
    let admin_http = server.admin().await;
    let _ = member(&server, &admin_http, "alice", "proj_a", false).await;
    let _ = member(&server, &admin_http, "bobby", "proj_a", false).await;
    let alice = sdk(&server, "alice", "password1").await;
    let bobby = sdk(&server, "bobby", "password1").await;
    let admin = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = alice
        .create_cluster("shared_name", SEED_TEMPLATE)
        .await
        .unwrap();
    // Names are unique per scope only.
    bobby
        .create_cluster("shared_name", SEED_TEMPLATE)
        .await
        .unwrap();
    assert!(matches!(
        alice.create_cluster("shared_name", "").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        bobby.cluster(&cluster.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        bobby.delete_cluster(&cluster.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        bobby.tasks(&cluster.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(bobby.clusters().await.unwrap().body.len(), 1);
    assert_eq!(admin.clusters().await.unwrap().body.len(), 2);
    let saved = alice
        .save_cluster(&cluster.uuid, "alice_ckpt")
        .await
        .unwrap();
    assert!(matches!(
        bobby.checkpoint(&saved.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        bobby.restore_cluster(&cluster.uuid, &saved.uuid).await,
        Err(Error::NotFound(_))
    ));
    // Nor does a swapped restore tell him that the uuid is someone's checkpoint.
    let swapped = bobby.restore_cluster(&saved.uuid, &cluster.uuid).await;
    assert!(
        matches!(&swapped, Err(Error::NotFound(m)) if !m.contains("checkpoint")),
        "{swapped:?}"
    );

    let Err(Error::Conflict(message)) = admin.delete_project("proj_a").await else {
        panic!("deleted a project with clusters");
    };
    assert!(
        message.contains("cluster") && message.contains("checkpoint"),
        "{message}"
    );

    // Clusters and checkpoints survive a restart, with their scopes.
    let server = server.restart();
    let alice = sdk(&server, "alice", "password1").await;
    let bobby = sdk(&server, "bobby", "password1").await;
    assert_eq!(alice.clusters().await.unwrap().body.len(), 1);
    assert_eq!(alice.cluster(&cluster.uuid).await.unwrap(), cluster);
    assert!(matches!(
        bobby.cluster(&cluster.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(alice.checkpoints().await.unwrap().body.len(), 1);
    let fresh = alice.create_cluster("fresh", "").await.unwrap();
    let restore = alice
        .restore_cluster(&fresh.uuid, &saved.uuid)
        .await
        .unwrap();
    let done = alice
        .wait_for_task(&fresh.uuid, &restore.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
}

#[tokio::test]
async fn one_name_gives_one_cluster_even_for_requests_at_the_same_moment() {
    use base64::Engine as _;

    let server = TestServer::start();
    let admin = server.admin().await;
    let template = base64::engine::general_purpose::STANDARD.encode(SEED_TEMPLATE);
    let body = json!({"name": "raced", "template": template});
    let answers =
        futures_util::future::join_all((0..8).map(|_| admin.post("cluster", &body))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        7,
        "{statuses:?}"
    );
    let list = admin.get("cluster/all").await.expect(200).json();
    let name = list["header"]
        .as_array()
        .unwrap()
        .iter()
        .position(|h| h == "name")
        .unwrap();
    let named: Vec<_> = list["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row[name] == "raced")
        .collect();
    assert_eq!(named.len(), 1, "{list}");
}

#[tokio::test]
async fn one_of_the_deletions_of_a_cluster_at_the_same_moment_deletes_it() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    for round in 0..10 {
        let uuid = common::seed_cluster(&client, &format!("doomed{round}")).await;
        let path = format!("cluster?uuid={uuid}");
        let answers = futures_util::future::join_all((0..8).map(|_| admin.delete(&path))).await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses.iter().filter(|&&s| s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|&s| s == 200 || s == 404),
            "{statuses:?}"
        );
        admin.get(&path).await.expect(404);
    }
}

#[tokio::test]
async fn a_network_at_its_memory_budget_stops_growing_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), "cluster_memory_mib = 1\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // A template whose network is beyond the budget before it learns anything is refused.
    let wide = SEED_TEMPLATE.replace("number_of_inputs: 784", "number_of_inputs: 60000");
    match client.create_cluster("wide", &wide).await {
        Err(Error::BadRequest(message)) => {
            assert!(
                message.contains("more than the 1 MiB a cluster's network may hold"),
                "{message}"
            );
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    let (images, labels) = pattern_mnist(tmp.path(), "budget", 2000);
    let data = client
        .upload_mnist("budget", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "small").await;
    let task = client
        .train("grow", &cluster, &[("picture", &data)], &[("label", &data)])
        .await
        .unwrap();
    // The task still finishes; the error log says that the network stopped growing.
    let done = client
        .wait_for_task(&cluster, &task.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
    let log = server
        .admin()
        .await
        .get("error_log?page=0")
        .await
        .expect(200);
    assert!(
        log.body.contains("reached its memory budget of 1 MiB"),
        "{}",
        log.body
    );
    // The task says so too, for its owner (the error log is for admins only), also after a
    // restart.
    let note = done.note.expect("a note");
    assert!(
        note.contains("reached its memory budget of 1 MiB")
            && note.ends_with("the network stopped growing and learned with what it had"),
        "{note}"
    );
    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let again = client.task(&cluster, &task.uuid).await.unwrap();
    assert_eq!(again.note.as_deref(), Some(note.as_str()));
}

/// The rows of a dataset can be read back (`dataset/rows`, an addition), a request task's
/// result too; an output of one neuron writes its value there (one-hot, every row of it
/// would be 1, as the original's were).
#[tokio::test]
async fn results_can_be_read_and_one_neuron_outputs_write_their_values() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = common::upload_csv_text(
        &client,
        tmp.path(),
        "two_inputs",
        &two_inputs_csv(usize::MAX),
    )
    .await;
    let first = client.dataset_rows(&data, 0, 3).await.unwrap();
    assert_eq!(
        (first.start, first.number_of_rows, first.number_of_columns),
        (0, 1000, 4)
    );
    assert_eq!(
        first.rows,
        [
            [50.0, 0.0, 1.0, 0.0],
            [0.0, 51.0, 0.0, 1.0],
            [52.0, 0.0, 1.0, 0.0]
        ]
    );
    // Fewer rows where the dataset ends, none at its end, a 400 beyond it.
    assert_eq!(
        client
            .dataset_rows(&data, 998, 10)
            .await
            .unwrap()
            .rows
            .len(),
        2
    );
    assert!(
        client
            .dataset_rows(&data, 1000, 1)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    let beyond = client.dataset_rows(&data, 1001, 1).await;
    assert!(
        matches!(&beyond, Err(Error::BadRequest(m)) if m.contains("'start' is at most 1000")),
        "{beyond:?}"
    );
    // A count beyond the end asks for the rest; an answer holds at most 2^18 values (330
    // rows of an MNIST dataset's 794), whatever the count.
    let rest = client
        .dataset_rows(&data, 900, u64::MAX >> 1)
        .await
        .unwrap();
    assert_eq!(rest.rows.len(), 100);
    let (images, labels) = pattern_mnist(tmp.path(), "wide_rows", 400);
    let wide = client
        .upload_mnist("wide_rows", &images, &labels)
        .await
        .unwrap()
        .uuid;
    assert_eq!(
        client
            .dataset_rows(&wide, 70, 1000)
            .await
            .unwrap()
            .rows
            .len(),
        330
    );
    let too_many = client.dataset_rows(&wide, 0, 1000).await;
    assert!(
        matches!(&too_many, Err(Error::BadRequest(m)) if m.contains("'count' is at most 330")),
        "{too_many:?}"
    );
    assert!(matches!(
        client
            .dataset_rows("8a1b2c3d-0000-4000-8000-123456789abc", 0, 1)
            .await,
        Err(Error::NotFound(_))
    ));

    let cluster = client
        .create_cluster("one_neuron", TWO_INPUTS_TWO_OUTPUTS)
        .await
        .unwrap()
        .uuid;
    let inputs = [("x0", data.as_str()), ("x1", data.as_str())];
    let train = client
        .train("train", &cluster, &inputs, &[("a", &data), ("b", &data)])
        .await
        .unwrap();
    finished(&client, &cluster, &train.uuid).await;
    let request = client
        .request("answers", &cluster, &inputs, ("a", "answers_a"))
        .await
        .unwrap();
    finished(&client, &cluster, &request.uuid).await;
    let result = client.dataset_rows(&request.uuid, 0, 1000).await.unwrap();
    assert_eq!((result.number_of_rows, result.number_of_columns), (1000, 1));
    let values: Vec<f32> = result.rows.iter().map(|row| row[0]).collect();
    assert!(
        values.iter().all(|v| (0.0..=1.0).contains(v)) && values.iter().any(|&v| v != 1.0),
        "{values:?}"
    );
}

/// Trains a new cluster of `template` on the CSV table `csv` (inputs `x0` and `x1`, the
/// outputs `outputs`) and returns the cluster, the dataset and the finished task's note.
async fn note_of_training(
    client: &hanami_sdk::Client,
    template: &str,
    csv: &str,
    outputs: &[&str],
) -> (String, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::upload_csv_text(client, tmp.path(), "table", csv).await;
    let cluster = client
        .create_cluster("network", template)
        .await
        .unwrap()
        .uuid;
    let inputs = [("x0", data.as_str()), ("x1", data.as_str())];
    let outputs: Vec<_> = outputs.iter().map(|&o| (o, data.as_str())).collect();
    let task = client
        .train("training", &cluster, &inputs, &outputs)
        .await
        .unwrap();
    let note = finished(client, &cluster, &task.uuid)
        .await
        .note
        .expect("a note");
    (cluster, data, note)
}

/// A finished training that left an output it trained out of the network's reach (nothing
/// grew into its hexagon: it answers 0 and learned nothing) says so in its note, and warns
/// in the server log; the error log, which is for the server's own failures, has no entry
/// of it (a healthy workflow meets this now and then: growth is drawn at random).
#[tokio::test]
async fn a_training_that_reached_no_output_says_so() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // Inputs that never fire: nothing grows.
    let csv = "x0,x1,a,b\n".to_owned() + &"0,0,1,0\n".repeat(50);
    let (cluster, data, note) =
        note_of_training(&client, TWO_INPUTS_TWO_OUTPUTS, &csv, &["a"]).await;
    // Which inputs can lead to an output's hexagon is drawn with the cluster.
    assert!(
        note.starts_with(
            "after this training output 'a' answers 0 and learned nothing: growth can reach \
             its hexagon only from input"
        ) && note.contains("held a value above 0 in a cycle that grows the network")
            && !note.contains("'b'"),
        "{note}"
    );
    // A request that answers such an output says so too.
    let request = client
        .request(
            "silent_ask",
            &cluster,
            &[("x0", &data), ("x1", &data)],
            ("b", "silent_b"),
        )
        .await
        .unwrap();
    let note = finished(&client, &cluster, &request.uuid)
        .await
        .note
        .expect("a note");
    assert!(
        note.starts_with("after this request output 'b' answers 0 and learned nothing"),
        "{note}"
    );
    assert!(
        server.logged().contains("WARN") && server.logged().contains(&note),
        "{}",
        server.logged()
    );
    let log = error_log(&server).await;
    assert!(!log.contains("answers 0"), "{log}");
}

/// Two lines of hexagons far apart: x0 can grow only towards a, x1 only towards b.
const TWO_LINES: &str = concat!(
    "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n",
    "hexagons:\n    1,1,1\n    1,9,1\n    2,1,1\n    3,1,1\n    2,9,1\n    3,9,1\n",
    "inputs:\n    x0:\n        target: 1,1,1\n        number_of_inputs: 1\n",
    "    x1:\n        target: 1,9,1\n        number_of_inputs: 1\n",
    "outputs:\n    a:\n        target: 3,1,1\n        number_of_outputs: 1\n",
    "    b:\n        target: 3,9,1\n        number_of_outputs: 1\n",
);

/// Where a network grew, but not from the only input that leads to an output, the note of
/// the task names that input as the reason (not the random growth).
#[tokio::test]
async fn an_output_behind_a_silent_input_names_it() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let csv = "x0,x1,a,b\n".to_owned() + &"60,0,1,0\n70,0,0,1\n".repeat(20);
    let (_, _, note) = note_of_training(&client, TWO_LINES, &csv, &["a", "b"]).await;
    assert!(
        note.contains(
            "output 'b' answers 0 and learned nothing: growth can reach its hexagon only from \
             input 'x1', which has not yet held a value above 0 in a cycle that grows the \
             network"
        ),
        "{note}"
    );
    assert!(!note.contains("'x0'"), "{note}");
}

/// A direct-IO session whose training leaves an output it trained out of the network's
/// reach says so in the error log when it ends, as a task's note does; one that trained
/// nothing says nothing.
#[tokio::test]
async fn a_direct_io_session_tells_of_outputs_its_training_did_not_reach() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = client
        .create_cluster("two_lines", TWO_LINES)
        .await
        .unwrap()
        .uuid;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let idle = client.direct_session(&cluster).await.unwrap();
    idle.close().await.unwrap();
    let mut session = client.direct_session(&cluster).await.unwrap();
    for sample in 0..40 {
        let (a, b) = if sample % 2 == 0 {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        session
            .train(
                &[("x0", &[60.0 + sample as f32]), ("x1", &[0.0])],
                &[("a", &[a]), ("b", &[b])],
            )
            .await
            .unwrap();
    }
    session.close().await.unwrap();
    let log = common::eventually(Duration::from_secs(10), || async {
        let log = error_log(&server).await;
        if log.contains("direct-IO session of cluster 'two_lines'") {
            Ok(log)
        } else {
            Err(log)
        }
    })
    .await;
    assert!(
        log.contains(
            "after this direct-IO session's training output 'b' answers 0 and learned \
             nothing: growth can reach its hexagon only from input 'x1', which has not yet \
             held a value above 0"
        ) && !log.contains("output 'a'"),
        "{log}"
    );
    assert_eq!(
        log.matches("direct-IO session of cluster 'two_lines'")
            .count(),
        1,
        "{log}"
    );
}

/// A direct-IO sample that names only some inputs leaves the others at the values the
/// network holds, as a task does (a session started them at zeros, so direct IO answered
/// other values than a request task on the same network).
#[tokio::test]
async fn direct_io_leaves_the_inputs_it_does_not_name_as_the_network_holds_them() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    // A last row with both inputs lit leaves x0 = x1 = 80.
    let csv = two_inputs_csv(usize::MAX) + "80,80,1,1\n";
    let data = common::upload_csv_text(&client, tmp.path(), "two_inputs", &csv).await;
    // A network of this small template stays dead on some random draws (about one cluster
    // in a hundred): its answers then cannot tell the inputs apart, and it is trained anew.
    for attempt in 0..5 {
        let answers = answers_of_restored_copies(&client, &data, attempt).await;
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0], answers[2]);
        // The inputs make a difference, so the first three agree on their values.
        if answers[0] != answers[3] {
            return;
        }
    }
    panic!("five trained networks answered every input alike");
}

/// Trains a cluster of [`TWO_INPUTS_TWO_OUTPUTS`] on `data` (its last row leaves both inputs
/// at 80), restores its checkpoint into four clusters, and returns what each answers to four
/// direct-IO requests: given both inputs as the network holds them, only x0, only x1, and
/// zeros (what a session that started at zeros used).
async fn answers_of_restored_copies(
    client: &hanami_sdk::Client,
    data: &str,
    attempt: usize,
) -> Vec<Vec<Vec<(String, Vec<f32>)>>> {
    let template = TWO_INPUTS_TWO_OUTPUTS;
    let trained = client
        .create_cluster(&format!("trained_{attempt}"), template)
        .await
        .unwrap()
        .uuid;
    let task = client
        .train(
            "train",
            &trained,
            &[("x0", data), ("x1", data)],
            &[("a", data), ("b", data)],
        )
        .await
        .unwrap();
    let done = client.wait_for_task(&trained, &task.uuid, WAIT).await;
    assert_eq!(done.unwrap().state, TaskState::Finished);
    let checkpoint = client
        .save_cluster(&trained, &format!("two_inputs_{attempt}"))
        .await
        .unwrap();
    client
        .wait_for_task(&trained, &checkpoint.uuid, WAIT)
        .await
        .unwrap();
    let mut answers = Vec::new();
    for (name, inputs) in [
        ("both", &[("x0", &[80.0f32][..]), ("x1", &[80.0][..])][..]),
        ("only_x0", &[("x0", &[80.0][..])][..]),
        ("only_x1", &[("x1", &[80.0][..])][..]),
        ("zeros", &[("x0", &[0.0][..]), ("x1", &[0.0][..])][..]),
    ] {
        let name = format!("{name}_{attempt}");
        let cluster = client.create_cluster(&name, template).await.unwrap().uuid;
        let restore = client
            .restore_cluster(&cluster, &checkpoint.uuid)
            .await
            .unwrap();
        client
            .wait_for_task(&cluster, &restore.uuid, WAIT)
            .await
            .unwrap();
        client.set_direct_mode(&cluster, true).await.unwrap();
        let mut session = client.direct_session(&cluster).await.unwrap();
        // A few samples: the first answers mostly from what the last training row left in
        // the hidden neurons.
        let mut answered = Vec::new();
        for _ in 0..4 {
            answered.push(session.request(inputs).await.unwrap());
        }
        answers.push(answered);
        session.close().await.unwrap();
    }
    answers
}

/// A cluster whose template says `request_growth: false` answers request tasks without
/// changing its network's structure; one without the setting grows on inputs beyond what
/// it was trained on (the original's behaviour).
#[tokio::test]
async fn frozen_requests_leave_the_structure_as_it_was() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let upload = |name: &'static str, low: u32| {
        let mut csv = String::from("x,y\n");
        for row in 0..300 {
            csv.push_str(&format!("{},{}\n", low + row % 50, row % 2));
        }
        let (client, dir) = (&client, tmp.path());
        async move { common::upload_csv_text(client, dir, name, &csv).await }
    };
    let trained = upload("trained", 10).await;
    // Potentials well above those of training, so that a growing network adds synapses.
    let beyond = upload("beyond", 200).await;
    let template = |settings: &str| {
        format!(
            "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n{settings}hexagons:\n    \
             1,1,1\n    2,1,1\n    3,1,1\ninputs:\n    x:\n        target: 1,1,1\n        \
             number_of_inputs: 1\noutputs:\n    y:\n        target: 3,1,1\n        \
             number_of_outputs: 1\n"
        )
    };
    let synapses = |cluster: &str| {
        let bytes = std::fs::read(server.data_dir.join("clusters").join(cluster)).unwrap();
        hanami_engine::Cluster::restore(&bytes)
            .unwrap()
            .size()
            .synapses
    };
    for (name, settings, grows) in [
        ("frozen", "    request_growth: false\n", false),
        ("growing", "", true),
    ] {
        let cluster = client
            .create_cluster(name, &template(settings))
            .await
            .unwrap()
            .uuid;
        let task = client
            .train(name, &cluster, &[("x", &trained)], &[("y", &trained)])
            .await
            .unwrap();
        let done = client.wait_for_task(&cluster, &task.uuid, WAIT).await;
        assert_eq!(done.unwrap().state, TaskState::Finished);
        let before = synapses(&cluster);
        assert!(before > 0, "{name}: training grew nothing");
        let task = client
            .request(name, &cluster, &[("x", &beyond)], ("y", name))
            .await
            .unwrap();
        let done = client.wait_for_task(&cluster, &task.uuid, WAIT).await;
        assert_eq!(done.unwrap().state, TaskState::Finished);
        let answers = client.dataset(&task.uuid).await.unwrap();
        assert_eq!(answers.number_of_rows, 300, "{name}");
        let after = synapses(&cluster);
        assert_eq!(
            after > before,
            grows,
            "{name}: {before} -> {after} synapses"
        );
    }
}

#[tokio::test]
async fn the_clusters_share_one_memory_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), "clusters_memory_mib = 1\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // A network that takes more than the clusters may hold together is not even created,
    // and the refusal says that no deletion would make room (the 409 advised deleting
    // clusters, of which there were none).
    let wide = SEED_TEMPLATE.replace("number_of_inputs: 784", "number_of_inputs: 60000");
    assert_ne!(wide, SEED_TEMPLATE);
    match client.create_cluster("wide", &wide).await {
        Err(Error::BadRequest(message)) => assert!(
            message.contains("more than the 1 MiB all clusters' networks may hold together")
                && message.ends_with("(clusters_memory_mib): it could never fit"),
            "{message}"
        ),
        other => panic!("expected a 400, got {other:?}"),
    }
    let (images, labels) = pattern_mnist(tmp.path(), "shared", 2000);
    let data = client
        .upload_mnist("shared", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let first = common::seed_cluster(&client, "first").await;
    let second = common::seed_cluster(&client, "second").await;
    // The first grows until the clusters together hold 1 MiB; its task still finishes.
    let task = client
        .train("grow", &first, &[("picture", &data)], &[("label", &data)])
        .await
        .unwrap();
    let done = client
        .wait_for_task(&first, &task.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
    let log = error_log(&server).await;
    assert!(
        log.contains("reached the 1 MiB they may hold together (clusters_memory_mib)")
            && log.contains("(the clusters of all users share this budget: ask an administrator"),
        "{log}"
    );
    // The second cluster cannot grow at all now: its note names the budget as the reason
    // its output learned nothing (it blamed inputs that had never held a value above 0).
    let starved = client
        .train(
            "starved",
            &second,
            &[("picture", &data)],
            &[("label", &data)],
        )
        .await
        .unwrap();
    let starved = client
        .wait_for_task(&second, &starved.uuid, WAIT)
        .await
        .unwrap();
    let note = starved.note.unwrap_or_default();
    assert!(
        note.contains(
            "after this training output 'label' answers 0 and learned nothing: the network has \
             not grown into its hexagon, and the memory budget keeps it from growing further"
        ) && !note.contains("held a value above 0"),
        "{note}"
    );
    // Its network does not fit a second time, so the second cluster keeps its own: the
    // restore stops while it rebuilds it, as soon as it takes more than there is room for.
    let checkpoint = client.save_cluster(&first, "grown").await.unwrap().uuid;
    let saved = client
        .wait_for_task(&first, &checkpoint, WAIT)
        .await
        .unwrap();
    assert_eq!(saved.state, TaskState::Finished);
    let restore = client.restore_cluster(&second, &checkpoint).await.unwrap();
    let log = aborted_with_log(&server, &client, &second, &restore.uuid).await;
    assert!(
        log.contains("is not restored, the cluster keeps its network: the network takes more than")
            && log.contains("KiB left of the 1 MiB their networks may hold together"),
        "{log}"
    );
    let kept = client.save_cluster(&second, "kept").await.unwrap().uuid;
    let kept = client.wait_for_task(&second, &kept, WAIT).await.unwrap();
    assert_eq!(kept.state, TaskState::Finished);
    // A deleted cluster gives its memory back.
    client.delete_cluster(&first).await.unwrap();
    let restore = client.restore_cluster(&second, &checkpoint).await.unwrap();
    let restored = client
        .wait_for_task(&second, &restore.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(restored.state, TaskState::Finished);
}

/// A cluster takes a bounded number of direct-IO sessions at once (each stages a full set of
/// values), and each of them is answered.
#[tokio::test]
async fn a_cluster_takes_a_bounded_number_of_direct_sessions() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::direct_cluster(&client, "shared_one").await;
    let picture = vec![0.0f32; 784];
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let mut session = client.direct_session(&cluster).await.unwrap();
        session.request(&[("picture", &picture)]).await.unwrap();
        sessions.push(session);
    }
    let refused = client.direct_session(&cluster).await.map(drop);
    assert!(
        matches!(&refused, Err(Error::Conflict(e)) if e.contains("has 8 direct-IO sessions open")),
        "{refused:?}"
    );
    // A closed session makes room (its slot is given back once its end is handled).
    sessions.pop().unwrap().close().await.unwrap();
    let mut ninth = common::eventually(Duration::from_secs(10), || async {
        client.direct_session(&cluster).await.map_err(|e| {
            assert!(e.to_string().contains("direct-IO sessions open"), "{e}");
            e.to_string()
        })
    })
    .await;
    ninth.request(&[("picture", &picture)]).await.unwrap();
    for session in &mut sessions {
        session.request(&[("picture", &picture)]).await.unwrap();
    }
}

/// Growth that the memory budget refuses during a direct-IO session is reported when the
/// session ends, as it is for tasks.
#[tokio::test]
async fn growth_refused_during_direct_io_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), "clusters_memory_mib = 1\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // A network that leaves little of the budget for growth.
    let wide = SEED_TEMPLATE.replace("number_of_inputs: 784", "number_of_inputs: 30000");
    let cluster = client.create_cluster("wide_one", &wide).await.unwrap().uuid;
    client.set_direct_mode(&cluster, true).await.unwrap();
    // A second session that only watches: the refusals are not its own.
    let idle = client.direct_session(&cluster).await.unwrap();
    let mut session = client.direct_session(&cluster).await.unwrap();
    let mut label = vec![0.0f32; 10];
    label[0] = 1.0;
    for sample in 0..200usize {
        // Every sample lights other inputs, each of which asks for a section.
        let picture: Vec<f32> = (0..30000)
            .map(|i| {
                if (i + sample * 151) % 97 == 0 {
                    200.0
                } else {
                    0.0
                }
            })
            .collect();
        session
            .train(&[("picture", &picture)], &[("label", &label)])
            .await
            .unwrap();
    }
    session.close().await.unwrap();
    idle.close().await.unwrap();
    let log = common::eventually(Duration::from_secs(10), || async {
        let log = error_log(&server).await;
        if log.contains("direct-IO session of cluster 'wide_one'") {
            Ok(log)
        } else {
            Err(log)
        }
    })
    .await;
    assert!(
        log.contains("requests for new sections were refused during the direct-IO session")
            && log.contains("the network stopped growing and went on with what it had"),
        "{log}"
    );
    // Reported once, by the session that trained (the idle one's end is handled too).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = error_log(&server).await;
    assert_eq!(
        log.matches("direct-IO session of cluster 'wide_one'")
            .count(),
        1,
        "{log}"
    );
}

/// A direct-IO session ends as soon as its cluster leaves DIRECT mode (a restore may then
/// change the interfaces it staged values for) or is deleted, also while its client is
/// silent; so a deleted cluster's memory comes back at once.
#[tokio::test]
async fn direct_sessions_end_with_direct_mode_and_their_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), "clusters_memory_mib = 1\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // Networks of about 560 KiB: two do not fit the budget together.
    let big = SEED_TEMPLATE.replace("number_of_inputs: 784", "number_of_inputs: 20000");
    let open_session =
        async |cluster: &str| common::direct_session(&server, &client.token(), cluster).await;
    let close_reason = async |socket: &mut common::Socket| common::close_frame(socket).await.1;

    let cluster = client.create_cluster("big_one", &big).await.unwrap().uuid;
    let second = client.create_cluster("big_two", &big).await;
    assert!(
        matches!(&second, Err(Error::Conflict(m)) if m.ends_with("(clusters_memory_mib). \
            Delete clusters that are no longer needed; the clusters of all users share this \
            budget, so ask an administrator where others' fill it.")),
        "{second:?}"
    );
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut socket = open_session(&cluster).await;
    client.set_direct_mode(&cluster, false).await.unwrap();
    let reason = close_reason(&mut socket).await;
    assert!(
        reason.starts_with("the cluster left DIRECT mode"),
        "{reason}"
    );

    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut socket = open_session(&cluster).await;
    client.delete_cluster(&cluster).await.unwrap();
    assert_eq!(close_reason(&mut socket).await, "the cluster was deleted");
    // The session held the only other reference to the network.
    common::eventually(Duration::from_secs(10), || async {
        match client.create_cluster("big_again", &big).await {
            Ok(_) => Ok(()),
            Err(Error::Conflict(message)) if message.contains("clusters_memory_mib") => {
                assert!(message.ends_with("ask an administrator where others' fill it."));
                Err(message)
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
    drop(socket);
}

/// A session whose client sends requests but does not read the answers (so that the server
/// waits to send them) still ends when its cluster leaves DIRECT mode: it kept its slot,
/// and after a switch back it went on answering from whatever network the cluster had then.
#[tokio::test]
async fn a_session_that_does_not_read_ends_with_direct_mode() {
    use futures_util::SinkExt;
    use hanami_types::websocket::proto::{ClusterIoMessage, ClusterProcessType, TargetBufferType};
    use prost::Message as _;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // 4096 outputs: every request is answered with 16 KiB, which soon fills the buffers.
    let wide = SEED_TEMPLATE.replace("number_of_outputs: 10", "number_of_outputs: 4096");
    let cluster = client.create_cluster("wide", &wide).await.unwrap().uuid;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut stuck = common::direct_session(&server, &client.token(), &cluster).await;
    let request = ClusterIoMessage {
        buffer_name: "picture".to_owned(),
        is_last: true,
        process_type: ClusterProcessType::RequestType as i32,
        target_buffer_type: TargetBufferType::InputBufferType as i32,
        number_of_values: 1,
        values: vec![1.0],
    }
    .encode_to_vec();
    for _ in 0..2000 {
        stuck.send(Message::binary(request.clone())).await.unwrap();
    }
    // Enough time for the server to answer until its writes wait for the client.
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.set_direct_mode(&cluster, false).await.unwrap();
    client.set_direct_mode(&cluster, true).await.unwrap();
    // All eight slots come free.
    let sessions = common::eventually(Duration::from_secs(10), || async {
        let mut sessions = Vec::new();
        for _ in 0..8 {
            sessions.push(
                client
                    .direct_session(&cluster)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(sessions)
    })
    .await;
    drop(sessions);
    drop(stuck);
}

/// A session's first message that is no start object, and a direct-IO message beyond the
/// websocket limit, are refused with reasons that say what is expected (the latter told
/// the client to send smaller chunks, which direct IO has not).
#[tokio::test]
async fn oversized_and_malformed_session_messages_say_what_is_expected() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let mut socket = common::open_socket(&server, "/").await;
    socket.send(Message::text("[1, 2]")).await.unwrap();
    let reply: serde_json::Value =
        serde_json::from_slice(&common::next_bytes(&mut socket).await.unwrap()).unwrap();
    assert_eq!(reply["success"], false);
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains(r#"expected a JSON object {"token", "target", "uuid"}"#),
        "{error}"
    );

    let cluster = common::direct_cluster(&client, "oversized").await;
    let mut socket = common::direct_session(&server, &client.token(), &cluster).await;
    // Only the frame's header: the server refuses on its announced length (a client still
    // sending the whole message may see the connection reset instead of the close frame).
    common::announce_frame(&mut socket, (16 << 20) + 1).await;
    let (code, reason) = common::close_frame(&mut socket).await;
    assert_eq!(code, 1009);
    assert_eq!(
        reason,
        "message too big: at most 16 MiB; a direct-IO message holds the values of one \
         interface (at most 1048576, 4 bytes each)"
    );
}

/// A frame that breaks the websocket protocol is answered with a close frame that says
/// what is wrong (1002, or 1007 for text that is not UTF-8), before a session starts and
/// within one; the connection used to end without one (the client saw 1006).
#[tokio::test]
async fn frames_that_break_the_protocol_get_a_close_frame() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::direct_cluster(&client, "broken_frames").await;
    // Masked with the key 0, so the payload is as written.
    let reserved_bit = [0xC2, 0x80, 0, 0, 0, 0];
    let not_utf8 = [0x81, 0x81, 0, 0, 0, 0, 0xFF];
    let unmasked = [0x82, 0x00];
    for (frame, in_session, code, reason) in [
        (
            &reserved_bit[..],
            false,
            1002,
            "WebSocket protocol error: Reserved bits are non-zero",
        ),
        (&not_utf8[..], false, 1007, "UTF-8 encoding error"),
        (&unmasked[..], true, 1002, "WebSocket protocol error"),
    ] {
        let mut socket = if in_session {
            common::direct_session(&server, &client.token(), &cluster).await
        } else {
            common::open_socket(&server, "/").await
        };
        common::write_raw(&mut socket, frame).await;
        let (got_code, got_reason) = common::close_frame(&mut socket).await;
        assert_eq!(got_code, code, "{got_reason}");
        assert!(got_reason.starts_with(reason), "{got_reason}");
    }
    // The cluster's sessions go on.
    let mut session = client.direct_session(&cluster).await.unwrap();
    session.request(&[("picture", &[0.0; 784])]).await.unwrap();
}

/// A direct-IO message with a value that no step could use (not finite, or an expected
/// value outside [0, 1]) closes the session when it arrives, naming it; it was acknowledged
/// and refused only at the step, or not at all if overwritten first.
#[tokio::test]
async fn unusable_direct_io_values_are_refused_on_arrival() {
    use futures_util::{SinkExt, StreamExt};
    use hanami_types::websocket::proto::{ClusterIoMessage, ClusterProcessType, TargetBufferType};
    use prost::Message as _;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::direct_cluster(&client, "unusable").await;
    let staged = |name: &str, buffer: TargetBufferType, values: Vec<f32>| ClusterIoMessage {
        buffer_name: name.to_owned(),
        is_last: false,
        process_type: ClusterProcessType::TrainType as i32,
        target_buffer_type: buffer as i32,
        number_of_values: values.len() as u64,
        values,
    };
    let mut picture = vec![0.0f32; 784];
    picture[3] = f32::NAN;
    let mut label = vec![0.0f32; 10];
    label[7] = 1.5;
    for (message, reason) in [
        (
            staged("picture", TargetBufferType::InputBufferType, picture),
            "the value at index 3 of 'picture' is not a finite number",
        ),
        (
            staged("label", TargetBufferType::ExpectedBufferType, label),
            "the expected value at index 7 of 'label' is 1.5, outside [0, 1]",
        ),
    ] {
        let mut socket = common::direct_session(&server, &client.token(), &cluster).await;
        socket
            .send(Message::binary(message.encode_to_vec()))
            .await
            .unwrap();
        // The close comes instead of the acknowledgement (no message before it).
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        let Ok(Some(Ok(Message::Close(Some(frame))))) = next else {
            panic!("not closed at once: {next:?}");
        };
        assert_eq!(u16::from(frame.code), 1008);
        assert!(frame.reason.contains(reason), "{}", frame.reason);
    }
}

/// Once a task is reported ended, the cluster is idle: it switches to DIRECT mode at once,
/// and a checkpoint saved then exists when the answer comes. (The end used to be announced
/// before the cluster forgot its running task: a helper saw the switch refused after 3 % of
/// restores.)
#[tokio::test]
async fn a_cluster_is_idle_as_soon_as_its_task_is_reported_ended() {
    let (_server, client, data, _tmp) = server_with_data("", "idle", 200).await;
    let cluster = common::seed_cluster(&client, "idle").await;
    train_to_end(&client, &cluster, &data, "train").await;
    let checkpoint = client.save_cluster(&cluster, "idle").await.unwrap().uuid;
    client
        .wait_for_task(&cluster, &checkpoint, WAIT)
        .await
        .unwrap();
    for round in 0..100 {
        let restore = client.restore_cluster(&cluster, &checkpoint).await.unwrap();
        let done = client
            .wait_for_task(&cluster, &restore.uuid, WAIT)
            .await
            .unwrap();
        assert_eq!(done.state, TaskState::Finished);
        let switched = client.set_direct_mode(&cluster, true).await;
        assert!(switched.is_ok(), "round {round}: {switched:?}");
        client.set_direct_mode(&cluster, false).await.unwrap();
    }
}

/// A save or restore that meets the deletion of its cluster is answered: it ran first, or
/// the cluster is gone (404). (Queued into the deleted cluster, the task never ended, and the
/// answer, which waits for the end on an idle cluster, never came.)
#[tokio::test]
async fn saves_and_restores_racing_the_deletion_of_their_cluster_are_answered() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let source = common::seed_cluster(&client, "source").await;
    let checkpoint = client.save_cluster(&source, "kept").await.unwrap().uuid;
    for round in 0..20 {
        let cluster = common::seed_cluster(&client, "doomed").await;
        let (queued, deleted) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(20), async {
                if round % 2 == 0 {
                    client.save_cluster(&cluster, "racing").await.map(drop)
                } else {
                    client
                        .restore_cluster(&cluster, &checkpoint)
                        .await
                        .map(drop)
                }
            }),
            client.delete_cluster(&cluster),
        );
        deleted.unwrap();
        let queued = queued.unwrap_or_else(|_| panic!("round {round}: no answer"));
        assert!(
            matches!(&queued, Ok(()) | Err(Error::NotFound(_))),
            "round {round}: {queued:?}"
        );
    }
}

/// The text of the first page of the error log.
async fn error_log(server: &TestServer) -> String {
    server
        .admin()
        .await
        .get("error_log?page=0")
        .await
        .expect(200)
        .body
}

/// Waits for a task that must end aborted, and returns the error log afterwards.
async fn aborted_with_log(
    server: &TestServer,
    client: &hanami_sdk::Client,
    cluster: &str,
    task: &str,
) -> String {
    let done = client.wait_for_task(cluster, task, WAIT).await.unwrap();
    assert_eq!(done.state, TaskState::Aborted, "{done:?}");
    let log = server
        .admin()
        .await
        .get("error_log?page=0")
        .await
        .expect(200)
        .body;
    // The task's note tells its owner what the error log tells the admins.
    let note = done.note.expect("an aborted task says why");
    assert!(
        log.contains(&note.replace('"', "\\\"")),
        "{note} not in {log}"
    );
    log
}

#[tokio::test]
async fn queued_tasks_are_checked_again_when_they_start() {
    let (server, client, train, test, _tmp) = prepared().await;
    let create = |name: &'static str, template: String| {
        let client = &client;
        async move { client.create_cluster(name, &template).await.unwrap().uuid }
    };
    let seed = SEED_TEMPLATE.to_owned();
    let a = create("cluster_a", seed.clone()).await;
    // Networks with other interfaces: smaller ones of the same names, and other names.
    let smaller = create(
        "smaller",
        seed.replace("784", "100")
            .replace("outputs: 10", "outputs: 5"),
    )
    .await;
    let renamed = create(
        "renamed",
        seed.replace("picture", "pixels").replace("label", "digit"),
    )
    .await;
    let mut checkpoints = Vec::new();
    for cluster in [&smaller, &renamed, &a] {
        let saved = client.save_cluster(cluster, "ckpt").await.unwrap();
        client
            .wait_for_task(cluster, &saved.uuid, WAIT)
            .await
            .unwrap();
        checkpoints.push(saved.uuid);
    }

    // While the cluster is in DIRECT mode, everything queues: a restore that changes the
    // interfaces' sizes, then tasks checked against the network before it.
    client.set_direct_mode(&a, true).await.unwrap();
    let restore = client.restore_cluster(&a, &checkpoints[0]).await.unwrap();
    let trains = client
        .train(
            "after_smaller",
            &a,
            &[("picture", &train)],
            &[("label", &train)],
        )
        .await
        .unwrap();
    let requests = client
        .request(
            "request_smaller",
            &a,
            &[("picture", &test)],
            ("label", "result"),
        )
        .await
        .unwrap();
    // They say why they wait.
    let waiting = client.task(&a, &trains.uuid).await.unwrap();
    assert_eq!(waiting.state, TaskState::Queued);
    assert!(
        waiting
            .note
            .is_some_and(|n| n.starts_with("waiting: the cluster is in DIRECT mode")),
    );
    // Then one to other names, and a request after it.
    let rename = client.restore_cluster(&a, &checkpoints[1]).await.unwrap();
    let renamed_request = client
        .request(
            "request_renamed",
            &a,
            &[("picture", &test)],
            ("label", "result"),
        )
        .await
        .unwrap();
    client.set_direct_mode(&a, false).await.unwrap();
    for restored in [&restore.uuid, &rename.uuid] {
        let done = client.wait_for_task(&a, restored, WAIT).await.unwrap();
        assert_eq!(done.state, TaskState::Finished);
    }
    let log = aborted_with_log(&server, &client, &a, &trains.uuid).await;
    assert!(
        log.contains("input 'picture' of the cluster's network has 100 neurons now, but the task was queued for 784"),
        "{log}"
    );
    aborted_with_log(&server, &client, &a, &requests.uuid).await;
    let log = aborted_with_log(&server, &client, &a, &renamed_request.uuid).await;
    assert!(
        log.contains("the cluster's network has no input named 'picture' any more"),
        "{log}"
    );
    // No result datasets came of them.
    let datasets = client.datasets().await.unwrap();
    assert_eq!(datasets.body.len(), 2, "{:?}", datasets.body);

    // Back to the first network: a queued task whose dataset is deleted fails when it
    // starts; a queued restore whose checkpoint is deleted still restores it (the
    // original's test flow deletes a checkpoint right after queueing its restore).
    client.restore_cluster(&a, &checkpoints[2]).await.unwrap();
    client.set_direct_mode(&a, true).await.unwrap();
    let (images, labels) = pattern_mnist(_tmp.path(), "doomed", 100);
    let doomed = client
        .upload_mnist("doomed", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let orphan = client
        .train("orphan", &a, &[("picture", &doomed)], &[("label", &doomed)])
        .await
        .unwrap();
    let gone = client.restore_cluster(&a, &checkpoints[1]).await.unwrap();
    client.delete_dataset(&doomed).await.unwrap();
    client.delete_checkpoint(&checkpoints[1]).await.unwrap();
    client.set_direct_mode(&a, false).await.unwrap();
    let log = aborted_with_log(&server, &client, &a, &orphan.uuid).await;
    assert!(
        log.contains(&format!(
            "dataset '{doomed}' was deleted after the task was queued"
        )) && log.contains("train task 'orphan' of cluster 'cluster_a'"),
        "{log}"
    );
    let restored = client.wait_for_task(&a, &gone.uuid, WAIT).await.unwrap();
    assert_eq!(restored.state, TaskState::Finished, "{restored:?}");
    assert!(matches!(
        client.checkpoint(&checkpoints[1]).await,
        Err(Error::NotFound(_))
    ));
    assert!(
        !server
            .data_dir
            .join("checkpoints")
            .join(&checkpoints[1])
            .exists()
    );
    // The cluster has the deleted checkpoint's network, with the other names.
    let old_names = client
        .train(
            "old_names",
            &a,
            &[("picture", &train)],
            &[("label", &train)],
        )
        .await;
    assert!(
        matches!(&old_names, Err(Error::NotFound(m))
            if m.ends_with("has no input named 'picture' (its inputs: pixels)")),
        "{old_names:?}"
    );
    let new_names = client
        .train("new_names", &a, &[("pixels", &train)], &[("digit", &train)])
        .await;
    assert!(
        matches!(&new_names, Err(Error::NotFound(m))
            if m.ends_with("has no columns named 'pixels' (its column groups: picture, label)")),
        "{new_names:?}"
    );
    // Back to the first network, which still trains (uuids in any case).
    client.restore_cluster(&a, &checkpoints[2]).await.unwrap();
    let upper = |uuid: &str| uuid.to_ascii_uppercase();
    let again = client
        .train(
            "still_fine",
            &upper(&a),
            &[("picture", &upper(&train))],
            &[("label", &upper(&train))],
        )
        .await
        .unwrap();
    // No deadline at all: `Duration::MAX` overflowed the clock.
    let done = client
        .wait_for_task(&a, &again.uuid, Duration::MAX)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);

    // A checkpoint whose file was removed outside the server: 409 at once, saying so, for
    // a restore as for getting it (the restore answered 404, as if the checkpoint were gone;
    // getting it answered 200, as if nothing were wrong).
    let file = server.data_dir.join("checkpoints").join(&checkpoints[0]);
    std::fs::remove_file(&file).unwrap();
    let missing = format!(
        "The file of checkpoint '{}' is missing from the server's data directory, so the \
         checkpoint cannot be restored; delete it",
        checkpoints[0]
    );
    let restored = client.restore_cluster(&a, &checkpoints[0]).await;
    assert!(
        matches!(&restored, Err(Error::Conflict(m)) if m == &missing),
        "{restored:?}"
    );
    let got = client.checkpoint(&checkpoints[0]).await;
    assert!(
        matches!(&got, Err(Error::Conflict(m)) if m == &missing),
        "{got:?}"
    );
    // A truncated file, and a folder in a file's place: 409 at once for both calls.
    let save = client.save_cluster(&a, "to_damage").await.unwrap().uuid;
    client.wait_for_task(&a, &save, WAIT).await.unwrap();
    let file = server.data_dir.join("checkpoints").join(&save);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    for refused in [
        client.checkpoint(&save).await.map(drop),
        client.restore_cluster(&a, &save).await.map(drop),
    ] {
        assert!(
            matches!(&refused, Err(Error::Conflict(m))
                if m.contains("is damaged (the checkpoint is truncated)")),
            "{refused:?}"
        );
    }
    // Another format version is no damage: it says which, and not to delete it.
    let mut other = bytes.clone();
    other[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&file, &other).unwrap();
    let refused = client.restore_cluster(&a, &save).await;
    assert!(
        matches!(&refused, Err(Error::Conflict(m))
            if m.contains("is in checkpoint format version 2, which this server does not read")
                && !m.contains("delete")),
        "{refused:?}"
    );
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let refused = client.checkpoint(&save).await;
    assert!(
        matches!(&refused, Err(Error::Conflict(m)) if m.contains("is not a regular file")),
        "{refused:?}"
    );
    std::fs::remove_dir(&file).unwrap();
    client.delete_checkpoint(&save).await.unwrap();
    client.delete_checkpoint(&checkpoints[0]).await.unwrap();
    assert!(matches!(
        client.checkpoint(&save).await,
        Err(Error::NotFound(_))
    ));
}

/// A network that cannot be saved after a direct-IO session is reported in the error log
/// and to the client, whose close the server leaves unanswered (it answered it as if the
/// save had succeeded), and a stop that cannot save it either exits with a failure (it
/// exited 0, the training lost without a trace but the server log).
#[tokio::test]
async fn networks_that_cannot_be_saved_are_reported() {
    let mut server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::direct_cluster(&client, "unsaved").await;
    let mut session = client.direct_session(&cluster).await.unwrap();
    session
        .train(&[("picture", &[0.5f32; 784])], &[("label", &[1.0f32; 10])])
        .await
        .unwrap();
    // The networks' folder replaced by a file: no save can succeed.
    let folder = server.data_dir.join("clusters");
    std::fs::rename(&folder, server.data_dir.join("clusters.aside")).unwrap();
    std::fs::write(&folder, "in the way").unwrap();
    // The server leaves the close unanswered, which the client reports.
    let closed = session.close().await;
    assert!(
        matches!(&closed, Err(Error::WebSocket(m)) if m.contains("may not be saved")),
        "{closed:?}"
    );
    common::eventually(WAIT, || async {
        let log = error_log(&server).await;
        if log.contains("cannot save the network after the session") {
            Ok(())
        } else {
            Err(format!("no error-log entry: {log}"))
        }
    })
    .await;
    assert!(!server.stop(), "the stop lost a network and exited cleanly");
}

/// A request whose result is complete ends `finished` even when the network it grew cannot
/// be saved, with a note that says so (it ended `aborted`, its complete result listed).
#[tokio::test]
async fn a_request_with_a_complete_result_finishes_when_the_network_cannot_be_saved() {
    let (server, client, data, _tmp) = server_with_data("", "unsaved", 30).await;
    let cluster = common::seed_cluster(&client, "unsaved").await;
    // The networks' folder replaced by a file: no save can succeed.
    let folder = server.data_dir.join("clusters");
    std::fs::rename(&folder, server.data_dir.join("clusters.aside")).unwrap();
    std::fs::write(&folder, "in the way").unwrap();
    let task = client
        .request(
            "grows",
            &cluster,
            &[("picture", &data)],
            ("label", "result"),
        )
        .await
        .unwrap();
    let done = client
        .wait_for_task(&cluster, &task.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    let note = done.note.expect("a note about the save");
    assert!(note.contains("the result is complete"), "{note}");
    assert_eq!(client.dataset(&task.uuid).await.unwrap().number_of_rows, 30);
}

/// A client's close frame is answered, before and during a session (the connection used to
/// be dropped, which clients see as a failed connection, close code 1006).
#[tokio::test]
async fn a_client_that_closes_gets_the_close_answered() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::direct_cluster(&client, "closing").await;
    for start_first in [false, true] {
        let mut socket = common::open_socket(&server, "/").await;
        if start_first {
            let reply = common::init(&mut socket, &client.token(), "cluster", &cluster).await;
            assert_eq!(reply["success"], true, "{reply}");
        }
        socket.close(None).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
        assert!(
            matches!(answer, Ok(Some(Ok(Message::Close(_))))),
            "session started: {start_first}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn direct_sessions_end_when_access_is_withdrawn_or_they_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), "upload_timeout = 2\n")
        .0
        .start();
    let admin = server.admin().await;
    member(&server, &admin, "memb", "proj_a", false).await;
    let memb = sdk(&server, "memb", "password1").await;
    let cluster = common::seed_cluster(&memb, "direct_one").await;
    memb.set_direct_mode(&cluster, true).await.unwrap();
    let picture = vec![0.0f32; 784];
    let label = vec![0.0f32; 10];

    // A session that sends nothing is closed after upload_timeout.
    let mut idle = memb.direct_session(&cluster).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let closed = idle.request(&[("picture", &picture)]).await;
    assert!(
        matches!(&closed, Err(Error::SessionClosed(m)) if m.contains("no message for 2 s")),
        "{closed:?}"
    );
    // Pings (which websocket libraries send by themselves) do not keep it open.
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let mut socket = common::open_socket(&server, "/").await;
        let reply = common::init(&mut socket, &memb.token(), "cluster", &cluster).await;
        assert_eq!(reply["success"], true, "{reply}");
        let opened = std::time::Instant::now();
        let reason = loop {
            assert!(
                opened.elapsed() < Duration::from_secs(5),
                "pings kept the session open"
            );
            socket.send(Message::Ping(vec![1].into())).await.unwrap();
            match tokio::time::timeout(Duration::from_millis(300), socket.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => break frame.reason.to_string(),
                Ok(Some(Ok(_))) | Err(_) => continue,
                Ok(other) => panic!("{other:?}"),
            }
        };
        assert_eq!(
            reason,
            "closed: no message for 2 s (the server's upload_timeout); open a new session"
        );
    }

    // The open session of a user taken out of the project ends (sessions check again once a
    // second).
    let mut session = memb.direct_session(&cluster).await.unwrap();
    session
        .train(&[("picture", &picture)], &[("label", &label)])
        .await
        .unwrap();
    admin
        .delete("user/project?id=memb&project_id=proj_a")
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = session
        .train(&[("picture", &picture)], &[("label", &label)])
        .await;
    assert!(
        matches!(&refused, Err(Error::Unauthorized(m)) if m.starts_with("access withdrawn: ")),
        "{refused:?}"
    );

    // A session whose cluster is deleted says so, whenever the access was checked last.
    let mut session = sdk(&server, ADMIN, ADMIN_PW)
        .await
        .direct_session(&cluster)
        .await
        .unwrap();
    sdk(&server, ADMIN, ADMIN_PW)
        .await
        .delete_cluster(&cluster)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = session.request(&[("picture", &picture)]).await;
    assert!(
        matches!(&refused, Err(Error::NotFound(m)) if m == "the cluster was deleted"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn open_sessions_are_told_when_the_server_shuts_down() {
    let mut server = common::launch().env("RUST_LOG", "info").start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let cluster = common::direct_cluster(&client, "stopping").await;
    let mut session = client.direct_session(&cluster).await.unwrap();
    let picture = vec![0.0f32; 784];
    session.request(&[("picture", &picture)]).await.unwrap();
    assert!(server.stop(), "the server did not stop cleanly");
    let closed = session.request(&[("picture", &picture)]).await;
    assert!(
        matches!(&closed, Err(Error::Status { status: 503, body }) if body == "the server is shutting down"),
        "{closed:?}"
    );
    // The operator reads it in the log too.
    let logged = server.logged();
    assert!(
        logged.contains(
            "the stop ends a direct-IO session of cluster 'stopping' (the stop saves the network"
        ),
        "{logged}"
    );
}

/// A train task trains only the outputs it names, and stops at an expected value outside
/// [0, 1] (sigmoid outputs cannot reach it; training toward it saturates them for good).
#[tokio::test]
async fn train_tasks_train_the_named_outputs_within_range() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    // A second dataset scales `a` by 100 from row 150 on.
    let upload = |name: &'static str, scale_from: usize| {
        let (client, dir) = (&client, tmp.path());
        async move { common::upload_csv_text(client, dir, name, &two_inputs_csv(scale_from)).await }
    };
    let data = upload("two_outputs", usize::MAX).await;
    let scaled = upload("scaled_outputs", 150).await;
    let template = TWO_INPUTS_TWO_OUTPUTS;
    let cluster = client
        .create_cluster("two_outputs", template)
        .await
        .unwrap()
        .uuid;
    let train = |name: &'static str, outputs: &'static [&'static str]| {
        let (client, cluster, data) = (&client, &cluster, &data);
        async move {
            let outputs: Vec<(&str, &str)> = outputs.iter().map(|&o| (o, data.as_str())).collect();
            let task = client
                .train(name, cluster, &[("x0", data), ("x1", data)], &outputs)
                .await
                .unwrap();
            let done = client
                .wait_for_task(cluster, &task.uuid, WAIT)
                .await
                .unwrap();
            assert_eq!(done.state, TaskState::Finished);
        }
    };
    // The answers of `a` and `b` for lit inputs (class `a`).
    let answers = || {
        let (client, cluster) = (&client, &cluster);
        async move {
            client.set_direct_mode(cluster, true).await.unwrap();
            let mut session = client.direct_session(cluster).await.unwrap();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for x0 in [50.0, 70.0, 90.0, 110.0, 130.0] {
                let answers = session
                    .request(&[("x0", &[x0]), ("x1", &[0.0])])
                    .await
                    .unwrap();
                let value = |name: &str| answers.iter().find(|(n, _)| n == name).unwrap().1[0];
                a.push(value("a"));
                b.push(value("b"));
            }
            session.close().await.unwrap();
            client.set_direct_mode(cluster, false).await.unwrap();
            (a, b)
        }
    };
    train("only_a", &["a"]).await;
    // `b` was never named: it sampled no neurons and answers 0.
    let (_, b) = answers().await;
    assert!(b.iter().all(|&v| v == 0.0), "{b:?}");
    // Now `b` learns too; tasks that name only `a` leave its answers as they are (up to the
    // slowly fading error terms of its hexagon), instead of training it toward the expected
    // value of its last row.
    train("both", &["a", "b"]).await;
    let (_, learned) = answers().await;
    for name in ["only_a_1", "only_a_2"] {
        train(name, &["a"]).await;
    }
    let (_, kept) = answers().await;
    assert!(
        learned.iter().zip(&kept).all(|(l, k)| (l - k).abs() < 0.01),
        "learned {learned:?}, then {kept:?}"
    );

    // Out of range: refused when the task is created, as the upload recorded the values
    // of 'a' (its 'b' is fine, and an input may hold any value).
    let scaled_task = |name: &'static str, output: &'static str| {
        let (client, cluster, scaled) = (&client, &cluster, &scaled);
        async move {
            client
                .train(
                    name,
                    cluster,
                    &[("x0", scaled), ("x1", scaled)],
                    &[(output, scaled)],
                )
                .await
        }
    };
    let refused = scaled_task("scaled", "a").await;
    assert!(
        matches!(&refused, Err(Error::BadRequest(m)) if m.contains(&format!(
            "Dataset '{scaled}' holds values from 0 to 100 in 'a', but expected values of an \
             output must lie between 0 and 1"
        ))),
        "{refused:?}"
    );
    let task = scaled_task("scaled_b", "b").await.unwrap();
    let done = client
        .wait_for_task(&cluster, &task.uuid, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
    // A dataset uploaded before value ranges were recorded: the task stops at row 150, and
    // the error log says why.
    common::change_database(
        &server.data_dir,
        "UPDATE datasets SET value_ranges = NULL WHERE uuid = ?1",
        &[&scaled],
    )
    .await;
    let task = scaled_task("scaled", "a").await.unwrap();
    let log = aborted_with_log(&server, &client, &cluster, &task.uuid).await;
    assert!(
        log.contains(
            "row 150 (counted from 0): the expected value at index 0 of 'a' is 100, outside [0, 1]"
        ),
        "{log}"
    );
    let stopped = client.task(&cluster, &task.uuid).await.unwrap();
    assert_eq!(stopped.current_cycle, 150, "{stopped:?}");
}

/// The memory of a deleted network goes back to the system (glibc kept it in its arenas:
/// a gigabyte after a few large clusters).
#[tokio::test]
async fn a_deleted_network_gives_its_memory_back() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let (inputs, outputs) = (262_144, 16_384);
    let template = format!(
        "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\nhexagons:\n    1,1,1\n    \
         2,1,1\n    3,1,1\ninputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: \
         {inputs}\noutputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: \
         {outputs}\n"
    );
    let cluster = client
        .create_cluster("big_cluster", &template)
        .await
        .unwrap()
        .uuid;
    client.set_direct_mode(&cluster, true).await.unwrap();
    let mut session = client.direct_session(&cluster).await.unwrap();
    for step in 0..2usize {
        let x: Vec<f32> = (0..inputs)
            .map(|i| {
                if (i * 7 + step) % 5 == 0 {
                    (i % 250) as f32 + 5.0
                } else {
                    0.0
                }
            })
            .collect();
        let mut y = vec![0.0f32; outputs];
        y[step] = 1.0;
        session.train(&[("x", &x)], &[("y", &y)]).await.unwrap();
    }
    session.close().await.unwrap();
    let used = server.memory();
    assert!(used > 100 << 20, "the network took only {} MiB", used >> 20);
    client.delete_cluster(&cluster).await.unwrap();
    common::eventually(Duration::from_secs(10), || async {
        let now = server.memory();
        if now > used / 3 {
            Err(format!(
                "still {} MiB after the delete (had {} MiB)",
                now >> 20,
                used >> 20
            ))
        } else {
            Ok(())
        }
    })
    .await;
}

/// Request results leave `min_free_disk_mib` free too (they could fill the disk below what
/// a restart needs).
#[tokio::test]
async fn request_results_keep_the_free_disk_reserve() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, config) = common::launch_with_config(tmp.path(), "");
    let mut first = launched.start();
    let client = sdk(&first, ADMIN, ADMIN_PW).await;
    let (images, labels) = pattern_mnist(tmp.path(), "reserve", 50);
    let data = client
        .upload_mnist("reserve", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "reserve").await;
    assert!(first.stop());
    std::fs::write(&config, "min_free_disk_mib = 1073741824\n").unwrap();
    let server = common::launch()
        .args(&["--config", config.to_str().unwrap()])
        .data_dir(&first.data_dir)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let task = client
        .request(
            "too_much",
            &cluster,
            &[("picture", &data)],
            ("label", "result"),
        )
        .await
        .unwrap();
    let log = aborted_with_log(&server, &client, &cluster, &task.uuid).await;
    assert!(
        log.contains("not enough disk space for the result dataset"),
        "{log}"
    );
    assert_eq!(client.datasets().await.unwrap().body.len(), 1);
}

/// Checkpoints and new clusters leave `min_free_disk_mib` free, as uploads do: on a full
/// disk nothing could be deleted through the API any more.
#[tokio::test]
async fn checkpoints_and_clusters_keep_the_free_disk_reserve() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, config) = common::launch_with_config(tmp.path(), "");
    let mut first = launched.start();
    let client = sdk(&first, ADMIN, ADMIN_PW).await;
    let cluster = common::seed_cluster(&client, "reserved").await;
    assert!(first.stop());
    std::fs::write(&config, "min_free_disk_mib = 1073741824\n").unwrap();
    let server = common::launch()
        .args(&["--config", config.to_str().unwrap()])
        .data_dir(&first.data_dir)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    match client.create_cluster("too_much", SEED_TEMPLATE).await {
        Err(Error::Conflict(message)) => assert!(
            message.contains("not enough disk space for the cluster's network")
                && message.contains("min_free_disk_mib"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.clusters().await.unwrap().body.len(), 1);
    // A cluster without a network (to restore a checkpoint into) writes only a marker, as
    // small as a database row: not held to the reserve.
    let empty = client.create_cluster("empty", "").await.unwrap().uuid;
    client.delete_cluster(&empty).await.unwrap();
    let save = client.save_cluster(&cluster, "too_much").await.unwrap();
    let log = aborted_with_log(&server, &client, &cluster, &save.uuid).await;
    assert!(
        log.contains("not enough disk space for the checkpoint"),
        "{log}"
    );
    assert!(client.checkpoints().await.unwrap().body.is_empty());
    let files = std::fs::read_dir(server.data_dir.join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(files, 0);
}

/// A server started with the configuration `config` (TOML), with a dataset `name` of `rows`
/// generated images; returns the server, a client, the dataset and the folder of its files.
async fn server_with_data(
    config: &str,
    name: &str,
    rows: u32,
) -> (TestServer, hanami_sdk::Client, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::launch_with_config(tmp.path(), config).0.start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let (images, labels) = pattern_mnist(tmp.path(), name, rows);
    let data = client
        .upload_mnist(name, &images, &labels)
        .await
        .unwrap()
        .uuid;
    (server, client, data, tmp)
}

/// At most `max_running_tasks` tasks run at once over all clusters; the others wait queued,
/// and a cluster's next task waits behind the first tasks of the other clusters.
#[tokio::test]
async fn tasks_beyond_the_running_limit_wait_their_turn() {
    let (_server, client, data, _tmp) =
        server_with_data("max_running_tasks = 2\n", "turns", 10_000).await;
    let mut clusters = Vec::new();
    for i in 0..4 {
        clusters.push(common::seed_cluster(&client, &format!("turn_{i}")).await);
    }
    // (cluster, task, pass)
    let mut tasks = Vec::new();
    for cluster in &clusters {
        for pass in 0..2 {
            let task = client
                .train(
                    &format!("pass_{pass}"),
                    cluster,
                    &[("picture", &data)],
                    &[("label", &data)],
                )
                .await
                .unwrap();
            tasks.push((cluster.clone(), task.uuid, pass));
        }
    }
    let state = |cluster: &str, uuid: &str| {
        let (client, cluster, uuid) = (&client, cluster.to_owned(), uuid.to_owned());
        async move { client.task(&cluster, &uuid).await.unwrap().state }
    };
    let start = std::time::Instant::now();
    let mut most = 0;
    // The polling round in which each task was first seen active.
    let mut first_seen = vec![None; tasks.len()];
    for round in 0.. {
        assert!(start.elapsed() < WAIT, "the tasks did not all finish");
        let mut active = Vec::new();
        let mut finished = 0;
        for (i, (cluster, uuid, _)) in tasks.iter().enumerate() {
            match state(cluster, uuid).await.as_str() {
                "active" => {
                    active.push(i);
                    first_seen[i].get_or_insert(round);
                }
                "finished" => finished += 1,
                "queued" => {}
                other => panic!("task {uuid} {other}"),
            }
        }
        if finished == tasks.len() {
            break;
        }
        // Still active when asked again: then they were all active at once.
        let mut all_still_active = true;
        for &i in &active {
            all_still_active &= state(&tasks[i].0, &tasks[i].1).await == TaskState::Active;
        }
        if all_still_active {
            assert!(active.len() <= 2, "{} tasks ran at once", active.len());
            most = most.max(active.len());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(most, 2, "never two tasks at once");
    let last_first_pass = (0..tasks.len())
        .filter(|&i| tasks[i].2 == 0)
        .filter_map(|i| first_seen[i])
        .max();
    let first_second_pass = (0..tasks.len())
        .filter(|&i| tasks[i].2 == 1)
        .filter_map(|i| first_seen[i])
        .min();
    assert!(
        last_first_pass <= first_second_pass,
        "a second task started before the first task of another cluster: {first_seen:?}"
    );
}

/// Users take turns for the task slots: a user's clusters do not each get a turn before
/// another user's first task (one user's many busy clusters made a small task of another
/// wait for all of them).
#[tokio::test]
async fn users_take_turns_for_the_task_slots() {
    let (server, client, data, tmp) =
        server_with_data("max_running_tasks = 1\n", "many", 20_000).await;
    member(&server, &server.admin().await, "memb", "other", false).await;
    let other = sdk(&server, "memb", "password1").await;
    let (images, labels) = pattern_mnist(tmp.path(), "fewer", 100);
    let few = other
        .upload_mnist("fewer", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let mut many = Vec::new();
    for i in 0..3 {
        let cluster = common::seed_cluster(&client, &format!("many_{i}")).await;
        let task = client
            .train("long", &cluster, &[("picture", &data)], &[("label", &data)])
            .await
            .unwrap();
        many.push((cluster, task.uuid));
    }
    let small = common::seed_cluster(&other, "small").await;
    let task = other
        .train("short", &small, &[("picture", &few)], &[("label", &few)])
        .await
        .unwrap();
    assert_eq!(
        other
            .wait_for_task(&small, &task.uuid, WAIT)
            .await
            .unwrap()
            .state,
        TaskState::Finished
    );
    // The admin's first two clusters got their turns (one running when the short task
    // came, then one in turn with it); the third one's comes after the short task.
    let (cluster, last) = &many[2];
    let state = client.task(cluster, last).await.unwrap().state;
    assert_ne!(
        state,
        TaskState::Finished,
        "the short task waited for every cluster"
    );
    for (cluster, task) in &many {
        let ended = client.wait_for_task(cluster, task, WAIT).await.unwrap();
        assert_eq!(ended.state, TaskState::Finished);
    }
}

/// A checkpoint save that cannot start at once (every task slot busy) answers at once with
/// its queued task, instead of waiting for a slot, and runs when one comes free.
#[tokio::test]
async fn a_save_waiting_for_a_slot_answers_at_once() {
    let (_server, client, data, _tmp) =
        server_with_data("max_running_tasks = 1\n", "busy", 20_000).await;
    let busy = common::seed_cluster(&client, "busy").await;
    let idle = common::seed_cluster(&client, "idle").await;
    let long = client
        .train("long", &busy, &[("picture", &data)], &[("label", &data)])
        .await
        .unwrap();
    while client.task(&busy, &long.uuid).await.unwrap().state != TaskState::Active {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let save = client.save_cluster(&idle, "later").await.unwrap();
    let queued = client.task(&idle, &save.uuid).await.unwrap();
    let training = client.task(&busy, &long.uuid).await.unwrap();
    assert_eq!(
        training.state,
        TaskState::Active,
        "the save waited for the training"
    );
    assert_eq!(queued.state, TaskState::Queued);
    // Its checkpoint cannot be restored yet, and the answer says why.
    let early = client.restore_cluster(&busy, &save.uuid).await;
    assert!(
        matches!(&early, Err(Error::Conflict(m)) if m.contains("is not saved yet: its save task")),
        "{early:?}"
    );
    // Nor read or deleted (a 404 would let a client think it is gone, and it comes later).
    let early = client.checkpoint(&save.uuid).await;
    assert!(
        matches!(&early, Err(Error::Conflict(m)) if m.contains("get it once that task has finished")),
        "{early:?}"
    );
    let early = client.delete_checkpoint(&save.uuid).await;
    assert!(
        matches!(&early, Err(Error::Conflict(m)) if m.contains("delete it once that task has finished")),
        "{early:?}"
    );
    let saved = client.wait_for_task(&idle, &save.uuid, WAIT).await.unwrap();
    assert_eq!(saved.state, TaskState::Finished);
}

/// A uuid of another kind of resource where one kind belongs (a dataset's for a cluster,
/// say) gets the 404 with the kind it is, where the caller sees that resource; others get
/// the plain 404 (nothing is revealed outside the caller's scope).
#[tokio::test]
async fn a_uuid_of_another_kind_is_named_in_the_404() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "kinds", 20);
    let dataset = client
        .upload_mnist("kinds", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "kinds").await;
    let saved = client.save_cluster(&cluster, "kinds").await.unwrap().uuid;
    client
        .wait_for_task(&cluster, &saved, Duration::from_secs(60))
        .await
        .unwrap();
    let said = |result: Result<(), Error>| match result {
        Err(Error::NotFound(message)) => message,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        said(client.cluster(&dataset).await.map(drop)),
        format!("Cluster with uuid '{dataset}' not found: that is a dataset's uuid")
    );
    assert_eq!(
        said(client.dataset(&cluster).await.map(drop)),
        format!("Dataset with uuid '{cluster}' not found: that is a cluster's uuid")
    );
    assert_eq!(
        said(client.checkpoint(&dataset).await.map(drop)),
        format!("Checkpoint with uuid '{dataset}' not found: that is a dataset's uuid")
    );
    assert!(
        said(client.upload_progress(&cluster).await.map(drop)).starts_with(&format!(
            "Neither a dataset nor an unfinished upload with uuid '{cluster}' found ("
        )) && said(client.upload_progress(&cluster).await.map(drop))
            .ends_with("): that is a cluster's uuid")
    );
    assert!(
        said(client.tasks(&saved).await.map(drop))
            .ends_with("not found: that is a checkpoint's uuid")
    );
    // So does the start of a direct-IO session, over the websocket.
    assert_eq!(
        said(client.direct_session(&saved).await.map(drop)),
        format!("Cluster with UUID '{saved}' not found: that is a checkpoint's uuid")
    );
    // A user who does not see the dataset gets the plain answer.
    let admin_http = server.admin().await;
    let other = member(&server, &admin_http, "other", "proj_k", false).await;
    let answer = other
        .get(&format!("cluster?uuid={dataset}"))
        .await
        .expect(404);
    assert_eq!(
        answer.body,
        format!("Cluster with uuid '{dataset}' not found")
    );
}

/// A task over datasets of different lengths runs as many cycles as the shortest has rows,
/// as in the original, and says so in its note (a training that paired 60,000 training
/// images with the 10,000 test labels said nothing); over datasets of one length it has no
/// note. A request whose result name is a uuid says that the result is a new dataset.
#[tokio::test]
async fn a_task_over_datasets_of_different_lengths_says_so() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = pattern_mnist(tmp.path(), "long", 30);
    let long = client
        .upload_mnist("long", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let (images, labels) = pattern_mnist(tmp.path(), "short", 12);
    let short = client
        .upload_mnist("short", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "lengths").await;
    let task = client
        .train(
            "mixed",
            &cluster,
            &[("picture", &long)],
            &[("label", &short)],
        )
        .await
        .unwrap();
    assert_eq!(task.total_number_of_cycles, 12);
    let expected = format!(
        "its datasets have different numbers of rows (30 in '{long}', 12 in '{short}'): it \
         runs 12 cycles, row i of each dataset with row i of the others; check that these are \
         the datasets meant"
    );
    assert_eq!(task.note.as_deref(), Some(expected.as_str()));
    let done = client
        .wait_for_task(&cluster, &task.uuid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Finished);
    assert_eq!(done.note.as_deref(), Some(expected.as_str()));
    let same = client
        .train("same", &cluster, &[("picture", &long)], &[("label", &long)])
        .await
        .unwrap();
    assert_eq!((same.total_number_of_cycles, same.note), (30, None));
    // A result named with a uuid (another dataset's, say) is a new dataset all the same:
    // the note says so; a uuid that cannot be a name (it starts with a digit) is refused,
    // saying what the field takes.
    let like_a_uuid = "b00fd083-df11-42c5-b6c0-dec7ea4efeea";
    let named = client
        .request(
            "named",
            &cluster,
            &[("picture", &long)],
            ("label", like_a_uuid),
        )
        .await
        .unwrap();
    assert_eq!(
        named.note.as_deref(),
        Some(
            format!(
                "its result is a new dataset named '{like_a_uuid}', which is a uuid: a request \
                 task writes a new dataset, named as given, with the task's uuid as its uuid"
            )
            .as_str()
        )
    );
    let digits = "0b0fd083-df11-42c5-b6c0-dec7ea4efeea";
    match client
        .request("digits", &cluster, &[("picture", &long)], ("label", digits))
        .await
    {
        Err(Error::BadRequest(message)) => assert_eq!(
            message,
            format!(
                "Given item 'results' names the new result dataset, but '{digits}' is a uuid, \
                 which cannot be a dataset's name (a name starts with a letter): a request task \
                 writes a new dataset, with the task's uuid as its uuid"
            )
        ),
        other => panic!("{other:?}"),
    }
    let plain = client
        .request(
            "plain",
            &cluster,
            &[("picture", &long)],
            ("label", "answers"),
        )
        .await
        .unwrap();
    assert_eq!(plain.note, None);
}
