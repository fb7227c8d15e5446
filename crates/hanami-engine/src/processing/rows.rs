//! Request cycles for a chunk of rows at once (request batches).
//!
//! A request that does not grow the network (nearly every request to a trained network) leaves
//! only one kind of state to the next request: the hidden neurons' potential after the
//! cooldown and their refractory countdown. A hexagon's section walks for one row therefore do
//! not depend on any other row, only on the row's source potentials, and the neuron update
//! that carries the state from row to row is cheap and separate per neuron. So a chunk runs
//! hexagon by hexagon: the walks of all its rows in parallel (each thread takes whole rows,
//! with no hand-off between threads per block), then, for hidden hexagons, the neuron updates
//! of the rows in row order, the neuron blocks in parallel.
//!
//! The results are bit-identical to one request cycle after another: the walks and updates are
//! the same functions, each target still receives its terms in the same order, and the
//! random draws of the skipped cycles are made. A row whose request would change the network
//! (growth, a first-time input, a pending section request) ends the run before it; the batch
//! runs that row as an ordinary cycle and starts again after it.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::forward::{self, NeuronParams, update_neurons};
use super::output::{hexagon_potential, output_values};
use crate::cluster::{Cluster, Parallelism, Walks};
use crate::network::{InputInterface, OutputInterface};
use crate::network::{NEURONS_PER_BLOCK, Neuron, SECTIONS_PER_BLOCK};

/// Rows a chunk holds at most: enough to keep both threads busy between hand-offs, few enough
/// that the rows' states stay in the caches.
pub(crate) const CHUNK_ROWS: usize = 32;

/// The rows of one chunk of a request batch.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Rows held.
    pub(crate) rows: usize,
    /// Per input interface, its values for every row, row after row.
    inputs: Vec<Vec<f32>>,
    /// Per output interface, its values for every row, row after row.
    outputs: Vec<Vec<f32>>,
}

impl Chunk {
    /// An empty chunk for interfaces of these sizes.
    pub(crate) fn clear(&mut self, inputs: &[InputInterface], outputs: &[OutputInterface]) {
        self.rows = 0;
        self.inputs = inputs
            .iter()
            .map(|i| vec![0.0; CHUNK_ROWS * i.values.len()])
            .collect();
        self.outputs = outputs
            .iter()
            .map(|o| vec![0.0; CHUNK_ROWS * o.values.len()])
            .collect();
    }

    /// Appends the interfaces' current input values as the next row.
    pub(crate) fn push(&mut self, inputs: &[InputInterface]) {
        let row = self.rows;
        for (values, input) in self.inputs.iter_mut().zip(inputs) {
            let size = input.values.len();
            values[row * size..(row + 1) * size].copy_from_slice(&input.values);
        }
        self.rows += 1;
    }

    /// Writes row `row`'s input values into the interfaces.
    pub(crate) fn load(&self, row: usize, inputs: &mut [InputInterface]) {
        for (values, input) in self.inputs.iter().zip(inputs) {
            let size = input.values.len();
            input
                .values
                .copy_from_slice(&values[row * size..(row + 1) * size]);
        }
    }

    /// Output interface `o`'s values for row `row`, of `size` values.
    pub(crate) fn output(&self, o: usize, size: usize, row: usize) -> &[f32] {
        &self.outputs[o][row * size..(row + 1) * size]
    }
}

/// The sources' potentials as one row left them, for that row's walks.
pub(crate) struct RowSources<'a> {
    /// Per hexagon before the walked one, the potentials of every row.
    potentials: &'a [Vec<f32>],
    /// Per hexagon, its neurons.
    neurons: &'a [usize],
    row: usize,
}

impl RowSources<'_> {
    /// The potential of neuron `neuron` of hexagon `hexagon` in this row.
    #[inline]
    pub(crate) fn potential(&self, hexagon: u32, neuron: u32) -> f32 {
        let h = hexagon as usize;
        self.potentials[h][self.row * self.neurons[h] + neuron as usize]
    }
}

