//! Conversion of an uploaded CSV file into an `f32` dataset.
//!
//! The accepted format is deliberately simple:
//! * lines end with `\n`; a `\r` before it is removed (CRLF files work); a UTF-8 byte-order
//!   mark at the very start is ignored;
//! * cells are separated by commas; a cell in double quotes (`"label"`, `"0.5"`, as
//!   spreadsheets and R write them) counts without its quotes and the blanks inside them,
//!   but cannot hold a comma (no name or number has one);
//! * empty lines (or lines of only blanks, or of empty cells only: `,,,` as spreadsheets
//!   write an empty row) are skipped anywhere, except between the rows of a file of one
//!   column, where such a line would be a row without its value (refused); a line `sep=,`
//!   before the header (Excel names its separator so) is skipped too;
//! * the first remaining line is the header: comma-separated column names, surrounding blanks
//!   removed, each non-empty and unique, and not all of them numbers (a missing header);
//! * every following line has exactly as many comma-separated cells as the header, and every
//!   cell (surrounding blanks removed) is a number: an optional sign, digits with an optional
//!   decimal point (`12`, `-1.5`, `.5`, `3.`) and an optional exponent (`2e-3`, `1E+4`), within
//!   the range of `f32`; `true` / `false` (any case) are accepted as 1 / 0 as in the original;
//! * there is at least one data line;
//! * a header line with a NUL byte is binary data, no text: the file is refused as such;
//!   where its first bytes say what it is (an MNIST IDX file, a zip or gzip archive, an
//!   image), the message names it;
//! * limits, so that a small hostile file cannot exhaust the server's memory: at most
//!   [`MAX_COLUMNS`] columns, names of at most [`MAX_NAME_CHARS`] characters without control
//!   characters, lines of at most [`MAX_LINE_BYTES`] bytes.
//!
//! Errors name the 1-based line number as an editor shows it (skipped lines count) and, for
//! cells, the 1-based column and its header name.
//!
//! Output: one `f32` row per data line; the description has one single-column field per header
//! name, `{"<name>": {"start_column": i, "end_column": i + 1}}`.
//!
//! Rows are written to the writer's temporary file while the input is checked; an error drops
//! the writer, which removes that file, so the dataset appears only for a fully valid input.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{ColumnRange, ConvertError, DataType, DatasetWriter, Description, WrittenDataset};

/// Most columns a CSV dataset may have (each becomes a column group of its own).
pub const MAX_COLUMNS: usize = 1 << 16;
/// Longest column name, in characters (as long as a cluster's interface names may be).
pub const MAX_NAME_CHARS: usize = 254;
/// Longest line, in bytes, line end included.
pub const MAX_LINE_BYTES: u64 = 16 << 20;

const READ_BUFFER: usize = 1 << 20;
/// Longest excerpt of a bad cell quoted in an error message, in characters.
const MAX_QUOTED: usize = 40;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Characters that print as nothing: byte-order marks, zero-width spaces and joiners,
/// direction marks and overrides, the soft hyphen.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
    )
}

/// A hint for a refused name or row that shows another CSV dialect: other separators,
/// commas in quotes, or lines that end in a lone `\r` (old Macs).
fn dialect_hint(text: &[u8]) -> &'static str {
    if text.contains(&b';') || text.contains(&b'\t') {
        " (cells are separated by commas only)"
    } else if text.contains(&b'"') {
        " (every comma separates cells, also one in quotes)"
    } else if text.contains(&b'\r') {
        " (lines end in \\n or \\r\\n; a lone \\r ends no line)"
    } else {
        ""
    }
}

/// Why a column name cannot name a cluster's input or output (which tasks bind columns
/// to): templates spell those with ASCII letters, digits and `_`, and all digits are a
/// number there.
fn interface_name_problem(name: &str) -> Option<String> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some(
            "cannot name a cluster's input or output, which tasks bind columns to: use ASCII \
             letters, digits and '_'"
                .to_owned(),
        )
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        Some(
            "is a number, which cannot name a cluster's input or output: the first line must \
             name the columns (is the header line missing?)"
                .to_owned(),
        )
    } else {
        None
    }
}

