//! Every command against the real server: tables, `-j` JSON, delete lines and error exits.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{
    ADMIN, ADMIN_PW, DATASET_KEYS, RESOURCE_HEADERS, RESOURCE_KEYS, Server, TASK_KEYS, command,
    ctl_env, hanamictl, interrupt, path_str, pattern_mnist, send_signal, spawn,
};
use serde_json::json;

const UNKNOWN_UUID: &str = "9f86921d-9a7c-44a2-836c-1683928d9354";

#[test]
fn projects() {
    let server = Server::start();
    let created = server
        .ctl(&[
            "project",
            "create",
            "-n",
            "cli test project",
            "cli_test_project",
        ])
        .ok();
    assert_eq!(created.keys(), ["ID", "NAME", "CREATOR ID", "CREATED AT"]);
    assert_eq!(created.field("ID"), "cli_test_project");
    assert_eq!(created.field("NAME"), "cli test project");
    assert_eq!(created.field("CREATOR ID"), "asdf");

    let got = server.ctl(&["project", "get", "cli_test_project"]).ok();
    assert_eq!(got.single(), created.single());
    // A refused id: the server's message names the regular expression, a note says it in
    // words.
    let refused = server
        .ctl(&["project", "create", "-n", "dash", "my-project"])
        .fails();
    assert!(
        refused.stderr.contains(
            "Given item 'id' doesn't match with regex \"^[a-zA-Z][a-zA-Z_0-9]*$\"\nnote: the \
             value must be a letter followed by letters, digits and '_' only, 4 to 254 \
             characters long"
        ),
        "{}",
        refused.stderr
    );
    // An empty name: the note gives the length rule too.
    let refused = server
        .ctl(&["project", "create", "-n", "", "p_empty"])
        .fails();
    assert!(
        refused.stderr.contains(
            "note: the value must be a letter followed by letters, digits, '_', '-' and spaces \
             only, 4 to 254 characters long"
        ),
        "{}",
        refused.stderr
    );
    let got = server
        .ctl(&["project", "get", "-j", "cli_test_project"])
        .ok()
        .json();
    assert_eq!(got["id"], "cli_test_project");
    assert_eq!(got["name"], "cli test project");
    assert!(got["created_at"].is_string());

    let (headers, rows) = server.ctl(&["project", "list"]).ok().list();
    assert_eq!(headers, ["ID", "NAME", "CREATOR ID", "CREATED AT"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0][..3],
        ["cli_test_project", "cli test project", "asdf"]
    );
    // `-j` anywhere on the line, long forms too; list JSON is the server's header/body.
    for args in [
        &["-j", "project", "list"][..],
        &["project", "--json_output", "list"],
        &["project", "list", "--json"],
    ] {
        let list = server.ctl(args).ok().json();
        assert_eq!(
            list["header"],
            json!(["created_at", "id", "name", "creator_id"])
        );
        assert_eq!(list["body"][0][1], "cli_test_project");
    }

    // Errors: duplicate, unknown, invalid.
    server
        .ctl(&[
            "project",
            "create",
            "-n",
            "another name",
            "cli_test_project",
        ])
        .fails_with_status(409);
    let missing = server
        .ctl(&["project", "get", "no_such_project"])
        .fails_with_status(404);
    assert_eq!(
        missing.stderr,
        "status 404: err Project with id 'no_such_project' not found\n"
    );
    server
        .ctl(&["project", "create", "-n", "some name", "x"])
        .fails_with_status(400);

    let deleted = server.ctl(&["project", "delete", "cli_test_project"]).ok();
    assert_eq!(
        deleted.stdout,
        "successfully deleted project 'cli_test_project'\n"
    );
    server
        .ctl(&["project", "delete", "cli_test_project"])
        .fails_with_status(404);
    let (_, rows) = server.ctl(&["project", "list"]).ok().list();
    assert!(rows.is_empty());
}

#[test]
fn users_and_their_projects() {
    let server = Server::start();
    let created = server
        .ctl(&[
            "user",
            "create",
            "-n",
            "cli test user",
            "-p",
            "asdfasdfasdf",
            "cli_test_user",
        ])
        .ok();
    assert_eq!(
        created.keys(),
        [
            "ID",
            "NAME",
            "IS ADMIN",
            "PROJECTS",
            "CREATOR ID",
            "CREATED AT"
        ]
    );
    assert_eq!(created.field("IS ADMIN"), "false");
    assert_eq!(created.field("PROJECTS"), "[]");
    assert_eq!(created.field("CREATOR ID"), "asdf");
    let admin = server
        .ctl(&[
            "user",
            "create",
            "-j",
            "--is_admin",
            "-n",
            "second admin",
            "--password",
            "adminpass1",
            "second_admin",
        ])
        .ok()
        .json();
    assert_eq!(admin["is_admin"], true);
    assert_eq!(admin["projects"], json!([]));

    assert_eq!(
        server.ctl(&["user", "get", "cli_test_user"]).ok().single(),
        created.single()
    );
    assert_eq!(
        server
            .ctl(&["user", "get", "-j", "cli_test_user"])
            .ok()
            .json()["name"],
        "cli test user"
    );
    let (headers, rows) = server.ctl(&["user", "list"]).ok().list();
    assert_eq!(
        headers,
        [
            "ID",
            "NAME",
            "IS ADMIN",
            "PROJECTS",
            "CREATOR ID",
            "CREATED AT"
        ]
    );
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["asdf", "cli_test_user", "second_admin"]);
    assert_eq!(rows[0][4], "HANAMI_INIT");
    let list = server.ctl(&["user", "list", "-j"]).ok().json();
    assert_eq!(list["header"][1], "id");
    assert_eq!(list["body"].as_array().unwrap().len(), 3);

    server
        .ctl(&[
            "user",
            "create",
            "-n",
            "dup user",
            "-p",
            "asdfasdfasdf",
            "cli_test_user",
        ])
        .fails_with_status(409);
    server
        .ctl(&["user", "get", "nobody_here"])
        .fails_with_status(404);
    server
        .ctl(&[
            "user",
            "create",
            "-n",
            "short pw",
            "-p",
            "short",
            "short_pw_user",
        ])
        .fails_with_status(400);
    // Nobody deletes themselves.
    server
        .ctl(&["user", "delete", "asdf"])
        .fails_with_status(409);

    // Project assignments (additions to the original CLI).
    server
        .ctl(&[
            "project",
            "create",
            "-n",
            "cli test project",
            "cli_test_project",
        ])
        .ok();
    // `user project add` of `project` to `user` as a member, and `user project remove`.
    let add_member = |project: &'static str, user: &'static str| {
        [
            "user", "project", "add", "-p", project, "-r", "member", user,
        ]
    };
    let remove_from = |project: &'static str, user: &'static str| {
        ["user", "project", "remove", "-p", project, user]
    };
    let assigned = server
        .ctl(&add_member("cli_test_project", "cli_test_user"))
        .ok();
    assert_eq!(
        assigned.field("PROJECTS"),
        "[map[is_project_admin:false project_id:cli_test_project role:member]]"
    );
    server
        .ctl(&add_member("no_such_project", "cli_test_user"))
        .fails_with_status(404);
    let (headers, rows) = server
        .ctl(&["user", "project", "list", "cli_test_user"])
        .ok()
        .list();
    assert_eq!(headers, ["PROJECT ID", "ROLE", "IS PROJECT ADMIN"]);
    assert_eq!(rows, [["cli_test_project", "member", "false"]]);
    let mine = server.ctl(&["user", "project", "list", "-j"]).ok().json();
    assert_eq!(mine["projects"][0]["project_id"], "admin");
    // A global admin's role in a project is listed, with a note that it is not used.
    server.ctl(&add_member("cli_test_project", "asdf")).ok();
    let listed = server.ctl(&["user", "project", "list"]).ok();
    assert!(
        listed
            .stderr
            .contains("note: a global admin acts as `admin`"),
        "{}",
        listed.stderr
    );
    let of_member = server
        .ctl(&["user", "project", "list", "cli_test_user"])
        .ok();
    assert!(!of_member.stderr.contains("a global admin acts as"));
    server.ctl(&remove_from("cli_test_project", "asdf")).ok();

    // The member: own projects, a scope switch, HANAMI_PROJECT, and no admin endpoints.
    let member = |args: &[&str]| server.ctl_as("cli_test_user", "asdfasdfasdf", args);
    let (_, rows) = member(&["user", "project", "list"]).ok().list();
    assert_eq!(rows[0][0], "cli_test_project");
    let scope = member(&["user", "project", "switch", "cli_test_project"]).ok();
    assert_eq!(
        scope.keys(),
        [
            "ID",
            "NAME",
            "IS ADMIN",
            "PROJECT ID",
            "ROLE",
            "IS PROJECT ADMIN"
        ]
    );
    assert_eq!(scope.field("PROJECT ID"), "cli_test_project");
    assert_eq!(scope.field("ROLE"), "member");
    assert!(
        scope.stderr.contains("set HANAMI_PROJECT=cli_test_project"),
        "{}",
        scope.stderr
    );
    member(&["project", "list"]).fails_with_status(401);
    let in_project = ctl_env(
        &[
            ("HANAMI_ADDRESS", &server.url),
            ("HANAMI_USER", "cli_test_user"),
            ("HANAMI_PW", "asdfasdfasdf"),
            ("HANAMI_PROJECT", "cli_test_project"),
        ],
        &[
            "cluster",
            "create",
            "-j",
            "-t",
            &server.template(),
            "member_cluster",
        ],
    )
    .ok()
    .json();
    assert_eq!(in_project["project_id"], "cli_test_project");
    assert_eq!(in_project["owner_id"], "cli_test_user");
    let outside = ctl_env(
        &[
            ("HANAMI_ADDRESS", &server.url),
            ("HANAMI_USER", "cli_test_user"),
            ("HANAMI_PW", "asdfasdfasdf"),
            ("HANAMI_PROJECT", "admin"),
        ],
        &["cluster", "list"],
    );
    let outside = outside.fails_with_status(401);
    assert!(
        outside
            .stderr
            .ends_with("\nnote: the project comes from the variable HANAMI_PROJECT ('admin')\n"),
        "{}",
        outside.stderr
    );
    // Asked to switch into the project it is in already: no advice to set it.
    let again = ctl_env(
        &[
            ("HANAMI_ADDRESS", &server.url),
            ("HANAMI_USER", "cli_test_user"),
            ("HANAMI_PW", "asdfasdfasdf"),
            ("HANAMI_PROJECT", "cli_test_project"),
        ],
        &["user", "project", "switch", "cli_test_project"],
    )
    .ok();
    assert!(
        !again.stderr.contains("set HANAMI_PROJECT"),
        "{}",
        again.stderr
    );

    // A user can be changed: a new name, a new password (the old one no longer logs in).
    let renamed = server
        .ctl(&["user", "update", "-n", "Renamed User", "cli_test_user"])
        .ok();
    assert_eq!(renamed.field("NAME"), "Renamed User");
    server
        .ctl(&["user", "update", "-p", "anotherpassword", "cli_test_user"])
        .ok();
    server
        .ctl_as("cli_test_user", "asdfasdfasdf", &["cluster", "list"])
        .fails_with_status(401);
    server
        .ctl_as("cli_test_user", "anotherpassword", &["cluster", "list"])
        .ok();
    let promoted = server
        .ctl(&[
            "user",
            "update",
            "-j",
            "--is_admin",
            "true",
            "cli_test_user",
        ])
        .ok()
        .json();
    assert_eq!(promoted["is_admin"], true);
    server
        .ctl(&["user", "update", "--is_admin", "false", "cli_test_user"])
        .ok();
    // Nothing to change is refused before it reaches the server.
    let unchanged = server.ctl(&["user", "update", "cli_test_user"]).fails();
    assert!(
        unchanged
            .stderr
            .contains("the following required arguments were not provided"),
        "{}",
        unchanged.stderr
    );

    // A user who still owns something is not deleted.
    server
        .ctl(&["user", "delete", "cli_test_user"])
        .fails_with_status(409);
    let cluster = in_project["uuid"].as_str().unwrap();
    server.ctl(&["cluster", "delete", cluster]).ok();

    let removed = server
        .ctl(&remove_from("cli_test_project", "cli_test_user"))
        .ok();
    assert_eq!(removed.field("PROJECTS"), "[]");
    let deleted = server.ctl(&["user", "delete", "cli_test_user"]).ok();
    assert_eq!(
        deleted.stdout,
        "successfully deleted user 'cli_test_user'\n"
    );
    server
        .ctl(&["user", "delete", "cli_test_user"])
        .fails_with_status(404);
    // A wrong password is the token request's own 401.
    let wrong = server
        .ctl_as("second_admin", "wrongpassword", &["host", "list"])
        .fails_with_status(401);
    assert!(!wrong.stderr.contains("note:"), "{}", wrong.stderr);
    // One with a line break at its end (from a file, say) gets a note on it.
    let newline = server
        .ctl_as("second_admin", "asdfasdf\n", &["host", "list"])
        .fails_with_status(401);
    assert!(
        newline.stderr.contains(
            "note: the password comes from the variable HANAMI_PW, which ends or starts with \
             white space (a line break, say): is that part of the password?"
        ),
        "{}",
        newline.stderr
    );
    // One too short for any password is the server's 400, which says where it came from.
    let short = server
        .ctl_as("second_admin", "wrong", &["host", "list"])
        .fails_with_status(400);
    assert!(
        short.stderr.ends_with(
            "note: the password comes from the variable HANAMI_PW, which is too short to be \
             any user's password\n"
        ),
        "{}",
        short.stderr
    );
    // So does a user id that cannot be one (a stray blank in the variable).
    let blank = server
        .ctl_as(" second_admin", "asdfasdf", &["host", "list"])
        .fails_with_status(400);
    assert!(
        blank.stderr.contains(
            "note: the user id comes from the variable HANAMI_USER (\" second_admin\")\n"
        ),
        "{}",
        blank.stderr
    );
}

