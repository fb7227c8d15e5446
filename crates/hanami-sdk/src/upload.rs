//! Sending a file into an upload's temporary file over a websocket session.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hanami_types::datasets::UPLOAD_CHUNK_SIZE;
use hanami_types::websocket::proto::{FileUploadMessage, FileUploadResponseMessage};
use hanami_types::websocket::{SessionInit, SessionReply, TARGET_FILE_UPLOAD};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::client::session_token_expired;
use crate::{CONNECT_TIMEOUT, Client, Error, Result};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_err(e: impl std::fmt::Display) -> Error {
    Error::WebSocket(e.to_string())
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
        opened
            .map_err(|reason| Error::WebSocket(format!("the server refused the session: {reason}")))
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
        let (mut socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                Error::WebSocket(format!(
                    "no websocket connection to {url} within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(ws_err)?;
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

    /// Sends a local file of `size` bytes (as announced to the server) into the temporary
    /// file `file_uuid` of an upload, in 128 KiB chunks; the server answers each chunk, and
    /// `sent` gets the bytes stored so far. A file whose size changed since it was announced
    /// is an [`Error::File`] at once (the server would wait for the missing bytes).
    pub async fn upload_file(
        &self,
        file_uuid: &str,
        path: &Path,
        size: u64,
        sent: &mut (dyn FnMut(u64) + Send),
    ) -> Result<()> {
        let file_err = |source| Error::File {
            path: path.display().to_string(),
            source,
        };
        // One read of the whole file; chunks are then slices of it without copies.
        let content = tokio::fs::read(path).await.map_err(file_err)?;
        if content.len() as u64 != size {
            return Err(file_err(std::io::Error::other(format!(
                "the file changed after its upload began: {size} bytes were announced, it \
                 now holds {}",
                content.len()
            ))));
        }
        let content = prost::bytes::Bytes::from(content);
        let mut socket = self.open_session(TARGET_FILE_UPLOAD, file_uuid).await?;
        // The server answers every chunk in order; keeping a few chunks in flight lets the
        // client prepare the next chunk while the server stores the previous one.
        let mut in_flight = 0usize;
        let mut acknowledged = 0u64;
        let chunk_ends: Vec<usize> = (0..content.len())
            .step_by(UPLOAD_CHUNK_SIZE)
            .map(|start| (start + UPLOAD_CHUNK_SIZE).min(content.len()))
            .collect();
        let mut acks = chunk_ends.iter();
        for (index, &end) in chunk_ends.iter().enumerate() {
            let start = index * UPLOAD_CHUNK_SIZE;
            let chunk = FileUploadMessage {
                position: start as u64,
                data: content.slice(start..end),
            };
            let message = Message::binary(chunk.encode_to_vec());
            send(&mut socket, message, self.answer_timeout).await?;
            in_flight += 1;
            if in_flight == UPLOAD_WINDOW {
                acknowledged = receive_ack(&mut socket, &mut acks, self.answer_timeout).await?;
                sent(acknowledged);
                in_flight -= 1;
            }
        }
        while in_flight > 0 {
            acknowledged = receive_ack(&mut socket, &mut acks, self.answer_timeout).await?;
            sent(acknowledged);
            in_flight -= 1;
        }
        debug_assert_eq!(acknowledged, content.len() as u64);
        let _ = socket.close(None).await;
        Ok(())
    }
}

/// Chunks sent ahead of the server's answers.
const UPLOAD_WINDOW: usize = 4;

/// Waits for the answer to the oldest chunk in flight; returns the bytes stored so far.
async fn receive_ack(
    socket: &mut Socket,
    chunk_ends: &mut std::slice::Iter<'_, usize>,
    timeout: Duration,
) -> Result<u64> {
    let reply = FileUploadResponseMessage::decode(next_binary(socket, timeout).await?)
        .map_err(|e| Error::Protocol(format!("upload reply: {e}")))?;
    if !reply.success {
        return Err(Error::WebSocket(format!(
            "the server refused a chunk: {}",
            reply.error_message
        )));
    }
    let end = chunk_ends
        .next()
        .ok_or_else(|| Error::Protocol("more upload answers than chunks".into()))?;
    Ok(*end as u64)
}

/// Sends one message; fails if the server takes in nothing for `timeout` (it stopped
/// reading, and the connection's buffers are full).
pub(crate) async fn send(socket: &mut Socket, message: Message, timeout: Duration) -> Result<()> {
    tokio::time::timeout(timeout, socket.send(message))
        .await
        .map_err(|_| Error::WebSocket(format!("the server took nothing in for {timeout:?}")))?
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
            .map_err(|_| {
                Error::WebSocket(format!("the server did not answer within {timeout:?}"))
            })?;
        match next {
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) if !frame.reason.is_empty() => {
                return Err(Error::WebSocket(format!(
                    "the server closed the session: {}",
                    frame.reason
                )));
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
