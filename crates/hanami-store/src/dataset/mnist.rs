//! Conversion of an uploaded MNIST pair of IDX files into a `u8` dataset.
//!
//! Input (big-endian integers):
//! * image file: magic `0x00000803` (bytes 0..4), image count (4..8), rows (8..12),
//!   columns (12..16), then `count × rows × columns` pixel bytes, image after image;
//! * label file: magic `0x00000801` (0..4), label count (4..8), then one byte per image,
//!   each a digit 0..=9.
//!
//! Output: one row per image, `rows × columns` raw pixel bytes (0..=255, not scaled) followed
//! by 10 bytes of one-hot label; description `picture` = `[0, pixels)`, `label` =
//! `[pixels, pixels + 10)`.
//!
//! Everything that can be wrong with the input — magic numbers, dimensions, file lengths, the
//! two counts, every label — is checked before the dataset writer starts; after that any byte
//! is a valid pixel, so conversion cannot fail on content.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    ColumnRange, ConvertError, DataType, DatasetWriter, Description, IdxFile, WrittenDataset,
};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (MNIST images).
pub const MNIST_IMAGE_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (MNIST labels).
pub const MNIST_LABEL_MAGIC: u32 = 0x0000_0801;

const IMAGE_HEADER: u64 = 16;
const LABEL_HEADER: u64 = 8;
const NUMBER_OF_LABELS: usize = 10;
/// Largest accepted image rows or columns.
const MAX_SIDE: u32 = 65_535;
/// Largest accepted pixels per image (a 4096 × 4096 image).
const MAX_PIXELS: u64 = 1 << 24;
/// Bytes of images converted per step.
const CHUNK_BYTES: usize = 4 << 20;

/// Converts an MNIST image file and label file into a new `u8` dataset named `name` at
/// `dest_path`, and returns its header and value ranges.
///
/// The inputs are validated completely before anything is written; on any error no dataset
/// file exists afterwards (and no temporary file is left). The input files are only read.
/// The dataset's disk space is allocated before its rows are written; `allocated` is called
/// then (not on file systems that cannot allocate up front).
pub fn convert_mnist(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    name: &str,
    dest_path: impl AsRef<Path>,
    allocated: impl FnOnce(),
) -> Result<WrittenDataset, ConvertError> {
    let images_path = images_path.as_ref();
    let labels_path = labels_path.as_ref();
    let images = Input::open(IdxFile::Images, images_path)?;
    let labels = Input::open(IdxFile::Labels, labels_path)?;

    let image_header = images.header(IMAGE_HEADER, MNIST_IMAGE_MAGIC)?;
    let label_header = labels.header(LABEL_HEADER, MNIST_LABEL_MAGIC)?;
    let count = be_u32(&image_header[4..8]);
    let rows = be_u32(&image_header[8..12]);
    let columns = be_u32(&image_header[12..16]);
    let label_count = be_u32(&label_header[4..8]);

    let pixels = u64::from(rows) * u64::from(columns);
    if rows == 0 || columns == 0 || rows > MAX_SIDE || columns > MAX_SIDE || pixels > MAX_PIXELS {
        return Err(ConvertError::ImageDimensions {
            rows,
            columns,
            max_side: MAX_SIDE,
            max_pixels: MAX_PIXELS,
        });
    }
    if count == 0 {
        return Err(ConvertError::NoImages);
    }
    let expected = IMAGE_HEADER + u64::from(count) * pixels;
    if images.len != expected {
        return Err(ConvertError::IdxSize {
            file: IdxFile::Images,
            count,
            what: format!("images of {rows}×{columns} pixels"),
            expected,
            actual: images.len,
        });
    }
    let expected = LABEL_HEADER + u64::from(label_count);
    if labels.len != expected {
        return Err(ConvertError::IdxSize {
            file: IdxFile::Labels,
            count: label_count,
            what: "labels".into(),
            expected,
            actual: labels.len,
        });
    }
    if count != label_count {
        return Err(ConvertError::CountMismatch {
            images: count,
            labels: label_count,
        });
    }

    // The labels are checked, and then read, a chunk at a time: a label file may be as
    // large as an upload (a label per byte), which need not fit in memory.
    let mut label_bytes = vec![0u8; (count as usize).min(CHUNK_BYTES)];
    let mut checked = 0u64;
    while checked < u64::from(count) {
        let n = (u64::from(count) - checked).min(label_bytes.len() as u64) as usize;
        let offset = LABEL_HEADER + checked;
        labels.read_at(&mut label_bytes[..n], offset)?;
        if let Some(i) = label_bytes[..n]
            .iter()
            .position(|&l| usize::from(l) >= NUMBER_OF_LABELS)
        {
            return Err(ConvertError::LabelOutOfRange {
                offset: offset + i as u64,
                value: label_bytes[i],
            });
        }
        checked += n as u64;
    }

    // Validation is complete; convert.
    let pixels = pixels as usize;
    let row_len = pixels + NUMBER_OF_LABELS;
    let description = Description::from([
        ("picture".to_owned(), ColumnRange::new(0, pixels as u64)),
        (
            "label".to_owned(),
            ColumnRange::new(pixels as u64, row_len as u64),
        ),
    ]);
    let mut writer =
        DatasetWriter::create(dest_path, name, DataType::U8, row_len as u64, description)?;
    if writer.preallocate(u64::from(count))? {
        allocated();
    }
    let per_chunk = (CHUNK_BYTES / pixels).clamp(1, count as usize);
    let mut input = vec![0u8; per_chunk * pixels];
    let mut output = vec![0u8; per_chunk * row_len];
    let mut chunk_labels = vec![0u8; per_chunk];
    let mut done = 0usize;
    while done < count as usize {
        let n = (count as usize - done).min(per_chunk);
        let chunk_labels = &mut chunk_labels[..n];
        labels.read_at(chunk_labels, LABEL_HEADER + done as u64)?;
        let offset = IMAGE_HEADER + (done * pixels) as u64;
        images.read_at(&mut input[..n * pixels], offset)?;
        let rows_out = output[..n * row_len].chunks_exact_mut(row_len);
        for (i, ((row, image), &label)) in rows_out
            .zip(input.chunks_exact(pixels))
            .zip(chunk_labels.iter())
            .enumerate()
        {
            let (picture, one_hot) = row.split_at_mut(pixels);
            picture.copy_from_slice(image);
            one_hot.fill(0);
            // Checked above; a label file changed since is refused rather than trusted.
            let Some(bit) = one_hot.get_mut(usize::from(label)) else {
                return Err(ConvertError::LabelOutOfRange {
                    offset: LABEL_HEADER + (done + i) as u64,
                    value: label,
                });
            };
            *bit = 1;
        }
        writer.append_rows_u8(&output[..n * row_len])?;
        done += n;
    }
    Ok(writer.finish()?)
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("4 bytes"))
}

