//! Processing cycles (spec §3–§6): the forward pass over the hexagons in template order, the
//! backward pass in reverse order, growth between them and reduction every 100 cycles.
//!
//! The neuron blocks of one hexagon are independent work units: a block writes only its own
//! neurons and connection blocks. What a block would write elsewhere (split requests and
//! error terms for source neurons, "something grew") goes into its [`BlockEvents`], which are
//! merged after the hexagon in ascending block order. So results are the same for any number
//! of threads, and equal to running the blocks one after another.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod backward;
mod exp;
mod forward;
mod growth;
mod log2;
mod output;
#[cfg(target_arch = "x86_64")]
mod planned;
mod reduction;
pub(crate) use reduction::CYCLES_BETWEEN_REDUCTIONS;
pub(crate) mod rows;
#[cfg(test)]
mod two_classes;
#[cfg(all(test, target_arch = "x86_64"))]
mod vector_tests;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::available as avx2_available;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::available as avx512_available;

use crate::cluster::{Cluster, Parallelism};
use crate::network::{
    Connection, ConnectionBlock, Hexagon, InputInterface, NEURONS_PER_BLOCK, Neuron,
    OutputInterface, SECTIONS_PER_BLOCK, Section, bit, bits,
};
use crate::pace::Work;
use crate::team::{Claims, Own};

/// Work for the calling thread in a training cycle once the cycle no longer reads the
/// interfaces' values: a training batch reads its next row into them there. It runs when the
/// calling thread has no walks of a parallel phase left to take, while the worker may still
/// walk (so the read fills the wait for it). It returns whether the next row is in the
/// interfaces and its training cycle comes next, whatever happens: the cycle may then start
/// the next one's forward pass in its own last phase (see [`Cluster::backward`]).
pub(crate) type InterfacesFree<'a> =
    &'a mut dyn FnMut(&mut [InputInterface], &mut [OutputInterface]) -> bool;

/// Read-only view of the neurons of every hexagon except the one being processed, for
/// looking up the source neuron of a section.
#[derive(Clone, Copy)]
pub(crate) struct Sources<'a> {
    before: &'a [Hexagon],
    after: &'a [Hexagon],
    /// Per hexagon, the potentials its input neurons had before the next row was injected
    /// (empty for the others): what a backward walk run after that injection reads.
    previous_row: &'a [Vec<f32>],
    /// Whether [`Sources::potential`] reads `previous_row`.
    of_previous_row: bool,
}

impl<'a> Sources<'a> {
    /// `before` and `after` are the hexagons on either side of the current one.
    fn new(before: &'a [Hexagon], after: &'a [Hexagon], previous_row: &'a [Vec<f32>]) -> Self {
        Sources {
            before,
            after,
            previous_row,
            of_previous_row: false,
        }
    }

    /// The same view with the input neurons' potentials of the row before the injected one,
    /// for sections whose sources are all input neurons.
    fn of_previous_row(self) -> Self {
        Sources {
            of_previous_row: true,
            ..self
        }
    }

    /// Whether hexagon `hexagon`'s potentials are those of this cycle already: it comes
    /// before the one being processed. (A later one's are still those of the previous cycle
    /// in the forward pass, and change before the backward pass.)
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn settled(&self, hexagon: u32) -> bool {
        (hexagon as usize) < self.before.len()
    }

    /// The potential of a section's source neuron.
    #[inline]
    fn potential(&self, hexagon: u32, index: u32) -> f32 {
        let h = hexagon as usize;
        if self.of_previous_row {
            return self.previous_row[h][index as usize];
        }
        let hexagon = if h < self.before.len() {
            &self.before[h]
        } else {
            // Sections never come from their own hexagon (checked on restore).
            &self.after[h - self.before.len() - 1]
        };
        hexagon.potentials[index as usize]
    }
}

/// A source neuron's request for a follow-up section, from the walk of the section in slot
/// `slot` of connection block `block` (the original's `isNew`, `newLowerBound`,
/// `potentialRange`). Every walked section of a source overwrites the request; walks that
/// request nothing are not recorded, the merge finds them (see
/// `Cluster::merge_split_requests`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitRequest {
    block: u32,
    slot: u32,
    hexagon: u32,
    neuron: u32,
    /// `(lower bound, range)` of the requested section.
    section: (f32, f32),
}

