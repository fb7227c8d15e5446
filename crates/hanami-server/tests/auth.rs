//! Start-up, login, tokens, expiry, restarts and HTTPS, against the real server.

mod common;

use std::time::Duration;

use common::{
    ADMIN, ADMIN_PW, Client, ServerExt, TestServer, launch, launch_with_config, member,
    read_until_closed_by_timeout, with_https,
};
use serde_json::json;

#[tokio::test]
async fn login_answers_and_refusals() {
    let server = TestServer::start();
    let client = server.client();
    let resp = client
        .post("token", &json!({"id": ADMIN, "password": ADMIN_PW}))
        .await
        .expect(200)
        .json();
    assert_eq!(resp["id"], ADMIN);
    assert_eq!(resp["name"], "the admin");
    assert_eq!(resp["is_admin"], true);
    assert!(resp["token"].as_str().unwrap().len() > 20);

    // Unknown user and wrong password cannot be told apart.
    let wrong = client
        .post("token", &json!({"id": ADMIN, "password": "wrongpass"}))
        .await
        .expect(401);
    let unknown = client
        .post("token", &json!({"id": "nobody", "password": ADMIN_PW}))
        .await
        .expect(401);
    assert_eq!(wrong.body, unknown.body);

    for (body, needle) in [
        (json!({"id": ADMIN}), "'password' is required"),
        (json!({"id": ADMIN, "password": "short"}), "shorter than 8"),
        (
            json!({"id": "a.b@c", "password": ADMIN_PW}),
            "'id' doesn't match",
        ),
        (json!({"id": ADMIN, "password": 12345678}), "wrong type"),
    ] {
        let resp = client.post("token", &body).await.expect(400);
        assert!(resp.body.contains(needle), "{body}: {}", resp.body);
    }

    // A password in the address (which proxies and logs keep) is refused, whether the body
    // has one or not; so are two tokens in one request.
    for body in [
        json!({"id": ADMIN}),
        json!({"id": ADMIN, "password": ADMIN_PW}),
    ] {
        let path = format!("token?password={ADMIN_PW}");
        let resp = client.post(&path, &body).await.expect(400);
        assert!(
            resp.body
                .contains("A password goes in the request's JSON body"),
            "{}",
            resp.body
        );
    }
    // Also without a body (the whole login in the address).
    let path = format!("token?id={ADMIN}&password={ADMIN_PW}");
    let without_body = client.send(reqwest::Method::POST, &path, None).await;
    assert_eq!(without_body.status, 400);
    assert!(
        without_body
            .body
            .contains("A password goes in the request's JSON body"),
        "{}",
        without_body.body
    );
    let token = resp["token"].as_str().unwrap();
    for (method, path) in [
        (reqwest::Method::GET, "project/all"),
        (reqwest::Method::POST, "token"),
    ] {
        let twice = reqwest::Client::new()
            .request(method, format!("{}/v1.0alpha/{path}", server.url))
            .header("X-Auth-Token", token)
            .header("X-Auth-Token", "garbage")
            .body(json!({"id": ADMIN, "password": ADMIN_PW}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(twice.status(), 400, "{path}");
        let text = twice.text().await.unwrap();
        assert!(
            text.contains("'X-Auth-Token' came more than once"),
            "{text}"
        );
    }
    // A key given twice, in the body or in the query, is refused naming it (the last one
    // was taken: a check of one and a use of the other could disagree).
    let login_twice = reqwest::Client::new()
        .post(format!("{}/v1.0alpha/token", server.url))
        .body(format!(
            r#"{{"id": "nobody", "password": "{ADMIN_PW}", "id": "{ADMIN}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(login_twice.status(), 400);
    assert_eq!(
        login_twice.text().await.unwrap(),
        "Failed to parse input-values: the body gives 'id' more than once"
    );
    let asked_twice = reqwest::Client::new()
        .get(format!(
            "{}/v1.0alpha/user?id=nobody&id={ADMIN}",
            server.url
        ))
        .header("X-Auth-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(asked_twice.status(), 400);
    assert_eq!(
        asked_twice.text().await.unwrap(),
        "The query gives 'id' more than once"
    );
}

#[tokio::test]
async fn members_log_in_to_their_first_project_and_can_switch() {
    let server = TestServer::start();
    let admin = server.admin().await;
    admin
        .post(
            "user",
            &json!({"id": "lonely", "name": "Lonely", "password": "password1",
                              "is_admin": false}),
        )
        .await
        .expect(200);
    let resp = server
        .client()
        .post("token", &json!({"id": "lonely", "password": "password1"}))
        .await
        .expect(401);
    assert!(resp.body.contains("has no project assigned"));

    let mut memb = member(&server, &admin, "memb", "proj_a", false).await;
    admin
        .post("project", &json!({"id": "proj_b", "name": "Project B"}))
        .await
        .expect(200);
    admin
        .post(
            "user/project",
            &json!({"id": "memb", "project_id": "proj_b", "role": "member",
                                      "is_project_admin": true}),
        )
        .await
        .expect(200);
    let info = memb.get("auth").await.expect(200).json();
    assert_eq!(
        info,
        json!({"id": "memb", "name": "Some User", "is_admin": false, "project_id": "proj_a",
               "role": "member", "is_project_admin": false})
    );

    let renewed = memb
        .put("token", &json!({"project_id": "proj_b"}))
        .await
        .expect(200)
        .json();
    memb.token = Some(renewed["token"].as_str().unwrap().to_owned());
    let info = memb.get("auth").await.expect(200).json();
    assert_eq!(info["project_id"], "proj_b");
    assert_eq!(info["is_project_admin"], true);

    let resp = memb
        .put("token", &json!({"project_id": "proj_x"}))
        .await
        .expect(401);
    assert!(
        resp.body
            .contains("not assigned to the project with id 'proj_x'")
    );
    memb.put("token", &json!({})).await.expect(400);
    memb.put("token", &json!({"project_id": "admin"}))
        .await
        .expect(401);
    // Global admins may only choose the admin project or ones assigned to them.
    admin
        .put("token", &json!({"project_id": "admin"}))
        .await
        .expect(200);
    admin
        .put("token", &json!({"project_id": "proj_a"}))
        .await
        .expect(401);
}

#[tokio::test]
async fn a_global_admin_in_an_assigned_project_stays_an_admin() {
    let server = TestServer::start();
    let mut admin = server.admin().await;
    member(&server, &admin, "memb", "proj_a", false).await;
    let memb_sdk = common::sdk(&server, "memb", "password1").await;
    let theirs = common::seed_cluster(&memb_sdk, "members_cluster").await;
    // Assigned as a plain member, the global admin still works as an admin there.
    admin
        .post(
            "user/project",
            &json!({"id": ADMIN, "project_id": "proj_a", "role": "member",
                    "is_project_admin": false}),
        )
        .await
        .expect(200);
    let renewed = admin
        .put("token", &json!({"project_id": "proj_a"}))
        .await
        .expect(200)
        .json();
    admin.token = Some(renewed["token"].as_str().unwrap().to_owned());
    assert_eq!(
        admin.get("auth").await.expect(200).json(),
        json!({"id": ADMIN, "name": "the admin", "is_admin": true, "project_id": "proj_a",
               "role": "admin", "is_project_admin": true})
    );
    admin.get("user/all").await.expect(200);
    admin
        .get(&format!("cluster?uuid={theirs}"))
        .await
        .expect(200);
    // What it creates there belongs to the project, so its members' project admins see it.
    let made = admin
        .post(
            "cluster",
            &json!({"name": "admins_cluster", "template": ""}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(made["project_id"], "proj_a");

    // The project id of the global admins' own resources cannot be taken by a project,
    // nor in another case (which people would take for it).
    for id in ["admin", "Admin", "ADMIN"] {
        let reserved = admin
            .post("project", &json!({"id": id, "name": "Sneaky"}))
            .await
            .expect(409);
        assert!(
            reserved.body.starts_with(&format!(
                "Project id '{id}' is reserved for the global admins"
            )),
            "{}",
            reserved.body
        );
    }
}

#[tokio::test]
async fn access_check_endpoint() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let memb = member(&server, &admin, "memb", "proj_a", false).await;
    let info = admin.get("auth").await.expect(200).json();
    assert_eq!(info["project_id"], "admin");
    assert_eq!(info["role"], "admin");
    admin
        .get("auth?endpoint=v1.0alpha/user&http_type=4")
        .await
        .expect(200);
    memb.get("auth?endpoint=v1.0alpha/user&http_type=4")
        .await
        .expect(401);
    memb.get("auth?endpoint=v1.0alpha/cluster&http_type=4")
        .await
        .expect(200);
    admin
        .get("auth?endpoint=v1.0alpha/foo&http_type=2")
        .await
        .expect(401);
    admin
        .get("auth?endpoint=v1.0alpha/cluster&http_type=3")
        .await
        .expect(401);
    let resp = admin.get("auth?http_type=9").await.expect(400);
    assert!(resp.body.contains("'http_type' is bigger than 5"));
}

#[tokio::test]
async fn tokens_expire() {
    let server = launch().args(&["--token-expiry", "1"]).start();
    let admin = server.admin().await;
    admin.get("auth").await.expect(200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = admin.get("auth").await.expect(401);
    assert_eq!(
        resp.body,
        "Failed to validate JWT-Token: the token has expired: log in again for a new one"
    );
}

/// The SDK's client outlives its token: it logs in again when the server refuses it, in
/// HTTP calls and websocket sessions, and returns to the project it had switched into. A
/// user who can no longer log in gets the login's refusal.
#[tokio::test]
async fn sdk_clients_log_in_again_when_their_token_expires() {
    let server = launch().args(&["--token-expiry", "1"]).start();
    let admin = server.admin().await;
    member(&server, &admin, "memb", "proj_a", false).await;
    common::also_member(&admin, "memb", "proj_b").await;
    let mut client = common::sdk(&server, "memb", "password1").await;
    assert_eq!(client.auth_info().await.unwrap().project_id, "proj_a");
    client.switch_project("proj_b").await.unwrap();
    // A clone keeps its own project.
    let other = client.clone();
    client.switch_project("proj_a").await.unwrap();
    let first = client.token();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // HTTP: the expired token is replaced, in the same project.
    assert_eq!(client.auth_info().await.unwrap().project_id, "proj_a");
    assert_ne!(client.token(), first);
    assert_eq!(other.auth_info().await.unwrap().project_id, "proj_b");
    // Websocket: a direct-IO session opened with an expired token.
    let cluster = common::seed_cluster(&client, "expiring").await;
    client.set_direct_mode(&cluster, true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = client.token();
    let mut session = client.direct_session(&cluster).await.unwrap();
    assert_ne!(client.token(), stale);
    let answers = session.request(&[("picture", &[0.0; 784])]).await.unwrap();
    assert_eq!(answers.len(), 1);
    session.close().await.unwrap();
    client.set_direct_mode(&cluster, false).await.unwrap();
    client.delete_cluster(&cluster).await.unwrap();
    // And an upload that starts after the token expired.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = common::mnist_files(tmp.path(), 10);
    let stale = client.token();
    let dataset = client
        .upload_mnist("after_expiry", &images, &labels)
        .await
        .unwrap();
    assert_eq!(dataset.project_id, "proj_a");
    assert_ne!(client.token(), stale);

    // Without the assignment, the new login cannot return to the project: said so, also
    // for a client that never switched (its login would now land in proj_b).
    let plain = common::sdk(&server, "memb", "password1").await;
    let admin = server.admin().await;
    admin
        .delete("user/project?id=memb&project_id=proj_a")
        .await
        .expect(200);
    let in_proj_a = |refused: &hanami_sdk::Result<_>| match refused {
        Err(hanami_sdk::Error::Unauthorized(m)) => m.contains("proj_a"),
        _ => false,
    };
    let refused = plain.auth_info().await;
    assert!(in_proj_a(&refused), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for client in [&client, &plain] {
        let refused = client.auth_info().await;
        assert!(in_proj_a(&refused), "{refused:?}");
    }
    // A switch with an expired token goes straight into the new project (not back into
    // proj_a first, which the user left).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.switch_project("proj_b").await.unwrap();
    assert_eq!(client.auth_info().await.unwrap().project_id, "proj_b");
    assert_eq!(
        common::sdk(&server, "memb", "password1")
            .await
            .auth_info()
            .await
            .unwrap()
            .project_id,
        "proj_b"
    );
    // Without the user, the login itself is refused.
    let admin = server.admin().await;
    admin
        .delete(&format!("dataset?uuid={}", dataset.uuid))
        .await
        .expect(200);
    admin.delete("user?id=memb").await.expect(200);
    let refused = other.datasets().await;
    assert!(
        matches!(&refused, Err(hanami_sdk::Error::Unauthorized(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn tokens_die_with_their_user_or_assignment() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let memb = member(&server, &admin, "memb", "proj_a", false).await;
    memb.get("auth").await.expect(200);
    admin
        .delete("user/project?id=memb&project_id=proj_a")
        .await
        .expect(200);
    memb.get("auth").await.expect(401);

    let other = member(&server, &admin, "other", "proj_b", false).await;
    other.get("auth").await.expect(200);
    admin.delete("user?id=other").await.expect(200);
    other.get("auth").await.expect(401);
}

#[tokio::test]
async fn restart_keeps_users_projects_and_tokens() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let _memb = member(&server, &admin, "memb", "proj_a", true).await;
    let server = server.restart();
    let mut admin_again = server.client();
    admin_again.token = admin.token.clone();
    // The token key lives in the data directory, so old tokens stay valid.
    let user = admin_again.get("user?id=memb").await.expect(200).json();
    assert_eq!(user["projects"][0]["project_id"], "proj_a");
    assert_eq!(user["projects"][0]["is_project_admin"], true);
    admin_again.get("project?id=proj_a").await.expect(200);
    server
        .login("memb", "password1")
        .await
        .get("auth")
        .await
        .expect(200);
}

#[tokio::test]
async fn first_start_needs_the_admin_variables() {
    let Err(stderr) = launch().without_admin_env().try_start() else {
        panic!("server started without an admin");
    };
    for var in [
        "HANAMI_ADMIN_USER_ID",
        "HANAMI_ADMIN_USER_NAME",
        "HANAMI_ADMIN_PASSWORD",
    ] {
        assert!(stderr.contains(var), "{stderr}");
    }
    // It leaves no data directory behind.
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("fresh");
    assert!(
        launch()
            .without_admin_env()
            .data_dir(&fresh)
            .try_start()
            .is_err()
    );
    assert!(!fresh.exists());
    // Where some are set, the message names the others.
    let Err(stderr) = launch()
        .without_admin_env()
        .env("HANAMI_ADMIN_USER_ID", "asdf")
        .try_start()
    else {
        panic!("server started without an admin");
    };
    assert!(
        stderr.contains("(HANAMI_ADMIN_USER_NAME and HANAMI_ADMIN_PASSWORD not set)"),
        "{stderr}"
    );
    // Values that the API would refuse for a user are refused with their rule.
    for (var, value, rule) in [
        (
            "HANAMI_ADMIN_USER_ID",
            "9lives",
            "HANAMI_ADMIN_USER_ID must be 4 to 254 characters: a letter, then",
        ),
        (
            "HANAMI_ADMIN_USER_NAME",
            "Ann",
            "HANAMI_ADMIN_USER_NAME must be 4 to 254 characters: a letter, then",
        ),
        (
            "HANAMI_ADMIN_PASSWORD",
            "short",
            "HANAMI_ADMIN_PASSWORD must be 8 to 4096 bytes long",
        ),
    ] {
        let Err(stderr) = launch().env(var, value).try_start() else {
            panic!("server started with {var}={value}");
        };
        assert!(stderr.contains(rule), "{var}: {stderr}");
    }
    // Once an admin exists the variables are not needed.
    let mut server = TestServer::start();
    let dir = server.data_dir.clone();
    assert!(server.stop());
    // Without a global admin, variables that name a user who is none say what to do (the
    // start said only that the user existed).
    common::change_database(&dir, "UPDATE users SET is_admin = 0", &[]).await;
    let Err(stderr) = launch().data_dir(&dir).try_start() else {
        panic!("started without a global admin");
    };
    assert!(
        stderr.contains(
            "the database has no global admin, and user 'asdf' (HANAMI_ADMIN_USER_ID) exists \
             but is none: give HANAMI_ADMIN_USER_ID an id that no user has"
        ),
        "{stderr}"
    );
    common::change_database(&dir, "UPDATE users SET is_admin = 1", &[]).await;
    let mut again = launch().without_admin_env().data_dir(&dir).start();
    again.admin().await;
    assert!(again.stop());
    // Set again, they change nothing, and the log says so (a new password is not taken).
    let mut again = launch()
        .env("HANAMI_ADMIN_PASSWORD", "another password")
        .env("RUST_LOG", "info")
        .data_dir(&dir)
        .start();
    again.wait_until_logged(&["an admin user exists already, so HANAMI_ADMIN_USER_ID"]);
    again.admin().await;
    assert!(again.stop());
    // A token key that others may read (a copied data directory) is warned about.
    use std::os::unix::fs::PermissionsExt as _;
    let key = dir.join("token.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(launch().data_dir(&dir).kill_when_logged(
        &dir,
        "token.key can be read or changed by other users of this machine (mode 644): \
                 whoever reads or replaces it can make tokens for any user; let only the \
                 server's user have it (chmod 600)"
    ));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // So is a data directory that others may change (they could replace the key in it).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(launch().data_dir(&dir).kill_when_logged(
        &dir,
        "can be changed by other users of this machine (mode 777): they can replace its \
         token key or its database; let only the server's user and group change it (chmod \
         o-w)"
    ));
    // Not where only the server's own group may change it (chmod g-w would lock the
    // server out where the group gave it access).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let server = launch().data_dir(&dir).start();
    assert!(
        !server.logged().contains("can be changed by"),
        "{}",
        server.logged()
    );
    drop(server);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // And a token key that another user owns (where this test may give it away).
    // SAFETY: geteuid only reads the process's effective user id.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
        assert!(launch().data_dir(&dir).kill_when_logged(
            &dir,
            "token.key belongs to another user of this machine (uid 65534): that user can \
             replace it, and so make tokens for any user; give it to the server's user \
             (chown 0)"
        ));
        std::os::unix::fs::chown(&key, Some(0), None).unwrap();
    }
    // A token key or host uuid lost from a data directory in use is made anew, saying so.
    std::fs::remove_file(&key).unwrap();
    assert!(launch().data_dir(&dir).kill_when_logged(
        &dir,
        "token.key was missing, so a new token key was made: tokens issued before no longer \
         work"
    ));
    std::fs::remove_file(dir.join("host.id")).unwrap();
    assert!(
        launch()
            .data_dir(&dir)
            .kill_when_logged(&dir, "host.id was missing, so the CPU host has a new uuid")
    );
}

#[tokio::test]
async fn config_file_and_bad_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, config) =
        launch_with_config(tmp.path(), "token_expiry = 1\nmax_body_bytes = 2048\n");
    let server = launched.start();
    let admin = server.admin().await;
    let big = format!(r#"{{"id":"bigbody","name":"{}"}}"#, "a".repeat(3000));
    admin
        .send(reqwest::Method::POST, "project", Some(big))
        .await
        .expect(400);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    admin.get("auth").await.expect(401);

    std::fs::write(&config, "token_expiry = \"soon\"\n").unwrap();
    let Err(stderr) = launch()
        .args(&["--config", config.to_str().unwrap()])
        .try_start()
    else {
        panic!("started with an invalid config");
    };
    assert!(stderr.contains("token_expiry"), "{stderr}");

    let policy = tmp.path().join("policy");
    std::fs::write(&policy, "v1.0alpha/auth\n- GET: admin\n- HEAD: admin\n").unwrap();
    let untouched = tmp.path().join("untouched");
    let Err(stderr) = launch()
        .args(&["--policy-file", policy.to_str().unwrap()])
        .data_dir(&untouched)
        .try_start()
    else {
        panic!("started with an invalid policy");
    };
    assert!(stderr.contains("line 3"), "{stderr}");
    // It stopped before the data directory was made (no database, no first admin).
    assert!(!untouched.exists());

    // A data directory with a file where a folder belongs: the message names that file.
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("datasets"), "not a folder").unwrap();
    let Err(stderr) = launch().data_dir(&data).try_start() else {
        panic!("started with a file in place of the datasets folder");
    };
    assert!(
        stderr.contains(&format!(
            "{} exists and is not a directory",
            data.join("datasets").display()
        )),
        "{stderr}"
    );
}

/// A data directory behind a folder that the server's user may not enter is named as out
/// of reach (it said "cannot create directory", which a directory that exists gave too).
#[test]
fn a_data_directory_out_of_reach_is_named_so() {
    use std::os::unix::fs::PermissionsExt as _;
    // A copy of the server that runs as `nobody` where the test runs as root (whom no
    // folder keeps out).
    let (shared, _, mut server) =
        hanami_testkit::unreadable_file_for(std::path::Path::new(env!("CARGO_BIN_EXE_hanami")));
    let locked = shared.path().join("locked");
    let data = locked.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let output = server
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .envs(hanami_testkit::admin_env())
        .output()
        .unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach directory {}: Permission denied (os error 13) (the user the server \
             runs as must be able to enter every folder on the way to the data directory",
            data.display()
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn custom_policy_file() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy");
    std::fs::write(&policy, "v1.0alpha/auth\n- GET: admin\n").unwrap();
    // A user whose role the new policy does not name: the start warns of it.
    let server = TestServer::start();
    let admin = server.admin().await;
    member(&server, &admin, "memb", "proj_a", false).await;
    assert!(!server.logged().contains("names no role"));
    let server =
        server.restart_with(|launch| launch.args(&["--policy-file", policy.to_str().unwrap()]));
    server.wait_until_logged(&[
        "the policy names no role 'member', which 1 user assignment(s) have ('memb' in \
         project 'proj_a'): they can log in there but call nothing",
    ]);
    let admin = server.admin().await;
    admin.get("auth").await.expect(200);
    admin.get("project/all").await.expect(401);
}

/// Websocket sessions follow the policy file too: direct IO needs the policy entry of train
/// or request tasks (each step that of its kind), an upload's sessions the entry that starts
/// it; open sessions follow the user's role as it changes (sessions were open to any role).
#[tokio::test]
async fn websocket_sessions_follow_the_policy() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let tmp = tempfile::tempdir().unwrap();
    // Members may request but not train; viewers may do neither.
    let policy = hanami_auth::policy::DEFAULT_POLICY
        .replace(
            "v1.0alpha/task/train\n- POST: admin, member",
            "v1.0alpha/task/train\n- POST: admin",
        )
        .replace(
            "v1.0alpha/cluster/set_mode\n- PUT: admin, member",
            "v1.0alpha/cluster/set_mode\n- PUT: admin, member, viewer",
        );
    let path = tmp.path().join("policy");
    std::fs::write(&path, policy).unwrap();
    let server = launch()
        .args(&["--policy-file", path.to_str().unwrap()])
        .start();
    let admin = server.admin().await;
    member(&server, &admin, "memb", "proj_a", true).await;
    let assign = |role: &'static str| {
        let admin = admin.clone();
        async move {
            admin.delete("user/project?id=memb&project_id=proj_a").await;
            admin
                .post(
                    "user/project",
                    &json!({"id": "memb", "project_id": "proj_a", "role": role,
                            "is_project_admin": true}),
                )
                .await
                .expect(200);
        }
    };
    assign("admin").await;
    let memb = common::sdk(&server, "memb", "password1").await;
    let cluster = common::seed_cluster(&memb, "policed").await;
    memb.set_direct_mode(&cluster, true).await.unwrap();
    let picture = [("picture", &[0.5f32; 784][..])];
    let label = [("label", &[1.0f32; 10][..])];
    let denied = |answer: &Result<_, hanami_sdk::Error>, text: &str| matches!(answer, Err(hanami_sdk::Error::Unauthorized(m)) if m == text);

    // An open session follows the role: as admin it trains, as member (seen at the next
    // check, a second later) it requests but no longer trains.
    let mut session = memb.direct_session(&cluster).await.unwrap();
    session.train(&picture, &label).await.unwrap();
    assign("member").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    session.request(&picture).await.unwrap();
    let refused: Result<(), _> = session.train(&picture, &label).await;
    assert!(denied(&refused, "Access denied by policy"), "{refused:?}");

    // A role with neither entry loses its open session, and gets no new one.
    let mut session = memb.direct_session(&cluster).await.unwrap();
    session.request(&picture).await.unwrap();
    let upload = memb.start_csv_upload("policed", 16).await.unwrap();
    assign("viewer").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = session.request(&picture).await.map(drop);
    assert!(
        denied(&refused, "access withdrawn: Access denied by policy"),
        "{refused:?}"
    );
    let viewer = common::sdk(&server, "memb", "password1").await;
    let refused = viewer.direct_session(&cluster).await.map(drop);
    assert!(denied(&refused, "Access denied by policy"), "{refused:?}");
    // Nor a session on its upload, which goes (nobody can finish it now).
    let url = server.url.replace("http://", "ws://");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let init = json!({"token": viewer.token(), "target": "file_upload",
                      "uuid": upload.uuid_input_file});
    socket.send(Message::text(init.to_string())).await.unwrap();
    let reply = socket.next().await.unwrap().unwrap().into_data();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["success"], false, "{reply}");
    assert_eq!(reply["error"], "Access denied by policy", "{reply}");
    assert_eq!(
        std::fs::read_dir(server.data_dir.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn https_with_a_pem_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, cert) = with_https(launch(), tmp.path());
    let server = launched.start();
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let client = Client::with_http(&server.url, http);
    let resp = client
        .post("token", &json!({"id": ADMIN, "password": ADMIN_PW}))
        .await
        .expect(200);
    assert_eq!(resp.json()["id"], ADMIN);
    // Plain HTTP to the HTTPS port does not get an API answer, but one that says why.
    let plain = server.url.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .post(format!("{plain}/v1.0alpha/token"))
        .body(json!({"id": ADMIN, "password": ADMIN_PW}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap();
    assert!(text.contains("use an https:// address"), "{text}");
    // And HTTPS goes on.
    client
        .post("token", &json!({"id": ADMIN, "password": ADMIN_PW}))
        .await
        .expect(200);
    let warning = "can be read or changed by other users of this machine (mode 604): whoever \
                   reads it can pose as this server; let only the server's user and group \
                   have it (chmod o-rwx)";
    assert!(!server.logged().contains(warning), "{}", server.logged());
    // A key that others may read is warned about (a group may share it, as Debian's
    // ssl-cert does).
    let key = tmp.path().join("key.pem");
    let with_key_mode = |server: TestServer, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        server.restart_with(|launch| {
            launch.args(&[
                "--tls-cert",
                tmp.path().join("cert.pem").to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ])
        })
    };
    let server = with_key_mode(server, 0o640);
    assert!(
        !server.logged().contains("whoever reads it can pose"),
        "{}",
        server.logged()
    );
    let server = with_key_mode(server, 0o604);
    assert!(server.logged().contains(warning), "{}", server.logged());
}

#[tokio::test]
async fn an_https_connection_beyond_its_client_share_is_closed_before_the_handshake() {
    use tokio::io::AsyncReadExt;
    let tmp = tempfile::tempdir().unwrap();
    let limited = launch_with_config(tmp.path(), "max_connections_per_client = 1\n").0;
    let (launched, cert) = with_https(limited, tmp.path());
    let server = launched.start();
    let address: std::net::SocketAddr = server.url.trim_start_matches("https://").parse().unwrap();
    // Two connections from one address: one is kept, the other closed without a word (read
    // side by side, so that a slow accept cannot pass for a kept connection).
    let connections = [
        tokio::net::TcpStream::connect(address).await.unwrap(),
        tokio::net::TcpStream::connect(address).await.unwrap(),
    ];
    let reads =
        futures_util::future::join_all(connections.into_iter().map(|mut stream| async move {
            let mut answer = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(4), stream.read_to_end(&mut answer))
                    .await
                    .is_ok();
            (closed, answer, stream)
        }))
        .await;
    let mut kept = Vec::new();
    for (closed, answer, stream) in reads {
        if closed {
            assert!(answer.is_empty(), "{answer:?}");
        } else {
            kept.push(stream);
        }
    }
    assert_eq!(kept.len(), 1);
    // Another address is served.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    Client::with_http(&server.url, http)
        .post("token", &json!({"id": ADMIN, "password": ADMIN_PW}))
        .await
        .expect(200);
}

#[test]
fn a_handshake_under_way_does_not_hold_up_the_shutdown() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let (launched, _) = with_https(launch(), tmp.path());
    let mut server = launched.start();
    let address = server.url.trim_start_matches("https://").to_owned();
    // The start of a ClientHello, and then nothing (a scanner, a stalled client).
    let mut stalled = std::net::TcpStream::connect(&address).unwrap();
    stalled.write_all(b"\x16\x03\x01\x02\x00\x01").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let asked = std::time::Instant::now();
    assert!(server.stop(), "no clean shutdown");
    // The graceful shutdown waits up to 10 s for connections; the handshake's own limit is
    // header_timeout (30 s).
    let took = asked.elapsed();
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn a_self_signed_certificate_marked_as_a_ca_is_trusted_when_given() {
    // What `openssl req -x509` makes: a self-signed certificate with CA:TRUE.
    let ca_for = |names: Vec<String>, purposes: Vec<rcgen::ExtendedKeyUsagePurpose>| {
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.extended_key_usages = purposes;
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap(), key)
    };
    let ca_like = |names: Vec<String>| ca_for(names, Vec::new());
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = ca_like(vec!["localhost".into(), "127.0.0.1".into()]);
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let start = || {
        launch()
            .args(&[
                "--tls-cert",
                cert_path.to_str().unwrap(),
                "--tls-key",
                key_path.to_str().unwrap(),
            ])
            .start()
    };
    let server = start();
    let trusting = |pem: String| hanami_sdk::ConnectOptions {
        root_certificate_pem: Some(pem.into_bytes()),
        ..hanami_sdk::ConnectOptions::default()
    };
    let client =
        hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &trusting(cert.pem()))
            .await
            .unwrap();
    client.hosts().await.unwrap();
    // Over WSS too.
    let (images, labels) = hanami_testkit::mnist_files(tmp.path(), 20);
    client
        .upload_mnist("over_wss", &images, &labels)
        .await
        .unwrap();
    // Another such certificate is no trust in this one; nor is one for another name.
    let (other, _) = ca_like(vec!["localhost".into(), "127.0.0.1".into()]);
    let refused =
        hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &trusting(other.pem())).await;
    // The cause in words, not as the TLS library's code only.
    let text = refused
        .expect_err("another certificate is no trust")
        .to_string();
    assert!(
        text.starts_with(
            "connection to the server failed: the server's certificate was refused: no \
             certificate that this client trusts signed it ("
        ),
        "{text}"
    );
    // A client that trusts nothing of the kind is refused so too; one that speaks plain
    // HTTP to the HTTPS port is told by the server to use https.
    let untrusting = hanami_sdk::ConnectOptions::default();
    let refused = hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &untrusting).await;
    let text = refused.expect_err("nothing trusted").to_string();
    assert!(
        text.contains("no certificate that this client trusts"),
        "{text}"
    );
    let plain = server.url.replace("https://", "http://");
    let refused = hanami_sdk::Client::login_with(&plain, ADMIN, ADMIN_PW, &untrusting).await;
    let text = refused.expect_err("plain HTTP").to_string();
    assert!(text.contains("use an https:// address"), "{text}");
    // A certificate that does not name the server is refused, trusted or not.
    let (elsewhere, elsewhere_key) = ca_like(vec!["example.org".into()]);
    std::fs::write(&cert_path, elsewhere.pem()).unwrap();
    std::fs::write(&key_path, elsewhere_key.serialize_pem()).unwrap();
    let server = launch()
        .args(&[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ])
        .start();
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let refused =
        hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &trusting(elsewhere.pem()))
            .await;
    let text = refused.expect_err("another name").to_string();
    assert!(
        text.starts_with("connection to the server failed: the server's certificate was refused: ")
            && text.contains("example.org"),
        "{text}"
    );
    // HTTPS to a plain HTTP server is told to use http.
    let plain_server = launch().start();
    let tls_to_plain = plain_server.url.replace("http://", "https://");
    let refused =
        hanami_sdk::Client::login_with(&tls_to_plain, ADMIN, ADMIN_PW, &trusting(elsewhere.pem()))
            .await;
    let text = refused.expect_err("TLS to plain HTTP").to_string();
    assert!(
        text.ends_with("(the server seems to speak plain HTTP: use an http:// address)"),
        "{text}"
    );
    // Nor one whose extended key usage leaves out server authentication.
    let (client_only, client_only_key) = ca_for(
        vec!["127.0.0.1".into()],
        vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
    );
    std::fs::write(&cert_path, client_only.pem()).unwrap();
    std::fs::write(&key_path, client_only_key.serialize_pem()).unwrap();
    let server = start();
    let refused =
        hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &trusting(client_only.pem()))
            .await;
    let error = refused.expect_err("a client-only certificate is refused");
    let mut causes = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(&error);
    while let Some(current) = cause {
        causes += &format!("{current}; ");
        cause = current.source();
    }
    assert!(causes.contains("InvalidPurpose"), "{causes}");
    // A file without any certificate is refused at once.
    let empty =
        hanami_sdk::Client::login_with(&server.url, ADMIN, ADMIN_PW, &trusting(String::new()))
            .await;
    assert!(
        matches!(empty, Err(hanami_sdk::Error::Options(_))),
        "{empty:?}"
    );
}