/// One opened input file with its length.
struct Input<'a> {
    kind: IdxFile,
    path: &'a Path,
    file: File,
    len: u64,
}

impl<'a> Input<'a> {
    fn open(kind: IdxFile, path: &'a Path) -> Result<Self, ConvertError> {
        let err = |source| ConvertError::ReadInput {
            file: kind.name(),
            path: path.into(),
            source,
        };
        // A named pipe in its place would hold an open for reading until a writer comes.
        let file = crate::files::open_without_waiting(path).map_err(err)?;
        let metadata = file.metadata().map_err(err)?;
        if !metadata.is_file() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let len = metadata.len();
        Ok(Input {
            kind,
            path,
            file,
            len,
        })
    }

    /// Reads the IDX header (`size` bytes) and checks the magic number — first, if the file
    /// has at least its 4 bytes, so that swapped or foreign files are reported as such.
    fn header(&self, size: u64, magic: u32) -> Result<Vec<u8>, ConvertError> {
        let too_short = ConvertError::IdxTooShort {
            file: self.kind,
            len: self.len,
            needed: size,
        };
        if self.len < 4 {
            return Err(too_short);
        }
        let mut header = vec![0u8; self.len.min(size) as usize];
        self.read_at(&mut header, 0)?;
        let found = be_u32(&header[0..4]);
        if found != magic {
            return Err(ConvertError::IdxMagic {
                file: self.kind,
                found,
                expected: magic,
            });
        }
        if self.len < size {
            return Err(too_short);
        }
        Ok(header)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ConvertError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| ConvertError::ReadInput {
                file: self.kind.name(),
                path: self.path.into(),
                source,
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{DatasetFileError, DatasetReader};
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    /// IDX image file bytes: `count` images of `rows × columns`, pixel value from `pixel`.
    pub(crate) fn idx_images(
        count: u32,
        rows: u32,
        columns: u32,
        pixel: impl Fn(usize, usize) -> u8,
    ) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [MNIST_IMAGE_MAGIC, count, rows, columns] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        let pixels = (rows * columns) as usize;
        for i in 0..count as usize {
            v.extend((0..pixels).map(|p| pixel(i, p)));
        }
        v
    }

    /// IDX label file bytes.
    pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&MNIST_LABEL_MAGIC.to_be_bytes());
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    struct Case {
        dir: tempfile::TempDir,
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

        /// Runs the conversion; on error checks that nothing was left behind.
        fn convert(&self, images: &[u8], labels: &[u8]) -> Result<WrittenDataset, ConvertError> {
            let ip = self.dir.path().join("images");
            let lp = self.dir.path().join("labels");
            fs::write(&ip, images).unwrap();
            fs::write(&lp, labels).unwrap();
            let result = convert_mnist(&ip, &lp, "mnist test", self.dest(), || {});
            if result.is_err() {
                let left: Vec<_> = fs::read_dir(self.dir.path().join("out")).unwrap().collect();
                assert!(left.is_empty(), "left behind: {left:?}");
            }
            // Inputs untouched.
            assert_eq!(fs::read(&ip).unwrap(), images);
            assert_eq!(fs::read(&lp).unwrap(), labels);
            result
        }

        fn error(&self, images: &[u8], labels: &[u8]) -> String {
            let e = self.convert(images, labels).unwrap_err();
            assert!(e.is_invalid_input(), "{e}");
            e.to_string()
        }
    }