/// Converts the CSV file at `input_path` into a new `f32` dataset named `name` at
/// `dest_path`, and returns its header and value ranges.
///
/// On any error no dataset file exists afterwards (and no temporary file is left). The input
/// file is only read. Once the header is read, the disk space of as many rows as the rest of
/// the file has lines is allocated (what blank lines leave unused is given back at the end);
/// `allocated` is called then (not on file systems that cannot allocate up front).
pub fn convert_csv(
    input_path: impl AsRef<Path>,
    name: &str,
    dest_path: impl AsRef<Path>,
    allocated: impl FnOnce(),
) -> Result<WrittenDataset, ConvertError> {
    let input_path = input_path.as_ref();
    let read_error = |source| ConvertError::ReadInput {
        file: "CSV file",
        path: input_path.to_owned(),
        source,
    };
    // A named pipe in its place would hold an open for reading until a writer comes.
    let file = crate::files::open_without_waiting(input_path).map_err(read_error)?;
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut input = BufReader::with_capacity(READ_BUFFER, file);

    let mut line = Vec::new();
    let mut line_number = 0u64;
    // Bytes read so far.
    let mut consumed = 0u64;
    // Set once the header is read.
    let mut table: Option<Table> = None;
    // The first blank line after the last line read, if any.
    let mut blank_since = None;
    let mut allocated = Some(allocated);
    loop {
        line.clear();
        let read = (&mut input)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)
            .map_err(read_error)?;
        if read == 0 {
            break;
        }
        consumed += read as u64;
        line_number += 1;
        let cut_off = read as u64 == MAX_LINE_BYTES
            && line.last() != Some(&b'\n')
            && !input.fill_buf().map_err(read_error)?.is_empty();
        if cut_off {
            return Err(ConvertError::CsvLineTooLong {
                line: line_number,
                max_bytes: MAX_LINE_BYTES,
            });
        }
        let mut content = line.strip_suffix(b"\n").unwrap_or(&line);
        content = content.strip_suffix(b"\r").unwrap_or(content);
        if line_number == 1 {
            content = content.strip_prefix(BOM).unwrap_or(content);
        }
        // A spreadsheet writes an empty row as commas alone.
        if content
            .split(|&b| b == b',')
            .all(|cell| unquoted(cell).trim_ascii().is_empty())
        {
            blank_since.get_or_insert(line_number);
            continue;
        }
        // Excel's line that names the separator, before the header.
        if table.is_none() && content.len() == 5 && content[..4].eq_ignore_ascii_case(b"sep=") {
            continue;
        }
        let blank = blank_since.take();
        match &mut table {
            None => {
                let mut started = Table::start(content, line_number, name, dest_path.as_ref())?;
                let (lines, bytes) = lines_from(input.get_ref(), consumed).map_err(read_error)?;
                // A row takes at least two bytes a column (a digit, and a comma or the line's
                // end; the last line may lack its newline): blank lines make no more rows.
                let rows = lines.min((bytes + 1) / (2 * started.names.len() as u64));
                if started.writer.preallocate(rows)?
                    && let Some(allocated) = allocated.take()
                {
                    allocated();
                }
                table = Some(started);
            }
            Some(table) => {
                // With one column, an empty line is a row whose value is missing (the next
                // rows would move up against the rows of the datasets a task pairs them with).
                if let (Some(line), [name]) = (blank, table.names.as_slice()) {
                    return Err(ConvertError::CsvEmptyLine {
                        line,
                        name: name.clone(),
                    });
                }
                table.add_row(content, line_number)?;
            }
        }
    }

    let table = table.ok_or(ConvertError::CsvNoHeader)?;
    if table.writer.rows_written() == 0 {
        return Err(ConvertError::CsvNoRows {
            header_line: table.header_line,
        });
    }
    Ok(table.writer.finish()?)
}

/// How many lines `file` has from byte `offset` on (one more than its newlines there, unless
/// it ends there or with a newline), and how many bytes.
fn lines_from(file: &File, offset: u64) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::FileExt as _;
    let mut buffer = vec![0u8; READ_BUFFER];
    let (mut position, mut lines, mut last) = (offset, 0u64, b'\n');
    loop {
        let read = file.read_at(&mut buffer, position)?;
        if read == 0 {
            return Ok((lines + u64::from(last != b'\n'), position - offset));
        }
        let chunk = &buffer[..read];
        // Summed in bytes, 255 at a time: six times as fast as counting in `usize`.
        lines += chunk
            .chunks(255)
            .map(|part| u64::from(part.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>()))
            .sum::<u64>();
        last = chunk[read - 1];
        position += read as u64;
    }
}

/// What a file that starts with `start` is, where its first bytes say so, as a hint for a
/// file uploaded as CSV by mistake.
fn binary_kind(start: &[u8]) -> Option<&'static str> {
    Some(match start {
        // Two zero bytes, a type code (`0x08` bytes to `0x0E` doubles), a dimension count.
        [0, 0, 0x08..=0x0E, 1..=4, ..] => {
            " (it looks like an MNIST IDX file: upload it as an MNIST dataset, with its image \
             or label file beside it)"
        }
        [b'P', b'K', 3, 4, ..] => {
            " (it looks like a zip archive, as .xlsx spreadsheets are: save the sheet as CSV, \
             or unpack the archive)"
        }
        [0x1f, 0x8b, ..] => " (it looks like a gzip archive: unpack it first)",
        [0x89, b'P', b'N', b'G', ..] | [0xff, 0xd8, 0xff, ..] => {
            " (it looks like an image, not CSV text)"
        }
        _ => return None,
    })
}

/// Whether a header line is UTF-16 text: it starts with a byte-order mark (Excel's "Unicode
/// text"), or shows the zero bytes of UTF-16 without one: every other byte for ASCII names;
/// for names in other scripts, it decodes as UTF-16 in one byte order into text without
/// control characters that holds a `,` or the `\r` of a line end (units with a zero byte,
/// which UTF-8 text never holds).
fn looks_like_utf16(header: &[u8]) -> bool {
    if header.starts_with(b"\xFF\xFE") || header.starts_with(b"\xFE\xFF") {
        return true;
    }
    if header.len() < 2 {
        return false;
    }
    let all_zero_at = |parity: usize| header.iter().skip(parity).step_by(2).all(|&b| b == 0);
    if all_zero_at(0) || all_zero_at(1) {
        return true;
    }
    let decodes = |unit: fn([u8; 2]) -> u16| {
        let units = header.chunks_exact(2).map(|u| unit([u[0], u[1]]));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .is_ok_and(|text| {
                text.contains([',', '\r'])
                    && !text
                        .chars()
                        .any(|c| c.is_control() && c != '\r' && c != '\t')
            })
    };
    decodes(u16::from_le_bytes) || decodes(u16::from_be_bytes)
}

