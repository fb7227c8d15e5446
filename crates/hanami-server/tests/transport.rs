//! Request decoding and the processing pipeline, against the real server.

mod common;

use common::{ServerExt, TestServer, launch_with_config, read_until_closed_by_timeout};
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn methods_paths_and_endpoints() {
    let server = TestServer::start();
    let admin = server.admin().await;

    for method in ["HEAD", "OPTIONS", "PATCH"] {
        let resp = admin
            .send(method.parse().unwrap(), "project/all", None)
            .await
            .expect(400);
        if method != "HEAD" {
            assert!(
                resp.body
                    .contains(&format!("Invalid request-method '{method}'"))
            );
        }
    }
    let raw = |path: &str| {
        let url = format!("{}{path}", server.url);
        let token = admin.token.clone().unwrap();
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .header("X-Auth-Token", token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(raw("/v1.0").await, (400, "Uri is too short.".into()));
    // An endpoint beyond its length, in the original's words for lengths.
    let long = format!("/v1.0alpha/{}", "a".repeat(246));
    // 256 characters: an unknown endpoint like any other (the policy knows none of it).
    assert_eq!(raw(&long).await.0, 401);
    assert_eq!(
        raw(&format!("{long}a")).await,
        (
            400,
            "Given item 'endpoint' is longer than 256 characters".into()
        )
    );
    // Answers name the server as the original's did, errors as well as successes.
    for path in ["/v1.0alpha/project/all", "/v1.0", "/v1.0alpha/nonexistent"] {
        let answer = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
        assert_eq!(answer.headers()["server"], "ToriiGateway", "{path}");
    }
    // A websocket opening the library refuses is a 400 as well, in the API's form.
    let opening = |method: reqwest::Method, version: &'static str| {
        reqwest::Client::new()
            .request(method, format!("{}/", server.url))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", version)
            .send()
    };
    for (method, version) in [(reqwest::Method::POST, "13"), (reqwest::Method::GET, "99")] {
        let answer = opening(method, version).await.unwrap();
        assert_eq!(answer.status(), 400);
        assert_eq!(answer.headers()["server"], "ToriiGateway");
        let body = answer.text().await.unwrap();
        assert!(body.starts_with("Invalid websocket opening: "), "{body}");
    }
    assert_eq!(raw("/v1.0a").await.0, 401);
    assert_eq!(raw("/v1.0alpha/project/all/").await.0, 401);
    assert_eq!(
        admin.get("nonexistent").await.expect(401).body,
        "Access denied by policy"
    );
    assert!(
        admin
            .get("clus-ter")
            .await
            .expect(400)
            .body
            .contains("'endpoint'")
    );
    assert_eq!(
        admin.get("request_result").await.expect(400).body,
        "No endpoint found for path 'v1.0alpha/request_result' and type GET"
    );
    assert!(
        admin
            .get("project/all?foo=bar")
            .await
            .expect(400)
            .body
            .contains("'foo'")
    );

    // A GET body is ignored; responses are JSON.
    let resp = admin
        .send(
            reqwest::Method::GET,
            "project/all",
            Some("{\"x\":1}".into()),
        )
        .await
        .expect(200);
    assert_eq!(resp.content_type, "application/json");
    assert_eq!(
        resp.json()["header"],
        json!(["created_at", "id", "name", "creator_id"])
    );
}

#[tokio::test]
async fn tokens_in_the_header() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let mut anonymous = server.client();
    // The original's text, and why (it said no more for any refused token).
    let missing = "Failed to validate JWT-Token: no token was sent (in the X-Auth-Token header)";
    assert_eq!(anonymous.get("project/all").await.expect(401).body, missing);
    anonymous.token = Some(String::new());
    assert_eq!(anonymous.get("project/all").await.expect(401).body, missing);
    anonymous.token = Some("abc.def.ghi".into());
    assert_eq!(
        anonymous.get("project/all").await.expect(401).body,
        "Failed to validate JWT-Token"
    );
    anonymous.token = Some("abc$def".into());
    assert!(
        anonymous
            .get("project/all")
            .await
            .expect(400)
            .body
            .contains("'token'")
    );
    anonymous.token = Some("abc.def.ghi".into());
    anonymous.get("project/all").await.expect(401);

    // Header names are case-insensitive.
    let resp = reqwest::Client::new()
        .get(format!("{}/v1.0alpha/project/all", server.url))
        .header("x-auth-token", admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn bodies_and_queries() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let send = |body: &'static str| admin.send(reqwest::Method::POST, "project", Some(body.into()));
    assert!(
        send("{not json")
            .await
            .expect(400)
            .body
            .contains("json-parser error")
    );
    send("").await.expect(400);
    assert!(
        send("[1, 2]")
            .await
            .expect(400)
            .body
            .contains("JSON object")
    );
    send("42").await.expect(400);
    assert!(
        send(r#"{"id": 12345, "name": "abcd"}"#)
            .await
            .expect(400)
            .body
            .contains("'id' has the wrong type")
    );

    // Query values override body keys.
    let resp = admin
        .post(
            "project?name=qname",
            &json!({"id": "qproj", "name": "bodyname"}),
        )
        .await
        .expect(200);
    assert_eq!(resp.json()["name"], "qname");

    // Integers beyond 64 bit in the query are a 400, not a crash.
    // Said as out of range, as in a body.
    let beyond = admin
        .get("audit_log?page=99999999999999999999")
        .await
        .expect(400);
    assert!(
        beyond.body.contains("'page' is bigger than"),
        "{}",
        beyond.body
    );
    admin.get("audit_log?page=99999999999").await.expect(400);
    admin.get("audit_log?page=0").await.expect(200);

    // Oversize bodies are refused with a 400 and the server keeps working.
    let big = format!(r#"{{"id":"bigbody","name":"{}"}}"#, "a".repeat(1_200_000));
    let resp = admin
        .send(reqwest::Method::POST, "project", Some(big))
        .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(
        resp.body,
        "Request body is larger than the limit of 1048576 bytes (the server's max_body_bytes; \
         a cluster template travels base64-encoded in it, so templates of up to 767 KiB fit)"
    );
    // The connection closes after the answer (not all of a body far beyond the limit is
    // read), and the answer says so (a client that sent its next request on it found it
    // closed under it).
    assert_eq!(resp.connection.as_deref(), Some("close"));
    let next = admin.get("project/all").await.expect(200);
    assert_eq!(next.connection, None);
    // A client still sending a body well beyond the limit reads the refusal too: the rest
    // is read and dropped first (the connection broke under its writes, and the SDK
    // reported a broken pipe instead of the reason).
    let client = common::sdk(&server, common::ADMIN, common::ADMIN_PW).await;
    for size in [1_500_000, 3_000_000, 10_000_000] {
        let template = format!("version: 1\n#{}\n", "x".repeat(size));
        match client.create_cluster("big_template", &template).await {
            Err(hanami_sdk::Error::BadRequest(message)) => {
                assert!(
                    message.starts_with("Request body is larger than the limit"),
                    "{message}"
                );
            }
            other => panic!("{size}: {other:?}"),
        }
    }
    // An argument that makes the URL too long is the SDK's `UnsendableUrl` in a few words
    // (it was a connection failure whose text quoted all 70,000 characters), and so is an
    // address that cannot be one.
    match client.dataset(&"a".repeat(70_000)).await {
        Err(error @ hanami_sdk::Error::UnsendableUrl(_)) => {
            let message = error.to_string();
            assert!(
                message.starts_with(
                    "invalid argument: cannot send the request: the server's address or an \
                     argument makes its URL invalid or too long"
                ) && message.len() < 300,
                "{}",
                &message[..message.len().min(300)]
            )
        }
        other => panic!("{:.300}", format!("{other:?}")),
    }
    match hanami_sdk::Client::login("http://[::1", common::ADMIN, common::ADMIN_PW).await {
        Err(hanami_sdk::Error::UnsendableUrl(cause)) => assert!(cause.len() < 300, "{cause}"),
        other => panic!("{other:?}"),
    }
    // So is one whose announced length is beyond the limit, without waiting for the header
    // timeout (it did): a body that does not come is waited for a second at most, one far
    // beyond the limit not at all, and a client that waits for a go (`Expect:
    // 100-continue`) gets the refusal instead (reading the body would give the go).
    let token = admin.token.clone().unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    for (length, expect) in [
        ("2097152", ""),
        ("99999999999999", ""),
        ("2097152", "Expect: 100-continue\r\n"),
    ] {
        let request = format!(
            "POST /v1.0alpha/project HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             X-Auth-Token: {token}\r\nContent-Length: {length}\r\n{expect}\r\n{{}}"
        );
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer),
        )
        .await
        .expect("an answer before the header timeout")
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.contains("Request body is larger than the limit of 1048576 bytes"),
            "{answer}"
        );
    }

    // A body field named "token" never reaches a handler.
    admin
        .post(
            "project",
            &json!({"id": "tokproj", "name": "Tok Proj", "token": "x"}),
        )
        .await
        .expect(200);

    // A coding the server does not decode is refused, not read as plain text.
    let body = r#"{"id": "coded", "name": "Coded"}"#;
    for coding in [
        format!(
            "Transfer-Encoding: gzip, chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        ),
        format!(
            "Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    ] {
        let request = format!(
            "POST /v1.0alpha/project HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             X-Auth-Token: {token}\r\n{coding}"
        );
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("'gzip' is not supported"), "{answer}");
    }
    // Plain codings named as such are fine.
    let named = reqwest::Client::new()
        .post(format!("{}/v1.0alpha/project", server.url))
        .header("X-Auth-Token", &token)
        .header("Content-Encoding", "identity")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 200);
}

