//! The backward pass (spec §4): from the last hexagon to the first, the derivative of each
//! hidden neuron's activation, then the weight update along every section.

use super::forward::target_index;
use super::{BlockTask, DeltaRun, Sources};
use crate::cluster::Cluster;
use crate::network::{Connection, NEURONS_PER_BLOCK, Neuron, Section, WALK_THRESHOLD};

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
                let mut start = 0;
                for run in &events.delta_runs {
                    let neuron =
                        &mut self.hexagons[run.hexagon as usize].neurons[run.neuron as usize];
                    // Added one by one in synapse order, like the original.
                    let mut delta = neuron.delta;
                    for &value in &events.delta_values[start..run.end] {
                        delta += value;
                    }
                    neuron.delta = delta;
                    start = run.end;
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

/// Updates the weights of every used section of the block whose source is active, and
/// records the error terms for the source neurons. Input neurons' deltas are never read, so
/// no terms are recorded for them.
fn backprop_sections(task: &mut BlockTask<'_>, sources: &Sources<'_>) {
    let targets: &[Neuron; NEURONS_PER_BLOCK] = (&*task.neurons)
        .try_into()
        .expect("a neuron block has 64 neurons");
    let events = &mut *task.events;
    for block in task.blocks.iter_mut() {
        // A section whose source is inactive has no potential above its lower bound, so its
        // walk would stop at once: only live slots are walked.
        let mut live = sources.live_slots(block);
        let Some(sections) = block.sections.as_deref_mut() else {
            continue;
        };
        while live != 0 {
            let i = live.trailing_zeros() as usize;
            live &= live - 1;
            let connection = &block.connections[i];
            let potential = sources
                .neuron(connection.source_hexagon, connection.source_neuron)
                .potential;
            if connection.from_input {
                backprop_section::<false>(
                    &mut sections[i],
                    connection,
                    targets,
                    potential,
                    &mut events.delta_values,
                );
            } else {
                backprop_section::<true>(
                    &mut sections[i],
                    connection,
                    targets,
                    potential,
                    &mut events.delta_values,
                );
                events.delta_runs.push(DeltaRun {
                    hexagon: connection.source_hexagon,
                    neuron: connection.source_neuron,
                    end: events.delta_values.len(),
                });
            }
        }
    }
}

/// The backward section walk (spec §4.3). Unlike the forward walk it is not clamped to the
/// section's range (kept from the original). With `RECORD`, the source's error terms are
/// appended to `deltas` in synapse order.
#[inline]
fn backprop_section<const RECORD: bool>(
    section: &mut Section,
    connection: &Connection,
    targets: &[Neuron; NEURONS_PER_BLOCK],
    potential: f32,
    deltas: &mut Vec<f32>,
) {
    let mut remaining = potential - connection.lower_bound;
    let len = usize::from(connection.len);
    let mut pos = 0;
    while pos < len && remaining > WALK_THRESHOLD {
        let synapse = &mut section[pos];
        pos += 1;
        let target = &targets[target_index(synapse.target)];
        let agree = (target.potential > 0.0) == (synapse.weight > 0.0);
        // Without a branch: `agree` is unpredictable.
        synapse.counter += u8::from(agree & (synapse.counter < PERMANENT_COUNTER));
        if RECORD {
            deltas.push(target.delta * synapse.weight);
        }
        synapse.weight -= SYNAPSE_LEARNING_RATE * target.delta;
        remaining -= synapse.border;
    }
}
