//! The forward pass (spec §3): input injection, the synapse-section walk with growth, and the
//! update of hidden neurons.

use super::{BlockTask, Sources, SplitRequest};
use crate::cluster::Cluster;
use crate::network::{
    Connection, NEURONS_PER_BLOCK, Neuron, SYNAPSES_PER_SECTION, Section, Synapse, WALK_THRESHOLD,
};
use crate::rng::{RAND_MAX_F32, pcg_hash};

/// Neuron-update constants of one cluster.
struct NeuronParams {
    cooldown: f32,
    refractory_time: u32,
    /// The original's `potentialOverflow`, fixed at 1.0.
    overflow: f32,
}

impl Cluster {
    /// Runs the forward pass over all hexagons in template order. `train` enables output
    /// target sampling and the structural update at the end.
    pub(crate) fn forward(&mut self, train: bool) {
        let growth = train || self.options.request_growth;
        let last = self.hexagons.len() - 1;
        for h in 0..self.hexagons.len() {
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

    /// Writes the values of input interface `input` into hexagon `h` (only its own hexagon,
    /// spec §11.1 B6). An input that fires for the first time gets its first section.
    fn inject(&mut self, h: usize, input: usize, growth: bool) {
        let mut first_time = std::mem::take(&mut self.scratch.first_inputs);
        first_time.clear();
        let values = &self.inputs[input].values;
        for (k, (neuron, &value)) in self.hexagons[h].neurons.iter_mut().zip(values).enumerate() {
            neuron.potential = value;
            neuron.active = value > 0.0;
            if neuron.active && !neuron.in_use {
                first_time.push(k);
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
        let creation_enabled = self.creation_enabled;
        let hidden = !self.hexagons[h].is_output;
        let params = NeuronParams {
            cooldown: self.settings.neuron_cooldown,
            refractory_time: self.settings.refractory_time,
            overflow: 1.0,
        };
        self.run_blocks(h, true, |task, sources| {
            process_synapses(task, sources, growth, creation_enabled);
            if hidden {
                update_neurons(task.neurons, task.new_mask, &params);
            }
        });
        let dim = self.hexagons[h].dim;
        for events in &self.scratch.events[..dim] {
            self.creation_enabled |= events.grew;
            for split in &events.splits {
                let hexagon = &mut self.hexagons[split.hexagon as usize];
                let index = split.neuron as usize;
                let bit = 1u64 << (index % NEURONS_PER_BLOCK);
                let word = &mut hexagon.new_mask[index / NEURONS_PER_BLOCK];
                match split.section {
                    Some((lower, range)) => {
                        *word |= bit;
                        let neuron = &mut hexagon.neurons[index];
                        neuron.new_lower_bound = lower;
                        neuron.potential_range = range;
                    }
                    None => *word &= !bit,
                }
            }
        }
    }
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
    for (k, block) in task.blocks.iter_mut().enumerate() {
        let c = (task.first_block + k) as u32;
        let live = sources.live_slots(block);
        let Some(sections) = block.sections.as_deref_mut() else {
            continue;
        };
        let mut live = live;
        while live != 0 {
            let i = live.trailing_zeros() as usize;
            live &= live - 1;
            let connection = &mut block.connections[i];
            let source = sources.neuron(connection.source_hexagon, connection.source_neuron);
            seed = seed.wrapping_add(c * 64 + i as u32);
            let able = growth && (connection.from_input || creation_enabled || grew);
            let walk = walk_section(
                &mut sections[i],
                connection,
                targets,
                source.potential,
                able,
                &mut seed,
            );
            grew |= walk.grew;
            if growth {
                task.events.splits.push(SplitRequest {
                    hexagon: connection.source_hexagon,
                    neuron: connection.source_neuron,
                    section: walk.split,
                });
            }
        }
    }
    task.events.grew = grew;
}

/// What a section walk changed beyond its own section.
struct Walk {
    /// A synapse was created or split.
    grew: bool,
    /// `(lower bound, range)` of the section the source should get next.
    split: Option<(f32, f32)>,
}

/// The section walk (spec §3.3): each synapse consumes its border of the remaining potential
/// and passes its weight, in part if the potential ends inside its border. `able` sections
/// split borders, append a synapse when the chain is too short for the potential, and ask
/// for a follow-up section when the potential outlasts all 64 synapses.
///
/// Relies on two invariants (kept by growth and reduction, checked on restore): the synapses
/// before `connection.len` are all set and those after it unset, and the tolerance is below
/// 0.5, so that a border split is only possible where the signal ends inside a synapse.
#[inline]
fn walk_section(
    section: &mut Section,
    connection: &mut Connection,
    targets: &mut [Neuron; NEURONS_PER_BLOCK],
    potential: f32,
    able: bool,
    seed: &mut u32,
) -> Walk {
    let mut remaining = potential - connection.lower_bound;
    if remaining > connection.range {
        remaining = connection.range;
    }
    let mut half = 0.0f32;
    let len = usize::from(connection.len);
    let mut grew = false;
    let mut pos = 0;
    while pos < len && remaining > WALK_THRESHOLD {
        let synapse = &mut section[pos];
        if able && remaining < synapse.border {
            let tolerance = connection.tolerance;
            if remaining < (0.5 + tolerance) * synapse.border
                && remaining > (0.5 - tolerance) * synapse.border
            {
                // Border split: finer granularity where signals end.
                synapse.border /= 1.5;
                synapse.weight /= 1.5;
                connection.tolerance = tolerance / 1.2;
                grew = true;
            }
        }
        if pos < SYNAPSES_PER_SECTION / 2 {
            half += synapse.border;
        }
        let target = &mut targets[target_index(synapse.target)];
        if remaining < synapse.border {
            // The signal ends inside this synapse, which passes the matching fraction of its
            // weight. `remaining` becomes negative, so this is the last step.
            target.input += synapse.weight * ((1.0 / synapse.border) * remaining);
            remaining -= synapse.border;
            break;
        }
        target.input += synapse.weight;
        remaining -= synapse.border;
        pos += 1;
    }
    if able && pos == len && len < SYNAPSES_PER_SECTION && remaining > WALK_THRESHOLD {
        // The chain is too short: a new synapse takes all that is left and passes fully.
        let synapse = &mut section[pos];
        create_synapse(synapse, remaining, seed);
        connection.len += 1;
        grew = true;
        if pos < SYNAPSES_PER_SECTION / 2 {
            half += synapse.border;
        }
        targets[target_index(synapse.target)].input += synapse.weight;
        remaining -= synapse.border;
    }
    let split = if remaining > WALK_THRESHOLD && able {
        let next = (connection.lower_bound + half, connection.range - half);
        connection.range = half;
        Some(next)
    } else {
        None
    };
    Walk { grew, split }
}

/// Index of a set synapse's target; the mask (a no-op, targets are below 64) lets the compiler
/// drop the bounds check in the walks.
#[inline]
pub(super) fn target_index(target: u8) -> usize {
    usize::from(target) & (NEURONS_PER_BLOCK - 1)
}

/// A new synapse that consumes all of `border`, with a random target in the block and a
/// random weight in `±[0, 0.2]`, drawn from the block's `pcg` chain.
fn create_synapse(synapse: &mut Synapse, border: f32, seed: &mut u32) {
    synapse.border = border;
    synapse.counter = 5;
    *seed = pcg_hash(*seed);
    synapse.target = (*seed % NEURONS_PER_BLOCK as u32) as u8;
    *seed = pcg_hash(*seed);
    synapse.weight = (*seed as f32 / RAND_MAX_F32) / 10.0;
    *seed = pcg_hash(*seed);
    if *seed % 1000 < 500 {
        synapse.weight = -synapse.weight;
    }
}

/// Updates the hidden neurons of one block (spec §3.4): cooldown, refractory countdown,
/// `log2(1 + x)` activation, and the request bits for neurons that fired for the first time.
fn update_neurons(neurons: &mut [Neuron], new_mask: &mut u64, params: &NeuronParams) {
    let mut mask = 0u64;
    for (j, neuron) in neurons.iter_mut().enumerate() {
        neuron.potential /= params.cooldown;
        neuron.refractory = neuron.refractory.saturating_sub(1);
        if neuron.refractory == 0 {
            neuron.potential += params.overflow * neuron.input;
            neuron.refractory = params.refractory_time;
        }
        neuron.active = neuron.potential > 0.0;
        neuron.potential = if neuron.active {
            (neuron.potential + 1.0).log2()
        } else {
            0.0
        };
        neuron.input = 0.0;
        neuron.delta = 0.0;
        if neuron.active && !neuron.in_use {
            mask |= 1 << j;
        }
        neuron.new_lower_bound = 0.0;
        neuron.potential_range = f32::MAX;
    }
    *new_mask = mask;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `cycles` neuron updates with a constant input of 100 and returns the potentials.
    fn potentials(refractory_time: u32, cooldown: f32, cycles: usize) -> Vec<f32> {
        let params = NeuronParams {
            cooldown,
            refractory_time,
            overflow: 1.0,
        };
        let mut neurons = vec![Neuron::default(); NEURONS_PER_BLOCK];
        let mut mask = 0;
        (0..cycles)
            .map(|_| {
                neurons[0].input = 100.0;
                update_neurons(&mut neurons, &mut mask, &params);
                neurons[0].potential
            })
            .collect()
    }

    #[test]
    fn refractory_time_counts_down_cycles() {
        let fresh = (101.0f32).log2();
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
        neurons[3].input = 2.0;
        neurons[5].input = 2.0;
        neurons[5].in_use = true;
        let mut mask = 0;
        update_neurons(&mut neurons, &mut mask, &params);
        assert_eq!(mask, 1 << 3);
        assert!(neurons[3].active && neurons[5].active && !neurons[4].active);
        assert_eq!(neurons[3].input, 0.0);
    }
}
