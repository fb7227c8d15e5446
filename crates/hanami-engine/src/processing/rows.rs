//! Request cycles for a chunk of rows at once (request batches).
//!
//! A request that does not grow the network (nearly every request to a trained network) leaves
//! only one kind of state to the next request: the hidden neurons' potential after the
//! cooldown and their refractory countdown. A hexagon's section walks for one row therefore do
//! not depend on any other row, only on the row's source potentials, and the neuron update
//! that carries the state from row to row is cheap and separate per neuron. So a chunk's
//! rows run in groups of up to 16, one group per thread at a time: a group injects its rows'
//! inputs, walks the hexagons in order for its rows, updates a hidden hexagon's neurons row
//! after row as soon as the group before it hands over the state its last row left, and
//! computes the output values. The threads meet only there and once per run, and the updates
//! fill the time one thread would otherwise wait for the other's walks.
//!
//! With AVX-512 or AVX2 one pass over a section walks it for every row of the group, one row
//! per vector lane (`avx512::walk_group`, `avx2::walk_group`): the summed inputs are laid out
//! target by target with a lane per row, so each lane still receives its terms in processing
//! order, and where each row's signal ends is a lane mask instead of a branch. With the
//! portable walks the group's rows are walked one after another.
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
//! the growing one too. Those walks are kept ([`Carry`]) where the hexagon is fed by input
//! hexagons alone (whose rows are known before any walk): the next run, right after the
//! ordinary cycle of the growing row, takes them for every row that walks none of the
//! sections that cycle changed as far as it changed them (`forward::walk_reaches`), and so
//! walks only the later hexagons for those rows. A walk reads its section only up to where it
//! ends, so such a row's walks are the same before and after the change.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use super::Feed;
use super::forward::{self, NeuronParams};
use super::output::{output_values, sigmoid, sigmoid_lanes};
use crate::cluster::{Cluster, Parallelism, Walks};
#[cfg(target_arch = "x86_64")]
use crate::network::{Connection, ConnectionBlock, Section, bits};
use crate::network::{Hexagon, InputInterface, NO_NEURON, OutputInterface};
use crate::network::{NEURONS_PER_BLOCK, Neuron, low_bits};
use crate::pace::Work;
use crate::team::Own;

/// Rows a chunk holds at most: enough to keep both threads busy between hand-offs, few enough
/// that the rows' states stay in the caches.
pub(crate) const CHUNK_ROWS: usize = 32;

/// Rows walked together at most: one per lane of a 512-bit register of `f32` (of two 256-bit
/// ones with AVX2). The rows of a run form groups of nearly equal size (at least one per
/// thread; the last may be one row shorter), and the threads take whole groups.
pub(crate) const LANES: usize = 16;

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
}

impl Chunk {
    /// An empty chunk for interfaces of these sizes (no outputs for a chunk whose rows are
    /// only read ahead).
    pub(crate) fn clear(&mut self, inputs: &[InputInterface], outputs: &[OutputInterface]) {
        self.rows = 0;
        self.dropped = 0;
        self.inputs = inputs
            .iter()
            .map(|i| vec![0.0; CHUNK_ROWS * i.values.len()])
            .collect();
        self.outputs = outputs
            .iter()
            .map(|o| vec![0.0; CHUNK_ROWS * o.values.len()])
            .collect();
    }

    /// Appends a row: per input interface, its values.
    pub(crate) fn push(&mut self, values: &[Vec<f32>]) {
        let row = self.rows;
        for (chunk, values) in self.inputs.iter_mut().zip(values) {
            let size = values.len();
            chunk[row * size..(row + 1) * size].copy_from_slice(values);
        }
        self.rows += 1;
    }

    /// Moves rows from the front of `other` (a chunk for the same interfaces) behind this
    /// chunk's rows, as many as it has or fit.
    pub(crate) fn take_front(&mut self, other: &mut Chunk) {
        let count = other.rows.min(CHUNK_ROWS - self.rows);
        if count == 0 {
            return;
        }
        if self.rows == 0 && count == other.rows {
            // All of `other`'s rows: its buffers become this chunk's (the outputs stay).
            std::mem::swap(&mut self.inputs, &mut other.inputs);
            self.rows = count;
            other.drop_front(count);
            return;
        }
        for (values, others) in self.inputs.iter_mut().zip(&other.inputs) {
            let size = values.len() / CHUNK_ROWS;
            values[self.rows * size..(self.rows + count) * size]
                .copy_from_slice(&others[..count * size]);
        }
        self.rows += count;
        other.drop_front(count);
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

/// What one source hexagon left in the rows of one group, for the walks of later hexagons.
pub(crate) struct SourceRows<'a> {
    /// The group's rows' potentials, row after row (lane `l`'s neuron `n` at
    /// `l · neurons + n`).
    potentials: &'a [f32],
    /// The group's rows' active bits, row after row (one word per neuron block).
    active: &'a [u64],
    /// Per neuron, the lanes whose row fired it (for the lane walks; empty otherwise).
    fired: &'a [u16],
    /// Per neuron, its potential in each lane that fired it (AVX2 lane walks; the other
    /// lanes hold what earlier rows left).
    lane_potentials: &'a [[f32; LANES]],
    /// The hexagon's neurons.
    neurons: usize,
}

/// The sources of one row's walks: the earlier hexagons as the row left them.
pub(crate) struct RowSources<'a> {
    /// Per hexagon before the walked one, its rows of the group.
    sources: &'a [SourceRows<'a>],
    /// The row's lane in its group.
    lane: usize,
}

impl RowSources<'_> {
    /// The potential of neuron `neuron` of hexagon `hexagon` in this row.
    #[inline]
    pub(crate) fn potential(&self, hexagon: u32, neuron: u32) -> f32 {
        let source = &self.sources[hexagon as usize];
        source.potentials[self.lane * source.neurons + neuron as usize]
    }
}

/// The sources' potentials for the walks of one group of rows.
pub(crate) struct GroupSources<'a> {
    /// Per hexagon before the walked one, its rows of the group.
    sources: &'a [SourceRows<'a>],
    /// The lanes walked.
    lanes: u16,
}

