//! Internal errors: each gets an id and goes to the server log and to the database's error
//! log, where an operator (or the user it concerns) finds it by that id.

use hanami_store::logs::ErrorEntry;
use hanami_store::{Store, StoreError};
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
    let error_id = new_id();
    let entry = ErrorEntry {
        error_id: &error_id,
        user_id,
        context,
        input_values,
        message,
    };
    trace(&entry);
    if let Err(e) = store.append_error(entry).await {
        tracing::error!(error_id, "cannot write the error log: {e}");
    }
    error_id
}

/// Records an internal error as [`record`] does, described by [`describe`]; returns its id.
/// While another program locks the database, the entry goes to the server log only: writing
/// it to the error log would wait for the lock as long again, and fail the same way.
pub async fn record_error(
    store: &Store,
    user_id: &str,
    context: &str,
    input_values: &Value,
    error: &anyhow::Error,
) -> String {
    let message = describe(error);
    if !database_is_locked(error) {
        return record(store, user_id, context, input_values, &message).await;
    }
    let error_id = new_id();
    trace(&ErrorEntry {
        error_id: &error_id,
        user_id,
        context,
        input_values,
        message: &message,
    });
    tracing::warn!(error_id, "not in the error log: the database is locked");
    error_id
}

/// Whether an error comes from a database that another program keeps locked.
pub fn database_is_locked(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_locked)
    })
}

/// A new error id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Writes an error-log entry to the server log (the database's error log gets it apart).
pub fn trace(entry: &ErrorEntry<'_>) {
    tracing::error!(
        error_id = entry.error_id,
        context = entry.context,
        user = entry.user_id,
        "{}",
        entry.message
    );
}

/// An error and its causes in one line, `outer: cause: cause`, leaving out a cause whose text
/// the message so far already ends with (error types that print their source and also return
/// it from `source()` would otherwise say it twice).
pub fn describe(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.is_empty() {
            message = text;
        } else if !message.ends_with(&text) {
            message += ": ";
            message += &text;
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open dataset file x: {source}")]
    struct Repeats {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn causes_are_said_once() {
        let io = std::io::Error::other("Too many open files");
        let error = anyhow::Error::new(Repeats { source: io }).context("cannot read dataset");
        assert_eq!(
            describe(&error),
            "cannot read dataset: cannot open dataset file x: Too many open files"
        );
        let plain = anyhow::anyhow!("disk gone").context("saving");
        assert_eq!(describe(&plain), "saving: disk gone");
    }
}
