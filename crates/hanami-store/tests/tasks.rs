//! Task records: kept in queue order, updated, forgotten with their cluster, and the ones
//! that had not ended are aborted at start-up.

mod common;

use common::{add_owner, back_to_schema, store};
use hanami_store::Store;
use hanami_store::logs::ErrorEntry;
use hanami_store::resources::{FileNote, Kind, ResourceRow, UnsavedNetwork};
use hanami_store::tasks::{TaskProduct, TaskRow};
use hanami_types::scope::Scope;
use hanami_types::tasks::TaskState;

/// A store with the user `owner` and their cluster `a`.
async fn store_with_cluster() -> (tempfile::TempDir, Store, ResourceRow) {
    let (dir, store) = store().await;
    add_owner(&store).await;
    let cluster = ResourceRow::new("a", "cluster", "owner", "admin", "a");
    store
        .insert_resource(Kind::Cluster, &cluster)
        .await
        .unwrap();
    (dir, store, cluster)
}

/// No input values, for [`start_up_entry`].
const NO_INPUTS: serde_json::Value = serde_json::Value::Null;

/// An error-log entry of the owner's, as a start-up writes it with an abort.
fn start_up_entry<'a>(error_id: &'a str, message: &'a str) -> ErrorEntry<'a> {
    ErrorEntry {
        error_id,
        user_id: "owner",
        context: "server start-up",
        input_values: &NO_INPUTS,
        message,
    }
}

fn task(uuid: &str, cluster: &str, state: &str) -> TaskRow {
    TaskRow {
        uuid: uuid.into(),
        cluster_uuid: cluster.into(),
        name: format!("task {uuid}"),
        total: 100,
        current: 0,
        state: TaskState::parse(state).unwrap(),
        queued_at: "2026-11-28 10:00:00".into(),
        started_at: None,
        ended_at: None,
        note: None,
    }
}

#[tokio::test]
async fn tasks_are_kept_in_queue_order_and_updated() {
    let (_dir, store) = store().await;
    for (uuid, cluster) in [("t3", "a"), ("t1", "b"), ("t2", "a")] {
        store
            .insert_task(&task(uuid, cluster, "queued"), None)
            .await
            .unwrap();
    }
    assert!(
        store
            .insert_task(&task("t1", "a", "queued"), None)
            .await
            .is_err()
    );
    let mut done = task("t3", "a", "finished");
    done.current = 100;
    done.started_at = Some("2026-11-28 10:00:01".into());
    done.ended_at = Some("2026-11-28 10:00:02".into());
    done.note = Some("the network stopped growing".into());
    store.update_task(&done).await.unwrap();
    let mut noted = task("t2", "a", "queued");
    noted.note = Some("a note".into());
    store.update_task(&noted).await.unwrap();
    let tasks = store.cluster_tasks("a").await.unwrap();
    assert_eq!(tasks, vec![done, noted]);
    store.delete_task("t2").await.unwrap();
    assert_eq!(store.cluster_tasks("a").await.unwrap().len(), 1);
    store.delete_cluster_tasks("a").await.unwrap();
    assert!(store.cluster_tasks("a").await.unwrap().is_empty());
    assert_eq!(store.cluster_tasks("b").await.unwrap().len(), 1);
}

#[tokio::test]
async fn unfinished_tasks_are_aborted_and_orphans_forgotten() {
    let (dir, store, cluster) = store_with_cluster().await;
    for (uuid, cluster, state) in [
        ("queued", "a", "queued"),
        ("active", "a", "active"),
        ("finished", "a", "finished"),
        ("orphan", "gone", "finished"),
    ] {
        store
            .insert_task(&task(uuid, cluster, state), None)
            .await
            .unwrap();
    }
    store.close().await;
    // What a restart finds.
    let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
    assert_eq!(store.delete_orphan_tasks().await.unwrap(), 1);
    let unfinished = store.unfinished_tasks().await.unwrap();
    let names: Vec<_> = unfinished
        .iter()
        .map(|t| (t.row.uuid.as_str(), t.row.state.as_str()))
        .collect();
    assert_eq!(names, [("queued", "queued"), ("active", "active")]);
    let entry = |error_id| start_up_entry(error_id, "aborted at start-up");
    for (t, id) in unfinished.iter().map(|t| &t.row).zip(["e1", "e2"]) {
        let note = format!("{} was {}", t.uuid, t.state);
        let aborted = store
            .abort_unfinished_task(&t.uuid, "2026-11-28 11:00:00", &note, entry(id))
            .await
            .unwrap();
        assert!(aborted);
    }
    // An ended task is left as it is, and gets no entry.
    let again = store
        .abort_unfinished_task("active", "2026-11-28 12:00:00", "again", entry("e3"))
        .await
        .unwrap();
    assert!(!again);
    let states: Vec<_> = store
        .cluster_tasks("a")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.uuid, t.state.as_str(), t.ended_at, t.note))
        .collect();
    let aborted_at = Some("2026-11-28 11:00:00".to_string());
    assert_eq!(
        states,
        [
            (
                "queued".into(),
                "aborted",
                aborted_at.clone(),
                Some("queued was queued".into())
            ),
            (
                "active".into(),
                "aborted",
                aborted_at,
                Some("active was active".into())
            ),
            ("finished".into(), "finished", None, None),
        ]
    );
    let log = store.error_page(None, 0).await.unwrap();
    let messages: Vec<_> = log.body.iter().map(|row| row[5].to_string()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("[e1] aborted at start-up"),
        "{messages:?}"
    );
    assert!(messages[1].contains("[e2]"), "{messages:?}");
    assert_eq!(
        store.all_resources(Kind::Cluster).await.unwrap(),
        vec![cluster]
    );
}