/// The state after the header: column names and the dataset being written.
struct Table {
    names: Vec<String>,
    header_line: u64,
    writer: DatasetWriter,
    row: Vec<f32>,
}

impl Table {
    fn start(header: &[u8], line: u64, name: &str, dest_path: &Path) -> Result<Self, ConvertError> {
        let known = (line == 1).then(|| binary_kind(header)).flatten();
        if known.is_none() && looks_like_utf16(header) {
            return Err(ConvertError::CsvHeaderNotUtf8 {
                line,
                hint: " (it looks like UTF-16: save the file as UTF-8 CSV)",
            });
        }
        if let Some(offset) = header.iter().position(|&b| b == 0) {
            return Err(ConvertError::CsvBinary {
                line,
                offset: offset as u64,
                hint: known.unwrap_or(""),
            });
        }
        let header = std::str::from_utf8(header).map_err(|_| ConvertError::CsvHeaderNotUtf8 {
            line,
            hint: known.unwrap_or(""),
        })?;
        let columns = header.split(',').count();
        if columns > MAX_COLUMNS {
            return Err(ConvertError::CsvTooManyColumns {
                line,
                columns: columns as u64,
                max: MAX_COLUMNS as u64,
            });
        }
        let names: Vec<String> = header
            .split(',')
            // Only ASCII bytes are taken off UTF-8 text: nothing is lost.
            .map(|n| String::from_utf8_lossy(unquoted(n.as_bytes())).into_owned())
            .collect();
        if names.iter().all(|n| parse_cell(n.as_bytes()).is_ok()) {
            return Err(ConvertError::CsvBadName {
                line,
                column: 1,
                name: quote(names[0].as_bytes()),
                problem: "is a number, as is every name of that line: the first line must name \
                          the columns (is the header line missing?)"
                    .to_owned(),
            });
        }
        let mut seen: HashMap<&str, u64> = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            let column = i as u64 + 1;
            if n.is_empty() {
                return Err(ConvertError::CsvEmptyName { line, column });
            }
            let problem = if n.chars().count() > MAX_NAME_CHARS {
                Some(format!("is longer than {MAX_NAME_CHARS} characters"))
            } else if n.chars().any(char::is_control) {
                Some("contains a control character".to_owned())
            } else {
                // A second byte-order mark, a zero-width space: the name looks like another
                // that no interface name can match.
                n.chars()
                    .find(|&c| is_invisible(c))
                    .map(|c| format!("contains an invisible character (U+{:04X})", u32::from(c)))
                    .or_else(|| interface_name_problem(n))
            };
            if let Some(problem) = problem {
                return Err(ConvertError::CsvBadName {
                    line,
                    column,
                    name: quote(n.as_bytes()),
                    problem: problem + dialect_hint(n.as_bytes()),
                });
            }
            if let Some(&first_column) = seen.get(n.as_str()) {
                return Err(ConvertError::CsvDuplicateName {
                    line,
                    name: n.clone(),
                    first_column,
                    column,
                });
            }
            seen.insert(n, column);
        }
        let description: Description = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), ColumnRange::new(i as u64, i as u64 + 1)))
            .collect();
        let columns = names.len() as u64;
        let writer = DatasetWriter::create(dest_path, name, DataType::F32, columns, description)?;
        Ok(Table {
            row: vec![0.0; names.len()],
            names,
            header_line: line,
            writer,
        })
    }

    fn add_row(&mut self, content: &[u8], line: u64) -> Result<(), ConvertError> {
        let found = content.iter().filter(|&&b| b == b',').count() + 1;
        if found != self.names.len() {
            return Err(ConvertError::CsvRaggedRow {
                line,
                found: found as u64,
                expected: self.names.len() as u64,
                hint: dialect_hint(content),
            });
        }
        for (i, cell) in content.split(|&b| b == b',').enumerate() {
            self.row[i] = parse_cell(cell).map_err(|problem| {
                let column = i as u64 + 1;
                let name = self.names[i].clone();
                let cell = quote(cell.trim_ascii());
                match problem {
                    CellProblem::NotANumber => ConvertError::CsvNotANumber {
                        line,
                        column,
                        name,
                        cell,
                    },
                    CellProblem::OutOfRange => ConvertError::CsvOutOfRange {
                        line,
                        column,
                        name,
                        cell,
                    },
                }
            })?;
        }
        self.writer.append_row_f32(&self.row)?;
        Ok(())
    }
}

enum CellProblem {
    NotANumber,
    OutOfRange,
}

/// A cell without the blanks around it and without the double quotes that may enclose it
/// (and the blanks inside them).
fn unquoted(cell: &[u8]) -> &[u8] {
    match cell.trim_ascii() {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        cell => cell,
    }
}

