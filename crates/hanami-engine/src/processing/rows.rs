//! Request cycles for a chunk of rows at once (request batches).
//!
//! A request that does not grow the network (nearly every request to a trained network) leaves
//! only one kind of state to the next request: the hidden neurons' potential after the
//! cooldown and their refractory countdown. A hexagon's section walks for one row therefore do
//! not depend on any other row, only on the row's source potentials, and the neuron update
//! that carries the state from row to row is cheap and separate per neuron. So a chunk runs
//! hexagon by hexagon: the walks of all its rows and, for hidden hexagons, the neuron updates
//! of the rows in row order. A group of rows (below) updates its rows on the thread that
//! walked them, as soon as the group before it hands over the state its last row left, so
//! that the updates fill the time one thread would otherwise wait for the other's walks.
//!
//! The walks take the rows in groups of up to 16, one group per thread at a time. With
//! AVX-512 one pass over a section walks it for every row of the group, one row per vector
//! lane (`avx512::walk_group`): the summed inputs are laid out target by target with a lane
//! per row, so each lane still receives its terms in processing order, and where each row's
//! signal ends is a lane mask instead of a branch. Without AVX-512 the group's rows are walked
//! one after another.
//!
//! The results are bit-identical to one request cycle after another: the walks and updates
//! compute the same values, each target still receives its terms in the same order, and the
//! random draws of the skipped cycles are made. A row whose request would change the network
//! (growth, a first-time input, a pending section request) ends the run before it; the batch
//! runs that row as an ordinary cycle and starts again after it. Output-hexagon potentials
//! are computed only where the output values read them, and all of them for the last row,
//! whose state the cluster keeps.
//!
//! A run cut short by a row that grows a hidden hexagon has walked that hexagon for rows after
//! the growing one too. Those walks are kept ([`Carry`]): the next run, right after the
//! ordinary cycle of the growing row, takes them for every row that walks none of the
//! sections that cycle changed as far as it changed them (`forward::walk_reaches`), and so
//! walks only the later hexagons for those rows. A walk reads its section only up to where it
//! ends, so such a row's walks are the same before and after the change.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use super::Feed;
use super::forward::{self, NeuronParams, update_neurons};
use super::output::{output_values, sigmoid, sigmoid_lanes};
use crate::cluster::{Cluster, Parallelism, Walks};
use crate::network::{Hexagon, InputInterface, NO_NEURON, OutputInterface};
use crate::network::{NEURONS_PER_BLOCK, Neuron, SECTIONS_PER_BLOCK, low_bits};
use crate::pace::Work;

/// Rows a chunk holds at most: enough to keep both threads busy between hand-offs, few enough
/// that the rows' states stay in the caches.
pub(crate) const CHUNK_ROWS: usize = 32;

/// Rows walked together at most: one per lane of a 512-bit register of `f32`. The rows of a
/// run form groups of equal size (at least one per thread), and the threads take whole
/// groups.
pub(crate) const LANES: usize = 16;

// Which rows of a chunk fired a neuron is a `u32` bit set.
const _: () = assert!(CHUNK_ROWS <= 32);

/// The rows of one chunk of a request batch.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Rows held.
    pub(crate) rows: usize,
    /// Rows dropped from the front since the chunk was cleared: row `r` is the chunk's
    /// `dropped + r`-th row.
    dropped: usize,
    /// Per input interface, its values for every row, row after row.
    inputs: Vec<Vec<f32>>,
    /// Per output interface, its values for every row, row after row.
    outputs: Vec<Vec<f32>>,
    /// The input values a failed read left behind it (the interfaces hold them after the
    /// batch, as far as they were read), if one did.
    failed_row: Option<Vec<Vec<f32>>>,
}