/// What the rows of a chunk leave in each hexagon, row after row; kept between chunks so that
/// runs do not allocate.
#[derive(Debug, Default)]
pub(crate) struct RowStates {
    /// Per hexagon, its neurons.
    neurons: Vec<usize>,
    /// Per hexagon, the potentials of every row.
    potentials: Vec<Vec<f32>>,
    /// Per hexagon, the active bits of every row (one word per neuron block).
    active: Vec<Vec<u64>>,
    /// Per hidden hexagon, the refractory countdowns of every row.
    refractory: Vec<Vec<u32>>,
    /// The summed inputs of every row for the hexagon being walked.
    sums: Vec<f32>,
    /// The live sections of every row for the hexagon being walked (one word per connection
    /// block).
    live: Vec<u64>,
    /// Per row: whether its request so far leaves the network as it is.
    frozen: Vec<bool>,
}

/// One row's part of a hexagon's walks.
struct RowWalk<'a> {
    row: usize,
    sums: &'a mut [f32],
    live: &'a mut [u64],
    frozen: &'a mut bool,
    /// For an output hexagon: the row's hexagon potentials and interface values.
    output: Option<(&'a mut [f32], &'a mut [f32])>,
}

/// Neurons per group of the parallel neuron updates.
const UPDATE_GROUP: usize = 16;

/// One group of neurons' updates over the rows of a chunk.
struct NeuronRows<'a> {
    /// The group's first neuron.
    first: usize,
    potentials: Vec<&'a mut [f32]>,
    refractory: Vec<&'a mut [u32]>,
    /// Per row, the group's active bits at their place in the block's word.
    active: Vec<u64>,
}

impl Cluster {
    /// Runs request cycles for rows `from..chunk.rows` of `chunk`, for as many rows in a row
    /// as leave the network as it is, with the results of one request cycle after another.
    /// Returns how many rows ran (0 where this cluster cannot run rows this way); the cluster
    /// is then in the state after them, and `chunk` holds their outputs.
    pub(crate) fn request_rows(&mut self, chunk: &mut Chunk, from: usize) -> usize {
        if !self.rows_possible() {
            return 0;
        }
        let rows = chunk.rows - from;
        let mut states = std::mem::take(&mut self.scratch.rows);
        states.prepare(self, rows);
        let mut limit = rows;
        for h in 0..self.hexagons.len() {
            if self.hexagons[h].is_input {
                self.inject_rows(h, chunk, from, &mut states, limit);
            } else {
                self.walk_rows(h, chunk, from, &mut states, limit);
                if !self.hexagons[h].is_output {
                    self.update_rows(h, &mut states, limit);
                }
            }
            limit = states.frozen[..limit]
                .iter()
                .position(|&frozen| !frozen)
                .unwrap_or(limit);
            if limit == 0 {
                break;
            }
        }
        if limit > 0 {
            self.settle_rows(chunk, from, &states, limit);
        }
        self.scratch.rows = states;
        limit
    }

    /// Whether the rows of a chunk can run hexagon by hexagon: the cluster has threads to
    /// run rows in parallel (on one thread the ordinary cycles are a little faster), every
    /// hexagon has neurons and is fed only by earlier hexagons, and no cycle left anything
    /// pending (inputs not yet taken in, section requests, growth in progress).
    fn rows_possible(&mut self) -> bool {
        if matches!(self.parallel, Parallelism::Sequential) || self.creation_enabled {
            return false;
        }
        self.ensure_feeds();
        let feeds = &self.scratch.feeds;
        self.hexagons.iter().enumerate().all(|(h, hexagon)| {
            !hexagon.neurons.is_empty()
                && hexagon.is_input == hexagon.input.is_some()
                && hexagon.is_output == hexagon.output.is_some()
                && (hexagon.is_input
                    || (feeds[h].iter().all(|feed| feed.source < h)
                        && hexagon.neurons.iter().all(|n| n.input.to_bits() == 0)
                        && hexagon
                            .new_mask
                            .iter()
                            .zip(&hexagon.in_use)
                            .all(|(&new, &in_use)| new & in_use == 0)))
        })
    }