    fn pixel(i: usize, p: usize) -> u8 {
        (i * 31 + p * 7) as u8
    }

    /// The dataset's space is allocated, and said to be, before its rows are written.
    #[test]
    fn the_space_of_the_dataset_is_allocated_first() {
        let case = Case::new();
        let labels: Vec<u8> = (0..300).map(|i| (i % 10) as u8).collect();
        let ip = case.dir.path().join("images");
        let lp = case.dir.path().join("labels");
        fs::write(&ip, idx_images(300, 28, 28, pixel)).unwrap();
        fs::write(&lp, idx_labels(&labels)).unwrap();
        let mut at_allocation = None;
        convert_mnist(&ip, &lp, "allocated", case.dest(), || {
            at_allocation = Some(super::super::temp_file_space(&case.dir.path().join("out")));
        })
        .unwrap();
        let size = fs::metadata(case.dest()).unwrap().len();
        let Some((len, allocated)) = at_allocation else {
            assert!(!super::super::can_allocate(case.dir.path()), "not reported");
            return;
        };
        assert_eq!(len, size);
        assert!(allocated >= size, "{allocated} of {size} bytes allocated");
    }

    #[test]
    fn converts_small_idx_files() {
        let case = Case::new();
        let labels = [3u8, 0, 9, 5, 5, 1, 7];
        let written = case
            .convert(&idx_images(7, 3, 2, pixel), &idx_labels(&labels))
            .unwrap();
        let pixels = (0..7 * 6).map(|i| pixel(i / 6, i % 6));
        let (low, high) = (pixels.clone().min().unwrap(), pixels.max().unwrap());
        assert!(low < high, "{low} {high}");
        let range = |min, max| super::super::ValueRange { min, max };
        assert_eq!(
            written.content.value_ranges,
            [
                ("label".to_owned(), range(0.0, 1.0)),
                ("picture".to_owned(), range(f32::from(low), f32::from(high))),
            ]
            .into()
        );
        let header = written.header;
        assert_eq!(header.name, "mnist test");
        assert_eq!(header.data_type, DataType::U8);
        assert_eq!(header.number_of_rows, 7);
        assert_eq!(header.number_of_columns, 16);
        assert_eq!(
            super::super::description_json(&header.description),
            r#"{"label":{"end_column":16,"start_column":6},"picture":{"end_column":6,"start_column":0}}"#
        );

        let reader = DatasetReader::open(case.dest()).unwrap();
        assert_eq!(reader.header(), &header);
        let all = reader.load_f32(ColumnRange::new(0, 16)).unwrap();
        for (i, row) in all.chunks_exact(16).enumerate() {
            for (p, &value) in row[..6].iter().enumerate() {
                assert_eq!(value, f32::from(pixel(i, p)));
            }
            for l in 0..10 {
                assert_eq!(
                    row[6 + l],
                    if l == usize::from(labels[i]) {
                        1.0
                    } else {
                        0.0
                    }
                );
            }
        }
    }

