//! Projects.

use hanami_types::projects::Project;
use sqlx::sqlite::SqliteRow;

use crate::db::Columns;
use crate::resources::{DeleteError, Holder, delete_unless_holding};
use crate::{Store, StoreError, now_timestamp};

fn project_from_row(row: &SqliteRow) -> Result<Project, StoreError> {
    let row = Columns::of("projects", row);
    Ok(Project {
        created_at: row.get("created_at")?,
        id: row.get("id")?,
        name: row.get("name")?,
        creator_id: row.get("creator_id")?,
    })
}

impl Store {
    /// Creates a project; [`StoreError::Duplicate`] if the id is taken.
    pub async fn create_project(
        &self,
        id: &str,
        name: &str,
        creator_id: &str,
    ) -> Result<Project, StoreError> {
        let created_at = now_timestamp();
        sqlx::query("INSERT INTO projects (id, name, creator_id, created_at) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(creator_id)
            .bind(&created_at)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_insert)?;
        Ok(Project {
            created_at,
            id: id.to_owned(),
            name: name.to_owned(),
            creator_id: creator_id.to_owned(),
        })
    }

    /// One project.
    pub async fn project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query("SELECT * FROM projects WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// All projects in creation order.
    pub async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        let rows = sqlx::query("SELECT * FROM projects ORDER BY seq")
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// Deletes a project and the assignments to it, unless resources still belong to it.
    pub async fn delete_project(&self, id: &str) -> Result<(), DeleteError> {
        delete_unless_holding(self, Holder::Project(id)).await
    }
}