    /// Input injection (`forward::inject`) for every row of input hexagon `h`. A row whose
    /// input fires a neuron for the first time, or fires one with a pending section request,
    /// would change the network.
    fn inject_rows(
        &mut self,
        h: usize,
        chunk: &Chunk,
        from: usize,
        states: &mut RowStates,
        limit: usize,
    ) {
        let hexagon = &self.hexagons[h];
        let input = hexagon.input.expect("an input hexagon has an input");
        let size = self.inputs[input].values.len();
        let values = &chunk.inputs[input];
        let growth = self.options.request_growth;
        let neurons = states.neurons[h];
        let blocks = neurons / NEURONS_PER_BLOCK;
        let mut items: Vec<_> = states.potentials[h]
            .chunks_mut(neurons)
            .zip(states.active[h].chunks_mut(blocks))
            .zip(&mut states.frozen)
            .take(limit)
            .enumerate()
            .collect();
        self.parallel
            .for_each(&mut items, &|(row, ((potentials, active), frozen))| {
                let row_values = &values[(from + *row) * size..(from + *row + 1) * size];
                // The row's values fill the first `size` neurons; the rest keep their state.
                potentials[size..].copy_from_slice(&hexagon.potentials[size..]);
                active.copy_from_slice(&hexagon.active);
                for (b, (potentials, values)) in potentials
                    .chunks_mut(NEURONS_PER_BLOCK)
                    .zip(row_values.chunks(NEURONS_PER_BLOCK))
                    .enumerate()
                {
                    let fired = forward::inject_block(potentials, &mut active[b], values);
                    let in_use = hexagon.in_use[b];
                    if growth
                        && (fired & !in_use != 0 || hexagon.new_mask[b] & in_use & active[b] != 0)
                    {
                        **frozen = false;
                    }
                }
            });
    }

    /// The section walks of hexagon `h` for every row; for an output hexagon also its
    /// potentials and the output values.
    fn walk_rows(
        &mut self,
        h: usize,
        chunk: &mut Chunk,
        from: usize,
        states: &mut RowStates,
        limit: usize,
    ) {
        self.ensure_feeds();
        let Cluster {
            hexagons,
            outputs,
            parallel,
            walks,
            options,
            scratch,
            ..
        } = self;
        let hexagon = &hexagons[h];
        let feeds = &scratch.feeds[h];
        let walks = *walks;
        let growth = options.request_growth;
        let RowStates {
            neurons,
            potentials,
            active,
            sums,
            live,
            frozen,
            ..
        } = states;
        let width = neurons[h];
        let connection_blocks = hexagon.blocks.len().max(1);
        sums.clear();
        sums.resize(limit * width, 0.0);
        live.clear();
        live.resize(limit * connection_blocks, 0);
        // Sources lie in earlier hexagons (`rows_possible`).
        let (before, rest) = potentials.split_at_mut(h);
        let mut output_rows: Vec<Option<(&mut [f32], &mut [f32])>> = match hexagon.output {
            Some(o) => {
                let size = outputs[o].values.len();
                rest[0]
                    .chunks_mut(width)
                    .zip(chunk.outputs[o][from * size..].chunks_mut(size))
                    .take(limit)
                    .map(Some)
                    .collect()
            }
            None => (0..limit).map(|_| None).collect(),
        };
        let mut items: Vec<RowWalk<'_>> = sums
            .chunks_mut(width)
            .zip(live.chunks_mut(connection_blocks))
            .zip(frozen.iter_mut())
            .zip(output_rows.iter_mut())
            .enumerate()
            .map(|(row, (((sums, live), frozen), output))| RowWalk {
                row,
                sums,
                live,
                frozen,
                output: output.take(),
            })
            .collect();
        let (neurons, active, before) = (&*neurons, &*active, &*before);
        let outputs = &*outputs;
        // Rows after one that would change the network are not run now.
        let cutoff = AtomicUsize::new(limit);
        parallel.for_each(&mut items, &|item| {
            let row = item.row;
            if row > cutoff.load(Ordering::Relaxed) {
                return;
            }
            for feed in feeds {
                let blocks = neurons[feed.source] / NEURONS_PER_BLOCK;
                let active = &active[feed.source][row * blocks..(row + 1) * blocks];
                feed.for_each_section(active, |slot| {
                    item.live[slot / SECTIONS_PER_BLOCK] |= 1 << (slot % SECTIONS_PER_BLOCK);
                });
            }
            let sources = RowSources {
                potentials: before,
                neurons,
                row,
            };
            let dim = hexagon.dim;
            for ((inputs, blocks), live) in item
                .sums
                .chunks_mut(NEURONS_PER_BLOCK)
                .zip(hexagon.blocks.chunks(dim))
                .zip(item.live.chunks(dim))
            {
                let inputs: &mut [f32; NEURONS_PER_BLOCK] =
                    inputs.try_into().expect("a neuron block has 64 neurons");
                let frozen = match walks {
                    Walks::Portable => {
                        forward::walk_block_frozen(blocks, live, &sources, growth, inputs)
                    }
                    // SAFETY: chosen only where the CPU has AVX-512 (`Walks::detect`).
                    #[cfg(target_arch = "x86_64")]
                    Walks::Avx512 => unsafe {
                        super::avx512::walk_block_frozen(blocks, live, &sources, growth, inputs)
                    },
                };
                if !frozen {
                    *item.frozen = false;
                    cutoff.fetch_min(row, Ordering::Relaxed);
                    return;
                }
            }
            if let (Some((potentials, values)), Some(o)) = (item.output.as_mut(), hexagon.output) {
                for (potential, &sum) in potentials.iter_mut().zip(item.sums.iter()) {
                    *potential = hexagon_potential(sum);
                }
                output_values(&outputs[o].targets, potentials, values);
            }
        });
    }