impl Chunk {
    /// An empty chunk for interfaces of these sizes.
    pub(crate) fn clear(&mut self, inputs: &[InputInterface], outputs: &[OutputInterface]) {
        self.rows = 0;
        self.dropped = 0;
        self.failed_row = None;
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

    /// Keeps what the interfaces hold after a failed read.
    pub(crate) fn keep_failed_read(&mut self, inputs: &[InputInterface]) {
        self.failed_row = Some(inputs.iter().map(|i| i.values.clone()).collect());
    }

    /// Writes the values of the last row read into the interfaces: those of a failed read if
    /// there was one, else those of the last row held.
    pub(crate) fn load_last(&self, inputs: &mut [InputInterface]) {
        match &self.failed_row {
            Some(failed) => {
                for (values, input) in failed.iter().zip(inputs) {
                    input.values.copy_from_slice(values);
                }
            }
            None => self.load(self.rows - 1, inputs),
        }
    }

    /// Forgets the first `count` rows; the others move to the front.
    pub(crate) fn drop_front(&mut self, count: usize) {
        for values in &mut self.inputs {
            let size = values.len() / CHUNK_ROWS;
            values.copy_within(count * size..self.rows * size, 0);
        }
        self.rows -= count;
        self.dropped += count;
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

/// The sources' potentials for the walks of one group of rows.
pub(crate) struct GroupSources<'a> {
    /// Per hexagon before the walked one, the potentials of every row, row after row.
    potentials: &'a [Vec<f32>],
    /// Per hexagon, its neurons.
    neurons: &'a [usize],
    /// Per hexagon before the walked one, per neuron, the rows in which it fired (bit `r`:
    /// row `r` of the chunk's run).
    fired: &'a [Vec<u32>],
    /// The group's first row.
    first: usize,
    /// The group's lanes.
    lanes: u16,
}

impl GroupSources<'_> {
    /// The group's first row; lane `l` is row `first_row() + l`.
    #[inline]
    pub(crate) fn first_row(&self) -> usize {
        self.first
    }

    /// The lanes whose row fired neuron `neuron` of hexagon `hexagon`.
    #[inline]
    pub(crate) fn lanes(&self, hexagon: u32, neuron: u32) -> u16 {
        (self.fired[hexagon as usize][neuron as usize] >> self.first) as u16 & self.lanes
    }

    /// The potentials of hexagon `hexagon` for the rows that fired any of its neurons (row
    /// `r`'s neuron `n` at `r · neurons + n`) and its number of neurons.
    #[inline]
    pub(crate) fn potentials(&self, hexagon: u32) -> (&[f32], usize) {
        let h = hexagon as usize;
        (&self.potentials[h], self.neurons[h])
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
    /// Per hexagon that feeds others, per neuron, the rows in which it fired (bit `r`: row
    /// `r`).
    fired: Vec<Vec<u32>>,
    /// Per hidden hexagon, the refractory countdowns of every row.
    refractory: Vec<Vec<u32>>,
    /// Rows per group in the current run.
    group_rows: usize,
    /// The summed inputs of every row for the hexagon being walked, group after group;
    /// inside a group neuron after neuron, with one lane per row (see [`sum_base`]).
    sums: Vec<f32>,
    /// The live sections of every row for the hexagon being walked (one word per connection
    /// block); used by the one-row walks.
    live: Vec<u64>,
    /// Per row: whether its request so far leaves the network as it is.
    frozen: Vec<bool>,
    /// The walks a run cut short left for the next run.
    carry: Option<Carry>,
    /// Rows that took carried walks, for the tests.
    #[cfg(test)]
    carried_rows: usize,
}

/// One hidden hexagon's summed inputs for rows after the one that cut a run short, walked
/// before that row's cycle changed the network.
#[derive(Debug)]
struct Carry {
    /// The chunk row (counting rows dropped since the chunk was cleared) of the first row.
    row: usize,
    /// The cluster's forward passes when the rows were walked: the next run may take them
    /// only after exactly one more, the cycle of the row that cut the run short.
    passes: u64,
    /// The walked hexagon.
    hexagon: usize,
    /// The summed inputs, row after row (neuron `n` of row `r` at `r · neurons + n`).
    sums: Vec<f32>,
}

/// Where row `row`'s summed input of neuron 0 lies in [`RowStates::sums`] for a hexagon of
/// `neurons` neurons and groups of `group_rows` rows; neuron `n`'s is `LANES · n` further.
#[inline]
fn sum_base(group_rows: usize, neurons: usize, row: usize) -> usize {
    row / group_rows * neurons * LANES + row % group_rows
}

/// One group's part of a hexagon's walks.
struct GroupWalk<'a> {
    /// The group's first row.
    first: usize,
    /// The group's rows (at most `LANES`).
    rows: usize,
    /// The group's first rows whose sums were carried over, not walked.
    skip: usize,
    /// The group's first rows whose walks ran (complete, or found to grow) or were carried.
    done: usize,
    /// The group's sums: neuron after neuron, one lane per row.
    sums: &'a mut [f32],
    /// The group's live-section words, for the one-row walks.
    live: &'a mut [u64],
    frozen: &'a mut [bool],
    /// For an output hexagon: the rows' hexagon potentials and interface values.
    output: Option<(&'a mut [f32], &'a mut [f32])>,
    /// For a hidden hexagon: where the rows' neuron updates go.
    update: Option<GroupUpdate<'a>>,
}

/// Where a group's neuron updates go: per row, every neuron's potential and refractory
/// countdown and each neuron block's active bits.
struct GroupUpdate<'a> {
    potentials: &'a mut [f32],
    refractory: &'a mut [u32],
    active: &'a mut [u64],
}

