//! Batch processing over the rows of a dataset. The engine does no I/O: rows come from a
//! [`Rows`] source, and request results go to a callback.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::cluster::Cluster;
use crate::error::{EngineError, RowError};
use crate::network::{InputInterface, OutputInterface};
use crate::processing::rows::{CHUNK_ROWS, Chunk};

/// A source of dataset rows, e.g. the server's reader of a dataset file.
pub trait Rows {
    /// Number of rows; a batch runs one cycle per row.
    fn row_count(&self) -> usize;

    /// Writes the values of row `row` for the interface `name` into `values`, which has the
    /// interface's size. Entries left unwritten keep the values of the previous row.
    fn read(&mut self, row: usize, name: &str, values: &mut [f32]) -> Result<(), RowError>;

    /// Whether the source has values for the interface `name`. A training batch trains only
    /// the outputs whose expected values the source provides. All, unless overridden.
    fn provides(&self, name: &str) -> bool {
        let _ = name;
        true
    }
}

/// [`Rows`] over a closure, for sources that are easiest written as one function.
pub struct RowsFn<F> {
    rows: usize,
    read: F,
}

impl<F> RowsFn<F>
where
    F: FnMut(usize, &str, &mut [f32]) -> Result<(), RowError>,
{
    /// `rows` rows, each interface read by `read(row, name, values)`.
    pub fn new(rows: usize, read: F) -> Self {
        RowsFn { rows, read }
    }
}

impl<F> Rows for RowsFn<F>
where
    F: FnMut(usize, &str, &mut [f32]) -> Result<(), RowError>,
{
    fn row_count(&self) -> usize {
        self.rows
    }

    fn read(&mut self, row: usize, name: &str, values: &mut [f32]) -> Result<(), RowError> {
        (self.read)(row, name, values)
    }
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows fully processed.
    pub rows_done: usize,
    /// Whether the cancel flag stopped the batch before the last row.
    pub cancelled: bool,
}

/// Index of the largest value as the original's result writer picks it: the best value starts
/// at −0.1 and only a strictly larger value replaces it, so ties go to the lowest index and a
/// vector without any value above −0.1 gives 0.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = -0.1f32;
    let mut index = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > best {
            best = v;
            index = i;
        }
    }
    index
}

/// Writes the one-hot vector of [`argmax`] of `values` into `out` (same length).
pub fn one_hot(values: &[f32], out: &mut [f32]) {
    let best = argmax(values);
    for (i, o) in out.iter_mut().enumerate() {
        *o = if i == best { 1.0 } else { 0.0 };
    }
}