impl GroupSources<'_> {
    /// The lanes walked whose row fired neuron `neuron` of hexagon `hexagon`.
    #[inline]
    pub(crate) fn lanes(&self, hexagon: u32, neuron: u32) -> u16 {
        self.sources[hexagon as usize].fired[neuron as usize] & self.lanes
    }

    /// The potentials of hexagon `hexagon` for the group's rows (lane `l`'s neuron `n` at
    /// `l · neurons + n`; only the lanes that fired a neuron may be read) and its number of
    /// neurons.
    #[inline]
    pub(crate) fn potentials(&self, hexagon: u32) -> (&[f32], usize) {
        let source = &self.sources[hexagon as usize];
        (source.potentials, source.neurons)
    }

    /// Neuron `neuron` of hexagon `hexagon`'s potential in each lane that fired it (with the
    /// AVX2 walks; the other lanes hold what earlier rows left).
    #[inline]
    pub(crate) fn lane_potentials(&self, hexagon: u32, neuron: u32) -> &[f32; LANES] {
        &self.sources[hexagon as usize].lane_potentials[neuron as usize]
    }
}

/// What the rows of a chunk leave in each hexagon, row after row; kept between chunks so that
/// runs do not allocate these (a run's groups allocate only their small bookkeeping).
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
    /// Rows per group in the current run.
    group_rows: usize,
    /// Per walked hexagon, the summed inputs of every row, group after group; inside a
    /// group neuron after neuron, with one lane per row (see [`sum_base`]).
    sums: Vec<Vec<f32>>,
    /// Per walked hexagon, the live sections of every row (one word per connection block);
    /// used by the one-row walks.
    live: Vec<Vec<u64>>,
    /// Per hexagon that feeds others, with the lane walks: per group, per neuron, the lanes
    /// whose row fired it.
    fired: Vec<Vec<u16>>,
    /// Per hexagon that feeds others, with the AVX2 lane walks: per group, per neuron, its
    /// potential in each lane that fired it (the other lanes hold what earlier rows left).
    lane_potentials: Vec<Vec<[f32; LANES]>>,
    /// Per row: whether its request so far leaves the network as it is.
    frozen: Vec<bool>,
    /// The walks a run cut short left for the next run.
    carry: Option<Carry>,
    /// Rows that took carried walks, for the tests.
    #[cfg(test)]
    carried_rows: usize,
    /// Rows that ran in runs, for the tests.
    #[cfg(test)]
    ran_rows: usize,
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

/// One group's rows of a run, for the walks of every hexagon and the neuron updates of the
/// hidden ones.
struct GroupRun<'a> {
    /// The group's first row.
    first: usize,
    /// The group's rows (at most `LANES`).
    rows: usize,
    /// Per row: whether its request so far leaves the network as it is.
    frozen: &'a mut [bool],
    /// Per hexagon, the group's part of it.
    hexagons: Vec<GroupHexagon<'a>>,
}

/// One group's rows of one hexagon.
struct GroupHexagon<'a> {
    /// The rows' potentials, row after row: injected (input hexagons), updated (hidden
    /// hexagons) or the output values' (output hexagons).
    potentials: &'a mut [f32],
    /// The rows' active bits, row after row (one word per neuron block).
    active: &'a mut [u64],
    /// Hidden hexagons: the rows' refractory countdowns, row after row.
    refractory: &'a mut [u32],
    /// Per neuron, the lanes whose row fired it, once known (lane walks of a hexagon that
    /// feeds others).
    fired: &'a mut [u16],
    /// Per neuron, its potential in each lane that fired it, once known (AVX2 lane walks
    /// of a hexagon that feeds others).
    lane_potentials: &'a mut [[f32; LANES]],
    /// Walked hexagons: the rows' summed inputs, neuron after neuron, one lane per row.
    sums: &'a mut [f32],
    /// Walked hexagons, one-row walks: the rows' live-section words.
    live: &'a mut [u64],
    /// The first rows whose sums were carried over, not walked.
    skip: usize,
    /// The first rows whose walks ran (complete, or found to grow) or were carried.
    done: usize,
    /// Output hexagons: the rows' interface values.
    values: Option<&'a mut [f32]>,
}

impl GroupHexagon<'_> {
    /// A view for the walks of later hexagons.
    fn source(&self, neurons: usize) -> SourceRows<'_> {
        SourceRows {
            potentials: self.potentials,
            active: self.active,
            fired: self.fired,
            lane_potentials: self.lane_potentials,
            neurons,
        }
    }
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

/// The neuron updates of a hidden hexagon's first `ran` rows of one group (`part`), in row
/// order, from `start` (the previous row's state; the hexagon's own for the run's first row).
/// Returns the state after the last of them.
fn update_group(
    hexagon: &Hexagon,
    params: &NeuronParams,
    walks: Walks,
    part: &mut GroupHexagon<'_>,
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
        let mut refractory: [u32; NEURONS_PER_BLOCK] = match start {
            None => std::array::from_fn(|j| hexagon.neurons[range.start + j].refractory),
            Some(start) => start.refractory[range.clone()]
                .try_into()
                .expect("a neuron block's countdowns"),
        };
        let mut potentials: [f32; NEURONS_PER_BLOCK] = match start {
            None => hexagon.potentials[range.clone()].try_into(),
            Some(start) => start.potentials[range.clone()].try_into(),
        }
        .expect("a neuron block's potentials");
        for row in 0..ran {
            let inputs = std::array::from_fn(|j| part.sums[(range.start + j) * LANES + row]);
            part.active[row * blocks + b] =
                forward::update_values(walks, &inputs, &mut refractory, &mut potentials, params);
            part.potentials[row * width..][range.clone()].copy_from_slice(&potentials);
            part.refractory[row * width..][range.clone()].copy_from_slice(&refractory);
        }
        state.potentials.extend_from_slice(&potentials);
        state.refractory.extend_from_slice(&refractory);
    }
    state
}

