//! The caller of a request and the resources it may see.

use hanami_types::auth::AuthInfo;
use serde::{Deserialize, Serialize};

/// Project id of the synthetic project every global admin works in.
pub const ADMIN_PROJECT: &str = "admin";

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

/// Which resources (datasets, clusters, checkpoints, uploads) a caller may see.
///
/// A resource outside the scope is reported as not found, so its existence does not leak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Global admins: everything.
    All,
    /// Project admins: everything in their project.
    Project(String),
    /// Members: what they own in their project.
    Owned {
        /// The token's project.
        project_id: String,
        /// The caller's user id.
        owner_id: String,
    },
}

impl Scope {
    /// Whether a resource with this project and owner is visible.
    pub fn contains(&self, project_id: &str, owner_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Project(p) => p == project_id,
            Scope::Owned {
                project_id: p,
                owner_id: o,
            } => p == project_id && o == owner_id,
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
