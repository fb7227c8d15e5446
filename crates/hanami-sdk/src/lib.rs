//! Async Rust client for the Hanami AI server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hanami_sdk::Error> {
//! let client = hanami_sdk::Client::login("http://127.0.0.1:11418", "asdf", "asdfasdf").await?;
//! let dataset = client
//!     .upload_mnist("mnist_train", "train-images-idx3-ubyte".as_ref(), "train-labels-idx1-ubyte".as_ref())
//!     .await?;
//! println!("{} rows", dataset.number_of_rows);
//! # Ok(()) }
//! ```
//!
//! Every method maps the server's status codes onto [`Error`]: 400 [`Error::BadRequest`],
//! 401 [`Error::Unauthorized`], 404 [`Error::NotFound`], 409 [`Error::Conflict`] and 500
//! [`Error::Internal`], each with the server's message. A token that expires is renewed by
//! the client itself (see [`Client`]), so a long wait or upload outlives it.

mod client;
mod clusters;
mod datasets;
mod direct;
mod error;
mod logs;
mod machine;
mod projects;
mod tasks;
mod tls;
mod upload;
mod users;

pub use client::{CONNECT_TIMEOUT, Client, ConnectOptions, DEFAULT_ANSWER_TIMEOUT};
pub use direct::DirectSession;
pub use error::{Error, Result};
pub use hanami_types as types;
