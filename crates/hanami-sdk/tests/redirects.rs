//! A Hanami server never redirects, so the client does not follow redirects: it would send
//! the login's password and the token to wherever one points. The "servers" here are a few
//! lines on loopback ports: one redirects everything to the other, which counts what
//! reaches it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hanami_sdk::{Client, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request on a new port with `answer`; returns the address and how many
/// requests came.
async fn answering(answer: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = stream.read(&mut request).await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            stream.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (address, seen)
}

#[tokio::test]
async fn a_redirect_is_an_error_that_names_its_target_and_is_not_followed() {
    let login = r#"{"id":"asdf","name":"asdf","is_admin":true,"token":"t"}"#;
    let (elsewhere, reached) = answering(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{login}",
        login.len()
    ))
    .await;
    for status in ["301 Moved Permanently", "307 Temporary Redirect"] {
        let (address, _) = answering(format!(
            "HTTP/1.1 {status}\r\nlocation: {elsewhere}/v1.0alpha/token\r\ncontent-length: \
             0\r\nconnection: close\r\n\r\n"
        ))
        .await;
        match Client::login(&address, "asdf", "asdfasdf").await {
            Err(Error::Status { status: code, body }) => {
                assert_eq!(code.to_string(), status[..3]);
                assert!(
                    body.starts_with(&format!(
                        "the server redirects to {elsewhere}/v1.0alpha/token, which a Hanami \
                         server does not do"
                    )),
                    "{body}"
                );
            }
            other => panic!("expected the redirect as an error, got {other:?}"),
        }
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "the password went along");
}

/// A websocket opening answered with a redirect is not followed either: the session start
/// holds the token.
#[tokio::test]
async fn a_redirected_websocket_opening_is_an_error_that_names_its_target() {
    let (elsewhere, reached) = answering(String::from(
        "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ))
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let target = elsewhere.replace("http://", "ws://");
    tokio::spawn(async move {
        let login = r#"{"id":"asdf","name":"asdf","is_admin":true,"token":"t"}"#;
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let read = stream.read(&mut request).await.unwrap();
            let answer = if request[..read].starts_with(b"POST /v1.0alpha/token") {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{login}",
                    login.len()
                )
            } else {
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}/\r\ncontent-length: \
                     0\r\nconnection: close\r\n\r\n"
                )
            };
            stream.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    let client = Client::login(&address, "asdf", "asdfasdf").await.unwrap();
    match client
        .direct_session("8a1b2c3d-0000-4000-8000-123456789abc")
        .await
    {
        Err(Error::Status { status: 307, body }) => assert!(
            body.starts_with(&format!(
                "the server redirects to {}/, which a Hanami server does not do",
                elsewhere.replace("http://", "ws://")
            )),
            "{body}"
        ),
        other => panic!(
            "expected the redirect as an error, got {:?}",
            other.map(drop)
        ),
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "the token went along");
}
