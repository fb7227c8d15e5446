//! Users and their project assignments.

use serde::{Deserialize, Serialize};

/// One project a user is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectAssignment {
    /// Project id.
    pub project_id: String,
    /// Role in the project (free-form; the policy file gives it meaning).
    pub role: String,
    /// Whether the user administers the project.
    pub is_project_admin: bool,
}

/// A user as the API shows it (no password material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Creation time, UTC `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Id of the admin who created the user (`HANAMI_INIT` for the first admin).
    pub creator_id: String,
    /// Whether the user is a global admin.
    pub is_admin: bool,
    /// Project assignments, oldest first; the first one is used at login.
    pub projects: Vec<ProjectAssignment>,
}

/// Body of `POST /v1.0alpha/user`. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUserRequest {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Initial password.
    pub password: String,
    /// Whether the new user is a global admin.
    #[serde(default)]
    pub is_admin: bool,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password", &crate::auth::HIDDEN)
            .field("is_admin", &self.is_admin)
            .finish()
    }
}

/// Body of `PUT /v1.0alpha/user` (an addition of Hanami-rs): what to change of a user; at
/// least one of the changes. `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateUserRequest {
    /// User id.
    pub id: String,
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New password (the user's tokens stop working).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Whether the user is a global admin from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
}

impl std::fmt::Debug for UpdateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUserRequest")
            .field("id", &self.id)
            .field("name", &self.name)
            .field(
                "password",
                &self.password.as_ref().map(|_| crate::auth::HIDDEN),
            )
            .field("is_admin", &self.is_admin)
            .finish()
    }
}

/// Body of `POST /v1.0alpha/user/project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignProjectRequest {
    /// User id.
    pub id: String,
    /// Project id.
    pub project_id: String,
    /// Role in the project.
    pub role: String,
    /// Whether the user administers the project.
    #[serde(default)]
    pub is_project_admin: bool,
}

/// Answer of `GET /v1.0alpha/user/project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProjects {
    /// Assignments of the user; global admins also get the synthetic `admin` project.
    pub projects: Vec<ProjectAssignment>,
}
