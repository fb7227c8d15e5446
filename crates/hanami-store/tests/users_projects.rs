//! The database layer against a real SQLite file.

mod common;

use common::{add_owner, alter, back_to_schema, store};
use hanami_store::logs::ErrorEntry;
use hanami_store::resources::{FileNote, Holder, Kind, ResourceRow};
use hanami_store::tasks::TaskRow;
use hanami_store::users::NewUser;
use hanami_store::{Store, StoreError};
use hanami_types::projects::Project;
use hanami_types::scope::Scope;
use hanami_types::tasks::TaskState;
use hanami_types::users::ProjectAssignment;

fn new_user<'a>(id: &'a str, is_admin: bool) -> NewUser<'a> {
    NewUser {
        id,
        name: "Some Name",
        creator_id: "root",
        is_admin,
        pw_hash: "hash",
    }
}

fn member_of(project_id: &str) -> ProjectAssignment {
    ProjectAssignment {
        project_id: project_id.into(),
        role: "member".into(),
        is_project_admin: false,
    }
}

#[tokio::test]
async fn users_are_unique_and_listed_in_creation_order() {
    let (_dir, store) = store().await;
    assert!(!store.has_admin().await.unwrap());
    store.create_user(new_user("bbbb", false)).await.unwrap();
    store.create_user(new_user("aaaa", true)).await.unwrap();
    assert!(store.has_admin().await.unwrap());
    assert!(matches!(
        store.create_user(new_user("aaaa", false)).await,
        Err(StoreError::Duplicate)
    ));
    let ids: Vec<_> = store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, ["bbbb", "aaaa"]);
    assert_eq!(
        store.user_record("aaaa").await.unwrap().unwrap().pw_hash,
        "hash"
    );
    store.delete_user("aaaa").await.unwrap();
    assert!(matches!(
        store.delete_user("aaaa").await,
        Err(hanami_store::resources::DeleteError::NotFound)
    ));
    assert!(store.user("aaaa").await.unwrap().is_none());
}

