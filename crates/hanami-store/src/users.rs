//! Users and their project assignments.

use std::collections::HashMap;

use hanami_types::users::{ProjectAssignment, User};
use sqlx::sqlite::SqliteRow;

use crate::db::Columns;
use crate::resources::{DeleteError, Holder, delete_unless_holding};
use crate::{Store, StoreError, now_timestamp};

/// A user with its password hash, as stored.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// What the API shows of the user.
    pub user: User,
    /// argon2id PHC string.
    pub pw_hash: String,
    /// The number of each of the user's project assignments, by project id: unique, and
    /// never used again (the table's `seq`, an `AUTOINCREMENT` key), so an assignment made
    /// anew after a removal has another. Tokens hold on to it: a rebuild of the table must
    /// keep its `sqlite_sequence` entry, or tokens revoked by a removal could come back.
    pub assignment_numbers: HashMap<String, i64>,
}

impl UserRecord {
    /// The number of the user's assignment to `project_id`, if the user has one.
    pub fn assignment_number(&self, project_id: &str) -> Option<i64> {
        self.assignment_numbers.get(project_id).copied()
    }
}

/// What it takes to create a user.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// User id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Creating admin's id.
    pub creator_id: &'a str,
    /// Global admin flag.
    pub is_admin: bool,
    /// argon2id PHC string of the password.
    pub pw_hash: &'a str,
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let row = Columns::of("users", row);
    Ok(User {
        created_at: row.get("created_at")?,
        id: row.get("id")?,
        name: row.get("name")?,
        creator_id: row.get("creator_id")?,
        is_admin: row.get("is_admin")?,
        projects: Vec::new(),
    })
}

impl Store {
    /// Whether at least one global admin exists.
    pub async fn has_admin(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_admin = 1")
            .fetch_one(&self.reads)
            .await?;
        Ok(n > 0)
    }

    /// Creates a user; [`StoreError::Duplicate`] if the id is taken.
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User, StoreError> {
        let created_at = now_timestamp();
        sqlx::query(
            "INSERT INTO users (id, name, creator_id, is_admin, pw_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id)
        .bind(new.name)
        .bind(new.creator_id)
        .bind(new.is_admin)
        .bind(new.pw_hash)
        .bind(&created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(User {
            created_at,
            id: new.id.to_owned(),
            name: new.name.to_owned(),
            creator_id: new.creator_id.to_owned(),
            is_admin: new.is_admin,
            projects: Vec::new(),
        })
    }

    /// Changes what is given of a user (its name, password hash, global admin flag) and
    /// returns it as it is now; `None` if there is no such user.
    pub async fn update_user(
        &self,
        id: &str,
        name: Option<&str>,
        pw_hash: Option<&str>,
        is_admin: Option<bool>,
    ) -> Result<Option<User>, StoreError> {
        let changed = sqlx::query(
            "UPDATE users SET name = COALESCE(?, name), pw_hash = COALESCE(?, pw_hash), \
             is_admin = COALESCE(?, is_admin) WHERE id = ?",
        )
        .bind(name)
        .bind(pw_hash)
        .bind(is_admin)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        self.user(id).await
    }

    /// A user with its assignments and password hash.
    pub async fn user_record(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reads)
            .await?
        else {
            return Ok(None);
        };
        let mut user = user_from_row(&row)?;
        let rows = self.assignment_rows(id).await?;
        user.projects = rows
            .iter()
            .map(assignment_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some(UserRecord {
            user,
            pw_hash: Columns::of("users", &row).get("pw_hash")?,
            assignment_numbers: rows
                .iter()
                .map(|row| {
                    let row = Columns::of("user_projects", row);
                    Ok((row.get("project_id")?, row.get("seq")?))
                })
                .collect::<Result<_, StoreError>>()?,
        }))
    }

    /// A user with its assignments.
    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.user_record(id).await?.map(|r| r.user))
    }

    /// All users in creation order, with their assignments.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY seq")
            .fetch_all(&self.reads)
            .await?;
        let mut users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let index: std::collections::HashMap<String, usize> = users
            .iter()
            .enumerate()
            .map(|(i, user)| (user.id.clone(), i))
            .collect();
        let assignments = sqlx::query(
            "SELECT user_id, project_id, role, is_project_admin FROM user_projects ORDER BY seq",
        )
        .fetch_all(&self.reads)
        .await?;
        for row in &assignments {
            let user_id: String = Columns::of("user_projects", row).get("user_id")?;
            if let Some(&i) = index.get(&user_id) {
                users[i].projects.push(assignment_from_row(row)?);
            }
        }
        Ok(users)
    }

    /// Deletes a user and its assignments, unless resources (in any project) still belong to
    /// it: a user created later under the same id would own them.
    pub async fn delete_user(&self, id: &str) -> Result<(), DeleteError> {
        delete_unless_holding(self, Holder::Owner(id)).await
    }

    /// Project assignments of a user, oldest first.
    pub async fn assignments(&self, user_id: &str) -> Result<Vec<ProjectAssignment>, StoreError> {
        let rows = self.assignment_rows(user_id).await?;
        rows.iter().map(assignment_from_row).collect()
    }

    /// The rows of a user's project assignments, oldest first, with their numbers (`seq`).
    async fn assignment_rows(&self, user_id: &str) -> Result<Vec<SqliteRow>, StoreError> {
        Ok(sqlx::query(
            "SELECT seq, project_id, role, is_project_admin FROM user_projects \
             WHERE user_id = ? ORDER BY seq",
        )
        .bind(user_id)
        .fetch_all(&self.reads)
        .await?)
    }

    /// Assigns a project to a user. [`StoreError::Duplicate`] if already assigned,
    /// [`StoreError::NotFound`] if the user or the project does not exist.
    pub async fn assign_project(
        &self,
        user_id: &str,
        assignment: &ProjectAssignment,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_projects (user_id, project_id, role, is_project_admin) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(&assignment.project_id)
        .bind(&assignment.role)
        .bind(assignment.is_project_admin)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// Removes a project assignment; false if it did not exist.
    pub async fn unassign_project(
        &self,
        user_id: &str,
        project_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM user_projects WHERE user_id = ? AND project_id = ?")
            .bind(user_id)
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn assignment_from_row(row: &SqliteRow) -> Result<ProjectAssignment, StoreError> {
    let row = Columns::of("user_projects", row);
    Ok(ProjectAssignment {
        project_id: row.get("project_id")?,
        role: row.get("role")?,
        is_project_admin: row.get("is_project_admin")?,
    })
}
