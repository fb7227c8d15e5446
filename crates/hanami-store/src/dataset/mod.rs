//! Dataset files: the on-disk format, its writer and read-only reader, and the converters that
//! turn uploaded MNIST (IDX) and CSV files into datasets.
//!
//! A dataset is one file holding a table of numbers: `number_of_rows` rows of
//! `number_of_columns` values, all of one [`DataType`] (`u8` for MNIST, `f32` for CSV uploads and
//! request results). A JSON *description* names column ranges, e.g. `picture` = columns
//! `[0, 784)` and `label` = `[784, 794)`; task inputs and outputs refer to these names.
//!
//! # File layout ("hanami data-set v1.alpha")
//!
//! The layout is the original OpenHanami's, so files stay interchangeable. All integers are
//! little endian; text fields are ASCII padded with NUL bytes.
//!
//! | Offset | Size | Field |
//! |---:|---:|---|
//! | 0 | 8 | `hanami` (type identifier) |
//! | 8 | 32 | `data-set` (file identifier) |
//! | 40 | 8 | `v1` (version) |
//! | 48 | 8 | `alpha` (minor version) |
//! | 56 | 1 | data type: 1 = `u8`, 4 = `f32` (the value is also the size of one value) |
//! | 57 | 1 | bytes per value: 1 or 4, equal to the data type |
//! | 58 | 2 | zero |
//! | 60 | 4 | `description_size`: byte length of the description JSON (`u32`) |
//! | 64 | 8 | total file size in bytes (`u64`) |
//! | 72 | 8 | `number_of_rows` (`u64`) |
//! | 80 | 8 | `number_of_columns` (`u64`, at least 1) |
//! | 88 | 255 | dataset name, UTF-8, NUL padded |
//! | 343 | 1 | name length in bytes, 1..=254 |
//! | 344 | 3752 | zero (the header is 4096 bytes) |
//! | 4096 | `description_size` | description: compact JSON, keys sorted, e.g. `{"label":{"end_column":794,"start_column":784},"picture":{"end_column":784,"start_column":0}}` |
//! | 4096 + `description_size` | rows × columns × bytes per value | the values, row-major, no padding |
//!
//! So the file size is always `4096 + description_size + rows × columns × bytes per value`; the
//! reader refuses any file where that, the recorded file size and the real length disagree.
//!
//! # Safety of stored data
//!
//! * [`DatasetWriter`] writes into a hidden temporary file next to the destination and only
//!   moves it into place in [`DatasetWriter::finish`], after the header is complete and the
//!   data is fsynced; it never replaces an existing file. A writer dropped early (error, panic,
//!   cancelled task) removes its temporary file, so a dataset file either exists complete or not
//!   at all. Finished files are made read-only (mode `0o400`: they
//!   are written as `0o600`, for the server's user only).
//! * [`DatasetReader`] opens files read-only and holds no write handle at all, so reading can
//!   never change a dataset (the original appended its read buffer to the file on close).
//! * The writer hashes what it writes: [`DatasetWriter::finish`] and
//!   [`DatasetWriter::suspend`] report the file's [`Checksum`], which the caller records, and
//!   [`DatasetReader::verify`] (and [`DatasetWriter::resume`]) compare a file with it, so
//!   that a file changed on disk since (bit rot, another program) is not read as valid.
//!   [`VerifiedFiles`] remembers the files that matched, so that a file used again and again
//!   is read whole for it once per change (on the local file systems of Linux), not at
//!   every use.
//! * The converters ([`convert_mnist`], [`convert_csv`]) validate their input completely
//!   before the dataset file appears; a failure leaves nothing behind. They allocate the
//!   file's disk space up front, before its rows are written, and say when they have, so
//!   that space promised for the dataset elsewhere can be given back.
//!
//! Everything here is synchronous, blocking file I/O; async callers should run it on a blocking
//! thread. Readers are `Send + Sync` and cheap to clone; all reads are positional, so any number
//! of threads may read one dataset at once.

mod csv;
mod error;
mod file;
mod mnist;
mod verified;

use std::collections::BTreeMap;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

pub use csv::convert_csv;
pub use error::{ConvertError, DatasetFileError, IdxFile};
pub use file::{
    DatasetReader, DatasetWriter, RowCursor, is_temp_file_name, remove_stale_temp_files,
};
pub use mnist::convert_mnist;
use mnist::{MNIST_IMAGE_MAGIC, MNIST_LABEL_MAGIC};
pub use verified::VerifiedFiles;