#[tokio::test]
async fn assignments_keep_order_and_follow_deletions() {
    let (_dir, store) = store().await;
    store.create_user(new_user("memb", false)).await.unwrap();
    store.create_project("proj_b", "B", "root").await.unwrap();
    store.create_project("proj_a", "A", "root").await.unwrap();
    store
        .assign_project("memb", &member_of("proj_b"))
        .await
        .unwrap();
    store
        .assign_project("memb", &member_of("proj_a"))
        .await
        .unwrap();
    assert!(matches!(
        store.assign_project("memb", &member_of("proj_a")).await,
        Err(StoreError::Duplicate)
    ));
    assert!(matches!(
        store.assign_project("memb", &member_of("nope")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.assign_project("ghost", &member_of("proj_a")).await,
        Err(StoreError::NotFound)
    ));
    let projects: Vec<_> = store
        .user("memb")
        .await
        .unwrap()
        .unwrap()
        .projects
        .into_iter()
        .map(|p| p.project_id)
        .collect();
    assert_eq!(projects, ["proj_b", "proj_a"]);

    store.delete_project("proj_b").await.unwrap();
    assert_eq!(
        store.assignments("memb").await.unwrap(),
        [member_of("proj_a")]
    );
    assert!(store.unassign_project("memb", "proj_a").await.unwrap());
    assert!(!store.unassign_project("memb", "proj_a").await.unwrap());
    assert!(matches!(
        store.delete_project("proj_b").await,
        Err(hanami_store::resources::DeleteError::NotFound)
    ));
}

/// Every assignment gets a number of its own, never used again, also when the same user is
/// put back into the same project after its latest assignment was removed (and after the
/// database was vacuumed and opened again): tokens revoked by a removal stay revoked.
#[tokio::test]
async fn an_assignment_made_anew_gets_a_new_number() {
    let (dir, store) = store().await;
    store.create_user(new_user("memb", false)).await.unwrap();
    store.create_project("proj_a", "A", "root").await.unwrap();
    let number = |store: Store| async move {
        let record = store.user_record("memb").await.unwrap().unwrap();
        (store, record.assignment_number("proj_a"))
    };
    store
        .assign_project("memb", &member_of("proj_a"))
        .await
        .unwrap();
    let (store, first) = number(store).await;
    assert!(first.is_some());
    assert!(store.unassign_project("memb", "proj_a").await.unwrap());
    let (store, none) = number(store).await;
    assert_eq!(none, None);
    store.close().await;
    common::alter(&dir.path().join("hanami.db"), &["VACUUM"]).await;
    let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
    store
        .assign_project("memb", &member_of("proj_a"))
        .await
        .unwrap();
    let (_, second) = number(store).await;
    assert!(second.is_some() && second != first, "{first:?} {second:?}");
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hanami.db");
    {
        let store = Store::open(&path).await.unwrap();
        store.create_user(new_user("keep", true)).await.unwrap();
        store.create_project("kept", "Kept", "keep").await.unwrap();
        store
            .append_audit("keep", "v1.0alpha/project", "POST")
            .await
            .unwrap();
        store.close().await;
    }
    let store = Store::open(&path).await.unwrap();
    assert!(store.user("keep").await.unwrap().is_some());
    assert!(store.project("kept").await.unwrap().is_some());
    assert_eq!(
        store.audit_page("keep", None, 0).await.unwrap().body.len(),
        1
    );
}

#[tokio::test]
async fn audit_log_pages_hold_100_rows() {
    let (_dir, store) = store().await;
    for i in 0..150 {
        let method = if i % 2 == 0 { "POST" } else { "DELETE" };
        store
            .append_audit("user", "v1.0alpha/x", method)
            .await
            .unwrap();
    }
    store
        .append_audit("other", "v1.0alpha/x", "PUT")
        .await
        .unwrap();
    assert_eq!(
        store.audit_page("user", None, 0).await.unwrap().body.len(),
        100
    );
    assert_eq!(
        store.audit_page("user", None, 1).await.unwrap().body.len(),
        50
    );
    assert!(
        store
            .audit_page("user", None, 2)
            .await
            .unwrap()
            .body
            .is_empty()
    );
    let other = store.audit_page("other", None, 0).await.unwrap();
    assert_eq!(other.body[0][1], "other");
    assert_eq!(other.body[0][3], "PUT");
}

#[tokio::test]
async fn future_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hanami.db");
    Store::open(&path).await.unwrap().close().await;
    alter(&path, &["PRAGMA user_version = 999"]).await;
    assert!(matches!(
        Store::open(&path).await,
        Err(StoreError::FutureSchema { found: 999, .. })
    ));
    // A negative version is no schema at all (it skipped every migration).
    alter(&path, &["PRAGMA user_version = -1"]).await;
    assert!(matches!(
        Store::open(&path).await,
        Err(StoreError::Corrupt { what }) if what.contains("schema version -1")
    ));
}

/// The log retention finds old entries by their time through an index, and a project's
/// deletion its assignments: neither reads a whole table (the retention did, hourly, while
/// it held the write lock).
#[tokio::test]
async fn retention_and_project_deletions_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hanami.db");
    Store::open(&path).await.unwrap().close().await;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for (query, index) in [
        (
            "SELECT seq FROM audit_log WHERE created_at < '2026' LIMIT 10",
            "audit_log_by_time",
        ),
        (
            "SELECT seq FROM error_log WHERE created_at < '2026' LIMIT 10",
            "error_log_by_time",
        ),
        (
            "SELECT seq FROM user_projects WHERE project_id = 'p'",
            "user_projects_by_project",
        ),
    ] {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {query}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        let details: Vec<String> = rows
            .iter()
            .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
            .collect();
        assert!(
            details.iter().any(|d| d.contains(index)),
            "{query}: {details:?}"
        );
    }
    pool.close().await;
}

