//! The Hanami server: REST API under `/v1.0alpha`, websockets on the same port, users,
//! projects and tokens, backed by SQLite and a local data directory.
//!
//! [`run`] is the whole server; `main.rs` only parses the command line. Start-up order:
//! TLS certificate, policy file and listening port (any of them failing changes nothing),
//! data directory, database (with migrations), first admin, token key, clusters;
//! connections are accepted only then, so no request can arrive before the server is ready.

mod api;
mod certificate;
mod clusters;
pub mod config;
mod connections;
mod crash_point;
mod dataset_checksums;
mod disk;
mod error_log;
mod file_faults;
mod host_info;
mod login_throttle;
mod memory;
mod passwords;
mod paths;
mod per_network;
mod shutdown;
mod slots;
mod startup;
mod state;
mod sync;
mod uploads;
mod websocket;

pub use clusters::NO_NETWORK;
pub use connections::raise_open_file_limit;
pub use startup::run;