/// The neuron state the last row of a group leaves: every neuron's potential and refractory
/// countdown.
struct RowState {
    potentials: Vec<f32>,
    refractory: Vec<u32>,
}

/// A group's [`RowState`] for the next group, once the group's updates are done.
#[derive(Default)]
struct Handoff {
    /// `PENDING`, `READY` (the state is in `state`) or `NONE` (the group did not run all
    /// its rows, or failed).
    stage: AtomicU8,
    state: Mutex<Option<RowState>>,
}

/// [`Handoff::stage`] while the group is not done.
const PENDING: u8 = 0;
/// [`Handoff::stage`] once the group's state is handed over.
const READY: u8 = 1;
/// [`Handoff::stage`] once the group is done without a state to hand over.
const NONE: u8 = 2;

impl Handoff {
    /// Waits until the group is done; its last row's state if it ran all its rows.
    fn wait(&self) -> Option<RowState> {
        let mut spins = 0u32;
        loop {
            match self.stage.load(Ordering::Acquire) {
                PENDING if spins < 1 << 14 => {
                    spins += 1;
                    std::hint::spin_loop();
                }
                // The other thread may have been descheduled: let it run.
                PENDING => std::thread::yield_now(),
                READY => {
                    return self
                        .state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take();
                }
                _ => return None,
            }
        }
    }
}

/// Publishes a group's [`Handoff`] when dropped: `state` if set, else that none follows.
struct Publish<'a> {
    handoff: &'a Handoff,
    state: Option<RowState>,
}

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        let stage = match self.state.take() {
            Some(state) => {
                *self
                    .handoff
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(state);
                READY
            }
            None => NONE,
        };
        self.handoff.stage.store(stage, Ordering::Release);
    }
}

/// The neuron updates of a hidden hexagon's first `ran` rows of one group, in row order, from
/// `start` (the previous row's state; the hexagon's own for the run's first row), with the
/// group's summed inputs `sums`. Returns the state after the last of them.
fn update_group(
    hexagon: &Hexagon,
    params: &NeuronParams,
    walks: Walks,
    sums: &[f32],
    update: &mut GroupUpdate<'_>,
    start: Option<&RowState>,
    ran: usize,
) -> RowState {
    let width = hexagon.neurons.len();
    let blocks = width / NEURONS_PER_BLOCK;
    let mut state = RowState {
        potentials: Vec::with_capacity(width),
        refractory: Vec::with_capacity(width),
    };
    for b in 0..blocks {
        let range = b * NEURONS_PER_BLOCK..(b + 1) * NEURONS_PER_BLOCK;
        let mut group: [Neuron; NEURONS_PER_BLOCK] = hexagon.neurons[range.clone()]
            .try_into()
            .expect("a neuron block");
        let mut potentials: [f32; NEURONS_PER_BLOCK] = match start {
            None => hexagon.potentials[range.clone()].try_into(),
            Some(start) => start.potentials[range.clone()].try_into(),
        }
        .expect("a neuron block's potentials");
        if let Some(start) = start {
            for (neuron, &refractory) in group.iter_mut().zip(&start.refractory[range.clone()]) {
                neuron.refractory = refractory;
            }
        }
        let mut new_mask = 0;
        for row in 0..ran {
            for (n, neuron) in range.clone().zip(group.iter_mut()) {
                neuron.input = sums[n * LANES + row];
            }
            update.active[row * blocks + b] = update_neurons(
                walks,
                &mut group,
                &mut potentials,
                hexagon.in_use[b],
                &mut new_mask,
                params,
            );
            update.potentials[row * width..][range.clone()].copy_from_slice(&potentials);
            for (refractory, neuron) in update.refractory[row * width..][range.clone()]
                .iter_mut()
                .zip(&group)
            {
                *refractory = neuron.refractory;
            }
        }
        state.potentials.extend_from_slice(&potentials);
        state
            .refractory
            .extend(group.iter().map(|neuron| neuron.refractory));
    }
    state
}