/// The database's path is taken as it is, not as a URL: a folder named with `%41` or `?`
/// (which a URL reads as an escape and a query) holds it like any other.
#[tokio::test]
async fn folders_with_url_characters_hold_the_database() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a%41b", "q?x", "h#y"] {
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        let path = folder.join("hanami.db");
        Store::open(&path).await.unwrap().close().await;
        assert!(path.is_file(), "{name}");
        Store::open(&path).await.unwrap().close().await;
    }
}

#[tokio::test]
async fn resources_are_recorded_only_for_existing_owners_and_projects() {
    use hanami_store::resources::{DeleteError, Kind, ResourceRow};
    let (_dir, store) = store().await;
    let row = |uuid: &str, owner: &str, project: &str| {
        ResourceRow::new(uuid, "a checkpoint", owner, project, uuid)
    };
    let gone = store
        .insert_resource(Kind::Checkpoint, &row("c1", "nobody", "admin"))
        .await;
    assert!(
        matches!(gone, Err(StoreError::OwnerGone { .. })),
        "{gone:?}"
    );
    store.create_user(new_user("aaaa", false)).await.unwrap();
    let gone = store
        .insert_resource(Kind::Checkpoint, &row("c1", "aaaa", "proj_a"))
        .await;
    assert!(
        matches!(gone, Err(StoreError::OwnerGone { .. })),
        "{gone:?}"
    );
    // The global admins' project needs no row; a real project does.
    store
        .insert_resource(Kind::Checkpoint, &row("c1", "aaaa", "admin"))
        .await
        .unwrap();
    store
        .create_project("proj_a", "Project A", "root")
        .await
        .unwrap();
    store
        .insert_resource(Kind::Dataset, &row("d1", "aaaa", "proj_a"))
        .await
        .unwrap();
    // And what they hold keeps them from being deleted.
    let held = store.delete_user("aaaa").await;
    assert!(
        matches!(&held, Err(DeleteError::InUse(what)) if what == "1 dataset(s) (d1), 1 checkpoint(s) (c1)"),
        "{held:?}"
    );
    let held = store.delete_project("proj_a").await;
    assert!(
        matches!(&held, Err(DeleteError::InUse(what)) if what == "1 dataset(s) (d1)"),
        "{held:?}"
    );
    // Past three of a kind, the oldest three and an ellipsis.
    for uuid in ["d2", "d3", "d4"] {
        store
            .insert_resource(Kind::Dataset, &row(uuid, "aaaa", "proj_a"))
            .await
            .unwrap();
    }
    let held = store.delete_project("proj_a").await;
    assert!(
        matches!(&held, Err(DeleteError::InUse(what)) if what == "4 dataset(s) (d1, d2, d3, …)"),
        "{held:?}"
    );
}

#[tokio::test]
async fn old_log_entries_can_be_removed() {
    let (_dir, store) = store().await;
    store
        .append_audit("aaaa", "v1.0alpha/cluster", "POST")
        .await
        .unwrap();
    let inputs = serde_json::json!({});
    store
        .append_error(hanami_store::logs::ErrorEntry {
            error_id: "e1",
            user_id: "aaaa",
            context: "test",
            input_values: &inputs,
            message: "broke",
        })
        .await
        .unwrap();
    // Nothing is older than a day; everything is older than the far future.
    let day_ago = hanami_store::timestamp_days_ago(1);
    assert!(day_ago < hanami_store::now_timestamp());
    assert_eq!(store.remove_logs_before(&day_ago).await.unwrap(), 0);
    assert_eq!(
        store.audit_page("aaaa", None, 0).await.unwrap().body.len(),
        1
    );
    assert_eq!(
        store
            .remove_logs_before("9999-12-31 23:59:59")
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .audit_page("aaaa", None, 0)
            .await
            .unwrap()
            .body
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletions_succeed_while_others_write() {
    let (_dir, store) = store().await;
    let ids: Vec<String> = (0..40).map(|i| format!("user{i:02}")).collect();
    for id in &ids {
        store.create_user(new_user(id, false)).await.unwrap();
    }
    let deletes = ids.iter().map(|id| {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move { store.delete_user(&id).await })
    });
    let writes = (0..40).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_project(&format!("proj{i:02}"), "Project", "root")
                .await
        })
    });
    let writes: Vec<_> = writes.collect();
    for delete in deletes.collect::<Vec<_>>() {
        delete.await.unwrap().unwrap();
    }
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert!(store.users().await.unwrap().is_empty());
}

