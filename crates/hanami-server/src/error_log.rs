//! Internal errors: each gets an id and goes to the server log and to the database's error
//! log, where an operator (or the user it concerns) finds it by that id.

use hanami_store::Store;
use hanami_store::logs::ErrorEntry;
use serde_json::Value;

/// Records an internal error of `user_id` (empty if none) that happened in `context` with
/// these inputs; returns its id. A failure to write the error log is only logged.
pub async fn record(
    store: &Store,
    user_id: &str,
    context: &str,
    input_values: &Value,
    message: &str,
) -> String {
    let error_id = uuid::Uuid::new_v4().to_string();
    tracing::error!(error_id, context, user = user_id, "{message}");
    let entry = ErrorEntry {
        error_id: &error_id,
        user_id,
        context,
        input_values,
        message,
    };
    if let Err(e) = store.append_error(entry).await {
        tracing::error!(error_id, "cannot write the error log: {e}");
    }
    error_id
}