impl Cluster {
    /// Runs request cycles for rows `from..chunk.rows` of `chunk`, for as many rows in a row
    /// as leave the network as it is, with the results of one request cycle after another.
    /// Returns how many rows ran (0 where this cluster cannot run rows this way); the cluster
    /// is then in the state after them, and `chunk` holds their outputs.
    pub(crate) fn request_rows(&mut self, chunk: &mut Chunk, from: usize) -> usize {
        let mut states = std::mem::take(&mut self.scratch.rows);
        // Walks carried over hold only right after the cycle of the row that cut their run
        // short.
        let carry = states.carry.take().filter(|carry| {
            carry.row == chunk.dropped + from && carry.passes + 1 == self.scratch.forward_passes
        });
        if !self.rows_possible() {
            self.scratch.rows = states;
            return 0;
        }
        let timing = self.parallel.start(Work::Rows);
        let rows = chunk.rows - from;
        states.prepare(self, rows);
        let mut limit = rows;
        // Only the lane walks (AVX-512) read which rows fired a source.
        #[cfg(target_arch = "x86_64")]
        let lane_walks = !matches!(self.walks, Walks::Portable);
        for h in 0..self.hexagons.len() {
            let hexagon = &self.hexagons[h];
            let (feeds_others, hidden) =
                (!hexagon.is_output, !hexagon.is_output && !hexagon.is_input);
            if hexagon.is_input {
                self.inject_rows(h, chunk, from, &mut states, limit);
            } else {
                let carried = carry
                    .as_ref()
                    .filter(|carry| carry.hexagon == h)
                    .map(|carry| {
                        let rows = self.rows_before_changes(
                            h,
                            &states,
                            limit.min(carry.sums.len() / states.neurons[h]),
                        );
                        #[cfg(test)]
                        {
                            states.carried_rows += rows;
                        }
                        (carry, rows)
                    });
                let walked = self.walk_rows(h, chunk, from, &mut states, limit, carried);
                if hidden {
                    states.carry_walks(
                        h,
                        chunk.dropped + from,
                        walked,
                        self.scratch.forward_passes,
                    );
                }
            }
            limit = states.frozen[..limit]
                .iter()
                .position(|&frozen| !frozen)
                .unwrap_or(limit);
            if limit == 0 {
                break;
            }
            #[cfg(target_arch = "x86_64")]
            if lane_walks && feeds_others {
                states.note_fired(h, limit);
            }
        }
        if limit > 0 {
            self.settle_rows(chunk, from, &states, limit);
        }
        self.scratch.rows = states;
        self.parallel.finish(timing, limit);
        limit
    }

    /// How many of the first `limit` rows walk none of the sections of hexagon `h` that the
    /// latest cycle changed as far as it changed them; their walks from before that cycle
    /// still hold.
    fn rows_before_changes(&self, h: usize, states: &RowStates, limit: usize) -> usize {
        let hexagon = &self.hexagons[h];
        let mut rows = limit;
        for (_, change) in self.scratch.changes.iter().filter(|(of, _)| *of == h) {
            let block = &hexagon.blocks[change.block as usize];
            let Some(sections) = block.sections.as_deref() else {
                return 0;
            };
            let connection = &block.connections[change.slot as usize];
            let section = &sections[change.slot as usize];
            let (source, neuron) = (
                connection.source_hexagon as usize,
                connection.source_neuron as usize,
            );
            let neurons = states.neurons[source];
            let blocks = neurons / NEURONS_PER_BLOCK;
            let word = neuron / NEURONS_PER_BLOCK;
            rows = (0..rows)
                .find(|&row| {
                    let fired = states.active[source][row * blocks + word]
                        >> (neuron % NEURONS_PER_BLOCK)
                        & 1
                        != 0;
                    fired
                        && forward::walk_reaches(
                            section,
                            connection,
                            states.potentials[source][row * neurons + neuron],
                            change.from as usize,
                        )
                })
                .unwrap_or(rows);
        }
        rows
    }

