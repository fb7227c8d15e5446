//! The backward pass (spec §4): from the last hexagon to the first, the derivative of each
//! hidden neuron's activation, then the weight update along every section.

use super::forward::target_index;
use super::output::output_derivatives;
use super::{BlockTask, InterfacesFree, Sources, for_each_live};
use crate::cluster::{Cluster, Walks};
use crate::network::{Hexagon, NEURONS_PER_BLOCK, Neuron, Section, WALK_THRESHOLD, bits, passes};

/// Learning rate of synapse weights.
pub(super) const SYNAPSE_LEARNING_RATE: f32 = 0.05;
/// `1 / ln 2` rounded as the original writes it (not `LOG2_E`, to keep its arithmetic).
#[allow(clippy::approx_constant)]
const INV_LN2: f32 = 1.4427;

impl Cluster {
    /// Runs the backward pass after a training forward pass, and `then` once the interfaces'
    /// values are no longer read: in the walks of the last hexagon, if the backpropagation
    /// of every output (which reads the expected values) came before them, else at the end.
    pub(crate) fn backward(&mut self, then: InterfacesFree<'_>) {
        let walked = |hexagon: &Hexagon| !hexagon.neurons.is_empty() && !hexagon.is_input;
        let then_at = self
            .hexagons
            .iter()
            .position(walked)
            .filter(|&last| self.hexagons[..last].iter().all(|h| h.output.is_none()));
        let mut then = Some(then);
        for h in (0..self.hexagons.len()).rev() {
            if let Some(o) = self.hexagons[h].output {
                self.backprop_output(h, o);
            }
            let hexagon = &self.hexagons[h];
            if !walked(hexagon) {
                continue;
            }
            let walks = self.walks;
            let output = hexagon.is_output;
            let here = if then_at == Some(h) {
                then.take()
            } else {
                None
            };
            self.run_blocks(h, false, here, |task, sources| {
                if output {
                    output_derivatives(task.neurons, task.potentials);
                }
                backprop_neurons(task.neurons, task.potentials, *task.active);
                match walks {
                    // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
                    #[cfg(target_arch = "x86_64")]
                    Walks::Avx512 => unsafe { super::avx512::backprop_sections(task, sources) },
                    // SAFETY: chosen only where the CPU has AVX2 (`Walks::runs_here`).
                    #[cfg(target_arch = "x86_64")]
                    Walks::Avx2 => unsafe { super::avx2::backprop_sections(task, sources) },
                    Walks::Portable => backprop_sections(task, sources),
                }
            });
            let dim = self.hexagons[h].dim;
            for events in &self.scratch.events[..dim] {
                let mut start = 0;
                for run in &events.delta_runs {
                    let neuron =
                        &mut self.hexagons[run.hexagon as usize].neurons[run.neuron as usize];
                    // Added one by one in synapse order, like the original. From `+0.0`
                    // that is the sum the walk already made.
                    if neuron.delta.to_bits() == 0 {
                        neuron.delta = run.sum;
                    } else {
                        let mut delta = neuron.delta;
                        for &value in &events.delta_values[start..run.end] {
                            delta += value;
                        }
                        neuron.delta = delta;
                    }
                    start = run.end;
                }
            }
        }
        if let Some(then) = then {
            then(&mut self.inputs, &mut self.outputs);
        }
        self.creation_enabled = false;
    }
}

/// Multiplies the delta of every active neuron by the derivative of `log2(1 + x)`, written in
/// terms of the output: `1.4427 · 0.5^potential`.
fn backprop_neurons(neurons: &mut [Neuron], potentials: &[f32], active: u64) {
    for j in bits(active) {
        neurons[j].delta *= INV_LN2 * 0.5f32.powf(potentials[j]);
    }
}

/// Updates the weights of every section of the block whose source is active, and records the
/// error terms for the source neurons. Input neurons' deltas are never read, so no terms are
/// recorded for them.
fn backprop_sections(task: &mut BlockTask<'_>, sources: &Sources<'_>) {
    let targets: &[Neuron; NEURONS_PER_BLOCK] = (&*task.neurons)
        .try_into()
        .expect("a neuron block has 64 neurons");
    // What the walks read of their targets, in dense form.
    let deltas: [f32; NEURONS_PER_BLOCK] = std::array::from_fn(|j| targets[j].delta);
    let positive = task
        .potentials
        .iter()
        .enumerate()
        .fold(0u64, |m, (j, &p)| m | (u64::from(p > 0.0) << j));
    let events = &mut *task.events;
    // A section whose source is inactive has no potential above its lower bound, so its walk
    // would stop at once: only the slots that were live in the forward pass (the activity has
    // not changed since) are walked.
    for_each_live(
        task.blocks,
        task.first_block,
        |_, _, connection, section| {
            let potential = sources.potential(connection.source_hexagon, connection.source_neuron);
            let remaining = potential - connection.lower_bound;
            if remaining <= WALK_THRESHOLD {
                return;
            }
            let threshold = f64::from(remaining) - f64::from(WALK_THRESHOLD);
            let len = usize::from(connection.len);
            if connection.from_input {
                let _ = backprop_section::<false>(
                    section,
                    len,
                    threshold,
                    &deltas,
                    positive,
                    &mut events.delta_values,
                );
            } else {
                let sum = backprop_section::<true>(
                    section,
                    len,
                    threshold,
                    &deltas,
                    positive,
                    &mut events.delta_values,
                );
                events.record_run(connection, sum);
            }
        },
    );
}

