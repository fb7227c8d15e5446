//! The state shared by all request handlers.

use std::sync::Arc;

use hanami_auth::{Policy, TokenKey};
use hanami_store::Store;

use crate::api::Routes;
use crate::config::Config;

/// Shared application state; cheap to clone.
pub type App = Arc<AppState>;

/// Everything a handler may need.
pub struct AppState {
    /// Effective configuration.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Signs and verifies tokens.
    pub tokens: TokenKey,
    /// Which role may call what.
    pub policy: Policy,
    /// The endpoint table.
    pub routes: Routes,
}