#[tokio::test]
async fn a_certificate_that_does_not_load_stops_the_start_before_anything_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, _) = with_https(launch(), tmp.path());
    // The key of another certificate.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(tmp.path().join("key.pem"), other.key_pair.serialize_pem()).unwrap();
    let data = tmp.path().join("data");
    let Err(stderr) = launched.data_dir(&data).try_start() else {
        panic!("started with a key that does not match the certificate");
    };
    assert!(
        stderr.contains("cannot load the TLS files: the key in")
            && stderr.contains("does not belong to the first certificate in")
            && stderr.contains("server's own certificate comes first")
            && !stderr.contains("KeyMismatch"),
        "{stderr}"
    );
    // Files without the PEM blocks they should hold are named.
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let cert = tmp.path().join("cert.pem");
    let encrypted = tmp.path().join("encrypted.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let old_style = tmp.path().join("old_style.pem");
    std::fs::write(
        &old_style,
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\n\
         AAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let damaged_key = tmp.path().join("damaged_key.pem");
    std::fs::write(
        &damaged_key,
        "-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    // A sound key of a kind the server's TLS cannot use (an EC key on P-521, made for this
    // test): the refusal says which kinds it takes.
    let p521 = tmp.path().join("p521.pem");
    std::fs::write(
        &p521,
        "-----BEGIN PRIVATE KEY-----\n\
         MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIBNz6i6V4s/x5wVqjD\n\
         0pglbdRvaiXi+idBxOdemwRm5HXaStVhW/dWlruzn97KY2lTpMJWc/BpmVYtIj9I\n\
         luPnK+KhgYkDgYYABAAWCdprZ5u5hgjMy2QjwUvrMWE6pdtM0J5cRfrD/QqmZRy4\n\
         7AOhFEQImd3mk9pSuUvI97aM35jKYT3bhii6eydozQEpzYFXkG5imWStA/WWc3O2\n\
         742bxo4FLSsIRNUKNYt7XQbvlosLpuhIWo84EFoJGWArbMyjUAtWEuOUdGB0gI8M\n\
         bA==\n\
         -----END PRIVATE KEY-----\n",
    )
    .unwrap();
    // A chain whose second certificate is damaged: clients would refuse every handshake.
    let pem = std::fs::read_to_string(&cert).unwrap();
    let chain = tmp.path().join("chain.pem");
    std::fs::write(
        &chain,
        format!("{pem}-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    let cut = tmp.path().join("cut.pem");
    std::fs::write(&cut, &pem[..pem.len() / 2]).unwrap();
    // A named pipe would hold the start until something writes to it.
    let pipe = tmp.path().join("pipe.pem");
    hanami_testkit::named_pipe(&pipe);
    let key = tmp.path().join("key.pem");
    for (cert, key, expected) in [
        (&garbage, &key, "garbage.pem holds no certificate"),
        (&cert, &cert, "cert.pem holds no private key"),
        (
            &cert,
            &encrypted,
            "encrypted.pem holds an encrypted private key",
        ),
        (
            &cert,
            &old_style,
            "old_style.pem holds an encrypted private key",
        ),
        (
            &cert,
            &damaged_key,
            "damaged_key.pem holds a damaged or unsupported private key",
        ),
        (
            &cert,
            &p521,
            "p521.pem holds a damaged or unsupported private key (unexpected error: failed to \
             parse private key as RSA, ECDSA, or EdDSA): the server takes RSA keys of 2048 to \
             8192 bits, EC keys on the curves P-256 and P-384, and Ed25519 keys",
        ),
        (&chain, &key, "certificate 2 of 2 in"),
        (
            &cut,
            &key,
            "cut.pem is not a valid PEM file: a block has no end line \
             '-----END CERTIFICATE-----': is the file cut short?",
        ),
        (&pipe, &key, "pipe.pem is a named pipe, not a regular file"),
        (&cert, &pipe, "pipe.pem is a named pipe, not a regular file"),
    ] {
        let Err(stderr) = launch()
            .args(&[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ])
            .data_dir(&data)
            .try_start()
        else {
            panic!("started with {cert:?} and {key:?}");
        };
        assert!(stderr.contains(expected), "{stderr}");
    }
    // No admin was created, no database written: the data directory was not even made.
    assert!(
        !data.exists(),
        "{:?}",
        std::fs::read_dir(&data).map(|d| d.count())
    );
    // A certificate file that starts with a byte-order mark (Windows editors) is fine.
    let bom = tmp.path().join("bom.pem");
    std::fs::write(&bom, format!("\u{feff}{}", other.cert.pem())).unwrap();
    let started = launch()
        .args(&[
            "--tls-cert",
            bom.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .data_dir(&data)
        .try_start();
    assert!(started.is_ok(), "{:?}", started.err());
}

/// A path that the config file gave and the start cannot use is named with its key.
#[test]
fn a_bad_path_from_the_config_file_names_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, config) =
        common::launch_with_config(tmp.path(), "policy_file = \"nowhere.policy\"\n");
    let Err(stderr) = launched.try_start() else {
        panic!("started without its policy file");
    };
    assert!(
        stderr.contains("cannot read policy file nowhere.policy")
            && stderr.contains(&format!(
                "note: the path 'nowhere.policy' comes from the key policy_file of the config \
                 file {}",
                config.display()
            )),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_stops_the_start_before_anything_changes() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hanami"))
        .arg("--listen")
        .arg(taken.local_addr().unwrap().to_string())
        .arg("--data-dir")
        .arg(&data)
        .envs(hanami_testkit::admin_env())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on")
            && stderr.contains(
                "another program listens on that port: stop it, or give this \
                 server another address (--listen, HANAMI_LISTEN, listen)"
            ),
        "{stderr}"
    );
    // No admin was created, no database written: the data directory was not even made.
    assert!(!data.exists());
}

/// Variables stand for flags: an empty one counts as unset, and a bad value from one is
/// said to come from it (clap names only the flag).
#[test]
fn empty_variables_are_unset_and_bad_ones_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    // HTTPS switched off by empty variables: the server starts on plain HTTP.
    let server = launch()
        .data_dir(&tmp.path().join("data"))
        .env("HANAMI_TLS_CERT", "")
        .env("HANAMI_TLS_KEY", "")
        .start();
    assert!(server.url.starts_with("http://"), "{}", server.url);
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hanami"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[("HANAMI_TOKEN_EXPIRY", "abc")], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'abc' for '--token-expiry")
            && stderr.contains("note: the value comes from the variable HANAMI_TOKEN_EXPIRY"),
        "{stderr}"
    );
    // A typed flag is not blamed on the variable.
    let (code, stderr) = run(&[("HANAMI_TOKEN_EXPIRY", "5")], &["--token-expiry", "abc"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("note:"), "{stderr}");
    // A value that fails only when it is used (a file that is missing, an address that is
    // not this machine's) is named too, with a hint about the address.
    let missing = tmp.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let (code, stderr) = run(
        &[
            ("HANAMI_TLS_CERT", missing),
            ("HANAMI_LISTEN", "127.0.0.1:0"),
        ],
        &[
            "--tls-key",
            missing,
            "--data-dir",
            tmp.path().join("unused").to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "note: the value '{missing}' comes from the variable HANAMI_TLS_CERT"
        )) && !stderr.contains("HANAMI_LISTEN"),
        "{stderr}"
    );
    let (code, stderr) = run(
        &[("HANAMI_LISTEN", "192.0.2.1:0")],
        &["--data-dir", tmp.path().join("unused").to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("that IP address is not one of this machine's")
            && stderr
                .contains("note: the value '192.0.2.1:0' comes from the variable HANAMI_LISTEN"),
        "{stderr}"
    );
}

/// A closed standard error (a `| tee` that died) neither stops the server nor keeps it
/// from shutting down on SIGTERM.
#[test]
fn a_closed_standard_error_does_not_stop_the_server() {
    use std::io::BufRead as _;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hanami"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("RUST_LOG", "info")
        .envs(hanami_testkit::admin_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let mut address = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_owned();
    assert!(address.starts_with("http://127.0.0.1:"), "{address}");
    // The server still answers, also requests that log.
    assert_answers_the_admin(&address);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refused = runtime.block_on(hanami_sdk::Client::login(&address, ADMIN, "wrong password"));
    assert!(refused.is_err());
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to the child process started above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = exit_status(&mut child);
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn https_connections_that_send_no_request_after_the_handshake_are_closed() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let tmp = tempfile::tempdir().unwrap();
    let (launched, _) = launch_with_config(tmp.path(), "header_timeout = 1\n");
    let (launched, cert) = with_https(launched, tmp.path());
    let server = launched.start();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Offered HTTP/2 first, the server chooses HTTP/1.1, the only protocol it speaks.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let address = server.url.trim_start_matches("https://").to_owned();
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    };

    // Silence before the handshake: closed after the header timeout too (was a fixed 10 s).
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), silent.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "still open after 8 s");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Handshake, then silence: the server closes the connection after the header timeout.
    let (read, rest) = read_until_closed_by_timeout(connect().await).await;
    assert!(rest.is_empty(), "{read:?} {rest:?}");

    // A TLS record without data (a key update) after the handshake, then silence: the same.
    let mut updated = connect().await;
    updated.get_mut().1.refresh_traffic_keys().unwrap();
    updated.flush().await.unwrap();
    let (read, rest) = read_until_closed_by_timeout(updated).await;
    assert!(rest.is_empty(), "{read:?} {rest:?}");

    // A request sent right after the handshake is answered.
    let mut prompt = connect().await;
    assert_eq!(prompt.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    prompt
        .write_all(b"GET /v1.0alpha/host/all HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), prompt.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .ok();
    assert!(
        answer.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_burst_of_logins_does_not_swell_the_server() {
    // Each password check takes about 19 MiB; unbounded, 64 at once held gigabytes.
    let server = TestServer::start();
    let client = server.client();
    let attempts = (0..64).map(|i| {
        let client = &client;
        async move {
            client
                .post(
                    "token",
                    &json!({"id": format!("nobody{i}"), "password": "wrong password"}),
                )
                .await
                .expect(401);
        }
    });
    futures_util::future::join_all(attempts).await;
    let peak = server.peak_memory();
    assert!(peak < 300 << 20, "peak {} MiB", peak >> 20);
    // Logins still work.
    server.admin().await;
}

/// Password checks take turns by client network: a login from another address waits behind
/// at most a few of a flood's checks, not behind all of them.
#[tokio::test]
async fn a_flood_of_logins_from_one_address_does_not_hold_up_others() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const FLOOD: usize = 48;
    let server = TestServer::start();
    let client = server.client();
    let answered = AtomicUsize::new(0);
    let flood = futures_util::future::join_all((0..FLOOD).map(|i| {
        let (client, answered) = (&client, &answered);
        async move {
            client
                .post(
                    "token",
                    &json!({"id": format!("stranger{i}"), "password": "wrong password"}),
                )
                .await
                .expect(401);
            answered.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let other = common::Client::with_http(&server.url, elsewhere);
    let login_elsewhere = async {
        // Once the flood's first check has ended, the rest of it has arrived.
        while answered.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        other
            .post("token", &json!({"id": ADMIN, "password": ADMIN_PW}))
            .await
            .expect(200);
        answered.load(Ordering::SeqCst)
    };
    let (_, flood_answered) = futures_util::join!(flood, login_elsewhere);
    assert!(
        flood_answered < FLOOD / 2,
        "the login waited for {flood_answered} of {FLOOD} checks"
    );
}

/// Guesses slow down: after five failed logins of one user id from one address, an attempt
/// waits (a 401 that says so, with `Retry-After`, whatever the password). Another address
/// and another user id are not held up, and a login after the wait forgets the failures.
#[tokio::test]
async fn failed_logins_slow_down_further_guesses() {
    let server = TestServer::start();
    let client = server.client();
    let wrong = json!({"id": ADMIN, "password": "wrong password"});
    let right = json!({"id": ADMIN, "password": ADMIN_PW});
    let denied = |r: &common::Resp| r.status == 401 && r.body.starts_with("ACCESS DENIED");
    let held = |r: &common::Resp| r.status == 401 && r.body.contains("Too many failed logins");

    // Simultaneous guesses get no more password checks than guesses one after another.
    let burst = futures_util::future::join_all((0..12).map(|_| client.post("token", &wrong))).await;
    assert_eq!(burst.iter().filter(|r| denied(r)).count(), 5, "{burst:?}");
    assert_eq!(burst.iter().filter(|r| held(r)).count(), 7, "{burst:?}");
    // Once the door reopens, one more failure closes it for twice as long: time enough for
    // the next requests on a loaded machine.
    let retry_after = |r: &common::Resp| r.retry_after.as_deref().map(|w| w.parse().unwrap());
    let waits: Vec<u64> = burst.iter().filter_map(retry_after).collect();
    assert!(
        waits.len() == 7 && waits.iter().all(|&w| w == 1),
        "{burst:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sixth = client.post("token", &wrong).await;
    assert!(denied(&sixth), "{sixth:?}");
    let refused = client.post("token", &right).await;
    assert!(held(&refused), "{refused:?}");
    // Two seconds, or one left if this machine was slow to send it.
    let wait: u64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{refused:?}");

    // Not for another user id, nor from another address.
    let other_user = client
        .post(
            "token",
            &json!({"id": "nobody", "password": "wrong password"}),
        )
        .await;
    assert!(denied(&other_user), "{other_user:?}");
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    common::Client::with_http(&server.url, elsewhere)
        .post("token", &right)
        .await
        .expect(200);

    tokio::time::sleep(Duration::from_secs(wait)).await;
    client.post("token", &right).await.expect(200);
    for _ in 0..4 {
        let again = client.post("token", &wrong).await;
        assert!(denied(&again), "{again:?}");
    }
    // Correct logins that arrive together all get in, even with failures before them
    // (each used to count as an attempt until its check ended: 11 of 16 were refused).
    let together = futures_util::future::join_all((0..16).map(|_| client.post("token", &right)));
    for answer in together.await {
        answer.expect(200);
    }
}

/// Starts the server binary through `sh -c "<prefix> exec hanami …"` with piped output;
/// returns the child and its address. The shell starts with SIGHUP at its default, also
/// where the tests run with it ignored (under `nohup`, say), which a shell cannot undo.
fn spawn_through_shell(prefix: &str, data: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    use std::os::unix::process::CommandExt as _;
    let script = format!("{prefix} exec \"$0\" --listen 127.0.0.1:0 --data-dir \"$1\"",);
    let mut command = std::process::Command::new("sh");
    // SAFETY: between fork and exec the closure only calls `signal`, which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_hanami"))
        .arg(data)
        .env("RUST_LOG", "info")
        .envs(hanami_testkit::admin_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(server_log(data))
        .spawn()
        .unwrap();
    let mut address = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    (child, address.trim().to_owned())
}

/// Where [`spawn_through_shell`] appends a server's log: beside its data directory.
fn server_log(data: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("log"))
        .unwrap()
}

/// Waits up to ten seconds for the child to exit.
fn exit_status(child: &mut std::process::Child) -> std::process::ExitStatus {
    hanami_testkit::exit_within(child, Duration::from_secs(10)).expect("the server did not stop")
}

/// A second SIGINT or SIGTERM ends a graceful stop at once: here the stop waits for a
/// request whose body never comes.
#[test]
fn a_second_signal_stops_the_server_at_once() {
    use std::io::{Read as _, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut child, address) = spawn_through_shell("", &data);
    let mut stream = std::net::TcpStream::connect(address.trim_start_matches("http://")).unwrap();
    // A request whose body never comes. The server's "100 Continue" says that the request
    // is being handled (it is sent when the handler starts to read the body).
    stream
        .write_all(
            b"POST /v1.0alpha/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut start = [0; 12];
    stream.read_exact(&mut start).unwrap();
    assert_eq!(&start, b"HTTP/1.1 100");
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends signals to the child process started above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the stop did not wait for the request"
    );
    // A hangup (the terminal closing) does not hurry the stop, and the log says what holds
    // it (a second after it began) and that the hangup changed nothing.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let told = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
        if log.contains("the stop waits up to 9 s more for 1 connection(s) with requests under way")
            && log.contains("SIGHUP during the stop changes nothing")
        {
            break;
        }
        assert!(std::time::Instant::now() < told, "{log}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP hurried the stop"
    );
    let second = std::time::Instant::now();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = exit_status(&mut child);
    assert!(
        second.elapsed() < std::time::Duration::from_secs(4),
        "{:?} after the second signal",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{status:?}");
    // The data directory is as after a crash: the next start takes it.
    let (mut next, address) = spawn_through_shell("", &data);
    assert!(address.starts_with("http://127.0.0.1:"), "{address}");
    // SAFETY: as above, for the second process.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(next.id()).unwrap(), libc::SIGTERM) },
        0
    );
    assert!(exit_status(&mut next).success());
}

/// SIGHUP (a closing terminal) shuts the server down gracefully, as SIGTERM does, and a
/// file-size limit makes an upload fail cleanly instead of killing the server (SIGXFSZ).
#[test]
fn hangups_and_file_size_limits_do_not_kill_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    // 1 MiB per file (ulimit -f counts 512-byte blocks).
    let (mut child, address) = spawn_through_shell("ulimit -f 2048;", &tmp.path().join("data"));
    assert!(address.starts_with("http://127.0.0.1:"), "{address}");
    let csv = tmp.path().join("big.csv");
    std::fs::write(
        &csv,
        "a,b\n".to_owned() + &"123456,654321\n".repeat(150_000),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = hanami_sdk::Client::login(&address, ADMIN, ADMIN_PW)
            .await
            .unwrap();
        let refused = client.upload_csv("too_big", &csv).await;
        assert!(
            matches!(&refused, Err(hanami_sdk::Error::Internal(m)) if m.contains("file-size limit")),
            "{refused:?}"
        );
        // Still serving.
        assert_eq!(client.hosts().await.unwrap().body.len(), 1);
        assert!(client.datasets().await.unwrap().body.is_empty());
    });
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to the child process started above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let status = exit_status(&mut child);
    assert!(status.success(), "{status:?}");
}

/// A server started with SIGHUP ignored (`nohup`, here the shell's `trap '' HUP`) keeps it
/// ignored: a closing terminal leaves it running; SIGTERM still stops it gracefully.
#[test]
fn a_server_started_with_hangups_ignored_keeps_running_on_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut child, address) = spawn_through_shell("trap '' HUP;", &data);
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to the child process started above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP stopped it");
    assert_answers_the_admin(&address);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.contains("SIGHUP is ignored, as the server was started")
            && !log.contains("shutting down"),
        "{log}"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(exit_status(&mut child).success());
}

/// Connections from many client networks that together bring the server near its limit of
/// open files are logged (at the limit further connections wait unanswered, and the
/// accept loop says nothing); once they close, the server serves again.
#[test]
fn connections_near_the_open_file_limit_are_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut child, address) = spawn_through_shell("ulimit -n 256;", &data);
    let to: std::net::SocketAddr = address.trim_start_matches("http://").parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut silent = Vec::new();
        for network in 20..24u8 {
            for _ in 0..60 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket
                    .bind((std::net::Ipv4Addr::new(127, 0, 0, network), 0).into())
                    .unwrap();
                silent.push(socket.connect(to).await.unwrap());
            }
        }
        let warning = "of the 256 files it may open in use";
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(data.with_extension("log"))
            .unwrap()
            .contains(warning)
        {
            assert!(std::time::Instant::now() < deadline, "no warning logged");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(silent);
        let client = hanami_sdk::Client::login(&address, ADMIN, ADMIN_PW)
            .await
            .unwrap();
        assert_eq!(client.hosts().await.unwrap().body.len(), 1);
    });
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to the child process started above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(exit_status(&mut child).success());
}

