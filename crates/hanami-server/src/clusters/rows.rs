//! Feeding dataset rows into the engine: each bound interface reads its column range of one
//! dataset, row by row, through a read-only cursor shared by all interfaces of that dataset.
//! Datasets are opened when their task starts, so a queued task holds no file open.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use anyhow::Context;
use hanami_engine::{RowError, Rows};
use hanami_store::dataset::{
    Checksum, ColumnRange, DatasetFileError, DatasetReader, RowCursor, VerifiedFiles,
};

use super::Interfaces;
use crate::file_faults::dataset_unusable;

/// The `HANAMI_FAIL_AT` point (debug builds) at which every opening of a task's datasets
/// fails so.
const DESCRIPTORS_LASTING_POINT: &str = "task:descriptors-lasting";

/// Which side of the network an interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// An input: the dataset's values are fed in.
    Input,
    /// An output: the dataset's values are expected (training) or recorded (requests).
    Output,
}

impl Side {
    /// "input" or "output".
    pub fn word(self) -> &'static str {
        match self {
            Side::Input => "input",
            Side::Output => "output",
        }
    }
}

/// One interface bound to the columns of a dataset.
pub struct Binding {
    /// Interface name.
    pub name: String,
    /// The interface's side.
    pub side: Side,
    /// The dataset's uuid (for messages).
    pub dataset_uuid: String,
    /// The dataset's file.
    pub path: PathBuf,
    /// Its columns for this interface; their count is the interface's size.
    pub columns: ColumnRange,
    /// The checksum recorded for the dataset's file, which it is compared with before its
    /// rows are read (`None` for datasets from before checksums were recorded).
    pub checksum: Option<Checksum>,
}

/// Checks that the network still has an interface of this side, name and size: a restore
/// queued before a task may have replaced the network the task was checked against.
pub fn check_interface(
    interfaces: &Interfaces,
    side: Side,
    name: &str,
    size: u64,
) -> anyhow::Result<()> {
    const WHY: &str = "a checkpoint restored after the task was queued replaced the network";
    let found = match side {
        Side::Input => interfaces.input(name),
        Side::Output => interfaces.output(name),
    };
    match found {
        None => anyhow::bail!(
            "the cluster's network has no {} named '{name}' any more ({WHY})",
            side.word()
        ),
        Some(interface) if interface.size as u64 != size => anyhow::bail!(
            "{} '{name}' of the cluster's network has {} neurons now, but the task was queued \
             for {size} ({WHY})",
            side.word(),
            interface.size
        ),
        Some(_) => Ok(()),
    }
}

/// The rows of a task: a range of rows of every binding, read in order (the engine counts
/// them from 0, whatever row the range starts at). Each dataset is read
/// once per row, through one cursor over the columns of all its bindings (from the first to
/// the last), however many interfaces it feeds: a CSV dataset bound column by column to a
/// thousand interfaces is read as one, not a thousand times.
pub struct DatasetRows {
    /// The first row of the datasets that is read (as the engine's row 0).
    first: u64,
    total: usize,
    /// One cursor per dataset.
    cursors: Vec<DatasetCursor>,
    /// Per bound interface: its dataset's index in `cursors` and where its values lie in the
    /// rows that dataset's cursor returns.
    bindings: HashMap<String, (usize, Range<usize>)>,
}

/// The cursor over the rows of one dataset of a task, with what its messages name.
struct DatasetCursor {
    /// The rows.
    rows: RowCursor,
    /// The dataset's uuid.
    uuid: String,
    /// Its file.
    path: PathBuf,
}

