//! The caller of a request and the resources it may see.

use hanami_types::auth::AuthInfo;
pub use hanami_types::scope::{ADMIN_PROJECT, Scope};
use serde::{Deserialize, Serialize};

/// Who is calling: the user context a token carries.
///
/// Serialized as JSON, this is the `user` claim of the JWT (field names as in the original).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Creation time of the user.
    pub created_at: String,
    /// Who created the user.
    pub creator_id: String,
    /// User id.
    pub id: String,
    /// Whether the user is a global admin.
    pub is_admin: bool,
    /// Whether the user administers the token's project.
    pub is_project_admin: bool,
    /// Display name.
    pub name: String,
    /// Project the token is bound to.
    pub project_id: String,
    /// Role in that project.
    pub role: String,
}

impl Caller {
    /// The resources this caller may see and act on.
    pub fn scope(&self) -> Scope {
        if self.is_admin {
            Scope::All
        } else if self.is_project_admin {
            Scope::Project(self.project_id.clone())
        } else {
            Scope::Owned {
                project_id: self.project_id.clone(),
                owner_id: self.id.clone(),
            }
        }
    }

    /// The public part of the context, as `GET auth` answers it.
    pub fn info(&self) -> AuthInfo {
        AuthInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            is_admin: self.is_admin,
            project_id: self.project_id.clone(),
            role: self.role.clone(),
            is_project_admin: self.is_project_admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(is_admin: bool, is_project_admin: bool) -> Caller {
        Caller {
            created_at: "2026-01-01 00:00:00".into(),
            creator_id: "root".into(),
            id: "memb".into(),
            is_admin,
            is_project_admin,
            name: "Member".into(),
            project_id: "proj_a".into(),
            role: "member".into(),
        }
    }

    #[test]
    fn scopes_by_role() {
        assert!(caller(true, true).scope().contains("other", "someone"));
        let project_admin = caller(false, true).scope();
        assert!(project_admin.contains("proj_a", "someone"));
        assert!(!project_admin.contains("proj_b", "memb"));
        let member = caller(false, false).scope();
        assert!(member.contains("proj_a", "memb"));
        assert!(!member.contains("proj_a", "someone"));
        assert!(!member.contains("proj_b", "memb"));
    }
}
