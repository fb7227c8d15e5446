//! The data a cluster is made of (spec §2): neurons, synapses, sections and their connection
//! headers, hexagons and interfaces. The sizes 64/64/64 fix the layout: a section drives one
//! neuron block, a connection block holds the headers of 64 sections.

use crate::geometry::{GROWTH_TARGETS, NO_HEXAGON, SIDES};
use crate::template::Position;

/// Synapses in one section: the longest chain one source neuron drives through one section.
pub(crate) const SYNAPSES_PER_SECTION: usize = 64;
/// Section slots per connection block.
pub(crate) const SECTIONS_PER_BLOCK: usize = 64;
/// Neurons per neuron block; a synapse's target is an index inside one block.
pub(crate) const NEURONS_PER_BLOCK: usize = 64;
/// Target slots of one output neuron.
pub(crate) const OUTPUT_TARGETS: usize = 7;
/// A synapse whose usage counter reached this is never removed by reduction.
pub(crate) const PERMANENT_COUNTER: u8 = 10;
/// An unset synapse's target.
pub(crate) const NO_TARGET: u8 = 0xFF;
/// An empty output-target slot.
pub(crate) const NO_NEURON: u32 = u32::MAX;
/// A new section's tolerance for border splits.
pub(crate) const INITIAL_TOLERANCE: f32 = 0.49;
/// Potential below which a section walk stops.
pub(crate) const WALK_THRESHOLD: f32 = 0.00001;

/// A mask of the lowest `count` bits (`count` ≤ 64).
#[inline]
pub(crate) fn low_bits(count: usize) -> u64 {
    if count >= 64 {
        u64::MAX
    } else {
        (1u64 << count) - 1
    }
}

/// The positions of the set bits of `mask`, lowest first.
#[inline(always)]
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let position = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            position
        })
    })
}

/// Whether a signal leaves more than the walk threshold after a synapse whose interval ends at
/// `end`; `threshold` is the signal's potential minus the walk threshold. (Written as a
/// function so that a NaN end, possible only in a hostile checkpoint, stops the walk.)
#[inline(always)]
pub(crate) fn passes(end: f64, threshold: f64) -> bool {
    end < threshold
}

/// `ends` beyond the chain: no signal reaches there.
const END_OF_CHAIN: f64 = f64::INFINITY;

/// A chain of synapses driven by one source neuron over one potential interval, as a
/// structure of arrays: each walk reads only the arrays it needs. Synapse `k` consumes
/// `border[k]` of the incoming potential and adds up to `weight[k]` to neuron `target[k]` of
/// the section's target block.
///
/// Positions from the connection's `len` on are unset (weight and border 0, target
/// `NO_TARGET`, counter 0, end `+∞`).
///
/// Each array starts on a cache line (its size is a multiple of 64 bytes, and the section is
/// aligned to 64), so a vector load of 16 weights or ends touches one line, not two, and a
/// short chain's values lie in the first line of each array. That costs 56 bytes of padding
/// per section (4 %).
#[derive(Debug, Clone, PartialEq)]
#[repr(C, align(64))]
pub(crate) struct Section {
    pub weight: [f32; SYNAPSES_PER_SECTION],
    pub border: [f32; SYNAPSES_PER_SECTION],
    /// `ends[k] = border[0] + … + border[k]`, summed in `f64`: where synapse `k`'s interval
    /// ends. Derived from `border`. The sum of up to 64 `f32` borders is exact in `f64` unless
    /// their magnitudes span more than about 2^23, so `potential − ends[k]` is the exact
    /// potential left after synapse `k`, and a walk compares each end with the potential
    /// instead of subtracting the borders one after another.
    pub ends: [f64; SYNAPSES_PER_SECTION],
    /// `ends` rounded to the nearest `f32`, for finding where a walk ends with half the
    /// comparisons. Rounding keeps the order, so an end below the rounded threshold lies
    /// below the exact one; only an end that rounds to the threshold itself needs a look at
    /// `ends`. Derived from `ends`.
    pub rounded_ends: [f32; SYNAPSES_PER_SECTION],
    /// Index of the target neuron inside the section's target block.
    pub target: [u8; SYNAPSES_PER_SECTION],
    /// Usage counter for reduction: starts at 5, permanent at 10.
    pub counter: [u8; SYNAPSES_PER_SECTION],
    /// Bit `k` set: synapse `k` is set and its counter is below 10. Derived from `counter`.
    /// Most synapses become permanent soon, so the backward walk updates counters only here.
    pub unsettled: u64,
}

// Every array of a section starts on a cache line (see `Section`).
const _: () = {
    use std::mem::offset_of;
    assert!(
        std::mem::align_of::<Section>() == 64
            && offset_of!(Section, weight) % 64 == 0
            && offset_of!(Section, border) % 64 == 0
            && offset_of!(Section, ends) % 64 == 0
            && offset_of!(Section, rounded_ends) % 64 == 0
            && offset_of!(Section, target) % 64 == 0
            && offset_of!(Section, counter) % 64 == 0
    );
};