#[tokio::test]
async fn datasets_keep_the_value_ranges_of_their_fields() {
    use hanami_store::dataset::{ContentSummary, ValueRange, ValueRanges};
    use hanami_store::resources::{Kind, ResourceRow};
    use hanami_types::scope::Scope;
    let (dir, store) = store().await;
    store.create_user(new_user("aaaa", false)).await.unwrap();
    let row = |uuid: &str| ResourceRow::new(uuid, "a dataset", "aaaa", "admin", uuid);
    let ranges: ValueRanges = [
        ("label".to_owned(), ValueRange { min: 0.0, max: 1.0 }),
        (
            "picture".to_owned(),
            ValueRange {
                min: -0.5,
                max: 255.0,
            },
        ),
        (
            "wild".to_owned(),
            ValueRange {
                min: 0.0,
                max: f32::INFINITY,
            },
        ),
    ]
    .into();
    let content = |ranges: &ValueRanges| ContentSummary {
        value_ranges: ranges.clone(),
        checksum: "xxh3:0123456789abcdef".parse().unwrap(),
    };
    store
        .insert_dataset(&row("d1"), &content(&ranges))
        .await
        .unwrap();
    store
        .insert_resource(Kind::Dataset, &row("d2"))
        .await
        .unwrap();
    let mut finite = ranges.clone();
    finite.remove("wild");
    assert_eq!(
        store.value_ranges(&Scope::All, "d1").await.unwrap(),
        Some(finite.clone())
    );
    // Not recorded, unknown, or out of the scope: nothing to go by.
    assert_eq!(store.value_ranges(&Scope::All, "d2").await.unwrap(), None);
    assert_eq!(store.value_ranges(&Scope::All, "d3").await.unwrap(), None);
    let other = Scope::Project("proj_b".into());
    assert_eq!(store.value_ranges(&other, "d1").await.unwrap(), None);
    // A dataset row needs its owner, as every resource does.
    let gone = store
        .insert_dataset(
            &ResourceRow::new("d4", "x", "nobody", "admin", "d4"),
            &content(&finite),
        )
        .await;
    assert!(
        matches!(gone, Err(StoreError::OwnerGone { .. })),
        "{gone:?}"
    );
    // Changed from outside: said so, not taken as "unknown".
    drop(store);
    alter(
        &dir.path().join("hanami.db"),
        &["UPDATE datasets SET value_ranges = 'garbage' WHERE uuid = 'd1'"],
    )
    .await;
    let store = Store::open(&dir.path().join("hanami.db")).await.unwrap();
    let damaged = store.value_ranges(&Scope::All, "d1").await;
    assert!(
        matches!(&damaged, Err(StoreError::Corrupt { what }) if what.contains("'d1'")),
        "{damaged:?}"
    );
}

#[tokio::test]
async fn a_database_of_schema_four_gains_value_ranges() {
    use hanami_store::dataset::ValueRanges;
    use hanami_store::resources::{Kind, ResourceRow};
    use hanami_types::scope::Scope;
    let (dir, store) = store().await;
    store.create_user(new_user("aaaa", false)).await.unwrap();
    let row = |uuid: &str| ResourceRow::new(uuid, "a dataset", "aaaa", "admin", uuid);
    store
        .insert_resource(Kind::Dataset, &row("old"))
        .await
        .unwrap();
    drop(store);
    // Back to the schema before value ranges, with a dataset recorded then.
    let path = dir.path().join("hanami.db");
    back_to_schema(&path, 4).await;
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.value_ranges(&Scope::All, "old").await.unwrap(), None);
    store
        .insert_dataset(&row("new"), &common::content("xxh3:0000000000000000"))
        .await
        .unwrap();
    assert_eq!(
        store.value_ranges(&Scope::All, "new").await.unwrap(),
        Some(ValueRanges::new())
    );
}