/// A section of a hexagon that a walk of this cycle changed: the section in slot `slot` of
/// connection block `block`, whose later walks may go differently from synapse slot `from` on
/// ([`forward::Walk::differs_from`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SectionChange {
    block: u32,
    slot: u32,
    from: u32,
}

/// The error terms of one section for its source neuron: the values before `end` (and after
/// the previous run's end) in [`BlockEvents::delta_values`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeltaRun {
    hexagon: u32,
    neuron: u32,
    end: usize,
    /// The run's terms added one by one to `+0.0`: what the source's delta becomes if it is
    /// `+0.0` before the run, as it is for a source's first run in a cycle.
    sum: f32,
}

/// What one block task leaves for the merge.
/// Aligned to two cache lines: blocks on different threads never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct BlockEvents {
    grew: bool,
    splits: Vec<SplitRequest>,
    /// The sections that the block's walks changed.
    changes: Vec<SectionChange>,
    delta_runs: Vec<DeltaRun>,
    delta_values: Vec<f32>,
}

impl BlockEvents {
    /// Records what the walk of slot `i` of connection block `c` changed: the follow-up
    /// section it asks for, if any, and whether its section changed.
    fn record_walk(&mut self, c: u32, i: usize, connection: &Connection, walk: &forward::Walk) {
        if let Some(from) = walk.differs_from() {
            self.changes.push(SectionChange {
                block: c,
                slot: i as u32,
                from: from as u32,
            });
        }
        if let Some(section) = walk.split {
            self.splits.push(SplitRequest {
                block: c,
                slot: i as u32,
                hexagon: connection.source_hexagon,
                neuron: connection.source_neuron,
                section,
            });
        }
    }

    /// Records the error terms appended since the previous run as the run of `connection`'s
    /// source, with their sum.
    fn record_run(&mut self, connection: &Connection, sum: f32) {
        self.delta_runs.push(DeltaRun {
            hexagon: connection.source_hexagon,
            neuron: connection.source_neuron,
            end: self.delta_values.len(),
            sum,
        });
    }

    fn clear(&mut self) {
        self.grew = false;
        self.splits.clear();
        self.changes.clear();
        self.delta_runs.clear();
        self.delta_values.clear();
    }
}

/// Buffers kept between cycles so that the hot path does not allocate.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    events: Vec<BlockEvents>,
    seeds: Vec<u32>,
    /// Input neurons that fire for the first time in this cycle.
    first_inputs: Vec<usize>,
    /// Source neurons whose section request a hexagon's walks may have changed.
    candidates: Vec<(u32, u32)>,
    /// The live sections of the hexagon being marked, one word per connection block.
    live: Vec<u64>,
    /// Per hexagon, its input neurons' potentials of the row before the injected one, kept
    /// while the backward walks of that row run after the injection (empty for the others).
    previous_row: Vec<Vec<f32>>,
    /// The hexagon up to which the next training cycle's forward pass has run already, in
    /// the last phase of the cycle before it.
    walked_ahead: Option<usize>,
    /// Per hexagon, where its sections come from; valid while `feeds_valid`.
    feeds: Vec<Vec<Feed>>,
    /// Cleared by every change of the section layout (growth, resizing, reduction).
    pub(crate) feeds_valid: bool,
    /// Per hexagon and neuron block, a running average of the live sections feeding the
    /// block: the order in which two threads take the blocks.
    loads: Vec<Vec<f32>>,
    /// The states of the rows of a request chunk.
    rows: rows::RowStates,
    /// Forward passes made so far (training and request cycles alike).
    forward_passes: u64,
    /// The sections that the walks of the latest forward pass changed, with their hexagons.
    changes: Vec<(usize, SectionChange)>,
    /// The rows of a request batch being run.
    pub(crate) chunk: rows::Chunk,
    /// The rows of a request batch read behind those of `chunk`.
    pub(crate) ahead: rows::Chunk,
}

