//! Resources that belong to a project and an owner: datasets (later also clusters and
//! checkpoints). Every lookup takes the caller's [`Scope`], so a resource outside it is
//! indistinguishable from one that does not exist.

use hanami_types::list::{ListTable, RESOURCE_COLUMNS};
use hanami_types::scope::Scope;
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Store, StoreError, now_timestamp};

/// A dataset's database row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRow {
    /// Dataset uuid.
    pub uuid: String,
    /// Owning project.
    pub project_id: String,
    /// Owning user.
    pub owner_id: String,
    /// Always `private` at present.
    pub visibility: String,
    /// Dataset name.
    pub name: String,
    /// File name inside the data directory's dataset folder.
    pub file_name: String,
    /// Creation time.
    pub created_at: String,
}

impl DatasetRow {
    /// A new private dataset row, created now.
    pub fn new(uuid: &str, name: &str, owner_id: &str, project_id: &str, file_name: &str) -> Self {
        Self {
            uuid: uuid.to_owned(),
            project_id: project_id.to_owned(),
            owner_id: owner_id.to_owned(),
            visibility: "private".to_owned(),
            name: name.to_owned(),
            file_name: file_name.to_owned(),
            created_at: now_timestamp(),
        }
    }
}

fn dataset_from_row(row: &SqliteRow) -> DatasetRow {
    DatasetRow {
        uuid: row.get("uuid"),
        project_id: row.get("project_id"),
        owner_id: row.get("owner_id"),
        visibility: row.get("visibility"),
        name: row.get("name"),
        file_name: row.get("file_name"),
        created_at: row.get("created_at"),
    }
}

/// The SQL condition of a scope and its two optional bindings (project, owner).
fn scope_filter(scope: &Scope) -> (Option<&str>, Option<&str>) {
    match scope {
        Scope::All => (None, None),
        Scope::Project(project) => (Some(project), None),
        Scope::Owned {
            project_id,
            owner_id,
        } => (Some(project_id), Some(owner_id)),
    }
}

const SCOPE_SQL: &str = "(?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR owner_id = ?2)";

impl Store {
    /// Inserts a dataset row.
    pub async fn insert_dataset(&self, row: &DatasetRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO datasets (uuid, project_id, owner_id, visibility, name, file_name, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.uuid)
        .bind(&row.project_id)
        .bind(&row.owner_id)
        .bind(&row.visibility)
        .bind(&row.name)
        .bind(&row.file_name)
        .bind(&row.created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// A dataset visible in the scope.
    pub async fn dataset(
        &self,
        scope: &Scope,
        uuid: &str,
    ) -> Result<Option<DatasetRow>, StoreError> {
        let (project, owner) = scope_filter(scope);
        let row = sqlx::query(&format!(
            "SELECT * FROM datasets WHERE {SCOPE_SQL} AND uuid = ?3"
        ))
        .bind(project)
        .bind(owner)
        .bind(uuid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(dataset_from_row))
    }

    /// The datasets visible in the scope, oldest first, as the list table of the API.
    pub async fn dataset_list(&self, scope: &Scope) -> Result<ListTable, StoreError> {
        let (project, owner) = scope_filter(scope);
        let rows = sqlx::query(&format!(
            "SELECT * FROM datasets WHERE {SCOPE_SQL} ORDER BY seq"
        ))
        .bind(project)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        let mut table = ListTable::new(RESOURCE_COLUMNS);
        for row in rows.iter().map(dataset_from_row) {
            table.body.push(
                [
                    row.created_at,
                    row.uuid,
                    row.project_id,
                    row.owner_id,
                    row.visibility,
                    row.name,
                ]
                .into_iter()
                .map(Value::String)
                .collect(),
            );
        }
        Ok(table)
    }

    /// Deletes a dataset row visible in the scope and returns it; `None` if there was none.
    pub async fn delete_dataset(
        &self,
        scope: &Scope,
        uuid: &str,
    ) -> Result<Option<DatasetRow>, StoreError> {
        let (project, owner) = scope_filter(scope);
        let row = sqlx::query(&format!(
            "DELETE FROM datasets WHERE {SCOPE_SQL} AND uuid = ?3 RETURNING *"
        ))
        .bind(project)
        .bind(owner)
        .bind(uuid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(dataset_from_row))
    }

    /// File names of all datasets, for removing files nobody references.
    pub async fn dataset_file_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT file_name FROM datasets")
            .fetch_all(&self.pool)
            .await?)
    }
}
