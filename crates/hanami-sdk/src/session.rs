//! Websocket sessions with the server, as uploads and direct IO open them: the start with
//! its token, the messages each way with their timeouts, and what the server's refusals
//! and close reasons mean as errors.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hanami_types::websocket::{SessionInit, SessionReply};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::client::session_token_expired;
use crate::{CONNECT_TIMEOUT, Client, Error, Result, Stall};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_err(e: impl std::fmt::Display) -> Error {
    Error::WebSocket(e.to_string())
}

/// The error of a websocket opening: one the server answered with a status instead of the
/// switch (a 429 while too many sessions of the client wait for their start, say) as the
/// REST calls report that status, with the server's text; a redirect (not followed, as
/// for REST calls) names its target.
fn opening_err(e: tokio_tungstenite::tungstenite::Error) -> Error {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(response)
            if response.status().is_redirection() =>
        {
            crate::client::redirect_error(response.status().as_u16(), response.headers())
        }
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default();
            Error::from_status(response.status().as_u16(), body)
        }
        other => ws_err(other),
    }
}

impl Client {
    /// Opens a websocket session for `target` (`file_upload` or `cluster`) and `uuid`; an
    /// expired token is renewed once, as in [`Client::call`].
    pub(crate) async fn open_session(&self, target: &str, uuid: &str) -> Result<Socket> {
        let token = self.token();
        let mut opened = self.try_session(target, uuid, &token).await?;
        if let Err(reason) = &opened
            && session_token_expired(reason)
            && self.renew(&token).await?
        {
            opened = self.try_session(target, uuid, &self.token()).await?;
        }
        opened.map_err(|reason| refused_start(&reason))
    }

    /// Opens a session with `token`: the socket, or the reason the server refused it.
    async fn try_session(
        &self,
        target: &str,
        uuid: &str,
        token: &str,
    ) -> Result<std::result::Result<Socket, String>> {
        let url = self.websocket_url();
        let connector = url
            .starts_with("wss://")
            .then(|| Connector::Rustls(self.tls.clone()));
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, true, connector);
        // The server may hold an opening until one of the client's other sessions has
        // started (up to its header_timeout): give it as long as an answer.
        let limit = self.answer_timeout.max(CONNECT_TIMEOUT);
        let (mut socket, _) = tokio::time::timeout(limit, connect)
            .await
            .map_err(|_| Error::SessionTimeout {
                stall: Stall::Opening { url: url.clone() },
                waited: limit,
            })?
            .map_err(opening_err)?;
        let init = SessionInit {
            token: token.to_owned(),
            target: target.to_owned(),
            uuid: uuid.to_owned(),
        };
        let text = serde_json::to_string(&init).map_err(ws_err)?;
        send(&mut socket, Message::text(text), self.answer_timeout).await?;
        let reply = next_binary(&mut socket, self.answer_timeout).await?;
        let reply: SessionReply = serde_json::from_slice(&reply)
            .map_err(|e| Error::Protocol(format!("session reply: {e}")))?;
        if !reply.success {
            return Ok(Err(reply.error.unwrap_or_default()));
        }
        Ok(Ok(socket))
    }
}

/// The error of a session start the server refused for `reason`, as the REST calls report
/// such refusals: a failure of the server (500), an invalid token or a role the policy
/// refuses (401), an unknown target (404), anything else (a cluster not in DIRECT mode, all
/// sessions of its target taken) as a conflict (409).
fn refused_start(reason: &str) -> Error {
    let reason = reason.to_owned();
    if reason.starts_with(hanami_types::websocket::INTERNAL_ERROR) {
        Error::Internal(reason)
    } else if reason.starts_with("Token invalid")
        || reason == hanami_types::websocket::POLICY_DENIED
    {
        Error::Unauthorized(reason)
    } else if reason.contains(" not found") {
        Error::NotFound(reason)
    } else {
        Error::Conflict(reason)
    }
}

