//! Direct IO: driving a cluster in DIRECT mode sample by sample over a websocket.

use std::time::Duration;

use hanami_types::websocket::TARGET_CLUSTER;
use hanami_types::websocket::proto::{ClusterIoMessage, ClusterProcessType, TargetBufferType};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

use crate::session::{Socket, next_binary, send};
use crate::{Client, Error, Result};

/// An open direct-IO session with one cluster.
///
/// A failure on the connection (the server refused a message and closed the session, no
/// answer in time, the connection broke) ends the session: later calls return
/// [`Error::WebSocket`] naming that first failure (open a new session), and
/// [`DirectSession::close`] has nothing left to do. So does a call dropped before its
/// answers came (a `tokio::time::timeout` around it, say): the next call would read them.
/// Values refused before anything is sent ([`Error::InvalidArgument`]) leave it usable.
pub struct DirectSession {
    socket: Socket,
    /// See [`crate::ConnectOptions::answer_timeout`].
    answer_timeout: Duration,
    /// Why the session ended, once a failure on the connection ended it.
    ended: Option<String>,
    /// A call is under way: still set at the next call when that one was dropped.
    busy: bool,
}

impl std::fmt::Debug for DirectSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSession")
            .field("answer_timeout", &self.answer_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens a direct-IO session; the cluster must be in DIRECT mode. A refused start is
    /// [`Error::Conflict`] (not in DIRECT mode, or its eight sessions taken),
    /// [`Error::NotFound`] or [`Error::Unauthorized`] (a role the policy keeps from direct
    /// IO, say).
    pub async fn direct_session(&self, cluster_uuid: &str) -> Result<DirectSession> {
        Ok(DirectSession {
            socket: self.open_session(TARGET_CLUSTER, cluster_uuid).await?,
            answer_timeout: self.answer_timeout,
            ended: None,
            busy: false,
        })
    }
}

/// Refuses values the server would refuse (closing the session): more than one message
/// may carry, not-a-number and infinity, and `expected` values outside [0, 1], which the
/// outputs (sigmoids) cannot reach. Checked before anything is sent, so the session stays
/// usable.
fn check_values(name: &str, values: &[f32], expected: bool) -> Result<()> {
    use hanami_types::websocket::MAX_MESSAGE_BYTES;
    // Four bytes a value, plus the name and the message's other fields (a bound).
    let bytes = values.len().saturating_mul(4) + name.len() + 64;
    if bytes > MAX_MESSAGE_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{} values for '{name}' would make a message of about {bytes} bytes; the server \
             takes at most {MAX_MESSAGE_BYTES} bytes ({} MiB) per message, about {} values",
            values.len(),
            MAX_MESSAGE_BYTES >> 20,
            MAX_MESSAGE_BYTES.saturating_sub(name.len() + 64) / 4
        )));
    }
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "value {i} for '{name}' ({v}) is not a finite number"
        )));
    }
    if expected
        && let Some((i, v)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(Error::InvalidArgument(format!(
            "expected value {i} for '{name}' ({v}) is outside [0, 1], which the outputs \
             (sigmoids) cannot reach"
        )));
    }
    Ok(())
}

