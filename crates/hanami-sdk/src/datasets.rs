//! Datasets: upload (MNIST and CSV), information, listing, deletion and accuracy check.

use std::path::Path;
use std::time::Duration;

use hanami_types::datasets::{
    CsvFinalizeRequest, CsvUploadRequest, Dataset, DatasetCheck, DatasetRows, DatasetUuid,
    MnistFinalizeRequest, MnistUploadRequest, UploadProgress, UploadStarted,
};
use hanami_types::list::ListTable;

use crate::{Client, Error, Result};

/// How long to wait for the server to report an upload complete after the last chunk.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the deletion of a failed or cancelled upload may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The size of a file to upload: the server needs it before the first byte, so the file
/// must be a regular one (not a pipe or device), not empty, and readable (it is opened once
/// here, so that a file this process may not read is refused before an upload starts).
/// [`Error::File`] says what is wrong. Blocking.
pub fn upload_file_size(path: &Path) -> Result<u64> {
    let refuse = |source| Error::File {
        path: path.display().to_string(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(refuse)?;
    if metadata.is_dir() {
        return Err(refuse(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a file to upload",
        )));
    }
    if !metadata.is_file() {
        return Err(refuse(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (uploads announce their size first, so pipes and devices \
             cannot be uploaded; save the data to a file)",
        )));
    }
    if metadata.len() == 0 {
        return Err(refuse(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        )));
    }
    std::fs::File::open(path).map_err(refuse)?;
    Ok(metadata.len())
}

/// [`upload_file_size`] on a blocking thread: a network file system can hold up its calls, which
/// must not stall the caller's runtime.
async fn upload_size(path: &Path) -> Result<u64> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || upload_file_size(&owned))
        .await
        .unwrap_or_else(|e| {
            Err(Error::File {
                path: path.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })
        })
}

impl Client {
    /// Uploads an MNIST image and label file pair (IDX format) as a new dataset.
    ///
    /// Dropping the returned future before the files are sent (a timeout around it, say;
    /// also while the server has not yet answered the request that registers the upload)
    /// deletes the unfinished upload on the server in the background; to learn that the
    /// upload was withdrawn, cancel it through [`Client::upload_mnist_until`] instead.
    pub async fn upload_mnist(&self, name: &str, images: &Path, labels: &Path) -> Result<Dataset> {
        self.upload_mnist_with_progress(name, images, labels, &mut |_, _| {})
            .await
    }