#[tokio::test]
async fn datasets_keep_the_checksums_of_their_files() {
    use hanami_store::dataset::Checksum;
    use hanami_store::resources::{Kind, ResourceRow};
    use hanami_types::scope::Scope;
    let (dir, store) = store().await;
    store.create_user(new_user("aaaa", false)).await.unwrap();
    let row = |uuid: &str| ResourceRow::new(uuid, "a dataset", "aaaa", "admin", uuid);
    let content = common::content("xxh3:0123456789abcdef");
    store.insert_dataset(&row("d1"), &content).await.unwrap();
    store
        .insert_resource(Kind::Dataset, &row("d2"))
        .await
        .unwrap();
    assert_eq!(
        store
            .dataset_checksum(&Scope::All, "d1")
            .await
            .unwrap()
            .map(|c| c.to_string()),
        Some("xxh3:0123456789abcdef".to_owned())
    );
    // Not recorded, unknown, or out of the scope: nothing to check against.
    assert_eq!(
        store.dataset_checksum(&Scope::All, "d2").await.unwrap(),
        None
    );
    assert_eq!(
        store.dataset_checksum(&Scope::All, "d3").await.unwrap(),
        None
    );
    let other = Scope::Project("proj_b".into());
    assert_eq!(store.dataset_checksum(&other, "d1").await.unwrap(), None);
    // One without is found and gets one, once; one with keeps its own.
    assert_eq!(
        store.datasets_without_checksum().await.unwrap(),
        [("d2".to_owned(), "d2".to_owned())]
    );
    let taken: Checksum = "xxh3:00000000000000d2".parse().unwrap();
    assert!(store.record_missing_checksum("d2", taken).await.unwrap());
    assert!(
        !store
            .record_missing_checksum("d2", content.checksum)
            .await
            .unwrap()
    );
    assert!(!store.record_missing_checksum("d1", taken).await.unwrap());
    assert!(!store.record_missing_checksum("d3", taken).await.unwrap());
    assert_eq!(
        store.dataset_checksum(&Scope::All, "d2").await.unwrap(),
        Some(taken)
    );
    assert!(store.datasets_without_checksum().await.unwrap().is_empty());
    // Changed from outside: said so, not taken as "unrecorded".
    drop(store);
    let path = dir.path().join("hanami.db");
    alter(
        &path,
        &["UPDATE datasets SET checksum = 'xxh3:12' WHERE uuid = 'd1'"],
    )
    .await;
    let store = Store::open(&path).await.unwrap();
    let damaged = store.dataset_checksum(&Scope::All, "d1").await;
    assert!(
        matches!(&damaged, Err(StoreError::Corrupt { what }) if what.contains("'d1'")),
        "{damaged:?}"
    );
    // A database of the schema before checksums gains the column; its datasets have none.
    assert_eq!(store.upgraded_from(), None);
    drop(store);
    back_to_schema(&path, 13).await;
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.upgraded_from(), Some(13));
    assert_eq!(Store::SCHEMA_VERSION, 14);
    assert_eq!(
        store.dataset_checksum(&Scope::All, "d1").await.unwrap(),
        None
    );
    store.insert_dataset(&row("d4"), &content).await.unwrap();
    assert_eq!(
        store.dataset_checksum(&Scope::All, "d4").await.unwrap(),
        Some(content.checksum)
    );
}

