//! Projects.

use serde::{Deserialize, Serialize};

/// A project as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Creation time, UTC `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    /// Project id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Id of the admin who created it.
    pub creator_id: String,
}

/// Body of `POST /v1.0alpha/project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateProjectRequest {
    /// Project id.
    pub id: String,
    /// Display name.
    pub name: String,
}