/// A client that stops taking its answers (here: requests it keeps sending, but never reads
/// the answers of) loses its connection once the server's writes have waited for the write
/// timeout; it held the connection, and what its answers hold on to, for ever.
#[tokio::test]
async fn clients_that_take_no_answers_are_dropped() {
    use tokio::io::AsyncWriteExt;

    let tmp = tempfile::tempdir().unwrap();
    let (launched, _) = launch_with_config(tmp.path(), "write_timeout = 1\n");
    let server = launched.start();
    let address = server
        .url
        .trim_start_matches("http://")
        .parse::<std::net::SocketAddr>()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (_unread, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        let request = b"GET /v1.0alpha/cluster/all HTTP/1.1\r\nHost: x\r\n\r\n";
        while writer.write_all(request).await.is_ok() {}
    });
    let closed = tokio::time::timeout(Duration::from_secs(30), sending).await;
    assert!(closed.is_ok(), "the connection was still open after 30 s");
    // The server itself is fine.
    server.admin().await.get("auth").await.expect(200);
}

/// Logs in as the admin at `address` and lists the hosts (one), from a synchronous test.
fn assert_answers_the_admin(address: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = hanami_sdk::Client::login(address, ADMIN, ADMIN_PW)
            .await
            .unwrap();
        assert_eq!(client.hosts().await.unwrap().body.len(), 1);
    });
}
