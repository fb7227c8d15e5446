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
/// An unset synapse's target.
pub(crate) const NO_TARGET: u8 = 0xFF;
/// An empty output-target slot.
pub(crate) const NO_NEURON: u32 = u32::MAX;
/// A new section's tolerance for border splits.
pub(crate) const INITIAL_TOLERANCE: f32 = 0.49;
/// Potential below which a section walk stops.
pub(crate) const WALK_THRESHOLD: f32 = 0.00001;

/// One synapse: consumes `border` of the incoming potential and adds up to `weight` to its
/// target neuron's input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Synapse {
    pub weight: f32,
    pub border: f32,
    /// Index of the target neuron inside the section's target block, `NO_TARGET` if unset.
    pub target: u8,
    /// Usage counter for reduction: starts at 5, permanent at 10.
    pub counter: u8,
}

impl Synapse {
    pub(crate) const UNSET: Synapse = Synapse {
        weight: 0.0,
        border: 0.0,
        target: NO_TARGET,
        counter: 0,
    };
}

/// A chain of synapses driven by one source neuron over one potential interval.
pub(crate) type Section = [Synapse; SYNAPSES_PER_SECTION];

/// An unset section.
pub(crate) const UNSET_SECTION: Section = [Synapse::UNSET; SYNAPSES_PER_SECTION];

/// One neuron. Input neurons use only `potential` and `active`; output-hexagon neurons hold
/// `sigmoid(input)` as potential.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Neuron {
    /// Sum of synapse contributions in the current cycle; cleared when consumed.
    pub input: f32,
    pub potential: f32,
    /// Back-propagated error.
    pub delta: f32,
    /// Lower bound of the section this neuron asks for (with its `new` bit).
    pub new_lower_bound: f32,
    /// Range of the section this neuron asks for.
    pub potential_range: f32,
    /// Cycles left until the neuron takes in input again.
    pub refractory: u32,
    /// Whether the neuron fired this cycle.
    pub active: bool,
    /// Whether the neuron owns at least one section. Never cleared.
    pub in_use: bool,
}

impl Default for Neuron {
    fn default() -> Self {
        Neuron {
            input: 0.0,
            potential: 0.0,
            delta: 0.0,
            new_lower_bound: 0.0,
            potential_range: 0.0,
            refractory: 1,
            active: false,
            in_use: false,
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
}

impl Default for ConnectionBlock {
    fn default() -> Self {
        ConnectionBlock {
            used: 0,
            connections: [Connection::default(); SECTIONS_PER_BLOCK],
            sections: None,
        }
    }
}

/// Fresh, unset synapse storage for one connection block.
pub(crate) fn new_section_store() -> Box<[Section]> {
    vec![UNSET_SECTION; SECTIONS_PER_BLOCK].into_boxed_slice()
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
    /// One word per neuron block: bit `j` set = neuron `j` asks for a new section.
    pub new_mask: Vec<u64>,
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
}