impl Cluster {
    /// Trains on every row of `rows`: for row `i`, reads every input interface and every
    /// output interface the source [provides](Rows::provides) (its expected values) by name,
    /// then runs one training cycle in which only those outputs learn. Row `i + 1` is read
    /// while row `i`'s cycle runs one of its last phases, once that cycle no longer reads the
    /// interfaces, so that the read overlaps the other thread's walks, and row `i + 1`'s
    /// forward pass may start in row `i`'s last phase.
    ///
    /// `cancel` is checked before each row is read (so a row read already, during the cycle
    /// before it, is still learned); `progress` gets the number of rows done after each row.
    /// A source that provides no output is refused before the first row. A row that cannot
    /// be read, holds a non-finite value, or an expected value outside [0, 1], stops the
    /// batch with an error; the rows before it stay learned.
    pub fn train_batch(
        &mut self,
        rows: &mut dyn Rows,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<BatchOutcome, EngineError> {
        let total = rows.row_count();
        let learns: Vec<bool> = self
            .outputs
            .iter()
            .map(|o| rows.provides(&o.name))
            .collect();
        if !learns.contains(&true) {
            return Err(EngineError::NothingToLearn);
        }
        // Each row after the first is read while the cycle of the row before it runs one of
        // its last parallel phases (no later phase reads the interfaces).
        let mut read = if total > 0 {
            read_training_row(&mut self.inputs, &mut self.outputs, rows, 0, &learns)
        } else {
            Ok(())
        };
        // Whether the row's cycle has begun already, in the cycle before it (which read it
        // after checking `cancel`): it must run now.
        let mut begun = false;
        for row in 0..total {
            if !begun && cancel.load(Ordering::Relaxed) {
                return Ok(BatchOutcome {
                    rows_done: row,
                    cancelled: true,
                });
            }
            read?;
            read = Ok(());
            let next = row + 1;
            let mut follows = false;
            self.train_cycle_learning(&learns, &mut |inputs, outputs| {
                if next < total && !cancel.load(Ordering::Relaxed) {
                    read = read_training_row(inputs, outputs, rows, next, &learns);
                    follows = read.is_ok();
                }
                follows
            });
            begun = follows;
            progress(row + 1);
        }
        Ok(BatchOutcome {
            rows_done: total,
            cancelled: false,
        })
    }

    /// Runs a request cycle for every row of `rows` (reading every input interface) and hands
    /// each output interface's raw values to `on_output(row, name, values)`; use [`one_hot`]
    /// to turn them into result rows.
    ///
    /// Rows are read ahead in chunks of up to 32 and, where the cluster has threads or
    /// AVX-512 walks, run together (rows in parallel, or several rows per vector pass) with
    /// results identical to one request after another; with two threads the next chunk's
    /// rows are read while the other thread starts on the current one. `cancel` is checked
    /// before each row is read; rows already read are finished. `progress` and `on_output`
    /// are called for every row, in row order. A row that cannot be read, or holds a
    /// non-finite value, stops the batch with an error after the rows before it.
    pub fn request_batch(
        &mut self,
        rows: &mut dyn Rows,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize),
        on_output: &mut dyn FnMut(usize, &str, &[f32]),
    ) -> Result<BatchOutcome, EngineError> {
        let mut reader = Reader {
            names: self.inputs.iter().map(|i| i.name.clone()).collect(),
            values: self.inputs.iter().map(|i| i.values.clone()).collect(),
            next: 0,
            total: rows.row_count(),
            stop: None,
        };
        let mut chunk = std::mem::take(&mut self.scratch.chunk);
        let mut ahead = std::mem::take(&mut self.scratch.ahead);
        chunk.clear(&self.inputs, &self.outputs);
        // The rows read ahead only wait for the chunk: they need no room for outputs.
        ahead.clear(&self.inputs, &[]);
        // Rows `done..` of the batch are rows `from..chunk.rows` of the chunk, then the rows
        // of `ahead`, read and not yet run.
        let mut done = 0;
        let mut from = 0;
        let outcome = loop {
            // A row that changes the network cuts a row-parallel run short; the rows after it
            // go on with more rows behind them, so that the next runs are long ones (moving
            // the rest to the front only once less than half a chunk is left).
            if chunk.rows - from < CHUNK_ROWS / 2 {
                chunk.drop_front(from);
                from = 0;
            }
            chunk.take_front(&mut ahead);
            while chunk.rows < CHUNK_ROWS && reader.read(rows, cancel) {
                chunk.push(&reader.values);
            }
            // Where another thread shares the run, the calling thread reads the next rows
            // while that one starts on the run's first group (otherwise reading ahead would
            // only copy the rows once more).
            let shared = self.parallel.overlaps_own_work();
            let mut read_ahead = || {
                while shared && ahead.rows < CHUNK_ROWS && reader.read(rows, cancel) {
                    ahead.push(&reader.values);
                }
            };
            let ran =
                self.request_chunk(&mut chunk, from, done, &mut read_ahead, progress, on_output);
            from += ran;
            done += ran;
            if from < chunk.rows || ahead.rows > 0 {
                continue;
            }
            match reader.stop.take() {
                Some(Err(error)) => break Err(error),
                Some(Ok(())) => {
                    break Ok(BatchOutcome {
                        rows_done: done,
                        cancelled: true,
                    });
                }
                None if done == reader.total => {
                    break Ok(BatchOutcome {
                        rows_done: done,
                        cancelled: false,
                    });
                }
                None => {}
            }
        };
        // The interfaces hold what the last read left in them.
        for (input, values) in self.inputs.iter_mut().zip(&reader.values) {
            input.values.copy_from_slice(values);
        }
        self.scratch.chunk = chunk;
        self.scratch.ahead = ahead;
        outcome
    }

