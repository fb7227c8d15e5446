//! A server that stops answering makes calls fail after the answer timeout instead of
//! waiting forever. The "server" here is a few lines on a loopback port that answer the login
//! and then stay silent (over HTTP, or inside a websocket session); the real server always
//! answers, so it cannot show this.

use std::time::{Duration, Instant};

use hanami_sdk::{Client, ConnectOptions, Error, Stall};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const LOGIN: &str = r#"{"id":"asdf","name":"asdf","is_admin":true,"token":"t"}"#;

/// Serves connections on a loopback port: a login request gets a token, any other HTTP
/// request gets nothing, and a websocket session is opened but never answered. Returns the
/// address.
async fn half_dead_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(stream));
        }
    });
    address
}

async fn serve(mut stream: TcpStream) {
    let mut head = [0u8; 512];
    let seen = stream.peek(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..seen]).to_string();
    if head.contains("Upgrade: websocket") || head.contains("upgrade: websocket") {
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        // Take the session's first message; for the uuid `reads-nothing` open the session
        // and then read nothing more, else keep the socket open without a reply.
        let init = futures_util::StreamExt::next(&mut socket).await;
        let opened = init.is_some_and(|m| m.is_ok_and(|m| m.to_string().contains("reads-nothing")));
        if opened {
            let reply = Message::binary(br#"{"success":true,"uuid":"s"}"#.to_vec());
            futures_util::SinkExt::send(&mut socket, reply)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    } else if head.starts_with("POST /v1.0alpha/token") {
        let mut request = vec![0u8; 4096];
        let _ = stream.read(&mut request).await.unwrap();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{LOGIN}",
            LOGIN.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        // Keep the connection for the client's next request, which gets no answer.
        tokio::time::sleep(Duration::from_secs(60)).await;
    } else {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// A client logged in to a fresh [`half_dead_server`], with an answer timeout of 1 s.
async fn client_of_a_half_dead_server() -> Client {
    let options = ConnectOptions {
        answer_timeout: Duration::from_secs(1),
        ..ConnectOptions::default()
    };
    Client::login_with(&half_dead_server().await, "asdf", "asdfasdf", &options)
        .await
        .unwrap()
}

/// Runs `call` and checks that it failed after about `seconds`, not before and not long after.
async fn fails_after<T>(
    seconds: u64,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Error {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(seconds + 10), call)
        .await
        .expect("the call ends by itself");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(seconds * 1000 - 200)
            && took < Duration::from_secs(seconds + 5),
        "{took:?}"
    );
    match result {
        Ok(_) => panic!("the server never answered, yet the call succeeded"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn an_http_answer_that_never_comes_fails_after_the_answer_timeout() {
    let client = client_of_a_half_dead_server().await;
    let error = fails_after(1, client.projects()).await;
    assert!(
        matches!(&error, Error::Transport(e) if e.is_timeout()),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_websocket_answer_that_never_comes_fails_after_the_answer_timeout() {
    let client = client_of_a_half_dead_server().await;
    let error = fails_after(1, client.direct_session("c")).await;
    assert!(
        matches!(
            &error,
            Error::SessionTimeout { stall: Stall::Answer, waited } if *waited == Duration::from_secs(1)
        ) && error.to_string().contains("did not answer within"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_stops_reading_fails_a_send_after_the_answer_timeout() {
    let client = client_of_a_half_dead_server().await;
    let mut session = client.direct_session("reads-nothing").await.unwrap();
    // One message far larger than any socket buffer (within the server's 16 MiB per
    // message, which the client checks first): its send cannot complete.
    let values = vec![1.0f32; 4_000_000];
    let error = fails_after(1, session.request(&[("x", &values)])).await;
    assert!(
        matches!(
            &error,
            Error::SessionTimeout { stall: Stall::Sending, waited } if *waited == Duration::from_secs(1)
        ) && error.to_string().contains("took nothing in"),
        "{error:?}"
    );
}

/// Where nothing listens, the error's text says so (reqwest's own text names only the
/// request; the cause is in its sources).
#[tokio::test]
async fn a_refused_connection_says_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let refused = Client::login(&address, "asdf", "asdfasdf")
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        matches!(refused, Error::Transport(_))
            && text.starts_with("connection to the server failed: ")
            && text.contains("Connection refused"),
        "{text}"
    );
}