impl Cluster {
    /// Runs request cycles for rows `from..chunk.rows` of `chunk`, for as many rows in a row
    /// as leave the network as it is, with the results of one request cycle after another.
    /// Returns how many rows ran (0 where this cluster cannot run rows this way); the cluster
    /// is then in the state after them, and `chunk` holds their outputs. `beside` is work for
    /// the calling thread, done before it takes its first group of rows while another thread
    /// may take the others (done only where rows run this way).
    pub(crate) fn request_rows(
        &mut self,
        chunk: &mut Chunk,
        from: usize,
        beside: &mut dyn FnMut(),
    ) -> usize {
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
        // Carried walks are checked against the rows' sources, so they are taken where those
        // are input hexagons alone, and those rows are injected here, before the walks; the
        // groups inject the others.
        let carry = carry.filter(|carry| self.fed_by_inputs(carry.hexagon));
        let injected = carry.as_ref().map_or(0, |carry| {
            (carry.sums.len() / states.neurons[carry.hexagon]).min(rows)
        });
        for h in 0..self.hexagons.len() {
            if self.hexagons[h].is_input {
                self.inject_rows(h, chunk, from, &mut states, injected);
            }
        }
        let checked = states.frozen[..injected]
            .iter()
            .position(|&f| !f)
            .unwrap_or(injected);
        let carried = carry.as_ref().map(|carry| {
            let rows = self.rows_before_changes(carry.hexagon, &states, checked);
            #[cfg(test)]
            {
                states.carried_rows += rows;
            }
            (carry, rows)
        });
        let walked = self.walk_run(chunk, from, &mut states, injected, carried, beside);
        for (h, walked) in walked {
            if self.fed_by_inputs(h) {
                states.carry_walks(h, chunk.dropped + from, walked, self.scratch.forward_passes);
            }
        }
        let limit = states.frozen.iter().position(|&f| !f).unwrap_or(rows);
        #[cfg(test)]
        {
            states.ran_rows += limit;
        }
        if limit > 0 {
            self.settle_rows(chunk, from, &states, limit);
        }
        self.scratch.rows = states;
        self.parallel.finish(timing, limit);
        limit
    }

    /// Whether hexagon `h` is fed by input hexagons alone, whose rows are known before any
    /// walk of a run (so its walks may be carried over).
    fn fed_by_inputs(&self, h: usize) -> bool {
        self.scratch.feeds[h]
            .iter()
            .all(|feed| self.hexagons[feed.source].is_input)
    }