/// An upgrade over several schema versions whose last step fails leaves the database as it
/// was, not at a version between (whose number the next start would report as the one it
/// upgraded from).
#[tokio::test]
async fn a_failed_upgrade_leaves_the_database_as_it_was() {
    let (dir, store) = store().await;
    store.create_user(new_user("aaaa", false)).await.unwrap();
    drop(store);
    let path = dir.path().join("hanami.db");
    back_to_schema(&path, 12).await;
    // The column the last step adds is there already, so that step fails.
    alter(&path, &["ALTER TABLE datasets ADD COLUMN checksum TEXT"]).await;
    let failed = Store::open(&path).await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("duplicate column")),
        "{:?}",
        failed.map(drop)
    );
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, 12);
    // Nor is the step before it kept.
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'audit_log_by_time'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, 0);
    pool.close().await;

    // Once the cause is gone, the upgrade goes through from where it was.
    alter(&path, &["ALTER TABLE datasets DROP COLUMN checksum"]).await;
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.upgraded_from(), Some(12));
    assert!(store.user("aaaa").await.unwrap().is_some());
}

// Values of the wrong type that a program outside wrote into the database (SQLite keeps a
// BLOB in a TEXT column, and text that is no UTF-8): every reader answers
// `StoreError::Corrupt`, naming the table and the column, where sqlx's `Row::get` panicked.

/// Fills the store with a row in every table that a reader below reads: the user `owner`
/// in the project `proj`, a dataset, a cluster with a queued task and unsaved changes, a
/// checkpoint, and an entry in each log.
async fn fill(store: &Store) {
    add_owner(store).await;
    let project: Project = store.create_project("proj", "Proj", "owner").await.unwrap();
    let assignment = ProjectAssignment {
        project_id: project.id,
        role: "member".into(),
        is_project_admin: false,
    };
    store.assign_project("owner", &assignment).await.unwrap();
    for (kind, uuid) in [
        (Kind::Dataset, "d"),
        (Kind::Cluster, "c"),
        (Kind::Checkpoint, "k"),
        (Kind::Checkpoint, "gone"),
    ] {
        let row = ResourceRow::new(uuid, uuid, "owner", "proj", uuid);
        store.insert_resource(kind, &row).await.unwrap();
    }
    // Its file is noted as removed.
    store
        .delete_resource(Kind::Checkpoint, &Scope::All, "gone")
        .await
        .unwrap();
    let task = TaskRow {
        uuid: "t".into(),
        cluster_uuid: "c".into(),
        name: "task".into(),
        total: 10,
        current: 0,
        state: TaskState::Queued,
        queued_at: "2026-12-02 08:00:00".into(),
        started_at: None,
        ended_at: None,
        note: None,
    };
    store.insert_task(&task, Some("work")).await.unwrap();
    store
        .note_unsaved_network("c", "2026-12-02 08:00:00", None)
        .await
        .unwrap();
    store
        .append_audit("owner", "project", "POST")
        .await
        .unwrap();
    store
        .append_error(ErrorEntry {
            error_id: "e",
            user_id: "owner",
            context: "test",
            input_values: &serde_json::Value::Null,
            message: "message",
        })
        .await
        .unwrap();
}

/// Every reader of rows that these tests damage.
#[derive(Debug, Clone, Copy)]
enum Reader {
    Projects,
    Project,
    Users,
    User,
    Assignments,
    ResourceList(Kind),
    Resource(Kind),
    AllResources(Kind),
    DeleteResource(Kind),
    Holdings,
    DatasetChecksum,
    DatasetsWithoutChecksum,
    ResourceFileNames(Kind),
    RemovedFiles(Kind),
    ClusterTasks,
    UnfinishedTasks,
    PendingNetworks,
    UnsavedNetworks,
    AuditPage,
    ErrorPage,
}

