//! User, project and log endpoints with their success and error answers.

mod common;

use std::time::Duration;

use common::{ADMIN, ADMIN_PW, ServerExt, TestServer, also_member, member, sdk, seed_cluster};
use hanami_sdk::Error;
use hanami_types::tasks::TaskState;
use serde_json::json;

#[tokio::test]
async fn projects() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let created = admin
        .post("project", &json!({"id": "proj_a", "name": "Project A"}))
        .await
        .expect(200)
        .json();
    assert_eq!(created["id"], "proj_a");
    assert_eq!(created["name"], "Project A");
    assert_eq!(created["creator_id"], ADMIN);
    assert_eq!(created["created_at"].as_str().unwrap().len(), 19);
    assert_eq!(created.as_object().unwrap().len(), 4);

    let dup = admin
        .post("project", &json!({"id": "proj_a", "name": "Project A"}))
        .await
        .expect(409);
    assert!(dup.body.contains("proj_a"));
    for (body, needle) in [
        (
            json!({"id": "1bad", "name": "X Proj"}),
            "'id' doesn't match",
        ),
        (
            json!({"id": "abc", "name": "X Proj"}),
            "'id' is shorter than 4",
        ),
        (
            json!({"id": "okid", "name": "Bad$Name"}),
            "'name' doesn't match",
        ),
        (json!({"id": "okid"}), "'name' is required"),
        (
            json!({"id": "okid", "name": "X Proj", "extra": 1}),
            "'extra' is not in the list",
        ),
    ] {
        let resp = admin.post("project", &body).await.expect(400);
        assert!(resp.body.contains(needle), "{body}: {}", resp.body);
    }

    admin
        .post("project", &json!({"id": "proj_b", "name": "Project B"}))
        .await
        .expect(200);
    assert_eq!(
        admin.get("project?id=proj_a").await.expect(200).json(),
        created
    );
    admin.get("project?id=nope_p").await.expect(404);
    admin.get("project").await.expect(400);

    let list = admin.get("project/all").await.expect(200).json();
    assert_eq!(
        list["header"],
        json!(["created_at", "id", "name", "creator_id"])
    );
    let ids: Vec<_> = list["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(ids, [json!("proj_a"), json!("proj_b")]);

    admin.delete("project?id=proj_b").await.expect(200);
    assert_eq!(
        admin.delete("project?id=proj_b").await.expect(404).body,
        "Project with id 'proj_b' not found"
    );
    assert_eq!(
        admin.get("project/all").await.expect(200).json()["body"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn users() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let created = admin
        .post(
            "user",
            &json!({"id": "memb", "name": "Member One", "password": "memberpw1",
                              "is_admin": false}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        created.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "created_at",
            "creator_id",
            "id",
            "is_admin",
            "name",
            "projects"
        ]
    );
    assert_eq!(created["projects"], json!([]));
    assert_eq!(created["creator_id"], ADMIN);
    admin
        .post(
            "user",
            &json!({"id": "memb", "name": "Member One", "password": "memberpw1",
                              "is_admin": false}),
        )
        .await
        .expect(409);
    // is_admin defaults to false.
    let second = admin
        .post(
            "user",
            &json!({"id": "memb2", "name": "Member Two", "password": "memberpw1"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(second["is_admin"], false);
    admin
        .post(
            "user",
            &json!({"id": "a.b@c", "name": "Dot User", "password": "memberpw1"}),
        )
        .await
        .expect(400);
    admin
        .post(
            "user",
            &json!({"id": "shortpw", "name": "Short", "password": "1234567"}),
        )
        .await
        .expect(400);
    admin
        .post(
            "user",
            &json!({"id": "adm2", "name": "Admin Two", "password": "admin2pw1",
                              "is_admin": true}),
        )
        .await
        .expect(200);

    assert_eq!(admin.get("user?id=memb").await.expect(200).json(), created);
    assert_eq!(
        admin.get("user?id=nobody").await.expect(404).body,
        "User with id 'nobody' not found"
    );

    let list = admin.get("user/all").await.expect(200).json();
    assert_eq!(
        list["header"],
        json!([
            "created_at",
            "id",
            "name",
            "creator_id",
            "projects",
            "is_admin"
        ])
    );
    let rows = list["body"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0][1], ADMIN);
    assert_eq!(rows[0][3], "HANAMI_INIT");
    assert_eq!(rows[0][5], true);
    assert_eq!(rows[1][4], json!([]));
    assert_eq!(rows[1][5], false);

    // The new admin can log in and works in the admin project.
    let adm2 = server.login("adm2", "admin2pw1").await;
    assert_eq!(
        adm2.get("auth").await.expect(200).json()["project_id"],
        "admin"
    );

    let me = admin.delete(&format!("user?id={ADMIN}")).await.expect(409);
    assert!(me.body.contains("delete himself"));
    admin.delete("user?id=nobody").await.expect(404);
    admin.delete("user?id=adm2").await.expect(200);
    admin.delete("user?id=adm2").await.expect(404);
    admin.delete("user?id=ab").await.expect(400);
}

#[tokio::test]
async fn project_assignments() {
    let server = TestServer::start();
    let admin = server.admin().await;
    admin
        .post("project", &json!({"id": "proj_a", "name": "Project A"}))
        .await
        .expect(200);
    admin
        .post("project", &json!({"id": "proj_b", "name": "Project B"}))
        .await
        .expect(200);
    admin
        .post(
            "user",
            &json!({"id": "memb", "name": "Member", "password": "memberpw1",
                              "is_admin": false}),
        )
        .await
        .expect(200);
    let assign = |user: &str, project: &str| json!({"id": user, "project_id": project, "role": "member", "is_project_admin": false});
    let user = admin
        .post("user/project", &assign("memb", "proj_a"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        user["projects"],
        json!([{"project_id": "proj_a", "role": "member", "is_project_admin": false}])
    );
    let again = admin
        .post("user/project", &assign("memb", "proj_a"))
        .await
        .expect(409);
    assert!(again.body.contains("already assigned"));
    admin
        .post("user/project", &assign("ghost", "proj_a"))
        .await
        .expect(404);
    let missing = admin
        .post("user/project", &assign("memb", "proj_zz"))
        .await
        .expect(404);
    assert!(missing.body.contains("Project with id 'proj_zz' not found"));
    admin
        .post(
            "user/project",
            &json!({"id": "memb", "project_id": "proj_b", "role": "bad-role"}),
        )
        .await
        .expect(400);
    // A role the policy never names could do nothing: refused, with the roles there are.
    let unknown = admin
        .post(
            "user/project",
            &json!({"id": "memb", "project_id": "proj_b", "role": "bogusrole",
                    "is_project_admin": false}),
        )
        .await
        .expect(400);
    assert_eq!(
        unknown.body,
        "Role 'bogusrole' is not in the server's policy (its roles: admin, member)"
    );
    let user = admin
        .post("user/project", &assign("memb", "proj_b"))
        .await
        .expect(200)
        .json();
    assert_eq!(user["projects"].as_array().unwrap().len(), 2);

    let user = admin
        .delete("user/project?id=memb&project_id=proj_b")
        .await
        .expect(200)
        .json();
    assert_eq!(user["projects"].as_array().unwrap().len(), 1);
    admin
        .delete("user/project?id=memb&project_id=proj_b")
        .await
        .expect(404);
    admin
        .delete("user/project?id=ghost&project_id=proj_b")
        .await
        .expect(404);

    // Deleting a project removes its assignments.
    admin.delete("project?id=proj_a").await.expect(200);
    assert_eq!(
        admin.get("user?id=memb").await.expect(200).json()["projects"],
        json!([])
    );
}

#[tokio::test]
async fn listing_projects_of_users() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let memb = member(&server, &admin, "memb", "proj_a", false).await;
    member(&server, &admin, "other", "proj_b", false).await;

    let own = memb.get("user/project").await.expect(200).json();
    assert_eq!(
        own,
        json!({"projects": [{"project_id": "proj_a", "role": "member", "is_project_admin": false}]})
    );
    memb.get("user/project?user_id=memb").await.expect(200);
    memb.get("user/project?user_id=other").await.expect(401);

    let of_admin = admin
        .get(&format!("user/project?user_id={ADMIN}"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        of_admin["projects"],
        json!([{"project_id": "admin", "role": "admin", "is_project_admin": true}])
    );
    let of_other = admin
        .get("user/project?user_id=other")
        .await
        .expect(200)
        .json();
    assert_eq!(of_other["projects"][0]["project_id"], "proj_b");
    admin.get("user/project?user_id=nobody").await.expect(404);
}

#[tokio::test]
async fn members_are_refused_admin_endpoints() {
    let server = TestServer::start();
    let admin = server.admin().await;
    // A project admin is still no global admin.
    let padm = member(&server, &admin, "padm", "proj_a", true).await;
    let denied = "Access denied by policy";
    assert_eq!(padm.get("project/all").await.expect(401).body, denied);
    assert_eq!(padm.get("user/all").await.expect(401).body, denied);
    assert_eq!(padm.get("user?id=padm").await.expect(401).body, denied);
    assert_eq!(padm.get("error_log?page=0").await.expect(401).body, denied);
    padm.post("project", &json!({"id": "mine", "name": "Mine"}))
        .await
        .expect(401);
    padm.delete("project?id=proj_a").await.expect(401);
    padm.post(
        "user",
        &json!({"id": "xuser", "name": "X User", "password": "xuserpw12"}),
    )
    .await
    .expect(401);
    // Allowed by the policy, refused by the handler.
    let resp = padm
        .post(
            "user/project",
            &json!({"id": "padm", "project_id": "proj_b", "role": "member"}),
        )
        .await
        .expect(401);
    assert!(resp.body.contains("Only global admins"));
    padm.delete("user/project?id=padm&project_id=proj_a")
        .await
        .expect(401);
    // Nothing changed.
    assert_eq!(
        admin.get("project/all").await.expect(200).json()["body"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn audit_log() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let memb = member(&server, &admin, "memb", "proj_a", false).await;
    memb.put("token", &json!({"project_id": "proj_a"}))
        .await
        .expect(200);
    memb.get("auth").await.expect(200);
    // Refused requests are logged too, once they passed the policy.
    memb.delete("user/project?id=memb&project_id=proj_a")
        .await
        .expect(401);

    let own = memb.get("audit_log?page=0").await.expect(200).json();
    assert_eq!(
        own["header"],
        json!(["created_at", "user_id", "endpoint", "request_type"])
    );
    let rows: Vec<_> = own["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[1].as_str().unwrap().to_owned(),
                r[2].as_str().unwrap().to_owned(),
                r[3].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("memb".into(), "v1.0alpha/token".into(), "PUT".into()),
            (
                "memb".into(),
                "v1.0alpha/user/project".into(),
                "DELETE".into()
            ),
        ]
    );
    memb.get(&format!("audit_log?page=0&user_id={ADMIN}"))
        .await
        .expect(401);
    let of_member = admin
        .get("audit_log?page=0&user_id=memb")
        .await
        .expect(200)
        .json();
    assert_eq!(of_member["body"].as_array().unwrap().len(), 2);
    let mine = admin.get("audit_log?page=0").await.expect(200).json();
    assert!(
        mine["body"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r[1] == ADMIN)
    );
    let endpoints: Vec<_> = mine["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].clone())
        .collect();
    assert_eq!(
        endpoints,
        [
            "v1.0alpha/project",
            "v1.0alpha/user",
            "v1.0alpha/user/project"
        ]
    );
    assert!(
        admin.get("audit_log?page=1").await.expect(200).json()["body"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    admin.get("audit_log").await.expect(400);
    admin.get("audit_log?page=-1").await.expect(400);

    // Paging: 100 entries per page.
    for i in 0..105 {
        admin
            .post(
                "project",
                &json!({"id": format!("page{i:03}"), "name": "Paged"}),
            )
            .await
            .expect(200);
    }
    let page0 = admin.get("audit_log?page=0").await.expect(200).json();
    let page1 = admin.get("audit_log?page=1").await.expect(200).json();
    assert_eq!(page0["body"].as_array().unwrap().len(), 100);
    assert!(!page1["body"].as_array().unwrap().is_empty());

    // A user deleted and created again under the same id is another account: its own log
    // starts with it (timestamps have whole seconds), while admins read the whole history.
    admin.delete("user?id=memb").await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let memb = member(&server, &admin, "memb", "proj_a", false).await;
    let own = memb.get("audit_log?page=0").await.expect(200).json();
    assert_eq!(own["body"], json!([]), "{own}");
    let of_member = admin
        .get("audit_log?page=0&user_id=memb")
        .await
        .expect(200)
        .json();
    assert_eq!(of_member["body"].as_array().unwrap().len(), 2);

    // A global admin asking for his own id with `user_id` reads all of it, as for any id.
    let admin_again = async || {
        let body = json!({"id": "boss2", "name": "Boss", "password": "password1",
                          "is_admin": true});
        admin.post("user", &body).await.expect(200);
        server.login("boss2", "password1").await
    };
    let boss = admin_again().await;
    boss.post("project", &json!({"id": "boss_p", "name": "Boss P"}))
        .await
        .expect(200);
    admin.delete("user?id=boss2").await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let boss = admin_again().await;
    let rows = |log: serde_json::Value| log["body"].as_array().unwrap().len();
    assert_eq!(
        rows(boss.get("audit_log?page=0").await.expect(200).json()),
        0
    );
    let whole = boss.get("audit_log?page=0&user_id=boss2").await.expect(200);
    assert_eq!(rows(whole.json()), 1, "{}", whole.body);
}

/// Every user and project endpoint with each of its error codes that the tests above do not
/// already show.
#[tokio::test]
async fn remaining_error_codes() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let padm = member(&server, &admin, "padm", "proj_a", true).await;
    // 400: malformed ids in the query.
    admin.get("user?id=a.b").await.expect(400);
    admin.get("user/project?user_id=1abc").await.expect(400);
    admin.delete("user/project?id=padm").await.expect(400);
    admin.delete("project?id=bad-id").await.expect(400);
    admin.get("project?id=abc").await.expect(400);
    // 401: allowed by the policy for members only where the handler refuses them.
    assert_eq!(
        padm.get("project?id=proj_a").await.expect(401).body,
        "Access denied by policy"
    );
    assert_eq!(
        padm.delete("user?id=asdf").await.expect(401).body,
        "Access denied by policy"
    );
    padm.get(&format!("user/project?user_id={ADMIN}"))
        .await
        .expect(401);
    // 404s of the remaining endpoints.
    admin
        .delete("user/project?id=padm&project_id=nope_p")
        .await
        .expect(404);
    admin
        .post(
            "user/project",
            &json!({"id": "padm", "project_id": "nope_p", "role": "member"}),
        )
        .await
        .expect(404);
    // The global admins' context is no project to assign: the answer says so.
    let reserved = admin
        .post(
            "user/project",
            &json!({"id": "padm", "project_id": "admin", "role": "member"}),
        )
        .await
        .expect(404);
    assert!(
        reserved
            .body
            .starts_with("Project with id 'admin' not found (the id is reserved"),
        "{}",
        reserved.body
    );
}

/// A project whose id is the admins' `admin` in another case (earlier servers let one be
/// made) is named in a warning at the start; it works as any other project.
#[tokio::test]
async fn a_project_that_looks_like_the_admins_is_named_at_the_start() {
    let mut server = TestServer::start();
    assert!(server.stop());
    common::change_database(
        &server.data_dir,
        "INSERT INTO projects (id, name, creator_id, created_at) \
         VALUES ('Admin', 'Old', ?1, '2026-01-01 00:00:00')",
        &[ADMIN],
    )
    .await;
    let server = server.restart();
    server.wait_until_logged(&[
        "project 'Admin' has the id of the global admins' project 'admin' in another case",
    ]);
    let admin = server.admin().await;
    assert_eq!(
        admin.get("project?id=Admin").await.expect(200).json()["name"],
        "Old"
    );
}

/// A value of the wrong type that a program outside wrote (a BLOB as a project's name;
/// SQLite keeps it) is an internal error whose log entry names the table and the column:
/// the handler panicked and the connection was dropped without an answer. Other requests go
/// on.
#[tokio::test]
async fn a_value_of_the_wrong_type_in_the_database_is_an_answered_error() {
    let server = TestServer::start();
    let admin = server.admin().await;
    admin
        .post("project", &json!({"id": "first", "name": "First"}))
        .await
        .expect(200);
    common::change_database(
        &server.data_dir,
        "UPDATE projects SET name = X'ff00' WHERE id = 'first'",
        &[],
    )
    .await;
    for path in ["project/all", "project?id=first"] {
        let refused = admin.get(path).await.expect(500);
        assert!(
            refused.body.contains("the server log has the details"),
            "{}",
            refused.body
        );
    }
    let log = admin.get("error_log?page=0").await.expect(200).json();
    let messages: Vec<&str> = log["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[5].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    for message in messages {
        assert!(
            message.contains(
                "the database holds an unreadable value in the column 'name' of the table \
                 'projects' (mismatched types;"
            ),
            "{message}"
        );
    }
    // The rest of the database is read as before.
    assert_eq!(
        admin.get("user/all").await.expect(200).json()["body"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A token has its user's role as it is now, and dies with its user and with the user's
/// assignment to its project: one made anew after a removal (which is how a role changes)
/// does not bring it back (it did, with the new role, so that an admin could not revoke a
/// leaked token by taking its user out of the project for good). The Rust SDK logs in
/// again by itself where a token was revoked so.
#[tokio::test]
async fn tokens_carry_the_current_role_and_die_with_their_user() {
    let server = TestServer::start();
    let admin = server.admin().await;
    // A project admin with a token, and with a client of the Rust SDK.
    let boss = member(&server, &admin, "boss_user", "proj_boss", true).await;
    let info = boss.get("auth").await.expect(200).json();
    assert_eq!(info["is_project_admin"], true);
    let boss_sdk = sdk(&server, "boss_user", "password1").await;

    // Taken out of the project: the token is refused.
    admin
        .delete("user/project?id=boss_user&project_id=proj_boss")
        .await
        .expect(200);
    let refused = boss.get("auth").await.expect(401);
    let not_assigned = "user 'boss_user' is no longer assigned to project 'proj_boss'";
    assert!(refused.body.contains(not_assigned), "{}", refused.body);
    // Put back as a plain member: the old token stays refused, saying why.
    admin
        .post(
            "user/project",
            &json!({"id": "boss_user", "project_id": "proj_boss", "role": "member",
                    "is_project_admin": false}),
        )
        .await
        .expect(200);
    let refused = boss.get("auth").await.expect(401);
    let reassigned = format!(
        "user 'boss_user' was taken out of project 'proj_boss' {}: log in again",
        hanami_types::auth::REASSIGNED_SINCE
    );
    assert!(refused.body.contains(&reassigned), "{}", refused.body);
    // A new login has the new role; so has the SDK's client, which logged in again.
    let boss = server.login("boss_user", "password1").await;
    let info = boss.get("auth").await.expect(200).json();
    assert_eq!(info["is_project_admin"], false, "{info}");
    assert_eq!(info["role"], "member", "{info}");
    let info = boss_sdk.auth_info().await.unwrap();
    assert!(!info.is_project_admin, "{info:?}");
    assert_eq!(info.role, "member");

    // Promoted to a global admin: the member's token has the new rights at once.
    admin
        .put("user", &json!({"id": "boss_user", "is_admin": true}))
        .await
        .expect(200);
    let info = boss.get("auth").await.expect(200).json();
    assert_eq!(info["is_admin"], true, "{info}");
    // A global admin's login is for the global admins' project: demoted, that token is
    // refused, saying why (it said that the user was no longer assigned to 'admin').
    let global = server.login("boss_user", "password1").await;
    assert_eq!(
        global.get("auth").await.expect(200).json()["project_id"],
        "admin"
    );
    admin
        .put("user", &json!({"id": "boss_user", "is_admin": false}))
        .await
        .expect(200);
    let refused = global.get("auth").await.expect(401);
    assert!(
        refused
            .body
            .contains("user 'boss_user' is no longer a global admin"),
        "{}",
        refused.body
    );

    // Deleted and created again under the same id at once, by the same admin and with the
    // same password (within the same second, so neither the creation time nor anything the
    // two users show tells them apart): the old token is dead, the new user's login works.
    admin.delete("user?id=boss_user").await.expect(200);
    let new_boss = member(&server, &admin, "boss_user", "proj_boss", true).await;
    let resp = boss.get("auth").await.expect(401);
    assert!(resp.body.contains("no longer exists"), "{}", resp.body);
    new_boss.get("auth").await.expect(200);
}

/// A token revoked while its renewal is on its way (its user taken out of the token's
/// project and put back, after the request's token was checked and before the renewal read
/// the user) gets no new token: the renewal checks it again against the same reading of the
/// user that the new token is made from (it minted one from the new assignment).
#[tokio::test]
async fn a_token_revoked_while_its_renewal_is_on_its_way_gets_no_new_one() {
    let point = "token-renew:checked";
    let server = common::launch().pause_at(point, 3000).start();
    let admin = server.admin().await;
    let late = member(&server, &admin, "late_user", "proj_late", false).await;
    let to_own_project = json!({"project_id": "proj_late"});
    let renewal = late.put("token", &to_own_project);
    let reassignment = async {
        common::until_paused(&server, point, 1).await;
        admin
            .delete("user/project?id=late_user&project_id=proj_late")
            .await
            .expect(200);
        admin
            .post(
                "user/project",
                &json!({"id": "late_user", "project_id": "proj_late", "role": "member",
                        "is_project_admin": false}),
            )
            .await
            .expect(200);
    };
    let (refused, ()) = tokio::join!(renewal, reassignment);
    let refused = refused.expect(401);
    // (Refused as not assigned where the renewal read the user between the two changes.)
    assert!(
        refused.body.contains(hanami_types::auth::REASSIGNED_SINCE)
            || refused
                .body
                .contains("is no longer assigned to project 'proj_late'"),
        "{}",
        refused.body
    );
    // A token of the new assignment is renewed, pause and all.
    let fresh = server.login("late_user", "password1").await;
    let renewed = fresh.put("token", &to_own_project).await.expect(200).json();
    assert!(
        renewed["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{renewed}"
    );
    assert_eq!(common::pauses(&server, point), 2);
}

#[tokio::test]
async fn owners_of_pending_checkpoints_and_results_are_kept_until_their_tasks_end() {
    let server = TestServer::start();
    let admin_http = server.admin().await;
    // alice owns a cluster in proj_p; bossy administers proj_p and owns nothing.
    let _ = member(&server, &admin_http, "alice", "proj_p", false).await;
    let _ = member(&server, &admin_http, "bossy", "proj_p", true).await;
    also_member(&admin_http, ADMIN, "proj_q").await;
    let alice = sdk(&server, "alice", "password1").await;
    let boss = sdk(&server, "bossy", "password1").await;
    let admin = sdk(&server, ADMIN, ADMIN_PW).await;
    let mut admin_in_q = sdk(&server, ADMIN, ADMIN_PW).await;
    admin_in_q.switch_project("proj_q").await.unwrap();
    let cluster = seed_cluster(&alice, "alice_cluster").await;
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = common::pattern_mnist(tmp.path(), "alice_data", 20);
    let data = alice
        .upload_mnist("alice_data", &images, &labels)
        .await
        .unwrap()
        .uuid;

    // The cluster is in DIRECT mode: saves and requests stay queued.
    alice.set_direct_mode(&cluster, true).await.unwrap();
    let boss_save = boss.save_cluster(&cluster, "boss_save").await.unwrap().uuid;
    let boss_request = boss
        .request(
            "boss_request",
            &cluster,
            &[("picture", &data)],
            ("label", "boss_result"),
        )
        .await
        .unwrap()
        .uuid;
    let q_save = admin_in_q
        .save_cluster(&cluster, "q_save")
        .await
        .unwrap()
        .uuid;

    // Neither the checkpoints' owner nor their project can go while the saves are pending:
    // a user or project created again under the same id would get them.
    let conflict = |result: hanami_sdk::Result<()>| match result {
        Err(Error::Conflict(message)) => message,
        other => panic!("{other:?}"),
    };
    let message = conflict(admin.delete_user("bossy").await);
    assert!(
        message.contains("still has 2 queued or running task(s) that will create")
            && message.contains(&boss_save)
            && message.contains(&boss_request),
        "{message}"
    );
    let message = conflict(admin.delete_project("proj_q").await);
    assert!(message.contains(&q_save), "{message}");
    // Nor can bossy leave the project: he could not see what the tasks make for him there.
    let message = match admin.unassign_project("bossy", "proj_p").await {
        Err(Error::Conflict(message)) => message,
        other => panic!("{other:?}"),
    };
    assert!(
        message.starts_with(
            "User with id 'bossy' in project 'proj_p' still has 2 queued or running task(s)"
        ) && message.contains(&boss_request),
        "{message}"
    );

    // Whose the pending checkpoint will be decides who hears that it is pending: alice
    // may restore into her cluster, but bossy's checkpoint is not hers to see.
    let scratch = seed_cluster(&alice, "alice_scratch").await;
    match alice.restore_cluster(&scratch, &boss_save).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("{other:?}"),
    }
    match boss.restore_cluster(&scratch, &boss_save).await {
        Err(Error::Conflict(message)) => assert!(message.contains("not saved yet"), "{message}"),
        other => panic!("{other:?}"),
    }

    // Once the tasks are gone, so is the hold.
    admin.delete_task(&cluster, &boss_save).await.unwrap();
    admin.delete_task(&cluster, &boss_request).await.unwrap();
    admin.unassign_project("bossy", "proj_p").await.unwrap();
    admin.delete_user("bossy").await.unwrap();
    // The other save runs when the cluster is back in TASK mode, and its checkpoint belongs
    // to the project it was made in.
    alice.set_direct_mode(&cluster, false).await.unwrap();
    let ended = admin
        .wait_for_task(&cluster, &q_save, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ended.state, TaskState::Finished, "{ended:?}");
    let message = conflict(admin.delete_project("proj_q").await);
    assert!(message.contains("still owns 1 checkpoint(s)"), "{message}");
    admin.delete_checkpoint(&q_save).await.unwrap();
    admin.delete_project("proj_q").await.unwrap();
}

/// Two admins deleting each other at once, or taking each other's admin rights, leave one
/// of them.
#[tokio::test]
async fn admins_deleting_or_demoting_each_other_at_once_leave_one_of_them() {
    let server = TestServer::start();
    let admin = server.admin().await;
    for round in 0..8 {
        let (first, second) = (format!("first_{round}"), format!("second_{round}"));
        for id in [&first, &second] {
            admin
                .post(
                    "user",
                    &json!({"id": id, "name": "An Admin", "password": "password1",
                            "is_admin": true}),
                )
                .await
                .expect(200);
        }
        let one = server.login(&first, "password1").await;
        let other = server.login(&second, "password1").await;
        let (a, b) = if round % 2 == 0 {
            let (delete_second, delete_first) =
                (format!("user?id={second}"), format!("user?id={first}"));
            tokio::join!(one.delete(&delete_second), other.delete(&delete_first))
        } else {
            let (demote_second, demote_first) = (
                json!({"id": second, "is_admin": false}),
                json!({"id": first, "is_admin": false}),
            );
            tokio::join!(
                one.put("user", &demote_second),
                other.put("user", &demote_first)
            )
        };
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [200, 401], "round {round}: {a:?} {b:?}");
        // Refused when its token is checked, or, when that came first, at the change.
        let refused = if a.status == 401 { &a } else { &b };
        assert!(
            refused.body.contains("no longer exists")
                || refused.body.contains("is no longer assigned")
                || refused.body.contains("is no longer a global admin")
                || refused.body.contains("Only global admins"),
            "{}",
            refused.body
        );
    }
}

/// Users can be changed (an addition): name, password and admin flag. A new password ends
/// the user's tokens; an admin cannot take his own rights.
#[tokio::test]
async fn users_can_be_changed() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let memb = member(&server, &admin, "memb", "proj_a", false).await;
    memb.get("auth").await.expect(200);
    // A new name: the answer is the user as it is now.
    let renamed = admin
        .put("user", &json!({"id": "memb", "name": "Renamed Member"}))
        .await
        .expect(200)
        .json();
    assert_eq!(renamed["name"], "Renamed Member");
    assert_eq!(renamed["projects"][0]["project_id"], "proj_a");
    memb.get("auth").await.expect(200);
    // A new password: the old one and the old token no longer work.
    admin
        .put("user", &json!({"id": "memb", "password": "another_secret"}))
        .await
        .expect(200);
    let refused = memb.get("auth").await.expect(401);
    assert!(
        refused
            .body
            .contains("or its password was changed: log in again"),
        "{}",
        refused.body
    );
    server
        .client()
        .post("token", &json!({"id": "memb", "password": "password1"}))
        .await
        .expect(401);
    let memb = server.login("memb", "another_secret").await;
    admin.get("user/all").await.expect(200);
    memb.get("user/all").await.expect(401);
    // Made a global admin, the token it has may do what admins do at its next request.
    admin
        .put("user", &json!({"id": "memb", "is_admin": true}))
        .await
        .expect(200);
    memb.get("user/all").await.expect(200);
    // Refusals: members, nothing to change, an unknown user, bad values, one's own rights.
    let other = member(&server, &admin, "other", "proj_a", false).await;
    other
        .put("user", &json!({"id": "memb", "name": "Nope Nope"}))
        .await
        .expect(401);
    let nothing = admin.put("user", &json!({"id": "memb"})).await.expect(400);
    assert!(
        nothing.body.starts_with("Nothing to change"),
        "{}",
        nothing.body
    );
    admin
        .put("user", &json!({"id": "nobody", "name": "Some Name"}))
        .await
        .expect(404);
    admin
        .put("user", &json!({"id": "memb", "password": "short"}))
        .await
        .expect(400);
    let own = memb
        .put("user", &json!({"id": "memb", "is_admin": false}))
        .await
        .expect(409);
    assert!(own.body.contains("his own admin rights"), "{}", own.body);
    // Another admin may take them.
    admin
        .put("user", &json!({"id": "memb", "is_admin": false}))
        .await
        .expect(200);
    memb.get("user/all").await.expect(401);
}

/// A write while another program keeps the database locked fails once the busy timeout
/// (10 s, after at most as long for a free connection) is over, with a 500 that says so;
/// its entry goes to the server log, and to the error log only while it can be written
/// (that write waited another 10 s for the lock). A request refused for its input gets its
/// 400 (the server log notes the audit entry it could not write).
#[tokio::test]
async fn a_database_locked_by_another_program_is_named_in_the_500() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let lock = common::DatabaseLock::take(&server.data_dir).await;

    // Three times as many writes as the server has write connections: a write waits 10 s
    // at most for a connection, then 10 s at most for the lock (without the first bound,
    // the third eight answered after 30 s).
    let mut error_ids = Vec::new();
    let mut within_busy_timeout = 0;
    let writes = new_projects_at_once(&server, &admin, "locked", 24);
    // A request refused for its input gets its 400, not the 500 of its audit entry.
    let mut invalid_writer = server.client();
    invalid_writer.token = admin.token.clone();
    let invalid = tokio::spawn(async move {
        let too_short = json!({"id": "x", "name": "Too short an id"});
        invalid_writer.post("project", &too_short).await
    });
    for write in writes {
        let (refused, waited) = write.await.unwrap();
        let refused = refused.expect(500);
        assert!(
            refused.body.contains(
                "the server's database is locked by another program (a sqlite3 shell or a \
                 backup tool, say); try again once it is released."
            ),
            "{}",
            refused.body
        );
        assert!(
            waited >= Duration::from_secs(9) && waited < Duration::from_secs(25),
            "answered after {waited:?}"
        );
        if waited < Duration::from_secs(15) {
            within_busy_timeout += 1;
        }
        assert!(
            refused.body.contains(", in the server log only)"),
            "{}",
            refused.body
        );
        error_ids.push(refused.body.split("error id ").nth(1).unwrap()[..36].to_owned());
    }
    // At least those that had a connection at once.
    assert!(within_busy_timeout >= 8, "{within_busy_timeout}");
    let refused = invalid.await.unwrap().expect(400);
    assert!(refused.body.contains("'id'"), "{}", refused.body);
    server.wait_until_logged(&["the audit log misses POST v1.0alpha/project by 'asdf', refused"]);
    let error_id = &error_ids[0];
    server.wait_until_logged(&[error_id, "not in the error log: the database is locked"]);

    // Released, the same request goes through.
    lock.release().await;
    admin
        .post("project", &json!({"id": "locked", "name": "Locked"}))
        .await
        .expect(200);
    let log = admin.get("error_log?page=0").await.expect(200);
    for error_id in &error_ids {
        assert!(!log.body.contains(error_id), "{}", log.body);
    }
}

/// While writes wait for a database that another program locks, reads and logins go on at
/// once: the waiting writes held every connection of the pool, and a list or a login waited
/// for one as long as they did.
#[tokio::test]
async fn reads_go_on_while_writes_wait_for_a_locked_database() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let lock = common::DatabaseLock::take(&server.data_dir).await;
    let writes = new_projects_at_once(&server, &admin, "waiting", 12);
    // All of them are waiting for the lock by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        let asked = std::time::Instant::now();
        admin.get("project/all").await.expect(200);
        admin.get("user/all").await.expect(200);
        server.admin().await;
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "reads took {:?}",
            asked.elapsed()
        );
    }
    lock.release().await;
    for write in writes {
        write.await.unwrap().0.expect(200);
    }
    let listed = admin.get("project/all").await.expect(200).body;
    assert_eq!(listed.matches("\"waiting").count(), 12, "{listed}");
}

/// `count` requests at once of `admin` to create the projects `<prefix>0`, `<prefix>1`, …;
/// each answers with its time from now.
fn new_projects_at_once(
    server: &TestServer,
    admin: &common::Client,
    prefix: &str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<(common::Resp, Duration)>> {
    let asked = std::time::Instant::now();
    (0..count)
        .map(|i| {
            let mut writer = server.client();
            writer.token = admin.token.clone();
            let body = json!({"id": format!("{prefix}{i}"), "name": "Newly made"});
            tokio::spawn(async move {
                let answer = writer.post("project", &body).await;
                (answer, asked.elapsed())
            })
        })
        .collect()
}

/// A token that an older version issued, without the tag of its assignment, is refused
/// saying so (it was refused as if its user had been taken out of the project and put
/// back); the Rust SDK logs in again on that answer (a unit test of its client).
#[tokio::test]
async fn tokens_of_older_versions_are_refused_saying_so() {
    use base64::Engine as _;
    use hanami_auth::{Tags, TokenKey, account_tag};
    let server = TestServer::start();
    let mut admin = server.admin().await;
    let fresh = admin.token.clone().unwrap();
    let payload = fresh.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let caller = serde_json::from_str(claims["user"].as_str().unwrap()).unwrap();
    let store = hanami_store::Store::open(&server.data_dir.join("hanami.db"))
        .await
        .unwrap();
    let record = store.user_record(ADMIN).await.unwrap().unwrap();
    let key = TokenKey::load_or_create(&server.data_dir.join("token.key"), Duration::from_secs(60))
        .unwrap();
    let old = Tags {
        account: account_tag(&record.pw_hash),
        assignment: String::new(),
    };
    admin.token = Some(key.issue(&caller, &old));
    let refused = admin.get("auth").await.expect(401);
    let outdated = format!("{}: log in again", hanami_types::auth::OUTDATED_TOKEN);
    assert!(refused.body.ends_with(&outdated), "{}", refused.body);
    // So is one of versions before the account's tag (it read as a deleted user's).
    let older = Tags {
        account: String::new(),
        assignment: String::new(),
    };
    admin.token = Some(key.issue(&caller, &older));
    let refused = admin.get("auth").await.expect(401);
    assert!(refused.body.ends_with(&outdated), "{}", refused.body);
    // The same token with the tag is let in (the key and claims are right).
    let tags = Tags {
        assignment: hanami_auth::assignment_tag(&record.pw_hash, None),
        ..old
    };
    admin.token = Some(key.issue(&caller, &tags));
    admin.get("auth").await.expect(200);
}