    /// The neuron updates of hidden hexagon `h` for every row, in row order; groups of
    /// neurons in parallel (each neuron's update depends only on its own state).
    fn update_rows(&mut self, h: usize, states: &mut RowStates, limit: usize) {
        let params = NeuronParams::of(self);
        let hexagon = &self.hexagons[h];
        let neurons = states.neurons[h];
        let blocks = neurons / NEURONS_PER_BLOCK;
        let mut items: Vec<NeuronRows<'_>> = (0..neurons / UPDATE_GROUP)
            .map(|group| NeuronRows {
                first: group * UPDATE_GROUP,
                potentials: Vec::with_capacity(limit),
                refractory: Vec::with_capacity(limit),
                active: Vec::with_capacity(limit),
            })
            .collect();
        for (potentials, refractory) in states.potentials[h]
            .chunks_mut(neurons)
            .zip(states.refractory[h].chunks_mut(neurons))
            .take(limit)
        {
            for ((item, potentials), refractory) in items
                .iter_mut()
                .zip(potentials.chunks_mut(UPDATE_GROUP))
                .zip(refractory.chunks_mut(UPDATE_GROUP))
            {
                item.potentials.push(potentials);
                item.refractory.push(refractory);
            }
        }
        let sums = &states.sums;
        self.parallel.for_each(&mut items, &|item| {
            let range = item.first..item.first + UPDATE_GROUP;
            let mut group: Vec<Neuron> = hexagon.neurons[range.clone()].to_vec();
            let mut potentials: Vec<f32> = hexagon.potentials[range.clone()].to_vec();
            let shift = item.first % NEURONS_PER_BLOCK;
            let in_use = hexagon.in_use[item.first / NEURONS_PER_BLOCK] >> shift;
            let mut new_mask = 0;
            for (row, (row_potentials, row_refractory)) in item
                .potentials
                .iter_mut()
                .zip(&mut item.refractory)
                .enumerate()
            {
                let sums = &sums[row * neurons + range.start..row * neurons + range.end];
                for (neuron, &sum) in group.iter_mut().zip(sums) {
                    neuron.input = sum;
                }
                let active =
                    update_neurons(&mut group, &mut potentials, in_use, &mut new_mask, &params);
                item.active.push(active << shift);
                row_potentials.copy_from_slice(&potentials);
                for (refractory, neuron) in row_refractory.iter_mut().zip(&group) {
                    *refractory = neuron.refractory;
                }
            }
        });
        let active = &mut states.active[h];
        active[..limit * blocks].fill(0);
        for item in &items {
            let block = item.first / NEURONS_PER_BLOCK;
            for (row, &bits) in item.active.iter().enumerate() {
                active[row * blocks + block] |= bits;
            }
        }
    }