    #[test]
    fn converts_across_chunk_boundaries() {
        // 28×28 images: 5349 per 4 MiB chunk; 12,000 images need three chunks.
        let case = Case::new();
        let count = 12_000u32;
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        let header = case
            .convert(&idx_images(count, 28, 28, pixel), &idx_labels(&labels))
            .unwrap()
            .header;
        assert_eq!(header.number_of_columns, 794);
        let reader = DatasetReader::open(case.dest()).unwrap();
        let mut cursor = reader
            .rows(ColumnRange::new(0, 794), 0..u64::from(count))
            .unwrap();
        let mut i = 0;
        while let Some(row) = cursor.next_row().unwrap() {
            assert_eq!(row[0], f32::from(pixel(i, 0)));
            assert_eq!(row[783], f32::from(pixel(i, 783)));
            assert_eq!(row[784 + i % 10], 1.0);
            assert_eq!(row[784..].iter().sum::<f32>(), 1.0);
            i += 1;
        }
        assert_eq!(i, count as usize);
    }

    #[test]
    fn wrong_magic_numbers() {
        let case = Case::new();
        let labels = idx_labels(&[1, 2]);
        let mut images = idx_images(2, 2, 2, pixel);
        images[3] = 0x04;
        assert_eq!(
            case.error(&images, &labels),
            "image file: magic number at bytes 0..4 is 0x00000804, expected 0x00000803"
        );
        let images = idx_images(2, 2, 2, pixel);
        let mut bad_labels = labels.clone();
        bad_labels[2] = 0x09;
        assert_eq!(
            case.error(&images, &bad_labels),
            "label file: magic number at bytes 0..4 is 0x00000901, expected 0x00000801"
        );
        // Swapped files: said so.
        assert_eq!(
            case.error(&labels, &images),
            "image file: magic number at bytes 0..4 is 0x00000801, expected 0x00000803 (IDX \
             label file magic: are image and label file swapped?)"
        );
        assert_eq!(
            case.error(&images, &images),
            "label file: magic number at bytes 0..4 is 0x00000803, expected 0x00000801 (IDX \
             image file magic: are image and label file swapped?)"
        );
        let mut text = b"hello, world, this is csv\n".to_vec();
        text.extend_from_slice(&[0; 16]);
        assert!(
            case.error(&text, &labels)
                .starts_with("image file: magic number at bytes 0..4 is 0x68656c6c")
        );
    }

    #[test]
    fn files_shorter_than_their_headers() {
        let case = Case::new();
        let labels = idx_labels(&[1]);
        let images = idx_images(1, 2, 2, pixel);
        assert_eq!(
            case.error(&images[..10], &labels),
            "image file: 10 bytes long, too short for the 16-byte IDX header"
        );
        assert_eq!(
            case.error(&[], &labels),
            "image file: 0 bytes long, too short for the 16-byte IDX header"
        );
        assert_eq!(
            case.error(&images, &labels[..7]),
            "label file: 7 bytes long, too short for the 8-byte IDX header"
        );
    }

    #[test]
    fn count_mismatch() {
        let case = Case::new();
        assert_eq!(
            case.error(&idx_images(3, 2, 2, pixel), &idx_labels(&[1, 2])),
            "the image file holds 3 images but the label file holds 2 labels"
        );
    }

