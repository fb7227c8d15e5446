//! The audit log (who changed what) and the error log (what failed, and why).

use hanami_types::list::ListTable;

use crate::{Client, Result};

impl Client {
    /// A page of the audit log (100 entries, oldest first): the caller's own entries, or
    /// with `user_id` that user's (global admins only). Columns `created_at`, `user_id`,
    /// `endpoint`, `request_type`; only requests that change something are logged.
    pub async fn audit_log(&self, user_id: Option<&str>, page: u64) -> Result<ListTable> {
        self.log("audit_log", user_id, page).await
    }

    /// A page of the error log (global admins only; 100 entries, oldest first): every entry,
    /// or with `user_id` that user's. Columns `created_at`, `user_id`, `component`,
    /// `context`, `input_values`, `message`.
    pub async fn error_log(&self, user_id: Option<&str>, page: u64) -> Result<ListTable> {
        self.log("error_log", user_id, page).await
    }

    async fn log(&self, endpoint: &str, user_id: Option<&str>, page: u64) -> Result<ListTable> {
        let page = page.to_string();
        let mut query = vec![("page", page.as_str())];
        if let Some(user_id) = user_id {
            query.push(("user_id", user_id));
        }
        self.get(endpoint, &query).await
    }
}
