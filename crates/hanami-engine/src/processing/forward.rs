//! The forward pass (spec §3): input injection, the synapse-section walk with growth, and the
//! update of hidden neurons.

use super::log2::log2;
use super::output::output_potentials;
use super::rows::RowSources;
use super::{BlockTask, Phase, Sources, for_each_live};
use crate::cluster::{Cluster, Walks};
use crate::network::Hexagon;
use crate::network::{
    Connection, ConnectionBlock, NEURONS_PER_BLOCK, Neuron, SYNAPSES_PER_SECTION, Section,
    WALK_THRESHOLD, bits, passes,
};
use crate::rng::{RAND_MAX_F32, pcg_hash};

/// Neuron-update constants of one cluster.
pub(super) struct NeuronParams {
    pub(super) cooldown: f32,
    pub(super) refractory_time: u32,
    /// The original's `potentialOverflow`, fixed at 1.0.
    pub(super) overflow: f32,
}

impl NeuronParams {
    /// The constants of `cluster`'s settings.
    pub(super) fn of(cluster: &Cluster) -> NeuronParams {
        NeuronParams {
            cooldown: cluster.settings.neuron_cooldown,
            refractory_time: cluster.settings.refractory_time,
            overflow: 1.0,
        }
    }
}

impl Cluster {
    /// Runs the forward pass over all hexagons in template order. `train` enables output
    /// target sampling and the structural update at the end.
    pub(crate) fn forward(&mut self, train: bool) {
        let growth = train || self.settings.request_growth;
        let last = self.hexagons.len() - 1;
        let first = match self.scratch.walked_ahead.take() {
            Some(h) => {
                debug_assert!(train, "only a training cycle is walked ahead");
                h + 1
            }
            None => {
                self.start_forward();
                0
            }
        };
        for h in first..self.hexagons.len() {
            if let Some(input) = self.hexagons[h].input {
                self.inject(h, input, growth);
            }
            let hexagon = &self.hexagons[h];
            let output = hexagon.output;
            if hexagon.neurons.is_empty() {
                // Nothing reached the output hexagon yet: the outputs are 0 (spec §11.1 B18).
                if let Some(o) = output {
                    self.outputs[o].values.fill(0.0);
                }
            } else {
                if !hexagon.is_input {
                    self.forward_hexagon(h, growth);
                }
                if let Some(o) = output {
                    self.process_output(h, o, train);
                }
            }
            if h == last && train {
                self.structural_update();
            }
        }
        self.creation_enabled = false;
    }

    /// The bookkeeping at the start of a forward pass.
    pub(super) fn start_forward(&mut self) {
        self.scratch.forward_passes += 1;
        self.scratch.changes.clear();
    }

    /// Whether the values of input interface `input` would make a neuron of hexagon `h` fire
    /// for the first time (it would get its first section when they are injected).
    pub(super) fn fires_first_time(&self, h: usize, input: usize) -> bool {
        let hexagon = &self.hexagons[h];
        self.inputs[input]
            .values
            .chunks(NEURONS_PER_BLOCK)
            .zip(&hexagon.in_use)
            .any(|(values, &in_use)| fired(self.walks, values) & !in_use != 0)
    }

    /// Writes the values of input interface `input` into hexagon `h` (only its own hexagon,
    /// spec §11.1 B6). An input that fires for the first time gets its first section.
    pub(super) fn inject(&mut self, h: usize, input: usize, growth: bool) {
        let mut first_time = std::mem::take(&mut self.scratch.first_inputs);
        first_time.clear();
        let values = &self.inputs[input].values;
        let walks = self.walks;
        let hexagon = &mut self.hexagons[h];
        for (b, (potentials, values)) in hexagon
            .potentials
            .chunks_mut(NEURONS_PER_BLOCK)
            .zip(values.chunks(NEURONS_PER_BLOCK))
            .enumerate()
        {
            let active = inject_block(walks, potentials, &mut hexagon.active[b], values);
            let mut first = active & !hexagon.in_use[b];
            while first != 0 {
                first_time.push(b * NEURONS_PER_BLOCK + first.trailing_zeros() as usize);
                first &= first - 1;
            }
        }
        if growth {
            // Creating a section changes no input neuron but the one it is for, so creating
            // them after the loop, in the same order, is the same as creating them inside it.
            for &k in &first_time {
                self.create_section(h, k, 0.0, f32::MAX);
            }
        }
        self.scratch.first_inputs = first_time;
    }

