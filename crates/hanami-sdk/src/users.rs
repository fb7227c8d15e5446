//! Users and project assignments.

use hanami_types::list::ListTable;
use hanami_types::users::{
    AssignProjectRequest, CreateUserRequest, UpdateUserRequest, User, UserProjects,
};

use crate::{Client, Result};

impl Client {
    /// Creates a user.
    pub async fn create_user(
        &self,
        id: &str,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User> {
        let body = CreateUserRequest {
            id: id.to_owned(),
            name: name.to_owned(),
            password: password.to_owned(),
            is_admin,
        };
        self.post("user", &body).await
    }

    /// One user.
    pub async fn user(&self, id: &str) -> Result<User> {
        self.get("user", &[("id", id)]).await
    }

    /// All users.
    pub async fn users(&self) -> Result<ListTable> {
        self.get("user/all", &[]).await
    }

    /// Changes what `change` gives of user `change.id` (its name, password, global admin
    /// flag; an addition of Hanami-rs) and returns the user as it is now. A new password
    /// ends the user's tokens, this client's too when it is that user's.
    pub async fn update_user(&self, change: &UpdateUserRequest) -> Result<User> {
        self.put("user", change).await
    }

    /// Deletes a user.
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        self.delete("user", &[("id", id)]).await
    }

    /// Assigns a project to a user with a role.
    pub async fn assign_project(
        &self,
        user_id: &str,
        project_id: &str,
        role: &str,
        is_project_admin: bool,
    ) -> Result<User> {
        let body = AssignProjectRequest {
            id: user_id.to_owned(),
            project_id: project_id.to_owned(),
            role: role.to_owned(),
            is_project_admin,
        };
        self.post("user/project", &body).await
    }

    /// Removes a project from a user.
    pub async fn unassign_project(&self, user_id: &str, project_id: &str) -> Result<User> {
        self.call(
            reqwest::Method::DELETE,
            "user/project",
            &[("id", user_id), ("project_id", project_id)],
            None::<&()>,
        )
        .await
    }

    /// Projects of a user (`None`: the caller's own).
    pub async fn projects_of_user(&self, user_id: Option<&str>) -> Result<UserProjects> {
        match user_id {
            Some(id) => self.get("user/project", &[("user_id", id)]).await,
            None => self.get("user/project", &[]).await,
        }
    }
}
