//! Errors of the dataset file code and of the upload converters.
//!
//! The `Display` texts are meant for people: [`ConvertError`] texts become the body of a 400
//! answer to a finalize request, so they say which file is wrong, what is wrong and where (byte
//! offset or line and column).

use std::io;
use std::path::PathBuf;

use super::{Checksum, ColumnRange, DataType};

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

    /// The path holds something else than a regular file (a directory, a named pipe, …).
    #[error("not a dataset file: not a regular file")]
    NotAFile,

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

    /// The file ended before a read of what its header records: it was cut short after its
    /// length was checked.
    #[error("corrupt dataset file: it has become shorter than its header records")]
    CutShort,

    /// The file's checksum is not the one recorded for it (when it was written, or for an
    /// older dataset at a start): it was damaged or changed on disk since.
    #[error("its checksum {found} differs from the {recorded} recorded for it")]
    ChecksumMismatch {
        /// The checksum recorded for the file.
        recorded: Checksum,
        /// The checksum of the file now.
        found: Checksum,
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

impl DatasetFileError {
    /// Whether opening failed because the file is not a complete dataset file (cut short,
    /// overwritten, or changed from outside): the dataset cannot be read until it is written
    /// anew. The message of such an error names no path.
    pub fn is_damaged_file(&self) -> bool {
        // Every variant named, so that a new one must be sorted in here.
        match self {
            DatasetFileError::NotAFile
            | DatasetFileError::TooShort { .. }
            | DatasetFileError::BadMagic
            | DatasetFileError::UnsupportedVersion { .. }
            | DatasetFileError::UnknownDataType { .. }
            | DatasetFileError::TypeSizeMismatch { .. }
            | DatasetFileError::BadNameEntry { .. }
            | DatasetFileError::ZeroColumns
            | DatasetFileError::SizeMismatch { .. }
            | DatasetFileError::CutShort
            | DatasetFileError::ChecksumMismatch { .. }
            | DatasetFileError::BadDescription { .. } => true,
            DatasetFileError::Io { .. }
            | DatasetFileError::AlreadyExists { .. }
            | DatasetFileError::InvalidName { .. }
            | DatasetFileError::NoColumns
            | DatasetFileError::InvalidDescriptionRange { .. }
            | DatasetFileError::RowWidth { .. }
            | DatasetFileError::TypeMismatch
            | DatasetFileError::WriterFailed
            | DatasetFileError::TooLarge { .. }
            | DatasetFileError::RowsOutOfRange { .. }
            | DatasetFileError::ColumnsOutOfRange { .. }
            | DatasetFileError::BufferSize { .. } => false,
        }
    }

    /// Whether opening failed because the file does not exist.
    pub fn is_missing_file(&self) -> bool {
        matches!(self, DatasetFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether opening failed because the server may not read the file.
    pub fn is_unreadable_file(&self) -> bool {
        matches!(self, DatasetFileError::Io { source, .. }
            if source.kind() == io::ErrorKind::PermissionDenied)
    }

    /// Whether the disk could not read the file back (an input/output error: a failing
    /// disk, or a file system that found the file's blocks damaged).
    pub fn is_lost_on_disk(&self) -> bool {
        matches!(self, DatasetFileError::Io { source, .. }
            if source.raw_os_error() == Some(libc::EIO))
    }
}

/// Which of the two IDX files of an MNIST upload an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxFile {
    /// The image file (`…-images-idx3-ubyte`).
    Images,
    /// The label file (`…-labels-idx1-ubyte`).
    Labels,
}

impl IdxFile {
    /// What messages call the file: "image file" or "label file".
    pub fn name(self) -> &'static str {
        match self {
            IdxFile::Images => "image file",
            IdxFile::Labels => "label file",
        }
    }
}

impl std::fmt::Display for IdxFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an uploaded MNIST or CSV file could not be converted into a dataset.
///
/// [`ConvertError::is_invalid_input`] tells the client's fault (answer 400 with the `Display`
/// text) from the server's (500).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An uploaded input file could not be read.
    #[error("{file}: cannot read {}: {source}", path.display())]
    ReadInput {
        /// Which input: "image file", "label file" or "CSV file".
        file: &'static str,
        /// Its path.
        path: PathBuf,
        /// The error of the operating system.
        #[source]
        source: io::Error,
    },

    /// The dataset file could not be written (or its name/destination is invalid).
    #[error(transparent)]
    Output(#[from] DatasetFileError),

    /// An IDX file is shorter than its header.
    #[error("{file}: {len} bytes long, too short for the {needed}-byte IDX header")]
    IdxTooShort {
        /// The file.
        file: IdxFile,
        /// Its length.
        len: u64,
        /// Length of its header (16 for images, 8 for labels).
        needed: u64,
    },

    /// An IDX file has the wrong magic number.
    #[error(
        "{file}: magic number at bytes 0..4 is {found:#010x}, expected {expected:#010x}{}",
        swapped_hint(*file, *found)
    )]
    IdxMagic {
        /// The file.
        file: IdxFile,
        /// The magic found (big endian).
        found: u32,
        /// The magic expected.
        expected: u32,
    },

    /// The image file holds no images.
    #[error("image file: the header (bytes 4..8) declares 0 images; a dataset needs at least one")]
    NoImages,

    /// Image rows or columns are zero or unreasonably large.
    #[error(
        "image file: image size {rows}×{columns} (bytes 8..16) is invalid; rows and columns \
         must be between 1 and {max_side}, with at most {max_pixels} pixels in all"
    )]
    ImageDimensions {
        /// Rows per image.
        rows: u32,
        /// Columns per image.
        columns: u32,
        /// Largest allowed rows or columns.
        max_side: u32,
        /// Largest allowed rows × columns.
        max_pixels: u64,
    },

    /// An IDX file's length does not match its header.
    #[error(
        "{file}: the header declares {count} {} = {expected} bytes, but the file has {actual} \
         bytes ({})", what, size_diff(*expected, *actual)
    )]
    IdxSize {
        /// The file.
        file: IdxFile,
        /// Item count of the header.
        count: u32,
        /// What the items are, e.g. "images of 28×28 pixels" or "labels".
        what: String,
        /// Length the header implies.
        expected: u64,
        /// Real length.
        actual: u64,
    },

    /// Image and label counts differ.
    #[error("the image file holds {images} images but the label file holds {labels} labels")]
    CountMismatch {
        /// Images in the image file.
        images: u32,
        /// Labels in the label file.
        labels: u32,
    },

    /// A label byte is not a digit 0..=9.
    #[error("label file: byte {offset} holds label {value}, expected 0..9")]
    LabelOutOfRange {
        /// Byte offset in the label file.
        offset: u64,
        /// The label found.
        value: u8,
    },

    /// The CSV file has no header line (it is empty or all lines are empty).
    #[error("CSV file: no header line (the file is empty or holds only empty lines)")]
    CsvNoHeader,

    /// The CSV header line is not valid UTF-8.
    #[error("CSV file: line {line}: the header is not valid UTF-8 text{hint}")]
    CsvHeaderNotUtf8 {
        /// Line number, 1-based.
        line: u64,
        /// What the text seems to be instead, or empty.
        hint: &'static str,
    },

    /// The CSV file's first line that is not blank holds a NUL byte, which no text has: the
    /// file is binary data.
    #[error(
        "CSV file: line {line}: byte {offset} of the line is a NUL byte, so this is binary \
         data, not CSV text{hint}"
    )]
    CsvBinary {
        /// Line number, 1-based.
        line: u64,
        /// 0-based offset of the first NUL byte in the line.
        offset: u64,
        /// What the file seems to be instead, or empty.
        hint: &'static str,
    },

    /// A CSV header cell is empty.
    #[error(
        "CSV file: line {line}: column {column} of the header has an empty name{}",
        if *.column == 1 {
            " (pandas writes its index so: save the file with to_csv(..., index=False), or \
             name the column)"
        } else {
            ""
        }
    )]
    CsvEmptyName {
        /// Line number of the header, 1-based.
        line: u64,
        /// Column, 1-based.
        column: u64,
    },

    /// A CSV header name that no interface could have.
    #[error("CSV file: line {line}: the name {name:?} of column {column} {problem}")]
    CsvBadName {
        /// Line number of the header, 1-based.
        line: u64,
        /// Column, 1-based.
        column: u64,
        /// The name, truncated to 40 characters.
        name: String,
        /// What is wrong with it.
        problem: String,
    },

    /// The CSV header has more columns than a dataset may have.
    #[error("CSV file: line {line}: the header has {columns} columns, at most {max} are supported")]
    CsvTooManyColumns {
        /// Line number of the header, 1-based.
        line: u64,
        /// Columns in the header.
        columns: u64,
        /// The limit.
        max: u64,
    },

    /// A CSV line is longer than any sensible one.
    #[error("CSV file: line {line} is longer than {max_bytes} bytes")]
    CsvLineTooLong {
        /// Line number, 1-based.
        line: u64,
        /// The limit.
        max_bytes: u64,
    },

    /// Two CSV header cells have the same name.
    #[error(
        "CSV file: line {line}: column {column} of the header repeats the name {name:?} of \
         column {first_column}; column names must be unique"
    )]
    CsvDuplicateName {
        /// Line number of the header, 1-based.
        line: u64,
        /// The repeated name.
        name: String,
        /// Column of the first occurrence, 1-based.
        first_column: u64,
        /// Column of the repetition, 1-based.
        column: u64,
    },

    /// A CSV data line has a different number of cells than the header.
    #[error(
        "CSV file: line {line} has {found} {}, expected {expected} as in the header{hint}",
        if *.found == 1 { "column" } else { "columns" }
    )]
    CsvRaggedRow {
        /// Line number, 1-based.
        line: u64,
        /// Cells in this line.
        found: u64,
        /// Cells in the header.
        expected: u64,
        /// Which other CSV dialect the line seems to follow, or empty.
        hint: &'static str,
    },

    /// An empty line between the rows of a CSV file of one column.
    #[error(
        "CSV file: line {line} is empty: in a file of one column ({name:?}) that is a row \
         without its value; remove the line or give the value"
    )]
    CsvEmptyLine {
        /// Line number, 1-based.
        line: u64,
        /// Header name of the column.
        name: String,
    },

    /// A CSV cell is not a number.
    #[error(
        "CSV file: line {line}, column {column} ({name:?}): {cell:?} is not a number \
         (expected an integer, a decimal like -1.5 or 2e-3, true or false)"
    )]
    CsvNotANumber {
        /// Line number, 1-based.
        line: u64,
        /// Column, 1-based.
        column: u64,
        /// Header name of the column.
        name: String,
        /// The cell, truncated to 40 characters.
        cell: String,
    },

    /// A CSV number is too large for a 32-bit float.
    #[error(
        "CSV file: line {line}, column {column} ({name:?}): {cell} is outside the range of \
         32-bit floats"
    )]
    CsvOutOfRange {
        /// Line number, 1-based.
        line: u64,
        /// Column, 1-based.
        column: u64,
        /// Header name of the column.
        name: String,
        /// The cell, truncated to 40 characters.
        cell: String,
    },

    /// The CSV file has a header but no data line.
    #[error("CSV file: no data rows after the header (line {header_line})")]
    CsvNoRows {
        /// Line number of the header, 1-based.
        header_line: u64,
    },
}