/// The sections of one hexagon that are fed by the neurons of one source hexagon, as
/// `connection block · 64 + slot`. Almost every source neuron has one section there at most,
/// so each neuron's first section is found with one load.
#[derive(Debug, Default)]
struct Feed {
    source: usize,
    /// Per source neuron, the slot of its first section, or [`NO_SLOT`].
    first: Vec<u32>,
    /// The slots of the sections after each source neuron's first, with their neurons.
    more: Vec<(u32, u32)>,
}

/// A [`Feed::first`] of a source neuron without a section.
const NO_SLOT: u32 = u32::MAX;

impl Feed {
    /// Sets, in `live` (one word per connection block), the bits of the sections of the source
    /// neurons that are set in `active` (one word per neuron block of the source).
    #[inline]
    fn mark(&self, active: &[u64], live: &mut [u64]) {
        for (b, &word) in active.iter().enumerate() {
            for j in bits(word) {
                let slot = self.first[b * NEURONS_PER_BLOCK + j];
                if slot != NO_SLOT {
                    let slot = slot as usize;
                    live[slot / SECTIONS_PER_BLOCK] |= 1 << (slot % SECTIONS_PER_BLOCK);
                }
            }
        }
        for &(neuron, slot) in &self.more {
            let (on, slot) = (u64::from(bit(active, neuron as usize)), slot as usize);
            live[slot / SECTIONS_PER_BLOCK] |= on << (slot % SECTIONS_PER_BLOCK);
        }
    }
}

/// Where the sections of every hexagon come from, for finding the live ones from the active
/// neurons (a few hundred) rather than from the used slots (all of them).
fn build_feeds(hexagons: &[Hexagon]) -> Vec<Vec<Feed>> {
    let mut entries: Vec<(usize, u32, u32)> = Vec::new();
    hexagons
        .iter()
        .map(|hexagon| {
            entries.clear();
            for (c, block) in hexagon.blocks.iter().enumerate() {
                for i in bits(block.used) {
                    let connection = &block.connections[i];
                    entries.push((
                        connection.source_hexagon as usize,
                        connection.source_neuron,
                        (c * SECTIONS_PER_BLOCK + i) as u32,
                    ));
                }
            }
            entries.sort_unstable();
            entries
                .chunk_by(|a, b| a.0 == b.0)
                .map(|group| {
                    let source = group[0].0;
                    let mut feed = Feed {
                        source,
                        first: vec![NO_SLOT; hexagons[source].neurons.len()],
                        more: Vec::new(),
                    };
                    for &(_, neuron, slot) in group {
                        let first = &mut feed.first[neuron as usize];
                        if *first == NO_SLOT {
                            *first = slot;
                        } else {
                            feed.more.push((neuron, slot));
                        }
                    }
                    feed
                })
                .collect()
        })
        .collect()
}

/// Calls `visit` for every live section of a block task's connection blocks in processing
/// order (connection block, then slot), with the connection block's index in the hexagon,
/// the slot, the section's header and its synapses.
#[inline(always)]
fn for_each_live(
    blocks: &mut [ConnectionBlock],
    first_block: usize,
    mut visit: impl FnMut(u32, usize, &mut Connection, &mut Section),
) {
    for (k, block) in blocks.iter_mut().enumerate() {
        let Some(sections) = block.sections.as_deref_mut() else {
            continue;
        };
        for i in bits(block.live) {
            visit(
                (first_block + k) as u32,
                i,
                &mut block.connections[i],
                &mut sections[i],
            );
        }
    }
}

/// One neuron block with the connection blocks that feed it.
struct BlockTask<'a> {
    /// Index of `blocks[0]` in the hexagon's connection-block list.
    first_block: usize,
    blocks: &'a mut [ConnectionBlock],
    neurons: &'a mut [Neuron],
    potentials: &'a mut [f32],
    /// The block's neurons that own a section, as a bit mask.
    in_use: &'a u64,
    new_mask: &'a mut u64,
    /// The block's active neurons as a bit mask (written by the neuron update).
    active: &'a mut u64,
    events: &'a mut BlockEvents,
    seed: u32,
    /// The live words of `blocks` for the next cycle's forward walks, where the task runs
    /// them after this cycle's backward walks (else empty).
    ahead_live: &'a [u64],
}