#[test]
fn clusters_hosts_checkpoints_and_tasks() {
    let server = Server::start();
    let template = server.template();
    let created = server
        .ctl(&["cluster", "create", "-t", &template, "cli_test_cluster"])
        .ok();
    assert_eq!(created.keys(), RESOURCE_KEYS);
    assert_eq!(created.field("NAME"), "cli_test_cluster");
    assert_eq!(created.field("VISIBILITY"), "private");
    assert_eq!(created.field("PROJECT ID"), "admin");
    let cluster = created.field("UUID");

    let got = server.ctl(&["cluster", "get", &cluster]).ok();
    assert_eq!(got.single(), created.single());
    let got = server.ctl(&["cluster", "get", "-j", &cluster]).ok().json();
    assert_eq!(got["uuid"], cluster.as_str());
    assert_eq!(got["owner_id"], "asdf");
    let (headers, rows) = server.ctl(&["cluster", "list"]).ok().list();
    assert_eq!(headers, RESOURCE_HEADERS);
    assert_eq!(rows[0][..2], [cluster.as_str(), "cli_test_cluster"]);
    let list = server.ctl(&["cluster", "list", "-j"]).ok().json();
    assert_eq!(list["body"][0][1], cluster.as_str());

    // Hosts, and moving the cluster to the (only) host.
    let (headers, rows) = server.ctl(&["host", "list"]).ok().list();
    assert_eq!(headers, ["UUID", "TYPE"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "cpu");
    let host = server.ctl(&["host", "list", "-j"]).ok().json()["body"][0][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(host, rows[0][0]);
    let moved = server
        .ctl(&["cluster", "switch_host", "-H", &host, &cluster])
        .ok();
    assert_eq!(moved.field("UUID"), cluster);
    server
        .ctl(&["cluster", "switch-host", "--host", UNKNOWN_UUID, &cluster])
        .fails_with_status(404);

    // Tasks: an empty list, unknown tasks.
    let (headers, rows) = server.ctl(&["task", "list", "-c", &cluster]).ok().list();
    assert_eq!(headers, ["UUID", "STATE"]);
    assert!(rows.is_empty());
    let tasks = server
        .ctl(&["task", "list", "-j", "-c", &cluster])
        .ok()
        .json();
    assert_eq!(
        tasks["header"],
        json!(["uuid", "state", "percentage", "queued", "start", "end"])
    );
    server
        .ctl(&["task", "get", "-c", &cluster, UNKNOWN_UUID])
        .fails_with_status(404);
    server
        .ctl(&["task", "list", "-c", UNKNOWN_UUID])
        .fails_with_status(404);

    // Save: the printed uuid is the checkpoint's, and the save is a task of the cluster.
    let saved = server
        .ctl(&["cluster", "save", "-n", "cli_test_checkpoint", &cluster])
        .ok();
    assert_eq!(saved.keys(), ["UUID", "NAME"]);
    assert_eq!(saved.field("NAME"), "cli_test_checkpoint");
    let checkpoint = saved.field("UUID");
    let task = server.wait_finished(&cluster, &checkpoint, Duration::from_secs(30));
    assert_eq!(task["uuid"], checkpoint.as_str());
    let shown = server
        .ctl(&["task", "get", "-c", &cluster, &checkpoint])
        .ok();
    assert_eq!(shown.keys(), TASK_KEYS);
    assert_eq!(shown.field("STATE"), "finished");
    let (_, rows) = server.ctl(&["task", "list", "-c", &cluster]).ok().list();
    assert_eq!(rows, [[checkpoint.as_str(), "finished"]]);

    // `--wait` returns when the task has ended.
    let second = server
        .ctl(&[
            "cluster",
            "save",
            "-j",
            "--wait",
            "-n",
            "second_checkpoint",
            &cluster,
        ])
        .ok()
        .json();
    assert_eq!(second["name"], "second_checkpoint");
    let second = second["uuid"].as_str().unwrap().to_owned();

    let got = server.ctl(&["checkpoint", "get", &checkpoint]).ok();
    assert_eq!(got.keys(), RESOURCE_KEYS);
    assert_eq!(got.field("NAME"), "cli_test_checkpoint");
    let got = server
        .ctl(&["checkpoint", "get", "-j", &second])
        .ok()
        .json();
    assert_eq!(got["name"], "second_checkpoint");
    let (headers, rows) = server.ctl(&["checkpoint", "list"]).ok().list();
    assert_eq!(headers, RESOURCE_HEADERS);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        server.ctl(&["checkpoint", "list", "-j"]).ok().json()["body"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Restore into a fresh cluster, waiting and not.
    let fresh = server
        .ctl(&["cluster", "create", "-j", "-t", &template, "fresh_cluster"])
        .ok()
        .json()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let restored = server
        .ctl(&["cluster", "restore", "-c", &checkpoint, &fresh])
        .ok();
    assert_eq!(restored.keys(), ["UUID"]);
    server.wait_finished(&fresh, &restored.field("UUID"), Duration::from_secs(30));
    let restored = server
        .ctl(&["cluster", "restore", "-j", "--wait", "-c", &second, &fresh])
        .ok()
        .json();
    assert!(restored["uuid"].is_string());
    // An empty template makes a cluster without a network, which only a restore fills:
    // the CLI says so (a truncated file is an easy mistake).
    let empty = path_str(&server.write("empty_template", ""));
    let bare = server
        .ctl(&["cluster", "create", "-t", &empty, "bare_cluster"])
        .ok();
    assert_eq!(bare.field("NAME"), "bare_cluster");
    assert!(
        bare.stderr.starts_with("note: the template file is empty"),
        "{}",
        bare.stderr
    );
    let with_template = server
        .ctl(&["cluster", "create", "-t", &template, "full_cluster"])
        .ok();
    assert!(with_template.stderr.is_empty(), "{}", with_template.stderr);
    for uuid in [bare.field("UUID"), with_template.field("UUID")] {
        server.ctl(&["cluster", "delete", &uuid]).ok();
    }
    server
        .ctl(&["cluster", "restore", "-c", UNKNOWN_UUID, &fresh])
        .fails_with_status(404);

    // Task delete.
    let deleted = server
        .ctl(&["task", "delete", "-c", &cluster, &checkpoint])
        .ok();
    assert_eq!(
        deleted.stdout,
        format!("successfully deleted task '{checkpoint}'\n")
    );

    // Deletes (with `-j` the line is the same).
    for uuid in [&checkpoint, &second] {
        let deleted = server.ctl(&["checkpoint", "delete", "-j", uuid]).ok();
        assert_eq!(
            deleted.stdout,
            format!("successfully deleted checkpoint '{uuid}'\n")
        );
    }
    server
        .ctl(&["checkpoint", "get", &checkpoint])
        .fails_with_status(404);
    server
        .ctl(&["checkpoint", "delete", &checkpoint])
        .fails_with_status(404);
    for uuid in [&cluster, &fresh] {
        let deleted = server.ctl(&["cluster", "delete", uuid]).ok();
        assert_eq!(
            deleted.stdout,
            format!("successfully deleted cluster '{uuid}'\n")
        );
    }
    server
        .ctl(&["cluster", "get", &cluster])
        .fails_with_status(404);
    server
        .ctl(&["cluster", "get", "not-a-uuid"])
        .fails_with_status(400);
    let (_, rows) = server.ctl(&["cluster", "list"]).ok().list();
    assert!(rows.is_empty());

    // A template the server refuses, and one that cannot be read.
    let broken = server.write("broken_template", "version: 2\n");
    server
        .ctl(&[
            "cluster",
            "create",
            "-t",
            &path_str(&broken),
            "broken_cluster",
        ])
        .fails_with_status(400);
    let missing = server.dir.path().join("no_template");
    let run = server
        .ctl(&["cluster", "create", "-t", &path_str(&missing), "x_cluster"])
        .fails();
    assert!(
        run.stderr
            .starts_with("error: cannot read the template file")
            && run.stderr.contains("No such file"),
        "{}",
        run.stderr
    );
    let binary = server.write("binary_template", [0xff, 0xfe, 0x00]);
    let run = server
        .ctl(&["cluster", "create", "-t", &path_str(&binary), "x_cluster"])
        .fails();
    assert!(run.stderr.contains("not UTF-8"), "{}", run.stderr);
}

#[test]
fn datasets() {
    let server = Server::start();
    let (images, labels) = pattern_mnist(server.dir.path(), "small", 200);
    let created = server
        .ctl(&[
            "dataset",
            "create",
            "mnist",
            "-i",
            &images,
            "-l",
            &labels,
            "cli_test_dataset",
        ])
        .ok();
    assert_eq!(created.keys(), DATASET_KEYS);
    assert_eq!(created.field("NAME"), "cli_test_dataset");
    assert_eq!(created.field("NUMBER OF COLUMNS"), "794");
    assert_eq!(created.field("NUMBER OF ROWS"), "200");
    assert_eq!(
        created.field("DESCRIPTION"),
        r#"{"label":{"end_column":794,"start_column":784},"picture":{"end_column":784,"start_column":0}}"#
    );
    assert_eq!(created.field("VISIBILITY"), "private");
    let mnist = created.field("UUID");
    // The long flag names of the original.
    let json = server
        .ctl(&[
            "dataset",
            "create",
            "mnist",
            "-j",
            "--inputFilePath",
            &images,
            "--labelFilePath",
            &labels,
            "second_dataset",
        ])
        .ok()
        .json();
    assert_eq!(json["number_of_rows"], 200);
    assert_eq!(json["description"]["picture"]["end_column"], 784);
    let second = json["uuid"].as_str().unwrap().to_owned();

    let mut csv = String::from("test_input,test_output\n");
    for i in 0..1095 {
        csv.push_str(&format!("{},{}\n", i % 81, (i % 4) as f32 / 4.0));
    }
    let csv_path = path_str(&server.write("train.csv", &csv));
    let created = server
        .ctl(&["dataset", "create", "csv", "-i", &csv_path, "csv_dataset"])
        .ok();
    assert_eq!(created.keys(), DATASET_KEYS);
    assert_eq!(created.field("NUMBER OF ROWS"), "1095");
    assert_eq!(created.field("NUMBER OF COLUMNS"), "2");
    let csv_uuid = created.field("UUID");
    let json = server
        .ctl(&[
            "dataset",
            "create",
            "csv",
            "-j",
            "--inputFilePath",
            &csv_path,
            "csv_dataset",
        ])
        .ok()
        .json();
    assert_eq!(json["number_of_rows"], 1095);
    let csv_second = json["uuid"].as_str().unwrap().to_owned();

    let got = server.ctl(&["dataset", "get", &mnist]).ok();
    assert_eq!(got.keys(), DATASET_KEYS);
    assert_eq!(got.field("UUID"), mnist);
    let got = server.ctl(&["dataset", "get", "-j", &csv_uuid]).ok().json();
    assert_eq!(got["name"], "csv_dataset");
    // Exported, a CSV dataset gives its file back (numbers written the same way), in whole
    // or in part; an MNIST one names its columns by group and index.
    let exported = server.ctl(&["dataset", "export", &csv_uuid]).ok();
    assert_eq!(exported.stdout, csv);
    let part = server.dir.path().join("part.csv");
    let wrote = server
        .ctl(&[
            "dataset",
            "export",
            "--start",
            "1000",
            "--count",
            "200",
            "-o",
            &path_str(&part),
            &csv_uuid,
        ])
        .ok();
    assert_eq!(
        wrote.stdout,
        format!(
            "wrote 95 rows of dataset '{csv_uuid}' to {}\n",
            part.display()
        )
    );
    let lines: Vec<&str> = csv.lines().collect();
    let expected = [&lines[..1], &lines[1001..]].concat().join("\n") + "\n";
    assert_eq!(std::fs::read_to_string(&part).unwrap(), expected);
    // A failed export leaves the file as it was (it writes beside it, then renames): with a
    // folder in the partial file's place, and with a link there, which is not followed (into
    // a file elsewhere).
    let in_place = server.dir.path().join(".part.csv.hanamictl-partial");
    let elsewhere = server.dir.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, "kept\n").unwrap();
    for link in [false, true] {
        if link {
            std::fs::remove_dir(&in_place).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &in_place).unwrap();
        } else {
            std::fs::create_dir(&in_place).unwrap();
        }
        let failed = server
            .ctl(&["dataset", "export", "-o", &path_str(&part), &csv_uuid])
            .fails();
        assert!(
            failed.stderr.contains("was left as it was"),
            "{}",
            failed.stderr
        );
        assert_eq!(std::fs::read_to_string(&part).unwrap(), expected);
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "kept\n");
    }
    // A folder that is not there is named, not the partial file that could not be made.
    let nowhere = server.dir.path().join("no_such_folder");
    let failed = server
        .ctl(&[
            "dataset",
            "export",
            "-o",
            &path_str(&nowhere.join("x.csv")),
            &csv_uuid,
        ])
        .fails();
    assert_eq!(
        failed.stderr,
        format!(
            "error: cannot create {}: the folder {} does not exist\n",
            nowhere.join("x.csv").display(),
            nowhere.display()
        )
    );
    exports_go_into_links_pipes_and_kept_modes(&server, &csv_uuid, &csv);
    // A start beyond the end is refused, as the server does; a count of 0 is no count.
    let beyond = server
        .ctl(&["dataset", "export", "--start", "1096", &csv_uuid])
        .fails();
    assert!(
        beyond
            .stderr
            .contains("has 1095 rows: --start is at most 1095"),
        "{}",
        beyond.stderr
    );
    server
        .ctl(&["dataset", "export", "--count", "0", &csv_uuid])
        .fails();
    let mnist_rows = server.ctl(&["dataset", "export", &second]).ok().stdout;
    let header = mnist_rows.lines().next().unwrap();
    assert!(
        header.starts_with("picture_0,picture_1,") && header.ends_with(",label_8,label_9"),
        "{header}"
    );
    assert_eq!(mnist_rows.lines().count(), 201);
    server
        .ctl(&["dataset", "export", UNKNOWN_UUID])
        .fails_with_status(404);
    // A dataset whose file changed on disk is refused with nothing on standard output (not
    // a header without rows); as it was, it exports again.
    {
        let file_path = server.data_dir.join("datasets").join(&second);
        let at = std::fs::metadata(&file_path).unwrap().len() - 1;
        hanami_testkit::flip_byte(&file_path, at, 1);
        let refused = server
            .ctl(&["dataset", "export", &second])
            .fails_with_status(409);
        assert!(refused.stdout.is_empty(), "{:?}", refused.stdout);
        assert!(refused.stderr.contains("is damaged"), "{}", refused.stderr);
        hanami_testkit::flip_byte(&file_path, at, 1);
        assert_eq!(
            server.ctl(&["dataset", "export", &second]).ok().stdout,
            mnist_rows
        );
    }
    let (headers, rows) = server.ctl(&["dataset", "list"]).ok().list();
    assert_eq!(headers, RESOURCE_HEADERS);
    assert_eq!(rows.len(), 4);
    let list = server.ctl(&["dataset", "list", "-j"]).ok().json();
    assert_eq!(list["header"][5], "name");
    let names: Vec<&str> = list["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[5].as_str().unwrap())
        .collect();
    assert!(names.contains(&"second_dataset"), "{names:?}");

    // Errors: unknown, malformed, bad files (server-side and local).
    server
        .ctl(&["dataset", "get", UNKNOWN_UUID])
        .fails_with_status(404);
    server
        .ctl(&["dataset", "get", "fail_dataset"])
        .fails_with_status(400);
    server
        .ctl(&["dataset", "check", "-r", UNKNOWN_UUID, &mnist])
        .fails_with_status(404);
    let swapped = server
        .ctl(&[
            "dataset", "create", "mnist", "-i", &labels, "-l", &images, "swapped",
        ])
        .fails_with_status(400);
    assert!(
        swapped.stderr.contains("magic") || swapped.stderr.contains("label"),
        "{}",
        swapped.stderr
    );
    // Rows wider than the server sends at once (one image of 600 x 600 pixels) cannot be
    // exported, and the CLI says so before it asks for them.
    let mut wide = Vec::new();
    for n in [0x803u32, 1, 600, 600] {
        wide.extend_from_slice(&n.to_be_bytes());
    }
    wide.resize(16 + 600 * 600, 7);
    let wide = path_str(&server.write("wide-images", wide));
    let one_label = path_str(&server.write("wide-labels", [0, 0, 8, 1, 0, 0, 0, 1, 4]));
    let created = server
        .ctl(&[
            "dataset", "create", "mnist", "-j", "-i", &wide, "-l", &one_label, "wide",
        ])
        .ok()
        .json();
    let wide_uuid = created["uuid"].as_str().unwrap();
    let refused = server.ctl(&["dataset", "export", wide_uuid]).fails();
    assert_eq!(
        refused.stderr,
        format!(
            "error: dataset '{wide_uuid}' has rows of 360010 values, more than the 262144 \
             that the server sends at once: its rows cannot be exported\n"
        )
    );
    server.ctl(&["dataset", "delete", wide_uuid]).ok();
    let bad_csv = path_str(&server.write("bad.csv", "a,b\n1,x\n"));
    server
        .ctl(&["dataset", "create", "csv", "-i", &bad_csv, "bad_csv"])
        .fails_with_status(400);
    let missing = path_str(&server.dir.path().join("missing-images"));
    let run = server
        .ctl(&[
            "dataset", "create", "mnist", "-i", &missing, "-l", &labels, "missing",
        ])
        .fails();
    assert!(
        run.stderr.starts_with("error: cannot read the input file")
            && run.stderr.contains("missing-images"),
        "{}",
        run.stderr
    );
    let run = server
        .ctl(&[
            "dataset",
            "create",
            "csv",
            "-i",
            &path_str(server.dir.path()),
            "dir",
        ])
        .fails();
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    let (_, rows) = server.ctl(&["dataset", "list"]).ok().list();
    assert_eq!(rows.len(), 4, "failed uploads must leave nothing behind");

    for uuid in [&mnist, &second, &csv_uuid, &csv_second] {
        let deleted = server.ctl(&["dataset", "delete", uuid]).ok();
        assert_eq!(
            deleted.stdout,
            format!("successfully deleted dataset '{uuid}'\n")
        );
    }
    server
        .ctl(&["dataset", "delete", &mnist])
        .fails_with_status(404);
    let (_, rows) = server.ctl(&["dataset", "list"]).ok().list();
    assert!(rows.is_empty());
}

#[test]
fn environment_usage_and_local_errors() {
    let server = Server::start();
    let full = [
        ("HANAMI_ADDRESS", server.url.as_str()),
        ("HANAMI_USER", "asdf"),
        ("HANAMI_PW", "asdfasdf"),
    ];
    ctl_env(&full, &["host", "list"]).ok();
    for missing in ["HANAMI_ADDRESS", "HANAMI_USER", "HANAMI_PW"] {
        let env: Vec<(&str, &str)> = full
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        let run = ctl_env(&env, &["host", "list"]).fails();
        assert!(
            run.stderr
                .starts_with(&format!("error: {missing} is not set")),
            "{}",
            run.stderr
        );
        // Empty counts as unset.
        let mut env = env.clone();
        env.push((missing, ""));
        let run = ctl_env(&env, &["host", "list"]).fails();
        assert!(
            run.stderr.contains(&format!("{missing} is not set")),
            "{}",
            run.stderr
        );
    }
    let run = ctl_env(&[], &["project", "list"]).fails();
    assert!(
        run.stderr.contains("HANAMI_USER is not set"),
        "{}",
        run.stderr
    );
    // A project that is no text is refused, not taken as unset (the user's default
    // project would be used instead).
    {
        use std::os::unix::ffi::OsStrExt as _;
        let out = command(&full, &["host", "list"])
            .env("HANAMI_PROJECT", std::ffi::OsStr::from_bytes(b"proj\xff"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: HANAMI_PROJECT is not valid UTF-8\n"
        );
    }

    let with_address = |address: &str| {
        [
            ("HANAMI_ADDRESS", address.to_owned()),
            ("HANAMI_USER", "asdf".to_owned()),
            ("HANAMI_PW", "asdfasdf".to_owned()),
        ]
    };
    let run_at = |address: &str, args: &[&str]| {
        let env = with_address(address);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ctl_env(&env, args)
    };
    for wrong in ["127.0.0.1:11418", "ftp://127.0.0.1:11418", "http://"] {
        let run = run_at(wrong, &["host", "list"]).fails();
        assert!(
            run.stderr
                .contains("HANAMI_ADDRESS must be http://HOST:PORT or https://HOST:PORT, got"),
            "{wrong}: {}",
            run.stderr
        );
    }
    for (wrong, why) in [
        ("http://127.0.0.1:99999", "with a port from 1 to 65535"),
        ("http://127.0.0.1:0", "with a port from 1 to 65535"),
        ("http://127.0.0.1:11418 ", "without spaces"),
    ] {
        let run = run_at(wrong, &["host", "list"]).fails();
        assert!(run.stderr.contains(why), "{wrong}: {}", run.stderr);
    }
    // A query or fragment is refused; a path (for a server behind a proxy) goes in front of
    // every endpoint, and where the server does not know it, the login failure says why.
    for wrong in ["/?x=1", "#top"] {
        let run = run_at(&format!("{}{wrong}", server.url), &["host", "list"]).fails();
        assert!(
            run.stderr.contains("without a query or fragment"),
            "{wrong}: {}",
            run.stderr
        );
    }
    for path in ["/v1.0alpha", "/prefix/"] {
        let run = run_at(&format!("{}{path}", server.url), &["host", "list"]).fails();
        assert!(
            run.stderr.contains(&format!(
                "HANAMI_ADDRESS has the path '{}'",
                path.trim_end_matches('/')
            )),
            "{path}: {}",
            run.stderr
        );
    }
    // A trailing slash is fine, and so is a scheme in capitals.
    run_at(&format!("{}/", server.url), &["host", "list"]).ok();
    run_at(&server.url.replace("http://", "HTTP://"), &["host", "list"]).ok();
    // Nothing listens on port 1.
    let run = run_at("http://127.0.0.1:1", &["host", "list"]).fails();
    assert!(
        run.stderr
            .starts_with("error: cannot reach http://127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.ends_with(
            "\n(nothing listens there: is the server running, and is HANAMI_ADDRESS its \
             address and port?)\n"
        ),
        "{}",
        run.stderr
    );

    // An argument too long for a URL is named as such, not as a connection failure that
    // quotes the whole URL.
    let long = "y".repeat(100_000);
    let run = server.ctl(&["project", "get", &long]).fails();
    assert!(
        run.stderr
            .starts_with("error: cannot send the request: HANAMI_ADDRESS or an argument")
            && run.stderr.len() < 300,
        "{}",
        &run.stderr[..run.stderr.len().min(300)]
    );

    // A closed standard error or output (`2>&1 | true`, `>&-`) changes nothing but the
    // text: the exit status still tells (writing used to panic with status 101).
    for (args, expected, closed_stdout) in [
        (&["host", "list"][..], 1, false),
        (&["host", "list"][..], 1, true),
        (&["--help"][..], 0, true),
        (&["project"][..], 0, true),
        (&["--no-such-flag"][..], 1, false),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = command(
            &[
                ("HANAMI_ADDRESS", "http://127.0.0.1:1"),
                ("HANAMI_USER", "asdf"),
                ("HANAMI_PW", "asdfasdf"),
            ],
            args,
        );
        cmd.stdin(std::process::Stdio::null());
        if closed_stdout {
            cmd.stdout(writer.try_clone().unwrap());
        }
        let status = cmd.stderr(writer).status().unwrap();
        assert_eq!(status.code(), Some(expected), "{args:?}");
    }

    // A group command given with global flags only prints its help, as without them (it
    // was a usage error with status 1).
    for (args, usage) in [
        (&["-j"][..], "Usage: hanamictl [OPTIONS] <COMMAND>"),
        (
            &["project", "-j"],
            "Usage: hanamictl project [OPTIONS] <COMMAND>",
        ),
    ] {
        let output = command(&[("HANAMI_ADDRESS", "http://127.0.0.1:1")], args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stdout}");
        assert!(stdout.contains(usage), "{args:?}: {stdout}");
    }

    // A server that accepts connections and never answers: the CLI gives up after the
    // answer timeout (flag or variable) instead of waiting forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().collect();
        drop(held);
    });
    for (args, variable) in [
        (&["--answer-timeout", "1", "host", "list"][..], None),
        (&["host", "list"][..], Some("1")),
    ] {
        let mut env = with_address(&silent_url).to_vec();
        if let Some(seconds) = variable {
            env.push(("HANAMI_ANSWER_TIMEOUT", seconds.to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = std::time::Instant::now();
        let run = ctl_env(&env, args).fails();
        assert!(started.elapsed() < Duration::from_secs(8), "{run:?}");
        assert!(
            run.stderr.contains("did not answer in time"),
            "{}",
            run.stderr
        );
    }
    let run = run_at(&silent_url, &["--answer-timeout", "0", "host", "list"]).fails();
    assert!(run.stderr.contains("--answer-timeout"), "{}", run.stderr);
    // Over https:// the same server never completes the TLS handshake: the connection
    // timeout (shorter than this answer timeout) ends the wait, and the hint is about the
    // address, not the answer timeout.
    let silent_tls_url = silent_url.replace("http://", "https://");
    let run = run_at(&silent_tls_url, &["--answer-timeout", "30", "host", "list"]).fails();
    assert!(
        run.stderr.contains("handshake did not complete")
            && !run.stderr.contains("--answer-timeout"),
        "{}",
        run.stderr
    );

    // Local input is checked before anything goes over the network.
    let not_pem = path_str(&server.write("not_a_certificate.pem", "hello"));
    let cut_pem = path_str(&server.write("cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB"));
    let damaged_pem = path_str(&server.write(
        "damaged.pem",
        "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
    ));
    // A named pipe without a writer: opening it would wait for ever.
    let pipe = server.dir.path().join("pipe.csv");
    hanami_testkit::named_pipe(&pipe);
    let pipe = path_str(&pipe);
    let empty = path_str(&server.write("empty.csv", ""));
    for (args, expected) in [
        (
            &[
                "task", "create", "train", "-i", "picture", "-o", "label:x", "-c", "c", "t",
            ][..],
            "malformed value 'picture' for -i/--input",
        ),
        (
            &[
                "task",
                "create",
                "train",
                "-i",
                "p:a",
                "-o",
                "label:x:y",
                "-c",
                "c",
                "t",
            ],
            "malformed value 'label:x:y' for -o/--output",
        ),
        (
            &[
                "task", "create", "request", "-i", "p:a,p:b", "-r", "label:x", "-c", "c", "t",
            ],
            "hexagon 'p' is given twice",
        ),
        (
            &[
                "task", "create", "request", "-i", "p:a", "-r", "label:", "-c", "c", "t",
            ],
            "malformed value 'label:' for -r/--result",
        ),
        (
            &[
                "task", "create", "request", "-i", "p:a", "-r", "a:x,b:y", "-c", "c", "t",
            ],
            "exactly one -r/--result",
        ),
        (
            &["cluster", "create", "-t", "/nonexistent/template", "c"],
            "cannot read the template file '/nonexistent/template'",
        ),
        (
            &["cluster", "create", "-t", "/", "c"],
            "cannot read the template file '/': is a directory",
        ),
        (
            // An endless device is read only up to the limit.
            &["cluster", "create", "-t", "/dev/zero", "c"],
            "the template file '/dev/zero' is larger than 1048576 bytes, the most it may hold",
        ),
        (
            &["dataset", "create", "csv", "-i", "/nonexistent.csv", "d"],
            "cannot read the input file '/nonexistent.csv'",
        ),
        (
            &[
                "dataset",
                "create",
                "mnist",
                "-i",
                "/nonexistent",
                "-l",
                "/x",
                "d",
            ],
            "cannot read the input file '/nonexistent'",
        ),
        (
            &["--ca-cert", "/nonexistent.pem", "host", "list"],
            "--ca-cert or HANAMI_CA_CERT: cannot read the CA certificate file \
             '/nonexistent.pem'",
        ),
        (
            &["--ca-cert", &not_pem, "host", "list"],
            "(--ca-cert or HANAMI_CA_CERT) holds no PEM certificate",
        ),
        (
            &["dataset", "create", "csv", "-i", &pipe, "piped"],
            "pipe.csv': not a regular file",
        ),
        (
            &["dataset", "create", "csv", "-i", &empty, "empty"],
            "empty.csv': the file is empty",
        ),
        (
            &["--ca-cert", &cut_pem, "host", "list"],
            "cut.pem' (--ca-cert or HANAMI_CA_CERT) is cut short: a certificate has no end line",
        ),
        (
            &["--ca-cert", &damaged_pem, "host", "list"],
            "root certificate 1 of the PEM given cannot be read (is it damaged?): invalid peer \
             certificate: BadEncoding (the file of --ca-cert or HANAMI_CA_CERT)",
        ),
    ] {
        let run = run_at("http://127.0.0.1:1", args).fails();
        assert!(
            run.stderr.starts_with("error: ") && run.stderr.contains(expected),
            "{args:?}: {}",
            run.stderr
        );
    }

    // A file this user may not read, likewise (run by a user other than root, who reads any
    // file, from a copy of the CLI that user may run).
    let (_shared, secret, mut command) =
        hanami_testkit::unreadable_file_for(std::path::Path::new(hanamictl()));
    command
        .env("HANAMI_ADDRESS", "http://127.0.0.1:1")
        .env("HANAMI_USER", "nobody")
        .env("HANAMI_PW", "nothing")
        .args([
            "dataset",
            "create",
            "csv",
            "-i",
            &path_str(&secret),
            "secret",
        ]);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("secret.csv'") && stderr.contains("Permission denied"),
        "{stderr}"
    );

    // Server-side task validation arrives as status lines.
    let cluster = server
        .ctl(&[
            "cluster",
            "create",
            "-j",
            "-t",
            &server.template(),
            "c_cluster",
        ])
        .ok()
        .json()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .ctl(&[
            "task",
            "create",
            "train",
            "-i",
            &format!("picture:{UNKNOWN_UUID}"),
            "-o",
            &format!("label:{UNKNOWN_UUID}"),
            "-c",
            &cluster,
            "cli_train_test_task",
        ])
        .fails_with_status(404);
    server
        .ctl(&[
            "task",
            "create",
            "request",
            "-i",
            "picture:not-a-uuid",
            "-r",
            "label:out",
            "-c",
            &cluster,
            "cli_request_task",
        ])
        .fails_with_status(400);
    // The server names the request's fields; a note names the flag that gave them.
    for (pair, result, note) in [
        (
            "picture:not-a-uuid",
            "label:result",
            "note: the request's 'inputs' are the pairs of -i/--input",
        ),
        (
            &*format!("picture:{UNKNOWN_UUID}"),
            "label:1bad",
            "note: the request's 'results' are the pairs of -r/--result",
        ),
    ] {
        let run = server
            .ctl(&[
                "task", "create", "request", "-i", pair, "-r", result, "-c", &cluster, "named",
            ])
            .fails_with_status(400);
        assert!(
            run.stderr.ends_with(&format!("\n{note}\n")),
            "{}",
            run.stderr
        );
    }

    // Usage: help exits 0 on stdout, usage errors exit 1 on stderr.
    for args in [
        &[][..],
        &["--help"],
        &["task"],
        &["task", "create"],
        &["user", "project"],
    ] {
        let run = ctl_env(&[], args).ok();
        assert!(
            run.stdout.contains("Usage: hanamictl"),
            "{args:?}: {}",
            run.stdout
        );
    }
    let version = ctl_env(&[], &["--version"]).ok();
    assert!(
        version.stdout.starts_with("hanamictl "),
        "{}",
        version.stdout
    );
    for (args, expected) in [
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'"),
        (&["project", "create", "p_id"], "--name <NAME>"),
        (&["project", "get"], "<PROJECT_ID>"),
        (
            &["project", "get", "a_id", "b_id"],
            "unexpected argument 'b_id'",
        ),
        (
            &["task", "create", "train", "-r", "x:y", "n"],
            "unexpected argument '-r'",
        ),
        // The documentation's own request example: a note points to request tasks.
        (
            &[
                "task", "create", "train", "-j", "-i", "a:b", "-r", "x:y", "-c", "c", "n",
            ],
            "note: a request task is `task create request",
        ),
        (&["dataset", "check", "uuid"], "--reference"),
        (
            &["host", "list", "--bogus"],
            "unexpected argument '--bogus'",
        ),
    ] {
        let run = ctl_env(&[], args).fails();
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        // Where a note names the right command, clap's tip to pass the flag as a value is
        // left out (it is wrong advice there); elsewhere it stays.
        let noted = run.stderr.contains("note: ");
        assert_eq!(
            run.stderr.contains("tip: to pass"),
            !noted && run.stderr.contains("unexpected argument '-"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("\n\n\n"), "{args:?}: {}", run.stderr);
    }
    // List commands accept and ignore extra words, as the original.
    run_at(&server.url, &["host", "list", "extra", "words"]).ok();

    // Shell completion needs no server.
    for (shell, marker) in [
        ("bash", "_hanamictl()"),
        ("zsh", "#compdef hanamictl"),
        ("fish", "complete -c hanamictl"),
    ] {
        let run = ctl_env(&[], &["completion", shell]).ok();
        assert!(run.stdout.contains(marker), "{shell}");
        assert!(run.stdout.contains("dataset"), "{shell}");
    }
    ctl_env(&[], &["completion", "tcsh"]).fails();
}

#[test]
fn task_create_tables_and_waiting() {
    // Tokens live one second, so waiting for queued work needs fresh logins.
    let server = Server::start_with(&["--token-expiry", "1"]);
    let (images, labels) = pattern_mnist(server.dir.path(), "wait", 2000);
    let dataset = server
        .ctl(&[
            "dataset",
            "create",
            "mnist",
            "-j",
            "-i",
            &images,
            "-l",
            &labels,
            "wait_data",
        ])
        .ok()
        .json()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let cluster = server
        .ctl(&[
            "cluster",
            "create",
            "-j",
            "-t",
            &server.template(),
            "wait_cluster",
        ])
        .ok()
        .json()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let picture = format!("picture:{dataset}");
    let label = format!("label:{dataset}");
    // Without --wait the table comes at once.
    let queued = server
        .ctl(&[
            "task", "create", "train", "-i", &picture, "-o", &label, "-c", &cluster, "first",
        ])
        .ok();
    assert_eq!(queued.keys(), TASK_KEYS);
    assert_eq!(queued.field("TOTAL NUMBER OF CYCLES"), "2000");
    server
        .ctl(&[
            "task", "create", "train", "-i", &picture, "-o", &label, "-c", &cluster, "second",
        ])
        .ok();
    let done = server
        .ctl(&[
            "task",
            "create",
            "train",
            "--wait",
            "--input",
            &picture,
            "--output",
            &label,
            "--cluster",
            &cluster,
            "third",
        ])
        .ok();
    assert_eq!(done.field("STATE"), "finished");
    assert_eq!(done.field("CURRENT CYCLE"), "2000");
    assert_ne!(done.field("END TIMESTAMP"), "-");
    let (_, rows) = server.ctl(&["task", "list", "-c", &cluster]).ok().list();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r[1] == "finished"), "{rows:?}");

    let request = server
        .ctl(&[
            "task",
            "create",
            "request",
            "-j",
            "--wait",
            "-i",
            &picture,
            "--result",
            "label:wait_result",
            "-c",
            &cluster,
            "request",
        ])
        .ok()
        .json();
    assert_eq!(request["state"], "finished");
    let result = request["uuid"].as_str().unwrap();
    let check = server
        .ctl(&["dataset", "check", "-r", &dataset, result])
        .ok();
    let accuracy: f64 = check.field("ACCURACY").parse().unwrap();
    assert!((0.0..=100.0).contains(&accuracy), "{accuracy}");
    assert_eq!(
        server.ctl(&["dataset", "get", "-j", result]).ok().json()["name"],
        "wait_result"
    );
    // `--timeout` alone waits too.
    let timed = server
        .ctl(&[
            "task",
            "create",
            "train",
            "--timeout",
            "600",
            "-i",
            &picture,
            "-o",
            &label,
            "-c",
            &cluster,
            "timed",
        ])
        .ok();
    assert_eq!(timed.field("STATE"), "finished");
    // A wait of no time is refused before anything is queued (giving up after a timeout is
    // `waiting_for_a_task_whose_cluster_is_deleted`).
    let run = server
        .ctl(&[
            "task",
            "create",
            "train",
            "--wait",
            "--timeout",
            "0",
            "-i",
            &picture,
            "-o",
            &label,
            "-c",
            &cluster,
            "impatient",
        ])
        .fails();
    assert!(
        run.stderr
            .contains("invalid value '0' for '--timeout <SECONDS>'"),
        "{}",
        run.stderr
    );
    let (_, rows) = server.ctl(&["task", "list", "-c", &cluster]).ok().list();
    assert_eq!(rows.len(), 5, "{rows:?}");
}

/// A server that is down for a while as `--wait` waits is tried again: the wait ends with
/// how the task ended (queued when the server crashed, so queued again at its restart, and
/// run), not with the first refused connection.
#[test]
fn waiting_outlasts_a_restart_of_the_server() {
    let server = Server::start();
    let dataset = server.mnist_dataset("restart_data", 100);
    let cluster = server.seed_cluster("restart_cluster");
    // DIRECT mode holds the task in the queue until the server stops.
    server.set_direct_mode(&cluster, true);
    let picture = format!("picture:{dataset}");
    let label = format!("label:{dataset}");
    let waiting = spawn(server.command(&[
        "task", "create", "train", "--wait", "-i", &picture, "-o", &label, "-c", &cluster, "held",
    ]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .ctl(&["task", "list", "-c", &cluster])
        .ok()
        .list()
        .1
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the task was not queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Down for longer than the wait's polls are apart (at most a second).
    let server = server.crash_and_restart_at_same_address(Duration::from_millis(2500));
    let out = waiting.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("finished"), "{stdout}");
    // The restarted server lists it so too.
    let (_, rows) = server.ctl(&["task", "list", "-c", &cluster]).ok().list();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "finished");
}

/// `dataset export -o` through a link writes the file the link leads to (the link stays),
/// into a named pipe writes into it (a rename put a file in its place, so that its reader
/// got nothing), and onto an existing file keeps that file's mode.
fn exports_go_into_links_pipes_and_kept_modes(server: &Server, uuid: &str, csv: &str) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::path::Path;
    let dir = server.dir.path();
    let export = |to: &Path| {
        server
            .ctl(&["dataset", "export", "-o", &path_str(to), uuid])
            .ok()
    };
    let target = dir.join("target.csv");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    export(&link);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), csv);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let pipe = dir.join("pipe.csv");
    hanami_testkit::named_pipe(&pipe);
    let reader = {
        let pipe = pipe.clone();
        std::thread::spawn(move || std::fs::read_to_string(pipe).unwrap())
    };
    export(&pipe);
    assert_eq!(reader.join().unwrap(), csv);
    assert!(
        std::fs::symlink_metadata(&pipe)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // `-o /dev/stdout >> file`: appended as the shell opened the file (the file was
    // replaced, so that what it held was lost), and no line about it mixed in.
    let appended = dir.join("appended.csv");
    std::fs::write(&appended, "before\n").unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&appended)
        .unwrap();
    let status = server
        .command(&["dataset", "export", "-o", "/dev/stdout", uuid])
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&appended).unwrap(),
        format!("before\n{csv}")
    );
    // `-o /dev/stdout | head` whose reader has gone: quiet, as without `-o` (status 1 and
    // "Broken pipe").
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = server
        .command(&["dataset", "export", "-o", "/dev/stdout", uuid])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        closed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    assert!(closed.stderr.is_empty());
    // `{ hanamictl dataset export -o /dev/stdout …; echo END; } > file`: what the shell
    // writes afterwards comes after the rows (they were written from the file's start on a
    // position of their own, and `END` then overwrote the header).
    let truncated = dir.join("truncated.csv");
    let shell = std::fs::File::create(&truncated).unwrap();
    let status = server
        .command(&["dataset", "export", "-o", "/dev/stdout", uuid])
        .stdout(shell.try_clone().unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    (&shell).write_all(b"END\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(&truncated).unwrap(),
        format!("{csv}END\n")
    );
}

