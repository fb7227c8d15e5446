//! Errors of the dataset file code. The `Display` texts are meant for people: they say what is
//! wrong and where (byte offset, sizes).

use std::io;
use std::path::PathBuf;

use super::{ColumnRange, DataType};

/// Why a dataset file could not be written, opened or read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetFileError {
    /// An operating-system call failed.
    #[error("cannot {action} dataset file {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "open", "read", "write", "rename".
        action: &'static str,
        /// The file (or directory) concerned.
        path: PathBuf,
        /// The error of the operating system.
        #[source]
        source: io::Error,
    },

    /// The destination of a new dataset already exists; datasets are never overwritten.
    #[error("dataset file {} already exists", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The name given for a new dataset cannot be stored in the header.
    #[error(
        "dataset name must be 1 to 254 bytes without NUL characters, got {len} bytes: {name:?}"
    )]
    InvalidName {
        /// The rejected name (possibly long).
        name: String,
        /// Its length in bytes.
        len: usize,
    },

    /// A new dataset was asked for with zero columns.
    #[error("a dataset needs at least one column")]
    NoColumns,

    /// A description range of a new dataset is empty or reaches past the last column.
    #[error(
        "description field {field:?} has column range {range}, which is empty or exceeds the \
         {columns} columns of the dataset"
    )]
    InvalidDescriptionRange {
        /// The description field.
        field: String,
        /// Its range.
        range: ColumnRange,
        /// Number of columns of the dataset.
        columns: u64,
    },

    /// A row (or block of rows) given to the writer does not fit the column count.
    #[error("{values} values do not make whole rows of {columns} columns")]
    RowWidth {
        /// Number of values given.
        values: usize,
        /// Columns per row.
        columns: u64,
    },

    /// f32 values were appended to a `u8` dataset.
    #[error("cannot store f32 values in a u8 dataset")]
    TypeMismatch,

    /// The writer failed earlier and may hold a partial row; it must be dropped.
    #[error("the dataset writer failed earlier and cannot be used any more")]
    WriterFailed,

    /// The dataset would exceed the sizes the format can describe.
    #[error("dataset too large: {what}")]
    TooLarge {
        /// Which size overflowed.
        what: &'static str,
    },

    /// The file is shorter than the 4096-byte header.
    #[error("not a dataset file: {len} bytes long, shorter than the 4096-byte header")]
    TooShort {
        /// Length of the file.
        len: u64,
    },

    /// The identifier fields do not say `hanami` / `data-set`.
    #[error("not a dataset file: the header does not start with \"hanami\" / \"data-set\"")]
    BadMagic,

    /// The version fields are not `v1` / `alpha`.
    #[error("unsupported dataset file version {found:?}, expected \"v1.alpha\"")]
    UnsupportedVersion {
        /// The version found, as text.
        found: String,
    },

    /// The data type byte at offset 56 is neither 1 (u8) nor 4 (f32).
    #[error("corrupt dataset header: unknown data type {code} at byte 56 (expected 1 or 4)")]
    UnknownDataType {
        /// The byte found.
        code: u8,
    },

    /// The bytes-per-value field does not match the data type.
    #[error(
        "corrupt dataset header: value size {found} at byte 57 does not match data type \
         {data_type} ({} bytes)", data_type.size()
    )]
    TypeSizeMismatch {
        /// The data type of the header.
        data_type: DataType,
        /// The value size found.
        found: u8,
    },

    /// The name entry is empty, too long or not UTF-8.
    #[error("corrupt dataset header: invalid name entry ({reason})")]
    BadNameEntry {
        /// What is wrong with it.
        reason: String,
    },

    /// The header records zero columns.
    #[error("corrupt dataset header: zero columns")]
    ZeroColumns,

    /// Recorded sizes and the real file length disagree.
    #[error(
        "corrupt dataset file: {actual} bytes long, but the header records {recorded} bytes \
         and {rows} rows of {columns} {data_type} values with a {description_size}-byte \
         description need {expected} bytes"
    )]
    SizeMismatch {
        /// Real length of the file.
        actual: u64,
        /// File size recorded in the header.
        recorded: u64,
        /// Size implied by rows, columns, value size and description size.
        expected: u128,
        /// Rows in the header.
        rows: u64,
        /// Columns in the header.
        columns: u64,
        /// Data type in the header.
        data_type: DataType,
        /// Description size in the header.
        description_size: u32,
    },

    /// The description is not valid JSON of the expected shape, or a range in it is invalid.
    #[error("corrupt dataset description: {reason}")]
    BadDescription {
        /// What is wrong.
        reason: String,
    },

    /// A read asked for rows past the end of the dataset.
    #[error("rows {first_row}..{end_row} requested, but the dataset has {rows} rows")]
    RowsOutOfRange {
        /// First row asked for.
        first_row: u64,
        /// One past the last row asked for.
        end_row: u128,
        /// Rows in the dataset.
        rows: u64,
    },

    /// A read asked for columns outside the dataset.
    #[error("column range {range} is invalid for a dataset with {columns} columns")]
    ColumnsOutOfRange {
        /// The range asked for.
        range: ColumnRange,
        /// Columns in the dataset.
        columns: u64,
    },

    /// The caller's buffer does not have the size of the data asked for.
    #[error("output buffer holds {got} values, the read yields {expected}")]
    BufferSize {
        /// Values the read produces.
        expected: u128,
        /// Length of the buffer.
        got: usize,
    },
}