    /// Walks all sections feeding hexagon `h` and updates its neurons if it is hidden.
    fn forward_hexagon(&mut self, h: usize, growth: bool) {
        let step = ForwardStep::of(self, h, growth);
        self.mark_live_sections(h);
        self.run_blocks(h, Phase::Forward, None, |task, sources| {
            step.run(task, sources);
        });
        self.forward_walked(h, growth);
    }

    /// What follows the forward walks of hexagon `h`: the events of its blocks are merged.
    pub(super) fn forward_walked(&mut self, h: usize, growth: bool) {
        let dim = self.hexagons[h].dim;
        for events in &self.scratch.events[..dim] {
            self.creation_enabled |= events.grew;
            self.scratch
                .changes
                .extend(events.changes.iter().map(|&change| (h, change)));
        }
        if growth {
            self.merge_split_requests(h);
        }
    }

    /// Applies the section requests of hexagon `h`'s walks, as if every walked section had
    /// written its source's request in processing order (spec §3.3: the last one wins, and a
    /// walk without a request clears it).
    ///
    /// Requests are rare, so walks record only the requests they make. A source's request
    /// can change only if it makes one here, or if it has one already; for those few sources
    /// the last walked section is looked up.
    fn merge_split_requests(&mut self, h: usize) {
        let dim = self.hexagons[h].dim;
        let mut candidates = std::mem::take(&mut self.scratch.candidates);
        candidates.clear();
        for events in &self.scratch.events[..dim] {
            candidates.extend(events.splits.iter().map(|s| (s.hexagon, s.neuron)));
        }
        for (sh, hexagon) in self.hexagons.iter().enumerate() {
            if sh == h {
                continue;
            }
            for (b, &word) in hexagon.new_mask.iter().enumerate() {
                // Only a neuron with sections that fired was walked.
                let mut mask = word & hexagon.in_use[b] & hexagon.active[b];
                while mask != 0 {
                    let index = b * NEURONS_PER_BLOCK + mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    candidates.push((sh as u32, index as u32));
                }
            }
        }
        if !candidates.is_empty() {
            candidates.sort_unstable();
            candidates.dedup();
            for &(sh, index) in &candidates {
                let Some((c, i)) = last_walked_section(&self.hexagons[h], sh, index) else {
                    continue;
                };
                let request = self.scratch.events[c / dim]
                    .splits
                    .iter()
                    .find(|s| s.block as usize == c && s.slot as usize == i)
                    .map(|s| s.section);
                let source = &mut self.hexagons[sh as usize];
                let index = index as usize;
                let bit = 1u64 << (index % NEURONS_PER_BLOCK);
                let word = &mut source.new_mask[index / NEURONS_PER_BLOCK];
                match request {
                    Some((lower, range)) => {
                        *word |= bit;
                        let neuron = &mut source.neurons[index];
                        neuron.new_lower_bound = lower;
                        neuron.potential_range = range;
                    }
                    None => *word &= !bit,
                }
            }
        }
        self.scratch.candidates = candidates;
    }
}

/// The last section (in processing order) of hexagon `hexagon` that was walked in this cycle
/// and belongs to neuron `index` of hexagon `source`, as `(connection block, slot)`.
fn last_walked_section(hexagon: &Hexagon, source: u32, index: u32) -> Option<(usize, usize)> {
    hexagon
        .blocks
        .iter()
        .enumerate()
        .rev()
        .find_map(|(c, block)| {
            let mut live = block.live;
            let mut last = None;
            while live != 0 {
                let i = live.trailing_zeros() as usize;
                live &= live - 1;
                let connection = &block.connections[i];
                if connection.source_hexagon == source && connection.source_neuron == index {
                    last = Some((c, i));
                }
            }
            last
        })
}

/// What the forward walks of one block of a hexagon do, with the cluster's settings and
/// the hexagon's growth flag at the start of its walks.
pub(super) struct ForwardStep {
    walks: Walks,
    growth: bool,
    creation_enabled: bool,
    hidden: bool,
    params: NeuronParams,
}

impl ForwardStep {
    /// The step for hexagon `h` of `cluster` as its walks start now.
    pub(super) fn of(cluster: &Cluster, h: usize, growth: bool) -> ForwardStep {
        ForwardStep {
            walks: cluster.walks,
            growth,
            creation_enabled: cluster.creation_enabled,
            hidden: !cluster.hexagons[h].is_output,
            params: NeuronParams::of(cluster),
        }
    }