/// The backward section walk (spec §4.3) over a chain of `len` synapses: each synapse is
/// visited while more than the walk threshold is left before it (`threshold` is the
/// potential minus the walk threshold). Unlike the forward walk the potential is not clamped
/// to the section's range (kept from the original). With `RECORD`, the source's error terms
/// are appended to `terms` in synapse order, and their sum (added one by one to `+0.0`) is
/// returned.
#[inline]
fn backprop_section<const RECORD: bool>(
    section: &mut Section,
    len: usize,
    threshold: f64,
    deltas: &[f32; NEURONS_PER_BLOCK],
    positive: u64,
    terms: &mut Vec<f32>,
) -> f32 {
    // Counters compare with the weights before the update. Most synapses are permanent
    // (counter 10) after a while; where some are not, the walk notes which visited synapses
    // agree with their target, and only those counters change (synapses that disagree, e.g.
    // negative weights onto output-hexagon neurons, stay unsettled for good and cost nothing).
    let unsettled = section.unsettled;
    if unsettled == 0 {
        return walk_weights::<RECORD, false>(section, len, threshold, deltas, positive, terms).0;
    }
    let (sum, agree) =
        walk_weights::<RECORD, true>(section, len, threshold, deltas, positive, terms);
    section.raise_counters(agree);
    sum
}

/// The weight updates of a backward walk. With `AGREE`, also returns the visited synapses
/// whose weight sign (before the update) agrees with whether their target is active, as a
/// bit mask.
#[inline(always)]
fn walk_weights<const RECORD: bool, const AGREE: bool>(
    section: &mut Section,
    len: usize,
    threshold: f64,
    deltas: &[f32; NEURONS_PER_BLOCK],
    positive: u64,
    terms: &mut Vec<f32>,
) -> (f32, u64) {
    if RECORD {
        terms.reserve(len);
    }
    let mut sum = 0.0f32;
    let mut agree = 0u64;
    for (k, ((&end, &target), weight)) in section.ends[..len]
        .iter()
        .zip(&section.target[..len])
        .zip(&mut section.weight[..len])
        .enumerate()
    {
        let t = target_index(target);
        let delta = deltas[t];
        if AGREE {
            let agrees = ((positive >> t) & 1 != 0) == (*weight > 0.0);
            agree |= u64::from(agrees) << k;
        }
        if RECORD {
            // The source's error term uses the weight before the update.
            let term = delta * *weight;
            terms.push(term);
            sum += term;
        }
        *weight -= SYNAPSE_LEARNING_RATE * delta;
        if !passes(end, threshold) {
            break;
        }
    }
    (sum, agree)
}

#[cfg(test)]
mod tests {
    use super::super::two_classes::{cluster, train};
    use crate::Cluster;

    /// The backward walk does not clamp the potential to the section's range, the forward walk
    /// does: where a chain reaches beyond its range, the backward walk visits more synapses
    /// than the forward walk passed, and the vector walks must not take over the forward
    /// walk's end there.
    #[test]
    fn backward_walks_beyond_a_clamped_forward_walk() {
        let mut cluster = cluster(5, 1);
        train(&mut cluster, 0..400);
        // Every chain of at least four synapses gets a range that ends in its middle.
        let mut clamped = 0;
        for hexagon in &mut cluster.hexagons {
            for block in &mut hexagon.blocks {
                let Some(sections) = block.sections.as_deref() else {
                    continue;
                };
                for i in crate::network::bits(block.used) {
                    let connection = &mut block.connections[i];
                    let len = usize::from(connection.len);
                    if len >= 4 {
                        connection.range = sections[i].ends[len / 2 - 1] as f32;
                        clamped += 1;
                    }
                }
            }
        }
        assert!(clamped > 0, "the network has chains to clamp");
        let mut portable = Cluster::restore(&cluster.save()).unwrap();
        portable.set_vector_walks(false);
        train(&mut portable, 400..450);
        assert!(
            portable.save() != cluster.save(),
            "training changed the network"
        );
        for walks in crate::Walks::supported() {
            let mut vector = Cluster::restore(&cluster.save()).unwrap();
            assert!(vector.set_walks(walks));
            train(&mut vector, 400..450);
            assert!(portable.save() == vector.save(), "{walks:?} walks");
        }
    }
}
