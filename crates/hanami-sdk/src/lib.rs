//! Async Rust client for the Hanami AI server; `hanamictl` is built on it.
//!
//! The calls are `async` and need a [Tokio](https://tokio.rs) runtime (timeouts and
//! websocket sessions use its timers and sockets). Their futures are `Send`, so they can run
//! on spawned tasks. One [`Client`] is one login; methods are named after what they act on
//! (`datasets`, `create_cluster`, `wait_for_task`), and ids and uuids are the strings the
//! server hands out. The answer types live in [`types`].
//!
//! # A whole workflow
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//!
//! use hanami_sdk::types::tasks::TaskState;
//! use hanami_sdk::{Client, Error};
//!
//! /// The cluster template of the documentation: 784 inputs, 10 outputs.
//! const TEMPLATE: &str = "version: 1
//! settings:
//!     neuron_cooldown: 10000000.0
//!     refractory_time: 1
//!     max_connection_distance: 1
//!     enable_reduction: false
//! hexagons:
//!     1,1,1
//!     2,1,1
//!     3,1,1
//! inputs:
//!     picture:
//!         target: 1,1,1
//!         number_of_inputs: 784
//! outputs:
//!     label:
//!         target: 3,1,1
//!         number_of_outputs: 10
//! ";
//!
//! # async fn demo() -> Result<(), Error> {
//! let client = Client::login("http://127.0.0.1:11418", "asdf", "asdfasdf").await?;
//! let mnist = Path::new("/data/mnist");
//! // An MNIST upload makes one dataset with the columns `picture` and `label`.
//! let train = client
//!     .upload_mnist_with_progress(
//!         "mnist_train",
//!         &mnist.join("train-images-idx3-ubyte"),
//!         &mnist.join("train-labels-idx1-ubyte"),
//!         &mut |sent, total| eprint!("\r{sent} of {total} bytes"),
//!     )
//!     .await?;
//! let test = client
//!     .upload_mnist(
//!         "mnist_test",
//!         &mnist.join("t10k-images-idx3-ubyte"),
//!         &mnist.join("t10k-labels-idx1-ubyte"),
//!     )
//!     .await?;
//! let cluster = client.create_cluster("mnist_cluster", TEMPLATE).await?.uuid;
//!
//! // Tasks are queued per cluster; interfaces of the template name the dataset columns.
//! let task = client
//!     .train("epoch_1", &cluster, &[("picture", &train.uuid)], &[("label", &train.uuid)])
//!     .await?;
//! // A wait ends with the task's last state: check it, an aborted task says why in `note`.
//! let done = client.wait_for_task(&cluster, &task.uuid, Duration::from_secs(600)).await?;
//! if done.state != TaskState::Finished {
//!     eprintln!("training ended {}: {}", done.state, done.note.unwrap_or_default());
//! }
//!
//! // A request task writes its outputs into a new dataset whose uuid is the task's.
//! let task = client
//!     .request("answers", &cluster, &[("picture", &test.uuid)], ("label", "answers"))
//!     .await?;
//! client.wait_for_task(&cluster, &task.uuid, Duration::from_secs(60)).await?;
//! let accuracy = client.check_dataset(&test.uuid, &task.uuid).await?;
//! println!("{accuracy:.2} % correct");
//! // Its rows (one-hot here: the output has ten neurons), read back in parts.
//! let first = client.dataset_rows(&task.uuid, 0, 100).await?;
//! println!("row 0 of {}: {:?}", first.number_of_rows, first.rows[0]);
//!
//! // Saving and restoring are tasks of the cluster as well; a save's uuid is also the
//! // uuid of the checkpoint it makes.
//! let save = client.save_cluster(&cluster, "after_epoch_1").await?;
//! client.wait_for_task(&cluster, &save.uuid, Duration::from_secs(60)).await?;
//! let restore = client.restore_cluster(&cluster, &save.uuid).await?;
//! client.wait_for_task(&cluster, &restore.uuid, Duration::from_secs(60)).await?;
//!
//! // Direct IO: one sample at a time over a websocket, while the cluster is in DIRECT mode.
//! client.set_direct_mode(&cluster, true).await?;
//! let mut session = client.direct_session(&cluster).await?;
//! let outputs = session.request(&[("picture", &[0.0; 784])]).await?;
//! println!("{:?}", outputs[0].1);
//! session.close().await?;
//! client.set_direct_mode(&cluster, false).await?;
//!
//! // Errors carry the server's message and tell the cases apart.
//! match client.dataset("00000000-0000-0000-0000-000000000000").await {
//!     Err(Error::NotFound(message)) => eprintln!("as expected: {message}"),
//!     Err(other) => return Err(other),
//!     Ok(dataset) => println!("found {}", dataset.name),
//! }
//! client.delete_checkpoint(&save.uuid).await?;
//! client.delete_cluster(&cluster).await?;
//! # Ok(()) }
//! ```
//!
//! # Lists
//!
//! The list calls (`projects`, `users`, `datasets`, `clusters`, `checkpoints`, `tasks`,
//! `hosts`, the logs) answer the server's tables, [`types::list::ListTable`]: column names
//! and rows of JSON values, in the original's column order. Read their rows by column name
//! into a struct of your own with [`ListTable::rows_as`](types::list::ListTable::rows_as):
//!
//! ```no_run
//! # use hanami_sdk::Client;
//! #[derive(serde::Deserialize)]
//! struct Listed {
//!     uuid: String,
//!     name: String,
//! }
//!
//! # async fn demo(client: &Client) -> Result<(), Box<dyn std::error::Error>> {
//! for dataset in client.datasets().await?.rows_as::<Listed>()? {
//!     println!("{} {}", dataset.uuid, dataset.name);
//! }
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! Every method maps the server's status codes onto [`Error`]: 400 [`Error::BadRequest`],
//! 401 [`Error::Unauthorized`], 404 [`Error::NotFound`], 409 [`Error::Conflict`] and 500
//! [`Error::Internal`], each with the server's message; a server that stops answers 503
//! ([`Error::Status`]), also to the websocket sessions of uploads and direct IO that it
//! ends. A server that cannot be reached is [`Error::Transport`] for REST calls and
//! [`Error::WebSocket`] for those sessions (a connection refused, or broken while they
//! run), a session that the server closes for another reason [`Error::SessionClosed`], one
//! that stalls for the answer timeout [`Error::SessionTimeout`], a wait that reached its
//! limit [`Error::Timeout`], an argument the client refuses before sending
//! [`Error::InvalidArgument`] (or [`Error::UnsendableUrl`], where it makes the URL invalid
//! or too long). A token that expires is renewed by the client itself (see [`Client`]), so
//! a long wait or upload outlives it.
//!
//! Uploads can be cancelled with the `_until` variants, which report
//! [`Error::Cancelled`]; dropping an upload's future withdraws the unfinished upload on the
//! server in the background (also before the server has answered the request that
//! registers it).

mod client;
mod clusters;
mod datasets;
mod direct;
mod error;
mod logs;
mod machine;
mod projects;
mod session;
mod tasks;
mod tls;
mod upload;
mod users;

pub use client::{
    AddressRefused, CONNECT_TIMEOUT, Client, ConnectOptions, DEFAULT_ANSWER_TIMEOUT, ServerAddress,
};
pub use datasets::upload_file_size;
pub use direct::DirectSession;
pub use error::{Error, Result, Stall, transport_text, with_causes};
pub use hanami_types as types;
pub use tasks::TaskPolls;