    /// Whether the rows of a chunk can run hexagon by hexagon: the cluster walks several
    /// rows per pass (AVX-512) or has threads to walk rows in parallel (one thread walking
    /// one row after another is a little slower than ordinary cycles), every
    /// hexagon has neurons and is fed only by earlier hexagons, and no cycle left anything
    /// pending (inputs not yet taken in, section requests, growth in progress).
    fn rows_possible(&mut self) -> bool {
        let lane_walks = !matches!(self.walks, Walks::Portable);
        if (matches!(self.parallel, Parallelism::Sequential) && !lane_walks)
            || self.creation_enabled
        {
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
        &self,
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
        let growth = self.settings.request_growth;
        let walks = self.walks;
        let neurons = states.neurons[h];
        let blocks = neurons / NEURONS_PER_BLOCK;
        // One row after another: a row's injection takes less than handing it to another
        // thread.
        let rows = states.potentials[h]
            .chunks_mut(neurons)
            .zip(states.active[h].chunks_mut(blocks))
            .zip(&mut states.frozen)
            .zip(values.chunks(size).skip(from))
            .take(limit);
        for (((potentials, active), frozen), row_values) in rows {
            // The row's values fill the first `size` neurons; the rest keep their state.
            potentials[size..].copy_from_slice(&hexagon.potentials[size..]);
            active.copy_from_slice(&hexagon.active);
            for (b, (potentials, values)) in potentials
                .chunks_mut(NEURONS_PER_BLOCK)
                .zip(row_values.chunks(NEURONS_PER_BLOCK))
                .enumerate()
            {
                let fired = forward::inject_block(walks, potentials, &mut active[b], values);
                let in_use = hexagon.in_use[b];
                if growth && (fired & !in_use != 0 || hexagon.new_mask[b] & in_use & active[b] != 0)
                {
                    *frozen = false;
                }
            }
        }
    }

    /// The section walks of hexagon `h` for every row; for a hidden hexagon also the neuron
    /// updates of the rows that run (those before the first that would grow), for an output
    /// hexagon the output values, from the potentials of the neurons they read (every
    /// potential for the last row, which the cluster keeps). With `carried` walks of the first rows, those rows
    /// take their sums from the carry instead. Returns how many rows from the first had their
    /// walks run (complete, or found to grow); the others were left out after a growing row.
    fn walk_rows(
        &mut self,
        h: usize,
        chunk: &mut Chunk,
        from: usize,
        states: &mut RowStates,
        limit: usize,
        carried: Option<(&Carry, usize)>,
    ) -> usize {
        self.ensure_feeds();
        let params = NeuronParams::of(self);
        let Cluster {
            hexagons,
            outputs,
            parallel,
            walks,
            settings,
            scratch,
            ..
        } = self;
        let hexagon = &hexagons[h];
        let hidden = !hexagon.is_input && !hexagon.is_output;
        let feeds = &scratch.feeds[h];
        let walks = *walks;
        let growth = settings.request_growth;
        let RowStates {
            neurons,
            potentials,
            active,
            fired,
            refractory,
            sums,
            live,
            frozen,
            ..
        } = states;
        let width = neurons[h];
        let connection_blocks = hexagon.blocks.len().max(1);
        let group_rows = states.group_rows;
        let groups = limit.div_ceil(group_rows);
        sums.clear();
        sums.resize(groups * width * LANES, 0.0);
        let skip = carried.map_or(0, |(carry, rows)| {
            for (row, carried) in carry.sums.chunks(width).take(rows).enumerate() {
                let base = sum_base(group_rows, width, row);
                for (n, &sum) in carried.iter().enumerate() {
                    sums[base + n * LANES] = sum;
                }
            }
            rows
        });
        live.clear();
        live.resize(groups * group_rows * connection_blocks, 0);
        // The potentials that the output values read; a later hexagon would read them all.
        let read: Vec<usize> = match hexagon.output {
            Some(o) if h + 1 == hexagons.len() => {
                let mut read: Vec<usize> = outputs[o]
                    .targets
                    .iter()
                    .flatten()
                    .filter(|t| t.neuron != NO_NEURON)
                    .map(|t| t.neuron as usize)
                    .collect();
                read.sort_unstable();
                read.dedup();
                read
            }
            _ => (0..width).collect(),
        };
        // Sources lie in earlier hexagons (`rows_possible`).
        let (before, rest) = potentials.split_at_mut(h);
        let (active, active_rest) = active.split_at_mut(h);
        let blocks = width / NEURONS_PER_BLOCK;
        // The walked hexagon's potentials: neuron updates write them, or output values.
        let mut own = Some(&mut rest[0][..limit * width]);
        let mut updates: Vec<Option<GroupUpdate<'_>>> = if hidden {
            let group_potentials = own
                .take()
                .expect("the hexagon's potentials")
                .chunks_mut(group_rows * width);
            let group_refractory = refractory[h][..limit * width].chunks_mut(group_rows * width);
            let group_active = active_rest[0][..limit * blocks].chunks_mut(group_rows * blocks);
            group_potentials
                .zip(group_refractory)
                .zip(group_active)
                .map(|((potentials, refractory), active)| {
                    Some(GroupUpdate {
                        potentials,
                        refractory,
                        active,
                    })
                })
                .collect()
        } else {
            (0..groups).map(|_| None).collect()
        };
        let handoffs: Vec<Handoff> = (0..groups).map(|_| Handoff::default()).collect();
        let mut output_groups: Vec<Option<(&mut [f32], &mut [f32])>> = match hexagon.output {
            Some(o) => {
                let size = outputs[o].values.len();
                own.take()
                    .expect("the hexagon's potentials")
                    .chunks_mut(group_rows * width)
                    .zip(chunk.outputs[o][from * size..].chunks_mut(group_rows * size))
                    .map(Some)
                    .collect()
            }
            None => (0..groups).map(|_| None).collect(),
        };
        let mut items: Vec<GroupWalk<'_>> = sums
            .chunks_mut(LANES * width)
            .zip(live.chunks_mut(group_rows * connection_blocks))
            .zip(frozen[..limit].chunks_mut(group_rows))
            .zip(output_groups.iter_mut())
            .zip(updates.iter_mut())
            .enumerate()
            .map(
                |(g, ((((sums, live), frozen), output), update))| GroupWalk {
                    first: g * group_rows,
                    rows: frozen.len(),
                    skip: skip.saturating_sub(g * group_rows).min(frozen.len()),
                    done: 0,
                    sums,
                    live,
                    frozen,
                    output: output.take(),
                    update: update.take(),
                },
            )
            .collect();
        let (neurons, active, fired, before) = (&*neurons, &*active, &*fired, &*before);
        let outputs = &*outputs;
        // Rows after one that would change the network are not run now.
        let cutoff = AtomicUsize::new(limit);
        // A group's walks (none where an earlier row would grow).
        let walk = |item: &mut GroupWalk<'_>| {
            if item.first > cutoff.load(Ordering::Relaxed) {
                return;
            }
            let grows = match walks {
                _ if item.skip == item.rows => {
                    item.done = item.rows;
                    0
                }
                Walks::Portable => walk_group_rows(
                    hexagon, feeds, neurons, active, before, growth, item, &cutoff,
                ),
                // SAFETY: chosen only where the CPU has AVX-512 (`Walks::detect`).
                #[cfg(target_arch = "x86_64")]
                Walks::Avx512 => {
                    let sources = GroupSources {
                        potentials: before,
                        neurons,
                        fired,
                        first: item.first,
                        lanes: (low_bits(item.rows) & !low_bits(item.skip)) as u16,
                    };
                    let grows = unsafe {
                        super::avx512::walk_group(
                            &hexagon.blocks,
                            hexagon.dim,
                            &sources,
                            growth,
                            item.sums,
                        )
                    };
                    item.done = item.rows;
                    grows
                }
            };
            let rows = match grows.trailing_zeros() as usize {
                LANES.. => item.rows,
                lane => {
                    cutoff.fetch_min(item.first + lane, Ordering::Relaxed);
                    for (lane, frozen) in item.frozen.iter_mut().enumerate() {
                        *frozen &= grows >> lane & 1 == 0;
                    }
                    lane
                }
            };
            if let (Some((potentials, values)), Some(o)) = (item.output.as_mut(), hexagon.output) {
                let size = outputs[o].values.len();
                for &n in &read {
                    let sums: &[f32; LANES] = item.sums[n * LANES..][..LANES]
                        .try_into()
                        .expect("a neuron's lanes");
                    let lanes = sigmoid_lanes(walks, sums);
                    for (lane, &potential) in lanes.iter().enumerate().take(rows) {
                        potentials[lane * width + n] = potential;
                    }
                }
                for lane in 0..rows {
                    let potentials = &potentials[lane * width..(lane + 1) * width];
                    output_values(
                        &outputs[o].targets,
                        potentials,
                        &mut values[lane * size..(lane + 1) * size],
                    );
                }
            }
        };
        parallel.for_each(&mut items, &|item| {
            let g = item.first / group_rows;
            // Tells the next group that no state follows unless the updates below hand one
            // over (also where this group is cut off, or panics).
            let mut handoff = Publish {
                handoff: &handoffs[g],
                state: None,
            };
            walk(item);
            if let Some(update) = &mut item.update {
                // The group's neuron updates, row after row from the state the previous
                // group's last row left (handed over once that group is updated): a
                // neuron's update depends only on its own state and its summed input.
                let start = match g.checked_sub(1) {
                    None => Some(None),
                    Some(previous) => handoffs[previous].wait().map(Some),
                };
                if let Some(start) = start {
                    let ran = item.frozen.iter().position(|&f| !f).unwrap_or(item.rows);
                    let state = update_group(
                        hexagon,
                        &params,
                        walks,
                        item.sums,
                        update,
                        start.as_ref(),
                        ran,
                    );
                    if ran == item.rows {
                        handoff.state = Some(state);
                    }
                }
            }
        });
        let walked = items
            .iter()
            .find(|item| item.done < item.rows)
            .map_or(limit, |item| item.first + item.done);
        // The last row that ran keeps all its potentials.
        let ran = states.frozen[..limit]
            .iter()
            .position(|&f| !f)
            .unwrap_or(limit);
        if let (Some(_), Some(last)) = (hexagon.output, ran.checked_sub(1)) {
            let base = sum_base(states.group_rows, width, last);
            let potentials = &mut states.potentials[h][last * width..ran * width];
            for (n, potential) in potentials.iter_mut().enumerate() {
                *potential = sigmoid(states.sums[base + n * LANES]);
            }
        }
        walked
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

/// The walks of one group's rows one row at a time (`forward::walk_block_frozen`), for CPUs
/// without the lane walks; stops at the first row that lies past `cutoff` (rows after one
/// that would grow are walked too, for [`Carry`]), and notes the rows walked. Returns the
/// lanes that would grow.
#[allow(clippy::too_many_arguments)]
fn walk_group_rows(
    hexagon: &Hexagon,
    feeds: &[Feed],
    neurons: &[usize],
    active: &[Vec<u64>],
    before: &[Vec<f32>],
    growth: bool,
    item: &mut GroupWalk<'_>,
    cutoff: &AtomicUsize,
) -> u16 {
    let dim = hexagon.dim;
    let connection_blocks = hexagon.blocks.len().max(1);
    let mut grows = 0;
    item.done = item.skip;
    for (lane, live) in item
        .live
        .chunks_mut(connection_blocks)
        .take(item.rows)
        .enumerate()
        .skip(item.skip)
    {
        let row = item.first + lane;
        if row > cutoff.load(Ordering::Relaxed) {
            break;
        }
        item.done = lane + 1;
        for feed in feeds {
            let blocks = neurons[feed.source] / NEURONS_PER_BLOCK;
            let active = &active[feed.source][row * blocks..(row + 1) * blocks];
            feed.for_each_section(active, |slot| {
                live[slot / SECTIONS_PER_BLOCK] |= 1 << (slot % SECTIONS_PER_BLOCK);
            });
        }
        let sources = RowSources {
            potentials: before,
            neurons,
            row,
        };
        for (b, (blocks, live)) in hexagon.blocks.chunks(dim).zip(live.chunks(dim)).enumerate() {
            let mut inputs = [0.0f32; NEURONS_PER_BLOCK];
            if !forward::walk_block_frozen(blocks, live, &sources, growth, &mut inputs) {
                grows |= 1 << lane;
                break;
            }
            for (j, &input) in inputs.iter().enumerate() {
                item.sums[(b * NEURONS_PER_BLOCK + j) * LANES + lane] = input;
            }
        }
    }
    grows
}

impl RowStates {
    /// Keeps hidden hexagon `h`'s walks of the rows after the first one that would grow, up
    /// to the next such row, among the first `walked` rows (see [`Carry`]); the run's first
    /// row is chunk row `first` (counting dropped rows) and the cluster has made `passes`
    /// forward passes.
    fn carry_walks(&mut self, h: usize, first: usize, walked: usize, passes: u64) {
        let Some(cut) = self.frozen[..walked].iter().position(|&frozen| !frozen) else {
            return;
        };
        let end = self.frozen[cut + 1..walked]
            .iter()
            .position(|&frozen| !frozen)
            .map_or(walked, |next| cut + 1 + next);
        if end <= cut + 1 {
            return;
        }
        let width = self.neurons[h];
        let mut sums = Vec::with_capacity((end - cut - 1) * width);
        for row in cut + 1..end {
            let base = sum_base(self.group_rows, width, row);
            sums.extend((0..width).map(|n| self.sums[base + n * LANES]));
        }
        self.carry = Some(Carry {
            row: first + cut + 1,
            passes,
            hexagon: h,
            sums,
        });
    }

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
        self.fired.resize_with(count, Vec::new);
        let groups = rows
            .div_ceil(LANES)
            .max(cluster.parallel.threads())
            .min(rows);
        self.group_rows = rows.div_ceil(groups);
        self.frozen.clear();
        self.frozen.resize(rows, true);
    }