    /// Walks the live sections of one block and updates its neurons (hidden hexagons) or
    /// computes their potentials (output hexagons).
    pub(super) fn run(&self, task: &mut BlockTask<'_>, sources: &Sources<'_>) {
        let (walks, growth, creation_enabled) = (self.walks, self.growth, self.creation_enabled);
        match walks {
            // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
            #[cfg(target_arch = "x86_64")]
            Walks::Avx512 => unsafe {
                super::avx512::process_synapses(task, sources, growth, creation_enabled)
            },
            // SAFETY: chosen only where the CPU has AVX2 (`Walks::runs_here`).
            #[cfg(target_arch = "x86_64")]
            Walks::Avx2 => unsafe {
                super::avx2::process_synapses(task, sources, growth, creation_enabled)
            },
            Walks::Portable => process_synapses(task, sources, growth, creation_enabled),
        }
        if self.hidden {
            *task.active = update_neurons(
                walks,
                task.neurons,
                task.potentials,
                *task.in_use,
                task.new_mask,
                &self.params,
            );
        } else {
            output_potentials(walks, task.neurons, task.potentials);
        }
    }
}

/// The bits of the input `values` (at most one block's) that fire, found with vector
/// compares where the walks are vector ones.
fn fired(walks: Walks, values: &[f32]) -> u64 {
    match walks {
        // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
        #[cfg(target_arch = "x86_64")]
        Walks::Avx512 => unsafe { super::avx512::positive_bits(values) },
        // SAFETY: chosen only where the CPU has AVX2 (`Walks::runs_here`).
        #[cfg(target_arch = "x86_64")]
        Walks::Avx2 => unsafe { super::avx2::positive_bits(values) },
        Walks::Portable => values
            .iter()
            .enumerate()
            .fold(0u64, |m, (j, &value)| m | (u64::from(value > 0.0) << j)),
    }
}

/// Writes the input `values` into the first neurons of one block of an input hexagon (their
/// `potentials` and `active` bits; neurons beyond the interface keep their state) and returns
/// the bits of those that fire.
pub(super) fn inject_block(
    walks: Walks,
    potentials: &mut [f32],
    active: &mut u64,
    values: &[f32],
) -> u64 {
    potentials[..values.len()].copy_from_slice(values);
    let fired = fired(walks, values);
    *active = (*active & !crate::network::low_bits(values.len())) | fired;
    fired
}

/// Walks every used section of the block whose source fired (spec §3.3).
///
/// `creation_enabled` is the cluster's growth flag as it was when the hexagon started; growth
/// inside this block also enables it for the block's later sections.
fn process_synapses(
    task: &mut BlockTask<'_>,
    sources: &Sources<'_>,
    growth: bool,
    creation_enabled: bool,
) {
    let mut seed = task.seed;
    let mut grew = false;
    let targets: &mut [Neuron; NEURONS_PER_BLOCK] = task
        .neurons
        .try_into()
        .expect("a neuron block has 64 neurons");
    // The block's inputs in a dense array: the walks add to them in synapse order.
    let mut inputs: [f32; NEURONS_PER_BLOCK] = std::array::from_fn(|j| targets[j].input);
    let events = &mut *task.events;
    for_each_live(
        task.blocks,
        task.first_block,
        |c, i, connection, section| {
            let potential = sources.potential(connection.source_hexagon, connection.source_neuron);
            seed = seed.wrapping_add(c * 64 + i as u32);
            let able = growth && (connection.from_input || creation_enabled || grew);
            let walk = walk_section(section, connection, &mut inputs, potential, able, &mut seed);
            grew |= walk.grew();
            events.record_walk(c, i, connection, &walk);
        },
    );
    for (target, &input) in targets.iter_mut().zip(&inputs) {
        target.input = input;
    }
    events.grew = grew;
}

/// The forward walks of one block for a request that leaves the network as it is: `blocks`
/// are the block's connection blocks, `live` their live sections for this row, and the
/// sources' potentials are the row's. Adds every walk to `inputs` and returns `true`, or
/// returns `false` as soon as a walk would grow (then `inputs` is incomplete).
pub(super) fn walk_block_frozen(
    blocks: &[ConnectionBlock],
    live: &[u64],
    sources: &RowSources<'_>,
    growth: bool,
    inputs: &mut [f32; NEURONS_PER_BLOCK],
) -> bool {
    for (block, &live) in blocks.iter().zip(live) {
        let Some(sections) = block.sections.as_deref() else {
            continue;
        };
        for i in bits(live) {
            let connection = &block.connections[i];
            let potential = sources.potential(connection.source_hexagon, connection.source_neuron);
            // Nothing has grown in this cycle, so only sections of input neurons may grow.
            let able = growth && connection.from_input;
            if walk_until_growth(&sections[i], connection, inputs, potential, able).is_err() {
                return false;
            }
        }
    }
    true
}