/// The type of every value stored in a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Unsigned 8-bit integers, 0..=255 (MNIST pixels and one-hot labels). Read as f32 unscaled.
    U8,
    /// 32-bit IEEE floats, little endian (CSV uploads, request results).
    F32,
}

impl DataType {
    /// The type code stored in the file header: 1 for `u8`, 4 for `f32`.
    pub fn code(self) -> u8 {
        match self {
            DataType::U8 => 1,
            DataType::F32 => 4,
        }
    }

    /// The type for a header type code, `None` for unknown codes.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(DataType::U8),
            4 => Some(DataType::F32),
            _ => None,
        }
    }

    /// Bytes per stored value: 1 or 4.
    pub fn size(self) -> usize {
        match self {
            DataType::U8 => 1,
            DataType::F32 => 4,
        }
    }

    /// Short name for messages: `"u8"` or `"f32"`.
    pub fn name(self) -> &'static str {
        match self {
            DataType::U8 => "u8",
            DataType::F32 => "f32",
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A half-open range of columns `[start_column, end_column)`, one entry of a [`Description`].
///
/// Serialized as `{"end_column": e, "start_column": s}` (keys sorted, as the original wrote
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub struct ColumnRange {
    /// First column of the range.
    pub start_column: u64,
    /// One past the last column of the range.
    pub end_column: u64,
}

impl ColumnRange {
    /// The range `[start_column, end_column)`.
    pub fn new(start_column: u64, end_column: u64) -> Self {
        ColumnRange {
            start_column,
            end_column,
        }
    }

    /// Number of columns in the range (0 if `end_column <= start_column`).
    pub fn width(&self) -> u64 {
        self.end_column.saturating_sub(self.start_column)
    }
}

impl std::fmt::Display for ColumnRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {})", self.start_column, self.end_column)
    }
}

impl Serialize for ColumnRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Written by hand so that the keys come out sorted whatever serde_json features are on.
        let mut s = serializer.serialize_struct("ColumnRange", 2)?;
        s.serialize_field("end_column", &self.end_column)?;
        s.serialize_field("start_column", &self.start_column)?;
        s.end()
    }
}

/// The column map of a dataset: field name → column range. Sorted by name.
pub type Description = BTreeMap<String, ColumnRange>;

/// Everything the header and description of a dataset file say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetHeader {
    /// The dataset name stored in the file (1..=254 bytes of UTF-8).
    pub name: String,
    /// Type of every value.
    pub data_type: DataType,
    /// Number of rows.
    pub number_of_rows: u64,
    /// Number of values per row (at least 1).
    pub number_of_columns: u64,
    /// Named column ranges; each lies within `[0, number_of_columns)`.
    pub description: Description,
}

impl DatasetHeader {
    /// The format version as GET dataset reports it: `"v1.alpha"`.
    pub fn version(&self) -> &'static str {
        FORMAT_VERSION
    }

    /// The column range of a description field, if the dataset has it.
    pub fn column_range(&self, field: &str) -> Option<ColumnRange> {
        self.description.get(field).copied()
    }
}

/// The smallest and the largest value of one description field, over all its rows and
/// columns. Serialized as `{"min": …, "max": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValueRange {
    /// The smallest value.
    pub min: f32,
    /// The largest value.
    pub max: f32,
}

impl ValueRange {
    /// Whether every value lies in `[low, high]`.
    pub fn within(&self, low: f32, high: f32) -> bool {
        low <= self.min && self.max <= high
    }
}

impl std::fmt::Display for ValueRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} to {}", self.min, self.max)
    }
}

/// The value range of each description field of a dataset with at least one row.
pub type ValueRanges = BTreeMap<String, ValueRange>;

/// The checksum of a dataset file: the XXH3-64 of its 4096-byte header followed by the
/// XXH3-64 (8 bytes, little endian) of everything after the header (description and rows).
/// The database records it when the file is written, and [`DatasetReader::verify`] compares
/// the file with it before its rows are used, so that a file damaged or changed on disk is
/// noticed instead of read. Written as `xxh3:` and 16 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(u64);

impl Checksum {
    /// The checksum of a file with this header and this XXH3-64 of what follows it.
    pub(crate) fn of(header: &[u8], rest_digest: u64) -> Self {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(header);
        hasher.update(&rest_digest.to_le_bytes());
        Checksum(hasher.digest())
    }
}

