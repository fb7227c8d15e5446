//! Sending a file into an upload's temporary file over a websocket session.

use std::path::Path;
use std::time::Duration;

use hanami_types::datasets::UPLOAD_CHUNK_SIZE;
use hanami_types::websocket::TARGET_FILE_UPLOAD;
use hanami_types::websocket::proto::{FileUploadMessage, FileUploadResponseMessage};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

use crate::session::{Socket, closed_because, next_binary, send};
use crate::{Client, Error, Result};

impl Client {
    /// Sends a local file of `size` bytes (as announced to the server) into the temporary
    /// file `file_uuid` of an upload, in 128 KiB chunks read as they are sent (so a large
    /// file never sits in memory whole); the server answers each chunk, and `sent` gets the
    /// bytes stored so far. A file whose size differs from `size` is an [`Error::File`]
    /// before anything is sent (the server would wait for the missing bytes), and so is one
    /// that changes length while it is sent.
    pub async fn upload_file(
        &self,
        file_uuid: &str,
        path: &Path,
        size: u64,
        sent: &mut (dyn FnMut(u64) + Send),
    ) -> Result<()> {
        use tokio::io::AsyncReadExt as _;
        let file_err = |source| Error::File {
            path: path.display().to_string(),
            source,
        };
        let changed = |now: String| {
            file_err(std::io::Error::other(format!(
                "the file changed after its upload began: {size} bytes were announced, {now}"
            )))
        };
        let mut file = tokio::fs::File::open(path).await.map_err(file_err)?;
        let length = file.metadata().await.map_err(file_err)?.len();
        if length != size {
            return Err(changed(format!("it now holds {length}")));
        }
        let mut socket = self.open_session(TARGET_FILE_UPLOAD, file_uuid).await?;
        // The server answers every chunk in order; keeping a few chunks in flight lets the
        // client read the next chunk while the server stores the previous one.
        let mut in_flight = 0usize;
        let mut acknowledged = 0u64;
        let chunk = UPLOAD_CHUNK_SIZE as u64;
        let chunk_ends: Vec<u64> = (0..size)
            .step_by(UPLOAD_CHUNK_SIZE)
            .map(|start| (start + chunk).min(size))
            .collect();
        let mut acks = chunk_ends.iter();
        let mut start = 0u64;
        for &end in &chunk_ends {
            let mut data = vec![0u8; (end - start) as usize];
            file.read_exact(&mut data).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    changed(format!("it ended before byte {end}"))
                } else {
                    file_err(e)
                }
            })?;
            let message = FileUploadMessage {
                position: start,
                data: data.into(),
            };
            send(
                &mut socket,
                Message::binary(message.encode_to_vec()),
                self.answer_timeout,
            )
            .await?;
            start = end;
            in_flight += 1;
            if in_flight == UPLOAD_WINDOW {
                acknowledged = receive_ack(&mut socket, &mut acks, self.answer_timeout).await?;
                sent(acknowledged);
                in_flight -= 1;
            }
        }
        if file.read(&mut [0u8]).await.map_err(file_err)? != 0 {
            return Err(changed("it grew while it was sent".into()));
        }
        while in_flight > 0 {
            acknowledged = receive_ack(&mut socket, &mut acks, self.answer_timeout).await?;
            sent(acknowledged);
            in_flight -= 1;
        }
        debug_assert_eq!(acknowledged, size);
        let _ = socket.close(None).await;
        Ok(())
    }
}

/// Chunks sent ahead of the server's answers.
const UPLOAD_WINDOW: usize = 4;

/// Waits for the answer to the oldest chunk in flight; returns the bytes stored so far.
async fn receive_ack(
    socket: &mut Socket,
    chunk_ends: &mut std::slice::Iter<'_, u64>,
    timeout: Duration,
) -> Result<u64> {
    let reply = FileUploadResponseMessage::decode(next_binary(socket, timeout).await?)
        .map_err(|e| Error::Protocol(format!("upload reply: {e}")))?;
    if !reply.success {
        // As the session's close reason would say it: what is gone a 404, lost access a
        // 401, an upload being finalised a 409, anything else the session's own failure.
        return Err(closed_because(&reply.error_message));
    }
    let end = chunk_ends
        .next()
        .ok_or_else(|| Error::Protocol("more upload answers than chunks".into()))?;
    Ok(*end)
}
