//! Projects (global admins only).

use hanami_types::list::ListTable;
use hanami_types::projects::{CreateProjectRequest, Project};

use crate::{Client, Result};

impl Client {
    /// Creates a project.
    pub async fn create_project(&self, id: &str, name: &str) -> Result<Project> {
        let body = CreateProjectRequest {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        self.post("project", &body).await
    }

    /// One project.
    pub async fn project(&self, id: &str) -> Result<Project> {
        self.get("project", &[("id", id)]).await
    }

    /// All projects.
    pub async fn projects(&self) -> Result<ListTable> {
        self.get("project/all", &[]).await
    }

    /// Deletes a project.
    pub async fn delete_project(&self, id: &str) -> Result<()> {
        self.delete("project", &[("id", id)]).await
    }
}
