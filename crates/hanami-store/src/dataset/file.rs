//! Encoding and decoding of the dataset file format (layout in the [module doc](super)), the
//! atomic [`DatasetWriter`] and the read-only [`DatasetReader`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::Xxh3;

use super::verified::{FileStamp, VerifiedFiles, keeps_change_times};
use super::{
    Checksum, ColumnRange, ContentSummary, DataType, DatasetFileError, DatasetHeader, Description,
    ValueRange, ValueRanges, WrittenDataset,
};

/// Size of the fixed header in bytes.
pub(crate) const HEADER_SIZE: u64 = 4096;

const TYPE_ID: (usize, usize, &[u8]) = (0, 8, b"hanami");
const FILE_ID: (usize, usize, &[u8]) = (8, 32, b"data-set");
const VERSION: (usize, usize, &[u8]) = (40, 8, b"v1");
const MINOR_VERSION: (usize, usize, &[u8]) = (48, 8, b"alpha");
const OFF_DATA_TYPE: usize = 56;
const OFF_TYPE_SIZE: usize = 57;
const OFF_DESCRIPTION_SIZE: usize = 60;
const OFF_FILE_SIZE: usize = 64;
const OFF_ROWS: usize = 72;
const OFF_COLUMNS: usize = 80;
const OFF_NAME: usize = 88;
const NAME_FIELD: usize = 255;
const OFF_NAME_LEN: usize = 343;

/// Longest dataset name the header can hold, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 254;

/// Suffix of the writer's temporary files (`.<final name>.<pid>.<n>.hanami-tmp`).
const TEMP_SUFFIX: &str = ".hanami-tmp";
/// Capacity of the writer's buffer; larger appends go straight to the file.
const WRITE_BUFFER: usize = 1 << 20;
/// Bytes the reader fetches per system call when reading many rows.
const READ_BLOCK: usize = 1 << 20;
/// Values converted at once when appending f32 data.
const CONVERT_CHUNK: usize = 16 * 1024;

/// Fields of the fixed header that vary between files.
struct RawHeader<'a> {
    data_type: DataType,
    description_size: u32,
    file_size: u64,
    rows: u64,
    columns: u64,
    name: &'a str,
}

fn encode_header(h: &RawHeader<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_SIZE as usize];
    for (offset, _, text) in [TYPE_ID, FILE_ID, VERSION, MINOR_VERSION] {
        buf[offset..offset + text.len()].copy_from_slice(text);
    }
    buf[OFF_DATA_TYPE] = h.data_type.code();
    buf[OFF_TYPE_SIZE] = h.data_type.size() as u8;
    buf[OFF_DESCRIPTION_SIZE..OFF_DESCRIPTION_SIZE + 4]
        .copy_from_slice(&h.description_size.to_le_bytes());
    buf[OFF_FILE_SIZE..OFF_FILE_SIZE + 8].copy_from_slice(&h.file_size.to_le_bytes());
    buf[OFF_ROWS..OFF_ROWS + 8].copy_from_slice(&h.rows.to_le_bytes());
    buf[OFF_COLUMNS..OFF_COLUMNS + 8].copy_from_slice(&h.columns.to_le_bytes());
    let name = h.name.as_bytes();
    debug_assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN && MAX_NAME_LEN < NAME_FIELD);
    buf[OFF_NAME..OFF_NAME + name.len()].copy_from_slice(name);
    buf[OFF_NAME_LEN] = name.len() as u8;
    buf
}

fn field_is(buf: &[u8], (offset, len, text): (usize, usize, &[u8])) -> bool {
    let field = &buf[offset..offset + len];
    field.starts_with(text) && field[text.len()..].iter().all(|&b| b == 0)
}

