//! Datasets: upload, progress, information and the accuracy check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Size of the chunks clients upload files in, and of the server's progress segments.
pub const UPLOAD_CHUNK_SIZE: usize = 128 * 1024;

/// Body of `POST /v1.0alpha/dataset/upload/mnist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MnistUploadRequest {
    /// Dataset name.
    pub name: String,
    /// Byte size of the IDX image file.
    pub input_data_size: u64,
    /// Byte size of the IDX label file.
    pub label_data_size: u64,
}

/// Body of `POST /v1.0alpha/dataset/upload/csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvUploadRequest {
    /// Dataset name.
    pub name: String,
    /// Byte size of the CSV file.
    pub input_data_size: u64,
}

/// Answer of both upload initialisations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStarted {
    /// Creation time.
    pub created_at: String,
    /// Uuid the dataset will have.
    pub uuid: String,
    /// Dataset name.
    pub name: String,
    /// Uploading user.
    pub owner_id: String,
    /// Project of the upload.
    pub project_id: String,
    /// Always `private`.
    pub visibility: String,
    /// Temporary file for the images (MNIST) or the CSV text.
    pub uuid_input_file: String,
    /// Temporary file for the labels (MNIST only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid_label_file: Option<String>,
}

/// Body of `PUT /v1.0alpha/dataset/upload/mnist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MnistFinalizeRequest {
    /// Dataset uuid from the initialisation.
    pub uuid: String,
    /// Temporary image file.
    pub uuid_input_file: String,
    /// Temporary label file.
    pub uuid_label_file: String,
}

/// Body of `PUT /v1.0alpha/dataset/upload/csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvFinalizeRequest {
    /// Dataset uuid from the initialisation.
    pub uuid: String,
    /// Temporary CSV file.
    pub uuid_input_file: String,
}

/// Answer of a finalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetUuid {
    /// The dataset's uuid.
    pub uuid: String,
}

/// Answer of `GET /v1.0alpha/dataset/progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadProgress {
    /// Dataset uuid.
    pub uuid: String,
    /// Whether every byte of every file of the upload has arrived (always true once the
    /// dataset is finalised).
    pub complete: bool,
}

/// A half-open range of columns, `[start_column, end_column)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRange {
    /// First column.
    pub start_column: u64,
    /// One past the last column.
    pub end_column: u64,
}

/// Answer of `GET /v1.0alpha/dataset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Dataset uuid.
    pub uuid: String,
    /// Dataset name.
    pub name: String,
    /// Named column ranges, e.g. `picture` and `label` of an MNIST dataset.
    pub description: BTreeMap<String, ColumnRange>,
    /// Owning user.
    pub owner_id: String,
    /// Owning project.
    pub project_id: String,
    /// Always `private`.
    pub visibility: String,
    /// File format version, `v1.alpha`.
    pub version: String,
    /// Rows (samples).
    pub number_of_rows: u64,
    /// Values per row.
    pub number_of_columns: u64,
    /// Creation time (an addition of Hanami-rs; the original had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Most values one answer of `GET /v1.0alpha/dataset/rows` holds (a few MB of JSON, and
/// about ten times that in the server's memory while it is made).
pub const MAX_ROW_VALUES: u64 = 1 << 18;

/// Answer of `GET /v1.0alpha/dataset/rows` (an addition of Hanami-rs): some rows of a
/// dataset, such as the values a request task wrote into its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRows {
    /// Dataset uuid.
    pub uuid: String,
    /// Index of the first row given (from 0).
    pub start: u64,
    /// Rows the dataset has in all.
    pub number_of_rows: u64,
    /// Values per row.
    pub number_of_columns: u64,
    /// The rows from `start` on, each with its values in column order (bytes of an MNIST
    /// dataset as 0–255), written as the shortest decimals that read back as the same `f32`
    /// (`0.1`, not the `0.10000000149011612` of the value widened to `f64`).
    #[serde(serialize_with = "shortest_f32_rows")]
    pub rows: Vec<Vec<f32>>,
}

/// Serializes rows of `f32` values as the shortest decimals that read back as the same
/// values: serializers that widen an `f32` to `f64` on the way (`serde_json::to_value`)
/// would write every inexact one with its binary tail.
fn shortest_f32_rows<S: serde::Serializer>(rows: &[Vec<f32>], out: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    struct Row<'a>(&'a [f32]);
    impl Serialize for Row<'_> {
        fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
            let mut seq = out.serialize_seq(Some(self.0.len()))?;
            for value in self.0 {
                // Rust writes an `f32` as its shortest round-trip decimal; as an `f64` that
                // decimal is written the same way.
                let shortest: f64 = value.to_string().parse().unwrap_or(f64::from(*value));
                seq.serialize_element(&shortest)?;
            }
            seq.end()
        }
    }
    let mut seq = out.serialize_seq(Some(rows.len()))?;
    for row in rows {
        seq.serialize_element(&Row(row))?;
    }
    seq.end()
}

/// Answer of `GET /v1.0alpha/dataset/check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetCheck {
    /// Percentage of rows whose result matches the reference label.
    pub accuracy: f64,
}

#[cfg(test)]
mod tests {
    use super::DatasetRows;

    #[test]
    fn rows_are_written_as_their_shortest_decimals_and_read_back_alike() {
        let values = vec![0.1f32, 1e-7, 255.0, -3.4e38, f32::MIN_POSITIVE, 0.0];
        let rows = DatasetRows {
            uuid: "u".into(),
            start: 0,
            number_of_rows: 1,
            number_of_columns: values.len() as u64,
            rows: vec![values.clone()],
        };
        // Also through a `Value`, as the server's answers go.
        let text = serde_json::to_value(&rows).unwrap().to_string();
        assert!(
            text.contains("[0.1,1e-7,255.0,-3.4e+38,1.1754944e-38,0.0]"),
            "{text}"
        );
        let back: DatasetRows = serde_json::from_str(&text).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.rows[0]), bits(&values));
    }
}
