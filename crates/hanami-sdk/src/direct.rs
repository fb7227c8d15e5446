//! Direct IO: driving a cluster in DIRECT mode sample by sample over a websocket.

use std::time::Duration;

use hanami_types::websocket::TARGET_CLUSTER;
use hanami_types::websocket::proto::{ClusterIoMessage, ClusterProcessType, TargetBufferType};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

use crate::upload::{Socket, next_binary, send};
use crate::{Client, Error, Result};

/// An open direct-IO session with one cluster.
pub struct DirectSession {
    socket: Socket,
    /// See [`crate::ConnectOptions::answer_timeout`].
    answer_timeout: Duration,
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
        })
    }
}

/// Refuses values the server would refuse (closing the session): not-a-number and
/// infinity, and `expected` values outside [0, 1], which the outputs (sigmoids) cannot
/// reach. Checked before anything is sent, so the session stays usable.
fn check_values(name: &str, values: &[f32], expected: bool) -> Result<()> {
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
    async fn exchange(&mut self, message: ClusterIoMessage) -> Result<ClusterIoMessage> {
        let message = Message::binary(message.encode_to_vec());
        send(&mut self.socket, message, self.answer_timeout).await?;
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
    /// before any, and closes the session. Values that are not finite, or expected values
    /// outside [0, 1], are [`Error::InvalidArgument`], refused before anything is sent.
    pub async fn train(
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

    /// One request: returns the raw values of each output, by name, for a cluster with
    /// `outputs` outputs (the server answers with one message per output).
    /// [`Error::InvalidArgument`] for `outputs == 0`: every cluster has at least one.
    pub async fn request(
        &mut self,
        inputs: &[(&str, &[f32])],
        outputs: usize,
    ) -> Result<Vec<(String, Vec<f32>)>> {
        if outputs == 0 {
            return Err(Error::InvalidArgument(
                "a request answers every output of the cluster, and it has at least one".into(),
            ));
        }
        let buffers: Vec<_> = inputs
            .iter()
            .map(|(n, v)| (*n, *v, TargetBufferType::InputBufferType))
            .collect();
        let first = self
            .send_all(&buffers, ClusterProcessType::RequestType)
            .await?;
        let mut results = vec![(first.buffer_name, first.values)];
        for _ in 1..outputs {
            let next =
                ClusterIoMessage::decode(next_binary(&mut self.socket, self.answer_timeout).await?)
                    .map_err(|e| Error::Protocol(format!("direct IO answer: {e}")))?;
            results.push((next.buffer_name, next.values));
        }
        Ok(results)
    }

    /// Closes the session.
    pub async fn close(mut self) -> Result<()> {
        self.socket
            .close(None)
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))
    }
}