/// `task delete` of a running task says that it stops and stays listed as aborted (it
/// printed "successfully deleted" for a task that `task list` still showed); a second
/// delete removes it.
#[test]
fn deleting_a_running_task_says_that_it_stops() {
    let server = Server::start();
    let dataset = server.mnist_dataset("long_data", 60_000);
    let cluster = server.seed_cluster("long_cluster");
    let picture = format!("picture:{dataset}");
    let label = format!("label:{dataset}");
    // Three in the queue: should one end before its deletion arrives (a fast machine, a
    // slow process start), the next one is caught.
    let tasks: Vec<String> = (0..3)
        .map(|i| {
            let name = format!("long_{i}");
            server
                .ctl(&[
                    "task", "create", "train", "-j", "-i", &picture, "-o", &label, "-c", &cluster,
                    &name,
                ])
                .ok()
                .json()["uuid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let state = |task: &str| {
        server
            .ctl(&["task", "get", "-j", "-c", &cluster, task])
            .ok()
            .json()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let stopped = tasks.iter().find(|task| {
        while state(task) == "queued" {
            assert!(std::time::Instant::now() < deadline, "{task} stays queued");
            std::thread::sleep(Duration::from_millis(10));
        }
        let line = server
            .ctl(&["task", "delete", "-c", &cluster, task])
            .ok()
            .stdout;
        if line.trim() == format!("successfully deleted task '{task}'") {
            return false; // it had ended: the next one
        }
        assert_eq!(
            line.trim(),
            format!(
                "task '{task}' was running: it stops at its next row and stays listed as \
                 aborted (delete it again to remove it from the list)"
            )
        );
        true
    });
    let task = stopped.expect("no task was caught running");
    loop {
        match state(task).as_str() {
            "aborted" => break,
            "active" => {}
            other => panic!("{task} is {other}"),
        }
        assert!(std::time::Instant::now() < deadline, "{task} goes on");
        std::thread::sleep(Duration::from_millis(10));
    }
    let deleted = server.ctl(&["task", "delete", "-c", &cluster, task]).ok();
    assert_eq!(
        deleted.stdout.trim(),
        format!("successfully deleted task '{task}'")
    );
    let (_, rows) = server.ctl(&["task", "list", "-c", &cluster]).ok().list();
    assert!(rows.iter().all(|row| row[0] != *task), "{rows:?}");
}

/// Ctrl-C or SIGTERM during an upload withdraws it from the server: no temporary files are
/// left behind (they would count against the user's unfinished uploads and hold off the
/// deletion of the user until the server's `upload_timeout`).
#[test]
fn an_interrupted_upload_is_withdrawn() {
    let server = Server::start();
    let files = pattern_mnist(server.dir.path(), "big", 60_000);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let child = big_upload_under_way(&server, &files, |_| {});
        send_signal(&child, signal);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains("upload of 'big_upload' interrupted"),
            "{stderr}"
        );
        assert_eq!(
            files_in(&uploads_of(&server)),
            0,
            "the upload's files are left"
        );
        let (_, rows) = server.ctl(&["dataset", "list"]).ok().list();
        assert!(rows.is_empty(), "{rows:?}");
    }
}

/// An upload whose caller ignores Ctrl-C (`trap '' INT`, a shell's background job) is not
/// stopped by it: the dataset is made.
#[test]
fn an_ignored_interrupt_leaves_an_upload_going() {
    let server = Server::start();
    let files = pattern_mnist(server.dir.path(), "big", 60_000);
    let child = big_upload_under_way(&server, &files, |command| {
        // SAFETY: only `signal`, which is async-signal-safe, runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(command, || {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    send_signal(&child, libc::SIGINT);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("interrupted"), "{stderr}");
    let (_, rows) = server.ctl(&["dataset", "list"]).ok().list();
    assert_eq!(rows.len(), 1, "{rows:?}");
}

/// Starts `dataset create mnist` of `files` (images, labels) as `big_upload`, its command
/// set up by `prepare`, with piped output; returns it once its upload's files are on the
/// server, so that a signal sent then comes while they are sent.
fn big_upload_under_way(
    server: &Server,
    (images, labels): &(String, String),
    prepare: impl FnOnce(&mut std::process::Command),
) -> std::process::Child {
    let mut command = server.command(&[
        "dataset",
        "create",
        "mnist",
        "-i",
        images,
        "-l",
        labels,
        "big_upload",
    ]);
    prepare(&mut command);
    let mut child = spawn(command);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while files_in(&uploads_of(server)) == 0 {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the upload ended before it could be interrupted: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(std::time::Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// The server's folder of unfinished uploads' files.
fn uploads_of(server: &Server) -> std::path::PathBuf {
    server.dir.path().join("data").join("uploads")
}

/// How many entries `dir` holds (0 where it does not exist).
fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// An upload whose finalisation got no answer says that the dataset may still appear and
/// names it, instead of "upload failed" (a retry made a second dataset).
#[test]
fn a_lost_finalisation_answer_names_the_dataset() {
    let server = Server::start();
    let proxy =
        hanami_testkit::AnswerDroppingProxy::start(&server.url, b"PUT /v1.0alpha/dataset/upload/");
    let csv = path_str(&server.write("lost.csv", "a,b\n1,2\n3,4\n"));
    let run = ctl_env(
        &[
            ("HANAMI_ADDRESS", proxy.url.as_str()),
            ("HANAMI_USER", ADMIN),
            ("HANAMI_PW", ADMIN_PW),
        ],
        &["dataset", "create", "csv", "-i", &csv, "lost_answer"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(proxy.dropped(), 1);
    let uuid = run
        .stderr
        .split("register the dataset as '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("{run:?}"));
    assert!(run.stderr.contains("before uploading again"), "{run:?}");
    let got = server.ctl(&["dataset", "get", uuid]).ok();
    assert_eq!(got.field("NAME"), "lost_answer");
}

/// `--wait` on a task whose cluster is deleted in the meantime says so, instead of
/// reporting the task as not found; Ctrl-C while waiting leaves the task queued.
#[test]
fn waiting_for_a_task_whose_cluster_is_deleted() {
    let server = Server::start();
    let dataset = server.mnist_dataset("gone_data", 200);
    let cluster = server.seed_cluster("gone_cluster");
    let picture = format!("picture:{dataset}");
    let label = format!("label:{dataset}");
    let train = [
        "task", "create", "train", "-i", &picture, "-o", &label, "-c", &cluster,
    ];
    // The cluster's DIRECT mode holds the queue, so the tasks stay queued.
    server.set_direct_mode(&cluster, true);
    let waiting = spawn(server.command(&[&train[..], &["--wait", "doomed"]].concat()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let queued = |count: usize| loop {
        let (_, rows) = server.ctl(&["task", "list", "-c", &cluster]).ok().list();
        if rows.len() == count {
            assert!(rows.iter().all(|row| row[1] == "queued"), "{rows:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the task was not queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    queued(1);
    // Why it waits is told when the waiting gives up.
    let impatient = server
        .ctl(&[&train[..], &["--wait", "--timeout", "1", "impatient"]].concat())
        .fails();
    assert!(
        impatient.stderr.contains(
            "is still queued after 1 s (waiting: the cluster is in DIRECT mode, and its queued \
             tasks start once it is switched back to TASK mode"
        ) && impatient
            .stderr
            .contains("; it goes on on the server (`hanamictl task get -c "),
        "{}",
        impatient.stderr
    );
    queued(2);

    // Ctrl-C stops the waiting, not the task, and says so.
    let interrupted = spawn(server.command(&[&train[..], &["--wait", "patient"]].concat()));
    queued(3);
    let stderr = interrupt(interrupted);
    assert!(
        stderr.starts_with("error: stopped waiting; task '")
            && stderr.contains("goes on on the server"),
        "{stderr}"
    );
    queued(3);

    server.ctl(&["cluster", "delete", &cluster]).ok();
    let output = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is gone: it, or its cluster, was deleted while waiting"),
        "{stderr}"
    );
}

/// `cluster task_mode` brings a cluster that a direct-IO client left in DIRECT mode back to
/// TASK mode, where its queued tasks run.
#[test]
fn a_cluster_left_in_direct_mode_goes_back_to_task_mode() {
    let server = Server::start();
    let dataset = server.mnist_dataset("mode_data", 200);
    let cluster = server.seed_cluster("mode_cluster");
    let (picture, label) = (format!("picture:{dataset}"), format!("label:{dataset}"));
    let train = [
        "task", "create", "train", "-i", &picture, "-o", &label, "-c", &cluster,
    ];
    server.set_direct_mode(&cluster, true);
    let waiting = server
        .ctl(&[&train[..], &["-j", "waiting"]].concat())
        .ok()
        .uuid();
    let task = server.ctl(&["task", "get", "-c", &cluster, &waiting]).ok();
    assert_eq!(task.field("STATE"), "queued");
    assert!(task.field("NOTE").contains("`hanamictl cluster task_mode`"));
    // A wait whose token is refused meanwhile (its user got a new password) says that the
    // task goes on.
    server
        .ctl(&[
            "user",
            "create",
            "-n",
            "Waiting Admin",
            "-p",
            "waiterpass1",
            "--is_admin",
            "waiter",
        ])
        .ok();
    let waiter = spawn(
        server
            .command(&[&train[..], &["--wait", "--timeout", "60", "cut_off"]].concat())
            .env("HANAMI_USER", "waiter")
            .env("HANAMI_PW", "waiterpass1"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server
        .ctl(&["task", "list", "-c", &cluster])
        .ok()
        .list()
        .1
        .len()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "not queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
        .ctl(&["user", "update", "-p", "waiterpass2", "waiter"])
        .ok();
    let output = waiter.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("password was changed")
            && stderr.contains("' was queued and goes on on the server (`hanamictl task get -c "),
        "{stderr}"
    );

    // `task get --wait` waits for a task that another command queued, and shows it ended.
    let watcher = spawn(server.command(&["task", "get", "--wait", "-c", &cluster, &waiting]));
    std::thread::sleep(Duration::from_millis(300));
    let switched = server.ctl(&["cluster", "task-mode", &cluster]).ok();
    let watched = watcher.wait_with_output().unwrap();
    let table = String::from_utf8_lossy(&watched.stdout);
    assert!(
        watched.status.success() && table.contains("| STATE ") && table.contains("| finished "),
        "{table} {}",
        String::from_utf8_lossy(&watched.stderr)
    );
    assert_eq!(switched.keys(), ["UUID", "NAME", "NEW STATE", "CREATED AT"]);
    assert_eq!(switched.field("UUID"), cluster);
    assert_eq!(switched.field("NEW STATE"), "TASK");
    // The queued task runs, and the next one after it.
    let after = server
        .ctl(&[&train[..], &["--wait", "--timeout", "120", "after"]].concat())
        .ok();
    assert_eq!(after.field("STATE"), "finished");
    let task = server.ctl(&["task", "get", "-c", &cluster, &waiting]).ok();
    assert_eq!(task.field("STATE"), "finished");
}

/// `-p last` shows the last page of a log with entries (pages count from the oldest, and the
/// server does not say how many there are), whether it is full or not, and says which it is.
#[test]
fn the_last_page_of_a_log_is_found() {
    let server = Server::start();
    // Audited requests of the admin: a project made and deleted is two entries.
    let audited = |pairs: usize| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let client = hanami_sdk::Client::login(&server.url, ADMIN, ADMIN_PW)
                .await
                .unwrap();
            for n in 0..pairs {
                let id = format!("paged_{n}");
                client.create_project(&id, "Paged").await.unwrap();
                client.delete_project(&id).await.unwrap();
            }
        })
    };
    let last = || {
        let run = server.ctl(&["log", "audit", "-p", "last"]).ok();
        let rows = run.list().1.len();
        (rows, run.stderr)
    };
    // An empty log: page 0.
    let (rows, stderr) = last();
    assert_eq!(
        (rows, stderr.as_str()),
        (0, "note: page 0 is the only one\n")
    );
    audited(131);
    let (rows, stderr) = last();
    assert_eq!(rows, 62);
    assert_eq!(
        stderr,
        "note: page 2 is the last (`-p 1` shows the entries before)\n"
    );
    assert_eq!(
        server.ctl(&["log", "audit", "-p", "1"]).ok().list().1.len(),
        100
    );
    // A last page that is full.
    audited(19);
    let (rows, stderr) = last();
    assert_eq!(rows, 100);
    assert!(stderr.starts_with("note: page 2 is the last"), "{stderr}");
    assert!(
        server
            .ctl(&["log", "audit", "-p", "3"])
            .ok()
            .list()
            .1
            .is_empty()
    );
    // JSON has only the page on standard output.
    let json = server
        .ctl(&["log", "audit", "-p", "last", "-j"])
        .ok()
        .json();
    assert_eq!(json["body"].as_array().unwrap().len(), 100);
    // Neither a number nor `last`.
    let wrong = server.ctl(&["log", "error", "-p", "newest"]).fails();
    assert!(
        wrong
            .stderr
            .contains("'newest' is neither a page number (0 or more) nor 'last'"),
        "{}",
        wrong.stderr
    );
}

/// `log audit` and `log error`: tables and JSON, pages, whose entries, and the reason of
/// a failed task (which `task create --wait` sends the user to).
#[test]
fn logs_show_who_changed_what_and_what_failed() {
    let server = Server::start();
    server
        .ctl(&["project", "create", "-n", "Logged Project", "logged_proj"])
        .ok();
    server
        .ctl(&["project", "delete", "nowhere_proj"])
        .fails_with_status(404);
    let (headers, rows) = server.ctl(&["log", "audit"]).ok().list();
    assert_eq!(
        headers,
        ["CREATED AT", "USER ID", "ENDPOINT", "REQUEST TYPE"]
    );
    let entries: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[2].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("v1.0alpha/project", "POST"),
            ("v1.0alpha/project", "DELETE")
        ]
    );
    assert!(rows.iter().all(|r| r[1] == ADMIN), "{rows:?}");
    let json = server.ctl(&["log", "audit", "-j"]).ok().json();
    assert_eq!(json["body"].as_array().unwrap().len(), 2);
    let (_, later) = server.ctl(&["log", "audit", "--page", "1"]).ok().list();
    assert!(later.is_empty(), "{later:?}");
    // A user id that has no entries (a typo, say) gets a note instead of a bare empty
    // table; a user with entries does not.
    let typo = server.ctl(&["log", "audit", "-u", "nonexist_user"]).ok();
    assert!(typo.list().1.is_empty());
    assert!(
        typo.stderr.contains(
            "note: no entries for the user id 'nonexist_user' (`hanamictl user get \
             nonexist_user` says whether that user exists)"
        ),
        "{}",
        typo.stderr
    );
    let own = server.ctl(&["log", "audit", "-u", ADMIN]).ok();
    assert!(own.stderr.is_empty(), "{}", own.stderr);

    // A task that fails: its dataset is cut short while it is queued. (The cluster's DIRECT
    // mode holds the queue: an earlier task in front of it could end before the cut.)
    let long = server.mnist_dataset("long_data", 5000);
    let cut = server.mnist_dataset("cut_data", 2000);
    let cluster = server.seed_cluster("logged");
    server.set_direct_mode(&cluster, true);
    let train = |data: &str, name: &str| {
        server
            .ctl(&[
                "task",
                "create",
                "train",
                "-j",
                "-i",
                &format!("picture:{data}"),
                "-o",
                &format!("label:{data}"),
                "-c",
                &cluster,
                name,
            ])
            .ok()
            .uuid()
    };
    train(&long, "first");
    // Waited for, so that `--wait` shows why it was aborted.
    let waiting = spawn(server.command(&[
        "task",
        "create",
        "train",
        "--wait",
        "-i",
        &format!("picture:{cut}"),
        "-o",
        &format!("label:{cut}"),
        "-c",
        &cluster,
        "second",
    ]));
    let queued = std::time::Instant::now();
    let failing = loop {
        let tasks = server
            .ctl(&["task", "list", "-j", "-c", &cluster])
            .ok()
            .json();
        if let Some(second) = tasks["body"].as_array().unwrap().get(1) {
            break second[0].as_str().unwrap().to_owned();
        }
        assert!(
            queued.elapsed() < Duration::from_secs(60),
            "the second task was not queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let file = server.dir.path().join("data").join("datasets").join(&cut);
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "cut short").unwrap();
    server.set_direct_mode(&cluster, false);
    let waited_out = waiting.wait_with_output().unwrap();
    assert_eq!(waited_out.status.code(), Some(1));
    let stderr = String::from_utf8(waited_out.stderr).unwrap();
    let waited = server
        .ctl(&[
            "task",
            "create",
            "train",
            "--wait",
            "-i",
            &format!("picture:{long}"),
            "-o",
            &format!("label:{long}"),
            "-c",
            &cluster,
            "third",
        ])
        .ok();
    assert_eq!(waited.field("STATE"), "finished");
    let failed = server
        .ctl(&["task", "get", "-j", "-c", &cluster, &failing])
        .ok()
        .json();
    assert_eq!(failed["state"], "aborted", "{failed}");
    let note = failed["note"].as_str().expect("an aborted task has a note");
    assert!(
        stderr.contains(&format!("task '{failing}' was aborted: {note}")),
        "{stderr}"
    );
    let (headers, rows) = server.ctl(&["log", "error"]).ok().list();
    assert_eq!(
        headers,
        [
            "CREATED AT",
            "USER ID",
            "COMPONENT",
            "CONTEXT",
            "INPUT VALUES",
            "MESSAGE"
        ]
    );
    assert!(
        rows.iter()
            .any(|r| r[4].contains(&failing) && r[5].contains(&cut)),
        "{rows:?}"
    );
    let mine = server
        .ctl(&["log", "error", "-j", "--user", ADMIN])
        .ok()
        .json();
    assert_eq!(mine["body"].as_array().unwrap().len(), rows.len());

    // Members read their own audit log only, and no error log.
    server
        .ctl(&[
            "user",
            "create",
            "-n",
            "Logged User",
            "-p",
            "asdfasdfasdf",
            "logged_user",
        ])
        .ok();
    server
        .ctl(&[
            "user",
            "project",
            "add",
            "-p",
            "logged_proj",
            "-r",
            "member",
            "logged_user",
        ])
        .ok();
    let (_, own) = server
        .ctl_as("logged_user", "asdfasdfasdf", &["log", "audit"])
        .ok()
        .list();
    assert!(own.is_empty(), "{own:?}");
    server
        .ctl_as(
            "logged_user",
            "asdfasdfasdf",
            &["log", "audit", "-u", ADMIN],
        )
        .fails_with_status(401);
    server
        .ctl_as("logged_user", "asdfasdfasdf", &["log", "error"])
        .fails_with_status(401);
}

/// With `--wait`, Ctrl-C before the server has answered the request that queues the task
/// ends the command at once (it used to be held until the answer came), saying that the
/// task may have been queued; so does `task get --wait` before the task's first state came.
#[test]
fn ctrl_c_before_the_queueing_is_answered() {
    let server = Server::start();
    let cluster = server.seed_cluster("held");
    let stderr = interrupted_while_held(
        &server,
        "cluster/save",
        &["cluster", "save", "--wait", "-n", "held", &cluster],
    );
    assert!(
        stderr.starts_with("error: stopped before the server answered; the task may have been")
            && stderr.contains(&format!("task list -c {cluster}")),
        "{stderr}"
    );
    let stderr = interrupted_while_held(
        &server,
        "/v1.0alpha/task?",
        &["task", "get", "--wait", "-c", &cluster, &cluster],
    );
    assert!(
        stderr.starts_with("error: stopped before the server answered; nothing was changed"),
        "{stderr}"
    );
}

/// Runs `args` through a relay that holds back the first request containing `hold`,
/// interrupts the command once that request is held, and returns its standard error.
fn interrupted_while_held(server: &Server, hold: &'static str, args: &[&str]) -> String {
    let (relay, holding) = hanami_testkit::holding_relay(&server.url, hold);
    let env = [
        ("HANAMI_ADDRESS", relay.as_str()),
        ("HANAMI_USER", "asdf"),
        ("HANAMI_PW", "asdfasdf"),
        // A command that ignored the signal would end with this timeout instead.
        ("HANAMI_ANSWER_TIMEOUT", "30"),
    ];
    let child = spawn(command(&env, args));
    holding
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no request with {hold} was sent"));
    interrupt(child)
}

/// Ctrl-C or SIGTERM during `dataset export -o FILE` removes the partial file written beside
/// FILE (it stayed behind, hidden, as large as the rows so far) and leaves FILE as it was. A
/// second export into the same file meanwhile is refused and leaves the first one's partial
/// file alone (both wrote into it, and the one that failed removed it); a partial file that
/// no export holds (one killed before it could remove it) is taken over.
#[test]
fn an_interrupted_export_leaves_no_partial_file() {
    let server = Server::start();
    let uuid = server.mnist_dataset("export_big", 60_000);
    let dir = tempfile::tempdir().unwrap();
    for (signal, existing) in [(libc::SIGINT, true), (libc::SIGTERM, false)] {
        let target = dir.path().join(format!("export_{signal}.csv"));
        if existing {
            std::fs::write(&target, "precious\n").unwrap();
        }
        let partial = dir
            .path()
            .join(format!(".export_{signal}.csv.hanamictl-partial"));
        if !existing {
            std::fs::write(&partial, "left by an export that was killed\n").unwrap();
        }
        let mut child =
            spawn(server.command(&["dataset", "export", "-o", &path_str(&target), &uuid]));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&partial).map_or(true, |m| m.len() < 100_000) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the export ended before it could be interrupted"
            );
            assert!(Instant::now() < deadline, "no rows were written");
            std::thread::sleep(Duration::from_millis(5));
        }
        if existing {
            let second = server
                .ctl(&["dataset", "export", "-o", &path_str(&target), &uuid])
                .fails();
            assert!(
                second.stderr.contains(&format!(
                    "another export into {} is under way; try again once it has ended",
                    target.display()
                )) && second.stderr.contains("was left as it was"),
                "{}",
                second.stderr
            );
            assert!(
                partial.exists(),
                "the second export removed the first's file"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the first export ended"
            );
        }
        send_signal(&child, signal);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(130), "{stderr}");
        assert!(!partial.exists(), "the partial file is left: {stderr}");
        if existing {
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
            assert!(stderr.contains("was left as it was"), "{stderr}");
        } else {
            assert!(!target.exists());
            assert!(stderr.contains("was not made"), "{stderr}");
        }
    }
}

/// An upload that goes away under the CLI says which upload and why: cancelled by a
/// `dataset delete` from elsewhere (it printed only the server's 404 text), cut off by a
/// server that died (a bare websocket error), ended by a server that stops (a bare 503),
/// or stalled by a server that no longer answers (it points to the answer timeout).
#[test]
fn an_upload_that_goes_away_says_which_and_why() {
    let mut server = Server::start();
    let (images, labels) = pattern_mnist(server.dir.path(), "big", 60_000);
    let uploads = server.dir.path().join("data").join("uploads");
    // The upload files there, each with whether its first bytes have arrived (the server
    // makes them at their full size, zeros until written; an IDX file starts with its
    // magic number).
    let written = |dir: &std::path::Path| -> Vec<(std::ffi::OsString, bool)> {
        let started = |path: &std::path::Path| {
            let mut head = [0u8; 4];
            std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok_and(|()| head != [0; 4])
        };
        std::fs::read_dir(dir).map_or(Vec::new(), |entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| (e.file_name(), started(&e.path())))
                .collect()
        })
    };
    for how in ["deleted", "crashed", "frozen", "stopped"] {
        let name = format!("going_{how}");
        // A frozen server is given up on after a second.
        let timeout: &[&str] = if how == "frozen" {
            &["--answer-timeout", "1"]
        } else {
            &[]
        };
        let create = [
            "dataset", "create", "mnist", "-i", &images, "-l", &labels, &name,
        ];
        // Its session sends into a new file (a frozen server's upload may stay).
        let before = written(&uploads);
        let child = spawn(server.command(&[timeout, &create[..]].concat()));
        let sending = || {
            written(&uploads)
                .iter()
                .any(|(name, started)| *started && !before.iter().any(|(n, _)| n == name))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sending() {
            assert!(Instant::now() < deadline, "{how}: no upload started");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Held while its upload goes away: a fast machine would otherwise finish it first.
        send_signal(&child, libc::SIGSTOP);
        match how {
            "deleted" => {
                let listed = server.ctl(&["dataset", "list", "-j"]).ok().json();
                let uuid = listed["body"][0][1].as_str().unwrap().to_owned();
                server.ctl(&["dataset", "delete", &uuid]).ok();
            }
            "crashed" => {
                server = server.crash_and_restart_at_same_address(Duration::from_millis(200));
            }
            "stopped" => server.signal_stop(),
            _ => server.signal("STOP"),
        }
        send_signal(&child, libc::SIGCONT);
        let output = child.wait_with_output().unwrap();
        if how == "frozen" {
            server.signal("CONT");
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        // What a user may read, by where in the upload it went away (the client opens a
        // session again after a broken one, which the restarted or stopped server refuses).
        let gone = "the upload was cancelled, expired or finished (its dataset was deleted, it \
                    sent nothing for the server's upload_timeout, or another session finished \
                    it; `hanamictl dataset list` shows what became of it)";
        let unknown = "not found (an upload ends when it is finalised or cancelled, after 600 s \
                       without a chunk, or when the server restarts)";
        let stopping = "status 503: the server is shutting down; a stopping server discards \
                        unfinished uploads: upload again once it is back";
        let down = "is the server still running?";
        let stalled = "(the server did not answer in time; a slow server needs a longer \
                       --answer-timeout or HANAMI_ANSWER_TIMEOUT; `hanamictl dataset list` \
                       shows whether the upload is still there)";
        let explanations: &[&str] = match how {
            "deleted" => &[gone, unknown],
            "crashed" => &[down, unknown, "is the server running"],
            "stopped" => &[stopping, down, "is the server running"],
            _ => &[stalled],
        };
        let told = explanations.iter().any(|text| stderr.contains(text));
        assert!(
            told && stderr.contains(&format!("upload of '{name}' failed: ")),
            "{stderr}"
        );
    }
}
