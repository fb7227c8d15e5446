//! The output layer (spec §3.5, §4.1): output-hexagon neurons become `sigmoid(input)`, and each
//! output neuron is the sigmoid of a weighted sum over up to seven sampled hexagon neurons.

use crate::cluster::Cluster;
use crate::network::{NEURONS_PER_BLOCK, NO_NEURON};
use crate::rng::{RAND_MAX_F32, pcg_hash};

/// Learning rate of the output-target weights.
const OUTPUT_LEARNING_RATE: f32 = 0.1;

/// `1 / (1 + e^-x)` in `f32`.
#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Cluster {
    /// Computes the outputs of interface `o` on hexagon `h`. In training, empty target slots
    /// of outputs whose expected value is positive sample a new neuron with 2% probability.
    pub(crate) fn process_output(&mut self, h: usize, o: usize, train: bool) {
        let hexagon = &mut self.hexagons[h];
        for (neuron, potential) in hexagon.neurons.iter_mut().zip(&mut hexagon.potentials) {
            // A neuron without input has exactly sigmoid(0) = 0.5.
            *potential = if neuron.input == 0.0 {
                0.5
            } else {
                sigmoid(neuron.input)
            };
            neuron.input = 0.0;
        }
        let mut seed = self.rng.rand();
        let blocks = hexagon.neuron_blocks() as u32;
        let output = &mut self.outputs[o];
        for ((targets, value), &expected) in output
            .targets
            .iter_mut()
            .zip(output.values.iter_mut())
            .zip(output.expected.iter())
        {
            let mut sum = 0.0f32;
            for target in targets.iter_mut() {
                if train {
                    seed = pcg_hash(seed);
                    if target.neuron == NO_NEURON && expected > 0.0 && seed.is_multiple_of(50) {
                        seed = pcg_hash(seed);
                        let block = seed % blocks;
                        seed = pcg_hash(seed);
                        let index =
                            block * NEURONS_PER_BLOCK as u32 + seed % NEURONS_PER_BLOCK as u32;
                        let potential = hexagon.potentials[index as usize];
                        if potential != 0.5 {
                            target.neuron = index;
                            seed = pcg_hash(seed);
                            target.weight = seed as f32 / RAND_MAX_F32;
                            if potential < 0.5 {
                                target.weight = -target.weight;
                            }
                        }
                    }
                }
                if target.neuron == NO_NEURON {
                    continue;
                }
                sum += hexagon.potentials[target.neuron as usize] * target.weight;
            }
            *value = if sum != 0.0 { sigmoid(sum) } else { 0.0 };
        }
    }

    /// Back-propagates the output error of interface `o` into hexagon `h` and updates the
    /// target weights. Output-hexagon deltas are not reset between cycles (spec §4.1, kept).
    pub(crate) fn backprop_output(&mut self, h: usize, o: usize) {
        let hexagon = &mut self.hexagons[h];
        let output = &mut self.outputs[o];
        for ((targets, &value), &expected) in output
            .targets
            .iter_mut()
            .zip(output.values.iter())
            .zip(output.expected.iter())
        {
            let update = (value - expected) * (value * (1.0 - value));
            for target in targets.iter_mut().filter(|t| t.neuron != NO_NEURON) {
                let index = target.neuron as usize;
                hexagon.neurons[index].delta += update * target.weight;
                target.weight -= update * OUTPUT_LEARNING_RATE * hexagon.potentials[index];
            }
        }
        for (neuron, &potential) in hexagon.neurons.iter_mut().zip(&hexagon.potentials) {
            neuron.delta *= potential * (1.0 - potential);
        }
    }
}
