//! Direct IO with a cluster: one training step or request per sample, driven message by
//! message over the websocket.

use std::collections::{HashMap, HashSet};

use axum::extract::ws::{Message, WebSocket, close_code};
use hanami_engine::Cluster;
use hanami_types::websocket::proto::{ClusterIoMessage, ClusterProcessType, TargetBufferType};
use prost::Message as _;

use super::{Access, Incoming, SHUTTING_DOWN, close_with, next_message};
use crate::clusters::{ClusterHandle, DirectSessionSlot, RefusedGrowth};
use crate::state::App;

/// Why a direct-IO session closes after a message beyond the websocket limit (a close
/// reason, so at most 123 bytes): it holds the values of one interface, and the largest
/// never need that much. A test checks the limit of inputs named here.
const TOO_BIG: &str = "message too big: at most 16 MiB; a direct-IO message holds the values \
                       of one interface (at most 1048576, 4 bytes each)";

/// Values staged for the next sample, one full-size buffer per interface, starting from the
/// values the network holds (so that a message with fewer values than its interface changes
/// only the first ones of those, as in the original's one buffer per cluster).
#[derive(Default)]
struct Staging {
    inputs: HashMap<String, Vec<f32>>,
    expected: HashMap<String, Vec<f32>>,
    /// Inputs the session has sent values for: only they are set by its samples; the others
    /// keep the values the network holds (from a task, say), as a task's unnamed inputs do.
    given: HashSet<String>,
    /// Outputs the session has sent expected values for: only they learn in training
    /// samples (their values persist between samples, as in the original).
    taught: HashSet<String>,
    /// Outputs that learned in at least one training sample of the session.
    trained: HashSet<String>,
}

impl Staging {
    fn new(network: &Cluster) -> Self {
        let inputs = network
            .inputs()
            .filter_map(|i| Some((i.name.to_owned(), network.input(i.name)?.to_vec())))
            .collect();
        let expected = network
            .outputs()
            .filter_map(|o| Some((o.name.to_owned(), network.expected(o.name)?.to_vec())))
            .collect();
        Self {
            inputs,
            expected,
            ..Self::default()
        }
    }
}