    /// [`Client::upload_mnist`], reporting `(bytes sent, bytes total)` after every chunk.
    pub async fn upload_mnist_with_progress(
        &self,
        name: &str,
        images: &Path,
        labels: &Path,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Dataset> {
        self.upload_mnist_until(name, images, labels, progress, std::future::pending())
            .await
    }

    /// [`Client::upload_mnist_with_progress`] that stops with [`Error::Cancelled`] when
    /// `cancel` completes first (e.g. on Ctrl-C). An upload that fails or is cancelled
    /// after the server registered it is deleted there (see [`Client::upload_csv_until`]).
    pub async fn upload_mnist_until(
        &self,
        name: &str,
        images: &Path,
        labels: &Path,
        progress: &mut (dyn FnMut(u64, u64) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<Dataset> {
        let (image_size, label_size) = (upload_size(images).await?, upload_size(labels).await?);
        // Boxed, so that it can be handed on: it is dropped when the sending steps end.
        let mut cancel = Box::pin(cancel);
        let body = mnist_start(name, image_size, label_size);
        let started = self
            .register_upload("dataset/upload/mnist", body, &mut cancel)
            .await?;
        let steps = async {
            let label_uuid = started
                .uuid_label_file
                .clone()
                .ok_or_else(|| Error::Protocol("no uuid_label_file in the upload answer".into()))?;
            let total = image_size + label_size;
            self.upload_file(&started.uuid_input_file, images, image_size, &mut |sent| {
                progress(sent, total)
            })
            .await?;
            self.upload_file(&label_uuid, labels, label_size, &mut |sent| {
                progress(image_size + sent, total)
            })
            .await?;
            self.wait_for_upload(&started.uuid).await?;
            Ok(label_uuid)
        };
        let label_uuid = self.settle_upload(&started.uuid, steps, cancel).await?;
        let done: DatasetUuid = self
            .put(
                "dataset/upload/mnist",
                &MnistFinalizeRequest {
                    uuid: started.uuid.clone(),
                    uuid_input_file: started.uuid_input_file,
                    uuid_label_file: label_uuid,
                },
            )
            .await
            .map_err(|e| unanswered(e, &started.uuid))?;
        self.created(&done.uuid).await
    }

    /// Uploads a CSV file (header line, then numeric rows) as a new dataset. Dropping the
    /// future before the file is sent withdraws the upload, as for [`Client::upload_mnist`].
    pub async fn upload_csv(&self, name: &str, csv: &Path) -> Result<Dataset> {
        self.upload_csv_with_progress(name, csv, &mut |_, _| {})
            .await
    }

    /// [`Client::upload_csv`], reporting `(bytes sent, bytes total)` after every chunk.
    pub async fn upload_csv_with_progress(
        &self,
        name: &str,
        csv: &Path,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Dataset> {
        self.upload_csv_until(name, csv, progress, std::future::pending())
            .await
    }

    /// [`Client::upload_csv_with_progress`] that stops with [`Error::Cancelled`] when
    /// `cancel` completes while the upload is registered or its file is sent. An upload that
    /// fails or is cancelled then is deleted on the server (best effort; a cancel during the
    /// registration first waits for the server's answer, which names the upload), so that
    /// it neither waits for the server's `upload_timeout` nor counts against the caller's
    /// limit of unfinished uploads; the error returned is the one that stopped the upload.
    /// Once every byte has arrived the finalisation is requested and no longer cancelled:
    /// the server converts the file into the dataset whatever the client does, and a
    /// dataset that may exist is never deleted by this call. `cancel` is dropped when that
    /// point is reached, when the deletion of a failed or cancelled upload is over, or when
    /// the registration fails (so a caller can tell these apart by when it is dropped and
    /// how the call ends).
    pub async fn upload_csv_until(
        &self,
        name: &str,
        csv: &Path,
        progress: &mut (dyn FnMut(u64, u64) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<Dataset> {
        let size = upload_size(csv).await?;
        // Boxed, so that it can be handed on: it is dropped when the sending steps end.
        let mut cancel = Box::pin(cancel);
        let body = csv_start(name, size);
        let started = self
            .register_upload("dataset/upload/csv", body, &mut cancel)
            .await?;
        let steps = async {
            self.upload_file(&started.uuid_input_file, csv, size, &mut |sent| {
                progress(sent, size)
            })
            .await?;
            self.wait_for_upload(&started.uuid).await
        };
        self.settle_upload(&started.uuid, steps, cancel).await?;
        let done: DatasetUuid = self
            .put(
                "dataset/upload/csv",
                &CsvFinalizeRequest {
                    uuid: started.uuid.clone(),
                    uuid_input_file: started.uuid_input_file,
                },
            )
            .await
            .map_err(|e| unanswered(e, &started.uuid))?;
        self.created(&done.uuid).await
    }

    /// The dataset an upload just made; [`Error::CreatedUnread`] if it cannot be read.
    async fn created(&self, uuid: &str) -> Result<Dataset> {
        self.dataset(uuid)
            .await
            .map_err(|source| Error::CreatedUnread {
                uuid: uuid.to_owned(),
                source: Box::new(source),
            })
    }

    /// Registers an upload (the request that starts it, `endpoint` with `body`) so that it is
    /// withdrawn also when the call is dropped, or `cancel` completes, before the server has
    /// answered: the request runs as a task of its own, and whoever gives up on it leaves
    /// that task the deletion of the upload it registers ([`Registering`]). A cancel waits
    /// for the answer and that deletion (as long as an answer may take, plus
    /// [`CLEANUP_TIMEOUT`]; they go on in the background after).
    async fn register_upload<B>(
        &self,
        endpoint: &'static str,
        body: B,
        cancel: impl Future<Output = ()>,
    ) -> Result<UploadStarted>
    where
        B: serde::Serialize + Send + Sync + 'static,
    {
        // A token the clone renews on the way stays with the clone; this client renews its
        // own when it needs to.
        let client = self.clone();
        let request = tokio::spawn(async move { client.post(endpoint, &body).await });
        let mut registering = Registering {
            client: self,
            request: Some(request),
        };
        tokio::select! {
            answer = registering.answer() => answer,
            () = cancel => {
                if let Some(cleanup) = registering.abandon() {
                    // (An answer timeout of `Duration::MAX` means no limit.)
                    let limit = self.answer_timeout.saturating_add(CLEANUP_TIMEOUT);
                    let _ = tokio::time::timeout(limit, cleanup).await;
                }
                Err(Error::Cancelled)
            }
        }
    }

    /// Deletes an unfinished upload on the server, best effort (at most [`CLEANUP_TIMEOUT`]):
    /// the server removes idle uploads itself after its `upload_timeout`.
    async fn withdraw(&self, dataset_uuid: &str) {
        let _ = tokio::time::timeout(CLEANUP_TIMEOUT, self.delete_dataset(dataset_uuid)).await;
    }

    /// Runs the steps of a registered upload before its finalisation (sending the files,
    /// waiting until the server has every byte). When they fail, or `cancel` completes
    /// first, the unfinished upload is deleted on the server before the error is returned;
    /// a failed deletion is ignored, as the server removes idle uploads itself after its
    /// `upload_timeout`. When the call's future is dropped meanwhile, the deletion runs in
    /// the background (see [`Abandoned`]).
    async fn settle_upload<T>(
        &self,
        dataset_uuid: &str,
        steps: impl Future<Output = Result<T>>,
        cancel: impl Future<Output = ()>,
    ) -> Result<T> {
        let mut abandoned = Abandoned {
            client: self,
            dataset_uuid,
            armed: true,
        };
        // Kept until the end: dropped only once the upload is withdrawn or will be finalised.
        let mut cancel = std::pin::pin!(cancel);
        let outcome = tokio::select! {
            outcome = steps => outcome,
            () = &mut cancel => Err(Error::Cancelled),
        };
        if outcome.is_err() {
            self.withdraw(dataset_uuid).await;
        }
        // Not before: a future dropped during the deletion above leaves it to the guard.
        abandoned.armed = false;
        outcome
    }

    /// First step of an MNIST upload: the server creates the temporary files.
    pub async fn start_mnist_upload(
        &self,
        name: &str,
        image_size: u64,
        label_size: u64,
    ) -> Result<UploadStarted> {
        self.post(
            "dataset/upload/mnist",
            &mnist_start(name, image_size, label_size),
        )
        .await
    }

    /// First step of a CSV upload.
    pub async fn start_csv_upload(&self, name: &str, size: u64) -> Result<UploadStarted> {
        self.post("dataset/upload/csv", &csv_start(name, size))
            .await
    }

    /// Whether every byte of an upload has arrived.
    pub async fn upload_progress(&self, dataset_uuid: &str) -> Result<UploadProgress> {
        self.get("dataset/progress", &[("uuid", dataset_uuid)])
            .await
    }

    async fn wait_for_upload(&self, dataset_uuid: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + PROGRESS_TIMEOUT;
        loop {
            if self.upload_progress(dataset_uuid).await?.complete {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "the server has not reported every byte of upload {dataset_uuid} as \
                         stored"
                    ),
                    waited: PROGRESS_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One dataset.
    pub async fn dataset(&self, uuid: &str) -> Result<Dataset> {
        self.get("dataset", &[("uuid", uuid)]).await
    }

    /// All datasets visible to the caller, then the unfinished uploads visible to it (not
    /// ready until finalised: asking for their data is a [`crate::Error::Conflict`];
    /// [`Client::delete_dataset`] cancels one).
    pub async fn datasets(&self) -> Result<ListTable> {
        self.get("dataset/all", &[]).await
    }

    /// Deletes a dataset, or cancels an unfinished upload ([`crate::Error::Conflict`] while
    /// it is being made into the dataset, or while the request task that writes the dataset
    /// has not ended).
    pub async fn delete_dataset(&self, uuid: &str) -> Result<()> {
        self.delete("dataset", &[("uuid", uuid)]).await
    }

    /// Accuracy (percent) of a result dataset against the labels of a reference dataset.
    pub async fn check_dataset(&self, reference_uuid: &str, result_uuid: &str) -> Result<f64> {
        let check: DatasetCheck = self
            .get(
                "dataset/check",
                &[
                    ("dataset_uuid", reference_uuid),
                    ("result_uuid", result_uuid),
                ],
            )
            .await?;
        Ok(check.accuracy)
    }

    /// Up to `count` rows of a dataset from row `start` on (an addition of Hanami-rs), such
    /// as the values a request task wrote into its result dataset. An answer holds at most
    /// [`MAX_ROW_VALUES`](crate::types::datasets::MAX_ROW_VALUES) values
    /// ([`crate::Error::BadRequest`] beyond); fewer rows come back where the dataset ends,
    /// so a large `count` asks for the rest.
    pub async fn dataset_rows(&self, uuid: &str, start: u64, count: u64) -> Result<DatasetRows> {
        let (start, count) = (start.to_string(), count.to_string());
        self.get(
            "dataset/rows",
            &[("uuid", uuid), ("start", &start), ("count", &count)],
        )
        .await
    }
}

/// An upload whose files are being sent: if the future of the call is dropped before they
/// are (a timeout around the call, a `select!` that went another way), the unfinished upload
/// is deleted on the server in the background, as a cancelled one is, so that it neither
/// waits for the server's `upload_timeout` nor keeps its owner from being deleted.
struct Abandoned<'a> {
    client: &'a Client,
    dataset_uuid: &'a str,
    /// Until the sending steps have ended (then the call itself deletes what failed).
    armed: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Without a runtime (the caller's is shutting down) the server's timeout cleans up.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        let uuid = self.dataset_uuid.to_owned();
        runtime.spawn(async move {
            client.withdraw(&uuid).await;
        });
    }
}

/// The request that starts an MNIST upload of these sizes.
fn mnist_start(name: &str, image_size: u64, label_size: u64) -> MnistUploadRequest {
    MnistUploadRequest {
        name: name.to_owned(),
        input_data_size: image_size,
        label_data_size: label_size,
    }
}

/// The request that starts a CSV upload of this size.
fn csv_start(name: &str, size: u64) -> CsvUploadRequest {
    CsvUploadRequest {
        name: name.to_owned(),
        input_data_size: size,
    }
}

/// The request that registers an upload, running as a task of its own: given up on before
/// its answer (the call's future dropped, or cancelled), it is left a background task that
/// deletes the upload once the answer names it, so that no registered upload waits for the
/// server's `upload_timeout` or counts against its owner's limit of unfinished uploads.
struct Registering<'a> {
    client: &'a Client,
    /// Until its answer has been taken.
    request: Option<tokio::task::JoinHandle<Result<UploadStarted>>>,
}

impl Registering<'_> {
    /// The server's answer to the request (taken once); a panic of the request goes on
    /// in the caller.
    async fn answer(&mut self) -> Result<UploadStarted> {
        let request = self.request.as_mut().expect("an answer is taken once");
        let answer = request.await;
        self.request = None;
        match answer {
            Ok(answer) => answer,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(e) => Err(Error::Protocol(format!(
                "the upload's start did not end: {e}"
            ))),
        }
    }

    /// Leaves the request to a background task that deletes what it registers; the task's
    /// handle, if a runtime was there to run it.
    fn abandon(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let request = self.request.take()?;
        // Without a runtime (the caller's is shutting down) the server's timeout cleans up.
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let client = self.client.clone();
        Some(runtime.spawn(async move {
            if let Ok(Ok(started)) = request.await {
                client.withdraw(&started.uuid).await;
            }
        }))
    }
}

impl Drop for Registering<'_> {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// A finalisation error as [`Error::FinalizeUnanswered`] when no answer came (the server
/// may still register the dataset); other errors as they are.
fn unanswered(error: Error, dataset_uuid: &str) -> Error {
    match error {
        // Not when the connection could not be made: the server never got the request.
        Error::Transport(e) if !e.is_connect() && e.status().is_none() => {
            Error::FinalizeUnanswered {
                uuid: dataset_uuid.to_owned(),
                source: Box::new(Error::Transport(e)),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::upload_file_size;

    #[test]
    fn only_regular_non_empty_files_are_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, b"").unwrap();
        let full = dir.path().join("full.csv");
        std::fs::write(&full, b"a\n1\n").unwrap();
        assert_eq!(upload_file_size(&full).unwrap(), 4);
        let error = upload_file_size(&empty).unwrap_err().to_string();
        assert!(error.ends_with("empty.csv: the file is empty"), "{error}");
        let error = upload_file_size(dir.path()).unwrap_err().to_string();
        assert!(
            error.ends_with(": is a directory, not a file to upload"),
            "{error}"
        );
        let error = upload_file_size(std::path::Path::new("/dev/null"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/dev/null: not a regular file"), "{error}");
        let error = upload_file_size(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing"), "{error}");
    }
}