/// What the block tasks of a phase run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forward walks (they draw a seed per block).
    Forward,
    /// Backward walks.
    Backward,
    /// The backward walks of this cycle, then the forward walks of the next one, whose
    /// input rows are injected and whose live sections are marked (in `Scratch::live`).
    BackwardThenForward,
}

impl Cluster {
    /// One training cycle on the values already in the interfaces, with `then` run once
    /// after their last use (see [`InterfacesFree`]).
    pub(crate) fn train_cycle(&mut self, then: InterfacesFree<'_>) {
        let timing = self.parallel.start(Work::Train);
        self.forward(true);
        self.backward(then);
        if self.settings.enable_reduction {
            self.reduction_counter += 1;
            if self.reduction_counter >= reduction::CYCLES_BETWEEN_REDUCTIONS {
                self.reduction_counter = 0;
                self.reduce();
            }
        }
        self.parallel.finish(timing, 1);
    }

    /// Whether a reduction follows the training cycle under way.
    fn reduces_after_this_cycle(&self) -> bool {
        self.settings.enable_reduction
            && self.reduction_counter + 1 >= reduction::CYCLES_BETWEEN_REDUCTIONS
    }

    /// One request cycle on the input values already in the interfaces.
    pub(crate) fn request_cycle(&mut self) {
        let timing = self.parallel.start(Work::Request);
        self.forward(false);
        self.parallel.finish(timing, 1);
    }

    /// Builds the index of where each hexagon's sections come from, if a change of the section
    /// layout made it stale.
    fn ensure_feeds(&mut self) {
        if !self.scratch.feeds_valid {
            self.scratch.feeds = build_feeds(&self.hexagons);
            self.scratch.feeds_valid = true;
        }
    }

    /// Marks the sections of hexagon `h` whose source is active as live
    /// (`ConnectionBlock::live`), for this cycle's walks, and updates the running load of its
    /// blocks.
    fn mark_live_sections(&mut self, h: usize) {
        self.find_live_sections(h);
        let live = &self.scratch.live;
        for (block, &live) in self.hexagons[h].blocks.iter_mut().zip(live.iter()) {
            block.live = live;
        }
    }

    /// Finds the sections of hexagon `h` whose source is active, one word per connection
    /// block in `Scratch::live`, and updates the running load of its blocks.
    fn find_live_sections(&mut self, h: usize) {
        self.ensure_feeds();
        let count = self.hexagons.len();
        let (before, rest) = self.hexagons.split_at(h);
        let (current, after) = rest.split_first().expect("hexagon index in range");
        // Gathered in a dense array: the blocks' `live` words lie far apart.
        let live = &mut self.scratch.live;
        live.clear();
        live.resize(current.blocks.len(), 0);
        let dim = current.dim;
        for feed in &self.scratch.feeds[h] {
            let source = if feed.source < h {
                &before[feed.source]
            } else {
                &after[feed.source - h - 1]
            };
            feed.mark(&source.active, live);
        }
        if let Parallelism::Pair { .. } = self.parallel {
            let loads = &mut self.scratch.loads;
            if loads.len() < count {
                loads.resize(count, Vec::new());
            }
            let loads = &mut loads[h];
            loads.resize(dim, 0.0);
            for (load, words) in loads.iter_mut().zip(live.chunks(dim.max(1))) {
                let live: u32 = words.iter().map(|word| word.count_ones()).sum();
                *load += (live as f32 - *load) / 64.0;
            }
        }
    }

