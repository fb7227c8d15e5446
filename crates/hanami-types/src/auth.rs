//! Login, token renewal and access validation.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1.0alpha/token` (login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// User id.
    pub id: String,
    /// Password in clear text (sent over the connection, never stored).
    pub password: String,
}

/// Body of `PUT /v1.0alpha/token`: renew the token, optionally in another project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewTokenRequest {
    /// Project the new token is bound to.
    pub project_id: String,
}

/// Answer of both token endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the user is a global admin.
    pub is_admin: bool,
    /// The JWT to send in `X-Auth-Token`.
    pub token: String,
}

/// The user context a token carries; also the answer of `GET /v1.0alpha/auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the user is a global admin.
    pub is_admin: bool,
    /// Project the token is bound to (`admin` for global admins).
    pub project_id: String,
    /// Role in that project; the policy gives it meaning.
    pub role: String,
    /// Whether the user administers that project.
    pub is_project_admin: bool,
}