/// Parses one cell (see the module doc for what is accepted).
fn parse_cell(cell: &[u8]) -> Result<f32, CellProblem> {
    let cell = unquoted(cell);
    if cell.eq_ignore_ascii_case(b"true") {
        return Ok(1.0);
    }
    if cell.eq_ignore_ascii_case(b"false") {
        return Ok(0.0);
    }
    if !is_decimal_number(cell) {
        return Err(CellProblem::NotANumber);
    }
    let text = std::str::from_utf8(cell).map_err(|_| CellProblem::NotANumber)?;
    let value: f32 = text.parse().map_err(|_| CellProblem::NotANumber)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CellProblem::OutOfRange)
    }
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?` — what `f32::from_str`
/// accepts minus `inf` and `nan`.
fn is_decimal_number(s: &[u8]) -> bool {
    let digits = |s: &[u8], i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut mantissa = digits(s, &mut i);
    if s.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(s, &mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(s, &mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

/// The cell as text for a message, cut to [`MAX_QUOTED`] characters.
fn quote(cell: &[u8]) -> String {
    super::file::truncated(&String::from_utf8_lossy(cell), MAX_QUOTED)
}

#[cfg(test)]
mod tests {
    use super::super::{DatasetFileError, DatasetReader, description_json};
    use super::super::{DatasetHeader, ValueRange};
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    struct Case {
        dir: tempfile::TempDir,
    }

    /// Once the header is read, the space of as many rows as lines follow is allocated and
    /// said to be, but never more than the text could hold (two bytes a value); blank lines
    /// leave rows unused, which the finished file gives back.
    #[test]
    fn the_space_of_the_rows_is_allocated_first() {
        let row = 2 * 4; // two f32 columns
        // Lines beyond one read of the file, and beyond what a byte counts.
        let many = "a,b\n".to_owned() + &"1,2\n".repeat(300_000) + &"\n".repeat(700);
        // 1,000 blank lines could hold 250 rows of two columns at most (and "1,2" one more).
        let blank = "a,b\n".to_owned() + &"\n".repeat(1_000) + "1,2";
        for (text, rows_allocated, rows) in [
            (&b"a,b\n1,2\n\n\n\n3,4\n"[..], 3, 2),
            (b"a,b\n1,2\n3,4", 2, 2),
            (b"a,b\r\n1,2\r\n", 1, 1),
            (many.as_bytes(), 300_175, 300_000),
            (blank.as_bytes(), 251, 1),
        ] {
            let case = Case::new();
            let input = case.dir.path().join("input.csv");
            fs::write(&input, text).unwrap();
            let mut at_allocation = None;
            convert_csv(&input, "allocated", case.dest(), || {
                at_allocation = Some(super::super::temp_file_space(&case.dir.path().join("out")));
            })
            .unwrap();
            assert_eq!(
                DatasetReader::open(case.dest())
                    .unwrap()
                    .header()
                    .number_of_rows,
                rows
            );
            let size = fs::metadata(case.dest()).unwrap().len();
            let Some((len, allocated)) = at_allocation else {
                assert!(!super::super::can_allocate(case.dir.path()), "not reported");
                continue;
            };
            assert_eq!(len, size + (rows_allocated - rows) * row, "{rows} rows");
            assert!(allocated >= len, "{allocated} of {len} bytes allocated");
        }
    }

    impl Case {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("out")).unwrap();
            Case { dir }
        }

        fn dest(&self) -> PathBuf {
            self.dir.path().join("out").join("dataset")
        }

        /// Converts `text`; on error checks that nothing was left behind.
        fn convert(&self, text: &[u8]) -> Result<WrittenDataset, ConvertError> {
            let input = self.dir.path().join("input.csv");
            fs::write(&input, text).unwrap();
            let result = convert_csv(&input, "csv test", self.dest(), || {});
            if result.is_err() {
                let left: Vec<_> = fs::read_dir(self.dir.path().join("out")).unwrap().collect();
                assert!(left.is_empty(), "left behind: {left:?}");
            }
            assert_eq!(fs::read(&input).unwrap(), text);
            result
        }

        fn values(&self, text: &[u8]) -> (DatasetHeader, Vec<f32>) {
            let header = self.convert(text).unwrap().header;
            let reader = DatasetReader::open(self.dest()).unwrap();
            assert_eq!(reader.header(), &header);
            let values = reader
                .load_f32(ColumnRange::new(0, header.number_of_columns))
                .unwrap();
            fs::remove_file(self.dest()).unwrap();
            (header, values)
        }

        fn error(&self, text: &[u8]) -> String {
            let e = self.convert(text).unwrap_err();
            assert!(e.is_invalid_input(), "{e}");
            e.to_string()
        }
    }

    #[test]
    fn converts_numbers_of_every_form() {
        let case = Case::new();
        let (header, values) = case.values(
            b"x,y,label\n1,-2,3\n0.5,-1.25,+7\n2e3,1E-2,-4.5e+1\n.5,3.,-0\ntrue,FALSE,True\n 1 ,\t2, 3 \n",
        );
        assert_eq!(header.name, "csv test");
        assert_eq!(header.data_type, DataType::F32);
        assert_eq!(header.number_of_rows, 6);
        assert_eq!(header.number_of_columns, 3);
        assert_eq!(
            description_json(&header.description),
            r#"{"label":{"end_column":3,"start_column":2},"x":{"end_column":1,"start_column":0},"y":{"end_column":2,"start_column":1}}"#
        );
        assert_eq!(
            values,
            [
                1.0, -2.0, 3.0, 0.5, -1.25, 7.0, 2000.0, 0.01, -45.0, 0.5, 3.0, -0.0, 1.0, 0.0,
                1.0, 1.0, 2.0, 3.0
            ]
        );
        // Each column's smallest and largest value are gathered on the way.
        let written = case
            .convert(b"x,y,label\n1,-2,3\n0.5,-1.25,+7\n2e3,1E-2,-4.5e+1\n")
            .unwrap();
        let range = |min, max| ValueRange { min, max };
        assert_eq!(
            written.content.value_ranges,
            [
                ("label".to_owned(), range(-45.0, 7.0)),
                ("x".to_owned(), range(0.5, 2000.0)),
                ("y".to_owned(), range(-2.0, 0.01)),
            ]
            .into()
        );
        fs::remove_file(case.dest()).unwrap();
        // Integers beyond the 32-bit range are fine (the original crashed on them).
        let (_, values) = case.values(b"big\n12345678901234567890\n");
        assert_eq!(values, [1.2345679e19]);
    }

    #[test]
    fn crlf_bom_empty_lines_and_missing_final_newline() {
        let case = Case::new();
        let (header, values) =
            case.values(b"\xEF\xBB\xBF\r\n\r\na,b\r\n1,2\r\n\r\n   \n3,4\r\n\n5,6");
        assert_eq!(header.column_range("a"), Some(ColumnRange::new(0, 1)));
        assert_eq!(header.column_range("b"), Some(ColumnRange::new(1, 2)));
        assert_eq!(header.description.len(), 2);
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // The last cell of a CRLF line is a number, not "2\r".
        let (_, values) = case.values(b"a\r\n2\r\n");
        assert_eq!(values, [2.0]);
    }

    /// Spreadsheets and R quote names (and some writers every cell): the quotes do not
    /// count. A comma in quotes still separates cells, and the message says so.
    #[test]
    fn cells_in_double_quotes() {
        let case = Case::new();
        let (header, values) =
            case.values(b"\"x\", \" label \" ,y\n\"1\",2,\"-0.5\"\n \"true\" ,3,\" 4 \"\n");
        assert_eq!(header.column_range("x"), Some(ColumnRange::new(0, 1)));
        // Blanks inside the quotes go too, as blanks around a cell do.
        assert_eq!(header.column_range("label"), Some(ColumnRange::new(1, 2)));
        assert_eq!(values, [1.0, 2.0, -0.5, 1.0, 3.0, 4.0]);
        assert_eq!(
            case.error(b"a,b\n\"1,5\",2\n"),
            "CSV file: line 2 has 3 columns, expected 2 as in the header (every comma \
             separates cells, also one in quotes)"
        );
        assert_eq!(
            case.error(b"\"a,b\"\n1,2\n"),
            "CSV file: line 1: the name \"\\\"a\" of column 1 cannot name a cluster's input or \
             output, which tasks bind columns to: use ASCII letters, digits and '_' (every \
             comma separates cells, also one in quotes)"
        );
        assert_eq!(
            case.error(b"\"\",b\n1,2\n"),
            "CSV file: line 1: column 1 of the header has an empty name (pandas writes its \
             index so: save the file with to_csv(..., index=False), or name the column)"
        );
        // Only a pair of quotes around the whole cell is taken away.
        assert!(
            case.error(b"a\n\"1\n")
                .contains("\"\\\"1\" is not a number")
        );
        assert!(case.error(b"a\n\"\"1\"\"\n").contains("is not a number"));
    }

    #[test]
    fn single_column_and_many_rows() {
        let case = Case::new();
        let mut text = String::from("value\n");
        for i in 0..50_000 {
            text.push_str(&format!("{}\n", i as f32 * 0.25));
        }
        let (header, values) = case.values(text.as_bytes());
        assert_eq!(header.number_of_rows, 50_000);
        assert_eq!(values[40_001], 10_000.25);
        // An empty line between rows would be a row without its value (the rows after it
        // would move up); empty lines before the header and after the last row are fine.
        let (_, values) = case.values(b"\n\ny\n1\n0\n\n  \r\n");
        assert_eq!(values, [1.0, 0.0]);
        let expected = "CSV file: line 3 is empty: in a file of one column (\"y\") that is a row \
                        without its value; remove the line or give the value";
        assert_eq!(case.error(b"y\n1\n\n0\n1\n"), expected);
        assert_eq!(case.error(b"y\n1\n \r\n\n0\n"), expected);
        assert!(
            case.error(b"y\n\n1\n")
                .starts_with("CSV file: line 2 is empty")
        );
        // With more columns an empty line cannot be a row: it is skipped, as is a line of
        // empty cells (a spreadsheet's empty row), and Excel's `sep=,` before the header.
        let (_, values) = case.values(b"a,b\n1,2\n\n3,4\n");
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0]);
        let (header, values) =
            case.values(b"sep=,\r\n,\r\na,b\r\n1,2\r\n,\r\n , \"\" \r\n3,4\r\n,\r\n");
        assert_eq!(header.column_range("b"), Some(ColumnRange::new(1, 2)));
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0]);
        // Another separator named so is not skipped over: its header says what is wrong.
        assert!(case.error(b"sep=;\na;b\n1;2\n").contains("line 2"));
        // In a file of one column, a lone empty cell is a row without its value.
        assert!(
            case.error(b"y\n1\n\"\"\n0\n")
                .starts_with("CSV file: line 3 is empty")
        );
    }

    #[test]
    fn no_header() {
        let case = Case::new();
        let msg = "CSV file: no header line (the file is empty or holds only empty lines)";
        assert_eq!(case.error(b""), msg);
        assert_eq!(case.error(b"\n\r\n  \n"), msg);
        assert_eq!(case.error(b"\xEF\xBB\xBF"), msg);
    }

    #[test]
    fn no_data_rows() {
        let case = Case::new();
        assert_eq!(
            case.error(b"\na,b,c\n\n"),
            "CSV file: no data rows after the header (line 2)"
        );
    }

    #[test]
    fn bad_header_names() {
        let case = Case::new();
        assert_eq!(
            case.error(b"a,b,a\n1,2,3\n"),
            "CSV file: line 1: column 3 of the header repeats the name \"a\" of column 1; column \
             names must be unique"
        );
        assert_eq!(
            case.error(b"a, b ,b\n1,2,3\n"),
            "CSV file: line 1: column 3 of the header repeats the name \"b\" of column 2; column \
             names must be unique"
        );
        assert_eq!(
            case.error(b"a,,c\n1,2,3\n"),
            "CSV file: line 1: column 2 of the header has an empty name"
        );
        assert_eq!(
            case.error(b"\na,b,\n1,2,3\n"),
            "CSV file: line 2: column 3 of the header has an empty name"
        );
        // A first line of numbers in any notation is data: the header is missing.
        for text in [&b"1e5,2e3\n3,4\n"[..], b"true,false\n1,0\n", b"0e0\n1\n"] {
            let error = case.error(text);
            assert!(
                error.contains(
                    "is a number, as is every name of that line: the first line must \
                                name the columns (is the header line missing?)"
                ),
                "{error}"
            );
        }
        // A name that merely looks like one among others is a name.
        let (header, _) = case.values(b"x,1e5\n3,4\n");
        assert_eq!(header.column_range("1e5"), Some(ColumnRange::new(1, 2)));
        assert_eq!(
            case.error(b"a,\xff\n1,2\n"),
            "CSV file: line 1: the header is not valid UTF-8 text"
        );
        assert_eq!(
            case.error(b"\xff\xfea\0,\0b\0\n\0"),
            "CSV file: line 1: the header is not valid UTF-8 text (it looks like UTF-16: save the \
             file as UTF-8 CSV)"
        );
    }

    #[test]
    fn binary_files_are_named_so() {
        let case = Case::new();
        // The start of MNIST's test labels: magic, count, labels (no newline among them).
        assert_eq!(
            case.error(b"\0\0\x08\x01\0\0\x27\x10\x07\x02\x01\0\x04"),
            "CSV file: line 1: byte 0 of the line is a NUL byte, so this is binary data, not \
             CSV text (it looks like an MNIST IDX file: upload it as an MNIST dataset, with its \
             image or label file beside it)"
        );
        assert_eq!(
            case.error(b"\n\nPK\x03\x04\x14\0\x08\n"),
            "CSV file: line 3: byte 5 of the line is a NUL byte, so this is binary data, not \
             CSV text"
        );
        assert!(case.error(b"PK\x03\x04\x14\0\x08\n").ends_with(
            "(it looks like a zip archive, as .xlsx spreadsheets are: save the \
                            sheet as CSV, or unpack the archive)"
        ));
        // Without a NUL byte in the first line, a known start is named all the same.
        assert_eq!(
            case.error(b"\x89PNG\r\n\x1a\n"),
            "CSV file: line 1: the header is not valid UTF-8 text (it looks like an image, not \
             CSV text)"
        );
        assert!(
            case.error(b"\x1f\x8b\x08\x08\n")
                .ends_with("(it looks like a gzip archive: unpack it first)")
        );
        // UTF-16 without its byte-order mark, little- and big-endian.
        for text in [&b"a\0,\0b\0\r\0\n\0"[..], b"\0a\0,\0b\0\r\0\n"] {
            assert_eq!(
                case.error(text),
                "CSV file: line 1: the header is not valid UTF-8 text (it looks like UTF-16: \
                 save the file as UTF-8 CSV)"
            );
        }
        // Names in other scripts, without a byte-order mark (一 and Ā have a zero byte of
        // their own): "имя,метка\r\n" and "一,Ā\n".
        let mut encoded = Vec::new();
        for header in ["имя,метка\r\n", "一,Ā\n"] {
            let units: Vec<u16> = header.encode_utf16().collect();
            encoded.push(
                units
                    .iter()
                    .flat_map(|u| u.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
            encoded.push(units.iter().flat_map(|u| u.to_be_bytes()).collect());
        }
        for text in encoded {
            assert!(
                case.error(&text)
                    .ends_with("(it looks like UTF-16: save the file as UTF-8 CSV)"),
                "{}",
                case.error(&text)
            );
        }
        // After the header a NUL is a cell that is no number.
        assert!(
            case.error(b"a\n1\n\0\n").contains("line 3"),
            "{}",
            case.error(b"a\n1\n\0\n")
        );
    }

    #[test]
    fn ragged_rows() {
        let case = Case::new();
        assert_eq!(
            case.error(b"a,b,c\n1,2,3\n\n4,5\n"),
            "CSV file: line 4 has 2 columns, expected 3 as in the header"
        );
        assert_eq!(
            case.error(b"a,b,c\r\n1,2,3\r\n4,5,6,7\r\n"),
            "CSV file: line 3 has 4 columns, expected 3 as in the header"
        );
        assert_eq!(
            case.error(b"a,b\n1,2,\n"),
            "CSV file: line 2 has 3 columns, expected 2 as in the header"
        );
        assert_eq!(
            case.error(b"a,b\n1\n"),
            "CSV file: line 2 has 1 column, expected 2 as in the header"
        );
        // A lone `\r` inside the data (a file pasted together from an old Mac one) or
        // another separator is named.
        assert_eq!(
            case.error(b"a,b\n1,2\r3,4\n"),
            "CSV file: line 2 has 3 columns, expected 2 as in the header (lines end in \\n or \
             \\r\\n; a lone \\r ends no line)"
        );
        assert_eq!(
            case.error(b"a,b\n1;2\n"),
            "CSV file: line 2 has 1 column, expected 2 as in the header (cells are separated by \
             commas only)"
        );
    }

    #[test]
    fn limits_on_columns_names_and_lines() {
        let case = Case::new();
        // At the column limit, and one beyond it.
        let header = |columns: usize| {
            let names: Vec<String> = (0..columns).map(|i| format!("c{i}")).collect();
            let row = vec!["1"; columns].join(",");
            format!("{}\n{row}\n", names.join(","))
        };
        let (converted, values) = case.values(header(MAX_COLUMNS).as_bytes());
        assert_eq!(converted.number_of_columns, MAX_COLUMNS as u64);
        assert_eq!(values.len(), MAX_COLUMNS);
        assert_eq!(
            case.error(header(MAX_COLUMNS + 1).as_bytes()),
            "CSV file: line 1: the header has 65537 columns, at most 65536 are supported"
        );
        // Names as long as an interface name may be, and longer.
        let longest = "a".repeat(MAX_NAME_CHARS);
        let (converted, _) = case.values(format!("x,{longest}\n1,2\n").as_bytes());
        assert!(converted.column_range(&longest).is_some());
        let error = case.error(format!("x,{longest}a\n1,2\n").as_bytes());
        assert!(
            error.starts_with("CSV file: line 1: the name \"aaaa")
                && error.ends_with("of column 2 is longer than 254 characters"),
            "{error}"
        );
        // Names that no template can give an input or output: tasks could not use them.
        for name in ["sepal-length", "sepal length", "ünï", "a.b"] {
            let error = case.error(format!("x,{name}\n1,2\n").as_bytes());
            assert!(
                error.ends_with(
                    "of column 2 cannot name a cluster's input or output, which tasks bind \
                     columns to: use ASCII letters, digits and '_'"
                ),
                "{error}"
            );
        }
        // Other dialects are named.
        for (text, hint) in [
            (&b"a;b\n1;2\n"[..], "(cells are separated by commas only)"),
            (b"a\tb\n1\t2\n", "(cells are separated by commas only)"),
            (
                b"a,b\r1,2\r",
                "(lines end in \\n or \\r\\n; a lone \\r ends no line)",
            ),
        ] {
            let error = case.error(text);
            assert!(error.ends_with(hint), "{error}");
        }
        // A file without its header line.
        assert_eq!(
            case.error(b"1,2,3\n4,5,6\n"),
            "CSV file: line 1: the name \"1\" of column 1 is a number, as is every name of \
             that line: the first line must name the columns (is the header line missing?)"
        );
        // One name of digits among others.
        assert_eq!(
            case.error(b"x,2\n4,5\n"),
            "CSV file: line 1: the name \"2\" of column 2 is a number, which cannot name a \
             cluster's input or output: the first line must name the columns (is the header \
             line missing?)"
        );
        let (converted, _) = case.values(b"_1,x2,2x\n1,2,3\n");
        assert_eq!(converted.number_of_columns, 3);
        assert_eq!(
            case.error(b"\nok,na\x01me\n1,2\n"),
            "CSV file: line 2: the name \"na\\u{1}me\" of column 2 contains a control character"
        );
        assert_eq!(
            case.error("x,\u{feff}a\n1,2\n".as_bytes()),
            "CSV file: line 1: the name \"\\u{feff}a\" of column 2 contains an invisible \
             character (U+FEFF)"
        );
        // A byte-order mark at the start of the file is no part of the first name, but a
        // second one is.
        assert!(
            case.error("\u{feff}\u{feff}a,b\n1,2\n".as_bytes())
                .ends_with("of column 1 contains an invisible character (U+FEFF)")
        );
        assert!(
            case.error("a\u{200b},b\n1,2\n".as_bytes())
                .ends_with("contains an invisible character (U+200B)")
        );
        assert_eq!(
            case.error(b"a\tb\n1\n"),
            "CSV file: line 1: the name \"a\\tb\" of column 1 contains a control character \
             (cells are separated by commas only)"
        );
        // A line can be as long as the limit, line end included, but not longer.
        let limit = MAX_LINE_BYTES as usize;
        let mut text = b"a\n".to_vec();
        text.extend(std::iter::repeat_n(b' ', limit - 2));
        text.extend(b"1\n");
        let (_, values) = case.values(&text);
        assert_eq!(values, [1.0]);
        let mut text = b"a\n".to_vec();
        text.extend(std::iter::repeat_n(b' ', limit - 1));
        text.extend(b"1\n");
        assert_eq!(
            case.error(&text),
            format!("CSV file: line 2 is longer than {limit} bytes")
        );
        // A last line without a line end: the limit holds for its bytes.
        text.pop();
        let (_, values) = case.values(&text);
        assert_eq!(values, [1.0]);
        text.push(b' ');
        assert_eq!(
            case.error(&text),
            format!("CSV file: line 2 is longer than {limit} bytes")
        );
    }

    #[test]
    fn non_numeric_cells() {
        let case = Case::new();
        assert_eq!(
            case.error(b"x,price\n1,2\n3,abc\n"),
            "CSV file: line 3, column 2 (\"price\"): \"abc\" is not a number (expected an \
             integer, a decimal like -1.5 or 2e-3, true or false)"
        );
        for cell in [
            "",
            "null",
            "inf",
            "-infinity",
            "NaN",
            "1e",
            "e5",
            "--1",
            "+-1",
            "0x10",
            "1.2.3",
            "1 2",
            ".",
            "-",
            "١٢",
        ] {
            let text = format!("a,b\n1,{cell}\n");
            let msg = case.error(text.as_bytes());
            assert!(
                msg.starts_with("CSV file: line 2, column 2 (\"b\"): "),
                "{cell}: {msg}"
            );
        }
        let long = "y".repeat(100);
        let msg = case.error(format!("a\n{long}\n").as_bytes());
        assert!(
            msg.contains(&format!("\"{}…\" is not a number", "y".repeat(40))),
            "{msg}"
        );
        let msg = case.error(b"a\n1\n\xff\xfe\n");
        assert!(
            msg.starts_with("CSV file: line 3, column 1 (\"a\"): \"\u{fffd}\u{fffd}\""),
            "{msg}"
        );
    }

    #[test]
    fn late_error_after_many_rows_leaves_nothing() {
        // More than the writer's 1 MiB buffer is in the temporary file when the bad cell comes.
        let case = Case::new();
        let mut text = String::from("a,b,c,d\n");
        for i in 0..100_000 {
            text.push_str(&format!("{i},1,2,3\n"));
        }
        text.push_str("1,2,3,x\n");
        assert_eq!(
            case.error(text.as_bytes()),
            "CSV file: line 100002, column 4 (\"d\"): \"x\" is not a number (expected an \
             integer, a decimal like -1.5 or 2e-3, true or false)"
        );
    }

    #[test]
    fn numbers_outside_f32() {
        let case = Case::new();
        assert_eq!(
            case.error(b"a\n1\n-1e39\n"),
            "CSV file: line 3, column 1 (\"a\"): -1e39 is outside the range of 32-bit floats"
        );
        // Tiny numbers become 0 (underflow is not an error).
        let (_, values) = case.values(b"a\n1e-50\n");
        assert_eq!(values, [0.0]);
    }

    #[test]
    fn missing_input_and_existing_destination_are_server_errors() {
        let case = Case::new();
        let e = convert_csv(case.dir.path().join("nope"), "x", case.dest(), || {}).unwrap_err();
        assert!(!e.is_invalid_input());
        assert!(e.to_string().starts_with("CSV file: cannot read "), "{e}");

        fs::write(case.dest(), b"old").unwrap();
        let input = case.dir.path().join("input.csv");
        fs::write(&input, b"a\n1\n").unwrap();
        let e = convert_csv(&input, "x", case.dest(), || {}).unwrap_err();
        assert!(
            matches!(
                e,
                ConvertError::Output(DatasetFileError::AlreadyExists { .. })
            ),
            "{e}"
        );
        assert!(!e.is_invalid_input());
        assert_eq!(fs::read(case.dest()).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(case.dir.path().join("out")).unwrap().count(),
            1
        );
    }

    #[test]
    fn cell_grammar() {
        for ok in [
            "0", "-0", "+1", "1.", ".1", "1.5e10", "1e-5", "1E+5", "007", "1.e3",
        ] {
            assert!(is_decimal_number(ok.as_bytes()), "{ok}");
            assert!(ok.parse::<f32>().is_ok(), "{ok}");
        }
        for bad in [
            "", "+", ".", "e1", ".e1", "1e", "1e+", "1.5.", "inf", "nan", " 1",
        ] {
            assert!(!is_decimal_number(bad.as_bytes()), "{bad}");
        }
    }
}