    /// Leaves the cluster as the last of `rows` request cycles would: every hexagon's state
    /// from the last row, the outputs of the last row, and the random draws of all of them.
    fn settle_rows(&mut self, chunk: &Chunk, from: usize, states: &RowStates, rows: usize) {
        let last = rows - 1;
        let mut draws = 0;
        for (h, hexagon) in self.hexagons.iter_mut().enumerate() {
            let neurons = states.neurons[h];
            let blocks = neurons / NEURONS_PER_BLOCK;
            hexagon
                .potentials
                .copy_from_slice(&states.potentials[h][last * neurons..rows * neurons]);
            if hexagon.is_input {
                hexagon
                    .active
                    .copy_from_slice(&states.active[h][last * blocks..rows * blocks]);
                continue;
            }
            // One seed per neuron block and cycle.
            draws += hexagon.dim;
            if let Some(o) = hexagon.output {
                // One output seed per cycle (unused in requests).
                draws += 1;
                let size = self.outputs[o].values.len();
                self.outputs[o]
                    .values
                    .copy_from_slice(chunk.output(o, size, from + last));
                continue;
            }
            hexagon
                .active
                .copy_from_slice(&states.active[h][last * blocks..rows * blocks]);
            for ((new, &active), &in_use) in hexagon
                .new_mask
                .iter_mut()
                .zip(&hexagon.active)
                .zip(&hexagon.in_use)
            {
                *new = active & !in_use;
            }
            let refractory = &states.refractory[h][last * neurons..rows * neurons];
            for (neuron, &refractory) in hexagon.neurons.iter_mut().zip(refractory) {
                *neuron = Neuron {
                    input: 0.0,
                    delta: 0.0,
                    new_lower_bound: 0.0,
                    potential_range: f32::MAX,
                    refractory,
                };
            }
        }
        for _ in 0..rows * draws {
            self.rng.rand();
        }
    }
}

impl RowStates {
    /// Sizes the buffers for `rows` rows of `cluster`'s hexagons, every row frozen so far.
    fn prepare(&mut self, cluster: &Cluster, rows: usize) {
        let count = cluster.hexagons.len();
        self.neurons.clear();
        self.neurons
            .extend(cluster.hexagons.iter().map(|h| h.neurons.len()));
        self.potentials.resize_with(count, Vec::new);
        self.active.resize_with(count, Vec::new);
        self.refractory.resize_with(count, Vec::new);
        for (h, hexagon) in cluster.hexagons.iter().enumerate() {
            let neurons = self.neurons[h];
            self.potentials[h].resize(rows * neurons, 0.0);
            self.active[h].resize(rows * hexagon.active.len(), 0);
            let hidden = !hexagon.is_input && !hexagon.is_output;
            self.refractory[h].resize(if hidden { rows * neurons } else { 0 }, 0);
        }
        self.frozen.clear();
        self.frozen.resize(rows, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterOptions, Template};

    /// Two classes of eight inputs: class `i % 2` lights its four inputs with 100–149.
    fn row(i: usize) -> Vec<f32> {
        (0..8)
            .map(|j| {
                if j / 4 == i % 2 {
                    (100 + (i * 7 + j) % 50) as f32
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn trained_networks_run_whole_chunks_in_parallel() {
        let template = Template::parse(
            "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\nhexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n\
             inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 8\n\
             outputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: 2\n",
        )
        .unwrap();
        let options = ClusterOptions {
            seed: 3,
            threads: 2,
            ..ClusterOptions::default()
        };
        let mut cluster = Cluster::new(&template, options).unwrap();
        for i in 0..3000 {
            let expected = [(i % 2 == 0) as u8 as f32, (i % 2 == 1) as u8 as f32];
            cluster
                .train_step(&[("x", &row(i))], &[("y", &expected)])
                .unwrap();
        }
        let mut twin = Cluster::restore(&cluster.save()).unwrap();
        let mut chunk = Chunk::default();
        chunk.clear(&cluster.inputs, &cluster.outputs);
        for i in 0..CHUNK_ROWS {
            cluster.inputs[0].values.copy_from_slice(&row(i));
            chunk.push(&cluster.inputs);
        }
        assert!(cluster.rows_possible());
        let ran = cluster.request_rows(&mut chunk, 0);
        assert_eq!(
            ran, CHUNK_ROWS,
            "every row of a trained network ran in the chunk"
        );
        for i in 0..ran {
            twin.request_step(&[("x", &row(i))]).unwrap();
            assert_eq!(chunk.output(0, 2, i), twin.output("y").unwrap(), "row {i}");
        }
        cluster.inputs[0].values.copy_from_slice(&row(ran - 1));
        assert!(cluster.save() == twin.save());
    }
}
