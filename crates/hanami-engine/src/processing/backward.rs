//! The backward pass (spec §4): from the last hexagon to the first, the derivative of each
//! hidden neuron's activation, then the weight update along every section.

use super::{BlockTask, DeltaTerm, Sources};
use crate::cluster::Cluster;
use crate::network::{
    Connection, NO_TARGET, Neuron, SYNAPSES_PER_SECTION, Section, WALK_THRESHOLD,
};

/// Learning rate of synapse weights.
const SYNAPSE_LEARNING_RATE: f32 = 0.05;
/// `1 / ln 2` rounded as the original writes it (not `LOG2_E`, to keep its arithmetic).
#[allow(clippy::approx_constant)]
const INV_LN2: f32 = 1.4427;
/// A synapse whose counter reached this is never removed by reduction.
pub(crate) const PERMANENT_COUNTER: u8 = 10;

impl Cluster {
    /// Runs the backward pass after a training forward pass.
    pub(crate) fn backward(&mut self) {
        for h in (0..self.hexagons.len()).rev() {
            if let Some(o) = self.hexagons[h].output {
                self.backprop_output(h, o);
            }
            let hexagon = &self.hexagons[h];
            if hexagon.neurons.is_empty() || hexagon.is_input {
                continue;
            }
            self.run_blocks(h, false, |task, sources| {
                backprop_neurons(task.neurons);
                backprop_sections(task, sources);
            });
            let dim = self.hexagons[h].dim;
            for events in &self.scratch.events[..dim] {
                for term in &events.deltas {
                    self.hexagons[term.hexagon as usize].neurons[term.neuron as usize].delta +=
                        term.value;
                }
            }
        }
        self.creation_enabled = false;
    }
}

/// Multiplies the delta of every active neuron by the derivative of `log2(1 + x)`, written in
/// terms of the output: `1.4427 · 0.5^potential`.
fn backprop_neurons(neurons: &mut [Neuron]) {
    for neuron in neurons.iter_mut().filter(|n| n.active) {
        neuron.delta *= INV_LN2 * 0.5f32.powf(neuron.potential);
    }
}

/// Updates the weights of every used section of the block (whether its source fired or not)
/// and records the error terms for the source neurons. Input neurons' deltas are never read,
/// so no terms are recorded for them.
fn backprop_sections(task: &mut BlockTask<'_>, sources: &Sources<'_>) {
    let targets: &[Neuron] = task.neurons;
    for block in task.blocks.iter_mut() {
        let Some(sections) = block.sections.as_deref_mut() else {
            continue;
        };
        let mut used = block.used;
        while used != 0 {
            let i = used.trailing_zeros() as usize;
            used &= used - 1;
            let connection = &block.connections[i];
            let source = sources.neuron(connection.source_hexagon, connection.source_neuron);
            let record = !connection.from_input;
            backprop_section(
                &mut sections[i],
                connection,
                targets,
                source.potential,
                |value| {
                    if record {
                        task.events.deltas.push(DeltaTerm {
                            hexagon: connection.source_hexagon,
                            neuron: connection.source_neuron,
                            value,
                        });
                    }
                },
            );
        }
    }
}

/// The backward section walk (spec §4.3). Unlike the forward walk it is not clamped to the
/// section's range (kept from the original).
#[inline]
fn backprop_section(
    section: &mut Section,
    connection: &Connection,
    targets: &[Neuron],
    potential: f32,
    mut source_delta: impl FnMut(f32),
) {
    let mut remaining = potential - connection.lower_bound;
    let len = usize::from(connection.len).min(SYNAPSES_PER_SECTION);
    let mut pos = 0;
    while pos < len && remaining > WALK_THRESHOLD {
        let synapse = &mut section[pos];
        pos += 1;
        if synapse.target == NO_TARGET {
            continue;
        }
        let target = &targets[usize::from(synapse.target)];
        let agree = (target.potential > 0.0) == (synapse.weight > 0.0);
        if agree && synapse.counter < PERMANENT_COUNTER {
            synapse.counter += 1;
        }
        source_delta(target.delta * synapse.weight);
        synapse.weight -= SYNAPSE_LEARNING_RATE * target.delta;
        remaining -= synapse.border;
    }
}