    /// Runs the request cycles of rows `from..` of `chunk`, the first of which is row `first`
    /// of the batch, and returns how many ran: row-parallel as long as the rows leave the
    /// network as it is, then the first row that changes it as an ordinary cycle.
    /// `beside` is work for the calling thread while another thread starts on the rows.
    fn request_chunk(
        &mut self,
        chunk: &mut Chunk,
        from: usize,
        first: usize,
        beside: &mut dyn FnMut(),
        progress: &mut dyn FnMut(usize),
        on_output: &mut dyn FnMut(usize, &str, &[f32]),
    ) -> usize {
        if from == chunk.rows {
            return 0;
        }
        let ran = self.request_rows(chunk, from, beside);
        for row in 0..ran {
            for (o, output) in self.outputs.iter().enumerate() {
                on_output(
                    first + row,
                    &output.name,
                    chunk.output(o, output.values.len(), from + row),
                );
            }
            progress(first + row + 1);
        }
        if from + ran == chunk.rows {
            return ran;
        }
        // The ordinary cycle takes its row from the interfaces (which get what the last read
        // left in them at the end of the batch).
        chunk.load(from + ran, &mut self.inputs);
        self.request_cycle();
        for output in &self.outputs {
            on_output(first + ran, &output.name, &output.values);
        }
        progress(first + ran + 1);
        ran + 1
    }
}

/// The reads of a request batch's rows, in row order, into values of their own (the
/// interfaces are in use by the cycles meanwhile).
struct Reader {
    /// The input interfaces' names.
    names: Vec<String>,
    /// Per input interface, its values as the last read left them.
    values: Vec<Vec<f32>>,
    /// The next row to read.
    next: usize,
    /// Rows of the source.
    total: usize,
    /// Why no more rows are read, once so: the cancel flag (`Ok`) or a failed read.
    stop: Option<Result<(), EngineError>>,
}

impl Reader {
    /// Reads the next row into `values` and says whether it did: not after the last row,
    /// nor once the cancel flag is set (checked before each row) or a read failed.
    fn read(&mut self, rows: &mut dyn Rows, cancel: &AtomicBool) -> bool {
        if self.stop.is_some() || self.next == self.total {
            return false;
        }
        if cancel.load(Ordering::Relaxed) {
            self.stop = Some(Ok(()));
            return false;
        }
        for (name, values) in self.names.iter().zip(&mut self.values) {
            if let Err(error) = read_row(rows, self.next, name, values) {
                self.stop = Some(Err(error));
                return false;
            }
        }
        self.next += 1;
        true
    }
}

/// Reads row `row` of a training batch: every input interface, and the expected values of
/// the outputs marked in `learns`, each checked to lie in [0, 1].
fn read_training_row(
    inputs: &mut [InputInterface],
    outputs: &mut [OutputInterface],
    rows: &mut dyn Rows,
    row: usize,
    learns: &[bool],
) -> Result<(), EngineError> {
    for input in inputs {
        read_row(rows, row, &input.name, &mut input.values)?;
    }
    for (output, _) in outputs.iter_mut().zip(learns).filter(|(_, l)| **l) {
        let read = read_row(rows, row, &output.name, &mut output.expected).and_then(|()| {
            crate::cluster::check_expected_range(&output.name, &output.expected).map_err(|e| {
                EngineError::AtRow {
                    row,
                    source: Box::new(e),
                }
            })
        });
        if let Err(e) = read {
            // Leave no unreachable target behind for later cycles, also of a row that failed
            // part of the way (its values so far are in place).
            output
                .expected
                .iter_mut()
                .for_each(|v| *v = v.clamp(0.0, 1.0));
            return Err(e);
        }
    }
    Ok(())
}

/// Reads one interface of one row and checks that every value is finite.
fn read_row(
    rows: &mut dyn Rows,
    row: usize,
    name: &str,
    values: &mut [f32],
) -> Result<(), EngineError> {
    rows.read(row, name, values)
        .map_err(|source| EngineError::Row {
            row,
            name: name.to_string(),
            source,
        })?;
    match crate::cluster::first_non_finite(values) {
        Some(index) => {
            // Leave no poison behind for later cycles.
            values[index..]
                .iter_mut()
                .filter(|v| !v.is_finite())
                .for_each(|v| *v = 0.0);
            Err(EngineError::AtRow {
                row,
                source: Box::new(EngineError::NonFinite {
                    name: name.to_string(),
                    index,
                }),
            })
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_follows_the_original() {
        assert_eq!(argmax(&[0.0, 0.0, 0.0]), 0);
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
        assert_eq!(argmax(&[-0.5, -0.2]), 0);
        assert_eq!(argmax(&[-0.5, -0.05]), 1);
        assert_eq!(argmax(&[]), 0);
        let mut out = [9.0; 3];
        one_hot(&[0.2, 0.1, 0.9], &mut out);
        assert_eq!(out, [0.0, 0.0, 1.0]);
    }
}
