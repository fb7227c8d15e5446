//! Feeding dataset rows into the engine: each bound interface reads its column range of one
//! dataset, row by row, through a read-only cursor.

use hanami_engine::{RowError, Rows};
use hanami_store::dataset::{ColumnRange, DatasetReader, RowCursor};

/// One interface bound to the columns of a dataset.
pub struct Binding {
    /// Interface name (input, or output for expected values).
    pub name: String,
    /// The dataset.
    pub reader: DatasetReader,
    /// Its columns for this interface.
    pub columns: ColumnRange,
}

/// The rows of a task: `total` rows of every binding, read in order.
pub struct DatasetRows {
    total: usize,
    cursors: Vec<(String, RowCursor)>,
}

impl DatasetRows {
    /// Opens a cursor over the first `total` rows of every binding.
    pub fn open(bindings: &[Binding], total: u64) -> Result<Self, RowError> {
        let cursors = bindings
            .iter()
            .map(|b| Ok((b.name.clone(), b.reader.rows(b.columns, 0..total)?)))
            .collect::<Result<Vec<_>, RowError>>()?;
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
}