/// What a section walk changed.
pub(super) struct Walk {
    /// The first synapse slot that a border split or a new synapse changed, if any.
    pub(super) changed_from: Option<usize>,
    /// `(lower bound, range)` of the section the source should get next (the walk's own
    /// section then keeps a smaller range).
    pub(super) split: Option<(f32, f32)>,
}

impl Walk {
    /// A walk without growth.
    const PLAIN: Walk = Walk {
        changed_from: None,
        split: None,
    };

    /// A synapse was created or split.
    pub(super) fn grew(&self) -> bool {
        self.changed_from.is_some()
    }

    /// The first synapse slot from which a later walk of the section may go differently:
    /// where a synapse changed, or 0 where the section's range shrank; `None` if the walk
    /// changed nothing.
    pub(super) fn differs_from(&self) -> Option<usize> {
        if self.split.is_some() {
            Some(0)
        } else {
            self.changed_from
        }
    }
}

/// The walk threshold in `f64`, for comparisons with the exact remaining potential.
pub(super) const THRESHOLD: f64 = WALK_THRESHOLD as f64;

/// The section walk (spec §3.3): each synapse consumes its border of the remaining potential
/// and passes its weight, in part if the potential ends inside its border. `able` sections
/// split borders, append a synapse when the chain is too short for the potential, and ask
/// for a follow-up section when the potential outlasts all 64 synapses.
#[inline]
fn walk_section(
    section: &mut Section,
    connection: &mut Connection,
    inputs: &mut [f32; NEURONS_PER_BLOCK],
    potential: f32,
    able: bool,
    seed: &mut u32,
) -> Walk {
    match walk_until_growth(section, connection, inputs, potential, able) {
        Ok(()) => Walk::PLAIN,
        Err(at) => walk_growing(section, connection, inputs, at.start, at.pos, seed),
    }
}

/// Where an `able` walk grows: the synapses before `pos` have passed, and `start` is the
/// clamped potential the walk began with.
pub(super) struct GrowsAt {
    start: f64,
    pos: usize,
}

/// The section walk up to where an `able` walk would grow (split a border, append a synapse
/// or ask for a follow-up section); walks that do not grow finish here, and the section is
/// not changed.
///
/// The remaining potential after synapse `k` is `r − ends[k]`, exact in `f64`, where the
/// original subtracts the borders one by one in `f32` (see `docs/compatibility.md`). So the
/// walk has no dependency from one synapse to the next but the position, and the CPU runs
/// ahead through the arrays. Walks with growth (rare) finish in [`walk_growing`].
#[inline]
pub(super) fn walk_until_growth(
    section: &Section,
    connection: &Connection,
    inputs: &mut [f32; NEURONS_PER_BLOCK],
    potential: f32,
    able: bool,
) -> Result<(), GrowsAt> {
    let mut remaining = potential - connection.lower_bound;
    if remaining > connection.range {
        remaining = connection.range;
    }
    if remaining <= WALK_THRESHOLD {
        return Ok(());
    }
    let start = f64::from(remaining);
    let threshold = start - THRESHOLD;
    let len = usize::from(connection.len);
    // Synapses after which more than the threshold is left pass fully.
    let mut reach = len;
    for (k, ((&end, &target), &weight)) in section.ends[..len]
        .iter()
        .zip(&section.target[..len])
        .zip(&section.weight[..len])
        .enumerate()
    {
        if !passes(end, threshold) {
            reach = k;
            break;
        }
        inputs[target_index(target)] += weight;
    }
    if reach < len {
        // The signal ends in synapse `reach`: fully if what is left after it is not
        // negative, else in part.
        let (value, split) = last_synapse(section, reach, start, connection.tolerance);
        if able && split {
            return Err(GrowsAt { start, pos: reach });
        }
        inputs[target_index(section.target[reach])] += value;
        Ok(())
    } else if able {
        // The signal outlasts the chain: a synapse is appended or a section requested.
        Err(GrowsAt { start, pos: len })
    } else {
        Ok(())
    }
}

/// Whether a walk of `potential` through `section` may read synapse slot `slot` (or grow
/// there): it starts, and every synapse before `slot` leaves more than the walk threshold, as
/// in [`walk_until_growth`]. For slot 0 the section's range is not applied, so that the answer
/// also holds for the larger range the section had before a follow-up section was requested.
pub(super) fn walk_reaches(
    section: &Section,
    connection: &Connection,
    potential: f32,
    slot: usize,
) -> bool {
    let mut remaining = potential - connection.lower_bound;
    if slot > 0 && remaining > connection.range {
        remaining = connection.range;
    }
    if remaining <= WALK_THRESHOLD {
        return false;
    }
    let threshold = f64::from(remaining) - THRESHOLD;
    section.ends[..slot.min(SYNAPSES_PER_SECTION)]
        .iter()
        .all(|&end| passes(end, threshold))
}