/// A queued task's work is kept until it starts, ends or is aborted, and comes back with the
/// unfinished tasks, across a reopening of the database.
#[tokio::test]
async fn a_queued_task_keeps_its_work_until_it_starts() {
    let (dir, store, _) = store_with_cluster().await;
    for uuid in ["waits", "starts", "ends", "aborted"] {
        store
            .insert_task(&task(uuid, "a", "queued"), Some(&format!("work of {uuid}")))
            .await
            .unwrap();
    }
    store
        .insert_task(&task("older", "a", "queued"), None)
        .await
        .unwrap();
    // Stopped part of the way, and queued again with its progress and a note; one of them
    // then loses its network at the start, so it is aborted after all.
    for uuid in ["goes on", "lost"] {
        let mut running = task(uuid, "a", "active");
        running.started_at = Some("2026-11-30 09:00:00".into());
        store.insert_task(&running, Some("to do")).await.unwrap();
        store.update_task(&running).await.unwrap();
        let stopped = TaskRow {
            current: 40,
            note: Some("stopped".into()),
            ..running
        };
        store
            .requeue_task(&stopped, &format!("rest of {uuid}"), true)
            .await
            .unwrap();
    }
    store
        .abort_ended_task("lost", "its network is lost")
        .await
        .unwrap();
    // A note while it waits (a cluster in DIRECT mode) keeps the work.
    let mut noted = task("waits", "a", "queued");
    noted.note = Some("waits for direct IO".into());
    store.update_task(&noted).await.unwrap();
    store
        .update_task(&task("starts", "a", "active"))
        .await
        .unwrap();
    let ended = TaskRow {
        ended_at: Some("2026-11-30 10:00:00".into()),
        ..task("ends", "a", "aborted")
    };
    store
        .end_task(&ended, TaskProduct::Nothing, false)
        .await
        .unwrap();
    let entry = start_up_entry("e1", "aborted");
    store
        .abort_unfinished_task("aborted", "2026-11-30 10:00:00", "aborted", entry)
        .await
        .unwrap();
    store.close().await;
    let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
    let unfinished: Vec<_> = store
        .unfinished_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.row.uuid, t.row.state.as_str(), t.work))
        .collect();
    assert_eq!(
        unfinished,
        [
            ("waits".into(), "queued", Some("work of waits".into())),
            ("starts".into(), "active", None),
            ("older".into(), "queued", None),
            ("goes on".into(), "queued", Some("rest of goes on".into())),
        ]
    );
    let tasks = store.cluster_tasks("a").await.unwrap();
    let goes_on = tasks.iter().find(|t| t.uuid == "goes on").unwrap();
    assert_eq!(
        (
            goes_on.current,
            goes_on.started_at.as_deref(),
            goes_on.note.as_deref()
        ),
        (40, Some("2026-11-30 09:00:00"), Some("stopped"))
    );
    let lost = tasks.iter().find(|t| t.uuid == "lost").unwrap();
    assert_eq!(lost.state, TaskState::Aborted);
    assert!(lost.ended_at.is_some());
    assert_eq!(lost.note.as_deref(), Some("stopped; its network is lost"));
    // Aborted at a later start, it keeps its note and gets the abort's after it.
    let entry = start_up_entry("e2", "crashed");
    store
        .abort_unfinished_task("goes on", "2026-11-30 11:00:00", "crashed", entry)
        .await
        .unwrap();
    let tasks = store.cluster_tasks("a").await.unwrap();
    let goes_on = tasks.iter().find(|t| t.uuid == "goes on").unwrap();
    assert_eq!(goes_on.note.as_deref(), Some("stopped; crashed"));
    assert_eq!(
        store.pending_networks().await.unwrap(),
        [
            ("a".to_owned(), "goes on".to_owned()),
            ("a".to_owned(), "lost".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_database_of_schema_five_keeps_its_tasks_and_gains_notes() {
    let (dir, store) = store().await;
    let recorded = task("old", "a", "finished");
    store.insert_task(&recorded, None).await.unwrap();
    drop(store);
    // Back to the schema before task notes, with a task recorded then.
    let path = dir.path().join("hanami.db");
    back_to_schema(&path, 5).await;
    let store = Store::open(&path).await.unwrap();
    assert_eq!(
        store.cluster_tasks("a").await.unwrap(),
        vec![recorded.clone()]
    );
    let noted = TaskRow {
        note: Some("aborted".into()),
        ..recorded
    };
    store.update_task(&noted).await.unwrap();
    assert_eq!(
        store.cluster_tasks("a").await.unwrap()[0].note.as_deref(),
        Some("aborted")
    );
}

#[tokio::test]
async fn unsaved_direct_io_changes_are_noted_until_saved() {
    let (_dir, store) = store().await;
    add_owner(&store).await;
    for uuid in ["a", "b"] {
        let row = ResourceRow::new(uuid, uuid, "owner", "admin", uuid);
        store.insert_resource(Kind::Cluster, &row).await.unwrap();
    }
    assert!(store.unsaved_networks().await.unwrap().is_empty());
    store
        .note_unsaved_network("b", "2026-11-29 10:00:00", Some("first"))
        .await
        .unwrap();
    // The first change since the last save is kept, with the network in place then.
    store
        .note_unsaved_network("b", "2026-11-29 11:00:00", Some("second"))
        .await
        .unwrap();
    let noted = UnsavedNetwork {
        uuid: "b".to_owned(),
        since: "2026-11-29 10:00:00".to_owned(),
        base: Some("first".to_owned()),
    };
    assert_eq!(store.unsaved_networks().await.unwrap(), vec![noted]);
    store.note_saved_network("b").await.unwrap();
    assert!(store.unsaved_networks().await.unwrap().is_empty());
    // After a save, the next change notes afresh.
    store
        .note_unsaved_network("b", "2026-11-29 12:00:00", None)
        .await
        .unwrap();
    let noted = UnsavedNetwork {
        uuid: "b".to_owned(),
        since: "2026-11-29 12:00:00".to_owned(),
        base: None,
    };
    assert_eq!(store.unsaved_networks().await.unwrap(), vec![noted]);
}

/// A task's end and its product are recorded together or not at all; a network left pending
/// is noted until it is in place.
#[tokio::test]
async fn a_task_ends_with_its_product_or_not_at_all() {
    let (_dir, store, _) = store_with_cluster().await;
    for uuid in ["save", "request"] {
        let mut active = task(uuid, "a", "active");
        active.started_at = Some("2026-11-29 10:00:00".into());
        store.insert_task(&active, None).await.unwrap();
    }
    let ended = |uuid: &str| TaskRow {
        current: 100,
        started_at: Some("2026-11-29 10:00:00".into()),
        ended_at: Some("2026-11-29 10:00:01".into()),
        ..task(uuid, "a", "finished")
    };

    // A product whose owner is gone: neither is recorded.
    let orphan = ResourceRow::new("save", "saved", "nobody", "admin", "save");
    let refused = store
        .end_task(&ended("save"), TaskProduct::Checkpoint(&orphan), false)
        .await;
    assert!(refused.is_err());
    assert_eq!(
        store.cluster_tasks("a").await.unwrap()[0].state,
        TaskState::Active
    );
    let checkpoint = ResourceRow::new("save", "saved", "owner", "admin", "save");
    store
        .end_task(&ended("save"), TaskProduct::Checkpoint(&checkpoint), false)
        .await
        .unwrap();
    assert_eq!(store.cluster_tasks("a").await.unwrap()[0], ended("save"));
    let found = store
        .resource(Kind::Checkpoint, &Scope::All, "save")
        .await
        .unwrap();
    assert_eq!(found.map(|r| r.name), Some("saved".to_owned()));

    // A result dataset, with the network the request grew left pending.
    let result = ResourceRow::new("request", "result", "owner", "admin", "request");
    let content = common::content("xxh3:00000000000000aa");
    store
        .end_task(
            &ended("request"),
            TaskProduct::Dataset(&result, &content),
            true,
        )
        .await
        .unwrap();
    assert!(
        store
            .resource(Kind::Dataset, &Scope::All, "request")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .dataset_checksum(&Scope::All, "request")
            .await
            .unwrap(),
        Some(content.checksum)
    );
    assert_eq!(
        store.pending_networks().await.unwrap(),
        [("a".to_owned(), "request".to_owned())]
    );
    store.network_in_place("request").await.unwrap();
    assert!(store.pending_networks().await.unwrap().is_empty());
    store
        .end_task(&ended("request"), TaskProduct::Nothing, true)
        .await
        .unwrap();
    store.all_networks_in_place().await.unwrap();
    assert!(store.pending_networks().await.unwrap().is_empty());
}

/// Deleting a row notes its file until the server forgets it (the file is gone), so that a
/// start after a crash in between can remove it; rows without a file note nothing.
#[tokio::test]
async fn deleted_rows_note_their_files_until_forgotten() {
    let (_dir, store, cluster) = store_with_cluster().await;
    let checkpoint = ResourceRow::new("k", "checkpoint", "owner", "admin", "k-file");
    store
        .insert_resource(Kind::Checkpoint, &checkpoint)
        .await
        .unwrap();
    let fileless = ResourceRow::new("old", "cluster", "owner", "admin", "");
    store
        .insert_resource(Kind::Cluster, &fileless)
        .await
        .unwrap();
    for kind in [Kind::Cluster, Kind::Checkpoint, Kind::Dataset] {
        assert!(
            store
                .noted_files(FileNote::Removed, kind)
                .await
                .unwrap()
                .is_empty()
        );
    }
    for (kind, uuid) in [
        (Kind::Cluster, cluster.uuid.as_str()),
        (Kind::Cluster, "old"),
        (Kind::Checkpoint, "k"),
    ] {
        store
            .delete_resource(kind, &Scope::All, uuid)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        store
            .noted_files(FileNote::Removed, Kind::Cluster)
            .await
            .unwrap(),
        ["a"]
    );
    assert_eq!(
        store
            .noted_files(FileNote::Removed, Kind::Checkpoint)
            .await
            .unwrap(),
        ["k-file"]
    );
    assert!(
        store
            .noted_files(FileNote::Removed, Kind::Dataset)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .forget_noted_files(FileNote::Removed, Kind::Checkpoint, Some("k-file"))
        .await
        .unwrap();
    assert!(
        store
            .noted_files(FileNote::Removed, Kind::Checkpoint)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .noted_files(FileNote::Removed, Kind::Cluster)
            .await
            .unwrap(),
        ["a"]
    );
}

/// A file noted before its row exists stays noted until the row is inserted (or the server
/// forgets it), so that a start after a crash in between can remove it.
#[tokio::test]
async fn unregistered_files_stay_noted_until_their_rows_exist() {
    let (_dir, store, _) = store_with_cluster().await;
    for (kind, name) in [
        (Kind::Dataset, "d-file"),
        (Kind::Dataset, "lost"),
        (Kind::Cluster, "c-file"),
        (Kind::Cluster, "failed"),
    ] {
        store.note_unregistered_file(kind, name).await.unwrap();
    }
    let noted = |kind| {
        let store = &store;
        async move {
            let mut names = store
                .noted_files(FileNote::Unregistered, kind)
                .await
                .unwrap();
            names.sort();
            names
        }
    };
    assert_eq!(noted(Kind::Dataset).await, ["d-file", "lost"]);
    assert_eq!(noted(Kind::Cluster).await, ["c-file", "failed"]);
    assert!(noted(Kind::Checkpoint).await.is_empty());
    let dataset = ResourceRow::new("d", "dataset", "owner", "admin", "d-file");
    store
        .insert_dataset(&dataset, &common::content("xxh3:0000000000000001"))
        .await
        .unwrap();
    let cluster = ResourceRow::new("c", "cluster", "owner", "admin", "c-file");
    store
        .insert_resource(Kind::Cluster, &cluster)
        .await
        .unwrap();
    assert_eq!(noted(Kind::Dataset).await, ["lost"]);
    assert_eq!(noted(Kind::Cluster).await, ["failed"]);
    store
        .forget_noted_files(FileNote::Unregistered, Kind::Cluster, Some("failed"))
        .await
        .unwrap();
    assert!(noted(Kind::Cluster).await.is_empty());
    assert_eq!(noted(Kind::Dataset).await, ["lost"]);
    store
        .forget_noted_files(FileNote::Unregistered, Kind::Dataset, None)
        .await
        .unwrap();
    assert!(noted(Kind::Dataset).await.is_empty());
}