/// How [`Checksum`]'s text starts: the name of the hash.
const CHECKSUM_PREFIX: &str = "xxh3:";

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{CHECKSUM_PREFIX}{:016x}", self.0)
    }
}

impl std::str::FromStr for Checksum {
    type Err = String;

    /// Reads the text [`Display`](std::fmt::Display) writes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.strip_prefix(CHECKSUM_PREFIX)
            .filter(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(Checksum)
            .ok_or_else(|| {
                format!("not a dataset checksum ({CHECKSUM_PREFIX} and 16 hex digits): {text:?}")
            })
    }
}

impl Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What the database records of a dataset's content beside its file: facts gathered while
/// the file was written, which the file itself does not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentSummary {
    /// The smallest and largest value of each description field.
    pub value_ranges: ValueRanges,
    /// The checksum of the whole file.
    pub checksum: Checksum,
}

/// What [`DatasetWriter::finish`] and the converters return: the header of the new dataset
/// file and the summary of its content.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenDataset {
    /// The header of the new file.
    pub header: DatasetHeader,
    /// Its value ranges and checksum.
    pub content: ContentSummary,
}

/// The format version string of the files written here: `"v1.alpha"`.
pub const FORMAT_VERSION: &str = "v1.alpha";

/// The description as stored in the file: compact JSON with sorted keys.
pub fn description_json(description: &Description) -> String {
    serde_json::to_string(description).expect("a map of strings to integers always serializes")
}

/// The description of a result dataset of a request task: one field `result_name` spanning
/// all `number_of_outputs` columns.
pub fn result_description(result_name: &str, number_of_outputs: u64) -> Description {
    Description::from([(
        result_name.to_owned(),
        ColumnRange::new(0, number_of_outputs),
    )])
}

/// Whether the file system that holds `dir` allocates space up front (where it does not,
/// converters never report an allocation).
#[cfg(test)]
pub(crate) fn can_allocate(dir: &std::path::Path) -> bool {
    let probe = tempfile::tempfile_in(dir).unwrap();
    crate::files::preallocate(&probe, 4096).unwrap()
}

/// The length and the allocated bytes of the one writer's temporary file in `dir` (for the
/// converters' tests, called when they report the allocation).
#[cfg(test)]
pub(crate) fn temp_file_space(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let temp: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| is_temp_file_name(&e.file_name().to_string_lossy()))
        .collect();
    assert_eq!(temp.len(), 1, "{temp:?}");
    let metadata = temp[0].metadata().unwrap();
    (metadata.len(), metadata.blocks() * 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_json_is_compact_and_sorted() {
        let mut d = Description::new();
        d.insert("picture".into(), ColumnRange::new(0, 784));
        d.insert("label".into(), ColumnRange::new(784, 794));
        assert_eq!(
            description_json(&d),
            r#"{"label":{"end_column":794,"start_column":784},"picture":{"end_column":784,"start_column":0}}"#
        );
        let back: Description = serde_json::from_str(&description_json(&d)).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn checksums_read_back_what_they_write_and_nothing_else() {
        let checksum = Checksum::of(b"header", 42);
        let text = checksum.to_string();
        assert!(text.starts_with("xxh3:") && text.len() == 21, "{text}");
        assert_eq!(text.parse::<Checksum>(), Ok(checksum));
        assert_ne!(Checksum::of(b"header", 43), checksum);
        assert_ne!(Checksum::of(b"Header", 42), checksum);
        for bad in [
            "",
            "xxh3:",
            "xxh3:12",
            "crc32:0123456789abcdef",
            "xxh3:0123456789abcdeg",
        ] {
            let e = bad.parse::<Checksum>().unwrap_err();
            assert!(e.contains("not a dataset checksum"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&checksum).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Checksum>(&json).unwrap(), checksum);
        assert!(serde_json::from_str::<Checksum>("\"xxh3:12\"").is_err());
        assert_eq!(
            "xxh3:00000000000000FF"
                .parse::<Checksum>()
                .map(|c| c.to_string()),
            Ok("xxh3:00000000000000ff".to_owned())
        );
    }

    #[test]
    fn data_type_codes() {
        for t in [DataType::U8, DataType::F32] {
            assert_eq!(DataType::from_code(t.code()), Some(t));
            assert_eq!(t.code() as usize, t.size());
        }
        assert_eq!(DataType::from_code(2), None);
    }
}