impl DatasetRows {
    /// Checks every binding against the network's `interfaces` (see [`check_interface`]),
    /// then opens each dataset once, compares it with its checksum (unless `verified` holds
    /// that it matched, unchanged since) and opens a cursor over its `rows`.
    pub fn open(
        interfaces: &Interfaces,
        bindings: &[Binding],
        rows: Range<u64>,
        verified: &VerifiedFiles,
    ) -> anyhow::Result<Self> {
        for binding in bindings {
            check_interface(
                interfaces,
                binding.side,
                &binding.name,
                binding.columns.width(),
            )?;
        }
        // The bindings of each dataset (none empty), in the order of first appearance.
        let mut datasets: Vec<Vec<&Binding>> = Vec::new();
        for binding in bindings {
            match datasets
                .iter_mut()
                .find(|same| same[0].path == binding.path)
            {
                Some(same) => same.push(binding),
                None => datasets.push(vec![binding]),
            }
        }
        let mut cursors = Vec::with_capacity(datasets.len());
        let mut by_name = HashMap::with_capacity(bindings.len());
        for (index, same) in datasets.iter().enumerate() {
            let first = same[0];
            let start = same.iter().map(|b| b.columns.start_column).min();
            let end = same.iter().map(|b| b.columns.end_column).max();
            let union = ColumnRange::new(start.unwrap_or(0), end.unwrap_or(0));
            let opened = if crate::crash_point::fails_first(super::DESCRIPTORS_POINT, 2)
                || crate::crash_point::fails(DESCRIPTORS_LASTING_POINT)
            {
                Err(DatasetFileError::Io {
                    action: "open",
                    path: first.path.clone(),
                    source: std::io::Error::from_raw_os_error(libc::EMFILE),
                })
            } else {
                DatasetReader::open(&first.path)
            };
            let reader = opened.and_then(|reader| {
                if let Some(recorded) = first.checksum {
                    reader.verify(recorded, verified)?;
                }
                Ok(reader)
            });
            let reader = reader.map_err(|e| match e {
                DatasetFileError::Io { ref source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    anyhow::anyhow!(
                        "dataset '{}' was deleted after the task was queued",
                        first.dataset_uuid
                    )
                }
                e if let Some(unusable) =
                    dataset_unusable(&first.dataset_uuid, &first.path, &e) =>
                {
                    anyhow::anyhow!(unusable)
                }
                other => anyhow::Error::new(other)
                    .context(format!("cannot open dataset '{}'", first.dataset_uuid)),
            })?;
            let cursor = reader
                .rows(union, rows.clone())
                .with_context(|| format!("cannot read dataset '{}'", first.dataset_uuid))?;
            cursors.push(DatasetCursor {
                rows: cursor,
                uuid: first.dataset_uuid.clone(),
                path: first.path.clone(),
            });
            for binding in same {
                let from = usize::try_from(binding.columns.start_column - union.start_column)?;
                let width = usize::try_from(binding.columns.width())?;
                by_name.insert(binding.name.clone(), (index, from..from + width));
            }
        }
        Ok(Self {
            first: rows.start,
            total: usize::try_from(rows.end.saturating_sub(rows.start))?,
            cursors,
            bindings: by_name,
        })
    }
}

impl Rows for DatasetRows {
    fn row_count(&self) -> usize {
        self.total
    }

    /// Rows are read in order; an interface without a binding keeps its values.
    fn read(&mut self, row: usize, name: &str, values: &mut [f32]) -> Result<(), RowError> {
        let Some((index, columns)) = self.bindings.get(name) else {
            return Ok(());
        };
        let DatasetCursor {
            rows: cursor,
            uuid,
            path,
        } = &mut self.cursors[*index];
        let row = self.first + row as u64;
        // Unless another interface of the dataset read this row already.
        if cursor.position() != row + 1 || cursor.current_row().is_none() {
            if cursor.position() != row {
                return Err(format!(
                    "rows must be read in order: expected row {}, asked for {row}",
                    cursor.position()
                )
                .into());
            }
            cursor
                .next_row()
                .map_err(|e| -> RowError {
                    match dataset_unusable(uuid, path, &e) {
                        Some(unusable) => unusable.into(),
                        None => e.into(),
                    }
                })?
                .ok_or_else(|| format!("the dataset has no row {row}"))?;
        }
        let data = &cursor.current_row().expect("a row was read")[columns.clone()];
        let n = data.len().min(values.len());
        values[..n].copy_from_slice(&data[..n]);
        Ok(())
    }

