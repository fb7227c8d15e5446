//! The output layer (spec §3.5, §4.1): output-hexagon neurons become `sigmoid(input)`, and each
//! output neuron is the sigmoid of a weighted sum over up to seven sampled hexagon neurons.

pub(super) use super::exp::sigmoid;
use crate::cluster::{Cluster, Walks};
use crate::network::{
    NEURONS_PER_BLOCK, NO_NEURON, Neuron, OUTPUT_TARGETS, OutputInterface, OutputTarget,
};
use crate::rng::{RAND_MAX_F32, pcg_hash};

/// Learning rate of the output-target weights.
const OUTPUT_LEARNING_RATE: f32 = 0.1;

/// Turns the summed inputs of a block of output-hexagon neurons into their potentials,
/// `sigmoid(input)`, and clears the inputs; sixteen at a time with vector walks (same bits).
pub(super) fn output_potentials(walks: Walks, neurons: &mut [Neuron], potentials: &mut [f32]) {
    match walks {
        // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
        #[cfg(target_arch = "x86_64")]
        Walks::Avx512 => unsafe { super::avx512::output_potentials(neurons, potentials) },
        // The portable code, also with the AVX2 walks (their vector sigmoids showed no gain
        // in training steps, which take a few blocks of them).
        _ => {
            for (neuron, potential) in neurons.iter_mut().zip(potentials.iter_mut()) {
                *potential = sigmoid(neuron.input);
            }
        }
    }
    for neuron in neurons {
        neuron.input = 0.0;
    }
}

/// `sigmoid` of sixteen values, at once with vector walks (same bits).
pub(super) fn sigmoid_lanes(walks: Walks, values: &[f32; 16]) -> [f32; 16] {
    match walks {
        // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
        #[cfg(target_arch = "x86_64")]
        Walks::Avx512 => unsafe { super::avx512::sigmoid_array(values) },
        // SAFETY: chosen only where the CPU has AVX2 and FMA (`Walks::runs_here`).
        #[cfg(target_arch = "x86_64")]
        Walks::Avx2 => unsafe { super::avx2::sigmoid_array(values) },
        Walks::Portable => values.map(sigmoid),
    }
}

/// Multiplies the delta of every neuron of a block of output-hexagon neurons by the
/// derivative of the sigmoid, `potential · (1 − potential)`.
pub(super) fn output_derivatives(neurons: &mut [Neuron], potentials: &[f32]) {
    for (neuron, &potential) in neurons.iter_mut().zip(potentials) {
        neuron.delta *= potential * (1.0 - potential);
    }
}