/// Whether a signal that ends `remaining` into a synapse of `border` splits it (spec §3.3).
#[inline]
pub(super) fn in_split_window(remaining: f32, border: f32, tolerance: f32) -> bool {
    remaining < (0.5 + tolerance) * border && remaining > (0.5 - tolerance) * border
}

/// The rest of an `able` section walk from position `pos` on, one synapse at a time, with
/// border splits, synapse creation and section requests; the synapses before `pos` have
/// passed fully and left more than the threshold. Same arithmetic as [`walk_section`];
/// `start` is the clamped potential.
#[cold]
pub(super) fn walk_growing(
    section: &mut Section,
    connection: &mut Connection,
    inputs: &mut [f32; NEURONS_PER_BLOCK],
    start: f64,
    mut pos: usize,
    seed: &mut u32,
) -> Walk {
    let len = usize::from(connection.len);
    let threshold = start - THRESHOLD;
    let mut changed_from = None;
    // The border sum of the first 32 synapses walked, as the original sums it.
    let mut half = 0.0f32;
    for &border in &section.border[..pos.min(SYNAPSES_PER_SECTION / 2)] {
        half += border;
    }
    // The potential left before synapse `pos`, and whether it exceeds the threshold.
    let mut before = if pos == 0 {
        start
    } else {
        start - section.ends[pos - 1]
    };
    let mut going = true;
    while pos < len {
        let mut border = section.border[pos];
        let mut end = section.ends[pos];
        let mut partial = end > start;
        if partial {
            let tolerance = connection.tolerance;
            if in_split_window(before as f32, border, tolerance) {
                // Border split: finer granularity where signals end.
                border /= 1.5;
                section.border[pos] = border;
                section.weight[pos] /= 1.5;
                section.update_ends(len);
                connection.tolerance = tolerance / 1.2;
                changed_from = changed_from.or(Some(pos));
                end = section.ends[pos];
                partial = end > start;
            }
        }
        if pos < SYNAPSES_PER_SECTION / 2 {
            half += border;
        }
        let target = target_index(section.target[pos]);
        if partial {
            inputs[target] += section.weight[pos] * ((1.0 / border) * before as f32);
            going = false;
            break;
        }
        inputs[target] += section.weight[pos];
        before = start - end;
        pos += 1;
        if !passes(end, threshold) {
            going = false;
            break;
        }
    }
    if going && len < SYNAPSES_PER_SECTION {
        // The chain is too short: a new synapse takes all that is left and passes fully.
        let border = before as f32;
        create_synapse(section, pos, border, seed);
        section.update_ends(pos + 1);
        connection.len += 1;
        changed_from = changed_from.or(Some(pos));
        if pos < SYNAPSES_PER_SECTION / 2 {
            half += border;
        }
        inputs[target_index(section.target[pos])] += section.weight[pos];
        going = false;
    }
    let split = if going {
        let next = (connection.lower_bound + half, connection.range - half);
        connection.range = half;
        Some(next)
    } else {
        None
    };
    Walk {
        changed_from,
        split,
    }
}

/// Index of a set synapse's target; the mask (a no-op, targets are below 64) lets the compiler
/// drop the bounds check in the walks.
#[inline]
pub(super) fn target_index(target: u8) -> usize {
    usize::from(target) & (NEURONS_PER_BLOCK - 1)
}

/// What synapse `at` adds to its target where a signal that started at `start` ends there
/// (all of its weight if the synapse's end lies within the start, else the share of its
/// border that the signal had left ahead of it), and whether a growing walk would split the
/// synapse there (callers ignore that where the walk may not grow).
#[inline]
pub(super) fn last_synapse(
    section: &Section,
    at: usize,
    start: f64,
    tolerance: f32,
) -> (f32, bool) {
    // Read in range whatever `at` is, so that no branch waits for the load.
    let previous = section.ends[at.max(1) - 1];
    let before = (if at == 0 { start } else { start - previous }) as f32;
    let partial = section.ends[at] > start;
    let border = section.border[at];
    let weight = section.weight[at];
    let fraction = weight * ((1.0 / border) * before);
    let split = partial & in_split_window(before, border, tolerance);
    (if partial { fraction } else { weight }, split)
}