    #[test]
    fn named_pipes_are_refused_without_waiting() {
        let case = Case::new();
        let (images, labels) = (
            case.dir.path().join("images"),
            case.dir.path().join("labels"),
        );
        hanami_testkit::named_pipe(&images);
        fs::write(&labels, idx_labels(&[1])).unwrap();
        let e = convert_mnist(&images, &labels, "mnist test", case.dest(), || {}).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let csv = case.dir.path().join("data.csv");
        hanami_testkit::named_pipe(&csv);
        let e = crate::dataset::convert_csv(&csv, "csv test", case.dest(), || {}).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn truncated_or_overlong_files() {
        let case = Case::new();
        let labels = idx_labels(&[1, 2, 3]);
        let images = idx_images(3, 28, 28, pixel);
        assert_eq!(
            case.error(&images[..images.len() - 100], &labels),
            "image file: the header declares 3 images of 28×28 pixels = 2368 bytes, but the \
             file has 2268 bytes (truncated, 100 bytes missing)"
        );
        let mut long = images.clone();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(
            case.error(&long, &labels),
            "image file: the header declares 3 images of 28×28 pixels = 2368 bytes, but the \
             file has 2372 bytes (4 trailing bytes)"
        );
        assert_eq!(
            case.error(&images, &labels[..10]),
            "label file: the header declares 3 labels = 11 bytes, but the file has 10 bytes \
             (truncated, 1 byte missing)"
        );
        let mut long = labels.clone();
        long.push(0);
        assert_eq!(
            case.error(&images, &long),
            "label file: the header declares 3 labels = 11 bytes, but the file has 12 bytes \
             (1 trailing byte)"
        );
        // A count far beyond the file (no huge allocation, no overflow).
        let mut huge = images.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(case.error(&huge, &labels).contains("truncated"));
    }

    #[test]
    fn label_out_of_range() {
        let case = Case::new();
        assert_eq!(
            case.error(&idx_images(4, 2, 2, pixel), &idx_labels(&[0, 9, 11, 200])),
            "label file: byte 10 holds label 11, expected 0..9"
        );
    }

    /// Labels are checked and read a chunk at a time (a label file may be as large as an
    /// upload): a bad label after the first chunk is found where it is, and the rows after
    /// the first chunk get their own labels.
    #[test]
    fn labels_beyond_one_chunk() {
        let case = Case::new();
        let count = CHUNK_BYTES + 1000;
        let mut labels: Vec<u8> = (0..count).map(|i| (i % 7) as u8).collect();
        let images = idx_images(count as u32, 1, 1, |i, _| (i % 251) as u8);
        labels[CHUNK_BYTES + 500] = 12;
        assert_eq!(
            case.error(&images, &idx_labels(&labels)),
            format!(
                "label file: byte {} holds label 12, expected 0..9",
                8 + CHUNK_BYTES + 500
            )
        );
        labels[CHUNK_BYTES + 500] = 9;
        case.convert(&images, &idx_labels(&labels)).unwrap();
        let reader = DatasetReader::open(case.dest()).unwrap();
        for row in [
            0,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 500,
            count - 1,
        ] {
            let mut cursor = reader
                .rows(ColumnRange::new(0, 11), row as u64..row as u64 + 1)
                .unwrap();
            let values = cursor.next_row().unwrap().unwrap().to_vec();
            assert_eq!(values[0], (row % 251) as f32, "row {row}");
            assert_eq!(values[1 + usize::from(labels[row])], 1.0, "row {row}");
            assert_eq!(values[1..].iter().sum::<f32>(), 1.0, "row {row}");
        }
    }

    #[test]
    fn bad_dimensions() {
        let case = Case::new();
        let labels = idx_labels(&[1]);
        let msg = case.error(&idx_images(1, 0, 28, pixel), &labels);
        assert_eq!(
            msg,
            "image file: image size 0×28 (bytes 8..16) is invalid; rows and columns must be \
             between 1 and 65535, with at most 16777216 pixels in all"
        );
        assert!(
            case.error(&idx_images(1, 28, 0, pixel), &labels)
                .starts_with("image file: image size 28×0")
        );
        let mut big = idx_images(1, 1, 1, pixel);
        big[8..16].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]);
        assert!(
            case.error(&big, &labels)
                .starts_with("image file: image size 65536×65536")
        );
        let mut big = idx_images(1, 1, 1, pixel);
        big[8..16].copy_from_slice(&[0, 0, 0x20, 0, 0, 0, 0x20, 0]);
        assert!(
            case.error(&big, &labels)
                .starts_with("image file: image size 8192×8192")
        );
        assert_eq!(
            case.error(&idx_images(0, 28, 28, pixel), &idx_labels(&[])),
            "image file: the header (bytes 4..8) declares 0 images; a dataset needs at least one"
        );
    }

    #[test]
    fn missing_input_and_existing_destination_are_server_errors() {
        let case = Case::new();
        let e = convert_mnist(
            case.dir.path().join("nope"),
            case.dir.path().join("nope2"),
            "x",
            case.dest(),
            || {},
        )
        .unwrap_err();
        assert!(!e.is_invalid_input());
        assert!(e.to_string().starts_with("image file: cannot read "), "{e}");

        fs::write(case.dest(), b"old").unwrap();
        let ip = case.dir.path().join("images");
        let lp = case.dir.path().join("labels");
        fs::write(&ip, idx_images(1, 2, 2, pixel)).unwrap();
        fs::write(&lp, idx_labels(&[4])).unwrap();
        let e = convert_mnist(&ip, &lp, "x", case.dest(), || {}).unwrap_err();
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

        let e = convert_mnist(&ip, &lp, "", case.dir.path().join("out/other"), || {}).unwrap_err();
        assert!(e.is_invalid_input());
        assert!(e.to_string().starts_with("dataset name must be"), "{e}");
    }
}