impl ConvertError {
    /// True when the uploaded data (or the requested dataset name) is at fault — answer 400
    /// with the `Display` text; false for failures of the server (I/O, existing destination)
    /// — answer 500.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            ConvertError::ReadInput { .. } => false,
            ConvertError::Output(e) => matches!(e, DatasetFileError::InvalidName { .. }),
            _ => true,
        }
    }

    /// True when the dataset could not be written because the disk (or the server user's
    /// disk quota) is full: no fault of the data, and worth another attempt later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ConvertError::Output(DatasetFileError::Io { source, .. }) => {
                matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
            }
            _ => false,
        }
    }
}

fn swapped_hint(file: IdxFile, found: u32) -> &'static str {
    match (file, found) {
        (IdxFile::Images, super::MNIST_LABEL_MAGIC) => {
            " (IDX label file magic: are image and label file swapped?)"
        }
        (IdxFile::Labels, super::MNIST_IMAGE_MAGIC) => {
            " (IDX image file magic: are image and label file swapped?)"
        }
        _ => "",
    }
}

fn size_diff(expected: u64, actual: u64) -> String {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    if actual < expected {
        let n = expected - actual;
        format!("truncated, {n} byte{} missing", plural(n))
    } else {
        let n = actual - expected;
        format!("{n} trailing byte{}", plural(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let io = |errno| {
            ConvertError::Output(DatasetFileError::Io {
                action: "write",
                path: PathBuf::from("d"),
                source: io::Error::from_raw_os_error(errno),
            })
        };
        assert!(io(libc::ENOSPC).is_disk_full());
        assert!(io(libc::EDQUOT).is_disk_full());
        assert!(!io(libc::EIO).is_disk_full());
        let read = ConvertError::ReadInput {
            file: "CSV file",
            path: PathBuf::from("c"),
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(!read.is_disk_full());
    }

    #[test]
    fn a_disk_that_cannot_read_a_file_back_is_told_apart() {
        let io = |errno| DatasetFileError::Io {
            action: "read",
            path: PathBuf::from("d"),
            source: io::Error::from_raw_os_error(errno),
        };
        assert!(io(libc::EIO).is_lost_on_disk());
        assert!(!io(libc::EACCES).is_lost_on_disk());
        assert!(io(libc::EACCES).is_unreadable_file());
        assert!(!DatasetFileError::NotAFile.is_lost_on_disk());
    }
}
