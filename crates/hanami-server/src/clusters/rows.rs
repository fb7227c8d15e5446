//! Feeding dataset rows into the engine: each bound interface reads its column range of one
//! dataset, row by row, through a read-only cursor. Datasets are opened when their task
//! starts, so a queued task holds no file open.

use std::path::PathBuf;

use anyhow::Context;
use hanami_engine::{RowError, Rows};
use hanami_store::dataset::{ColumnRange, DatasetFileError, DatasetReader, RowCursor};

use super::Interfaces;

/// Which side of the network an interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The rows of a task: `total` rows of every binding, read in order.
pub struct DatasetRows {
    total: usize,
    cursors: Vec<(String, RowCursor)>,
}

impl DatasetRows {
    /// Checks every binding against the network's `interfaces` (see [`check_interface`]),
    /// then opens its dataset and a cursor over its first `total` rows.
    pub fn open(interfaces: &Interfaces, bindings: &[Binding], total: u64) -> anyhow::Result<Self> {
        for binding in bindings {
            check_interface(
                interfaces,
                binding.side,
                &binding.name,
                binding.columns.width(),
            )?;
        }
        let cursors = bindings
            .iter()
            .map(|binding| {
                let reader = DatasetReader::open(&binding.path).map_err(|e| match e {
                    DatasetFileError::Io { ref source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        anyhow::anyhow!(
                            "dataset '{}' was deleted after the task was queued",
                            binding.dataset_uuid
                        )
                    }
                    other => anyhow::Error::new(other)
                        .context(format!("cannot open dataset '{}'", binding.dataset_uuid)),
                })?;
                let cursor = reader
                    .rows(binding.columns, 0..total)
                    .with_context(|| format!("cannot read dataset '{}'", binding.dataset_uuid))?;
                Ok((binding.name.clone(), cursor))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            total: usize::try_from(total)?,
            cursors,
        })
    }
}

impl Rows for DatasetRows {
    fn row_count(&self) -> usize {
        self.total
    }

    /// Rows are read in order; an interface without a binding keeps its values.
    fn read(&mut self, row: usize, name: &str, values: &mut [f32]) -> Result<(), RowError> {
        let Some((_, cursor)) = self.cursors.iter_mut().find(|(n, _)| n == name) else {
            return Ok(());
        };
        if cursor.position() != row as u64 {
            return Err(format!(
                "rows must be read in order: expected row {}, asked for {row}",
                cursor.position()
            )
            .into());
        }
        let data = cursor
            .next_row()?
            .ok_or_else(|| format!("the dataset has no row {row}"))?;
        let n = data.len().min(values.len());
        values[..n].copy_from_slice(&data[..n]);
        Ok(())
    }

    fn provides(&self, name: &str) -> bool {
        self.cursors.iter().any(|(n, _)| n == name)
    }
}