impl Section {
    /// An unset section.
    pub(crate) const UNSET: Section = Section {
        weight: [0.0; SYNAPSES_PER_SECTION],
        border: [0.0; SYNAPSES_PER_SECTION],
        ends: [END_OF_CHAIN; SYNAPSES_PER_SECTION],
        rounded_ends: [f32::INFINITY; SYNAPSES_PER_SECTION],
        target: [NO_TARGET; SYNAPSES_PER_SECTION],
        counter: [0; SYNAPSES_PER_SECTION],
        unsettled: 0,
    };

    /// Recomputes `ends` for a chain of `len` synapses.
    pub(crate) fn update_ends(&mut self, len: usize) {
        let mut end = 0.0f64;
        for (k, &border) in self.border[..len].iter().enumerate() {
            end += f64::from(border);
            self.ends[k] = end;
            self.rounded_ends[k] = end as f32;
        }
        self.ends[len..].fill(END_OF_CHAIN);
        self.rounded_ends[len..].fill(f32::INFINITY);
    }

    /// Recomputes `unsettled` from the counters of a chain of `len` synapses.
    pub(crate) fn update_unsettled(&mut self, len: usize) {
        self.unsettled = self.counter[..len]
            .iter()
            .enumerate()
            .fold(0u64, |mask, (k, &counter)| {
                mask | (u64::from(counter < PERMANENT_COUNTER) << k)
            });
    }

    /// Counts one agreement for each unsettled synapse in `agree` (a bit mask); a counter that
    /// reaches 10 makes its synapse permanent.
    pub(crate) fn raise_counters(&mut self, agree: u64) {
        for k in bits(self.unsettled & agree) {
            let counter = self.counter[k] + 1;
            self.counter[k] = counter;
            if counter >= PERMANENT_COUNTER {
                self.unsettled &= !(1 << k);
            }
        }
    }

    /// Unsets every position from `from` on.
    pub(crate) fn clear_from(&mut self, from: usize) {
        self.weight[from..].fill(0.0);
        self.border[from..].fill(0.0);
        self.ends[from..].fill(END_OF_CHAIN);
        self.rounded_ends[from..].fill(f32::INFINITY);
        self.target[from..].fill(NO_TARGET);
        self.counter[from..].fill(0);
        self.unsettled &= low_bits(from);
    }
}

/// One neuron, without what the section walks read of it: its potential, whether it is
/// active and whether it owns a section are kept per hexagon in dense arrays and bit sets
/// ([`Hexagon::potentials`], [`Hexagon::active`], [`Hexagon::in_use`]). Input neurons use
/// only those; output-hexagon neurons hold `sigmoid(input)` as potential.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Neuron {
    /// Sum of synapse contributions in the current cycle; cleared when consumed.
    pub input: f32,
    /// Back-propagated error.
    pub delta: f32,
    /// Lower bound of the section this neuron asks for (with its `new` bit).
    pub new_lower_bound: f32,
    /// Range of the section this neuron asks for.
    pub potential_range: f32,
    /// Cycles left until the neuron takes in input again.
    pub refractory: u32,
}

impl Default for Neuron {
    fn default() -> Self {
        Neuron {
            input: 0.0,
            delta: 0.0,
            new_lower_bound: 0.0,
            potential_range: 0.0,
            refractory: 1,
        }
    }
}

/// The header of one section: its source neuron and the potential interval it sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Connection {
    pub source_hexagon: u32,
    /// Index of the source neuron in its hexagon (`block * 64 + neuron`).
    pub source_neuron: u32,
    /// Whether the source is an input neuron (such sections may always grow).
    pub from_input: bool,
    pub lower_bound: f32,
    pub range: f32,
    /// Split tolerance; shrinks with every border split and is kept when the slot is reused.
    pub tolerance: f32,
    /// One past the last set synapse of the section: positions from here on are unset.
    pub len: u8,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            source_hexagon: NO_HEXAGON,
            source_neuron: 0,
            from_input: false,
            lower_bound: 0.0,
            range: f32::MAX,
            tolerance: INITIAL_TOLERANCE,
            len: 0,
        }
    }
}

/// 64 section slots that all feed the same neuron block. The synapse storage is allocated when
/// the first slot is taken.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConnectionBlock {
    /// Bit `i` set: slot `i` holds a section.
    pub used: u64,
    pub connections: [Connection; SECTIONS_PER_BLOCK],
    /// `SECTIONS_PER_BLOCK` sections once allocated.
    pub sections: Option<Box<[Section]>>,
    /// Bit `i` set: slot `i` is used and its source fired in the current cycle. Computed by
    /// the forward pass and reused by the backward pass of the same cycle; not part of the
    /// persistent state.
    pub live: u64,
    /// Per live slot, how many synapses the forward walk of the current cycle passed fully,
    /// which the backward walk of the same cycle takes over; [`UNKNOWN_REACH`] where it
    /// cannot (the forward walk took the growing path, or clamped the potential to the
    /// section's range, which the backward walk does not, or its source lies in a later
    /// hexagon, whose potential of this cycle comes after the walk); [`DEAD_REACH`] where
    /// the source's potential drives no walk at all. Written by the vector walks only; not part of the persistent
    /// state.
    pub reach: [u8; SECTIONS_PER_BLOCK],
}

