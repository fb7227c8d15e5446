//! Internal errors: each gets an id and goes to the server log and to the database's error
//! log, where an operator (or the user it concerns) finds it by that id.

use hanami_store::logs::ErrorEntry;
use hanami_store::{Store, StoreError};
use serde_json::Value;

/// An internal error's id, and where its entry went.
#[derive(Debug)]
pub struct Logged {
    /// The error's id.
    pub id: String,
    /// Whether the entry is in the database's error log too; `false` where it is in the
    /// server log only (the database was locked, or refused the write: a full disk, say).
    pub in_error_log: bool,
}

/// Records an internal error of `user_id` (empty if none) that happened in `context` with
/// these inputs. A failure to write the error log is only logged.
pub async fn record(
    store: &Store,
    user_id: &str,
    context: &str,
    input_values: &Value,
    message: &str,
) -> Logged {
    let error_id = new_id();
    let entry = ErrorEntry {
        error_id: &error_id,
        user_id,
        context,
        input_values,
        message,
    };
    trace(&entry);
    let written = store.append_error(entry).await;
    if let Err(e) = &written {
        tracing::error!(error_id, "cannot write the error log: {e}");
    }
    Logged {
        id: error_id,
        in_error_log: written.is_ok(),
    }
}

/// Records an internal error as [`record`] does, described by [`describe`]. While another
/// program locks the database, the entry goes to the server log only: writing it to the
/// error log would wait for the lock as long again, and fail the same way.
pub async fn record_error(
    store: &Store,
    user_id: &str,
    context: &str,
    input_values: &Value,
    error: &anyhow::Error,
) -> Logged {
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
    Logged {
        id: error_id,
        in_error_log: false,
    }
}

/// Whether an error comes from a database that another program keeps locked.
pub fn database_is_locked(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_locked)
    })
}

/// Whether the server ran out of file descriptors: `EMFILE` or `ENFILE` among the causes.
pub(crate) fn out_of_descriptors(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|code| code == libc::EMFILE || code == libc::ENFILE)
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
    use super::{describe, record};

    /// An entry that the database refuses is said to be in the server log only.
    #[tokio::test]
    async fn an_entry_the_database_refuses_is_said_to_be_in_the_server_log_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = hanami_store::Store::open(&dir.path().join("hanami.db"))
            .await
            .unwrap();
        let inputs = serde_json::json!({});
        let logged = record(&store, "", "test", &inputs, "first").await;
        assert!(logged.in_error_log, "{logged:?}");
        store.close().await;
        let logged = record(&store, "", "test", &inputs, "second").await;
        assert!(!logged.in_error_log, "{logged:?}");
    }

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
