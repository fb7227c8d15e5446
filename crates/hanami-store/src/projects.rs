//! Projects.

use hanami_types::projects::Project;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Store, StoreError, now_timestamp};

/// Why a project could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteProjectError {
    /// No such project.
    #[error("not found")]
    NotFound,
    /// Resources still belong to the project; the text names what.
    #[error("project still owns {0}")]
    InUse(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn project_from_row(row: &SqliteRow) -> Project {
    Project {
        created_at: row.get("created_at"),
        id: row.get("id"),
        name: row.get("name"),
        creator_id: row.get("creator_id"),
    }
}

/// Tables of resources that belong to a project, with the words used to report them.
/// Every resource table joins this list when it is created, so the check of
/// [`Store::delete_project`] stays in one place.
const PROJECT_RESOURCES: &[(&str, &str)] = &[
    ("datasets", "dataset(s)"),
    ("clusters", "cluster(s)"),
    ("checkpoints", "checkpoint(s)"),
];

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
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(project_from_row))
    }

    /// All projects in creation order.
    pub async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        let rows = sqlx::query("SELECT * FROM projects ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(project_from_row).collect())
    }

    /// Deletes a project and the assignments to it, unless resources still belong to it.
    pub async fn delete_project(&self, id: &str) -> Result<(), DeleteProjectError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let mut in_use = Vec::new();
        for (table, what) in PROJECT_RESOURCES {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM {table} WHERE project_id = ?"
            ))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if n > 0 {
                in_use.push(format!("{n} {what}"));
            }
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT seq FROM projects WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if exists.is_none() {
            return Err(DeleteProjectError::NotFound);
        }
        if !in_use.is_empty() {
            return Err(DeleteProjectError::InUse(in_use.join(", ")));
        }
        sqlx::query("DELETE FROM projects WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}
