//! The planned section walks of a neuron block, shared by the vector implementations
//! (`avx512`, `avx2`), which give them their vector searches, copies and weight updates:
//!
//! - Forward, every live section of a connection block is planned first (where its signal
//!   ends, what its last synapse adds, whether it may grow), without branches; then the walks
//!   queue their adds (`Adds`), which are made in processing order, each target's terms in
//!   synapse order, in one loop for many walks.
//! - Backward, a walk ends where the forward walk of the same cycle ended (kept by its plan),
//!   without reading its source's potential, unless that walk was clamped to the section's
//!   range or grew; the weight updates of the visited synapses are vector ones.
//!
//! The same bits as the portable walks of [`super::forward`] and [`super::backward`].

use std::mem::MaybeUninit;

use super::forward::{THRESHOLD, last_synapse, target_index, walk_growing};
use super::{BlockTask, Sources};
use crate::network::{
    Connection, DEAD_REACH, NEURONS_PER_BLOCK, Neuron, SECTIONS_PER_BLOCK, SYNAPSES_PER_SECTION,
    Section, UNKNOWN_REACH, WALK_THRESHOLD, bits,
};

/// The plan of one forward section walk, made before any walk of the connection block runs:
/// where the signal ends decides how many synapses pass, and the walks then only add. So the
/// loop that adds has its length known early, and the branch on where a signal ends no
/// longer waits for the source's potential to be loaded. Planning all walks first changes
/// nothing: a walk reads only its own section and its source, which no other walk of the
/// block writes.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    /// The remaining potential the walk starts with (clamped to the section's range).
    start: f64,
    /// What synapse `reach` adds to its target if the signal ends inside the chain.
    value: f32,
    /// Synapses `0..reach` pass fully.
    reach: u8,
    /// The target of synapse `reach` if the signal ends inside the chain, else a spare slot.
    last: u8,
    /// Whether the walk grows if its section may grow (border split where the signal ends,
    /// or a signal that outlasts the chain).
    grows: bool,
    /// What the backward walk may take over as its reach (`ConnectionBlock::reach`).
    backward_reach: u8,
}

/// Index of the spare input slot that takes the additions of walks without a last synapse.
const SPARE: usize = NEURONS_PER_BLOCK;

/// Input slots of a block's forward walks: one per target neuron, the spare slot, and room
/// up to a power of two, so that a masked slot index needs no bounds check.
const INPUT_SLOTS: usize = 2 * NEURONS_PER_BLOCK;

/// The inputs of a block's targets while its walks run, and the spare slot.
type Inputs = [f32; INPUT_SLOTS];