/// Sets position `pos` of `section` to a new synapse that consumes all of `border`, with a
/// random target in the block and a random weight in `±[0, 0.2]`, drawn from the block's
/// `pcg` chain. The caller updates `ends`.
fn create_synapse(section: &mut Section, pos: usize, border: f32, seed: &mut u32) {
    section.border[pos] = border;
    section.counter[pos] = 5;
    section.unsettled |= 1 << pos;
    *seed = pcg_hash(*seed);
    section.target[pos] = (*seed % NEURONS_PER_BLOCK as u32) as u8;
    *seed = pcg_hash(*seed);
    let mut weight = (*seed as f32 / RAND_MAX_F32) / 10.0;
    *seed = pcg_hash(*seed);
    if *seed % 1000 < 500 {
        weight = -weight;
    }
    section.weight[pos] = weight;
}

/// Updates the hidden neurons of one block (spec §3.4): cooldown, refractory countdown,
/// `log2(1 + x)` activation, and the request bits for neurons that fired for the first time.
/// Returns the active neurons as a bit mask; `in_use` is the block's bit set of neurons that
/// own a section. With vector walks the update runs sixteen neurons at a time (same bits).
pub(super) fn update_neurons(
    walks: Walks,
    neurons: &mut [Neuron],
    potentials: &mut [f32],
    in_use: u64,
    new_mask: &mut u64,
    params: &NeuronParams,
) -> u64 {
    let active = match walks {
        // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
        #[cfg(target_arch = "x86_64")]
        Walks::Avx512 => unsafe { super::avx512::update_neurons(neurons, potentials, params) },
        // The portable code, also with the AVX2 walks (which vectorise only the walks).
        _ => update_block(neurons, potentials, params),
    };
    *new_mask = active & !in_use;
    active
}

/// The neuron update of [`update_neurons`] for a block held as separate values (the rows of
/// a request batch, which keep no neuron records): the summed `inputs`, the refractory
/// countdowns and the potentials. Returns the active neurons as a bit mask; unlike
/// [`update_neurons`] it leaves no section requests (such rows do not grow).
pub(super) fn update_values(
    walks: Walks,
    inputs: &[f32; NEURONS_PER_BLOCK],
    refractory: &mut [u32; NEURONS_PER_BLOCK],
    potentials: &mut [f32; NEURONS_PER_BLOCK],
    params: &NeuronParams,
) -> u64 {
    match walks {
        // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
        #[cfg(target_arch = "x86_64")]
        Walks::Avx512 => unsafe {
            super::avx512::update_values(inputs, refractory, potentials, params)
        },
        #[cfg(target_arch = "x86_64")]
        Walks::Avx2 => {
            // SAFETY: chosen only where the CPU has AVX2 (`Walks::runs_here`).
            let active =
                unsafe { super::avx2::update_values(inputs, refractory, potentials, params) };
            log2_fired(potentials, active);
            active
        }
        Walks::Portable => {
            let mut active = 0u64;
            let neurons = potentials.iter_mut().zip(refractory.iter_mut()).zip(inputs);
            for (j, ((potential, refractory), &input)) in neurons.enumerate() {
                active |= u64::from(update_one(potential, refractory, input, params)) << j;
            }
            log2_fired(potentials, active);
            active
        }
    }
}

/// The neuron update of [`update_neurons`], one neuron after another.
fn update_block(neurons: &mut [Neuron], potentials: &mut [f32], params: &NeuronParams) -> u64 {
    let mut active = 0u64;
    for (j, (neuron, potential)) in neurons.iter_mut().zip(potentials.iter_mut()).enumerate() {
        active |= u64::from(update_one(
            potential,
            &mut neuron.refractory,
            neuron.input,
            params,
        )) << j;
        neuron.input = 0.0;
        neuron.delta = 0.0;
        neuron.new_lower_bound = 0.0;
        neuron.potential_range = f32::MAX;
    }
    log2_fired(potentials, active);
    active
}

/// The update of one neuron from its potential, refractory countdown and summed `input`,
/// before the activation's logarithm: the potential becomes `p + 1` if the neuron fired, else
/// 0. Returns whether it fired. Branch-free: whether a neuron fires depends on the data, and
/// a branch on it mispredicts often.
#[inline]
fn update_one(
    potential: &mut f32,
    refractory: &mut u32,
    input: f32,
    params: &NeuronParams,
) -> bool {
    let mut p = *potential / params.cooldown;
    let countdown = refractory.saturating_sub(1);
    let ready = countdown == 0;
    // Adding +0.0 instead leaves every value but −0.0, which does not fire either way.
    p += if ready { params.overflow * input } else { 0.0 };
    *refractory = if ready {
        params.refractory_time
    } else {
        countdown
    };
    let fired = p > 0.0;
    *potential = if fired { p + 1.0 } else { 0.0 };
    fired
}