    /// Splits hexagon `h` into per-block tasks for `phase`, runs `work` on each (in parallel
    /// when the cluster has threads), and leaves the events in block order. `then`, if given,
    /// runs on the calling thread once no task is left for it to take; its answer is returned
    /// (`false` without it).
    fn run_blocks<F>(
        &mut self,
        h: usize,
        phase: Phase,
        then: Option<InterfacesFree<'_>>,
        work: F,
    ) -> bool
    where
        F: Fn(&mut BlockTask<'_>, &Sources<'_>) + Sync,
    {
        let dim = self.hexagons[h].dim;
        let Scratch {
            events,
            seeds: seed_buffer,
            loads,
            live,
            previous_row,
            ..
        } = &mut self.scratch;
        if events.len() < dim {
            events.resize_with(dim, BlockEvents::default);
        }
        seed_buffer.clear();
        if phase != Phase::Backward {
            seed_buffer.extend((0..dim).map(|_| self.rng.rand()));
        } else {
            seed_buffer.resize(dim, 0);
        }
        let (before, rest) = self.hexagons.split_at_mut(h);
        let (current, after) = rest.split_first_mut().expect("hexagon index in range");
        let sources = Sources::new(before, after, previous_row);
        let ahead_live = (phase == Phase::BackwardThenForward).then_some(&live[..]);
        let all = Blocks {
            neurons: &mut current.neurons,
            potentials: &mut current.potentials,
            in_use: &current.in_use,
            blocks: &mut current.blocks,
            new_mask: &mut current.new_mask,
            active: &mut current.active,
            events: &mut events[..dim],
            seeds: &seed_buffer[..dim],
            ahead_live,
        };
        let mut tasks = all.tasks(dim);
        // Whoever is free takes the next block: the blocks' loads vary from sample to sample
        // (and a fixed split cannot balance four unequal blocks), so the big ones go first and
        // the small ones fill the gaps (stable: equal loads keep block order). Which thread
        // runs a block does not change what it computes.
        if let Some(loads) = loads.get(h).filter(|l| l.len() == dim) {
            tasks.sort_by(|a, b| loads[b.first_block / dim].total_cmp(&loads[a.first_block / dim]));
        }
        let work = |task: &mut BlockTask<'_>| work(task, &sources);
        match then {
            Some(then) => {
                let (inputs, outputs) = (&mut self.inputs, &mut self.outputs);
                let mut answer = false;
                let own = Own::Last(&mut || answer = then(inputs, outputs));
                self.parallel.for_each_with(&mut tasks, &work, own);
                answer
            }
            None => {
                self.parallel.for_each(&mut tasks, &work);
                false
            }
        }
    }
}

impl Parallelism {
    /// How many threads share the work.
    pub(crate) fn threads(&self) -> usize {
        match self {
            Parallelism::Sequential => 1,
            Parallelism::Pair { solo: true, .. } => 1,
            Parallelism::Pair { .. } => 2,
            Parallelism::Current => rayon::current_num_threads(),
            Parallelism::Pool(pool) => pool.current_num_threads(),
        }
    }

    /// Runs `work` once on every item, spread over the cluster's threads, which take the
    /// items in order.
    pub(crate) fn for_each<T: Send>(&mut self, items: &mut [T], work: &(dyn Fn(&mut T) + Sync)) {
        self.for_each_with(items, work, Own::Nothing);
    }

    /// As [`Parallelism::for_each`], with the calling thread's `own` work run once before it
    /// takes any item or once none is left to take, while a worker may take them.
    pub(crate) fn for_each_with<T: Send>(
        &mut self,
        items: &mut [T],
        work: &(dyn Fn(&mut T) + Sync),
        mut own: Own<'_>,
    ) {
        if let Parallelism::Pair {
            threads,
            solo: false,
            ..
        } = self
            && items.len() >= 2
        {
            let claims = Claims::new(items);
            threads.run(own, &|_| {
                while let Some(item) = claims.claim() {
                    work(item);
                }
            });
            return;
        }
        if let Own::First(first) = &mut own {
            first();
        }
        self.for_each_alone(items, work);
        if let Own::Last(last) = &mut own {
            last();
        }
    }

