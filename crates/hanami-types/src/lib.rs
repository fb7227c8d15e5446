//! Wire types shared by the Hanami server and its clients: request and response bodies,
//! list tables, and the protobuf messages of the websocket protocols.
//!
//! One definition serves both sides, so the server and the SDK cannot drift apart. Field
//! names and list column orders follow the original Hanami API (`/v1.0alpha`), which the
//! original Python SDK and Go CLI depend on.

pub mod auth;
pub mod clusters;
pub mod datasets;
pub mod list;
pub mod logs;
pub mod projects;
pub mod scope;
pub mod tasks;
pub mod users;
pub mod websocket;

/// Path prefix of every REST endpoint.
pub const API_PREFIX: &str = "/v1.0alpha";