/// Runs `reader` on the store.
async fn read(store: &Store, reader: Reader) -> Result<(), StoreError> {
    let scope = Scope::All;
    match reader {
        Reader::Projects => store.projects().await.map(drop),
        Reader::Project => store.project("proj").await.map(drop),
        Reader::Users => store.users().await.map(drop),
        Reader::User => store.user_record("owner").await.map(drop),
        Reader::Assignments => store.assignments("owner").await.map(drop),
        Reader::ResourceList(kind) => store.resource_list(kind, &scope).await.map(drop),
        Reader::Resource(kind) => {
            let uuid = uuid_of(kind);
            store.resource(kind, &scope, uuid).await.map(drop)
        }
        Reader::AllResources(kind) => store.all_resources(kind).await.map(drop),
        Reader::DeleteResource(kind) => {
            let uuid = uuid_of(kind);
            store.delete_resource(kind, &scope, uuid).await.map(drop)
        }
        Reader::Holdings => store.holdings(Holder::Owner("owner")).await.map(drop),
        Reader::DatasetChecksum => store.dataset_checksum(&scope, "d").await.map(drop),
        Reader::DatasetsWithoutChecksum => store.datasets_without_checksum().await.map(drop),
        Reader::ResourceFileNames(kind) => store.resource_file_names(kind).await.map(drop),
        Reader::RemovedFiles(kind) => store.noted_files(FileNote::Removed, kind).await.map(drop),
        Reader::ClusterTasks => store.cluster_tasks("c").await.map(drop),
        Reader::UnfinishedTasks => store.unfinished_tasks().await.map(drop),
        Reader::PendingNetworks => store.pending_networks().await.map(drop),
        Reader::UnsavedNetworks => store.unsaved_networks().await.map(drop),
        Reader::AuditPage => store.audit_page("owner", None, 0).await.map(drop),
        Reader::ErrorPage => store.error_page(None, 0).await.map(drop),
    }
}

/// The uuid of [`fill`]'s resource of a kind.
fn uuid_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Dataset => "d",
        Kind::Cluster => "c",
        Kind::Checkpoint => "k",
    }
}

/// A fresh filled store whose database then had `sql` run on it from outside.
async fn damaged(sql: &str) -> (tempfile::TempDir, Store) {
    let (dir, store) = store().await;
    fill(&store).await;
    for reader in READERS_OF_EVERYTHING {
        read(&store, reader).await.unwrap();
    }
    store.close().await;
    let path = dir.path().join("hanami.db");
    alter(&path, &[sql]).await;
    let store = Store::open(&path).await.unwrap();
    (dir, store)
}

/// Readers that, together, read every row [`fill`] wrote (the undamaged store reads them
/// without an error).
const READERS_OF_EVERYTHING: [Reader; 15] = [
    Reader::Projects,
    Reader::Users,
    Reader::User,
    Reader::Holdings,
    Reader::DatasetChecksum,
    Reader::DatasetsWithoutChecksum,
    Reader::RemovedFiles(Kind::Checkpoint),
    Reader::ResourceList(Kind::Dataset),
    Reader::ResourceList(Kind::Cluster),
    Reader::ResourceList(Kind::Checkpoint),
    Reader::ClusterTasks,
    Reader::UnfinishedTasks,
    Reader::UnsavedNetworks,
    Reader::AuditPage,
    Reader::ErrorPage,
];