/// Fills empty target slots of outputs whose expected value is positive: each slot draws from
/// the `pcg` chain of `seed`, and 2% of them sample a neuron of the output hexagon (of
/// `blocks` neuron blocks) that got input in this cycle.
fn sample_targets(output: &mut OutputInterface, potentials: &[f32], blocks: usize, mut seed: u32) {
    let blocks = blocks as u32;
    // Only an empty slot of an output with a positive expected value can sample, and the
    // seed chain ends here: the draws after the last such slot change nothing.
    let Some(last) =
        output
            .targets
            .iter()
            .zip(&output.expected)
            .rposition(|(targets, &expected)| {
                expected > 0.0 && targets.iter().any(|t| t.neuron == NO_NEURON)
            })
    else {
        return;
    };
    for (targets, &expected) in output.targets[..=last]
        .iter_mut()
        .zip(output.expected.iter())
    {
        for target in targets.iter_mut() {
            seed = pcg_hash(seed);
            if target.neuron == NO_NEURON && expected > 0.0 && seed.is_multiple_of(50) {
                seed = pcg_hash(seed);
                let block = seed % blocks;
                seed = pcg_hash(seed);
                let index = block * NEURONS_PER_BLOCK as u32 + seed % NEURONS_PER_BLOCK as u32;
                let potential = potentials[index as usize];
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
    }
}

/// Each output's value: the sigmoid of its targets' potentials times their weights, or 0
/// when that sum is 0 (no target yet).
pub(super) fn output_values(
    targets: &[[OutputTarget; OUTPUT_TARGETS]],
    potentials: &[f32],
    values: &mut [f32],
) {
    for (targets, value) in targets.iter().zip(values.iter_mut()) {
        let mut sum = 0.0f32;
        for target in targets.iter().filter(|t| t.neuron != NO_NEURON) {
            sum += potentials[target.neuron as usize] * target.weight;
        }
        *value = if sum != 0.0 { sigmoid(sum) } else { 0.0 };
    }
}

impl Cluster {
    /// Computes the outputs of interface `o` on hexagon `h`, whose neurons' potentials the
    /// forward walks left (`output_potentials`). In training, empty target slots of outputs
    /// whose expected value is positive sample a new neuron with 2% probability.
    pub(crate) fn process_output(&mut self, h: usize, o: usize, train: bool) {
        let hexagon = &mut self.hexagons[h];
        let seed = self.rng.rand();
        let output = &mut self.outputs[o];
        if train && output.learns {
            // Sampling reads only the potentials and its own seed chain, so sampling every
            // slot before summing is the same as the original's sampling inside the sums.
            sample_targets(output, &hexagon.potentials, hexagon.neuron_blocks(), seed);
        }
        output_values(&output.targets, &hexagon.potentials, &mut output.values);
    }

    /// Back-propagates the output error of interface `o` into the deltas of hexagon `h`'s
    /// neurons and updates the target weights; the backward walks then multiply the deltas by
    /// the sigmoid's derivative (`output_derivatives`). Output-hexagon deltas are not reset
    /// between cycles (spec §4.1, kept).
    pub(crate) fn backprop_output(&mut self, h: usize, o: usize) {
        let hexagon = &mut self.hexagons[h];
        let output = &mut self.outputs[o];
        if !output.learns {
            // No error from this output, and none left over from earlier cycles (these
            // deltas are never reset otherwise): its hexagon's synapses keep their weights.
            hexagon.neurons.iter_mut().for_each(|n| n.delta = 0.0);
            return;
        }
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
    }
}

#[cfg(test)]
mod tests {
    use super::OutputTarget;
    use crate::Cluster;

    /// Inputs of sample `i` for a cluster with eight inputs: one of two halves lit.
    fn sample(i: usize) -> ([f32; 8], [f32; 2]) {
        let mut x = [0.0; 8];
        for (j, v) in x.iter_mut().enumerate() {
            if j / 4 == i % 2 {
                *v = (100 + (i * 7 + j) % 50) as f32;
            }
        }
        (
            x,
            [i.is_multiple_of(2) as u8 as f32, (i % 2 == 1) as u8 as f32],
        )
    }

    fn targets(cluster: &Cluster, output: usize) -> Vec<(u32, u32)> {
        let flat = cluster.outputs[output].targets.iter().flatten();
        flat.map(|t: &OutputTarget| (t.neuron, t.weight.to_bits()))
            .collect()
    }

    #[test]
    fn an_output_left_out_of_a_training_step_keeps_its_targets() {
        let text = "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n\
                    hexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n    3,2,1\n\
                    inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 8\n\
                    outputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: 2\n\
                    \x20   z:\n        target: 3,2,1\n        number_of_outputs: 2\n";
        let mut cluster = Cluster::from_template_text(text, 3).unwrap();
        // Both learn until `z` has some targets, but not all 14 (2% per slot and cycle).
        let mut i = 0;
        while targets(&cluster, 1)
            .iter()
            .all(|&(n, _)| n == super::NO_NEURON)
        {
            let (x, y) = sample(i);
            cluster
                .train_step(&[("x", &x)], &[("y", &y), ("z", &y)])
                .unwrap();
            i += 1;
        }
        let z = targets(&cluster, 1);
        assert!(z.iter().any(|&(n, _)| n == super::NO_NEURON), "{z:?}");
        // From here on only `y` is named; the expected values `z` keeps from its last cycle
        // are positive for one output, so it could sample and learn if it were trained.
        let y = targets(&cluster, 0);
        // Right away no error terms are left in `z`'s hexagon to change its synapses (they
        // are never reset otherwise and would fade over a few cycles).
        let hexagon = cluster.outputs[1].hexagon;
        let had_errors = cluster.hexagons[hexagon]
            .neurons
            .iter()
            .any(|n| n.delta != 0.0);
        assert!(had_errors);
        let (x, expected) = sample(i);
        cluster
            .train_step(&[("x", &x)], &[("y", &expected)])
            .unwrap();
        assert!(
            cluster.hexagons[hexagon]
                .neurons
                .iter()
                .all(|n| n.delta == 0.0)
        );
        for i in i + 1..i + 500 {
            let (x, y) = sample(i);
            cluster.train_step(&[("x", &x)], &[("y", &y)]).unwrap();
        }
        assert_eq!(targets(&cluster, 1), z);
        assert_ne!(targets(&cluster, 0), y);
    }
}