fn field_text(buf: &[u8], (offset, len, _): (usize, usize, &[u8])) -> String {
    let field = &buf[offset..offset + len];
    let end = field.iter().position(|&b| b == 0).unwrap_or(len);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn u32_at(buf: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(buf[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(buf: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(buf[offset..offset + 8].try_into().expect("8 bytes"))
}

/// Checks the fixed header against the real file length; returns the header fields.
fn decode_header(buf: &[u8], actual_len: u64) -> Result<RawHeaderOwned, DatasetFileError> {
    debug_assert_eq!(buf.len(), HEADER_SIZE as usize);
    if !field_is(buf, TYPE_ID) || !field_is(buf, FILE_ID) {
        return Err(DatasetFileError::BadMagic);
    }
    if !field_is(buf, VERSION) || !field_is(buf, MINOR_VERSION) {
        return Err(DatasetFileError::UnsupportedVersion {
            found: format!(
                "{}.{}",
                field_text(buf, VERSION),
                field_text(buf, MINOR_VERSION)
            ),
        });
    }
    let code = buf[OFF_DATA_TYPE];
    let data_type = DataType::from_code(code).ok_or(DatasetFileError::UnknownDataType { code })?;
    if usize::from(buf[OFF_TYPE_SIZE]) != data_type.size() {
        return Err(DatasetFileError::TypeSizeMismatch {
            data_type,
            found: buf[OFF_TYPE_SIZE],
        });
    }
    let name_len = usize::from(buf[OFF_NAME_LEN]);
    if name_len == 0 || name_len > MAX_NAME_LEN {
        return Err(DatasetFileError::BadNameEntry {
            reason: format!("length {name_len} at byte {OFF_NAME_LEN}, expected 1 to 254"),
        });
    }
    let name = std::str::from_utf8(&buf[OFF_NAME..OFF_NAME + name_len])
        .map_err(|_| DatasetFileError::BadNameEntry {
            reason: "name is not UTF-8".into(),
        })?
        .to_owned();
    let columns = u64_at(buf, OFF_COLUMNS);
    if columns == 0 {
        return Err(DatasetFileError::ZeroColumns);
    }
    let description_size = u32_at(buf, OFF_DESCRIPTION_SIZE);
    let recorded = u64_at(buf, OFF_FILE_SIZE);
    let rows = u64_at(buf, OFF_ROWS);
    let expected = u128::from(HEADER_SIZE)
        + u128::from(description_size)
        + u128::from(rows) * u128::from(columns) * data_type.size() as u128;
    if recorded != actual_len || expected != u128::from(actual_len) {
        return Err(DatasetFileError::SizeMismatch {
            actual: actual_len,
            recorded,
            expected,
            rows,
            columns,
            data_type,
            description_size,
        });
    }
    Ok(RawHeaderOwned {
        data_type,
        description_size,
        rows,
        columns,
        name,
    })
}

struct RawHeaderOwned {
    data_type: DataType,
    description_size: u32,
    rows: u64,
    columns: u64,
    name: String,
}

/// Every range must be non-empty and lie within the columns.
fn check_description(description: &Description, columns: u64) -> Result<(), (String, ColumnRange)> {
    match description
        .iter()
        .find(|(_, r)| r.start_column >= r.end_column || r.end_column > columns)
    {
        Some((field, range)) => Err((field.clone(), *range)),
        None => Ok(()),
    }
}

/// `text` for a message: whole if short, else its first `max_chars` characters and `…`.
pub(super) fn truncated(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> DatasetFileError {
    DatasetFileError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The error of a read of `path`: a read that met the end of the file early found it cut
/// short since its length was checked ([`DatasetFileError::CutShort`]).
fn read_error(path: &Path, source: io::Error) -> DatasetFileError {
    if source.kind() == io::ErrorKind::UnexpectedEof {
        DatasetFileError::CutShort
    } else {
        io_error("read", path, source)
    }
}

fn to_usize(value: u128, what: &'static str) -> Result<usize, DatasetFileError> {
    usize::try_from(value).map_err(|_| DatasetFileError::TooLarge { what })
}

/// The checksum of `file` as it is now, and the hash of what follows its header (to go on
/// with), read to its end.
fn checksum_of_file(file: &File, path: &Path) -> Result<(Checksum, Xxh3), DatasetFileError> {
    let mut header = vec![0u8; HEADER_SIZE as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|e| read_error(path, e))?;
    let rest = digest_after_header(file, path)?;
    Ok((Checksum::of(&header, rest.digest()), rest))
}

/// The hash of everything in `file` after the header, read to its end (see [`Checksum`]).
fn digest_after_header(file: &File, path: &Path) -> Result<Xxh3, DatasetFileError> {
    let mut hasher = Xxh3::new();
    let mut block = vec![0u8; READ_BLOCK];
    let mut offset = HEADER_SIZE;
    loop {
        let n = match file.read_at(&mut block, offset) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", path, e)),
        };
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&block[..n]);
        offset += n as u64;
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a new dataset file atomically: rows go to a hidden temporary file next to the
/// destination, and [`finish`](Self::finish) moves the complete, fsynced file into place.
///
/// Dropping the writer without `finish` (an error, a panic, a cancelled task) removes the
/// temporary file, so the destination either holds a complete dataset or does not exist. After
/// any error from an `append_*` method the writer is unusable ([`DatasetFileError::WriterFailed`])
/// and should be dropped.
///
/// Writes are buffered (1 MiB); large appends go to the file directly.
#[derive(Debug)]
pub struct DatasetWriter {
    out: Option<BufWriter<File>>,
    temp_path: PathBuf,
    final_path: PathBuf,
    name: String,
    data_type: DataType,
    columns: u64,
    row_values: usize,
    description: Description,
    description_size: u32,
    rows: u64,
    extremes: ColumnExtremes,
    /// The hash of everything written after the header (see [`Checksum`]).
    content: ContentHash,
    scratch: Vec<u8>,
    failed: bool,
    done: bool,
    /// Whether [`preallocate`](Self::preallocate) may have made the file longer than its
    /// rows need.
    preallocated: bool,
}

impl DatasetWriter {
    /// Starts a new dataset that [`finish`](Self::finish) will place at `final_path`.
    ///
    /// `name` (1..=254 bytes, no NUL) is stored in the header; every range of `description`
    /// must be non-empty and lie within `number_of_columns` (at least 1). Fails with
    /// [`DatasetFileError::AlreadyExists`] if `final_path` exists already.
    pub fn create(
        final_path: impl AsRef<Path>,
        name: &str,
        data_type: DataType,
        number_of_columns: u64,
        description: Description,
    ) -> Result<Self, DatasetFileError> {
        let final_path = final_path.as_ref().to_owned();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
            return Err(DatasetFileError::InvalidName {
                name: truncated(name, 64),
                len: name.len(),
            });
        }
        if number_of_columns == 0 {
            return Err(DatasetFileError::NoColumns);
        }
        let row_values = to_usize(number_of_columns.into(), "number of columns")?;
        to_usize(
            u128::from(number_of_columns) * data_type.size() as u128,
            "row size",
        )?;
        if let Err((field, range)) = check_description(&description, number_of_columns) {
            return Err(DatasetFileError::InvalidDescriptionRange {
                field,
                range,
                columns: number_of_columns,
            });
        }
        let description_text = super::description_json(&description);
        let description_size =
            u32::try_from(description_text.len()).map_err(|_| DatasetFileError::TooLarge {
                what: "description",
            })?;

        if fs::symlink_metadata(&final_path).is_ok() {
            return Err(DatasetFileError::AlreadyExists { path: final_path });
        }
        let file_name = final_path.file_name().ok_or_else(|| {
            io_error(
                "create",
                &final_path,
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            )
        })?;
        let dir = parent_dir(&final_path);
        let (file, temp_path) = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(file_name);
            temp_name.push(format!(".{}.{n}{TEMP_SUFFIX}", std::process::id()));
            let temp_path = dir.join(temp_name);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp_path)
            {
                Ok(file) => break (file, temp_path),
                // Left behind by a crashed process that had our pid: try the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n % 1000 != 999 => {}
                Err(e) => return Err(io_error("create temporary", &temp_path, e)),
            }
        };

        let mut writer = DatasetWriter {
            out: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            temp_path,
            final_path,
            name: name.to_owned(),
            data_type,
            columns: number_of_columns,
            row_values,
            description,
            description_size,
            rows: 0,
            extremes: ColumnExtremes::default(),
            content: ContentHash::default(),
            scratch: Vec::new(),
            failed: false,
            done: false,
            preallocated: false,
        };
        // Placeholder header: rows and file size are filled in by `finish`.
        let header = writer.encode(0, 0);
        writer.write_unhashed(&header)?;
        writer.write(description_text.as_bytes())?;
        Ok(writer)
    }

    /// Starts the result dataset of a request task: `f32` values, `number_of_outputs` columns,
    /// name and single description field `result_name` spanning all columns.
    pub fn create_result(
        final_path: impl AsRef<Path>,
        result_name: &str,
        number_of_outputs: u64,
    ) -> Result<Self, DatasetFileError> {
        Self::create(
            final_path,
            result_name,
            DataType::F32,
            number_of_outputs,
            super::result_description(result_name, number_of_outputs),
        )
    }

    /// Appends one row of `f32` values (`number_of_columns` of them). Only for `f32` datasets.
    pub fn append_row_f32(&mut self, row: &[f32]) -> Result<(), DatasetFileError> {
        self.check_single_row(row.len())?;
        self.append_rows_f32(row)
    }

    /// Appends whole rows of `f32` values, row-major (a multiple of `number_of_columns`
    /// values). Only for `f32` datasets.
    pub fn append_rows_f32(&mut self, values: &[f32]) -> Result<(), DatasetFileError> {
        let rows = self.check_rows(values.len())?;
        if self.data_type != DataType::F32 {
            return Err(DatasetFileError::TypeMismatch);
        }
        self.extremes.add_f32(values, self.row_values);
        for chunk in values.chunks(CONVERT_CHUNK) {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            let result = self.write(&scratch);
            self.scratch = scratch;
            result?;
        }
        self.rows += rows;
        Ok(())
    }

    /// Appends one row of `u8` values; in an `f32` dataset they are stored as floats.
    pub fn append_row_u8(&mut self, row: &[u8]) -> Result<(), DatasetFileError> {
        self.check_single_row(row.len())?;
        self.append_rows_u8(row)
    }

    /// Appends whole rows of `u8` values, row-major (a multiple of `number_of_columns`
    /// values); in an `f32` dataset they are stored as floats.
    pub fn append_rows_u8(&mut self, values: &[u8]) -> Result<(), DatasetFileError> {
        let rows = self.check_rows(values.len())?;
        self.extremes.add_u8(values, self.row_values);
        match self.data_type {
            DataType::U8 => self.write(values)?,
            DataType::F32 => {
                for chunk in values.chunks(CONVERT_CHUNK) {
                    let mut scratch = std::mem::take(&mut self.scratch);
                    scratch.clear();
                    scratch.extend(chunk.iter().flat_map(|&v| f32::from(v).to_le_bytes()));
                    let result = self.write(&scratch);
                    self.scratch = scratch;
                    result?;
                }
            }
        }
        self.rows += rows;
        Ok(())
    }

    /// Allocates the disk space of the whole file for `rows` rows now (see
    /// [`crate::files::preallocate`]), so that appending them cannot fail for a full disk
    /// and the file system's free space shows it from the start. Returns whether the space
    /// is allocated (not on file systems without `fallocate`). [`finish`](Self::finish)
    /// cuts off what fewer rows leave unused.
    pub fn preallocate(&mut self, rows: u64) -> Result<bool, DatasetFileError> {
        if self.failed {
            return Err(DatasetFileError::WriterFailed);
        }
        let size = self
            .file_size(rows)
            .ok_or(DatasetFileError::TooLarge { what: "file size" })?;
        let out = self.out.as_ref().expect("present until finish or drop");
        let allocated = crate::files::preallocate(out.get_ref(), size)
            .map_err(|e| io_error("allocate the disk space of", &self.temp_path, e))?;
        self.preallocated = true;
        Ok(allocated)
    }

    /// Rows appended so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Number of values per row.
    pub fn number_of_columns(&self) -> u64 {
        self.columns
    }

    /// Where the finished file will be.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Completes the file and moves it into place: flushes, writes the final header (row
    /// count, file size), makes the file read-only (its read bits stay), fsyncs it, links it
    /// to the final path — failing with [`DatasetFileError::AlreadyExists`] rather than
    /// replacing a file that appeared meanwhile — and fsyncs the directory. Returns the
    /// header of the new dataset and the summary of its content (the value range of each
    /// description field, the file's checksum).
    ///
    /// On error the temporary file is removed; only if the final directory fsync fails does
    /// the (complete) dataset file stay in place.
    pub fn finish(mut self) -> Result<WrittenDataset, DatasetFileError> {
        let (file, metadata, checksum) = self.complete()?;
        // Read-only, and readable by whom the process's umask allows.
        let read_only = metadata.permissions().mode() & 0o444;
        file.set_permissions(fs::Permissions::from_mode(read_only))
            .map_err(|e| io_error("set permissions of", &self.temp_path, e))?;
        file.sync_all()
            .map_err(|e| io_error("sync", &self.temp_path, e))?;
        drop(file);

        self.publish()?;
        self.done = true;
        let dir = parent_dir(&self.final_path);
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("sync the directory of", &self.final_path, e))?;

        let value_ranges = self.extremes.ranges(&self.description);
        Ok(WrittenDataset {
            header: DatasetHeader {
                name: std::mem::take(&mut self.name),
                data_type: self.data_type,
                number_of_rows: self.rows,
                number_of_columns: self.columns,
                description: std::mem::take(&mut self.description),
            },
            content: ContentSummary {
                value_ranges,
                checksum,
            },
        })
    }

    /// Sets the work aside for now: the rows so far become a complete dataset file at `to`
    /// (fsynced, with its folder; an existing file there is replaced), which
    /// [`resume`](Self::resume) goes on with. Returns the rows it holds and the file's
    /// checksum, for `resume` to check the file against. On error the temporary file is
    /// removed.
    pub fn suspend(mut self, to: &Path) -> Result<(u64, Checksum), DatasetFileError> {
        let (file, _, checksum) = self.complete()?;
        file.sync_all()
            .map_err(|e| io_error("sync", &self.temp_path, e))?;
        drop(file);
        fs::rename(&self.temp_path, to).map_err(|e| io_error("move", to, e))?;
        self.done = true;
        File::open(parent_dir(to))
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("sync the directory of", to, e))?;
        Ok((self.rows, checksum))
    }

    /// Goes on with a dataset that [`suspend`](Self::suspend) set aside at `partial`, to be
    /// placed at `final_path` by [`finish`](Self::finish): the file is checked as a dataset
    /// and, where `recorded` gives the checksum `suspend` reported, against that
    /// ([`DatasetFileError::ChecksumMismatch`]); then its rows are read for the value ranges
    /// that `finish` reports (so the file is read twice). Appends follow its last row. Only
    /// for `f32` datasets. Dropping the writer without `finish` removes `partial`.
    pub fn resume(
        partial: &Path,
        final_path: impl AsRef<Path>,
        recorded: Option<Checksum>,
    ) -> Result<Self, DatasetFileError> {
        let final_path = final_path.as_ref().to_owned();
        let reader = DatasetReader::open(partial)?;
        let header = reader.header();
        if header.data_type != DataType::F32 {
            return Err(DatasetFileError::TypeMismatch);
        }
        if fs::symlink_metadata(&final_path).is_ok() {
            return Err(DatasetFileError::AlreadyExists { path: final_path });
        }
        let (checksum, content) = checksum_of_file(&reader.inner.file, partial)?;
        if let Some(recorded) = recorded.filter(|&recorded| recorded != checksum) {
            return Err(DatasetFileError::ChecksumMismatch {
                recorded,
                found: checksum,
            });
        }
        let row_values = to_usize(header.number_of_columns.into(), "number of columns")?;
        let all = ColumnRange::new(0, header.number_of_columns);
        let mut extremes = ColumnExtremes::default();
        let mut rows = reader.rows(all, 0..header.number_of_rows)?;
        while let Some(row) = rows.next_row()? {
            extremes.add_f32(row, row_values);
        }
        // As the file has it (`open` checked it against the file's length).
        let description_size =
            u32::try_from(reader.inner.data_offset - HEADER_SIZE).expect("read from a u32 field");
        let content = ContentHash(Box::new(content));
        let mut file = OpenOptions::new()
            .write(true)
            .open(partial)
            .map_err(|e| io_error("open", partial, e))?;
        file.seek(io::SeekFrom::End(0))
            .map_err(|e| io_error("seek in", partial, e))?;
        let header = header.clone();
        Ok(DatasetWriter {
            out: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            temp_path: partial.to_owned(),
            final_path,
            name: header.name,
            data_type: header.data_type,
            columns: header.number_of_columns,
            row_values,
            description: header.description,
            description_size,
            rows: header.number_of_rows,
            extremes,
            content,
            scratch: Vec::new(),
            failed: false,
            done: false,
            preallocated: false,
        })
    }

    /// Flushes the rows, writes the final header, cuts off unused preallocated space and
    /// checks the length: the temporary file then holds a complete dataset (not yet synced),
    /// whose checksum is returned.
    fn complete(&mut self) -> Result<(File, fs::Metadata, Checksum), DatasetFileError> {
        if self.failed {
            return Err(DatasetFileError::WriterFailed);
        }
        let out = self.out.take().expect("present until finish or drop");
        let file = out
            .into_inner()
            .map_err(|e| io_error("write", &self.temp_path, e.into_error()))?;
        let file_size = self.file_size(self.rows).expect("checked by every append");
        let header = self.encode(self.rows, file_size);
        file.write_all_at(&header, 0)
            .map_err(|e| io_error("write", &self.temp_path, e))?;
        if self.preallocated {
            file.set_len(file_size)
                .map_err(|e| io_error("shorten", &self.temp_path, e))?;
        }
        let metadata = file
            .metadata()
            .map_err(|e| io_error("inspect", &self.temp_path, e))?;
        let len = metadata.len();
        if len != file_size {
            let e = io::Error::other(format!("holds {len} bytes, expected {file_size}"));
            return Err(io_error("write", &self.temp_path, e));
        }
        let checksum = Checksum::of(&header, self.content.0.digest());
        Ok((file, metadata, checksum))
    }

    /// Moves the temporary file to the final path without ever replacing an existing file.
    fn publish(&self) -> Result<(), DatasetFileError> {
        // A hard link fails atomically if the destination exists (a rename would replace it).
        match fs::hard_link(&self.temp_path, &self.final_path) {
            Ok(()) => {
                // The dataset is in place; a left-over temporary name is harmless and removed
                // by `remove_stale_temp_files`.
                let _ = fs::remove_file(&self.temp_path);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(DatasetFileError::AlreadyExists {
                    path: self.final_path.clone(),
                })
            }
            Err(_) => {
                // File systems without hard links: check, then rename.
                if fs::symlink_metadata(&self.final_path).is_ok() {
                    return Err(DatasetFileError::AlreadyExists {
                        path: self.final_path.clone(),
                    });
                }
                fs::rename(&self.temp_path, &self.final_path)
                    .map_err(|e| io_error("rename", &self.final_path, e))
            }
        }
    }

    fn encode(&self, rows: u64, file_size: u64) -> Vec<u8> {
        encode_header(&RawHeader {
            data_type: self.data_type,
            description_size: self.description_size,
            file_size,
            rows,
            columns: self.columns,
            name: &self.name,
        })
    }

    fn file_size(&self, rows: u64) -> Option<u64> {
        rows.checked_mul(self.columns)?
            .checked_mul(self.data_type.size() as u64)?
            .checked_add(HEADER_SIZE + u64::from(self.description_size))
    }

    fn check_single_row(&self, values: usize) -> Result<(), DatasetFileError> {
        if values != self.row_values {
            return Err(DatasetFileError::RowWidth {
                values,
                columns: self.columns,
            });
        }
        Ok(())
    }

    /// Checks that `values` make whole rows and that the file stays describable; returns the
    /// number of rows.
    fn check_rows(&self, values: usize) -> Result<u64, DatasetFileError> {
        if self.failed {
            return Err(DatasetFileError::WriterFailed);
        }
        let rows = values / self.row_values;
        if rows * self.row_values != values {
            return Err(DatasetFileError::RowWidth {
                values,
                columns: self.columns,
            });
        }
        let rows = rows as u64;
        self.rows
            .checked_add(rows)
            .and_then(|total| self.file_size(total))
            .ok_or(DatasetFileError::TooLarge { what: "file size" })?;
        Ok(rows)
    }

    /// Writes what follows the header, and adds it to the checksum.
    fn write(&mut self, bytes: &[u8]) -> Result<(), DatasetFileError> {
        self.write_unhashed(bytes)?;
        self.content.0.update(bytes);
        Ok(())
    }

    /// Writes without adding to the checksum: the placeholder header, which
    /// [`complete`](Self::complete) replaces and adds as it is then.
    fn write_unhashed(&mut self, bytes: &[u8]) -> Result<(), DatasetFileError> {
        let out = self.out.as_mut().expect("present until finish or drop");
        out.write_all(bytes).map_err(|e| {
            self.failed = true;
            io_error("write", &self.temp_path, e)
        })
    }
}

/// The running hash of what a writer wrote after the header (its state is large, so boxed).
#[derive(Default)]
struct ContentHash(Box<Xxh3>);

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentHash")
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if !self.done {
            // Discard the buffer instead of flushing it into a file that is about to go.
            if let Some(out) = self.out.take() {
                drop(out.into_parts());
            }
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

/// The smallest and largest value of every column, gathered as rows are appended. Values
/// appended as bytes are compared as bytes (cheap for the large MNIST appends).
#[derive(Debug, Default)]
struct ColumnExtremes {
    /// Per column: smallest and largest byte appended, once any were.
    bytes: Option<(Vec<u8>, Vec<u8>)>,
    /// Per column: smallest and largest `f32` appended, once any were.
    floats: Option<(Vec<f32>, Vec<f32>)>,
}

impl ColumnExtremes {
    /// Takes in whole rows of `columns` bytes.
    fn add_u8(&mut self, values: &[u8], columns: usize) {
        let (low, high) = self
            .bytes
            .get_or_insert_with(|| (vec![u8::MAX; columns], vec![u8::MIN; columns]));
        for row in values.chunks_exact(columns) {
            for ((l, h), &v) in low.iter_mut().zip(high.iter_mut()).zip(row) {
                *l = (*l).min(v);
                *h = (*h).max(v);
            }
        }
    }

    /// Takes in whole rows of `columns` floats (NaN never counts as smallest or largest).
    fn add_f32(&mut self, values: &[f32], columns: usize) {
        let (low, high) = self.floats.get_or_insert_with(|| {
            (
                vec![f32::INFINITY; columns],
                vec![f32::NEG_INFINITY; columns],
            )
        });
        for row in values.chunks_exact(columns) {
            for ((l, h), &v) in low.iter_mut().zip(high.iter_mut()).zip(row) {
                *l = l.min(v);
                *h = h.max(v);
            }
        }
    }

    /// The range of each field of `description` over both kinds of appends; fields without
    /// any value (no rows, or only NaN) are left out.
    fn ranges(&self, description: &Description) -> ValueRanges {
        let mut ranges = ValueRanges::new();
        for (field, columns) in description {
            let columns = columns.start_column as usize..columns.end_column as usize;
            let mut range = ValueRange {
                min: f32::INFINITY,
                max: f32::NEG_INFINITY,
            };
            if let Some((low, high)) = &self.bytes {
                for (&l, &h) in low[columns.clone()].iter().zip(&high[columns.clone()]) {
                    if l <= h {
                        range.min = range.min.min(f32::from(l));
                        range.max = range.max.max(f32::from(h));
                    }
                }
            }
            if let Some((low, high)) = &self.floats {
                for (&l, &h) in low[columns.clone()].iter().zip(&high[columns]) {
                    range.min = range.min.min(l);
                    range.max = range.max.max(h);
                }
            }
            if range.min <= range.max {
                ranges.insert(field.clone(), range);
            }
        }
        ranges
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Whether a file name is one of a [`DatasetWriter`]'s temporary files (hidden, ending in
/// `.hanami-tmp`).
pub fn is_temp_file_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// Removes temporary files that writers of a crashed process left in `dir`; returns how many.
///
/// Call it at startup only: it would also remove the temporary files of writers still running.
pub fn remove_stale_temp_files(dir: impl AsRef<Path>) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_temp_file_name(&name) && entry.file_type()?.is_file() {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

// ---------------------------------------------------------------------------------------------
// Reader

/// A dataset file opened for reading.
///
/// The file is opened read-only and the reader never holds a write handle, so reading cannot
/// change a dataset. [`open`](Self::open) checks the whole header — identifiers, version, type,
/// name, sizes against the real file length, the description — so a reader only exists for a
/// consistent file.
///
/// All reads are positional (`pread`); the reader is `Send + Sync` and cheap to clone (clones
/// share the file handle), so many threads can read one dataset at once.
#[derive(Debug, Clone)]
pub struct DatasetReader {
    inner: Arc<ReaderInner>,
}

#[derive(Debug)]
struct ReaderInner {
    file: File,
    path: PathBuf,
    header: DatasetHeader,
    data_offset: u64,
    row_bytes: usize,
}

impl DatasetReader {
    /// Opens and validates the dataset file at `path` (read-only). Anything but a regular
    /// file is refused ([`DatasetFileError::NotAFile`]), without waiting for it (opening a
    /// named pipe would wait for a writer for ever).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DatasetFileError> {
        let path = path.as_ref();
        let file =
            crate::files::open_without_waiting(path).map_err(|e| io_error("open", path, e))?;
        let metadata = file.metadata().map_err(|e| io_error("inspect", path, e))?;
        if !metadata.is_file() {
            return Err(DatasetFileError::NotAFile);
        }
        let len = metadata.len();
        if len < HEADER_SIZE {
            return Err(DatasetFileError::TooShort { len });
        }
        let mut buf = vec![0u8; HEADER_SIZE as usize];
        file.read_exact_at(&mut buf, 0)
            .map_err(|e| read_error(path, e))?;
        let raw = decode_header(&buf, len)?;

        // The size check above guarantees that the description lies within the file.
        let mut text = vec![0u8; raw.description_size as usize];
        file.read_exact_at(&mut text, HEADER_SIZE)
            .map_err(|e| read_error(path, e))?;
        let description: Description =
            serde_json::from_slice(&text).map_err(|e| DatasetFileError::BadDescription {
                reason: format!(
                    "{e} in {:?}",
                    truncated(&String::from_utf8_lossy(&text), 200)
                ),
            })?;
        if let Err((field, range)) = check_description(&description, raw.columns) {
            return Err(DatasetFileError::BadDescription {
                reason: format!(
                    "field {field:?} has column range {range}, which is empty or exceeds the {} \
                     columns",
                    raw.columns
                ),
            });
        }
        let row_bytes = to_usize(
            u128::from(raw.columns) * raw.data_type.size() as u128,
            "row size",
        )?;
        Ok(DatasetReader {
            inner: Arc::new(ReaderInner {
                file,
                path: path.to_owned(),
                data_offset: HEADER_SIZE + u64::from(raw.description_size),
                row_bytes,
                header: DatasetHeader {
                    name: raw.name,
                    data_type: raw.data_type,
                    number_of_rows: raw.rows,
                    number_of_columns: raw.columns,
                    description,
                },
            }),
        })
    }

    /// The header and description of the dataset.
    pub fn header(&self) -> &DatasetHeader {
        &self.inner.header
    }

    /// The path the reader was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Reads rows `first_row .. first_row + count`, columns `columns`, converted to `f32`
    /// (`u8` values unscaled, 0..=255), into `out`, row after row. `out` must hold exactly
    /// `count × columns.width()` values.
    ///
    /// Many rows are fetched per system call (about 1 MiB), and only the bytes from the first
    /// selected column of the first row to the last selected column of the last row are read.
    pub fn read_rows_f32(
        &self,
        first_row: u64,
        count: usize,
        columns: ColumnRange,
        out: &mut [f32],
    ) -> Result<(), DatasetFileError> {
        self.check_rows(first_row, count as u128)?;
        self.check_columns(columns)?;
        let expected = count as u128 * u128::from(columns.width());
        if expected != out.len() as u128 {
            return Err(DatasetFileError::BufferSize {
                expected,
                got: out.len(),
            });
        }
        self.read_unchecked(first_row, count, columns, out, &mut Vec::new())
    }

    /// A cursor over rows `rows` of `columns`, reading blocks of many rows at a time; the
    /// fast way to go through a dataset row by row.
    pub fn rows(
        &self,
        columns: ColumnRange,
        rows: Range<u64>,
    ) -> Result<RowCursor, DatasetFileError> {
        self.check_columns(columns)?;
        if rows.start > rows.end {
            return Err(DatasetFileError::RowsOutOfRange {
                first_row: rows.start,
                end_row: rows.end.into(),
                rows: self.header().number_of_rows,
            });
        }
        self.check_rows(rows.start, u128::from(rows.end - rows.start))?;
        let width = columns.width() as usize;
        let rows_per_block = (READ_BLOCK / self.inner.row_bytes).max(1);
        Ok(RowCursor {
            reader: self.clone(),
            columns,
            width,
            next_row: rows.start,
            end_row: rows.end,
            rows_per_block,
            block: Vec::new(),
            block_pos: 0,
            scratch: Vec::new(),
        })
    }

    /// Reads all rows of `columns` into memory as `f32`, row-major
    /// (`number_of_rows × columns.width()` values).
    pub fn load_f32(&self, columns: ColumnRange) -> Result<Vec<f32>, DatasetFileError> {
        self.check_columns(columns)?;
        let rows = self.header().number_of_rows;
        let count = to_usize(rows.into(), "number of rows")?;
        let total = to_usize(
            u128::from(rows) * u128::from(columns.width()),
            "values to load",
        )?;
        let mut out = vec![0f32; total];
        self.read_unchecked(0, count, columns, &mut out, &mut Vec::new())?;
        Ok(out)
    }

    /// The checksum of the file as it is now (reads all of it): for a file written before
    /// checksums were recorded.
    pub fn checksum(&self) -> Result<Checksum, DatasetFileError> {
        let (checksum, _) = checksum_of_file(&self.inner.file, &self.inner.path)?;
        Ok(checksum)
    }

    /// Compares the file with the checksum `recorded` (the one its writer reported):
    /// [`DatasetFileError::ChecksumMismatch`] where they differ. Reads the whole file, unless
    /// `verified` holds that the file, unchanged since, matched before; a file that matches
    /// and did not change while it was read is added there (see [`VerifiedFiles`] for
    /// where and when).
    pub fn verify(
        &self,
        recorded: Checksum,
        verified: &VerifiedFiles,
    ) -> Result<(), DatasetFileError> {
        let started = std::time::SystemTime::now();
        let before = self.stamp()?;
        if verified.matched(&before, recorded) {
            return Ok(());
        }
        let found = self.checksum()?;
        if found != recorded {
            return Err(DatasetFileError::ChecksumMismatch { recorded, found });
        }
        if self.stamp()? == before && keeps_change_times(&self.inner.file) {
            verified.remember(before, recorded, started);
        }
        Ok(())
    }

    /// Whether `verified` holds that the file, unchanged since, matched `recorded`: then
    /// [`verify`](Self::verify) does not read it.
    pub fn verified_before(
        &self,
        recorded: Checksum,
        verified: &VerifiedFiles,
    ) -> Result<bool, DatasetFileError> {
        Ok(verified.matched(&self.stamp()?, recorded))
    }

    fn stamp(&self) -> Result<FileStamp, DatasetFileError> {
        let inner = &*self.inner;
        inner
            .file
            .metadata()
            .map(|metadata| FileStamp::of(&metadata))
            .map_err(|e| io_error("inspect", &inner.path, e))
    }

    fn check_rows(&self, first_row: u64, count: u128) -> Result<(), DatasetFileError> {
        let rows = self.header().number_of_rows;
        let end_row = u128::from(first_row) + count;
        if end_row > u128::from(rows) {
            return Err(DatasetFileError::RowsOutOfRange {
                first_row,
                end_row,
                rows,
            });
        }
        Ok(())
    }

    fn check_columns(&self, range: ColumnRange) -> Result<(), DatasetFileError> {
        let columns = self.header().number_of_columns;
        if range.start_column > range.end_column || range.end_column > columns {
            return Err(DatasetFileError::ColumnsOutOfRange { range, columns });
        }
        Ok(())
    }

    /// The read behind all public read methods; rows and columns are checked by the caller.
    fn read_unchecked(
        &self,
        first_row: u64,
        count: usize,
        columns: ColumnRange,
        out: &mut [f32],
        scratch: &mut Vec<u8>,
    ) -> Result<(), DatasetFileError> {
        let inner = &*self.inner;
        let data_type = inner.header.data_type;
        let value_size = data_type.size();
        let width = columns.width() as usize;
        if count == 0 || width == 0 {
            return Ok(());
        }
        let row_bytes = inner.row_bytes;
        let selected_bytes = width * value_size;
        let rows_per_block = (READ_BLOCK / row_bytes).clamp(1, count);
        let mut done = 0;
        while done < count {
            let n = rows_per_block.min(count - done);
            let span = (n - 1) * row_bytes + selected_bytes;
            if scratch.len() < span {
                scratch.resize(span, 0);
            }
            let offset = inner.data_offset
                + (first_row + done as u64) * row_bytes as u64
                + columns.start_column * value_size as u64;
            inner
                .file
                .read_exact_at(&mut scratch[..span], offset)
                .map_err(|e| read_error(&inner.path, e))?;
            let dst_rows = out[done * width..(done + n) * width].chunks_exact_mut(width);
            for (r, dst) in dst_rows.enumerate() {
                let src = &scratch[r * row_bytes..r * row_bytes + selected_bytes];
                convert_to_f32(data_type, src, dst);
            }
            done += n;
        }
        Ok(())
    }
}

fn convert_to_f32(data_type: DataType, src: &[u8], dst: &mut [f32]) {
    match data_type {
        DataType::U8 => {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = f32::from(s);
            }
        }
        DataType::F32 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes(s.try_into().expect("4 bytes"));
            }
        }
    }
}

/// Reads a range of rows one at a time, fetching blocks of many rows (about 1 MiB) per system
/// call. Made by [`DatasetReader::rows`]; owns a clone of the reader, so it can be moved to
/// another thread.
#[derive(Debug)]
pub struct RowCursor {
    reader: DatasetReader,
    columns: ColumnRange,
    width: usize,
    next_row: u64,
    end_row: u64,
    rows_per_block: usize,
    block: Vec<f32>,
    block_pos: usize,
    scratch: Vec<u8>,
}

impl RowCursor {
    /// The next row's selected columns as `f32`, or `None` after the last row.
    pub fn next_row(&mut self) -> Result<Option<&[f32]>, DatasetFileError> {
        if self.next_row >= self.end_row {
            return Ok(None);
        }
        if self.block_pos * self.width >= self.block.len() || self.width == 0 {
            // Refill: the block starts at `next_row`.
            let n = (self.end_row - self.next_row).min(self.rows_per_block as u64) as usize;
            self.block.clear();
            self.block.resize(n * self.width, 0.0);
            self.block_pos = 0;
            let read = self.reader.read_unchecked(
                self.next_row,
                n,
                self.columns,
                &mut self.block,
                &mut self.scratch,
            );
            if let Err(e) = read {
                // Nothing half-read may be handed out by a later call.
                self.block.clear();
                return Err(e);
            }
        }
        let start = self.block_pos * self.width;
        self.block_pos += 1;
        self.next_row += 1;
        Ok(Some(&self.block[start..start + self.width]))
    }

    /// The row the last successful call to [`next_row`](Self::next_row) returned, again;
    /// `None` before the first call and after a failed one.
    pub fn current_row(&self) -> Option<&[f32]> {
        let end = self.block_pos * self.width;
        (self.block_pos > 0 && end <= self.block.len()).then(|| &self.block[end - self.width..end])
    }

    /// Index of the row the next call to [`next_row`](Self::next_row) returns.
    pub fn position(&self) -> u64 {
        self.next_row
    }

    /// Rows left to read.
    #[cfg(test)]
    fn remaining(&self) -> u64 {
        self.end_row - self.next_row
    }
}

#[cfg(test)]
mod tests {
    use super::super::{description_json, result_description};
    use super::*;

    fn mnist_like_description() -> Description {
        Description::from([
            ("picture".to_owned(), ColumnRange::new(0, 4)),
            ("label".to_owned(), ColumnRange::new(4, 6)),
        ])
    }

    fn write_u8(path: &Path, rows: u64) -> DatasetHeader {
        let mut w =
            DatasetWriter::create(path, "small u8", DataType::U8, 6, mnist_like_description())
                .unwrap();
        for r in 0..rows {
            let row: Vec<u8> = (0..6).map(|c| (r * 6 + c) as u8).collect();
            w.append_row_u8(&row).unwrap();
        }
        w.finish().unwrap().header
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A valid file's bytes, for corrupting.
    fn valid_bytes(dir: &Path) -> Vec<u8> {
        let path = dir.join("valid");
        write_u8(&path, 3);
        fs::read(&path).unwrap()
    }

    fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<DatasetReader, DatasetFileError> {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        DatasetReader::open(&path)
    }

    #[test]
    fn header_layout_matches_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = valid_bytes(dir.path());
        assert_eq!(&bytes[0..8], b"hanami\0\0");
        assert_eq!(&bytes[8..16], b"data-set");
        assert!(bytes[16..40].iter().all(|&b| b == 0));
        assert_eq!(&bytes[40..48], b"v1\0\0\0\0\0\0");
        assert_eq!(&bytes[48..56], b"alpha\0\0\0");
        assert_eq!(bytes[56], 1);
        assert_eq!(bytes[57], 1);
        let desc = description_json(&mnist_like_description());
        assert_eq!(u32_at(&bytes, 60) as usize, desc.len());
        assert_eq!(u64_at(&bytes, 64), bytes.len() as u64);
        assert_eq!(u64_at(&bytes, 72), 3);
        assert_eq!(u64_at(&bytes, 80), 6);
        assert_eq!(&bytes[88..96], b"small u8");
        assert!(bytes[96..343].iter().all(|&b| b == 0));
        assert_eq!(bytes[343], 8);
        assert!(bytes[344..4096].iter().all(|&b| b == 0));
        assert_eq!(&bytes[4096..4096 + desc.len()], desc.as_bytes());
        assert_eq!(
            desc,
            r#"{"label":{"end_column":6,"start_column":4},"picture":{"end_column":4,"start_column":0}}"#
        );
        let data = &bytes[4096 + desc.len()..];
        assert_eq!(data, (0..18).collect::<Vec<u8>>());
    }

    #[test]
    fn round_trip_u8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        let written = write_u8(&path, 5);
        let reader = DatasetReader::open(&path).unwrap();
        assert_eq!(reader.header(), &written);
        assert_eq!(reader.header().name, "small u8");
        assert_eq!(reader.header().version(), "v1.alpha");
        assert_eq!(reader.header().number_of_rows, 5);
        assert_eq!(
            reader.header().column_range("label"),
            Some(ColumnRange::new(4, 6))
        );

        let mut out = vec![0f32; 3 * 2];
        reader
            .read_rows_f32(1, 3, ColumnRange::new(4, 6), &mut out)
            .unwrap();
        assert_eq!(out, [10.0, 11.0, 16.0, 17.0, 22.0, 23.0]);

        let all = reader.load_f32(ColumnRange::new(0, 6)).unwrap();
        assert_eq!(all, (0..30).map(|v| v as f32).collect::<Vec<_>>());
        let pictures = reader.load_f32(ColumnRange::new(0, 4)).unwrap();
        assert_eq!(pictures.len(), 20);
        assert_eq!(&pictures[4..8], &[6.0, 7.0, 8.0, 9.0]);
    }

    #[test]
    fn round_trip_f32_including_u8_rows_and_special_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        let desc = Description::from([
            ("a".to_owned(), ColumnRange::new(0, 1)),
            ("b".to_owned(), ColumnRange::new(1, 2)),
            ("c".to_owned(), ColumnRange::new(2, 3)),
        ]);
        let mut w = DatasetWriter::create(&path, "floats", DataType::F32, 3, desc.clone()).unwrap();
        w.append_row_f32(&[1.5, -2.25, 1e-30]).unwrap();
        w.append_rows_f32(&[f32::MAX, f32::MIN_POSITIVE, -0.0, 3.0, 4.0, 5.0])
            .unwrap();
        w.append_row_u8(&[7, 8, 255]).unwrap();
        assert_eq!(w.rows_written(), 4);
        let written = w.finish().unwrap();
        assert_eq!(written.header.number_of_rows, 4);
        assert_eq!(written.header.description, desc);
        // Extremes over the f32 and the u8 appends; -0.0 and 0.0 compare equal.
        let range = |min, max| ValueRange { min, max };
        assert_eq!(
            written.content.value_ranges,
            [
                ("a".to_owned(), range(1.5, f32::MAX)),
                ("b".to_owned(), range(-2.25, 8.0)),
                ("c".to_owned(), range(-0.0, 255.0)),
            ]
            .into()
        );

        let reader = DatasetReader::open(&path).unwrap();
        assert_eq!(reader.header().data_type, DataType::F32);
        let all = reader.load_f32(ColumnRange::new(0, 3)).unwrap();
        let expected = [
            1.5,
            -2.25,
            1e-30,
            f32::MAX,
            f32::MIN_POSITIVE,
            -0.0,
            3.0,
            4.0,
            5.0,
            7.0,
            8.0,
            255.0,
        ];
        assert_eq!(all.len(), expected.len());
        for (a, e) in all.iter().zip(expected) {
            assert_eq!(a.to_bits(), e.to_bits());
        }
        let mut one = [0f32; 1];
        reader
            .read_rows_f32(3, 1, ColumnRange::new(1, 2), &mut one)
            .unwrap();
        assert_eq!(one, [8.0]);
    }

    #[test]
    fn result_writer_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result");
        let mut w = DatasetWriter::create_result(&path, "test_output", 10).unwrap();
        let mut row = [0f32; 10];
        for i in 0..25 {
            row.fill(0.0);
            row[i % 10] = 1.0;
            w.append_row_f32(&row).unwrap();
        }
        w.finish().unwrap();
        let r = DatasetReader::open(&path).unwrap();
        assert_eq!(r.header().name, "test_output");
        assert_eq!(r.header().data_type, DataType::F32);
        assert_eq!(r.header().number_of_columns, 10);
        assert_eq!(r.header().number_of_rows, 25);
        assert_eq!(
            r.header().description,
            result_description("test_output", 10)
        );
        let mut out = vec![0f32; 10];
        r.read_rows_f32(13, 1, ColumnRange::new(0, 10), &mut out)
            .unwrap();
        assert_eq!(out[3], 1.0);
        assert_eq!(out.iter().sum::<f32>(), 1.0);
    }

    /// A preallocated result holds its disk space while it is written, and finishes at the
    /// size of the rows it got, fewer or more than allocated for.
    #[test]
    fn preallocated_writer_holds_its_space_and_finishes_at_its_rows() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let temp_file = |dir: &Path| dir.join(&dir_entries(dir)[0]);
        for (allocated_rows, rows) in [(1000u64, 1000usize), (1000, 10), (10, 40), (5, 0)] {
            let path = dir.path().join(format!("result{allocated_rows}_{rows}"));
            let mut w = DatasetWriter::create_result(&path, "out", 256).unwrap();
            let start = HEADER_SIZE + u64::from(w.description_size);
            let bytes = start + allocated_rows * 1024;
            if w.preallocate(allocated_rows).unwrap() {
                let meta = fs::metadata(temp_file(dir.path())).unwrap();
                assert!(meta.blocks() * 512 >= bytes, "{} blocks", meta.blocks());
            }
            assert_eq!(fs::metadata(temp_file(dir.path())).unwrap().len(), bytes);
            for i in 0..rows {
                w.append_row_f32(&[i as f32; 256]).unwrap();
            }
            w.finish().unwrap();
            let r = DatasetReader::open(&path).unwrap();
            assert_eq!(r.header().number_of_rows, rows as u64);
            assert_eq!(
                fs::metadata(&path).unwrap().len(),
                start + rows as u64 * 1024
            );
            if let Some(last) = rows.checked_sub(1) {
                let mut out = vec![0f32; 256];
                r.read_rows_f32(last as u64, 1, ColumnRange::new(0, 256), &mut out)
                    .unwrap();
                assert!(out.iter().all(|&v| v == last as f32));
            }
        }
    }

    /// A result set aside part of the way (preallocated, and again after going on) and then
    /// finished is the file one writer without a pause makes, with the same value ranges; a
    /// dropped resumed writer removes the partial file.
    #[test]
    fn a_suspended_writer_goes_on_as_if_never_suspended() {
        let dir = tempfile::tempdir().unwrap();
        let row = |i: usize| -> Vec<f32> { (0..3).map(|c| (i * 3 + c) as f32 - 20.0).collect() };
        let whole = dir.path().join("whole");
        let mut w = DatasetWriter::create_result(&whole, "out", 3).unwrap();
        (0..12).for_each(|i| w.append_row_f32(&row(i)).unwrap());
        let expected = w.finish().unwrap();

        let partial = dir.path().join("partial");
        let paused = dir.path().join("paused");
        let mut w = DatasetWriter::create_result(&paused, "out", 3).unwrap();
        w.preallocate(12).unwrap();
        (0..5).for_each(|i| w.append_row_f32(&row(i)).unwrap());
        let (rows, set_aside) = w.suspend(&partial).unwrap();
        assert_eq!(rows, 5);
        assert_eq!(dir_entries(dir.path()), ["partial", "whole"]);
        assert_eq!(
            DatasetReader::open(&partial)
                .unwrap()
                .header()
                .number_of_rows,
            5
        );
        let mut w = DatasetWriter::resume(&partial, &paused, Some(set_aside)).unwrap();
        assert_eq!(w.rows_written(), 5);
        w.preallocate(12).unwrap();
        (5..9).for_each(|i| w.append_row_f32(&row(i)).unwrap());
        let (rows, set_aside) = w.suspend(&partial).unwrap();
        assert_eq!(rows, 9);
        let mut w = DatasetWriter::resume(&partial, &paused, Some(set_aside)).unwrap();
        (9..12).for_each(|i| w.append_row_f32(&row(i)).unwrap());
        let written = w.finish().unwrap();
        assert_eq!(written.header, expected.header);
        assert_eq!(written.content, expected.content);
        assert_eq!(fs::read(&paused).unwrap(), fs::read(&whole).unwrap());
        assert_eq!(dir_entries(dir.path()), ["paused", "whole"]);

        let mut w = DatasetWriter::create_result(dir.path().join("dropped"), "out", 3).unwrap();
        w.append_row_f32(&row(0)).unwrap();
        w.suspend(&partial).unwrap();
        let w = DatasetWriter::resume(&partial, dir.path().join("dropped"), None).unwrap();
        drop(w);
        assert_eq!(dir_entries(dir.path()), ["paused", "whole"]);
    }

    /// Resuming refuses what it cannot go on with, and leaves the file as it was.
    #[test]
    fn resume_refuses_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = dir.path().join("bytes");
        write_u8(&bytes, 2);
        assert!(matches!(
            DatasetWriter::resume(&bytes, dir.path().join("a"), None),
            Err(DatasetFileError::TypeMismatch)
        ));
        let partial = dir.path().join("partial");
        let mut w = DatasetWriter::create_result(dir.path().join("x"), "out", 2).unwrap();
        w.append_row_f32(&[1.0, 2.0]).unwrap();
        let (_, set_aside) = w.suspend(&partial).unwrap();
        assert!(matches!(
            DatasetWriter::resume(&partial, &bytes, Some(set_aside)),
            Err(DatasetFileError::AlreadyExists { .. })
        ));
        // A value changed while it was set aside (the file still a dataset): refused against
        // the checksum its suspension reported, taken as it is without one.
        let before = fs::read(&partial).unwrap();
        let mut changed = before.clone();
        *changed.last_mut().unwrap() ^= 0x01;
        fs::set_permissions(&partial, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&partial, &changed).unwrap();
        let e = DatasetWriter::resume(&partial, dir.path().join("a"), Some(set_aside)).unwrap_err();
        assert!(
            matches!(e, DatasetFileError::ChecksumMismatch { recorded, .. }
                if recorded == set_aside),
            "{e}"
        );
        assert_eq!(fs::read(&partial).unwrap(), changed);
        drop(DatasetWriter::resume(&partial, dir.path().join("a"), None).unwrap());
        fs::write(&partial, &before).unwrap();
        DatasetWriter::resume(&partial, dir.path().join("a"), Some(set_aside))
            .unwrap()
            .suspend(&partial)
            .unwrap();
        let missing = DatasetWriter::resume(&dir.path().join("none"), dir.path().join("a"), None);
        assert!(missing.unwrap_err().is_missing_file());
        // A cut file is no dataset.
        let len = fs::metadata(&partial).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&partial)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert!(matches!(
            DatasetWriter::resume(&partial, dir.path().join("a"), None),
            Err(DatasetFileError::SizeMismatch { .. })
        ));
        assert_eq!(dir_entries(dir.path()), ["bytes", "partial"]);
    }

    #[test]
    fn zero_rows_is_a_valid_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        write_u8(&path, 0);
        let r = DatasetReader::open(&path).unwrap();
        assert_eq!(r.header().number_of_rows, 0);
        assert!(r.load_f32(ColumnRange::new(0, 6)).unwrap().is_empty());
        assert!(
            r.rows(ColumnRange::new(0, 6), 0..0)
                .unwrap()
                .next_row()
                .unwrap()
                .is_none()
        );
    }

    /// A file cut short after it was opened (its length checked) is damaged where its rows
    /// are read, with a message that names no path, as the other damage does.
    #[test]
    fn a_file_cut_short_after_opening_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut");
        write_u8(&path, 10);
        let r = DatasetReader::open(&path).unwrap();
        let len = fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 6).unwrap();
        let mut out = vec![0f32; 6];
        // The rows before the cut still read.
        r.read_rows_f32(8, 1, ColumnRange::new(0, 6), &mut out)
            .unwrap();
        let cut = r.read_rows_f32(9, 1, ColumnRange::new(0, 6), &mut out);
        let mut rows = r.rows(ColumnRange::new(0, 6), 0..10).unwrap();
        let cursor = std::iter::from_fn(|| rows.next_row().transpose().map(|row| row.map(drop)))
            .find_map(Result::err);
        for e in [cut.unwrap_err(), cursor.unwrap()] {
            assert!(matches!(e, DatasetFileError::CutShort), "{e:?}");
            assert!(e.is_damaged_file() && !e.to_string().contains("/"), "{e}");
        }
        file.set_len(100).unwrap();
        assert!(matches!(r.checksum(), Err(DatasetFileError::CutShort)));
    }

    #[test]
    fn row_cursor_crosses_block_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        // 1000 columns of f32 = 4000-byte rows: 262 rows per 1 MiB block.
        let columns = 1000u64;
        let rows = 700u64;
        let desc = Description::from([("x".to_owned(), ColumnRange::new(0, columns))]);
        let mut w = DatasetWriter::create(&path, "big", DataType::F32, columns, desc).unwrap();
        let mut all = Vec::new();
        for r in 0..rows {
            all.extend((0..columns).map(|c| (r * columns + c) as f32));
        }
        w.append_rows_f32(&all).unwrap();
        w.finish().unwrap();

        let reader = DatasetReader::open(&path).unwrap();
        let range = ColumnRange::new(998, 1000);
        let mut cursor = reader.rows(range, 5..rows).unwrap();
        assert!(cursor.current_row().is_none());
        let mut seen = 5;
        while let Some(row) = cursor.next_row().unwrap() {
            let base = (seen * columns) as f32;
            assert_eq!(row, &[base + 998.0, base + 999.0]);
            // The row read last stays available, also right after a new block was read.
            assert_eq!(cursor.current_row().unwrap(), &[base + 998.0, base + 999.0]);
            seen += 1;
        }
        assert_eq!(seen, rows);
        assert_eq!(cursor.remaining(), 0);

        // A whole-range read equals the cursor and the loaded copy.
        let loaded = reader.load_f32(ColumnRange::new(0, columns)).unwrap();
        assert_eq!(loaded, all);
    }

    #[test]
    fn read_argument_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        write_u8(&path, 5);
        let r = DatasetReader::open(&path).unwrap();
        let mut buf = vec![0f32; 12];
        let e = r
            .read_rows_f32(4, 2, ColumnRange::new(0, 6), &mut buf)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rows 4..6 requested, but the dataset has 5 rows"
        );
        let e = r
            .read_rows_f32(0, 1, ColumnRange::new(5, 7), &mut buf)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "column range [5, 7) is invalid for a dataset with 6 columns"
        );
        let e = r
            .read_rows_f32(0, 1, ColumnRange::new(0, 6), &mut buf)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "output buffer holds 12 values, the read yields 6"
        );
        assert!(r.rows(ColumnRange::new(0, 1), 3..6).is_err());
        assert!(r.load_f32(ColumnRange::new(4, 3)).is_err());
    }

    #[test]
    fn writer_refuses_bad_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        let e = DatasetWriter::create(&path, "", DataType::U8, 1, Description::new()).unwrap_err();
        assert!(
            matches!(e, DatasetFileError::InvalidName { len: 0, .. }),
            "{e}"
        );
        let long = "x".repeat(255);
        let e =
            DatasetWriter::create(&path, &long, DataType::U8, 1, Description::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("dataset name must be 1 to 254 bytes"),
            "{e}"
        );
        let e =
            DatasetWriter::create(&path, "ok", DataType::U8, 0, Description::new()).unwrap_err();
        assert_eq!(e.to_string(), "a dataset needs at least one column");
        let desc = Description::from([("x".to_owned(), ColumnRange::new(2, 5))]);
        let e = DatasetWriter::create(&path, "ok", DataType::U8, 4, desc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "description field \"x\" has column range [2, 5), which is empty or exceeds the 4 \
             columns of the dataset"
        );

        let mut w =
            DatasetWriter::create(&path, "ok", DataType::U8, 2, Description::new()).unwrap();
        let e = w.append_row_u8(&[1, 2, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "3 values do not make whole rows of 2 columns"
        );
        let e = w.append_rows_u8(&[1, 2, 3]).unwrap_err();
        assert!(matches!(e, DatasetFileError::RowWidth { .. }));
        let e = w.append_row_f32(&[1.0, 2.0]).unwrap_err();
        assert_eq!(e.to_string(), "cannot store f32 values in a u8 dataset");
        // Refused appends wrote nothing.
        w.append_row_u8(&[9, 9]).unwrap();
        assert_eq!(w.finish().unwrap().header.number_of_rows, 1);
        assert_eq!(
            DatasetReader::open(&path)
                .unwrap()
                .load_f32(ColumnRange::new(0, 2))
                .unwrap(),
            [9.0, 9.0]
        );
        assert_eq!(dir_entries(dir.path()), ["ds"]);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        let mut w =
            DatasetWriter::create(&path, "ok", DataType::F32, 3, Description::new()).unwrap();
        w.append_rows_f32(&vec![1.0; 3 * 100_000]).unwrap();
        // While writing, only the hidden temporary file exists.
        let entries = dir_entries(dir.path());
        assert_eq!(entries.len(), 1);
        assert!(
            entries[0].starts_with(".ds.") && entries[0].ends_with(".hanami-tmp"),
            "{entries:?}"
        );
        assert!(!path.exists());
        drop(w);
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[test]
    fn writer_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        fs::write(&path, b"precious").unwrap();
        let e =
            DatasetWriter::create(&path, "ok", DataType::U8, 1, Description::new()).unwrap_err();
        assert!(matches!(e, DatasetFileError::AlreadyExists { .. }));
        assert!(e.to_string().ends_with("ds already exists"), "{e}");

        // The destination appears while the writer runs: finish refuses and cleans up.
        fs::remove_file(&path).unwrap();
        let mut w =
            DatasetWriter::create(&path, "ok", DataType::U8, 1, Description::new()).unwrap();
        w.append_row_u8(&[1]).unwrap();
        fs::write(&path, b"precious").unwrap();
        let e = w.finish().unwrap_err();
        assert!(matches!(e, DatasetFileError::AlreadyExists { .. }), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        assert_eq!(dir_entries(dir.path()), ["ds"]);
    }

    #[test]
    fn two_writers_for_one_destination_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        let mut a = DatasetWriter::create(&path, "a", DataType::U8, 1, Description::new()).unwrap();
        let mut b = DatasetWriter::create(&path, "b", DataType::U8, 1, Description::new()).unwrap();
        a.append_row_u8(&[1]).unwrap();
        b.append_row_u8(&[2]).unwrap();
        a.finish().unwrap();
        assert!(matches!(
            b.finish(),
            Err(DatasetFileError::AlreadyExists { .. })
        ));
        assert_eq!(DatasetReader::open(&path).unwrap().header().name, "a");
        assert_eq!(dir_entries(dir.path()), ["ds"]);
    }

    #[test]
    fn writer_in_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("ds");
        let e =
            DatasetWriter::create(&path, "ok", DataType::U8, 1, Description::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot create temporary dataset file"),
            "{e}"
        );
    }

    #[test]
    fn stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let w = DatasetWriter::create(
            dir.path().join("ds"),
            "ok",
            DataType::U8,
            1,
            Description::new(),
        )
        .unwrap();
        fs::write(dir.path().join("keep"), b"x").unwrap();
        std::mem::forget(w); // as if the process had crashed
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        assert_eq!(dir_entries(dir.path()), ["keep"]);
    }

    #[test]
    fn finished_file_is_read_only_and_reading_never_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        write_u8(&path, 50);
        // Written as 0o600, then the write bit goes: for the server's user only.
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        // Also with the mode set explicitly (the writer already did).
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        let before = fs::read(&path).unwrap();
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();

        for _ in 0..3 {
            let r = DatasetReader::open(&path).unwrap();
            let clone = r.clone();
            r.load_f32(ColumnRange::new(0, 6)).unwrap();
            let mut c = clone.rows(ColumnRange::new(4, 6), 0..50).unwrap();
            while c.next_row().unwrap().is_some() {}
            // The reader holds no write handle: writing through it fails.
            assert!(r.inner.file.write_at(b"x", 0).is_err());
        }
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        assert_eq!(
            DatasetReader::open(&path).unwrap().header().number_of_rows,
            50
        );
    }

    #[test]
    fn a_file_verifies_against_its_checksum_until_a_byte_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        let mut w =
            DatasetWriter::create(&path, "small u8", DataType::U8, 6, mnist_like_description())
                .unwrap();
        // Rows beyond the writer's buffer and the reader's blocks, through both append paths.
        w.append_rows_u8(&[7u8; 6 * 300_000]).unwrap();
        (0..10u8).for_each(|r| w.append_row_u8(&[r; 6]).unwrap());
        let checksum = w.finish().unwrap().content.checksum;
        let bytes = fs::read(&path).unwrap();
        let reader = DatasetReader::open(&path).unwrap();
        // Nothing is remembered of a file changed so shortly before.
        let verified = VerifiedFiles::default();
        reader.verify(checksum, &verified).unwrap();
        let recorded: Checksum = "xxh3:0000000000000000".parse().unwrap();
        let e = reader.verify(recorded, &verified).unwrap_err();
        assert!(e.is_damaged_file(), "{e}");
        assert_eq!(
            e.to_string(),
            format!("its checksum {checksum} differs from the {recorded} recorded for it")
        );

        // One byte of the rows, the description, the header's name or its padding changed
        // (each still opens as a dataset): refused. The same bytes again: accepted.
        let description_start = HEADER_SIZE as usize;
        for at in [bytes.len() - 1, 1_000_000, description_start + 2, 88, 2000] {
            let mut changed = bytes.clone();
            changed[at] ^= 0x20;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            fs::write(&path, &changed).unwrap();
            let reader = DatasetReader::open(&path).unwrap();
            let e = reader.verify(checksum, &verified).unwrap_err();
            assert!(
                matches!(e, DatasetFileError::ChecksumMismatch { recorded, .. }
                    if recorded == checksum),
                "byte {at}: {e}"
            );
        }
        fs::write(&path, &bytes).unwrap();
        DatasetReader::open(&path)
            .unwrap()
            .verify(checksum, &verified)
            .unwrap();
    }

    #[test]
    fn a_file_that_matched_is_compared_again_only_once_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        let mut w =
            DatasetWriter::create(&path, "small u8", DataType::U8, 6, mnist_like_description())
                .unwrap();
        w.append_rows_u8(&[7u8; 6 * 1000]).unwrap();
        let checksum = w.finish().unwrap().content.checksum;
        let bytes = fs::read(&path).unwrap();
        // More than a step of a coarse file system's clock (a second), less than the default.
        let settled = std::time::Duration::from_millis(1100);
        let verified = VerifiedFiles::new(settled);
        let stamp = || FileStamp::of(&fs::metadata(&path).unwrap());
        std::thread::sleep(settled + std::time::Duration::from_millis(100));
        let reader = DatasetReader::open(&path).unwrap();
        assert!(!reader.verified_before(checksum, &verified).unwrap());
        reader.verify(checksum, &verified).unwrap();
        assert!(
            verified.matched(&stamp(), checksum),
            "not remembered: does the temporary directory's file system keep change times?"
        );
        // Another reader of the file, unchanged, finds it remembered.
        let again = DatasetReader::open(&path).unwrap();
        assert!(again.verified_before(checksum, &verified).unwrap());
        again.verify(checksum, &verified).unwrap();

        // A byte changed, the length and the modification time kept: compared, refused.
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        let mut changed = bytes.clone();
        changed[bytes.len() - 1] ^= 1;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, &changed).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert!(!verified.matched(&stamp(), checksum));
        let e = DatasetReader::open(&path)
            .unwrap()
            .verify(checksum, &verified)
            .unwrap_err();
        assert!(
            matches!(e, DatasetFileError::ChecksumMismatch { .. }),
            "{e}"
        );
    }

    #[test]
    fn reader_is_send_sync_and_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DatasetReader>();
        assert_send_sync::<RowCursor>();
        fn assert_send<T: Send>() {}
        assert_send::<DatasetWriter>();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds");
        write_u8(&path, 40);
        let r = DatasetReader::open(&path).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let r = &r;
                s.spawn(move || {
                    let mut out = [0f32; 6];
                    for row in (t..40).step_by(4) {
                        r.read_rows_f32(row, 1, ColumnRange::new(0, 6), &mut out)
                            .unwrap();
                        assert_eq!(out[0], ((row * 6) % 256) as f32);
                    }
                });
            }
        });
    }

    #[test]
    fn reader_rejects_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = valid_bytes(d);
        let desc_len = u32_at(&good, 60) as usize;

        let e = open_bytes(d, "short", &good[..100]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a dataset file: 100 bytes long, shorter than the 4096-byte header"
        );

        let mut bad = good.clone();
        bad[0] = b'H';
        let e = open_bytes(d, "magic", &bad).unwrap_err();
        assert!(matches!(e, DatasetFileError::BadMagic), "{e}");
        let mut bad = good.clone();
        bad[8..16].copy_from_slice(b"checkpoi");
        assert!(matches!(
            open_bytes(d, "magic2", &bad),
            Err(DatasetFileError::BadMagic)
        ));

        let mut bad = good.clone();
        bad[41] = b'2';
        let e = open_bytes(d, "version", &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported dataset file version \"v2.alpha\", expected \"v1.alpha\""
        );

        let mut bad = good.clone();
        bad[56] = 2;
        let e = open_bytes(d, "type", &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt dataset header: unknown data type 2 at byte 56 (expected 1 or 4)"
        );
        let mut bad = good.clone();
        bad[57] = 4;
        let e = open_bytes(d, "typesize", &bad).unwrap_err();
        assert!(
            matches!(e, DatasetFileError::TypeSizeMismatch { found: 4, .. }),
            "{e}"
        );

        let mut bad = good.clone();
        bad[343] = 0;
        assert!(matches!(
            open_bytes(d, "name0", &bad),
            Err(DatasetFileError::BadNameEntry { .. })
        ));
        let mut bad = good.clone();
        bad[343] = 255;
        assert!(matches!(
            open_bytes(d, "name255", &bad),
            Err(DatasetFileError::BadNameEntry { .. })
        ));
        let mut bad = good.clone();
        bad[88] = 0xff;
        assert!(matches!(
            open_bytes(d, "nameutf8", &bad),
            Err(DatasetFileError::BadNameEntry { .. })
        ));

        let mut bad = good.clone();
        bad[80..88].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            open_bytes(d, "cols0", &bad),
            Err(DatasetFileError::ZeroColumns)
        ));

        // Truncated data: one byte missing.
        let e = open_bytes(d, "truncated", &good[..good.len() - 1]).unwrap_err();
        assert!(matches!(e, DatasetFileError::SizeMismatch { .. }), "{e}");
        // Trailing bytes (what the original's reads appended).
        let mut bad = good.clone();
        bad.extend_from_slice(&[0; 6]);
        assert!(matches!(
            open_bytes(d, "trailing", &bad),
            Err(DatasetFileError::SizeMismatch { .. })
        ));
        // Row count in the header too high, file size consistent with the file.
        let mut bad = good.clone();
        bad[72..80].copy_from_slice(&4u64.to_le_bytes());
        let e = open_bytes(d, "rows", &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "corrupt dataset file: {len} bytes long, but the header records {len} bytes and 4 \
                 rows of 6 u8 values with a {desc_len}-byte description need {} bytes",
                good.len() + 6,
                len = good.len()
            )
        );
        // Absurd row count: no overflow, no huge allocation.
        let mut bad = good.clone();
        bad[72..80].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            open_bytes(d, "rowsmax", &bad),
            Err(DatasetFileError::SizeMismatch { .. })
        ));
        let mut bad = good.clone();
        bad[60..64].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            open_bytes(d, "descmax", &bad),
            Err(DatasetFileError::SizeMismatch { .. })
        ));
        // Recorded file size wrong.
        let mut bad = good.clone();
        bad[64..72].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            open_bytes(d, "filesize", &bad),
            Err(DatasetFileError::SizeMismatch { .. })
        ));

        // Description: not JSON, wrong shape, range outside the columns.
        let mut bad = good.clone();
        bad[4096] = b'[';
        let e = open_bytes(d, "json", &bad).unwrap_err();
        assert!(
            e.to_string().starts_with("corrupt dataset description: "),
            "{e}"
        );
        let mut bad = good.clone();
        let text = String::from_utf8(bad[4096..4096 + desc_len].to_vec()).unwrap();
        let other = text.replace("\"end_column\":6", "\"end_column\":7");
        bad[4096..4096 + desc_len].copy_from_slice(other.as_bytes());
        let e = open_bytes(d, "range", &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt dataset description: field \"label\" has column range [4, 7), which is empty \
             or exceeds the 6 columns"
        );
        let mut bad = good.clone();
        let other = text.replace("\"end_column\":6", "\"end_colum\":66");
        bad[4096..4096 + desc_len].copy_from_slice(other.as_bytes());
        assert!(matches!(
            open_bytes(d, "shape", &bad),
            Err(DatasetFileError::BadDescription { .. })
        ));

        // Not there at all.
        let e = DatasetReader::open(d.join("nope")).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot open dataset file "),
            "{e}"
        );

        // The untouched copy still opens.
        open_bytes(d, "good", &good).unwrap();
    }
}