    fn provides(&self, name: &str) -> bool {
        self.bindings.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use hanami_store::dataset::{DataType, DatasetWriter, Description};

    use super::*;
    use crate::clusters::Interface;
    use crate::file_faults::REMAKE_DATASET;

    /// A dataset of `rows` rows whose value at row `r`, column `c` is `r · 100 + c` (for
    /// `u8`: modulo 256).
    fn dataset(path: &std::path::Path, data_type: DataType, columns: u64, rows: u64) {
        let description = Description::from([("all".to_owned(), ColumnRange::new(0, columns))]);
        let mut writer =
            DatasetWriter::create(path, "test", data_type, columns, description).unwrap();
        for r in 0..rows {
            match data_type {
                DataType::F32 => {
                    let row: Vec<f32> = (0..columns).map(|c| (r * 100 + c) as f32).collect();
                    writer.append_row_f32(&row).unwrap();
                }
                DataType::U8 => {
                    let row: Vec<u8> = (0..columns).map(|c| (r * 100 + c) as u8).collect();
                    writer.append_row_u8(&row).unwrap();
                }
            }
        }
        writer.finish().unwrap();
    }

    fn binding(name: &str, side: Side, path: &std::path::Path, columns: (u64, u64)) -> Binding {
        Binding {
            name: name.to_owned(),
            side,
            dataset_uuid: path.display().to_string(),
            path: path.to_owned(),
            columns: ColumnRange::new(columns.0, columns.1),
            checksum: None,
        }
    }

    #[test]
    fn interfaces_of_one_dataset_share_its_rows_and_get_their_own_columns() {
        let dir = tempfile::tempdir().unwrap();
        let (wide, small) = (dir.path().join("wide"), dir.path().join("small"));
        dataset(&wide, DataType::F32, 6, 40);
        dataset(&small, DataType::U8, 2, 40);
        let bindings = [
            binding("p", Side::Input, &wide, (1, 3)),
            binding("q", Side::Input, &wide, (4, 5)),
            binding("r", Side::Input, &small, (0, 2)),
            binding("e", Side::Output, &wide, (1, 2)),
        ];
        let interface = |name: &str, size| Interface {
            name: name.to_owned(),
            size,
        };
        let interfaces = Interfaces {
            inputs: vec![interface("p", 2), interface("q", 1), interface("r", 2)],
            outputs: vec![interface("e", 1)],
        };
        let mut rows =
            DatasetRows::open(&interfaces, &bindings, 0..30, &VerifiedFiles::default()).unwrap();
        assert_eq!(rows.row_count(), 30);
        assert_eq!(rows.cursors.len(), 2, "one cursor per dataset");
        assert!(rows.provides("e") && !rows.provides("x"));
        for row in 0..30u64 {
            let base = (row * 100) as f32;
            let mut p = [0.0; 2];
            let mut q = [0.0; 1];
            let mut r = [0.0; 2];
            let mut e = [0.0; 1];
            // The expected values first in odd rows: the order of the reads does not matter.
            if row % 2 == 1 {
                rows.read(row as usize, "e", &mut e).unwrap();
            }
            rows.read(row as usize, "p", &mut p).unwrap();
            rows.read(row as usize, "q", &mut q).unwrap();
            rows.read(row as usize, "r", &mut r).unwrap();
            rows.read(row as usize, "e", &mut e).unwrap();
            assert_eq!(p, [base + 1.0, base + 2.0], "row {row}");
            assert_eq!(q, [base + 4.0], "row {row}");
            let small_base = f32::from((row * 100) as u8);
            assert_eq!(
                r,
                [small_base, f32::from((row * 100 + 1) as u8)],
                "row {row}"
            );
            assert_eq!(e, [base + 1.0], "row {row}");
            // An unbound interface keeps its values.
            let mut unbound = [7.0];
            rows.read(row as usize, "x", &mut unbound).unwrap();
            assert_eq!(unbound, [7.0]);
        }
        let mut p = [0.0; 2];
        let err = rows.read(3, "p", &mut p).unwrap_err();
        assert!(err.to_string().contains("in order"), "{err}");
        // A range that starts further on (a task that goes on where it stopped) is counted
        // from 0 by the engine.
        let mut rest =
            DatasetRows::open(&interfaces, &bindings, 25..30, &VerifiedFiles::default()).unwrap();
        assert_eq!(rest.row_count(), 5);
        for row in 0..5 {
            let (mut p, mut r) = ([0.0; 2], [0.0; 2]);
            rest.read(row, "p", &mut p).unwrap();
            rest.read(row, "r", &mut r).unwrap();
            let base = ((25 + row) * 100) as f32;
            assert_eq!(p, [base + 1.0, base + 2.0], "row {row}");
            assert_eq!(r[0], f32::from(((25 + row) * 100) as u8), "row {row}");
        }
    }

    /// A file cut short while a task reads it fails the task with what the start of a task
    /// says of a damaged dataset: which one, what is wrong and what to do, without the
    /// server's path (it named the path and said "failed to fill whole buffer").
    #[test]
    fn a_file_cut_short_while_a_task_reads_it_names_the_damaged_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut");
        // 3,000 rows of 400 bytes: more than one read block of the cursor.
        dataset(&path, DataType::F32, 100, 3000);
        let mut bound = binding("p", Side::Input, &path, (0, 100));
        bound.dataset_uuid = "d1".to_owned();
        let interfaces = Interfaces {
            inputs: vec![Interface {
                name: "p".to_owned(),
                size: 100,
            }],
            outputs: Vec::new(),
        };
        let mut rows =
            DatasetRows::open(&interfaces, &[bound], 0..3000, &VerifiedFiles::default()).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 400 * 100).unwrap();
        let mut values = [0.0; 100];
        let (failed, err) = (0..3000)
            .find_map(|row| Some((row, rows.read(row, "p", &mut values).err()?)))
            .unwrap();
        // The rows of the first block were read before the cut.
        assert!(failed > 2000 && failed <= 2900, "{failed}");
        assert_eq!(
            err.to_string(),
            format!(
                "the file of dataset 'd1' is damaged (corrupt dataset file: it has become \
                 shorter than its header records), so the dataset cannot be used; \
                 {REMAKE_DATASET}"
            )
        );
    }
}