    /// [`Parallelism::for_each_with`] without the pair.
    fn for_each_alone<T: Send>(&mut self, items: &mut [T], work: &(dyn Fn(&mut T) + Sync)) {
        if items.len() < 2 {
            items.iter_mut().for_each(work);
            return;
        }
        match self {
            Parallelism::Sequential | Parallelism::Pair { .. } => {
                items.iter_mut().for_each(work);
            }
            // Every thread of the pool takes items in order, as the pair does: an item is taken
            // only once all before it are (a request batch's groups wait for earlier ones).
            Parallelism::Current | Parallelism::Pool(_) => {
                let claims = Claims::new(items);
                let take = |_: rayon::BroadcastContext<'_>| {
                    while let Some(item) = claims.claim() {
                        work(item);
                    }
                };
                match self {
                    Parallelism::Pool(pool) => pool.broadcast(take),
                    _ => rayon::broadcast(take),
                };
            }
        }
    }

    /// Whether [`Parallelism::for_each_with`] runs its `own` work while another thread takes
    /// items (the pair, sharing its cycles); else the work only runs first or last.
    pub(crate) fn overlaps_own_work(&self) -> bool {
        matches!(self, Parallelism::Pair { solo: false, .. })
    }
}

/// All neuron blocks of one hexagon with everything their tasks need.
struct Blocks<'a> {
    neurons: &'a mut [Neuron],
    potentials: &'a mut [f32],
    in_use: &'a [u64],
    blocks: &'a mut [ConnectionBlock],
    new_mask: &'a mut [u64],
    active: &'a mut [u64],
    events: &'a mut [BlockEvents],
    seeds: &'a [u32],
    /// The live words of every connection block for the next cycle's forward walks, in a
    /// [`Phase::BackwardThenForward`].
    ahead_live: Option<&'a [u64]>,
}

impl<'a> Blocks<'a> {
    /// One task per block.
    fn tasks(self, dim: usize) -> Vec<BlockTask<'a>> {
        let ahead_live = self.ahead_live;
        self.neurons
            .chunks_mut(NEURONS_PER_BLOCK)
            .zip(self.potentials.chunks_mut(NEURONS_PER_BLOCK))
            .zip(self.in_use.iter())
            .zip(self.blocks.chunks_mut(dim))
            .zip(self.new_mask.iter_mut())
            .zip(self.active.iter_mut())
            .zip(self.events.iter_mut())
            .zip(self.seeds.iter())
            .enumerate()
            .map(
                |(
                    b,
                    (
                        ((((((neurons, potentials), in_use), blocks), new_mask), active), events),
                        &seed,
                    ),
                )| {
                    events.clear();
                    let ahead_live =
                        ahead_live.map_or(&[][..], |live| &live[b * dim..(b + 1) * dim]);
                    BlockTask {
                        first_block: b * dim,
                        blocks,
                        neurons,
                        potentials,
                        in_use,
                        new_mask,
                        active,
                        events,
                        seed,
                        ahead_live,
                    }
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::two_classes::{cluster, train};
    use crate::network::{bit, bits};

    /// The sections marked live through the feeds are exactly the used ones whose source
    /// neuron is active, also where a source has several sections in one hexagon.
    #[test]
    fn marked_sections_are_those_of_active_sources() {
        let mut cluster = cluster(3, 1);
        train(&mut cluster, 0..20);
        // Follow-up sections of the input neurons, for higher potentials.
        for neuron in 0..8 {
            cluster.create_section(0, neuron, 0.5, 0.5);
        }
        cluster.ensure_feeds();
        let mut feeds = cluster.scratch.feeds.iter().flatten();
        assert!(
            feeds.any(|feed| !feed.more.is_empty()),
            "a source with two sections"
        );
        let mut marked = 0;
        for round in 1..20 {
            train(&mut cluster, round * 20..(round + 1) * 20);
            for h in 0..cluster.hexagons.len() {
                if cluster.hexagons[h].is_input {
                    continue;
                }
                cluster.mark_live_sections(h);
                for block in &cluster.hexagons[h].blocks {
                    let active = bits(block.used).filter(|&i| {
                        let connection = &block.connections[i];
                        let source = &cluster.hexagons[connection.source_hexagon as usize];
                        bit(&source.active, connection.source_neuron as usize)
                    });
                    let expected = active.fold(0u64, |live, i| live | 1 << i);
                    assert_eq!(block.live, expected, "hexagon {h} after {round} rounds");
                    marked += expected.count_ones();
                }
            }
        }
        assert!(marked > 0, "some sections are live");
    }
}