#[tokio::test]
async fn every_reader_calls_a_value_of_the_wrong_type_damage() {
    // (the change from outside, the readers that meet it, what the error names)
    let cases: &[(&str, &[Reader], &str)] = &[
        (
            "UPDATE projects SET name = X'ff00'",
            &[Reader::Projects, Reader::Project],
            "value in the column 'name' of the table 'projects' (mismatched types;",
        ),
        (
            "UPDATE projects SET name = CAST(X'ff00' AS TEXT)",
            &[Reader::Projects, Reader::Project],
            "value in the column 'name' of the table 'projects' (invalid utf-8",
        ),
        (
            "UPDATE users SET created_at = X'00'",
            &[Reader::Users, Reader::User],
            "value in the column 'created_at' of the table 'users' (mismatched types;",
        ),
        (
            "UPDATE users SET pw_hash = X'00'",
            &[Reader::User],
            "value in the column 'pw_hash' of the table 'users' (mismatched types;",
        ),
        (
            "UPDATE user_projects SET role = X'00'",
            &[Reader::Assignments, Reader::Users, Reader::User],
            "value in the column 'role' of the table 'user_projects' (mismatched types;",
        ),
        (
            "UPDATE datasets SET name = X'00'",
            &[
                Reader::ResourceList(Kind::Dataset),
                Reader::Resource(Kind::Dataset),
                Reader::AllResources(Kind::Dataset),
            ],
            "value in the column 'name' of the table 'datasets' (mismatched types;",
        ),
        (
            "UPDATE checkpoints SET owner_id = X'00'",
            &[
                Reader::ResourceList(Kind::Checkpoint),
                Reader::Resource(Kind::Checkpoint),
                Reader::DeleteResource(Kind::Checkpoint),
            ],
            "value in the column 'owner_id' of the table 'checkpoints' (mismatched types;",
        ),
        (
            "UPDATE clusters SET file_name = X'00'",
            &[
                Reader::AllResources(Kind::Cluster),
                Reader::ResourceFileNames(Kind::Cluster),
            ],
            "value in the column 'file_name' of the table 'clusters' (mismatched types;",
        ),
        (
            "UPDATE checkpoints SET uuid = X'00' WHERE uuid = 'k'",
            &[Reader::Holdings],
            "value in the column 'uuid' of the table 'checkpoints' (mismatched types;",
        ),
        (
            "UPDATE datasets SET checksum = X'00'",
            &[Reader::DatasetChecksum],
            "value in the column 'checksum' of the table 'datasets' (mismatched types;",
        ),
        (
            "UPDATE datasets SET file_name = X'00'",
            &[Reader::DatasetsWithoutChecksum],
            "value in the column 'file_name' of the table 'datasets' (mismatched types;",
        ),
        (
            "UPDATE removed_files SET file_name = X'00'",
            &[Reader::RemovedFiles(Kind::Checkpoint)],
            "value in the column 'file_name' of the table 'removed_files' (mismatched types;",
        ),
        (
            "UPDATE tasks SET state = X'00'",
            &[Reader::ClusterTasks],
            "value in the column 'state' of the table 'tasks' (mismatched types;",
        ),
        (
            "UPDATE tasks SET note = X'00'",
            &[Reader::ClusterTasks],
            "value in the column 'note' of the table 'tasks' (mismatched types;",
        ),
        (
            "UPDATE tasks SET total = 'many'",
            &[Reader::ClusterTasks, Reader::UnfinishedTasks],
            "value in the column 'total' of the table 'tasks' (mismatched types;",
        ),
        (
            "UPDATE tasks SET work = X'00'",
            &[Reader::UnfinishedTasks],
            "value in the column 'work' of the table 'tasks' (mismatched types;",
        ),
        (
            "UPDATE tasks SET network_pending = 1, uuid = X'00'",
            &[Reader::PendingNetworks],
            "value in the column 'uuid' of the table 'tasks' (mismatched types;",
        ),
        (
            "UPDATE clusters SET unsaved_since = X'00'",
            &[Reader::UnsavedNetworks],
            "value in the column 'unsaved_since' of the table 'clusters' (mismatched types;",
        ),
        (
            "UPDATE audit_log SET endpoint = X'00'",
            &[Reader::AuditPage],
            "value in the column 'endpoint' of the table 'audit_log' (mismatched types;",
        ),
        (
            "UPDATE error_log SET message = X'00'",
            &[Reader::ErrorPage],
            "value in the column 'message' of the table 'error_log' (mismatched types;",
        ),
    ];
    for (sql, readers, named) in cases {
        let (_dir, store) = damaged(sql).await;
        for reader in *readers {
            match read(&store, *reader).await {
                Err(e @ StoreError::Corrupt { .. }) => {
                    let text = e.to_string();
                    assert!(
                        text.starts_with("the database holds an unreadable ")
                            && text.contains(named),
                        "{sql}, {reader:?}: {text}"
                    );
                }
                other => panic!("{sql}, {reader:?}: {other:?}"),
            }
        }
        store.close().await;
    }
}