    /// How many of the first `limit` rows walk none of the sections of hexagon `h` that the
    /// latest cycle changed as far as it changed them; their walks from before that cycle
    /// still hold. Only for a hexagon [fed by inputs](Cluster::fed_by_inputs), whose sources'
    /// rows are injected already.
    fn rows_before_changes(&self, h: usize, states: &RowStates, limit: usize) -> usize {
        debug_assert!(
            self.fed_by_inputs(h),
            "carried walks of a hexagon fed by others"
        );
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

    /// Whether the rows of a chunk can run in groups of rows: the cluster walks several
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

    /// Input injection (`forward::inject`) of input hexagon `h` for the first `rows` rows
    /// (see [`inject_row`]).
    fn inject_rows(
        &self,
        h: usize,
        chunk: &Chunk,
        from: usize,
        states: &mut RowStates,
        rows: usize,
    ) {
        let hexagon = &self.hexagons[h];
        let input = hexagon.input.expect("an input hexagon has an input");
        let size = self.inputs[input].values.len();
        let neurons = states.neurons[h];
        let blocks = neurons / NEURONS_PER_BLOCK;
        let rows = states.potentials[h]
            .chunks_mut(neurons)
            .zip(states.active[h].chunks_mut(blocks))
            .zip(&mut states.frozen)
            .zip(chunk.inputs[input].chunks(size).skip(from))
            .take(rows);
        for (((potentials, active), frozen), values) in rows {
            *frozen &= inject_row(
                hexagon,
                self.walks,
                self.settings.request_growth,
                values,
                potentials,
                active,
            );
        }
    }

    /// Every row of the run (`states.frozen` has one flag per row, the first `injected` rows
    /// injected already), in one parallel pass over its groups of rows: each group injects
    /// its other rows, walks the hexagons in order, updates the hidden ones' neurons (once the
    /// group before it hands over the state its last row left) and computes the output
    /// values; the threads meet only at those hand-overs and at the end of the run. With
    /// `carried` walks of the first rows, those rows take their sums from the carry instead.
    /// `beside` runs on the calling thread before it takes a group. Returns, per hidden
    /// hexagon, how many rows from the first had their walks run (complete, or found to
    /// grow); the others were left out after a growing row.
    fn walk_run(
        &mut self,
        chunk: &mut Chunk,
        from: usize,
        states: &mut RowStates,
        injected: usize,
        carried: Option<(&Carry, usize)>,
        beside: &mut dyn FnMut(),
    ) -> Vec<(usize, usize)> {
        self.ensure_feeds();
        let params = NeuronParams::of(self);
        let limit = states.frozen.len();
        let Cluster {
            hexagons,
            inputs,
            outputs,
            parallel,
            walks,
            settings,
            scratch,
            ..
        } = self;
        let walks = *walks;
        let lane_walks = !matches!(walks, Walks::Portable);
        let group_rows = states.group_rows;
        let groups = limit.div_ceil(group_rows);
        let RowStates {
            neurons,
            potentials,
            active,
            refractory,
            sums,
            live,
            fired,
            lane_potentials,
            frozen,
            ..
        } = states;
        sums.resize_with(hexagons.len(), Vec::new);
        live.resize_with(hexagons.len(), Vec::new);
        fired.resize_with(hexagons.len(), Vec::new);
        lane_potentials.resize_with(hexagons.len(), Vec::new);
        // Rows after one that would change the network are not run now.
        let cutoff = AtomicUsize::new(frozen.iter().position(|&f| !f).unwrap_or(limit));
        let mut runs: Vec<GroupRun<'_>> = frozen[..limit]
            .chunks_mut(group_rows)
            .enumerate()
            .map(|(g, frozen)| GroupRun {
                first: g * group_rows,
                rows: frozen.len(),
                frozen,
                hexagons: Vec::with_capacity(hexagons.len()),
            })
            .collect();
        // Per output interface, the run's rows of its values.
        let mut output_rows: Vec<Option<&mut [f32]>> = chunk
            .outputs
            .iter_mut()
            .zip(outputs.iter())
            .map(|(rows, output)| Some(&mut rows[from * output.values.len()..]))
            .collect();
        let parts = hexagons
            .iter()
            .zip(potentials.iter_mut())
            .zip(active.iter_mut())
            .zip(refractory.iter_mut())
            .zip(sums.iter_mut())
            .zip(live.iter_mut())
            .zip(fired.iter_mut())
            .zip(lane_potentials.iter_mut())
            .enumerate();
        for (
            h,
            (
                ((((((hexagon, potentials), active), refractory), sums), live), fired),
                lane_potentials,
            ),
        ) in parts
        {
            let width = neurons[h];
            let blocks = width / NEURONS_PER_BLOCK;
            let (walked, hidden) = (!hexagon.is_input, is_hidden(hexagon));
            sums.resize(if walked { groups * width * LANES } else { 0 }, 0.0);
            // As `RunContext::run_group` fills them (`fired_lanes`).
            let feeds = !hexagon.is_output && lane_walks;
            fired.resize(if feeds { groups * width } else { 0 }, 0);
            let mut fired = fired.chunks_mut(width.max(1));
            let loads_lanes = feeds && walks == Walks::Avx2;
            lane_potentials.resize(if loads_lanes { groups * width } else { 0 }, [0.0; LANES]);
            let mut lane_potentials = lane_potentials.chunks_mut(width.max(1));
            let connection_blocks = hexagon.blocks.len().max(1);
            live.clear();
            if walked && !lane_walks {
                live.resize(groups * group_rows * connection_blocks, 0);
            }
            let skip = carried
                .filter(|(carry, _)| carry.hexagon == h)
                .map_or(0, |(_, rows)| rows);
            let mut potentials = potentials[..limit * width].chunks_mut(group_rows * width);
            let mut active = active[..limit * blocks].chunks_mut(group_rows * blocks);
            let mut refractory =
                refractory[..if hidden { limit * width } else { 0 }].chunks_mut(group_rows * width);
            let mut sums = sums.chunks_mut(width * LANES);
            let mut live = live.chunks_mut(group_rows * connection_blocks);
            let mut values = hexagon.output.map(|o| {
                let size = outputs[o].values.len();
                output_rows[o]
                    .take()
                    .expect("an output interface of one hexagon")
                    .chunks_mut(group_rows * size)
            });
            for run in &mut runs {
                run.hexagons.push(GroupHexagon {
                    potentials: potentials.next().expect("a group's potentials"),
                    active: active.next().expect("a group's active bits"),
                    refractory: refractory.next().unwrap_or_default(),
                    fired: fired.next().unwrap_or_default(),
                    lane_potentials: lane_potentials.next().unwrap_or_default(),
                    sums: sums.next().unwrap_or_default(),
                    live: live.next().unwrap_or_default(),
                    skip: skip.saturating_sub(run.first).min(run.rows),
                    done: 0,
                    values: values
                        .as_mut()
                        .map(|values| values.next().expect("a group's output values")),
                });
            }
        }
        let context = RunContext {
            hexagons,
            inputs,
            values: &chunk.inputs,
            from,
            injected,
            feeds: &scratch.feeds,
            neurons,
            outputs,
            reads: hexagons
                .iter()
                .enumerate()
                .map(|(h, hexagon)| match hexagon.output {
                    // The potentials that the output values read; a later hexagon would read
                    // them all.
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
                    _ => (0..neurons[h]).collect(),
                })
                .collect(),
            handoffs: hexagons
                .iter()
                .map(|hexagon| {
                    let count = if is_hidden(hexagon) { groups } else { 0 };
                    (0..count).map(|_| Handoff::default()).collect()
                })
                .collect(),
            params,
            walks,
            growth: settings.request_growth,
            group_rows,
            carried,
            cutoff,
        };
        parallel.for_each_with(&mut runs, &|run| context.run_group(run), Own::First(beside));
        let walked = hexagons
            .iter()
            .enumerate()
            .filter(|(_, hexagon)| is_hidden(hexagon))
            .map(|(h, _)| {
                let walked = runs
                    .iter()
                    .find(|run| run.hexagons[h].done < run.rows)
                    .map_or(limit, |run| run.first + run.hexagons[h].done);
                (h, walked)
            })
            .collect();
        drop(runs);
        // The last row that ran keeps all the potentials of the last hexagon.
        let ran = states.frozen[..limit]
            .iter()
            .position(|&f| !f)
            .unwrap_or(limit);
        let h = hexagons.len() - 1;
        if let (Some(_), Some(last)) = (hexagons[h].output, ran.checked_sub(1)) {
            let width = states.neurons[h];
            let base = sum_base(group_rows, width, last);
            let potentials = &mut states.potentials[h][last * width..ran * width];
            for (n, potential) in potentials.iter_mut().enumerate() {
                *potential = sigmoid(states.sums[h][base + n * LANES]);
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

/// The walks of hexagon `h` (with `feeds`) for a group's rows `skip..rows` one row at a time
/// (`forward::walk_block_frozen`), for CPUs without the lane walks, from `sources` (the
/// earlier hexagons' rows of the group) into `part`'s sums; stops at the first row that lies
/// past `cutoff` (rows after one that would grow are walked too, for [`Carry`]), and notes
/// the rows walked. The group's first row is row `first` of the run. Returns the lanes that
/// would grow.
fn walk_group_rows(
    hexagon: &Hexagon,
    feeds: &[Feed],
    sources: &[SourceRows<'_>],
    growth: bool,
    part: &mut GroupHexagon<'_>,
    (first, skip, rows): (usize, usize, usize),
    cutoff: &AtomicUsize,
) -> u16 {
    let dim = hexagon.dim;
    let connection_blocks = hexagon.blocks.len().max(1);
    let mut grows = 0;
    part.done = skip;
    for (lane, live) in part
        .live
        .chunks_mut(connection_blocks)
        .take(rows)
        .enumerate()
        .skip(skip)
    {
        if first + lane > cutoff.load(Ordering::Relaxed) {
            break;
        }
        part.done = lane + 1;
        for feed in feeds {
            let source = &sources[feed.source];
            let blocks = source.neurons / NEURONS_PER_BLOCK;
            let active = &source.active[lane * blocks..(lane + 1) * blocks];
            feed.mark(active, live);
        }
        let row = RowSources { sources, lane };
        for (b, (blocks, live)) in hexagon.blocks.chunks(dim).zip(live.chunks(dim)).enumerate() {
            let mut inputs = [0.0f32; NEURONS_PER_BLOCK];
            if !forward::walk_block_frozen(blocks, live, &row, growth, &mut inputs) {
                grows |= 1 << lane;
                break;
            }
            for (j, &input) in inputs.iter().enumerate() {
                part.sums[(b * NEURONS_PER_BLOCK + j) * LANES + lane] = input;
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
            sums.extend((0..width).map(|n| self.sums[h][base + n * LANES]));
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
        let groups = rows
            .div_ceil(LANES)
            .max(cluster.parallel.threads())
            .min(rows);
        self.group_rows = rows.div_ceil(groups);
        self.frozen.clear();
        self.frozen.resize(rows, true);
    }
}

/// Input injection (`forward::inject`) of one row of input hexagon `hexagon` with the
/// interface's `values` into the row's `potentials` and `active` bits; whether the row leaves
/// the network as it is (not where it fires a neuron for the first time, or one with a
/// pending section request, while requests may grow the network).
fn inject_row(
    hexagon: &Hexagon,
    walks: Walks,
    growth: bool,
    values: &[f32],
    potentials: &mut [f32],
    active: &mut [u64],
) -> bool {
    let size = values.len();
    // The row's values fill the first `size` neurons; the rest keep their state.
    potentials[size..].copy_from_slice(&hexagon.potentials[size..]);
    active.copy_from_slice(&hexagon.active);
    let mut frozen = true;
    for (b, (potentials, values)) in potentials
        .chunks_mut(NEURONS_PER_BLOCK)
        .zip(values.chunks(NEURONS_PER_BLOCK))
        .enumerate()
    {
        let fired = forward::inject_block(walks, potentials, &mut active[b], values);
        let in_use = hexagon.in_use[b];
        if growth && (fired & !in_use != 0 || hexagon.new_mask[b] & in_use & active[b] != 0) {
            frozen = false;
        }
    }
    frozen
}

/// Whether a hexagon is hidden: neither an input nor an output hexagon.
fn is_hidden(hexagon: &Hexagon) -> bool {
    !hexagon.is_input && !hexagon.is_output
}

/// What every group of a run reads.
struct RunContext<'a> {
    hexagons: &'a [Hexagon],
    inputs: &'a [InputInterface],
    /// Per input interface, the chunk's values of every row.
    values: &'a [Vec<f32>],
    /// The chunk's row of the run's first row.
    from: usize,
    /// The run's first rows that are injected already.
    injected: usize,
    /// Per hexagon, its feeds.
    feeds: &'a [Vec<Feed>],
    /// Per hexagon, its neurons.
    neurons: &'a [usize],
    outputs: &'a [OutputInterface],
    /// Per hexagon, the neurons whose potentials its rows keep (every neuron but in the last
    /// hexagon, whose rows keep those that the output values read).
    reads: Vec<Vec<usize>>,
    /// Per hidden hexagon, per group, the state its last row leaves.
    handoffs: Vec<Vec<Handoff>>,
    params: NeuronParams,
    walks: Walks,
    growth: bool,
    group_rows: usize,
    carried: Option<(&'a Carry, usize)>,
    /// The first row that would change the network, as far as known.
    cutoff: AtomicUsize,
}

impl RunContext<'_> {
    /// One group's injections (of the rows not injected yet) and walks of every hexagon in
    /// order, with the neuron updates of the hidden ones and the output values; stops where
    /// an earlier row would change the network.
    fn run_group(&self, run: &mut GroupRun<'_>) {
        let g = run.first / self.group_rows;
        // Each hidden hexagon tells the next group that no state follows, unless its updates
        // below hand one over (also where this group stops early, or panics).
        let mut publish: Vec<Option<Publish<'_>>> = self
            .handoffs
            .iter()
            .map(|handoffs| {
                handoffs.get(g).map(|handoff| Publish {
                    handoff,
                    state: None,
                })
            })
            .collect();
        // The group's rows that go on: those before the first that would change the network.
        let mut rows = run.frozen.iter().position(|&f| !f).unwrap_or(run.rows);
        for (h, hexagon) in self.hexagons.iter().enumerate() {
            let width = self.neurons[h];
            let (before, rest) = run.hexagons.split_at_mut(h);
            let part = &mut rest[0];
            if let Some(input) = hexagon.input {
                let size = self.inputs[input].values.len();
                let blocks = width / NEURONS_PER_BLOCK;
                for lane in self.injected.saturating_sub(run.first).min(rows)..rows {
                    let row = self.from + run.first + lane;
                    let frozen = inject_row(
                        hexagon,
                        self.walks,
                        self.growth,
                        &self.values[input][row * size..(row + 1) * size],
                        &mut part.potentials[lane * width..(lane + 1) * width],
                        &mut part.active[lane * blocks..(lane + 1) * blocks],
                    );
                    if !frozen {
                        run.frozen[lane] = false;
                        self.cutoff.fetch_min(run.first + lane, Ordering::Relaxed);
                        rows = lane;
                        break;
                    }
                }
            } else {
                if run.first > self.cutoff.load(Ordering::Relaxed) {
                    return;
                }
                let sources: Vec<SourceRows<'_>> = before
                    .iter()
                    .enumerate()
                    .map(|(s, part)| part.source(self.neurons[s]))
                    .collect();
                let grows = self.walk(h, &sources, part, run.first, rows);
                // The one-row walks stop at a row past the cutoff: the rows after it do not
                // run.
                rows = rows.min(part.done);
                if grows != 0 {
                    let lane = grows.trailing_zeros() as usize;
                    self.cutoff.fetch_min(run.first + lane, Ordering::Relaxed);
                    for (lane, frozen) in run.frozen.iter_mut().enumerate() {
                        *frozen &= grows >> lane & 1 == 0;
                    }
                    rows = rows.min(lane);
                }
                if is_hidden(hexagon) {
                    // The neuron updates, row after row from the state the previous group's
                    // last row left: a neuron's update depends only on its own state and its
                    // summed input.
                    let start = match g.checked_sub(1) {
                        None => None,
                        Some(previous) => match self.handoffs[h][previous].wait() {
                            Some(state) => Some(state),
                            None => return,
                        },
                    };
                    let state = update_group(
                        hexagon,
                        &self.params,
                        self.walks,
                        part,
                        start.as_ref(),
                        rows,
                    );
                    // Handed over (or not) at once, as the publisher is dropped.
                    if let Some(mut publish) = publish[h].take()
                        && rows == run.rows
                    {
                        publish.state = Some(state);
                    }
                }
                if let (Some(values), Some(o)) = (part.values.as_deref_mut(), hexagon.output) {
                    let size = self.outputs[o].values.len();
                    for &n in &self.reads[h] {
                        let sums: &[f32; LANES] = part.sums[n * LANES..][..LANES]
                            .try_into()
                            .expect("a neuron's lanes");
                        let lanes = sigmoid_lanes(self.walks, sums);
                        for (lane, &potential) in lanes.iter().enumerate().take(rows) {
                            part.potentials[lane * width + n] = potential;
                        }
                    }
                    for lane in 0..rows {
                        output_values(
                            &self.outputs[o].targets,
                            &part.potentials[lane * width..(lane + 1) * width],
                            &mut values[lane * size..(lane + 1) * size],
                        );
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            if !matches!(self.walks, Walks::Portable) && !hexagon.is_output {
                fired_lanes(self.walks, part, rows, width);
            }
            if rows == 0 {
                return;
            }
        }
    }

    /// The walks of hexagon `h` for the group's first `rows` rows (from row `first` of the
    /// run), from `sources` (the earlier hexagons' rows of the group), into `part`'s sums;
    /// returns the lanes whose walks would grow the network.
    fn walk(
        &self,
        h: usize,
        sources: &[SourceRows<'_>],
        part: &mut GroupHexagon<'_>,
        first: usize,
        rows: usize,
    ) -> u16 {
        let hexagon = &self.hexagons[h];
        let width = self.neurons[h];
        part.sums.fill(0.0);
        let skip = part.skip.min(rows);
        if let Some((carry, _)) = self.carried.filter(|(carry, _)| carry.hexagon == h) {
            let carried = carry.sums.chunks(width).skip(first).take(skip);
            for (lane, carried) in carried.enumerate() {
                for (n, &sum) in carried.iter().enumerate() {
                    part.sums[n * LANES + lane] = sum;
                }
            }
        }
        if skip == rows {
            part.done = rows;
            return 0;
        }
        match self.walks {
            Walks::Portable => walk_group_rows(
                hexagon,
                &self.feeds[h],
                sources,
                self.growth,
                part,
                (first, skip, rows),
                &self.cutoff,
            ),
            #[cfg(target_arch = "x86_64")]
            Walks::Avx2 | Walks::Avx512 => {
                let sources = GroupSources {
                    sources,
                    lanes: (low_bits(rows) & !low_bits(skip)) as u16,
                };
                part.done = rows;
                let (blocks, dim, sums) = (&hexagon.blocks, hexagon.dim, &mut *part.sums);
                if self.walks == Walks::Avx512 {
                    // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
                    unsafe { super::avx512::walk_group(blocks, dim, &sources, self.growth, sums) }
                } else {
                    // SAFETY: chosen only where the CPU has AVX2 (`Walks::runs_here`).
                    unsafe { super::avx2::walk_group(blocks, dim, &sources, self.growth, sums) }
                }
            }
        }
    }
}

/// Writes into `part.fired`, per neuron of a hexagon of `width` neurons, the lanes among the
/// first `rows` of a group whose active bits (in `part`, row after row) have it fired (for
/// the lane walks); with the AVX2 walks also the neuron's potential in those lanes
/// (`GroupHexagon::lane_potentials`).
#[cfg(target_arch = "x86_64")]
fn fired_lanes(walks: Walks, part: &mut GroupHexagon<'_>, rows: usize, width: usize) {
    let blocks = width / NEURONS_PER_BLOCK;
    for (b, fired) in part.fired.chunks_mut(NEURONS_PER_BLOCK).enumerate() {
        // Block `b`'s active bits in each row, turned into each neuron's lanes.
        let mut words = [0u64; LANES];
        for (word, row) in words.iter_mut().zip(part.active.chunks(blocks).take(rows)) {
            *word = row[b];
        }
        let fired: &mut [u16; NEURONS_PER_BLOCK] =
            fired.try_into().expect("a neuron block has 64 neurons");
        if walks == Walks::Avx512 {
            // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
            unsafe { super::avx512::transpose_lanes(&words, fired) };
        } else {
            fired.fill(0);
            let first = b * NEURONS_PER_BLOCK;
            for (lane, &word) in words.iter().enumerate().take(rows) {
                let potentials = &part.potentials[lane * width + first..];
                for j in bits(word) {
                    fired[j] |= 1 << lane;
                    part.lane_potentials[first + j][lane] = potentials[j];
                }
            }
        }
    }
}

/// The sums of one neuron block's targets in a group's lane layout.
pub(super) type LaneSums = [f32; NEURONS_PER_BLOCK * LANES];

/// The block loop of the vector lane walks (`avx512::walk_group`, `avx2::walk_group`): for
/// each used section of `blocks` (`dim` connection blocks per neuron block) whose source fired
/// in a lane of the group, `load_sources` loads the lanes' source potentials (of `sources`,
/// for hexagon and neuron, 0 outside `lanes`; AVX-512 gathers them from the rows, AVX2 loads
/// them from `GroupSources::lane_potentials`) and `walk` walks the section into its neuron
/// block's `sums`, told whether it may grow. Returns the lanes `walk` says would grow.
///
/// A section's source potentials are loaded before the walk of the section before it, whose
/// loop ends on a branch that is often guessed wrong: a load after that branch would start
/// only once it is resolved.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn walk_group_lanes<P>(
    blocks: &[ConnectionBlock],
    dim: usize,
    sources: &GroupSources<'_>,
    growth: bool,
    sums: &mut [f32],
    load_sources: impl Fn(&GroupSources<'_>, u32, u32, u16) -> P,
    walk: impl Fn(&Section, &Connection, P, u16, bool, &mut LaneSums) -> u16,
) -> u16 {
    let mut grows = 0u16;
    for (c, block) in blocks.iter().enumerate() {
        let Some(sections) = block.sections.as_deref() else {
            continue;
        };
        let targets: &mut LaneSums = (&mut sums[c / dim * NEURONS_PER_BLOCK * LANES..]
            [..NEURONS_PER_BLOCK * LANES])
            .try_into()
            .expect("a neuron block's lanes");
        let mut walks = bits(block.used).filter_map(|i| {
            let connection = &block.connections[i];
            let lanes = sources.lanes(connection.source_hexagon, connection.source_neuron);
            if lanes == 0 {
                return None;
            }
            Some((
                i,
                lanes,
                load_sources(
                    sources,
                    connection.source_hexagon,
                    connection.source_neuron,
                    lanes,
                ),
            ))
        });
        let mut next = walks.next();
        while let Some((i, lanes, potential)) = next {
            next = walks.next();
            let connection = &block.connections[i];
            // Nothing has grown in these cycles, so only sections of input neurons may grow.
            let able = growth && connection.from_input;
            grows |= walk(&sections[i], connection, potential, lanes, able, targets);
        }
    }
    grows
}

/// The end of a vector lane walk of `section` for the lanes in `alive`, of which those in
/// `passing` passed the whole chain (they grow it if `able`): the synapses where the other
/// signals end (at `ats[lane]`, from `lanes()`, which also gives the lanes' clamped
/// potentials), lane after lane: what each adds to its target in `sums`, and whether an
/// `able` walk would split it. Returns the lanes that would grow. The arithmetic of the
/// one-row walks. One lane at a time is faster than gathering all lanes' synapses and
/// scattering their adds on the AMD EPYC box, where gathers and scatters are slow
/// (`docs/benchmarks.md`, twenty-eighth session; not measured on the Intel boxes).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn end_lanes(
    section: &Section,
    connection: &Connection,
    (alive, passing, able): (u16, u16, bool),
    lanes: impl FnOnce() -> ([u32; LANES], [f32; LANES]),
    sums: &mut LaneSums,
) -> u16 {
    let grows = if able { passing } else { 0 };
    let ended = alive & !passing;
    if ended == 0 {
        return grows;
    }
    let (ats, starts) = lanes();
    let mut splits = 0u16;
    for lane in bits(u64::from(ended)) {
        let at = ats[lane] as usize;
        let start = f64::from(starts[lane]);
        let (value, split) = forward::last_synapse(section, at, start, connection.tolerance);
        splits |= u16::from(split) << lane;
        sums[forward::target_index(section.target[at]) * LANES + lane] += value;
    }
    grows | if able { splits } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::super::two_classes::{cluster, cluster_with, inputs as row, setups, train};
    use super::*;

    /// Rows move from the rows read ahead to the front of a chunk in order, whether the chunk
    /// is empty (the buffers change hands) or not (the rows are copied), and the chunk keeps
    /// its room for outputs.
    #[test]
    fn chunks_take_the_rows_read_ahead_in_order() {
        let cluster = cluster(3, 2);
        let (mut chunk, mut ahead) = (Chunk::default(), Chunk::default());
        chunk.clear(&cluster.inputs, &cluster.outputs);
        ahead.clear(&cluster.inputs, &[]);
        let size = cluster.inputs[0].values.len();
        let value = |i: usize| vec![i as f32; size];
        let rows_of = |chunk: &Chunk| -> Vec<f32> {
            (0..chunk.rows).map(|r| chunk.inputs[0][r * size]).collect()
        };
        for i in 0..5 {
            ahead.push(&[value(i)]);
        }
        chunk.take_front(&mut ahead);
        assert_eq!(rows_of(&chunk), [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ahead.rows, 0);
        assert_eq!(chunk.outputs[0].len(), CHUNK_ROWS * 2);
        // Ahead again, more than the chunk has room for.
        for i in 5..5 + CHUNK_ROWS {
            ahead.push(&[value(i)]);
        }
        chunk.take_front(&mut ahead);
        let values = |rows: std::ops::Range<usize>| rows.map(|i| i as f32).collect::<Vec<_>>();
        assert_eq!(rows_of(&chunk), values(0..CHUNK_ROWS));
        assert_eq!(rows_of(&ahead), values(CHUNK_ROWS..CHUNK_ROWS + 5));
        chunk.drop_front(CHUNK_ROWS);
        chunk.take_front(&mut ahead);
        assert_eq!(rows_of(&chunk), values(CHUNK_ROWS..CHUNK_ROWS + 5));
        assert_eq!((chunk.dropped, ahead.rows), (CHUNK_ROWS, 0));
        ahead.push(&[value(CHUNK_ROWS + 5)]);
        assert_eq!(rows_of(&ahead), values(CHUNK_ROWS + 5..CHUNK_ROWS + 6));
    }

    #[test]
    fn trained_networks_run_whole_chunks_in_parallel() {
        let mut cluster = cluster(3, 2);
        train(&mut cluster, 0..3000);
        let mut twin = Cluster::restore(&cluster.save()).unwrap();
        let mut chunk = Chunk::default();
        chunk.clear(&cluster.inputs, &cluster.outputs);
        for i in 0..CHUNK_ROWS {
            chunk.push(&[row(i).to_vec()]);
        }
        assert!(cluster.rows_possible());
        let ran = cluster.request_rows(&mut chunk, 0, &mut || {});
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

    /// The inputs of samples `samples`, one row each.
    fn rows_of(samples: std::ops::Range<usize>) -> Vec<Vec<f32>> {
        samples.map(row).collect()
    }

    /// Runs `rows` through a request batch of `cluster` and one request after another on a
    /// copy of it made before; asserts that both give the same outputs and leave the same
    /// state, and returns the copy.
    fn batch_is_steps(cluster: &mut Cluster, rows: &[Vec<f32>]) -> Cluster {
        let mut twin = Cluster::restore(&cluster.save()).unwrap();
        let mut source = crate::RowsFn::new(
            rows.len(),
            |i: usize, _: &str, values: &mut [f32]| -> Result<(), crate::RowError> {
                values.copy_from_slice(&rows[i]);
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
        assert_eq!(outputs.len(), rows.len());
        for (i, (output, values)) in outputs.iter().zip(rows).enumerate() {
            twin.request_step(&[("x", values)]).unwrap();
            assert_eq!(output, twin.output("y").unwrap(), "row {i}");
        }
        assert!(cluster.save() == twin.save());
        twin
    }

    /// [`batch_is_steps`], where most rows run in runs.
    fn batch_runs_rows(cluster: &mut Cluster, rows: &[Vec<f32>]) {
        cluster.scratch.rows.ran_rows = 0;
        batch_is_steps(cluster, rows);
        let ran = cluster.scratch.rows.ran_rows;
        assert!(
            ran > rows.len() / 2,
            "only {ran} of {} rows ran in runs",
            rows.len()
        );
    }

    /// A cluster of four hexagons in a line along x (input, two hidden, output) for the
    /// two-class task, with a short cooldown and `settings` (template lines).
    fn line_cluster(settings: &str, seed: u64, threads: usize) -> Cluster {
        let template = crate::Template::parse(&format!(
            "version: 1\nsettings:\n    neuron_cooldown: 1.5\n{settings}\
             hexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n    4,1,1\n\
             inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 8\n\
             outputs:\n    y:\n        target: 4,1,1\n        number_of_outputs: 2\n",
        ))
        .unwrap();
        let options = crate::ClusterOptions {
            seed,
            threads,
            ..crate::ClusterOptions::default()
        };
        Cluster::new(&template, options).unwrap()
    }

    #[test]
    fn hexagons_after_hidden_ones_walk_each_groups_rows() {
        // Two hidden hexagons in a row: the second one's walks read the first one's rows of
        // the group, and each hands its neuron states from group to group.
        // Pools of three threads and the caller's pool (0) take the groups in order too.
        for (threads, walks) in setups(&[1, 2, 3, 0]) {
            let mut cluster = line_cluster("    refractory_time: 2\n", 9, threads);
            assert!(cluster.set_walks(walks));
            train(&mut cluster, 0..2000);
            let sections: Vec<usize> = cluster
                .hexagons
                .iter()
                .map(|h| h.blocks.iter().map(|b| b.used.count_ones() as usize).sum())
                .collect();
            assert!(
                sections[2] > 0 && sections[3] > 0,
                "the second hidden and the output hexagon have sections: {sections:?}"
            );
            batch_runs_rows(&mut cluster, &rows_of(3000..3300));
        }
    }

    #[test]
    fn rows_that_fire_an_input_for_the_first_time_end_runs() {
        // Trained on class 0 alone, whose rows light inputs 0-3: the first row of class 1
        // fires inputs 4-7 for the first time, which its injection finds, in whichever group.
        for (threads, walks) in setups(&[1, 2]) {
            let mut cluster = cluster(6, threads);
            assert!(cluster.set_walks(walks));
            for i in (0..400).step_by(2) {
                cluster
                    .train_step(&[("x", &row(i))], &[("y", &[1.0, 0.0])])
                    .unwrap();
            }
            // Rows 0-20 of class 0, then both classes.
            let first = 6000;
            let rows: Vec<Vec<f32>> = (0..21)
                .map(|i| row(first + 2 * i))
                .chain(rows_of(first..first + 60))
                .collect();
            batch_is_steps(&mut cluster, &rows);
        }
    }

    #[test]
    fn walks_fed_by_a_hidden_hexagon_are_not_carried() {
        // Sections reach two hexagons far: hexagon 3,1,1 is fed by the input hexagon and by
        // the hidden hexagon 2,1,1. Its input-fed sections grow and cut runs short, but its
        // walks also read the other hidden hexagon's rows, which a run knows only after
        // walking them.
        for (threads, walks) in setups(&[1, 2]) {
            let mut cluster = line_cluster("    max_connection_distance: 2\n", 4, threads);
            assert!(cluster.set_walks(walks));
            train(&mut cluster, 0..60);
            cluster.ensure_feeds();
            let sources: Vec<usize> = cluster.scratch.feeds[2].iter().map(|f| f.source).collect();
            assert!(
                sources.contains(&0) && sources.contains(&1),
                "hexagon 2 is fed by the input and the hidden hexagon: {sources:?}"
            );
            batch_runs_rows(&mut cluster, &rows_of(5000..5400));
        }
    }

    #[test]
    fn neuron_states_go_on_from_group_to_group() {
        // A short cooldown and a long refractory time: what a hidden neuron does in a row
        // depends on the rows before it, also across the groups of a run.
        let settings = "    neuron_cooldown: 1.5\n    refractory_time: 3\n";
        // Pools of three threads and the caller's pool (0) take the groups in order too.
        for (threads, walks) in setups(&[1, 2, 3, 0]) {
            let mut cluster = cluster_with(settings, 5, threads);
            assert!(cluster.set_walks(walks));
            train(&mut cluster, 0..2000);
            batch_runs_rows(&mut cluster, &rows_of(7000..7300));
        }
    }

    #[test]
    fn rows_after_a_growing_row_take_the_walks_it_cut_short() {
        // After 40 samples many requests still grow the hidden hexagon.
        for (threads, walks) in setups(&[1, 2]) {
            let mut cluster = cluster(3, threads);
            assert!(cluster.set_walks(walks));
            train(&mut cluster, 0..40);
            let before = cluster.size().synapses;
            let twin = batch_is_steps(&mut cluster, &rows_of(5000..5400));
            assert!(
                twin.size().synapses > before,
                "the requests grew the network"
            );
            assert!(
                cluster.scratch.rows.carried_rows > 0,
                "{threads} threads, {walks:?} walks: no row took carried walks"
            );
        }
    }
}