#[tokio::test]
async fn a_server_error_is_logged_with_an_id_that_the_response_carries() {
    let server = TestServer::start();
    let admin = server.admin().await;
    admin
        .post("project", &json!({"id": "first", "name": "First"}))
        .await
        .expect(200);

    // Break the database from outside: every state-changing request writes the audit log.
    common::change_database(&server.data_dir, "DROP TABLE audit_log", &[]).await;

    // A valid request (one refused for its input gets its 400 first) that carries a secret.
    let resp = admin
        .post(
            "user",
            &json!({"id": "second", "name": "Second", "password": "secret12",
                    "is_admin": false}),
        )
        .await
        .expect(500);
    let id = resp
        .body
        .split("error id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no error id in {:?}", resp.body))
        .to_owned();
    assert_eq!(id.len(), 36);

    let log = admin
        .get("error_log?page=0&user_id=asdf")
        .await
        .expect(200)
        .json();
    let row = log["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[5].as_str().unwrap().contains(&id))
        .expect("error log entry with the id");
    assert_eq!(row[4]["id"], "second");
    assert!(row[4].get("password").is_none(), "passwords are not logged");
    assert!(row[5].as_str().unwrap().contains("audit_log"));
    // Without user_id the admin sees every entry.
    let all = admin.get("error_log?page=0").await.expect(200).json();
    assert_eq!(all["body"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn one_cpu_host() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let hosts = admin.get("host/all").await.expect(200).json();
    assert_eq!(hosts["header"], json!(["uuid", "type"]));
    let rows = hosts["body"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "cpu");
    assert_eq!(rows[0][0].as_str().unwrap().len(), 36);
    admin.get("host/all?x=1").await.expect(400);
    // The host keeps its uuid across restarts.
    let uuid = rows[0][0].clone();
    let server = server.restart();
    let hosts = server
        .admin()
        .await
        .get("host/all")
        .await
        .expect(200)
        .json();
    assert_eq!(hosts["body"][0][0], uuid);
}

#[tokio::test]
async fn connections_that_do_not_send_their_headers_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = launch_with_config(tmp.path(), "header_timeout = 1\n")
        .0
        .start();
    let address = server.url.trim_start_matches("http://").to_owned();
    // One connection sends nothing, one the start of a request, one the start of an HTTP/2
    // preface (whose version hyper would wait for without end), and then nothing.
    for start in [
        &b""[..],
        b"GET /v1.0alpha/host/all HTTP/1.1\r\nHost: x\r\n",
        b"P",
        b"PRI * HTTP/2.0\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(start).await.unwrap();
        let (read, rest) = read_until_closed_by_timeout(stream).await;
        assert!(read.is_ok() || rest.is_empty(), "{read:?}");
    }
    // A body announced and not sent is not waited for either.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /v1.0alpha/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"id\":",
        )
        .await
        .unwrap();
    let (read, answer) = read_until_closed_by_timeout(stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok()
            && answer.starts_with("HTTP/1.1 400")
            && answer.ends_with("The request body did not arrive within 1 s"),
        "{read:?} {answer}"
    );
    // The whole HTTP/2 preface is refused at once: the server speaks HTTP/1.1 only.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_millis(800),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
    )
    .await;
    assert!(closed.is_ok(), "an HTTP/2 connection was kept");
    // A request that starts with a P is no HTTP/2 preface.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /v1.0alpha/token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer)
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // Complete requests are answered as before.
    let admin = server.admin().await;
    admin.get("host/all").await.expect(200);
}

