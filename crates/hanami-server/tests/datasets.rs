//! Datasets end to end: uploads over websockets, progress, finalisation and its validation,
//! get/list/delete, scoping, expiry, and the accuracy check — through the Rust SDK and raw
//! websocket sessions against the real server.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    ADMIN, ADMIN_PW, ServerExt, Socket, TestServer, announce_frame, close_frame, init, launch,
    launch_with_config, member, mnist_files, next_bytes, open_socket, open_socket_from, sdk,
    sha256, with_https,
};
use futures_util::{SinkExt, StreamExt};
use hanami_sdk::Error;
use hanami_types::websocket::proto::{FileUploadMessage, FileUploadResponseMessage};
use prost::Message as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// How the server's refusal of a dataset whose file is missing or damaged ends.
const REMAKE: &str = "delete it and upload it again (a request task's result: run that task again)";

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[tokio::test]
async fn mnist_upload_get_list_delete() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    // 300 images: the image file spans several 128 KiB chunks.
    let (images, labels) = mnist_files(tmp.path(), 300);
    let mut reports = Vec::new();
    let dataset = client
        .upload_mnist_with_progress("mnist_small", &images, &labels, &mut |sent, total| {
            reports.push((sent, total))
        })
        .await
        .unwrap();
    let total = 16 + 300 * 784 + 8 + 300;
    assert_eq!(reports.last(), Some(&(total, total)));
    assert!(reports.len() >= 3);
    assert_eq!(dataset.name, "mnist_small");
    assert_eq!(dataset.number_of_rows, 300);
    assert_eq!(dataset.number_of_columns, 794);
    assert_eq!(dataset.version, "v1.alpha");
    assert_eq!(dataset.owner_id, ADMIN);
    assert_eq!(dataset.project_id, "admin");
    assert_eq!(dataset.visibility, "private");
    assert_eq!(
        serde_json::to_value(&dataset.description).unwrap(),
        json!({"label": {"start_column": 784, "end_column": 794},
               "picture": {"start_column": 0, "end_column": 784}})
    );
    assert!(
        client
            .upload_progress(&dataset.uuid)
            .await
            .unwrap()
            .complete
    );

    let list = client.datasets().await.unwrap();
    assert_eq!(
        list.header,
        [
            "created_at",
            "uuid",
            "project_id",
            "owner_id",
            "visibility",
            "name"
        ]
    );
    assert_eq!(list.body.len(), 1);
    assert_eq!(list.body[0][1], json!(dataset.uuid));
    assert_eq!(list.body[0][5], json!("mnist_small"));
    // UUIDs are case-insensitive.
    let shouted = client
        .dataset(&dataset.uuid.to_ascii_uppercase())
        .await
        .unwrap();
    assert_eq!(shouted.uuid, dataset.uuid);

    // The stored rows are the pixels followed by the one-hot label.
    let file = server.data_dir.join("datasets").join(&dataset.uuid);
    let bytes = std::fs::read(&file).unwrap();
    let data = &bytes[bytes.len() - 300 * 794..];
    let image_bytes = std::fs::read(&images).unwrap();
    for row in [0usize, 123, 299] {
        assert_eq!(
            &data[row * 794..row * 794 + 784],
            &image_bytes[16 + row * 784..16 + (row + 1) * 784]
        );
        let label = &data[row * 794 + 784..(row + 1) * 794];
        assert_eq!(label.iter().position(|&v| v == 1), Some(row % 10));
        assert_eq!(label.iter().map(|&v| u32::from(v)).sum::<u32>(), 1);
    }

    client.delete_dataset(&dataset.uuid).await.unwrap();
    assert!(!file.exists(), "the dataset file is removed");
    assert!(matches!(
        client.delete_dataset(&dataset.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        client.dataset(&dataset.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        client.dataset("fail_dataset").await,
        Err(Error::BadRequest(_))
    ));
    assert!(client.datasets().await.unwrap().body.is_empty());
}

#[tokio::test]
async fn csv_upload() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("test_input,test_output\r\n");
    for i in 0..5000 {
        csv.push_str(&format!("{},{}\r\n", i % 81, (i % 4) as f32 / 4.0));
    }
    let path = write(tmp.path(), "train.csv", &csv);
    let dataset = client.upload_csv("csv_dataset", &path).await.unwrap();
    assert_eq!(dataset.number_of_rows, 5000);
    assert_eq!(dataset.number_of_columns, 2);
    assert_eq!(
        serde_json::to_value(&dataset.description).unwrap(),
        json!({"test_input": {"start_column": 0, "end_column": 1},
               "test_output": {"start_column": 1, "end_column": 2}})
    );
    // Two CSV datasets with the same name do not collide.
    let second = client.upload_csv("csv_dataset", &path).await.unwrap();
    assert_ne!(second.uuid, dataset.uuid);
    assert_eq!(client.datasets().await.unwrap().body.len(), 2);
}

/// When the answer to an upload's finalisation is lost on its way back, the SDK says that
/// the dataset may still appear and names it (a retry made a second dataset); the server
/// has indeed made it.
#[tokio::test]
async fn a_lost_finalisation_answer_names_the_dataset() {
    let server = TestServer::start();
    let proxy =
        hanami_testkit::AnswerDroppingProxy::start(&server.url, b"PUT /v1.0alpha/dataset/upload/");
    let through_proxy = hanami_sdk::Client::login(&proxy.url, ADMIN, ADMIN_PW)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "lost.csv", "a,b\n1,2\n3,4\n");
    let error = through_proxy
        .upload_csv("lost_answer", &path)
        .await
        .unwrap_err();
    assert_eq!(proxy.dropped(), 1);
    let Error::FinalizeUnanswered { uuid, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(error.to_string().contains(&format!("'{uuid}'")), "{error}");
    let direct = sdk(&server, ADMIN, ADMIN_PW).await;
    assert_eq!(direct.dataset(uuid).await.unwrap().name, "lost_answer");
}

