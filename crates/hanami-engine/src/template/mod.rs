//! Cluster templates: the text that describes a cluster's hexagons, settings and interfaces
//! (spec §1). [`Template::parse`] checks the grammar, every semantic rule and the size limits,
//! so a [`Template`] value is always valid for [`crate::Cluster::new`].

mod error;
mod lexer;
mod parser;

pub use error::{TemplateError, TemplateErrorKind};

/// The cluster template of the user documentation ("Create Cluster"): input `picture`
/// (784 neurons) on hexagon 1,1,1, a hidden hexagon, output `label` (10 neurons) on 3,1,1.
/// The template the original's SDK and CLI tests and MNIST measurements use.
pub const DOCUMENTATION_TEMPLATE: &str = "version: 1
settings:
    neuron_cooldown: 10000000.0
    refractory_time: 1
    max_connection_distance: 1
    enable_reduction: false
hexagons:
    1,1,1
    2,1,1
    3,1,1
    
inputs:
    picture:
        target: 1,1,1
        number_of_inputs: 784

outputs:
    label:
        target: 3,1,1
        number_of_outputs: 10
";

/// Limits that keep a hostile template from exhausting memory or time.
pub mod limits {
    /// Largest template text accepted, in bytes.
    pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;
    /// Most hexagons in one template.
    pub const MAX_HEXAGONS: usize = 1024;
    /// Largest `number_of_inputs` of one input, and of all inputs together.
    pub const MAX_INPUTS: usize = 1 << 20;
    /// Largest `number_of_outputs` of one output, and of all outputs together.
    pub const MAX_OUTPUTS: usize = 1 << 16;
    /// Longest input or output name, in characters (the original's name record holds 254).
    pub const MAX_NAME_LEN: usize = 254;
    /// Largest coordinate; keeps neighbour arithmetic away from the `u32` wrap-around.
    pub const MAX_COORDINATE: u32 = i32::MAX as u32;
    /// Largest `max_connection_distance`.
    pub const MAX_CONNECTION_DISTANCE: u32 = 100;
    /// Largest `refractory_time`.
    pub const MAX_REFRACTORY_TIME: u32 = 65_535;
}

/// Settings of a cluster (spec §1.3), with the original's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Divisor applied to a hidden neuron's carried-over potential every cycle (`> 1`).
    pub neuron_cooldown: f32,
    /// Cycles a hidden neuron waits between taking in input (`>= 1`; 1 = every cycle).
    pub refractory_time: u32,
    /// Farthest hexagon, in steps, that a new synapse section may reach (`>= 1`).
    pub max_connection_distance: u32,
    /// Whether reduction removes weak synapses every 100 training cycles.
    pub enable_reduction: bool,
    /// Whether request cycles grow the network like the original's (input sections, new
    /// synapses, border splits); `false` freezes its structure during requests. Key
    /// `request_growth`, a setting of Hanami-rs only (spec §11.1 B1).
    pub request_growth: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            neuron_cooldown: 1e9,
            refractory_time: 1,
            max_connection_distance: 1,
            enable_reduction: false,
            request_growth: true,
        }
    }
}

/// A hexagon position in offset coordinates (odd rows shifted by half a cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// x coordinate.
    pub x: u32,
    /// y coordinate; odd rows are shifted.
    pub y: u32,
    /// z coordinate (layer).
    pub z: u32,
}

/// One input or output of a template. Equality compares what the interface is (name,
/// hexagon, size), not where the text names it: templates that differ in layout only are
/// equal.
#[derive(Debug, Clone, Eq)]
pub struct InterfaceTemplate {
    /// Name used to address the interface (1–254 characters, unique in the template).
    pub name: String,
    /// Id (index in template order) of the hexagon the interface is attached to.
    pub hexagon: usize,
    /// Number of input or output values.
    pub size: usize,
    /// 1-based line of its name in the template text (for messages about it).
    pub line: u32,
    /// 1-based column (in characters) of its name in the template text.
    pub column: u32,
}

impl PartialEq for InterfaceTemplate {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.hexagon, self.size) == (&other.name, other.hexagon, other.size)
    }
}

/// A parsed and checked cluster template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    settings: Settings,
    hexagons: Vec<Position>,
    inputs: Vec<InterfaceTemplate>,
    outputs: Vec<InterfaceTemplate>,
}

impl Template {
    /// Parses template text. Errors carry line and column and say what was expected.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        parser::parse(text)
    }

    /// The settings, defaults filled in.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Hexagon positions; the index is the hexagon id and the processing order.
    pub fn hexagons(&self) -> &[Position] {
        &self.hexagons
    }

    /// Inputs in template order.
    pub fn inputs(&self) -> &[InterfaceTemplate] {
        &self.inputs
    }

    /// Outputs in template order.
    pub fn outputs(&self) -> &[InterfaceTemplate] {
        &self.outputs
    }
}

#[cfg(test)]
mod tests;