#[tokio::test]
async fn a_client_holds_a_limited_number_of_connections() {
    use tokio::io::AsyncReadExt;
    const REFUSAL: &str =
        "Too many connections from this client's address at once; close some and try again.";
    let tmp = tempfile::tempdir().unwrap();
    let server = launch_with_config(tmp.path(), "max_connections_per_client = 3\n")
        .0
        .start();
    let address: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    // Four connections from one address that send nothing: the server keeps three (in the
    // order its tasks take them) and tells the fourth why it closes it (after a second in
    // which a request's head could have come).
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let reads = futures_util::future::join_all(open.into_iter().map(|mut stream| async move {
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(4),
            stream.read_to_end(&mut answer),
        )
        .await;
        (
            closed.is_ok(),
            String::from_utf8_lossy(&answer).into_owned(),
            stream,
        )
    }))
    .await;
    let mut kept = Vec::new();
    for (closed, answer, stream) in reads {
        if closed {
            assert!(
                answer.starts_with("HTTP/1.1 429") && answer.ends_with(REFUSAL),
                "{answer}"
            );
        } else {
            kept.push(stream);
        }
    }
    assert_eq!(kept.len(), 3);
    assert!(server.logged().contains("max_connections_per_client"));
    // HTTP clients that send their request at once get the answer too, whether or not they
    // send a body (here as large as a body may be by default).
    let url = format!("{}/v1.0alpha/host/all", server.url);
    let here = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .build()
        .unwrap();
    for attempt in 0..9 {
        let request = match attempt % 3 {
            2 => here.post(&url).body(vec![b'x'; 1 << 20]),
            _ => here.get(&url),
        };
        let answer = request.send().await.expect("an answer");
        assert_eq!(answer.status(), 429);
        assert_eq!(answer.text().await.unwrap(), REFUSAL);
    }
    // Another address is served.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    assert_eq!(other.get(&url).send().await.unwrap().status(), 401);
    // A connection that closes makes room for another.
    drop(kept.pop());
    common::eventually(std::time::Duration::from_secs(10), || async {
        match here.get(&url).send().await {
            Ok(answer) if answer.status() == 401 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn clients_that_close_their_sending_side_after_a_request_are_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let server = launch_with_config(tmp.path(), "").0.start();
    let address = server.url.trim_start_matches("http://").to_owned();
    let send_and_half_close = async |request: &[u8]| {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(request).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
        )
        .await
        .expect("the server neither answered nor closed")
        .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    // A login takes a while (the password hash), so the end of the stream comes first.
    let login =
        json!({"id": hanami_testkit::ADMIN, "password": hanami_testkit::ADMIN_PW}).to_string();
    for version in ["1.1", "1.0"] {
        let request = format!(
            "POST /v1.0alpha/token HTTP/{version}\r\nHost: x\r\nContent-Length: {}\r\n\r\n{login}",
            login.len()
        );
        let answer = send_and_half_close(request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/{version} 200")) && answer.contains("\"token\""),
            "{answer}"
        );
    }
    // Headers cut short by the end of the stream get no answer, and are not waited for.
    let answer = send_and_half_close(b"GET /v1.0alpha/host/all HTTP/1.1\r\nHost: x\r\n").await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn log_entries_older_than_the_retention_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, _) = launch_with_config(tmp.path(), "log_retention_days = 30\n");
    let mut server = launched.data_dir(&tmp.path().join("data")).start();
    let admin = server.admin().await;
    for id in ["proj_old", "proj_new"] {
        admin
            .post("project", &json!({"id": id, "name": "Some Project"}))
            .await
            .expect(200);
    }
    assert!(server.stop());
    // Age the first entry by a year, as if the server had run that long ago.
    let url = format!("sqlite://{}", server.data_dir.join("hanami.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE audit_log SET created_at = '2025-01-01 00:00:00' \
         WHERE seq = (SELECT MIN(seq) FROM audit_log)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let server = launch_with_config(tmp.path(), "log_retention_days = 30\n")
        .0
        .data_dir(&server.data_dir)
        .start();
    // The aged entry goes at the start (the sweep runs beside the first requests); the
    // recent one stays.
    let admin = server.admin().await;
    let mut log = serde_json::Value::Null;
    for _ in 0..50 {
        log = admin
            .get(&format!("audit_log?page=0&user_id={}", common::ADMIN))
            .await
            .expect(200)
            .json();
        if log["body"].as_array().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let body = log["body"].as_array().unwrap();
    assert_eq!(body.len(), 1, "{log}");
    assert_ne!(body[0][0], "2025-01-01 00:00:00", "{log}");
}

/// A websocket session start that the server cannot complete (its database could not
/// check the token: out of file descriptors, here simulated) is refused with a 500's words,
/// which the SDK reports as `Internal` (it was an empty refusal, reported as a conflict),
/// and the error log has the entry.
#[tokio::test]
async fn a_session_start_the_server_fails_is_refused_as_a_500_would_be() {
    let server = common::launch()
        .env("HANAMI_FAIL_AT", "session:caller")
        .start();
    let client = hanami_sdk::Client::login(&server.url, common::ADMIN, common::ADMIN_PW)
        .await
        .unwrap();
    match client.direct_session("any-cluster").await {
        Err(hanami_sdk::Error::Internal(message)) => assert!(
            message.starts_with("Internal server error (error id ")
                && message.contains("it has run out of file descriptors (too many open files)"),
            "{message}"
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let admin = server.admin().await;
    let log = admin.get("error_log?page=0").await.expect(200).json();
    let entries = log["body"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|row| row[5].as_str().unwrap().contains("Too many open files")),
        "{log}"
    );
}
