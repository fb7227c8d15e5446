//! Which resources a caller may see.

/// Project id of the synthetic project every global admin works in (reserved: no real
/// project may have it).
pub const ADMIN_PROJECT: &str = "admin";

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