/// The error of a session the server closed for `reason`: its cluster deleted or its upload
/// gone, its upload being finalised, access withdrawn or denied, and the server stopping, as
/// the REST calls report them (404, 409, 401, 503), anything else (a refused message) as
/// [`Error::SessionClosed`].
pub(crate) fn closed_because(reason: &str) -> Error {
    use hanami_types::websocket::{
        CLOSED_ACCESS_WITHDRAWN, CLOSED_CLUSTER_DELETED, CLOSED_SHUTTING_DOWN,
        CLOSED_UPLOAD_FINALISING, CLOSED_UPLOAD_GONE, POLICY_DENIED,
    };
    if reason == CLOSED_SHUTTING_DOWN {
        // A passing state of the server: a REST call gets a 503 with these words meanwhile.
        Error::Status {
            status: 503,
            body: reason.to_owned(),
        }
    } else if reason == CLOSED_CLUSTER_DELETED || reason == CLOSED_UPLOAD_GONE {
        Error::NotFound(reason.to_owned())
    } else if reason == CLOSED_UPLOAD_FINALISING {
        Error::Conflict(reason.to_owned())
    } else if reason.starts_with(CLOSED_ACCESS_WITHDRAWN) || reason == POLICY_DENIED {
        Error::Unauthorized(reason.to_owned())
    } else {
        Error::SessionClosed(reason.to_owned())
    }
}

/// Sends one message; fails if the server takes in nothing for `timeout` (it stopped
/// reading, and the connection's buffers are full).
pub(crate) async fn send(socket: &mut Socket, message: Message, timeout: Duration) -> Result<()> {
    tokio::time::timeout(timeout, socket.send(message))
        .await
        .map_err(|_| Error::SessionTimeout {
            stall: Stall::Sending,
            waited: timeout,
        })?
        .map_err(ws_err)
}

/// The next binary message, skipping pings; fails if the server sends nothing for `timeout`.
pub(crate) async fn next_binary(
    socket: &mut Socket,
    timeout: Duration,
) -> Result<prost::bytes::Bytes> {
    loop {
        let next = tokio::time::timeout(timeout, socket.next())
            .await
            .map_err(|_| Error::SessionTimeout {
                stall: Stall::Answer,
                waited: timeout,
            })?;
        match next {
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) if !frame.reason.is_empty() => {
                return Err(closed_because(frame.reason.as_str()));
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(Error::WebSocket("the server closed the session".into()));
            }
            Some(Ok(other)) => {
                return Err(Error::Protocol(format!(
                    "unexpected websocket message: {other:?}"
                )));
            }
            Some(Err(e)) => return Err(ws_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hanami_types::websocket::{
        CLOSED_CLUSTER_DELETED, CLOSED_SHUTTING_DOWN, CLOSED_UPLOAD_FINALISING, CLOSED_UPLOAD_GONE,
        POLICY_DENIED,
    };

    /// What is gone is a 404, an upload being finalised a 409, lost access a 401, as the
    /// REST calls say; the rest is the session's own failure.
    #[test]
    fn close_reasons_map_to_the_errors_of_the_rest_calls() {
        for gone in [CLOSED_UPLOAD_GONE, CLOSED_CLUSTER_DELETED] {
            assert!(matches!(closed_because(gone), Error::NotFound(m) if m == gone));
        }
        assert!(matches!(
            closed_because(CLOSED_UPLOAD_FINALISING),
            Error::Conflict(m) if m == CLOSED_UPLOAD_FINALISING
        ));
        assert!(matches!(
            closed_because("access withdrawn: the user left the project"),
            Error::Unauthorized(_)
        ));
        assert!(matches!(
            closed_because(POLICY_DENIED),
            Error::Unauthorized(_)
        ));
        assert!(matches!(
            closed_because(CLOSED_SHUTTING_DOWN),
            Error::Status { status: 503, body } if body == CLOSED_SHUTTING_DOWN
        ));
        assert!(matches!(
            closed_because("no chunk for 600 s"),
            Error::SessionClosed(m) if m == "no chunk for 600 s"
        ));
    }
}