#[tokio::test]
async fn progress_and_finalisation_rules() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = mnist_files(tmp.path(), 20);
    let image_size = std::fs::metadata(&images).unwrap().len();
    let label_size = std::fs::metadata(&labels).unwrap().len();
    let started = client
        .start_mnist_upload("steps", image_size, label_size)
        .await
        .unwrap();
    let label_uuid = started.uuid_label_file.clone().unwrap();
    assert_eq!(started.visibility, "private");
    assert_eq!(started.owner_id, ADMIN);
    // Listed, but not ready before finalisation.
    assert_eq!(client.datasets().await.unwrap().body.len(), 1);
    assert!(matches!(
        client.dataset(&started.uuid).await,
        Err(Error::Conflict(_))
    ));
    assert!(
        !client
            .upload_progress(&started.uuid)
            .await
            .unwrap()
            .complete
    );

    let finalize = json!({"uuid": started.uuid, "uuid_input_file": started.uuid_input_file,
                          "uuid_label_file": label_uuid});
    // A file whose size changed since the upload was announced is refused at once.
    let changed = client
        .upload_file(
            &started.uuid_input_file,
            &images,
            file_len(&images) + 1,
            &mut |_| {},
        )
        .await;
    assert!(
        matches!(&changed, Err(Error::File { source, .. })
            if source.to_string().contains("the file changed after its upload began")),
        "{changed:?}"
    );
    client
        .upload_file(
            &started.uuid_input_file,
            &images,
            file_len(&images),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(
        !client
            .upload_progress(&started.uuid)
            .await
            .unwrap()
            .complete
    );
    let Err(Error::BadRequest(message)) = client
        .put::<serde_json::Value>("dataset/upload/mnist", &finalize)
        .await
    else {
        panic!("an incomplete upload was finalised");
    };
    assert!(
        message.contains("label file has received 0 of"),
        "{message}"
    );

    client
        .upload_file(&label_uuid, &labels, file_len(&labels), &mut |_| {})
        .await
        .unwrap();
    assert!(
        client
            .upload_progress(&started.uuid)
            .await
            .unwrap()
            .complete
    );
    // The file uuids must be the upload's own, in their roles.
    let swapped = json!({"uuid": started.uuid, "uuid_input_file": label_uuid,
                         "uuid_label_file": started.uuid_input_file});
    assert!(matches!(
        client
            .put::<serde_json::Value>("dataset/upload/mnist", &swapped)
            .await,
        Err(Error::NotFound(_))
    ));
    let csv_finalize = json!({"uuid": started.uuid, "uuid_input_file": started.uuid_input_file});
    assert!(matches!(
        client
            .put::<serde_json::Value>("dataset/upload/csv", &csv_finalize)
            .await,
        Err(Error::BadRequest(_))
    ));
    // The dataset is dated when its upload began, as its listing was (a second later).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let done: serde_json::Value = client.put("dataset/upload/mnist", &finalize).await.unwrap();
    assert_eq!(done, json!({"uuid": started.uuid}));
    assert!(
        client
            .upload_progress(&started.uuid)
            .await
            .unwrap()
            .complete
    );
    assert!(matches!(
        client
            .put::<serde_json::Value>("dataset/upload/mnist", &finalize)
            .await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        client
            .upload_progress("8a1b2c3d-0000-4000-8000-123456789abc")
            .await,
        Err(Error::NotFound(_))
    ));
    let made = client.dataset(&started.uuid).await.unwrap();
    assert_eq!(made.number_of_rows, 20);
    assert_eq!(
        made.created_at.as_deref(),
        Some(started.created_at.as_str())
    );
    let listed = client.datasets().await.unwrap().body;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0][0], started.created_at.as_str());
    // No temporary file is left.
    assert_eq!(
        std::fs::read_dir(server.data_dir.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn upload_declarations_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let server = launch_with_config(tmp.path(), "max_upload_bytes = 1000\n")
        .0
        .start();
    let admin = server.admin().await;
    for (body, needle) in [
        (
            json!({"name": "okname", "input_data_size": 0, "label_data_size": 5}),
            "smaller than 1",
        ),
        (
            json!({"name": "okname", "input_data_size": 5}),
            "'label_data_size' is required",
        ),
        (
            json!({"name": "abc", "input_data_size": 5, "label_data_size": 5}),
            "shorter than 4",
        ),
        (
            json!({"name": "okname", "input_data_size": 1001, "label_data_size": 5}),
            "1000 bytes",
        ),
        (
            json!({"name": "okname", "input_data_size": 20_000_000_000u64, "label_data_size": 5}),
            "bigger than",
        ),
        (
            json!({"name": "okname", "input_data_size": "5", "label_data_size": 5}),
            "wrong type",
        ),
    ] {
        let resp = admin.post("dataset/upload/mnist", &body).await.expect(400);
        assert!(resp.body.contains(needle), "{body}: {}", resp.body);
    }
    let resp = admin
        .post(
            "dataset/upload/csv",
            &json!({"name": "okname", "input_data_size": 2000}),
        )
        .await
        .expect(400);
    assert!(resp.body.contains("1000 bytes"));
    admin
        .put(
            "dataset/upload/mnist",
            &json!({"uuid": "x", "uuid_input_file": "y",
                                              "uuid_label_file": "z"}),
        )
        .await
        .expect(400);
    admin
        .put("dataset/upload/csv", &json!({"uuid": "8a1b2c3d-0000-4000-8000-123456789abc",
                                            "uuid_input_file": "8a1b2c3d-0000-4000-8000-123456789abc"}))
        .await
        .expect(404);
    assert_eq!(
        std::fs::read_dir(server.data_dir.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

/// Uploads the given bytes as an MNIST pair and returns the finalisation error message.
async fn rejected_mnist(
    client: &hanami_sdk::Client,
    dir: &Path,
    images: Vec<u8>,
    labels: Vec<u8>,
) -> String {
    let image_path = write(dir, "bad-images", images);
    let label_path = write(dir, "bad-labels", labels);
    match client
        .upload_mnist("bad_mnist", &image_path, &label_path)
        .await
    {
        Err(Error::BadRequest(message)) => message,
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn idx_images(magic: u32, count: u32, pixels: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for n in [magic, count, 28, 28] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v.resize(16 + pixels, 3);
    v
}

fn idx_labels(magic: u32, labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&magic.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// A dataset whose rows are wider than an answer of `dataset/rows` may hold (one MNIST
/// image of 600 x 600 pixels) cannot be read that way: a 400 says so (a row was always
/// sent, whatever its width).
#[tokio::test]
async fn rows_wider_than_an_answer_are_refused() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for n in [0x803u32, 1, 600, 600] {
        images.extend_from_slice(&n.to_be_bytes());
    }
    images.resize(16 + 600 * 600, 7);
    let images_path = write(tmp.path(), "wide-images", images);
    let labels_path = write(tmp.path(), "wide-labels", idx_labels(0x801, &[4]));
    let wide = client
        .upload_mnist("wide_images", &images_path, &labels_path)
        .await
        .unwrap()
        .uuid;
    match client.dataset_rows(&wide, 0, 1).await {
        Err(Error::BadRequest(message)) => assert_eq!(
            message,
            format!(
                "Dataset '{wide}' has rows of 360010 values, more than the 262144 an answer \
                 holds: its rows cannot be read this way"
            )
        ),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_mnist_files_are_refused_and_leave_nothing() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let labels = idx_labels(0x801, &[1, 2, 3]);
    let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
        (
            idx_images(0x804, 3, 3 * 784),
            labels.clone(),
            "image file: magic number",
        ),
        (
            idx_images(0x803, 3, 3 * 784),
            idx_labels(0x802, &[1, 2, 3]),
            "label file: magic number",
        ),
        (
            idx_images(0x803, 3, 3 * 784),
            idx_labels(0x801, &[1, 2]),
            "holds 3 images but the label file holds 2",
        ),
        (idx_images(0x803, 3, 2 * 784), labels.clone(), "truncated"),
        (
            idx_images(0x803, 3, 3 * 784),
            idx_labels(0x801, &[1, 12, 3]),
            "label 12",
        ),
        (labels.clone(), idx_images(0x803, 3, 3 * 784), "swapped"),
    ];
    for (images, labels, needle) in cases {
        let message = rejected_mnist(&client, tmp.path(), images, labels).await;
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert!(client.datasets().await.unwrap().body.is_empty());
    assert_eq!(
        std::fs::read_dir(server.data_dir.join("uploads"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(server.data_dir.join("datasets"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn bad_csv_files_are_refused() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    for (content, needle) in [
        ("a,b\n1,2\n3,x\n", "line 3, column 2"),
        ("a,b\n1,2\n3\n", "line 3 has 1 column, expected 2"),
        ("a,b\n", "no data rows"),
        ("a,a\n1,2\n", "repeats the name"),
    ] {
        let path = write(tmp.path(), "bad.csv", content);
        match client.upload_csv("bad_csv", &path).await {
            Err(Error::BadRequest(message)) => {
                assert!(message.contains(needle), "{needle}: {message}")
            }
            other => panic!("{content:?}: expected a 400, got {other:?}"),
        }
    }
    assert!(client.datasets().await.unwrap().body.is_empty());
    assert_eq!(
        std::fs::read_dir(server.data_dir.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

async fn send_chunk(socket: &mut Socket, position: u64, data: &[u8]) -> FileUploadResponseMessage {
    let chunk = FileUploadMessage {
        position,
        data: data.to_vec().into(),
    };
    socket
        .send(Message::binary(chunk.encode_to_vec()))
        .await
        .unwrap();
    FileUploadResponseMessage::decode(next_bytes(socket).await.expect("chunk reply").as_slice())
        .unwrap()
}

async fn assert_closed(socket: &mut Socket) {
    assert!(
        next_bytes(socket).await.is_none(),
        "the server keeps the socket open"
    );
}

#[tokio::test]
async fn a_websocket_message_beyond_16_mib_is_refused_with_a_reason() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("too_big", 12).await.unwrap();
    let token = client.token();
    // In a session: the refusal as a reply and in the close frame.
    let mut socket = open_socket(&server, "/").await;
    let reply = init(&mut socket, &token, "file_upload", &started.uuid_input_file).await;
    assert_eq!(reply["success"], true);
    announce_frame(&mut socket, (16 << 20) + 1).await;
    let refused =
        FileUploadResponseMessage::decode(next_bytes(&mut socket).await.unwrap().as_slice())
            .unwrap();
    assert!(!refused.success);
    assert!(
        refused.error_message.contains("at most 16 MiB"),
        "{}",
        refused.error_message
    );
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("at most 16 MiB"), "{reason}");
    // As the first message of a socket, however large.
    let mut socket = open_socket(&server, "/").await;
    announce_frame(&mut socket, 1 << 62).await;
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("at most 16 MiB"), "{reason}");
    // The upload goes on in a new session, also after pings before the session start
    // (websocket libraries send them by themselves).
    let mut socket = open_socket(&server, "/").await;
    for _ in 0..3 {
        socket.send(Message::Ping(vec![1, 2].into())).await.unwrap();
    }
    let reply = init(&mut socket, &token, "file_upload", &started.uuid_input_file).await;
    assert_eq!(reply["success"], true);
    assert!(send_chunk(&mut socket, 0, b"a,b\n1,2\n3,40").await.success);
}

/// While an upload is being finalised, a session on its file is refused and so is a chunk
/// of a session opened before, both saying why (the session opened, and the chunk was told
/// that the upload was gone); the finalisation is unharmed.
#[tokio::test]
async fn an_upload_being_finalised_takes_no_session_and_no_chunk() {
    use hanami_types::websocket::CLOSED_UPLOAD_FINALISING;
    let server = launch().pause_at("upload:converting", 1500).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("finalising", 12).await.unwrap();
    let token = client.token();
    let file = started.uuid_input_file.clone();
    let mut early = open_socket(&server, "/").await;
    assert_eq!(
        init(&mut early, &token, "file_upload", &file).await["success"],
        true
    );
    assert!(send_chunk(&mut early, 0, b"a,b\n1,2\n3,40").await.success);
    let admin = server.admin().await;
    let body = json!({"uuid": started.uuid, "uuid_input_file": file});
    let finalise = tokio::spawn(async move { admin.put("dataset/upload/csv", &body).await });
    common::until_paused(&server, "upload:converting", 1).await;
    let refused = send_chunk(&mut early, 0, b"a,b\n").await;
    assert!(!refused.success);
    assert_eq!(refused.error_message, CLOSED_UPLOAD_FINALISING);
    let mut late = open_socket(&server, "/").await;
    let reply = init(&mut late, &token, "file_upload", &file).await;
    assert_eq!(reply["success"], false, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.ends_with(CLOSED_UPLOAD_FINALISING)),
        "{reply}"
    );
    finalise.await.unwrap().expect(200);
    assert_eq!(
        client.dataset(&started.uuid).await.unwrap().number_of_rows,
        2
    );
}

/// A finalisation that cannot register its dataset because another program locks the
/// database answers after the busy timeout (10 s), not twice that (it waited again to forget
/// its note of the file), saying so; the upload stays, and finalising it again after the
/// lock works.
#[tokio::test]
async fn a_finalisation_meeting_a_locked_database_answers_once_and_keeps_the_upload() {
    let server = launch().pause_at("upload:converting", 2000).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("locked", 12).await.unwrap();
    let file = started.uuid_input_file.clone();
    let mut socket = open_socket(&server, "/").await;
    assert_eq!(
        init(&mut socket, &client.token(), "file_upload", &file).await["success"],
        true
    );
    assert!(send_chunk(&mut socket, 0, b"a,b\n1,2\n3,40").await.success);
    let admin = server.admin().await;
    let body = json!({"uuid": started.uuid, "uuid_input_file": file});
    let finalise = tokio::spawn({
        let body = body.clone();
        async move { admin.put("dataset/upload/csv", &body).await }
    });
    common::until_paused(&server, "upload:converting", 1).await;
    let lock = common::DatabaseLock::take(&server.data_dir).await;
    let locked = std::time::Instant::now();
    let refused = finalise.await.unwrap().expect(500);
    // The pause, then one busy timeout (two were 20 s).
    assert!(
        locked.elapsed() < Duration::from_secs(18),
        "answered after {:?}",
        locked.elapsed()
    );
    assert!(
        refused
            .body
            .contains("the server's database is locked by another program"),
        "{}",
        refused.body
    );
    lock.release().await;

    server
        .admin()
        .await
        .put("dataset/upload/csv", &body)
        .await
        .expect(200);
    assert_eq!(
        client.dataset(&started.uuid).await.unwrap().number_of_rows,
        2
    );
}

/// A client may have eight sessions waiting for their first message at once (each may take
/// 16 MiB of memory for it before the server knows who sends it); one more opening waits
/// for its turn, which comes when one of them has sent its start.
#[tokio::test]
async fn sessions_waiting_for_their_start_take_turns() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("starts", 12).await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..8 {
        waiting.push(open_socket(&server, "/").await);
    }
    let ninth = tokio::spawn({
        let url = server.url.replace("http://", "ws://");
        async move { tokio_tungstenite::connect_async(url).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!ninth.is_finished(), "the ninth opening did not wait");
    let reply = init(
        &mut waiting[0],
        &client.token(),
        "file_upload",
        &started.uuid_input_file,
    )
    .await;
    assert_eq!(reply["success"], true, "{reply}");
    let (mut ninth, _) = tokio::time::timeout(Duration::from_secs(10), ninth)
        .await
        .expect("the ninth opening's turn came")
        .unwrap()
        .unwrap();
    let reply = init(
        &mut ninth,
        &client.token(),
        "file_upload",
        &started.uuid_input_file,
    )
    .await;
    assert_eq!(reply["success"], true, "{reply}");
}

/// Sockets that send nothing hold their session starts for 5 s at most while other openings
/// wait: an opening behind 64 of them, from eight client networks (all the starts there
/// are), gets its turn when one of them is closed, with the reason, where it waited 30 s
/// before. (Not a timing test: the bound only tells the two apart.)
#[tokio::test]
async fn silent_sockets_hold_their_turn_for_five_seconds() {
    let (_server, mut silent) = start_behind_silent_sockets(10..18, [127, 0, 0, 99]).await;
    // Which of them is closed first is up to the server's threads: those past their 5 s
    // that see the opening wait are closed, and it may get its turn before the others
    // look (they then wait the longer limit). The first to close gave its start back.
    let (first, _, _) =
        futures_util::future::select_all(silent.iter_mut().map(|socket| socket.next())).await;
    match first {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008);
            assert_eq!(
                frame.reason,
                "no session start message within 5 s, while other sessions waited for \
                 their turn to start"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The same within one client network (a proxy's address, say): an opening behind eight
/// silent sockets of its own network, all that network may have, gets its turn after 5 s,
/// not 30.
#[tokio::test]
async fn a_networks_own_silent_sockets_hold_its_next_opening_for_five_seconds() {
    start_behind_silent_sockets(40..41, [127, 0, 0, 40]).await;
}

/// Opens eight silent sockets from each loopback address 127.0.0.N of `networks` on a new
/// server, then a socket from `from` that starts an upload session at once, which must get
/// its turn within 20 s; the server and the silent sockets.
async fn start_behind_silent_sockets(
    networks: std::ops::Range<u8>,
    from: [u8; 4],
) -> (TestServer, Vec<Socket>) {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("behind", 12).await.unwrap();
    let mut silent = Vec::new();
    for network in networks {
        for _ in 0..8 {
            silent.push(open_socket_from(&server, [127, 0, 0, network]).await);
        }
    }
    let mut behind = tokio::time::timeout(Duration::from_secs(20), open_socket_from(&server, from))
        .await
        .expect("the opening's turn came");
    let reply = init(
        &mut behind,
        &client.token(),
        "file_upload",
        &started.uuid_input_file,
    )
    .await;
    assert_eq!(reply["success"], true, "{reply}");
    (server, silent)
}

/// While no other opening waits for its turn, a session may take longer than those 5 s to
/// send its start (a slow or lossy link), up to 30 s.
#[tokio::test]
async fn a_lone_session_may_take_longer_to_start() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("slow", 12).await.unwrap();
    let mut slow = open_socket(&server, "/").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let reply = init(
        &mut slow,
        &client.token(),
        "file_upload",
        &started.uuid_input_file,
    )
    .await;
    assert_eq!(reply["success"], true, "{reply}");
}

/// An opening whose turn does not come within `header_timeout` is refused with a 429 that
/// says why, which the SDK reports with the server's text, as a REST answer's.
#[tokio::test]
async fn an_opening_whose_turn_does_not_come_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = launch_with_config(tmp.path(), "header_timeout = 1\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let mut waiting = Vec::new();
    for _ in 0..8 {
        waiting.push(open_socket(&server, "/").await);
    }
    let url = server.url.replace("http://", "ws://");
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let text = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(
                text.starts_with("Too many websocket sessions are waiting for their first"),
                "{text}"
            );
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    let csv = write(tmp.path(), "refused.csv", "a,b\n1,2\n");
    match client.upload_csv("refused", &csv).await {
        Err(Error::Status { status: 429, body }) => {
            assert!(body.contains("and none sent it within 1 s"), "{body}")
        }
        other => panic!("expected a 429, got {other:?}"),
    }
}

/// A temporary file takes at most four sessions at once (each holds a connection; one
/// user opened a thousand on one file); a closed one makes room.
#[tokio::test]
async fn an_upload_file_takes_four_sessions_at_once() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("sessions", 12).await.unwrap();
    let token = client.token();
    let file = &started.uuid_input_file;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let mut socket = open_socket(&server, "/").await;
        assert_eq!(
            init(&mut socket, &token, "file_upload", file).await["success"],
            true
        );
        sessions.push(socket);
    }
    let mut fifth = open_socket(&server, "/").await;
    let reply = init(&mut fifth, &token, "file_upload", file).await;
    assert_eq!(reply["success"], false, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("has 4 sessions open, as many as a file may have")),
        "{reply}"
    );
    // Closed by the client: the server lets go of its slot when it sees the close.
    let mut closed = sessions.pop().unwrap();
    closed.close(None).await.unwrap();
    assert!(next_bytes(&mut closed).await.is_none());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        let mut socket = open_socket(&server, "/").await;
        if init(&mut socket, &token, "file_upload", file).await["success"] == true {
            break socket;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after a close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(send_chunk(&mut again, 0, b"a,b\n1,2\n3,40").await.success);
}

#[tokio::test]
async fn websocket_refusals_close_the_session_and_harm_nothing() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let admin_http = server.admin().await;
    let memb = member(&server, &admin_http, "memb", "proj_a", true).await;
    let started = client.start_csv_upload("ws_errors", 12).await.unwrap();
    let file = started.uuid_input_file.clone();
    let token = client.token();

    // A bad token.
    let mut socket = open_socket(&server, "/").await;
    let reply = init(&mut socket, "abc.def.ghi", "file_upload", &file).await;
    assert_eq!(reply, json!({"success": false, "error": "Token invalid"}));
    assert_closed(&mut socket).await;
    // No token: empty, left out or null (the last two got the parser's words); a first
    // message that is JSON, but no object: said in words, not in the parser's type names.
    let no_token = "Token invalid: the session's first message has no token";
    for (start, error) in [
        (
            json!({"token": "", "target": "file_upload", "uuid": file}).to_string(),
            no_token,
        ),
        (
            json!({"target": "file_upload", "uuid": file}).to_string(),
            no_token,
        ),
        (
            json!({"token": null, "target": "file_upload", "uuid": file}).to_string(),
            no_token,
        ),
        (
            "[]".to_owned(),
            "invalid session start message: expected a JSON object {\"token\", \"target\", \
             \"uuid\"}, got an array",
        ),
        // A key given twice, refused as in a REST body (which of the two would count?).
        (
            format!(
                r#"{{"token": "{token}", "target": "file_upload", "uuid": "{file}", "uuid": "{file}"}}"#
            ),
            "invalid session start message: expected a JSON object {\"token\", \"target\", \
             \"uuid\"}, got one that gives 'uuid' more than once",
        ),
    ] {
        let mut socket = open_socket(&server, "/").await;
        SinkExt::send(&mut socket, Message::text(start.clone()))
            .await
            .unwrap();
        let reply: serde_json::Value =
            serde_json::from_slice(&next_bytes(&mut socket).await.unwrap()).unwrap();
        assert_eq!(reply, json!({"success": false, "error": error}), "{start}");
        assert_closed(&mut socket).await;
    }
    // An unknown file.
    let mut socket = open_socket(&server, "/").await;
    let reply = init(
        &mut socket,
        &token,
        "file_upload",
        "8a1b2c3d-0000-4000-8000-123456789abc",
    )
    .await;
    assert_eq!(reply["success"], false);
    assert!(reply["error"].as_str().unwrap().contains("not found"));
    assert_closed(&mut socket).await;
    // Somebody else's file (a project admin of another project).
    let mut socket = open_socket(&server, "/").await;
    let reply = init(
        &mut socket,
        memb.token.as_ref().unwrap(),
        "file_upload",
        &file,
    )
    .await;
    assert_eq!(reply["success"], false);
    assert_closed(&mut socket).await;
    // The token of a deleted user: the original's text, and why.
    let gone = member(&server, &admin_http, "gone", "proj_a", false).await;
    admin_http.delete("user?id=gone").await.expect(200);
    let mut socket = open_socket(&server, "/").await;
    let reply = init(
        &mut socket,
        gone.token.as_ref().unwrap(),
        "file_upload",
        &file,
    )
    .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": "Token invalid: the account of user 'gone' that the \
                                           token was issued for no longer exists, or its \
                                           password was changed: log in again"})
    );
    assert_closed(&mut socket).await;
    // An unknown target.
    let mut socket = open_socket(&server, "/").await;
    assert_eq!(
        init(&mut socket, &token, "nothing", &file).await["success"],
        false
    );
    assert_closed(&mut socket).await;
    // Not JSON.
    let mut socket = open_socket(&server, "/").await;
    socket.send(Message::text("hello")).await.unwrap();
    let reply: serde_json::Value =
        serde_json::from_slice(&next_bytes(&mut socket).await.unwrap()).unwrap();
    assert_eq!(reply["success"], false);
    assert_closed(&mut socket).await;

    // A chunk past the declared size.
    let mut socket = open_socket(&server, "/any/path").await;
    let reply = init(&mut socket, &token, "file_upload", &file).await;
    assert_eq!(reply["success"], true);
    assert_eq!(reply["uuid"].as_str().unwrap().len(), 36);
    let ok = send_chunk(&mut socket, 0, b"a,b\n").await;
    assert!(ok.success);
    let refused = send_chunk(&mut socket, 8, b"1,2\n5").await;
    assert!(!refused.success);
    assert!(
        refused
            .error_message
            .contains("past the declared file size of 12"),
        "{}",
        refused.error_message
    );
    assert_closed(&mut socket).await;
    // A malformed frame.
    let mut socket = open_socket(&server, "/").await;
    assert_eq!(
        init(&mut socket, &token, "file_upload", &file).await["success"],
        true
    );
    socket
        .send(Message::binary(vec![0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let refused =
        FileUploadResponseMessage::decode(next_bytes(&mut socket).await.unwrap().as_slice())
            .unwrap();
    assert!(!refused.success);
    assert!(refused.error_message.contains("invalid"));
    assert_closed(&mut socket).await;

    // The upload itself is unharmed: finish it (its uuid in any case) and finalise.
    let mut socket = open_socket(&server, "/").await;
    assert_eq!(
        init(
            &mut socket,
            &token,
            "file_upload",
            &file.to_ascii_uppercase()
        )
        .await["success"],
        true
    );
    assert!(send_chunk(&mut socket, 4, b"1,2\n3,40").await.success);
    let done: serde_json::Value = client
        .put(
            "dataset/upload/csv",
            &json!({"uuid": started.uuid, "uuid_input_file": file}),
        )
        .await
        .unwrap();
    assert_eq!(done["uuid"], json!(started.uuid));
    assert_eq!(
        client.dataset(&started.uuid).await.unwrap().number_of_rows,
        2
    );
}

#[tokio::test]
async fn an_upload_session_ends_when_its_user_loses_access() {
    let server = TestServer::start();
    let admin_http = server.admin().await;
    let memb = member(&server, &admin_http, "memb", "proj_a", false).await;
    let client = sdk(&server, "memb", "password1").await;
    let started = client.start_csv_upload("revoked", 8).await.unwrap();
    let mut socket = open_socket(&server, "/").await;
    let token = memb.token.as_ref().unwrap();
    let reply = init(&mut socket, token, "file_upload", &started.uuid_input_file).await;
    assert_eq!(reply["success"], true);
    assert!(send_chunk(&mut socket, 0, b"a,b\n").await.success);
    admin_http
        .delete("user/project?id=memb&project_id=proj_a")
        .await
        .expect(200);
    // Sessions check again once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = send_chunk(&mut socket, 4, b"1,2\n").await;
    assert!(!refused.success);
    assert_eq!(
        refused.error_message,
        "access withdrawn: Token invalid: user 'memb' is no longer assigned to project 'proj_a'"
    );
    assert_closed(&mut socket).await;
    // Nobody can finish the upload now: it is gone, files and all, and keeps neither the
    // user nor the project from being deleted (for upload_timeout, without its uuid).
    let files: Vec<_> = std::fs::read_dir(server.data_dir.join("uploads"))
        .unwrap()
        .collect();
    assert!(files.is_empty(), "{files:?}");
    admin_http.delete("user?id=memb").await.expect(200);
    admin_http.delete("project?id=proj_a").await.expect(200);
}

/// An upload whose user left its project before sending anything, or got a new password
/// (its client holds a token that the server no longer takes, not the password to make a
/// new one): the refused session cancels it, so that it keeps neither the user nor the
/// project from being deleted.
#[tokio::test]
async fn an_upload_of_a_user_who_lost_access_is_cancelled() {
    let server = TestServer::start();
    let admin_http = server.admin().await;
    let losses = [
        (
            "leaver",
            "user/project?id=leaver&project_id=proj_leaver",
            json!(null),
        ),
        (
            "changed",
            "user",
            json!({"id": "changed", "password": "password2"}),
        ),
    ];
    for (user, path, body) in losses {
        let project = format!("proj_{user}");
        let memb = member(&server, &admin_http, user, &project, false).await;
        let client = sdk(&server, user, "password1").await;
        let started = client.start_csv_upload("left_behind", 8).await.unwrap();
        if body.is_null() {
            admin_http.delete(path).await.expect(200);
        } else {
            admin_http.put(path, &body).await.expect(200);
        }
        let mut socket = open_socket(&server, "/").await;
        let token = memb.token.as_ref().unwrap();
        let reply = init(&mut socket, token, "file_upload", &started.uuid_input_file).await;
        assert_eq!(reply["success"], false, "{user}: {reply}");
        let files: Vec<_> = std::fs::read_dir(server.data_dir.join("uploads"))
            .unwrap()
            .collect();
        assert!(files.is_empty(), "{user}: {files:?}");
        admin_http
            .delete(&format!("user?id={user}"))
            .await
            .expect(200);
        admin_http
            .delete(&format!("project?id={project}"))
            .await
            .expect(200);
    }
}

/// An upload that starts while its user or project is being deleted: either the deletion
/// waits for it and refuses (it has an unfinished upload), or the upload start is refused;
/// never both succeed (an orphaned upload that a user created later under the same id
/// could take over).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_do_not_outlive_a_racing_deletion_of_their_owner() {
    let server = TestServer::start();
    let admin = server.admin().await;
    for trial in 0..12 {
        let project = format!("race_project_{trial}");
        let user = format!("race_user_{trial}");
        let memb = member(&server, &admin, &user, &project, false).await;
        let body = json!({"name": "racing", "input_data_size": 16, "label_data_size": 9});
        let starts = (0..4).map(|i| {
            let (memb, body) = (&memb, &body);
            async move {
                tokio::time::sleep(Duration::from_millis(i * 2)).await;
                memb.post("dataset/upload/mnist", body).await.status
            }
        });
        let target = if trial % 2 == 0 {
            format!("user?id={user}")
        } else {
            format!("project?id={project}")
        };
        let (started, deleted) = tokio::join!(futures_util::future::join_all(starts), async {
            admin.delete(&target).await.status
        });
        let uploads = started.iter().filter(|&&status| status == 200).count();
        match deleted {
            200 => assert_eq!(uploads, 0, "trial {trial}: {started:?}"),
            409 => assert!(uploads > 0, "trial {trial}: {started:?}"),
            other => panic!("trial {trial}: delete answered {other}"),
        }
    }
}

#[tokio::test]
async fn an_upload_session_is_told_when_the_server_shuts_down() {
    let mut server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("stopping", 8).await.unwrap();
    let mut socket = open_socket(&server, "/").await;
    let token = client.token();
    init(&mut socket, &token, "file_upload", &started.uuid_input_file).await;
    assert!(server.stop(), "the server did not stop cleanly");
    let told = next_bytes(&mut socket)
        .await
        .expect("a reply before the close");
    let told = FileUploadResponseMessage::decode(told.as_slice()).unwrap();
    assert!(!told.success);
    assert_eq!(told.error_message, "the server is shutting down");
}

/// A socket that has not sent its first message yet is closed at once when the server
/// stops, with the reason (the shutdown waited for its 30 s first-message limit, at most
/// the 5 s it waits for sessions).
#[tokio::test]
async fn a_silent_new_socket_does_not_hold_up_the_shutdown() {
    let mut server = TestServer::start();
    let mut socket = open_socket(&server, "/").await;
    let started = std::time::Instant::now();
    let stopped = tokio::task::spawn_blocking(move || server.stop());
    let close = loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.unwrap().reason, "the server is shutting down");
    drop(socket);
    assert!(stopped.await.unwrap(), "the server did not stop cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Uploads that are sending chunks when the server stops all learn why, not just those
/// that were waiting for their next chunk (the others saw their connection reset: the
/// server closed it with their chunks unread).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_upload_sessions_are_told_when_the_server_shuts_down() {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let mut server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let size = 16u64 << 20;
    let path = write(tmp.path(), "big", vec![b'1'; size as usize]);
    let sent = AtomicU64::new(0);
    // Sessions that have sent bytes (so their handshake is done).
    let sending = AtomicUsize::new(0);
    let mut files = Vec::new();
    for i in 0..8 {
        let started = client
            .start_csv_upload(&format!("busy_{i}"), size)
            .await
            .unwrap();
        files.push(started.uuid_input_file);
    }
    let uploads = futures_util::future::join_all(files.iter().map(|file| {
        let (client, path, sent, sending) = (&client, &path, &sent, &sending);
        async move {
            let mut last = 0;
            let mut progress = |bytes: u64| {
                if last == 0 && bytes > 0 {
                    sending.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(bytes - last, Ordering::Relaxed);
                last = bytes;
            };
            client
                .upload_file(file, path, file_len(path), &mut progress)
                .await
        }
    }));
    // Stop while every session is sending (8 × 16 MiB take far longer than 1 MiB each).
    let stop = async {
        while sending.load(Ordering::Relaxed) < files.len()
            || sent.load(Ordering::Relaxed) < 8 << 20
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .unwrap()
    };
    let (results, stopped) = tokio::join!(uploads, stop);
    assert!(stopped, "the server did not stop cleanly");
    // On a fast machine a session may finish its file before the stop reaches it; every
    // other one is told why it ends.
    let told = |result: &Result<(), Error>| matches!(result, Err(Error::Status { status: 503, body }) if body == "the server is shutting down");
    assert!(
        results.iter().all(|r| r.is_ok() || told(r)) && results.iter().any(told),
        "{results:?}"
    );
}

#[tokio::test]
async fn datasets_are_scoped_to_projects_and_owners() {
    let server = TestServer::start();
    let admin_http = server.admin().await;
    let _ = member(&server, &admin_http, "alice", "proj_a", false).await;
    let _ = member(&server, &admin_http, "bobby", "proj_a", false).await;
    let _ = member(&server, &admin_http, "carol", "proj_a", true).await;
    let _ = member(&server, &admin_http, "david", "proj_b", true).await;
    let alice = sdk(&server, "alice", "password1").await;
    let bob = sdk(&server, "bobby", "password1").await;
    let carol = sdk(&server, "carol", "password1").await;
    let dave = sdk(&server, "david", "password1").await;
    let admin = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "d.csv", "x,y\n1,2\n");
    let ds = alice.upload_csv("alice_data", &path).await.unwrap();
    assert_eq!(ds.project_id, "proj_a");
    assert_eq!(ds.owner_id, "alice");

    // Members see their own, project admins their project's, global admins everything.
    for (client, visible) in [
        (&alice, true),
        (&bob, false),
        (&carol, true),
        (&dave, false),
        (&admin, true),
    ] {
        assert_eq!(
            client.datasets().await.unwrap().body.len(),
            usize::from(visible)
        );
        match client.dataset(&ds.uuid).await {
            Ok(d) => assert!(visible, "{d:?}"),
            Err(Error::NotFound(_)) => assert!(!visible),
            Err(e) => panic!("{e}"),
        }
        if !visible {
            assert!(matches!(
                client.upload_progress(&ds.uuid).await,
                Err(Error::NotFound(_))
            ));
            assert!(matches!(
                client.delete_dataset(&ds.uuid).await,
                Err(Error::NotFound(_))
            ));
        }
    }
    // A pending upload is scoped the same way.
    let pending = alice.start_csv_upload("pending", 10).await.unwrap();
    assert!(matches!(
        bob.upload_progress(&pending.uuid).await,
        Err(Error::NotFound(_))
    ));
    assert!(!carol.upload_progress(&pending.uuid).await.unwrap().complete);

    // Neither a project nor a user that has an unfinished upload or a dataset can be
    // deleted: a project or user created later under the same id would have them.
    let conflict = |result: hanami_sdk::Result<()>| match result {
        Err(Error::Conflict(message)) => message,
        other => panic!("{other:?}"),
    };
    // One answer names everything in the way: the upload and what is owned already.
    let message = conflict(admin.delete_project("proj_a").await);
    assert!(
        message.contains("1 unfinished upload")
            && message.contains(&format!(
                "Project with id 'proj_a' also still owns 1 dataset(s) ({})",
                ds.uuid
            )),
        "{message}"
    );
    let message = conflict(admin.delete_user("alice").await);
    assert!(message.contains("1 unfinished upload"), "{message}");
    assert_eq!(
        message.contains("also still owns 1 dataset(s)"),
        ds.owner_id == "alice",
        "{message}"
    );
    assert!(
        message.contains("delete them by their dataset uuid"),
        "{message}"
    );
    assert!(message.contains("s without a chunk"), "{message}");
    alice.delete_dataset(&pending.uuid).await.unwrap();
    let message = conflict(admin.delete_project("proj_a").await);
    assert!(message.contains("still owns 1 dataset(s)"), "{message}");
    let owner = ds.owner_id.clone();
    let message = conflict(admin.delete_user(&owner).await);
    assert!(message.contains("still owns 1 dataset(s)"), "{message}");
    carol.delete_dataset(&ds.uuid).await.unwrap();
    admin.delete_user(&owner).await.unwrap();
    admin.delete_project("proj_a").await.unwrap();

    // The global admins' own project `admin` is no project: deleting it answers the same
    // 404 whatever they have in it, pending uploads included.
    let own = admin.start_csv_upload("admins_pending", 10).await.unwrap();
    match admin.delete_project("admin").await {
        Err(Error::NotFound(message)) => {
            assert_eq!(message, "Project with id 'admin' not found");
        }
        other => panic!("{other:?}"),
    }
    admin.delete_dataset(&own.uuid).await.unwrap();
}

#[tokio::test]
async fn concurrent_uploads() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<_> = (1..=4).map(|i| mnist_files(tmp.path(), 100 * i)).collect();
    let uploads = files.iter().enumerate().map(|(i, (images, labels))| {
        let client = client.clone();
        async move {
            client
                .upload_mnist(&format!("parallel {i}"), images, labels)
                .await
        }
    });
    let results = futures_util::future::join_all(uploads).await;
    let mut uuids = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        let dataset = result.unwrap();
        assert_eq!(dataset.number_of_rows, 100 * (i as u64 + 1));
        assert_eq!(dataset.name, format!("parallel {i}"));
        uuids.push(dataset.uuid);
    }
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 4);
    assert_eq!(client.datasets().await.unwrap().body.len(), 4);
}

#[tokio::test]
async fn uploads_leave_the_configured_disk_space_free() {
    let tmp = tempfile::tempdir().unwrap();
    // More than any disk has: every upload is refused, before any file is made.
    let server = launch_with_config(tmp.path(), "min_free_disk_mib = 1073741824\n")
        .0
        .start();
    // The start says so.
    server.wait_until_logged(&[
        "MiB free, less than the 1073741824 MiB that min_free_disk_mib keeps free: uploads, \
         new clusters, request tasks and checkpoint saves will be refused",
    ]);
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let refused = client.start_csv_upload("too_big", 1000).await;
    let Err(Error::Conflict(message)) = &refused else {
        panic!("{refused:?}");
    };
    // The file, and a dataset twice its text (`1,` becomes a 4-byte float) with up to 48
    // bytes per column (at most one per two bytes) and 64 KiB of header.
    assert!(
        message.starts_with(
            "Not enough disk space on the server for this upload: it needs up to 92536 bytes"
        ) && message.ends_with("or ask the administrator")
            // Nothing about the disk or other users' uploads.
            && !message.contains("free,") && !message.contains("1125899906842624"),
        "{message}"
    );
    let refused = client.start_mnist_upload("too_big", 1000, 100).await;
    assert!(
        // The files, and a dataset of the pixels, ten bytes per label and the header.
        matches!(&refused, Err(Error::Conflict(m)) if m.contains("it needs up to 68636 bytes")),
        "{refused:?}"
    );
    let uploads = server.data_dir.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    // Without that reserve the same upload starts.
    let server = launch_with_config(tmp.path(), "min_free_disk_mib = 0\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    client.start_csv_upload("fits", 1000).await.unwrap();
}

#[tokio::test]
async fn one_user_has_at_most_32_unfinished_uploads() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    // Forty at the same moment: exactly 32 start.
    let starts = (0..40).map(|i| {
        let client = &client;
        async move {
            client
                .start_csv_upload(&format!("upload_{i}"), 8 << 20)
                .await
        }
    });
    let (started, refused): (Vec<_>, Vec<_>) = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .partition(Result::is_ok);
    assert_eq!((started.len(), refused.len()), (32, 8));
    let started: Vec<_> = started.into_iter().map(Result::unwrap).collect();
    let refused = client.start_csv_upload("one_more", 10).await;
    assert!(
        matches!(&refused, Err(Error::Conflict(m)) if m.contains("32 unfinished uploads")),
        "{refused:?}"
    );
    // Another user is not held back, and an ended upload makes room.
    let admin_http = server.admin().await;
    member(&server, &admin_http, "other", "proj_a", false).await;
    let other = sdk(&server, "other", "password1").await;
    other.start_csv_upload("theirs", 10).await.unwrap();
    client.delete_dataset(&started[0].uuid).await.unwrap();
    client.start_csv_upload("one_more", 10).await.unwrap();

    // The server as a whole keeps at most 256: seven more users fill it up (with the 33
    // above), and then even a user without uploads waits.
    let mut others = Vec::new();
    for u in 0..7 {
        let id = format!("user{u}");
        member(&server, &admin_http, &id, "proj_a", false).await;
        others.push(sdk(&server, &id, "password1").await);
    }
    for (u, user) in others.iter().enumerate() {
        let count = if u == 6 { 256 - 33 - 6 * 32 } else { 32 };
        for i in 0..count {
            user.start_csv_upload(&format!("fill_{i}"), 10)
                .await
                .unwrap();
        }
    }
    member(&server, &admin_http, "latecomer", "proj_a", false).await;
    let late = sdk(&server, "latecomer", "password1").await;
    let refused = late.start_csv_upload("late", 10).await;
    assert!(
        matches!(&refused, Err(Error::Conflict(m)) if m.contains("The server has 256")),
        "{refused:?}"
    );
}

/// Waits (up to 4 s) until the server has removed the idle upload of dataset `uuid`.
async fn wait_until_expired(client: &hanami_sdk::Client, uuid: &str) {
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if matches!(client.upload_progress(uuid).await, Err(Error::NotFound(_))) {
            return;
        }
    }
    panic!("the idle upload {uuid} was not removed");
}

/// The server's folders of unfinished uploads and of results so far may hold files it did
/// not make (a data directory made over a folder that had an `uploads` folder, say): a
/// start leaves them where they are and says so, and removes only its own leftovers, which
/// it names with uuids (or hidden temporary names).
#[tokio::test]
async fn a_start_removes_only_the_files_it_made_from_its_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let leftover = "8a1b2c3d-0000-4000-8000-123456789abc";
    let mut foreign = Vec::new();
    for (folder, name) in [("uploads", "cv.pdf"), ("partial-results", "report.txt")] {
        let folder = data.join(folder);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(name), b"mine").unwrap();
        std::fs::write(folder.join(leftover), b"the server's").unwrap();
        // What a crash during a start's write check leaves.
        std::fs::write(folder.join(".write-check-1.hanami-tmp"), b"").unwrap();
        foreign.push(folder.join(name));
    }
    let server = launch().data_dir(&data).start();
    for file in &foreign {
        let line = format!("left {}:", file.display());
        common::until_logged(&server, &line, Duration::from_secs(10)).await;
        assert_eq!(std::fs::read(file).unwrap(), b"mine");
        for own in [leftover, ".write-check-1.hanami-tmp"] {
            let own = file.with_file_name(own);
            assert!(!own.exists(), "{} is still there", own.display());
        }
    }
}

#[tokio::test]
async fn abandoned_uploads_expire_and_restarts_clean_up() {
    let tmp = tempfile::tempdir().unwrap();
    let server = launch_with_config(tmp.path(), "upload_timeout = 1\n")
        .0
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let started = client.start_csv_upload("abandoned", 1000).await.unwrap();
    let token = client.token();
    let mut socket = open_socket(&server, "/").await;
    init(&mut socket, &token, "file_upload", &started.uuid_input_file).await;
    assert!(send_chunk(&mut socket, 0, b"a,b\n1,2\n").await.success);
    drop(socket); // the client goes away midway
    let uploads = server.data_dir.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    wait_until_expired(&client, &started.uuid).await;
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    assert!(client.datasets().await.unwrap().body.is_empty());
    // Those who come back are told why the upload may be gone.
    let why = "an upload ends when it is finalised or cancelled, after 1 s without a chunk, or when the server restarts";
    let gone = client.upload_progress(&started.uuid).await;
    assert!(
        matches!(&gone, Err(Error::NotFound(m)) if m.contains(why)),
        "{gone:?}"
    );
    let mut socket = open_socket(&server, "/").await;
    let reply = init(&mut socket, &token, "file_upload", &started.uuid_input_file).await;
    assert!(reply["error"].as_str().unwrap().contains(why), "{reply}");

    // A session that stays open and silent is told and closed too.
    let idle = client.start_csv_upload("idle", 1000).await.unwrap();
    let mut socket = open_socket(&server, "/").await;
    init(&mut socket, &token, "file_upload", &idle.uuid_input_file).await;
    let told = tokio::time::timeout(Duration::from_secs(5), next_bytes(&mut socket))
        .await
        .expect("an idle session is closed")
        .expect("a reply before the close");
    assert!(
        !FileUploadResponseMessage::decode(told.as_slice())
            .unwrap()
            .success
    );
    assert!(
        next_bytes(&mut socket).await.is_none(),
        "the session is closed"
    );
    // And its upload expires as the first one did.
    wait_until_expired(&client, &idle.uuid).await;

    // A restart removes the temporary files of unfinished uploads.
    client.start_csv_upload("unfinished", 1000).await.unwrap();
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    let server = server.restart();
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    drop(server);
}

/// A CSV upload of 1,000 bytes named `name`, of which the first chunk has arrived through
/// the returned session (still open); its temporary file is the only one in `uploads/`.
async fn unfinished_upload(
    server: &TestServer,
    client: &hanami_sdk::Client,
    name: &str,
) -> (hanami_types::datasets::UploadStarted, common::Socket) {
    let started = client.start_csv_upload(name, 1000).await.unwrap();
    let mut socket = open_socket(server, "/").await;
    init(
        &mut socket,
        &client.token(),
        "file_upload",
        &started.uuid_input_file,
    )
    .await;
    assert!(send_chunk(&mut socket, 0, b"a,b\n1,2\n").await.success);
    let uploads = server.data_dir.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    (started, socket)
}

/// A stopping server removes the files of unfinished uploads (which no restart could
/// continue) instead of leaving them on the disk until the next start.
#[tokio::test]
async fn a_stop_removes_unfinished_uploads() {
    let mut server = launch().env("RUST_LOG", "info").start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let (_, _socket) = unfinished_upload(&server, &client, "unfinished").await;
    let uploads = server.data_dir.join("uploads");
    assert!(server.stop());
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    server
        .wait_until_logged(&["removed 1 unfinished upload(s), which a restart could not continue"]);
}

#[tokio::test]
async fn deleting_an_unfinished_upload_cancels_it() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let admin = server.admin().await;
    let (started, mut socket) = unfinished_upload(&server, &client, "cancelled").await;
    let uploads = server.data_dir.join("uploads");

    admin
        .delete(&format!("dataset?uuid={}", started.uuid))
        .await
        .expect(200);
    // The temporary file is gone at once, the upload is unknown, and the open session is
    // told so and closed without waiting for its next chunk (it lets go of the file).
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    assert!(matches!(
        client.upload_progress(&started.uuid).await,
        Err(Error::NotFound(_))
    ));
    let told = tokio::time::timeout(Duration::from_secs(5), next_bytes(&mut socket))
        .await
        .expect("the session is told at once")
        .expect("a reply before the close");
    let told = FileUploadResponseMessage::decode(told.as_slice()).unwrap();
    assert!(!told.success);
    assert_eq!(
        told.error_message,
        hanami_types::websocket::CLOSED_UPLOAD_GONE,
        "{told:?}"
    );
    assert!(
        next_bytes(&mut socket).await.is_none(),
        "the session is closed"
    );
    admin
        .delete(&format!("dataset?uuid={}", started.uuid))
        .await
        .expect(404);
    assert!(client.datasets().await.unwrap().body.is_empty());
}

/// An unfinished upload is listed after the datasets, as the original listed the row it made
/// at the start of an upload, so that a user whose client went away can find and cancel it;
/// asking for its data says why there is none.
#[tokio::test]
async fn an_unfinished_upload_is_listed_and_its_data_is_not_ready() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let admin = server.admin().await;
    let (images, labels) = mnist_files(tmp.path(), 20);
    let done = client
        .upload_mnist("done", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let started = client.start_csv_upload("half", 1000).await.unwrap();
    let listed = |table: hanami_types::list::ListTable| -> Vec<(String, String)> {
        table
            .body
            .iter()
            .map(|line| {
                (
                    line[1].as_str().unwrap().into(),
                    line[5].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(
        listed(client.datasets().await.unwrap()),
        [
            (done.clone(), "done".into()),
            (started.uuid.clone(), "half".into())
        ]
    );
    let not_ready = |e: hanami_sdk::Error| match e {
        Error::Conflict(text) => {
            assert!(
                text.contains(&format!("'{}' is not ready", started.uuid))
                    && text.contains("delete the dataset to cancel the upload"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    };
    not_ready(client.dataset(&started.uuid).await.unwrap_err());
    not_ready(
        client
            .check_dataset(&done, &started.uuid)
            .await
            .unwrap_err(),
    );
    let cluster = common::seed_cluster(&client, "waiting").await;
    let picture = [("picture", started.uuid.as_str())];
    let label = [("label", started.uuid.as_str())];
    not_ready(
        client
            .train("early", &cluster, &picture, &label)
            .await
            .unwrap_err(),
    );
    // Others do not see it, and get the plain 404.
    let other = member(&server, &admin, "someone", "elsewhere", false).await;
    let seen = other.get("dataset/all").await.expect(200).json();
    assert_eq!(seen["body"], serde_json::json!([]));
    other
        .get(&format!("dataset?uuid={}", started.uuid))
        .await
        .expect(404);
    // Once cancelled, it is gone.
    client.delete_dataset(&started.uuid).await.unwrap();
    assert_eq!(
        listed(client.datasets().await.unwrap()),
        [(done.clone(), "done".into())]
    );
    assert!(matches!(
        client.dataset(&started.uuid).await,
        Err(Error::NotFound(_))
    ));
}

/// A request's result dataset exists once its task has finished; asked for before, it says
/// which task is writing it, to those who will see it.
#[tokio::test]
async fn a_result_dataset_is_not_ready_while_its_request_task_runs() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let admin = server.admin().await;
    let (images, labels) = mnist_files(tmp.path(), 20);
    let data = client
        .upload_mnist("data", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let cluster = common::seed_cluster(&client, "waiting").await;
    // Tasks wait while the cluster is in DIRECT mode.
    client.set_direct_mode(&cluster, true).await.unwrap();
    let task = client
        .request(
            "later",
            &cluster,
            &[("picture", &data)],
            ("label", "result"),
        )
        .await
        .unwrap();
    let not_ready = |e: hanami_sdk::Error| match e {
        Error::Conflict(text) => assert!(
            text.contains(&format!(
                "'{}' is not ready: the request task that writes it (on cluster '{cluster}') \
                 is queued",
                task.uuid
            )),
            "{text}"
        ),
        other => panic!("{other:?}"),
    };
    not_ready(client.dataset(&task.uuid).await.unwrap_err());
    not_ready(client.check_dataset(&data, &task.uuid).await.unwrap_err());
    let early = client.delete_dataset(&task.uuid).await;
    assert!(
        matches!(&early, Err(Error::Conflict(text))
            if text.contains("is not written yet") && text.contains("delete that task to stop it")),
        "{early:?}"
    );
    let other = member(&server, &admin, "someone", "elsewhere", false).await;
    other
        .get(&format!("dataset?uuid={}", task.uuid))
        .await
        .expect(404);
    other
        .delete(&format!("dataset?uuid={}", task.uuid))
        .await
        .expect(404);
    client.set_direct_mode(&cluster, false).await.unwrap();
    client
        .wait_for_task(&cluster, &task.uuid, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(client.dataset(&task.uuid).await.unwrap().number_of_rows, 20);
}

/// A request task's result as a CSV of `rows` rows of ten one-hot columns, each answering
/// class 0.
fn class_zero_result(rows: usize) -> String {
    "c0,c1,c2,c3,c4,c5,c6,c7,c8,c9\n".to_owned() + &"1,0,0,0,0,0,0,0,0,0\n".repeat(rows)
}

/// At most two accuracy checks read their datasets at once; more wait their turn (many at
/// once took the blocking threads that cluster workers need too).
#[tokio::test]
async fn accuracy_checks_take_turns() {
    let server = launch().pause_at("dataset-check:comparing", 3000).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = mnist_files(tmp.path(), 40);
    let mnist = client
        .upload_mnist("reference", &images, &labels)
        .await
        .unwrap()
        .uuid;
    let csv = class_zero_result(40);
    let result = client
        .upload_csv("result", &write(tmp.path(), "result.csv", csv))
        .await
        .unwrap()
        .uuid;
    let checks: Vec<_> = (0..3)
        .map(|_| {
            let (client, mnist, result) = (client.clone(), mnist.clone(), result.clone());
            tokio::spawn(async move { client.check_dataset(&mnist, &result).await })
        })
        .collect();
    let comparing = || common::pauses(&server, "dataset-check:comparing");
    common::until_paused(&server, "dataset-check:comparing", 2).await;
    // The third starts only once one of the two has ended.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(comparing(), 2);
    for check in checks {
        let accuracy = check.await.unwrap().unwrap();
        assert!((accuracy - 10.0).abs() < 1e-4, "{accuracy}"); // label 0 in 4 of 40 rows
    }
    assert_eq!(comparing(), 3);
}

#[tokio::test]
async fn datasets_survive_restarts_and_reading_never_changes_them() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = mnist_files(tmp.path(), 40);
    let mnist = client
        .upload_mnist("reference", &images, &labels)
        .await
        .unwrap();
    // A result in which every third row is wrong: labels cycle 0..9, so row r has label r % 10.
    let mut csv = (0..10)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for row in 0..40 {
        let class = if row % 3 == 0 {
            (row + 1) % 10
        } else {
            row % 10
        };
        let cells: Vec<&str> = (0..10)
            .map(|i| if i == class { "1" } else { "0" })
            .collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    let result = client
        .upload_csv("result", &write(tmp.path(), "result.csv", csv))
        .await
        .unwrap();
    let file = server.data_dir.join("datasets").join(&mnist.uuid);
    let before = sha256(&file);

    let accuracy = client
        .check_dataset(&mnist.uuid, &result.uuid)
        .await
        .unwrap();
    assert!((accuracy - 65.0).abs() < 1e-4, "{accuracy}"); // 26 of 40 rows
    client
        .check_dataset(&mnist.uuid, &result.uuid)
        .await
        .unwrap();
    client.dataset(&mnist.uuid).await.unwrap();
    assert_eq!(sha256(&file), before, "reading changed the dataset file");
    // Mismatching shapes are a 400, unknown datasets a 404.
    assert!(matches!(
        client.check_dataset(&mnist.uuid, &mnist.uuid).await,
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        client.check_dataset(&result.uuid, &result.uuid).await,
        Err(Error::BadRequest(message)) if !message.contains("look swapped")
    ));
    // Given swapped, the message says which one has the labels.
    let swapped = client.check_dataset(&result.uuid, &mnist.uuid).await;
    assert!(
        matches!(&swapped, Err(Error::BadRequest(message)) if message.contains(
            "it has no 'label' columns; the other dataset has them: the two look swapped (the \
             reference is the dataset with labels that the request task ran on"
        )),
        "{swapped:?}"
    );
    assert!(matches!(
        client
            .check_dataset(&mnist.uuid, "8a1b2c3d-0000-4000-8000-123456789abc")
            .await,
        Err(Error::NotFound(_))
    ));
    // A single label column (0/1) would score every result 100 %: refused.
    let single = client
        .upload_csv(
            "single_label",
            &write(tmp.path(), "single.csv", "label\n1\n0\n"),
        )
        .await
        .unwrap();
    let answer = client
        .upload_csv(
            "single_answer",
            &write(tmp.path(), "answer.csv", "y\n0\n1\n"),
        )
        .await
        .unwrap();
    let refused = client.check_dataset(&single.uuid, &answer.uuid).await;
    assert!(
        matches!(&refused, Err(Error::BadRequest(m)) if m.contains("single column")),
        "{refused:?}"
    );
    client.delete_dataset(&single.uuid).await.unwrap();
    client.delete_dataset(&answer.uuid).await.unwrap();

    let server = server.restart();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let again = client.dataset(&mnist.uuid).await.unwrap();
    assert_eq!(again.number_of_rows, 40);
    assert_eq!(sha256(&file), before);
    assert_eq!(client.datasets().await.unwrap().body.len(), 2);
}

#[tokio::test]
async fn uploads_over_wss() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, cert) = with_https(launch(), tmp.path());
    let server = launched.start();
    let options = hanami_sdk::ConnectOptions {
        root_certificate_pem: Some(cert.cert.pem().into_bytes()),
        ..hanami_sdk::ConnectOptions::default()
    };
    let client = hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &options)
        .await
        .unwrap();
    let (images, labels) = mnist_files(tmp.path(), 200);
    let dataset = client
        .upload_mnist("over_tls", &images, &labels)
        .await
        .unwrap();
    assert_eq!(dataset.number_of_rows, 200);
    // Without trusting the certificate the connection fails; accepting any certificate works.
    assert!(
        hanami_sdk::Client::login(&server.url, ADMIN, ADMIN_PW)
            .await
            .is_err()
    );
    let insecure = hanami_sdk::ConnectOptions {
        accept_invalid_certs: true,
        ..hanami_sdk::ConnectOptions::default()
    };
    let client = hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &insecure)
        .await
        .unwrap();
    let path = write(tmp.path(), "x.csv", "a\n1\n2\n");
    assert_eq!(
        client
            .upload_csv("tls_csv", &path)
            .await
            .unwrap()
            .number_of_rows,
        2
    );
}

/// An upload cancelled while its file is sent is withdrawn from the server.
#[tokio::test]
async fn a_cancelled_upload_leaves_nothing_behind() {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let csv = write(
        tmp.path(),
        "cancelled.csv",
        "a,b\n".to_owned() + &"1,2\n".repeat(100_000),
    );
    let outcome = client
        .upload_csv_until("cancelled", &csv, &mut |_, _| {}, std::future::ready(()))
        .await;
    assert!(matches!(outcome, Err(Error::Cancelled)), "{outcome:?}");
    let uploads = server.data_dir.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    assert!(client.datasets().await.unwrap().body.is_empty());
    // Without a cancellation the same file uploads.
    let dataset = client
        .upload_csv_until(
            "not_cancelled",
            &csv,
            &mut |_, _| {},
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(dataset.number_of_rows, 100_000);
}

/// A file that shrinks or grows while it is sent fails its upload with a file error, and
/// the upload is withdrawn (the file is read chunk by chunk as it is sent). The call's
/// `cancel` future lives until the withdrawal is over (hanamictl takes its drop for the
/// point from which the dataset is made whatever happens).
#[tokio::test]
async fn a_file_that_changes_while_it_is_sent_fails_its_upload() {
    use std::io::Write as _;
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let content = "a,b\n".to_owned() + &"1,2\n".repeat(1_000_000);
    /// What a case does to the file, and what the error then says.
    type Case = (&'static str, fn(&Path));
    let cases: [Case; 2] = [
        ("it ended before byte", |path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(600_000)
                .unwrap();
        }),
        ("it grew while it was sent", |path| {
            let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            file.write_all(b"3,4\n").unwrap();
        }),
    ];
    for (needle, change) in cases {
        let csv = write(tmp.path(), "changing.csv", content.clone());
        let mut changed = false;
        let mut progress = |_, _| {
            if !changed {
                change(&csv);
                changed = true;
            }
        };
        let uploads = server.data_dir.join("uploads");
        /// Notes, when dropped, how many files the server's upload folder holds.
        struct FilesAtDrop(PathBuf, Arc<AtomicUsize>);
        impl Drop for FilesAtDrop {
            fn drop(&mut self) {
                let files = std::fs::read_dir(&self.0).unwrap().count();
                self.1.store(files, Ordering::SeqCst);
            }
        }
        let at_drop = Arc::new(AtomicUsize::new(usize::MAX));
        let guard = FilesAtDrop(uploads.clone(), at_drop.clone());
        let cancel = async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        };
        let outcome = client
            .upload_csv_until("changing", &csv, &mut progress, cancel)
            .await;
        assert!(
            matches!(&outcome, Err(Error::File { source, .. })
                if source.to_string().starts_with("the file changed after its upload began: \
                    4000004 bytes were announced") && source.to_string().contains(needle)),
            "{outcome:?}"
        );
        assert_eq!(
            at_drop.load(Ordering::SeqCst),
            0,
            "dropped before the withdrawal"
        );
        assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    }
    assert!(client.datasets().await.unwrap().body.is_empty());
}

/// An upload whose future is dropped while its file is sent (a task aborted, a timeout
/// around the call) is withdrawn from the server in the background, as a cancelled one is;
/// upload futures run on tasks of their own (they are `Send`).
#[tokio::test]
async fn a_dropped_upload_is_withdrawn() {
    let server = TestServer::start();
    member(&server, &server.admin().await, "leaver", "leaving", false).await;
    let client = sdk(&server, "leaver", "password1").await;
    let admin = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let csv = write(
        tmp.path(),
        "dropped.csv",
        "a,b\n".to_owned() + &"1,2\n".repeat(1_000_000),
    );
    let first_chunk = std::sync::Arc::new(tokio::sync::Notify::new());
    let upload = {
        let first_chunk = first_chunk.clone();
        tokio::spawn(async move {
            let mut progress = move |_, _| first_chunk.notify_one();
            client
                .upload_csv_with_progress("dropped", &csv, &mut progress)
                .await
        })
    };
    first_chunk.notified().await;
    let uploads = server.data_dir.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    upload.abort();
    assert!(upload.await.unwrap_err().is_cancelled());
    common::eventually(Duration::from_secs(10), || async {
        match std::fs::read_dir(&uploads).unwrap().count() {
            0 => Ok(()),
            n => Err(format!("{n} temporary upload files left")),
        }
    })
    .await;
    // Nothing unfinished is left to keep the owner from being deleted.
    admin.delete_user("leaver").await.unwrap();
    assert!(admin.datasets().await.unwrap().body.is_empty());
}

/// An upload whose future is dropped, or cancelled, while the request that registers it
/// waits for its answer is withdrawn too, once the answer names it (it stayed until the
/// server's `upload_timeout`, and 32 of them kept their owner from uploading at all).
#[tokio::test]
async fn an_upload_given_up_before_its_start_is_answered_is_withdrawn() {
    let server = launch().pause_at("upload:registered", 3000).start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let csv = write(tmp.path(), "early.csv", "a,b\n1,2\n");
    let uploads = server.data_dir.join("uploads");
    let files = || std::fs::read_dir(&uploads).map_or(0, |d| d.count());
    let withdrawn = || {
        common::eventually(Duration::from_secs(10), || async {
            match files() {
                0 => Ok(()),
                n => Err(format!("{n} temporary upload files left")),
            }
        })
    };
    // Dropped (a timeout around the call, a `select!`) while the server holds the answer.
    tokio::select! {
        dropped = client.upload_csv("early", &csv) => panic!("answered: {dropped:?}"),
        () = common::until_paused(&server, "upload:registered", 1) => {}
    }
    assert_eq!(files(), 1, "the upload was registered");
    withdrawn().await;
    // Cancelled: the call ends with `Cancelled` once the upload is withdrawn.
    let cancelled = client
        .upload_csv_until(
            "early",
            &csv,
            &mut |_, _| {},
            common::until_paused(&server, "upload:registered", 2),
        )
        .await;
    assert!(matches!(cancelled, Err(Error::Cancelled)), "{cancelled:?}");
    withdrawn().await;
    assert!(client.datasets().await.unwrap().body.is_empty());
}

/// A server, its admin's client, the seed's cluster named `cluster`, and one dataset of the
/// same 20 MNIST-like rows for each of `names` (their files in the folder returned).
async fn server_with_datasets<const N: usize>(
    names: [&str; N],
    cluster: &str,
) -> (
    TestServer,
    hanami_sdk::Client,
    [hanami_types::datasets::Dataset; N],
    String,
    tempfile::TempDir,
) {
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = mnist_files(tmp.path(), 20);
    let mut datasets = Vec::with_capacity(N);
    for name in names {
        datasets.push(client.upload_mnist(name, &images, &labels).await.unwrap());
    }
    let cluster = common::seed_cluster(&client, cluster).await;
    let datasets = datasets
        .try_into()
        .unwrap_or_else(|_| unreachable!("one per name"));
    (server, client, datasets, cluster, tmp)
}

/// A dataset file changed or removed outside the server: every use of the dataset answers
/// 409 saying which dataset and what to do (it was a 500 with only an error id), listing
/// still works, and deleting it clears the way.
#[tokio::test]
async fn damaged_or_missing_dataset_files_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let names = [
        "cut_data",
        "gone_data",
        "fine_data",
        "folder_data",
        "pipe_data",
    ];
    let (server, client, [cut, gone, fine, folder, pipe], cluster, _tmp) =
        server_with_datasets(names, "damaged").await;
    let file = |uuid: &str| server.data_dir.join("datasets").join(uuid);
    std::fs::set_permissions(file(&cut.uuid), std::fs::Permissions::from_mode(0o644)).unwrap();
    let len = std::fs::metadata(file(&cut.uuid)).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(file(&cut.uuid))
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    std::fs::remove_file(file(&gone.uuid)).unwrap();
    // Not files at all: a folder, and a named pipe (opening it waited for a writer for
    // ever, and kept the server from exiting).
    std::fs::remove_file(file(&folder.uuid)).unwrap();
    std::fs::create_dir(file(&folder.uuid)).unwrap();
    std::fs::remove_file(file(&pipe.uuid)).unwrap();
    hanami_testkit::named_pipe(&file(&pipe.uuid));

    let not_a_file = "is damaged (not a dataset file: not a regular file)";
    for (dataset, what) in [
        (&cut, "is damaged (corrupt dataset file: "),
        (&gone, "is missing"),
        (&folder, not_a_file),
        (&pipe, not_a_file),
    ] {
        let uuid = &dataset.uuid;
        let said = |result: Result<(), Error>| match result {
            Err(Error::Conflict(m)) => {
                assert!(
                    m.starts_with(&format!("The file of dataset '{uuid}' {what}")),
                    "{m}"
                );
                assert!(m.ends_with(REMAKE), "{m}");
                assert!(!m.contains(&*server.data_dir.to_string_lossy()), "{m}");
            }
            other => panic!("{uuid}: {other:?}"),
        };
        said(client.dataset(uuid).await.map(drop));
        said(client.check_dataset(uuid, &fine.uuid).await.map(drop));
        said(client.check_dataset(&fine.uuid, uuid).await.map(drop));
        let inputs = [("picture", uuid.as_str())];
        said(
            client
                .train("train", &cluster, &inputs, &[("label", &fine.uuid)])
                .await
                .map(drop),
        );
        said(
            client
                .request("request", &cluster, &inputs, ("label", "result"))
                .await
                .map(drop),
        );
    }
    assert_eq!(client.datasets().await.unwrap().body.len(), 5);
    client.dataset(&fine.uuid).await.unwrap();
    for dataset in [&cut, &gone, &pipe] {
        client.delete_dataset(&dataset.uuid).await.unwrap();
        assert!(!file(&dataset.uuid).exists());
    }
    client.delete_dataset(&folder.uuid).await.unwrap();
    assert_eq!(client.datasets().await.unwrap().body.len(), 1);
    // Nothing blocked on the pipe: the server stops.
    let mut server = server;
    assert!(server.stop(), "the server did not stop cleanly");
}

/// A dataset file whose content changed since it was written (a byte of its rows, the
/// header still whole) is refused where its values are read, by a task's start, the
/// accuracy check and `dataset/rows`, naming what is wrong and what to do; as it was, it
/// works again. A file read before, when it had not changed for a while, is compared again
/// once it changes.
#[tokio::test]
async fn a_dataset_whose_file_changed_since_it_was_written_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let names = ["changed_data", "fine_data", "widened_data", "renamed_data"];
    let (server, client, [changed, fine, widened, renamed], cluster, _tmp) =
        server_with_datasets(names, "checked").await;
    let path = server.data_dir.join("datasets").join(&changed.uuid);
    // A pixel of the last row: as bit rot or another program would leave it.
    let at = std::fs::metadata(&path).unwrap().len() - 20;
    hanami_testkit::flip_byte(&path, at, 0x40);

    let what = format!(
        "The file of dataset '{}' is damaged (its checksum xxh3:",
        changed.uuid
    );
    let refused = |result: Result<(), Error>| match result {
        Err(Error::Conflict(m)) => {
            assert!(m.starts_with(&what), "{m}");
            assert!(m.contains("recorded for it"), "{m}");
            assert!(m.ends_with(REMAKE), "{m}");
        }
        other => panic!("{other:?}"),
    };
    refused(
        client
            .check_dataset(&changed.uuid, &fine.uuid)
            .await
            .map(drop),
    );
    refused(
        client
            .check_dataset(&fine.uuid, &changed.uuid)
            .await
            .map(drop),
    );
    // Even a row far from the changed byte; but what the header refuses is refused first,
    // without reading the file.
    refused(client.dataset_rows(&changed.uuid, 0, 1).await.map(drop));
    assert!(
        matches!(
            client.dataset_rows(&changed.uuid, 1000, 1).await,
            Err(Error::BadRequest(m)) if m.contains("'start' is at most 20")
        ),
        "a start beyond the end"
    );
    // Its header is whole: it is listed and described as before.
    assert_eq!(
        client.dataset(&changed.uuid).await.unwrap().uuid,
        changed.uuid
    );
    let ended_task = async |task: &str| {
        client
            .wait_for_task(&cluster, task, Duration::from_secs(120))
            .await
            .unwrap()
    };
    let inputs = [("picture", changed.uuid.as_str())];
    // A train task on the changed pictures, to its end.
    let trained = async || {
        let task = client
            .train("train", &cluster, &inputs, &[("label", &fine.uuid)])
            .await
            .unwrap();
        ended_task(&task.uuid).await
    };
    let ended = trained().await;
    assert_eq!(
        ended.state,
        hanami_types::tasks::TaskState::Aborted,
        "{ended:?}"
    );
    let note = ended.note.unwrap_or_default();
    assert!(
        note.contains(&format!(
            "the file of dataset '{}' is damaged (its checksum xxh3:",
            changed.uuid
        )) && note.ends_with(REMAKE),
        "{note}"
    );
    assert_eq!(ended.current_cycle, 0, "{note}");

    // Descriptions changed in ways that still read (the label group one column wider, or
    // named otherwise): told as the damage it is where tasks are queued, not as a dataset
    // that does not fit (400) or has no such columns (404).
    let change_description = |uuid: &str, from: &str, to: &str| {
        let path = server.data_dir.join("datasets").join(uuid);
        let mut bytes = std::fs::read(&path).unwrap();
        let description = String::from_utf8_lossy(&bytes[4096..4096 + 200]).into_owned();
        let at = 4096 + description.find(from).unwrap();
        bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, &bytes).unwrap();
    };
    change_description(
        &widened.uuid,
        "\"start_column\":784",
        "\"start_column\":783",
    );
    change_description(&renamed.uuid, "\"label\"", "\"lapel\"");
    let wide_label = client.dataset(&widened.uuid).await.unwrap().description["label"].start_column;
    assert_eq!(wide_label, 783);
    for uuid in [&widened.uuid, &renamed.uuid] {
        let what = format!("The file of dataset '{uuid}' is damaged (its checksum xxh3:");
        match client
            .train(
                "train",
                &cluster,
                &[("picture", &fine.uuid)],
                &[("label", uuid)],
            )
            .await
        {
            Err(Error::Conflict(m)) => assert!(m.starts_with(&what), "{m}"),
            other => panic!("{uuid}: {other:?}"),
        }
    }

    // The byte as it was: the same file is used again.
    hanami_testkit::flip_byte(&path, at, 0x40);
    let ended = trained().await;
    assert_eq!(
        ended.state,
        hanami_types::tasks::TaskState::Finished,
        "{ended:?}"
    );

    // A request task's result dataset has its checksum too.
    let task = client
        .request("request", &cluster, &inputs, ("label", "result"))
        .await
        .unwrap();
    let ended = ended_task(&task.uuid).await;
    assert_eq!(
        ended.state,
        hanami_types::tasks::TaskState::Finished,
        "{ended:?}"
    );
    // Read when its file has not changed for longer than the server's clock doubt (3 s),
    // so that the server remembers that it matched (the store's tests show that it does).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    client
        .check_dataset(&changed.uuid, &task.uuid)
        .await
        .unwrap();
    assert_eq!(
        client
            .dataset_rows(&task.uuid, 0, 2)
            .await
            .unwrap()
            .rows
            .len(),
        2
    );
    let result = server.data_dir.join("datasets").join(&task.uuid);
    hanami_testkit::flip_byte(&result, 4096 + 100, 0x7f);
    let damaged_result = |answer: Result<(), Error>| match answer {
        Err(Error::Conflict(m)) => assert!(
            m.starts_with(&format!(
                "The file of dataset '{}' is damaged (its checksum xxh3:",
                task.uuid
            )),
            "{m}"
        ),
        other => panic!("{other:?}"),
    };
    damaged_result(client.dataset_rows(&task.uuid, 0, 2).await.map(drop));
    damaged_result(
        client
            .check_dataset(&changed.uuid, &task.uuid)
            .await
            .map(drop),
    );
}

/// A dataset file cut short after its comparison with its checksum, before its rows are
/// read (by `dataset/rows` and by the accuracy check), answers the 409 of a damaged file
/// (it was a 500 with only an error id).
#[tokio::test]
async fn a_dataset_file_cut_short_while_it_is_read_is_damaged() {
    for point in ["dataset-rows:compared", "dataset-check:comparing"] {
        // Long enough for the cut on a busy machine.
        let server = launch().pause_at(point, 5000).start();
        let client = sdk(&server, ADMIN, ADMIN_PW).await;
        let tmp = tempfile::tempdir().unwrap();
        let (images, labels) = mnist_files(tmp.path(), 20);
        let cut = client
            .upload_mnist("cut_data", &images, &labels)
            .await
            .unwrap();
        let csv = class_zero_result(20);
        let result = client
            .upload_csv("result", &write(tmp.path(), "result.csv", csv))
            .await
            .unwrap();
        let reading = {
            let (client, cut, result) = (client.clone(), cut.uuid.clone(), result.uuid);
            tokio::spawn(async move {
                match point {
                    "dataset-rows:compared" => client.dataset_rows(&cut, 0, 20).await.map(drop),
                    _ => client.check_dataset(&cut, &result).await.map(drop),
                }
            })
        };
        common::until_paused(&server, point, 1).await;
        let path = server.data_dir.join("datasets").join(&cut.uuid);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 1000)
            .unwrap();
        match reading.await.unwrap() {
            Err(Error::Conflict(m)) => assert_eq!(
                m,
                format!(
                    "The file of dataset '{}' is damaged (corrupt dataset file: it has become \
                     shorter than its header records), so the dataset cannot be used; {REMAKE}",
                    cut.uuid
                ),
                "{point}"
            ),
            other => panic!("{point}: {other:?}"),
        }
    }
}

/// Datasets written before checksums were recorded (their checksum NULL, as an older server
/// left them) get theirs from their files in the background after the next start, so that
/// a change made after that is refused as for newer datasets.
#[tokio::test]
async fn datasets_from_before_checksums_get_theirs_at_the_next_start() {
    let (mut server, _, [older, _], _, _tmp) =
        server_with_datasets(["older", "other"], "unused").await;
    assert!(server.stop());
    common::change_database(&server.data_dir, "UPDATE datasets SET checksum = NULL", &[]).await;
    let server = server.restart_with(|launch| launch.env("RUST_LOG", "info"));
    server.wait_until_logged(&[
        "taking the checksums of 2 datasets written before checksums were recorded",
        "recorded the checksums of 2 datasets written before checksums were recorded",
    ]);
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    client.dataset_rows(&older.uuid, 0, 1).await.unwrap();
    let path = server.data_dir.join("datasets").join(&older.uuid);
    let at = std::fs::metadata(&path).unwrap().len() - 1;
    hanami_testkit::flip_byte(&path, at, 0x55);
    match client.dataset_rows(&older.uuid, 0, 1).await {
        Err(Error::Conflict(m)) => assert!(
            m.starts_with(&format!(
                "The file of dataset '{}' is damaged (its checksum xxh3:",
                older.uuid
            )),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // Every dataset has its checksum now.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(server.data_dir.join("hanami.db"))
        .read_only(true);
    let database = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let unchecked: i64 = sqlx::query_scalar("SELECT count(*) FROM datasets WHERE checksum IS NULL")
        .fetch_one(&database)
        .await
        .unwrap();
    assert_eq!(unchecked, 0);
    database.close().await;
}

/// An upload whose dataset was made but cannot be read back (here: a policy without
/// `GET dataset`) says that the dataset exists, with its uuid, instead of reporting a
/// failed upload (a retry would make a second dataset).
#[tokio::test]
async fn an_upload_whose_dataset_cannot_be_read_back_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = write(
        tmp.path(),
        "policy",
        "v1.0alpha/dataset/upload/mnist\n- POST: admin\n- PUT: admin\n\
         v1.0alpha/dataset/progress\n- GET: admin\n",
    );
    let server = launch()
        .args(&["--policy-file", policy.to_str().unwrap()])
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let (images, labels) = mnist_files(tmp.path(), 20);
    let unread = client.upload_mnist("made_data", &images, &labels).await;
    let Err(Error::CreatedUnread { uuid, source }) = unread else {
        panic!("{unread:?}");
    };
    assert!(matches!(*source, Error::Unauthorized(_)), "{source:?}");
    assert!(server.data_dir.join("datasets").join(&uuid).is_file());
}

/// A dataset deleted while another request reads it is not found (404), not reported as a
/// dataset whose file was removed outside the server (409, with a warning in the log): the
/// deletion removes the row first and then the file, between the reader's lookup and open.
#[tokio::test]
async fn readers_racing_a_deletion_find_nothing_rather_than_a_damaged_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let path = tmp.path().join("small.csv");
    std::fs::write(&path, "a,b\n1,2\n3,4\n").unwrap();
    for round in 0..40 {
        let uuid = client.upload_csv("raced", &path).await.unwrap().uuid;
        let (deleted, first, second) = tokio::join!(
            client.delete_dataset(&uuid),
            client.dataset(&uuid),
            client.check_dataset(&uuid, &uuid),
        );
        deleted.unwrap();
        assert!(
            matches!(&first, Ok(_) | Err(Error::NotFound(_))),
            "round {round}: {first:?}"
        );
        // A CSV has no label columns to check: 400 while it exists.
        assert!(
            matches!(&second, Err(Error::BadRequest(_) | Error::NotFound(_))),
            "round {round}: {second:?}"
        );
    }
}

/// The size of a local file.
fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// A local file that the client's process may not read is refused by the SDK before it
/// asks the server for an upload (it was opened only to be sent, after the upload had been
/// registered). Root reads any file, so the upload runs in a copy of this test's process
/// under another user: it logs in, makes its own token useless (a new password), and
/// uploads. Any request after that would be refused as unauthorized.
#[tokio::test]
async fn an_unreadable_file_is_refused_before_the_server_is_asked() {
    const CHILD: &str = "HANAMI_TEST_UNREADABLE_AT";
    if let Some(url) = std::env::var_os(CHILD) {
        let url = url.into_string().unwrap();
        let secret = PathBuf::from(std::env::var_os("HANAMI_TEST_SECRET").unwrap());
        let client = hanami_sdk::Client::login(&url, ADMIN, ADMIN_PW)
            .await
            .unwrap();
        client
            .update_user(&hanami_types::users::UpdateUserRequest {
                id: ADMIN.to_owned(),
                name: None,
                password: Some("another password".to_owned()),
                is_admin: None,
            })
            .await
            .unwrap();
        match client.upload_csv("secret", &secret).await {
            Err(Error::File { path, source }) => {
                assert_eq!(Path::new(&path), secret);
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
            }
            other => panic!("{other:?}"),
        }
        return;
    }
    let server = TestServer::start();
    // A copy of this test program, run by a user who may not read the file.
    let (_shared, secret, mut command) =
        hanami_testkit::unreadable_file_for(&std::env::current_exe().unwrap());
    command
        .args([
            "an_unreadable_file_is_refused_before_the_server_is_asked",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, &server.url)
        .env("HANAMI_TEST_SECRET", &secret);
    let output = command.output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && said.contains("1 passed"),
        "{said}"
    );
}
