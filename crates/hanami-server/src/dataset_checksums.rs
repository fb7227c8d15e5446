//! Checksums for the datasets written before checksums were recorded (by servers of schema
//! 13 and older): taken once, in the background after the start, from the files as they are
//! then, so that later changes to those files are found as for newer datasets.

use hanami_store::dataset::DatasetReader;

use crate::state::App;

/// Takes and records the checksum of each dataset that has none, one file at a time, until
/// all have one or the server begins to stop. A file that cannot be read whole is left
/// unchecked, with a warning (its next use says what is wrong with it).
pub async fn record_missing(app: App) {
    let missing = match app.store.datasets_without_checksum().await {
        Ok(missing) => missing,
        Err(e) => {
            tracing::warn!("cannot look for datasets without checksums: {e}");
            return;
        }
    };
    if missing.is_empty() {
        return;
    }
    tracing::info!(
        "taking the checksums of {} written before checksums were recorded (of their files \
         as they are now)",
        datasets(missing.len())
    );
    let mut recorded = 0usize;
    for (uuid, file_name) in missing {
        if *app.stopping.borrow() {
            tracing::info!(
                "took the checksums of {} before the stop; the next start takes the rest",
                datasets(recorded)
            );
            return;
        }
        let path = app.paths.datasets().join(&file_name);
        let read = path.clone();
        let taken =
            tokio::task::spawn_blocking(move || DatasetReader::open(&read)?.checksum()).await;
        if *app.stopping.borrow() {
            // The database may close any moment: the next start takes this one again.
            return;
        }
        match taken {
            Ok(Ok(checksum)) => match app.store.record_missing_checksum(&uuid, checksum).await {
                Ok(true) => recorded += 1,
                // Deleted meanwhile.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("cannot record the checksum of dataset '{uuid}': {e}");
                    return;
                }
            },
            // Deleted meanwhile, or missing: its next use says so.
            Ok(Err(e)) if e.is_missing_file() => {}
            Ok(Err(e)) => tracing::warn!(
                "dataset '{uuid}' gets no checksum, its file cannot be read whole ({}: {e}); \
                 it is read unchecked",
                path.display()
            ),
            Err(e) => {
                tracing::warn!("taking the checksum of dataset '{uuid}' failed: {e}");
                return;
            }
        }
    }
    tracing::info!(
        "recorded the checksums of {} written before checksums were recorded",
        datasets(recorded)
    );
}

/// "1 dataset", "2 datasets".
fn datasets(count: usize) -> String {
    match count {
        1 => "1 dataset".to_owned(),
        n => format!("{n} datasets"),
    }
}