/// A [`ConnectionBlock::reach`] that the backward walk has to find itself.
pub(crate) const UNKNOWN_REACH: u8 = u8::MAX;

/// A [`ConnectionBlock::reach`] of a walk that does not start: no more than the walk
/// threshold is left above the section's lower bound (the backward walk skips it).
pub(crate) const DEAD_REACH: u8 = u8::MAX - 1;

impl Default for ConnectionBlock {
    fn default() -> Self {
        ConnectionBlock {
            used: 0,
            connections: [Connection::default(); SECTIONS_PER_BLOCK],
            sections: None,
            live: 0,
            reach: [UNKNOWN_REACH; SECTIONS_PER_BLOCK],
        }
    }
}

/// Fresh, unset synapse storage for one connection block.
pub(crate) fn new_section_store() -> Box<[Section]> {
    vec![Section::UNSET; SECTIONS_PER_BLOCK].into_boxed_slice()
}

/// Bytes of synapse storage of one connection block.
pub(crate) const SECTION_STORE_BYTES: usize = SECTIONS_PER_BLOCK * std::mem::size_of::<Section>();

/// One hexagon. A non-input hexagon with `dim = n` has `n` neuron blocks and `n²` connection
/// blocks; connection block `c` feeds neuron block `c / n`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hexagon {
    pub position: Position,
    pub is_input: bool,
    pub is_output: bool,
    /// Neuron blocks = connection blocks per neuron block (0 for input hexagons).
    pub dim: usize,
    pub neurons: Vec<Neuron>,
    /// The neurons' potentials. Hidden neurons: `log2(1 + x)` of the thresholded potential;
    /// input neurons: the raw input value; output-hexagon neurons: `sigmoid(input)`. Dense,
    /// because every section walk looks up its source's potential (and input injection
    /// writes hundreds of them per cycle).
    pub potentials: Vec<f32>,
    /// One word per neuron block: bit `j` set = neuron `j` asks for a new section.
    pub new_mask: Vec<u64>,
    /// One word per neuron block: bit `j` set = neuron `j` fired this cycle (also used for
    /// finding the live sections fed by this hexagon).
    pub active: Vec<u64>,
    /// One word per neuron block: bit `j` set = neuron `j` owns at least one section. Never
    /// cleared.
    pub in_use: Vec<u64>,
    pub blocks: Vec<ConnectionBlock>,
    pub neighbours: [u32; SIDES],
    pub targets: [u32; GROWTH_TARGETS],
    /// Index of the input interface attached here.
    pub input: Option<usize>,
    /// Index of the output interface attached here.
    pub output: Option<usize>,
}

impl Hexagon {
    /// Number of neuron blocks.
    pub(crate) fn neuron_blocks(&self) -> usize {
        self.neurons.len() / NEURONS_PER_BLOCK
    }

    /// Gives the hexagon `blocks` neuron blocks; new neurons are in their initial state.
    pub(crate) fn resize_neurons(&mut self, blocks: usize) {
        self.neurons
            .resize(blocks * NEURONS_PER_BLOCK, Neuron::default());
        self.potentials.resize(blocks * NEURONS_PER_BLOCK, 0.0);
        self.new_mask.resize(blocks, 0);
        self.active.resize(blocks, 0);
        self.in_use.resize(blocks, 0);
    }
}

/// Whether bit `index % 64` of word `index / 64` of a per-block bit set is set.
#[inline]
pub(crate) fn bit(words: &[u64], index: usize) -> bool {
    words[index / NEURONS_PER_BLOCK] >> (index % NEURONS_PER_BLOCK) & 1 != 0
}

/// Values fed into an input hexagon; value `i` drives neuron `i` of the hexagon.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputInterface {
    pub name: String,
    pub hexagon: usize,
    pub values: Vec<f32>,
}

/// One of an output neuron's links to a neuron of the output hexagon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OutputTarget {
    pub weight: f32,
    /// Index of the neuron in the output hexagon, `NO_NEURON` if the slot is empty.
    pub neuron: u32,
}

impl OutputTarget {
    pub(crate) const EMPTY: OutputTarget = OutputTarget {
        weight: 0.0,
        neuron: NO_NEURON,
    };
}

/// Output neurons: each samples up to seven output-hexagon neurons and applies a sigmoid.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutputInterface {
    pub name: String,
    pub hexagon: usize,
    pub targets: Vec<[OutputTarget; OUTPUT_TARGETS]>,
    /// Output values of the last cycle.
    pub values: Vec<f32>,
    /// Expected values of the current training cycle.
    pub expected: Vec<f32>,
    /// Whether the current training cycle has expected values for this interface: only
    /// then do its outputs learn and sample targets. True outside training cycles.
    pub learns: bool,
}