    /// Notes, for every neuron of hexagon `h`, the rows among the first `rows` that fired it
    /// (for the lane walks, so only with AVX-512).
    #[cfg(target_arch = "x86_64")]
    fn note_fired(&mut self, h: usize, rows: usize) {
        let fired = &mut self.fired[h];
        fired.clear();
        fired.resize(self.neurons[h], 0);
        let blocks = self.neurons[h] / NEURONS_PER_BLOCK;
        for (b, fired) in fired.chunks_mut(NEURONS_PER_BLOCK).enumerate() {
            // Block `b`'s active bits in each row, turned into each neuron's rows.
            let mut words = [0u64; CHUNK_ROWS];
            for (word, row) in words
                .iter_mut()
                .zip(self.active[h].chunks(blocks).take(rows))
            {
                *word = row[b];
            }
            let fired: &mut [u32; NEURONS_PER_BLOCK] =
                fired.try_into().expect("a neuron block has 64 neurons");
            // SAFETY: lane walks (and so this) run only where the CPU has AVX-512.
            unsafe { super::avx512::transpose_rows(&words, fired) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::two_classes::{cluster, cluster_with, inputs as row, train};
    use super::*;

    #[test]
    fn trained_networks_run_whole_chunks_in_parallel() {
        let mut cluster = cluster(3, 2);
        train(&mut cluster, 0..3000);
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

    #[test]
    fn neuron_states_go_on_from_group_to_group() {
        // A short cooldown and a long refractory time: what a hidden neuron does in a row
        // depends on the rows before it, also across the groups of a run.
        let settings = "    neuron_cooldown: 1.5\n    refractory_time: 3\n";
        for (threads, vector) in [(1, true), (2, true), (2, false)] {
            let mut cluster = cluster_with(settings, 5, threads);
            cluster.set_vector_walks(vector);
            train(&mut cluster, 0..2000);
            let mut twin = Cluster::restore(&cluster.save()).unwrap();
            let first = 7000;
            let mut source = crate::RowsFn::new(
                300,
                |i: usize, _: &str, values: &mut [f32]| -> Result<(), crate::RowError> {
                    values.copy_from_slice(&row(first + i));
                    Ok(())
                },
            );
            let mut outputs = Vec::new();
            cluster
                .request_batch(
                    &mut source,
                    &std::sync::atomic::AtomicBool::new(false),
                    &mut |_| {},
                    &mut |_, _, values| outputs.push(values.to_vec()),
                )
                .unwrap();
            for (i, output) in outputs.iter().enumerate() {
                twin.request_step(&[("x", &row(first + i))]).unwrap();
                assert_eq!(
                    output,
                    twin.output("y").unwrap(),
                    "{threads} threads, row {i}"
                );
            }
            assert!(cluster.save() == twin.save(), "{threads} threads");
        }
    }

    #[test]
    fn rows_after_a_growing_row_take_the_walks_it_cut_short() {
        // After 40 samples many requests still grow the hidden hexagon.
        for (threads, vector) in [(1, true), (2, true), (2, false)] {
            let mut cluster = cluster(3, threads);
            cluster.set_vector_walks(vector);
            train(&mut cluster, 0..40);
            let mut twin = Cluster::restore(&cluster.save()).unwrap();
            let first = 5000;
            let mut source = crate::RowsFn::new(
                400,
                |i: usize, _: &str, values: &mut [f32]| -> Result<(), crate::RowError> {
                    values.copy_from_slice(&row(first + i));
                    Ok(())
                },
            );
            let mut outputs = Vec::new();
            cluster
                .request_batch(
                    &mut source,
                    &std::sync::atomic::AtomicBool::new(false),
                    &mut |_| {},
                    &mut |_, _, values| outputs.push(values.to_vec()),
                )
                .unwrap();
            let before = twin.size().synapses;
            for (i, output) in outputs.iter().enumerate() {
                twin.request_step(&[("x", &row(first + i))]).unwrap();
                assert_eq!(output, twin.output("y").unwrap(), "row {i}");
            }
            assert!(
                twin.size().synapses > before,
                "the requests grew the network"
            );
            assert!(
                cluster.scratch.rows.carried_rows > 0,
                "{threads} threads, vector walks {vector}: no row took carried walks"
            );
            cluster.inputs[0].values.copy_from_slice(&row(first + 399));
            assert!(cluster.save() == twin.save());
        }
    }
}