/// The forward walks of one block (`forward::process_synapses`), planned, with the vector
/// parts of an instruction set: `reach` for the plans (see [`plan`]) and `copy` for the
/// queued adds (see [`Adds::passed`]).
#[inline(always)]
pub(super) fn process_synapses(
    task: &mut BlockTask<'_>,
    sources: &Sources<'_>,
    (growth, creation_enabled): (bool, bool),
    reach: impl Fn(&Section, usize, f64) -> usize,
    copy: impl Fn(&Section, usize, &mut QueuedSection<'_>),
) {
    let mut seed = task.seed;
    let mut grew = false;
    let targets: &mut [Neuron; NEURONS_PER_BLOCK] = task
        .neurons
        .try_into()
        .expect("a neuron block has 64 neurons");
    let mut inputs: Inputs = [0.0; INPUT_SLOTS];
    for (input, target) in inputs.iter_mut().zip(targets.iter()) {
        *input = target.input;
    }
    let mut adds = Adds::new();
    let mut plans = [Plan::default(); SECTIONS_PER_BLOCK];
    let events = &mut *task.events;
    for (k, block) in task.blocks.iter_mut().enumerate() {
        let c = (task.first_block + k) as u32;
        let Some(sections) = block.sections.as_deref_mut() else {
            continue;
        };
        for i in bits(block.live) {
            let connection = &block.connections[i];
            let potential = sources.potential(connection.source_hexagon, connection.source_neuron);
            plans[i] = plan(&sections[i], connection, potential, &reach);
        }
        for i in bits(block.live) {
            let connection = &mut block.connections[i];
            let section = &mut sections[i];
            let plan = plans[i];
            seed = seed.wrapping_add(c * 64 + i as u32);
            let reach = usize::from(plan.reach);
            adds.make_if_full(&mut inputs);
            adds.passed(section, reach, &copy);
            let able = growth && (connection.from_input || creation_enabled || grew);
            if !(able && plan.grows) {
                adds.one(plan.last, plan.value);
                // A source in a later hexagon gets its potential of this cycle only after
                // this walk, and the backward walk reads that one.
                block.reach[i] = if sources.settled(connection.source_hexagon) {
                    plan.backward_reach
                } else {
                    UNKNOWN_REACH
                };
                continue;
            }
            block.reach[i] = UNKNOWN_REACH;
            // The growing walk adds after what was queued before it.
            adds.make(&mut inputs);
            let block_inputs: &mut [f32; NEURONS_PER_BLOCK] = (&mut inputs[..NEURONS_PER_BLOCK])
                .try_into()
                .expect("64 inputs");
            let walk = walk_growing(
                section,
                connection,
                block_inputs,
                plan.start,
                reach,
                &mut seed,
            );
            grew |= walk.grew();
            events.record_walk(c, i, connection, &walk);
        }
    }
    adds.make(&mut inputs);
    for (target, &input) in targets.iter_mut().zip(&inputs) {
        target.input = input;
    }
    events.grew = grew;
}

/// The backward walks of one block (`backward::backprop_sections`), with the vector parts of
/// an instruction set: where the forward walk of the same cycle ended (its plan's
/// `backward_reach`) the walk ends there without its source's potential, else `reach` counts
/// the synapses the signal passes (exactly); `update` makes the weight updates of the
/// `visited` synapses and appends their error terms (see `avx512::update_weights`).
#[inline(always)]
pub(super) fn backprop_sections(
    task: &mut BlockTask<'_>,
    sources: &Sources<'_>,
    reach: impl Fn(&Section, usize, f64) -> usize,
    update: impl Fn(&mut Section, usize, Option<&mut Vec<f32>>) -> (u64, f32),
) {
    let events = &mut *task.events;
    for block in task.blocks.iter_mut() {
        let Some(sections) = block.sections.as_deref_mut() else {
            continue;
        };
        // Only the slots that were live in the forward pass (see the portable walk).
        for i in bits(block.live) {
            let connection = &block.connections[i];
            let section = &mut sections[i];
            let len = usize::from(connection.len);
            // The walk visits synapses up to and including the first after which no more than
            // the threshold is left; mostly where the forward walk stopped, and then its
            // source's potential is not needed.
            let reach = match block.reach[i] {
                DEAD_REACH => continue,
                UNKNOWN_REACH => {
                    let potential =
                        sources.potential(connection.source_hexagon, connection.source_neuron);
                    let remaining = potential - connection.lower_bound;
                    if remaining <= WALK_THRESHOLD {
                        continue;
                    }
                    let threshold = f64::from(remaining) - f64::from(WALK_THRESHOLD);
                    reach(section, len, threshold)
                }
                known => usize::from(known),
            };
            let visited = (reach + 1).min(len);
            let record = !connection.from_input;
            let (agree, sum) = update(section, visited, record.then_some(&mut events.delta_values));
            section.raise_counters(agree);
            if record {
                events.record_run(connection, sum);
            }
        }
    }
}

/// Plans the forward walk of `section` for a source of `potential`: the same decisions as
/// `forward::walk_section`, without branches; `reach` counts the synapses the signal passes
/// fully (the vector search of the instruction set, see `avx512::reach`).
#[inline(always)]
fn plan(
    section: &Section,
    connection: &Connection,
    potential: f32,
    reach: impl FnOnce(&Section, usize, f64) -> usize,
) -> Plan {
    let mut remaining = potential - connection.lower_bound;
    let clamped = remaining > connection.range;
    if clamped {
        remaining = connection.range;
    }
    // A potential at or below the threshold drives nothing (NaN goes on, as in the portable
    // walk).
    let alive = remaining.is_nan() || remaining > WALK_THRESHOLD;
    let len = usize::from(connection.len);
    let start = f64::from(remaining);
    let threshold = start - THRESHOLD;
    let reach = reach(section, len, threshold);
    let reach = if alive { reach } else { 0 };
    let stops = alive & (reach < len);
    // Where the signal ends, read from in-range positions whatever `reach` is (the value and
    // split of a signal that outlasts the chain are not used).
    let at = reach.min(SYNAPSES_PER_SECTION - 1);
    let (value, split) = last_synapse(section, at, start, connection.tolerance);
    Plan {
        start,
        value,
        reach: reach as u8,
        last: if stops {
            target_index(section.target[at]) as u8
        } else {
            SPARE as u8
        },
        grows: alive & (!stops | split),
        // The backward walk of a potential that was not clamped ends where this one does,
        // and does not start where this one does not.
        backward_reach: if clamped {
            UNKNOWN_REACH
        } else if alive {
            reach as u8
        } else {
            DEAD_REACH
        },
    }
}

/// How many queued adds make [`Adds::make_if_full`] add them.
const QUEUED: usize = 1024;

/// A block's forward adds, queued in walk order and made in one loop: a section's passed
/// synapses are queued with a few vector moves whatever their number, so the loop that adds
/// ends once per queue instead of once per walk (where the signal ends is hard to predict, and
/// every wrong guess of a walk's end cost a pipeline flush). Each target gets its terms in
/// the same order, so the sums keep their bits.
///
/// The queue is left uninitialised (a block task makes a new one, and zeroing it, 5.4 KB,
/// cost 1-3 % of a training step): only the first `len` entries are read, and every entry
/// below `len` was written. (The arrays are repeats of a `const` block: a repeat of
/// `MaybeUninit::uninit()` as a value was still zeroed, merged with `len`'s zero.)
struct Adds {
    /// Input slot of each queued add (a target index or [`SPARE`]).
    slots: [MaybeUninit<u8>; QUEUED + SYNAPSES_PER_SECTION + 1],
    /// The value of each queued add.
    values: [MaybeUninit<f32>; QUEUED + SYNAPSES_PER_SECTION + 1],
    /// How many adds are queued.
    len: usize,
}

impl Adds {
    /// No adds queued.
    fn new() -> Self {
        Self {
            slots: [const { MaybeUninit::uninit() }; QUEUED + SYNAPSES_PER_SECTION + 1],
            values: [const { MaybeUninit::uninit() }; QUEUED + SYNAPSES_PER_SECTION + 1],
            len: 0,
        }
    }

    /// Queues the weights of the synapses `0..reach` that a signal passes fully: `copy`
    /// writes the section's 64 target slots (its targets' indices) and at least its first
    /// `reach` weights into the queue's next 64 entries; those from `reach` on are
    /// overwritten by the next adds.
    #[inline(always)]
    fn passed(
        &mut self,
        section: &Section,
        reach: usize,
        copy: impl FnOnce(&Section, usize, &mut QueuedSection<'_>),
    ) {
        // `len` must not pass the entries written here.
        assert!(
            reach <= SYNAPSES_PER_SECTION,
            "a walk passes at most a section"
        );
        let mut queued = QueuedSection {
            slots: (&mut self.slots[self.len..self.len + SYNAPSES_PER_SECTION])
                .try_into()
                .expect("room for a section"),
            values: (&mut self.values[self.len..self.len + SYNAPSES_PER_SECTION])
                .try_into()
                .expect("room for a section"),
        };
        copy(section, reach, &mut queued);
        self.len += reach;
    }

    /// Queues one add of `value` to input `slot`.
    #[inline]
    fn one(&mut self, slot: u8, value: f32) {
        self.slots[self.len].write(slot);
        self.values[self.len].write(value);
        self.len += 1;
    }

    /// Makes the queued adds if the queue may not have room for another walk.
    #[inline]
    fn make_if_full(&mut self, inputs: &mut Inputs) {
        if self.len >= QUEUED {
            self.make(inputs);
        }
    }

    /// Makes the queued adds, in the order they were queued.
    #[inline]
    fn make(&mut self, inputs: &mut Inputs) {
        // SAFETY: the entries below `len` were written (`passed` and `one` write every entry
        // they count), and `MaybeUninit<T>` has the layout of `T`.
        let (slots, values) = unsafe {
            (
                std::slice::from_raw_parts(self.slots.as_ptr().cast::<u8>(), self.len),
                std::slice::from_raw_parts(self.values.as_ptr().cast::<f32>(), self.len),
            )
        };
        // Eight slots are read with one load and taken apart with shifts, about two loads
        // per add instead of three (slot, value, input); with it probe training steps took
        // 3-4 % less time (`docs/benchmarks.md`, thirtieth session).
        let mut add = |slot: u8, value: f32| inputs[usize::from(slot) & (INPUT_SLOTS - 1)] += value;
        let (slot_eights, slot_rest) = slots.as_chunks::<8>();
        let (value_eights, value_rest) = values.as_chunks::<8>();
        for (slots, values) in slot_eights.iter().zip(value_eights) {
            let slots = u64::from_le_bytes(*slots);
            for (b, &value) in values.iter().enumerate() {
                add((slots >> (8 * b)) as u8, value);
            }
        }
        for (&slot, &value) in slot_rest.iter().zip(value_rest) {
            add(slot, value);
        }
        self.len = 0;
    }
}

/// The queue's entries for one section's passed synapses (see [`Adds::passed`]).
pub(super) struct QueuedSection<'a> {
    /// Input slots, one per synapse of the section.
    pub(super) slots: &'a mut [MaybeUninit<u8>; SYNAPSES_PER_SECTION],
    /// Weights, one per synapse of the section.
    pub(super) values: &'a mut [MaybeUninit<f32>; SYNAPSES_PER_SECTION],
}

#[cfg(test)]
mod tests {
    use super::super::vector_tests::{draws, parts};
    use super::*;

    #[test]
    fn queued_adds_give_each_target_its_terms_in_order() {
        for parts in parts() {
            // Walks of random reach into targets that repeat, with values of very different
            // magnitudes (so that another order of the adds would give other bits), more than
            // the queue holds, and single adds to targets and to the spare slot in between.
            let mut next = draws(0x9e37_79b9u32);
            let mut adds = Adds::new();
            let mut queued: Inputs = [0.0; INPUT_SLOTS];
            let mut direct: Inputs = [0.0; INPUT_SLOTS];
            let mut walks = 0;
            let mut added = 0;
            // A target's slot, or the spare one (every fourth draw).
            let slot = |next: &mut dyn FnMut() -> u32| {
                if next().is_multiple_of(4) {
                    SPARE
                } else {
                    (next() % 64) as usize
                }
            };
            while added < 5 * QUEUED {
                let mut section = Section::UNSET;
                for k in 0..SYNAPSES_PER_SECTION {
                    // Targets carry bits above the index, as set synapses may.
                    section.target[k] = (next() % 256) as u8;
                    section.weight[k] = f32::from_bits(next() % 0x7f00_0000) - 1.0;
                }
                let reach = (next() % (SYNAPSES_PER_SECTION as u32 + 1)) as usize;
                adds.make_if_full(&mut queued);
                adds.passed(&section, reach, parts.copy);
                for k in 0..reach {
                    direct[target_index(section.target[k])] += section.weight[k];
                }
                let slot = slot(&mut next);
                let value = f32::from_bits(next() % 0x7f00_0000);
                adds.one(slot as u8, value);
                direct[slot] += value;
                walks += 1;
                added += reach + 1;
            }
            adds.make(&mut queued);
            assert!(walks > 100);
            let bits = |inputs: &Inputs| inputs.map(f32::to_bits);
            assert_eq!(bits(&queued), bits(&direct), "{}", parts.name);
            // Every short queue length, below, at and past whole groups of eight, from inputs
            // that a single add changes.
            queued = [0.0; INPUT_SLOTS];
            direct = [0.0; INPUT_SLOTS];
            for len in 0..=17 {
                for _ in 0..len {
                    let slot = slot(&mut next);
                    let value = f32::from_bits(next() % 0x7f00_0000) - 1.0;
                    adds.one(slot as u8, value);
                    direct[slot] += value;
                }
                adds.make(&mut queued);
                assert_eq!(
                    bits(&queued),
                    bits(&direct),
                    "{} {len} queued adds",
                    parts.name
                );
            }
        }
    }
}