impl DirectSession {
    /// Refuses a call on a session that a failure or a dropped call ended, saying which;
    /// else marks a call under way.
    fn still_open(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.busy, true) {
            self.ended.get_or_insert_with(|| {
                "an earlier call was dropped before its answers came, which the next call \
                 would read"
                    .to_owned()
            });
        }
        match &self.ended {
            Some(why) => Err(Error::WebSocket(format!(
                "the session ended earlier ({why}); open a new one"
            ))),
            None => Ok(()),
        }
    }

    /// Notes a failure on the connection, which ends the session (values refused before
    /// sending do not).
    fn noted<T>(&mut self, result: Result<T>) -> Result<T> {
        self.busy = false;
        if let Err(e) = &result
            && !matches!(e, Error::InvalidArgument(_))
        {
            self.ended.get_or_insert_with(|| e.to_string());
        }
        result
    }

    async fn exchange(&mut self, message: ClusterIoMessage) -> Result<ClusterIoMessage> {
        let message = Message::binary(message.encode_to_vec());
        send(&mut self.socket, message, self.answer_timeout).await?;
        self.receive().await
    }

    /// The server's next answer (within the answer timeout).
    async fn receive(&mut self) -> Result<ClusterIoMessage> {
        ClusterIoMessage::decode(next_binary(&mut self.socket, self.answer_timeout).await?)
            .map_err(|e| Error::Protocol(format!("direct IO answer: {e}")))
    }

    async fn send_all(
        &mut self,
        buffers: &[(&str, &[f32], TargetBufferType)],
        process: ClusterProcessType,
    ) -> Result<ClusterIoMessage> {
        for (name, values, target) in buffers {
            check_values(
                name,
                values,
                *target == TargetBufferType::ExpectedBufferType,
            )?;
        }
        let mut last = None;
        for (i, (name, values, target)) in buffers.iter().enumerate() {
            let message = ClusterIoMessage {
                buffer_name: (*name).to_owned(),
                is_last: i + 1 == buffers.len(),
                process_type: process as i32,
                target_buffer_type: *target as i32,
                number_of_values: values.len() as u64,
                values: values.to_vec(),
            };
            last = Some(self.exchange(message).await?);
        }
        last.ok_or_else(|| Error::InvalidArgument("no values to send".into()))
    }

    /// One training step: input values and expected output values by interface name. Only
    /// outputs the session has sent expected values for learn; the server refuses a step
    /// before any, and closes the session. Values that are not finite, expected values
    /// outside [0, 1], or more values for one interface than a 16 MiB message carries are
    /// [`Error::InvalidArgument`], refused before anything is sent.
    pub async fn train(
        &mut self,
        inputs: &[(&str, &[f32])],
        expected: &[(&str, &[f32])],
    ) -> Result<()> {
        self.still_open()?;
        let result = self.train_step(inputs, expected).await;
        self.noted(result)
    }

    async fn train_step(
        &mut self,
        inputs: &[(&str, &[f32])],
        expected: &[(&str, &[f32])],
    ) -> Result<()> {
        let buffers: Vec<_> = inputs
            .iter()
            .map(|(n, v)| (*n, *v, TargetBufferType::InputBufferType))
            .chain(
                expected
                    .iter()
                    .map(|(n, v)| (*n, *v, TargetBufferType::ExpectedBufferType)),
            )
            .collect();
        let end = self
            .send_all(&buffers, ClusterProcessType::TrainType)
            .await?;
        if !end.is_last {
            return Err(Error::Protocol(
                "expected the end of a training step".into(),
            ));
        }
        Ok(())
    }

    /// One request: returns the raw values of each output of the cluster, by name. The
    /// server answers with one message per output; the session then sends an empty input
    /// message as a marker, whose acknowledgement follows the last of them, so it needs
    /// not know how many outputs the cluster has. Inputs are refused before sending as for
    /// [`DirectSession::train`].
    pub async fn request(&mut self, inputs: &[(&str, &[f32])]) -> Result<Vec<(String, Vec<f32>)>> {
        self.still_open()?;
        let result = self.request_step(inputs).await;
        self.noted(result)
    }

    async fn request_step(&mut self, inputs: &[(&str, &[f32])]) -> Result<Vec<(String, Vec<f32>)>> {
        let buffers: Vec<_> = inputs
            .iter()
            .map(|(n, v)| (*n, *v, TargetBufferType::InputBufferType))
            .collect();
        let first = self
            .send_all(&buffers, ClusterProcessType::RequestType)
            .await?;
        let marker = ClusterIoMessage {
            buffer_name: buffers[buffers.len() - 1].0.to_owned(),
            is_last: false,
            process_type: ClusterProcessType::RequestType as i32,
            target_buffer_type: TargetBufferType::InputBufferType as i32,
            number_of_values: 0,
            values: Vec::new(),
        };
        send(
            &mut self.socket,
            Message::binary(marker.encode_to_vec()),
            self.answer_timeout,
        )
        .await?;
        let mut results = vec![(first.buffer_name, first.values)];
        loop {
            let next = self.receive().await?;
            // Outputs have names; the acknowledgement of the marker has none.
            if next.buffer_name.is_empty() {
                return Ok(results);
            }
            results.push((next.buffer_name, next.values));
        }
    }

    /// Closes the session (nothing to do for one that a failure ended), and waits for the
    /// server's answer (for the answer timeout at most): the server answers once it has
    /// saved the network, so that a crash of the server after this has returned `Ok` no
    /// longer loses what the session trained. A connection that ends before the answer (as
    /// the server ends it where it could not save: its error log says why) is
    /// [`Error::WebSocket`]; a session that the
    /// server had closed for a reason of its own (the cluster left DIRECT mode, say) is
    /// [`Error::SessionClosed`] with that reason.
    pub async fn close(mut self) -> Result<()> {
        use futures_util::StreamExt as _;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        if self.ended.is_some() {
            return Ok(());
        }
        self.socket
            .close(None)
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))?;
        // Answers still on their way (of a call dropped before they came) come first.
        let answered = async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Close(None))) => return Ok(()),
                    Some(Ok(Message::Close(Some(frame)))) if frame.code == CloseCode::Normal => {
                        return Ok(());
                    }
                    Some(Ok(Message::Close(Some(frame)))) => {
                        return Err(Error::SessionClosed(frame.reason.to_string()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        return Err(Error::WebSocket(
                            "the connection broke before the server answered the close: what \
                             the session trained may not be saved"
                                .into(),
                        ));
                    }
                }
            }
        };
        tokio::time::timeout(self.answer_timeout, answered)
            .await
            .map_err(|_| Error::SessionTimeout {
                stall: crate::Stall::Answer,
                waited: self.answer_timeout,
            })?
    }
}