/// The activation's logarithm for the neurons in `active`, after the update.
fn log2_fired(potentials: &mut [f32], active: u64) {
    for j in bits(active) {
        potentials[j] = log2(potentials[j]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last synapse of a walk, on values whose arithmetic is exact: borders 2, 4, 8
    /// (ends 2, 6, 14) and weights 0.5, −1, 3; every walk (portable, planned, lane walks)
    /// takes it from here.
    #[test]
    fn the_last_synapse_adds_its_share_and_may_split() {
        let mut section = Section::UNSET;
        section.border[..3].copy_from_slice(&[2.0, 4.0, 8.0]);
        section.weight[..3].copy_from_slice(&[0.5, -1.0, 3.0]);
        section.update_ends(3);
        // Ends inside synapse 2 with 4 of its 8 left: half its weight; the middle of the
        // border lies in a split window of any tolerance above 0.
        assert_eq!(last_synapse(&section, 2, 10.0, 0.1), (1.5, true));
        assert_eq!(last_synapse(&section, 2, 10.0, 0.0), (1.5, false));
        // Ends inside synapse 2 off its middle: 3 of 8 left.
        assert_eq!(last_synapse(&section, 2, 9.0, 0.1), (1.125, false));
        // Ends exactly where synapse 2 ends: all of its weight, nothing to split.
        assert_eq!(last_synapse(&section, 2, 14.0, 0.4), (3.0, false));
        // Ends inside the first synapse: the start is what is left ahead of it.
        assert_eq!(last_synapse(&section, 0, 1.0, 0.1), (0.25, true));
        // Inside synapse 1, with 3 of its 4 left (the end of synapse 0 counts).
        assert_eq!(last_synapse(&section, 1, 5.0, 0.1), (-0.75, false));
    }

    /// Where a later walk of a changed section may go differently (for the walks that request
    /// batches carry over a growing row): from the changed synapse, or from the start where
    /// the section's range shrank; and whether a walk reaches such a slot.
    #[test]
    fn walks_say_where_they_changed_and_which_walks_reach_there() {
        let changed = Walk {
            changed_from: Some(5),
            split: None,
        };
        assert_eq!(changed.differs_from(), Some(5));
        let shrunk = Walk {
            changed_from: Some(5),
            split: Some((1.0, 2.0)),
        };
        assert_eq!(shrunk.differs_from(), Some(0));
        assert_eq!(Walk::PLAIN.differs_from(), None);

        // Three synapses of border 10: ends at 10, 20 and 30.
        let mut section = Section::UNSET;
        section.border[..3].fill(10.0);
        section.update_ends(3);
        let connection = Connection {
            len: 3,
            range: 15.0,
            ..Connection::default()
        };
        // The potential is clamped to the range (15): synapse 0 passes, the walk ends in 1.
        assert!(walk_reaches(&section, &connection, 25.0, 1));
        assert!(!walk_reaches(&section, &connection, 25.0, 2));
        // Slot 0 disregards the range: a range that shrank to almost nothing leaves a walk
        // that used to start.
        let narrow = Connection {
            range: WALK_THRESHOLD / 2.0,
            ..connection
        };
        assert!(walk_reaches(&section, &narrow, 25.0, 0));
        assert!(!walk_reaches(&section, &narrow, 25.0, 1));
        // A source at or below the threshold drives nothing.
        assert!(!walk_reaches(&section, &connection, WALK_THRESHOLD, 0));
    }

    #[test]
    fn injection_marks_the_same_neurons_with_either_walks() {
        let pattern = [0.0, -0.0, 3.0, -2.0, 1e-40, f32::MAX, 0.5, -1e-40];
        for len in [0, 1, 7, 15, 16, 17, 33, 48, 63, 64] {
            let values: Vec<f32> = (0..len).map(|j| pattern[(j * 5) % pattern.len()]).collect();
            let inject = |walks| {
                let mut potentials = [7.0f32; NEURONS_PER_BLOCK];
                let mut active = u64::MAX;
                let fired = inject_block(walks, &mut potentials, &mut active, &values);
                (fired, active, potentials)
            };
            let portable = inject(Walks::Portable);
            for walks in Walks::supported() {
                assert_eq!(portable, inject(walks), "{len} values, {walks:?} walks");
            }
            let expected = values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .fold(0u64, |m, (j, _)| m | 1 << j);
            assert_eq!(portable.0, expected);
        }
    }

    #[test]
    fn neuron_update_matches_the_update_with_branches() {
        let params = NeuronParams {
            cooldown: 1.5,
            refractory_time: 2,
            overflow: 1.0,
        };
        let inputs = [0.0, -0.0, 4.0, -3.0, 1e-30, 250.0, -1e-30, 0.75];
        let mut neurons = vec![Neuron::default(); NEURONS_PER_BLOCK];
        let mut potentials: Vec<f32> = (0..NEURONS_PER_BLOCK)
            .map(|j| [0.0, 1.0, -0.0, 5.5, -2.0][j % 5])
            .collect();
        for (j, neuron) in neurons.iter_mut().enumerate() {
            neuron.refractory = (j % 3) as u32;
        }
        for cycle in 0..6 {
            let mut reference = (neurons.clone(), potentials.clone());
            let mut active = 0u64;
            for (j, (neuron, potential)) in reference.0.iter_mut().zip(&mut reference.1).enumerate()
            {
                neuron.input = inputs[(j + cycle) % inputs.len()];
                let mut p = *potential / params.cooldown;
                neuron.refractory = neuron.refractory.saturating_sub(1);
                if neuron.refractory == 0 {
                    p += params.overflow * neuron.input;
                    neuron.refractory = params.refractory_time;
                }
                if p > 0.0 {
                    active |= 1 << j;
                    *potential = log2(p + 1.0);
                } else {
                    *potential = 0.0;
                }
                neuron.input = 0.0;
                neuron.delta = 0.0;
                neuron.new_lower_bound = 0.0;
                neuron.potential_range = f32::MAX;
            }
            for (j, neuron) in neurons.iter_mut().enumerate() {
                neuron.input = inputs[(j + cycle) % inputs.len()];
            }
            let bits = |v: &[f32]| v.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
            let before = (neurons.clone(), potentials.clone());
            for walks in Walks::supported() {
                (neurons, potentials) = before.clone();
                let mut new_mask = 0;
                let fired = update_neurons(
                    walks,
                    &mut neurons,
                    &mut potentials,
                    0b1010,
                    &mut new_mask,
                    &params,
                );
                assert_eq!(fired, active, "cycle {cycle}");
                assert_eq!(new_mask, active & !0b1010);
                assert_eq!(neurons, reference.0);
                assert_eq!(bits(&potentials), bits(&reference.1), "cycle {cycle}");
            }
        }
    }

    /// Runs `cycles` neuron updates with a constant input of 100 and returns the potentials.
    fn potentials(refractory_time: u32, cooldown: f32, cycles: usize) -> Vec<f32> {
        let params = NeuronParams {
            cooldown,
            refractory_time,
            overflow: 1.0,
        };
        let mut neurons = vec![Neuron::default(); NEURONS_PER_BLOCK];
        let mut potentials = vec![0.0; NEURONS_PER_BLOCK];
        let mut mask = 0;
        (0..cycles)
            .map(|_| {
                neurons[0].input = 100.0;
                update_neurons(
                    Walks::Portable,
                    &mut neurons,
                    &mut potentials,
                    0,
                    &mut mask,
                    &params,
                );
                potentials[0]
            })
            .collect()
    }

    #[test]
    fn refractory_time_counts_down_cycles() {
        let fresh = log2(101.0);
        // Default 1: input every cycle.
        assert!(potentials(1, 1e7, 4).iter().all(|&p| p == fresh));
        // 3: input in cycles 1, 4, 7; in between only the cooldown acts. (The values are the
        // spec's sequence for the original's refractory 5, whose shift register has period 3.)
        let p = potentials(3, 1.5, 7);
        for (cycle, &value) in p.iter().enumerate() {
            assert_eq!(value > 6.0, cycle % 3 == 0, "cycle {cycle}: {p:?}");
        }
        assert!((p[0] - 6.658).abs() < 1e-3 && (p[1] - 2.443).abs() < 1e-3);
        assert!((p[2] - 1.394).abs() < 1e-3 && (p[3] - 6.671).abs() < 1e-3);
        assert!(p[1] < p[0] && p[2] < p[1]);
    }

    #[test]
    fn first_firing_asks_for_a_section() {
        let params = NeuronParams {
            cooldown: 1e7,
            refractory_time: 1,
            overflow: 1.0,
        };
        let mut neurons = vec![Neuron::default(); NEURONS_PER_BLOCK];
        let mut potentials = vec![0.0; NEURONS_PER_BLOCK];
        neurons[3].input = 2.0;
        neurons[5].input = 2.0;
        let mut mask = 0;
        let active = update_neurons(
            Walks::Portable,
            &mut neurons,
            &mut potentials,
            1 << 5,
            &mut mask,
            &params,
        );
        assert_eq!(mask, 1 << 3);
        assert_eq!(active, (1 << 3) | (1 << 5));
        assert_eq!(neurons[3].input, 0.0);
    }
}