/// Serves one direct-IO session until the client closes it or sends something invalid,
/// then saves the network if the session changed it. The answer to a client's close frame
/// goes out once the network is saved, so that a client whose close has been answered knows
/// that a crash of the server no longer loses what the session trained; where the save
/// failed or waits for a task's end, there is no answer (and the error log says why).
pub async fn session(app: &App, socket: WebSocket, slot: DirectSessionSlot, access: &mut Access) {
    let mut refused = RefusedGrowth::default();
    // The network's lock may be held for long (a save of a large network).
    let mut staging =
        tokio::task::block_in_place(|| slot.read_network(Staging::new)).unwrap_or_default();
    let closing = serve(app, socket, &slot, access, &mut staging, &mut refused).await;
    let trained = staging.trained;
    // What the session's training left is judged before the slot is released: a session
    // started after it may change the network at once.
    let (refused, unreached) = tokio::task::block_in_place(|| {
        slot.read_network(|network| {
            let refused =
                app.workers
                    .refused_growth(network, refused, "the direct-IO session", "went on");
            // Outputs it trained that answer 0 still, as a task's note would say.
            let mut unreached = network.unreached_outputs();
            unreached.retain(|output| trained.contains(output.name));
            let unreached = crate::clusters::unreached_note(
                "direct-IO session's training",
                &unreached,
                refused.is_some(),
            );
            (refused, unreached)
        })
        .unwrap_or_default()
    });
    // A new session may start while this one's network is saved.
    let cluster = &slot.release();
    let (saving, ctx) = (cluster.clone(), app.workers.clone());
    // Whether the network was saved (`false`: held back, see below).
    let saved = tokio::task::spawn_blocking(move || {
        crate::crash_point::reached("direct-session:saving");
        // Not over the training of a task that the database still has queued (it would run
        // again on top of it): saved once its end is recorded, or left as last saved.
        if !saving.record_missed_ends(&ctx) {
            return Ok(false);
        }
        let saved = saving.save_network_if_changed();
        if saved.is_ok() {
            ctx.forget_unsaved_note(&saving);
        }
        saved.map(|()| true)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    // Unsaved, the close goes unanswered: the connection just ends, which the client can
    // tell apart (the answer would echo its close whatever the save did).
    if let (Some(mut socket), Ok(true)) = (closing, &saved) {
        super::answer_close(&mut socket).await;
    }
    // In the error log, as a task's notes are: the owner's admins can learn of it.
    let record = async |text: &str| {
        crate::error_log::record(
            &app.store,
            &cluster.row.owner_id,
            &format!("direct-IO session of cluster '{}'", cluster.row.name),
            &serde_json::json!({"cluster_uuid": cluster.row.uuid}),
            text,
        )
        .await
    };
    for note in [refused, unreached].into_iter().flatten() {
        record(&note).await;
    }
    match saved {
        Ok(true) => {}
        Ok(false) => {
            record(
                "the network is not saved after the session: the end of a task of the cluster \
                 that the database still has queued cannot be recorded yet (a full disk, say); \
                 the network is saved once it is, else the stop leaves it as last saved, and \
                 what the session trained is lost",
            )
            .await;
        }
        Err(e) => {
            record(&format!(
                "cannot save the network after the session: {e}; the server keeps it in memory \
                 and tries again when it shuts down"
            ))
            .await;
        }
    }
}

/// Serves the session's messages with their values in `staging`; `refused` adds up the
/// growth that memory budgets refused in its steps. Gives back the socket of a session that
/// the client closed, whose close frame is still to be answered.
async fn serve(
    app: &App,
    mut socket: WebSocket,
    cluster: &ClusterHandle,
    access: &mut Access,
    staging: &mut Staging,
    refused: &mut RefusedGrowth,
) -> Option<WebSocket> {
    let mut session_end = cluster.direct_sessions_end();
    let idle = app.config.upload_timeout;
    loop {
        // Checked after subscribing: a change in between is not missed.
        if let Some(why) = cluster.direct_session_over(&session_end) {
            close(app, socket, why).await;
            return None;
        }
        let incoming = tokio::select! {
            // The end wins over a message that came meanwhile (a client's close right
            // after the switch it asked for learns why its session ended).
            biased;
            // Told at once, also while the client is silent.
            _ = session_end.changed() => {
                close(app, socket, cluster.direct_session_end()).await;
                return None;
            }
            incoming = next_message(app, &mut socket, idle) => incoming,
        };
        let bytes = match incoming {
            Incoming::Data(bytes) => bytes,
            Incoming::Closed => return Some(socket),
            Incoming::Gone => return None,
            Incoming::Stopping => {
                tracing::info!(
                    cluster = cluster.row.uuid,
                    "the stop ends a direct-IO session of cluster '{}' (the stop saves the \
                     network with what it trained; the cluster comes back in TASK mode at the \
                     next start)",
                    cluster.row.name
                );
                close_with(app, socket, close_code::AWAY, SHUTTING_DOWN).await;
                return None;
            }
            Incoming::Idle => {
                let why = format!(
                    "closed: no message for {} s (the server's upload_timeout); open a new \
                     session",
                    idle.as_secs()
                );
                close(app, socket, &why).await;
                return None;
            }
            Incoming::TooBig => {
                close_with(app, socket, close_code::SIZE, TOO_BIG).await;
                return None;
            }
            Incoming::Violation(code, reason) => {
                close_with(app, socket, code, &reason).await;
                return None;
            }
            Incoming::Text(_) => {
                close(
                    app,
                    socket,
                    "expected a binary ClusterIO_Message, got a text frame",
                )
                .await;
                return None;
            }
        };
        if let Err(why) = access.recheck(app).await {
            close(app, socket, &why).await;
            return None;
        }
        let message = match ClusterIoMessage::decode(bytes) {
            Ok(message) => message,
            Err(e) => {
                close(app, socket, &format!("invalid ClusterIO_Message: {e}")).await;
                return None;
            }
        };
        // A step needs the policy's entry of its kind of task (staging values needs none).
        if message.is_last {
            let endpoint = if message.process_type == ClusterProcessType::RequestType as i32 {
                crate::api::REQUEST_ENDPOINT
            } else {
                crate::api::TRAIN_ENDPOINT
            };
            if let Err(why) = access.may(app, endpoint) {
                close(app, socket, &why).await;
                return None;
            }
        }
        // A step may change the network: see `begin_direct_step`. It waits for its turn
        // among the steps of all sessions.
        let step = message.is_last;
        let _turn = match step {
            true => Some(
                app.direct_steps
                    .acquire()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            false => None,
        };
        if step {
            cluster.begin_direct_step(&app.store).await;
        }
        let replies = handle(cluster, &session_end, staging, message, refused);
        if step {
            cluster.end_direct_step().await;
        }
        match replies {
            Ok(replies) => {
                for reply in replies {
                    let frame = Message::Binary(reply.encode_to_vec().into());
                    tokio::select! {
                        biased;
                        sent = socket.send(frame) => if sent.is_err() {
                            return None;
                        },
                        // A client that does not read its answers cannot keep the session
                        // past its end (nor can it read a close frame: the connection
                        // just closes).
                        _ = session_end.changed() => return None,
                    }
                }
            }
            Err(reason) => {
                close(app, socket, &reason).await;
                return None;
            }
        }
    }
}

async fn close(app: &App, socket: WebSocket, reason: &str) {
    close_with(app, socket, close_code::POLICY, reason).await;
}

fn ack(is_last: bool) -> ClusterIoMessage {
    ClusterIoMessage {
        buffer_name: String::new(),
        is_last,
        process_type: ClusterProcessType::TrainType as i32,
        target_buffer_type: TargetBufferType::InputBufferType as i32,
        number_of_values: 1,
        values: vec![0.0],
    }
}

/// Stages one message's values and, for the last message of a sample, processes it.
fn handle(
    cluster: &ClusterHandle,
    session_end: &tokio::sync::watch::Receiver<()>,
    staging: &mut Staging,
    message: ClusterIoMessage,
    refused: &mut RefusedGrowth,
) -> Result<Vec<ClusterIoMessage>, String> {
    still_on(cluster, session_end)?;
    let (buffers, what) = match TargetBufferType::try_from(message.target_buffer_type) {
        Ok(TargetBufferType::InputBufferType) => (&mut staging.inputs, "input"),
        Ok(TargetBufferType::ExpectedBufferType) => (&mut staging.expected, "output"),
        Ok(TargetBufferType::OutputBufferType) => {
            return Err("OUTPUT_BUFFER_TYPE is for answers only".into());
        }
        Err(_) => {
            return Err(format!(
                "unknown targetBufferType {}",
                message.target_buffer_type
            ));
        }
    };
    let buffer = buffers
        .get_mut(&message.buffer_name)
        .ok_or_else(|| format!("the cluster has no {what} named '{}'", message.buffer_name))?;
    if message.values.len() > buffer.len() {
        return Err(format!(
            "{what} '{}' has {} neurons, but the message holds {} values",
            message.buffer_name,
            buffer.len(),
            message.values.len()
        ));
    }
    // Fewer values update the first ones; numberOfValues is not trusted beyond them.
    let count = usize::try_from(message.number_of_values)
        .unwrap_or(usize::MAX)
        .min(message.values.len());
    // Refused with the message that carries them, not at the step that would use them.
    let values = &message.values[..count];
    hanami_engine::check_finite(&message.buffer_name, values)
        .and_then(|()| match what {
            "output" => hanami_engine::check_expected_range(&message.buffer_name, values),
            _ => Ok(()),
        })
        .map_err(|refusal| refusal.to_string())?;
    buffer[..count].copy_from_slice(&message.values[..count]);
    if what == "output" {
        staging.taught.insert(message.buffer_name.clone());
    } else {
        staging.given.insert(message.buffer_name.clone());
    }
    if !message.is_last {
        return Ok(vec![ack(false)]);
    }
    let process = ClusterProcessType::try_from(message.process_type)
        .map_err(|_| format!("unknown processType {}", message.process_type))?;
    tokio::task::block_in_place(|| {
        crate::crash_point::reached("direct-step");
        step(cluster, session_end, staging, process, refused)
    })
}

/// Runs the step of a session's last message, its values staged.
fn step(
    cluster: &ClusterHandle,
    session_end: &tokio::sync::watch::Receiver<()>,
    staging: &mut Staging,
    process: ClusterProcessType,
    refused: &mut RefusedGrowth,
) -> Result<Vec<ClusterIoMessage>, String> {
    let inputs: Vec<(&str, &[f32])> = staging
        .inputs
        .iter()
        .filter(|(n, _)| staging.given.contains(*n))
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    match process {
        ClusterProcessType::TrainType => {
            let expected: Vec<(&str, &[f32])> = staging
                .expected
                .iter()
                .filter(|(n, _)| staging.taught.contains(*n))
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            cluster
                .with_network(|network| {
                    still_on(cluster, session_end)?;
                    let before = network.growth_stats();
                    let trained = network.train_step(&inputs, &expected);
                    refused.add(RefusedGrowth::between(before, network.growth_stats()));
                    trained.map_err(|e| e.to_string())
                })
                .ok_or("the cluster has no network")??;
            staging.trained.extend(staging.taught.iter().cloned());
            Ok(vec![ack(true)])
        }
        ClusterProcessType::RequestType => cluster
            .with_network(|network| {
                still_on(cluster, session_end)?;
                let before = network.growth_stats();
                let answered = network.request_step(&inputs);
                refused.add(RefusedGrowth::between(before, network.growth_stats()));
                answered.map_err(|e| e.to_string())?;
                let outputs = cluster.interfaces().outputs;
                Ok(outputs
                    .iter()
                    .map(|output| {
                        let values = network.output(&output.name).unwrap_or(&[]).to_vec();
                        ClusterIoMessage {
                            buffer_name: output.name.clone(),
                            is_last: false,
                            process_type: ClusterProcessType::RequestType as i32,
                            // Left at its default (not sent), as the original's answers.
                            target_buffer_type: TargetBufferType::InputBufferType as i32,
                            number_of_values: values.len() as u64,
                            values,
                        }
                    })
                    .collect())
            })
            .ok_or("the cluster has no network")?,
    }
}

/// Checks again, under the network's lock, that the session goes on: a switch to TASK mode
/// while the step waited for the lock may have let a queued task change the network first.
fn still_on(
    cluster: &ClusterHandle,
    session_end: &tokio::sync::watch::Receiver<()>,
) -> Result<(), String> {
    match cluster.direct_session_over(session_end) {
        Some(why) => Err(why.to_owned()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc};

    use hanami_store::resources::ResourceRow;

    use super::*;
    use crate::clusters::{CoreBudget, Mode, WorkerContext};

    /// A step that waits for the network's lock while its session ends (here the cluster's
    /// deletion; a switch to TASK mode, which lets a queued task take the lock first, ends it
    /// the same way) does not run on what it finds once it has the lock.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_step_does_not_outlive_its_session_while_it_waits_for_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let template = "version: 1 settings: refractory_time: 1 hexagons: 1,1,1 2,1,1 \
                        inputs: x: target: 1,1,1 number_of_inputs: 2 \
                        outputs: y: target: 2,1,1 number_of_outputs: 1";
        let network = Cluster::from_template_text(template, 7).unwrap();
        let row = ResourceRow::new("c", "cluster", "owner", "project", "network");
        let cluster = Arc::new(ClusterHandle::new(
            row,
            Some(network),
            dir.path().join("network"),
        ));
        let ctx = WorkerContext {
            store: hanami_store::Store::open(&dir.path().join("hanami.db"))
                .await
                .unwrap(),
            paths: crate::paths::DataDir::new(dir.path()),
            runtime: tokio::runtime::Handle::current(),
            cores: Arc::new(CoreBudget::new(1)),
            slots: crate::clusters::turns::TaskSlots::new(1),
            memory: crate::memory::NetworkMemory::new(1 << 30, 1 << 30),
            min_free_disk: 0,
            disk: Arc::default(),
            stopping: Arc::default(),
            descriptor_shortage: Default::default(),
            verified: Arc::default(),
        };
        assert!(cluster.set_mode(Mode::Direct, &ctx).is_ok());
        let session_end = cluster.direct_sessions_end();
        let mut staging = cluster.read_network(Staging::new).unwrap();
        // Something else holds the network's lock (as a task or another session's step).
        let (held, holding) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let holder = {
            let cluster = cluster.clone();
            std::thread::spawn(move || {
                cluster.read_network(|_| {
                    held.send(()).unwrap();
                    released.recv().unwrap();
                })
            })
        };
        holding.recv().unwrap();
        let step = {
            let cluster = cluster.clone();
            std::thread::spawn(move || {
                let message = ClusterIoMessage {
                    buffer_name: "x".into(),
                    is_last: true,
                    process_type: ClusterProcessType::RequestType as i32,
                    target_buffer_type: TargetBufferType::InputBufferType as i32,
                    number_of_values: 2,
                    values: vec![1.0, 0.0],
                };
                let mut refused = RefusedGrowth::default();
                handle(&cluster, &session_end, &mut staging, message, &mut refused)
            })
        };
        // The step has checked its session and waits for the lock by now.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!step.is_finished());
        cluster.delete();
        release.send(()).unwrap();
        holder.join().unwrap();
        let answer = step.join().unwrap();
        assert_eq!(
            answer.err().as_deref(),
            Some(hanami_types::websocket::CLOSED_CLUSTER_DELETED)
        );
    }

    /// The close reason fits a close frame whole, and the limit it names is the engine's.
    #[test]
    fn the_size_refusal_fits_and_names_the_real_limit() {
        assert!(super::TOO_BIG.len() <= 123, "{}", super::TOO_BIG.len());
        let limit = hanami_engine::template::limits::MAX_INPUTS;
        assert!(super::TOO_BIG.contains(&format!("at most {limit},")));
    }
}
