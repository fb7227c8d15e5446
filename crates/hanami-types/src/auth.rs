//! Login, token renewal and access validation.

use serde::{Deserialize, Serialize};

/// What a Hanami-rs server says, in the reason of a refused token, of a user taken out of
/// the token's project and assigned to it again since the token was issued: the removal
/// revoked the token, and a new login is let in.
pub const REASSIGNED_SINCE: &str = "after the token was issued (and assigned to it again since)";

/// What a Hanami-rs server says of a token that an older version issued, without the claims
/// that this one checks: a new login is let in.
pub const OUTDATED_TOKEN: &str = "the token was issued by an older version of the server";

/// Body of `POST /v1.0alpha/token` (login). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Answer of both token endpoints. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// What `Debug` shows instead of a password or token, which logs must not hold.
pub(crate) const HIDDEN: &str = "<hidden>";

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("id", &self.id)
            .field("password", &HIDDEN)
            .finish()
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("is_admin", &self.is_admin)
            .field("token", &HIDDEN)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{TokenRequest, TokenResponse};
    use crate::users::CreateUserRequest;
    use crate::websocket::SessionInit;

    /// Passwords and tokens never reach a log through `Debug`.
    #[test]
    fn debug_hides_passwords_and_tokens() {
        let login = TokenRequest {
            id: "asdf".into(),
            password: "secret-password".into(),
        };
        let answer = TokenResponse {
            id: "asdf".into(),
            name: "A".into(),
            is_admin: true,
            token: "secret.jwt.token".into(),
        };
        let user = CreateUserRequest {
            id: "u".into(),
            name: "U".into(),
            password: "secret-password".into(),
            is_admin: false,
        };
        let session = SessionInit {
            token: "secret.jwt.token".into(),
            target: "cluster".into(),
            uuid: "c".into(),
        };
        for shown in [
            format!("{login:?}"),
            format!("{answer:?}"),
            format!("{user:?}"),
            format!("{session:?}"),
        ] {
            assert!(
                shown.contains("<hidden>") && !shown.contains("secret"),
                "{shown}"
            );
        }
        assert_eq!(
            format!("{answer:?}"),
            "TokenResponse { id: \"asdf\", name: \"A\", is_admin: true, token: \"<hidden>\" }"
        );
    }
}
