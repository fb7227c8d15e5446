//! The backward pass (spec §4): from the last hexagon to the first, the derivative of each
//! hidden neuron's activation, then the weight update along every section.

use super::forward::{ForwardStep, target_index};
use super::output::output_derivatives;
use super::{BlockTask, InterfacesFree, Phase, Sources, for_each_live};
use crate::cluster::{Cluster, Walks};
use crate::network::{Hexagon, NEURONS_PER_BLOCK, Neuron, Section, WALK_THRESHOLD, bits, passes};

/// Learning rate of synapse weights.
pub(super) const SYNAPSE_LEARNING_RATE: f32 = 0.05;
/// `1 / ln 2` rounded as the original writes it (not `LOG2_E`, to keep its arithmetic).
#[allow(clippy::approx_constant)]
const INV_LN2: f32 = 1.4427;

impl Cluster {
    /// Runs the backward pass after a training forward pass, and `then` once the interfaces'
    /// values are no longer read: in the walks of the hexagon before the last one walked, or
    /// of the last one, if the backpropagation of every output (which reads the expected
    /// values) came before them, else at the end.
    ///
    /// Where the last hexagon walked is a hidden one fed by input hexagons alone and `then`
    /// says that the next row's training cycle follows, that cycle's forward pass up to
    /// this hexagon runs here, in the tasks of its backward walks (see
    /// [`Cluster::backward_then_forward`]).
    pub(crate) fn backward(&mut self, then: InterfacesFree<'_>) {
        let walked = |hexagon: &Hexagon| !hexagon.neurons.is_empty() && !hexagon.is_input;
        let last = self.hexagons.iter().position(walked);
        let ahead = last.filter(|&h| self.may_walk_ahead(h));
        // With the next forward pass walked ahead, the next row is read one phase earlier.
        let before_last = ahead
            .and_then(|last| (last + 1..self.hexagons.len()).find(|&h| walked(&self.hexagons[h])));
        let then_at = [before_last, last]
            .into_iter()
            .flatten()
            .find(|&at| self.hexagons[..at].iter().all(|h| h.output.is_none()));
        let mut then = Some(then);
        let mut follows = false;
        for h in (0..self.hexagons.len()).rev() {
            if let Some(o) = self.hexagons[h].output {
                self.backprop_output(h, o);
            }
            if !walked(&self.hexagons[h]) {
                continue;
            }
            if ahead == Some(h) && follows && !self.next_row_grows(h) {
                // Every hexagon before it is an input hexagon: nothing else is left to walk.
                self.creation_enabled = false;
                self.backward_then_forward(h);
                return;
            }
            let here = if then_at == Some(h) {
                then.take()
            } else {
                None
            };
            let step = BackwardStep::of(self, h);
            follows |= self.run_blocks(h, Phase::Backward, here, |task, sources| {
                step.run(task, sources);
            });
            self.merge_deltas(h);
        }
        if let Some(then) = then {
            // Nothing is left to walk ahead in.
            then(&mut self.inputs, &mut self.outputs);
        }
        self.creation_enabled = false;
    }

    /// Whether the next cycle's forward walks of hexagon `h`, the last hexagon walked
    /// backward, may run with its backward walks, if the next row's cycle follows: `h` is a
    /// hidden hexagon that is not the last, only input hexagons (without outputs) come before
    /// it and feed it, and no reduction comes between the cycles.
    fn may_walk_ahead(&mut self, h: usize) -> bool {
        let hexagon = &self.hexagons[h];
        if hexagon.is_output
            || h + 1 == self.hexagons.len()
            || self.reduces_after_this_cycle()
            || !self.hexagons[..h]
                .iter()
                .all(|before| before.is_input && before.output.is_none())
        {
            return false;
        }
        self.ensure_feeds();
        self.scratch.feeds[h].iter().all(|feed| feed.source < h)
    }

    /// Whether injecting the next row (in the interfaces) into the input hexagons before `h`
    /// would give a neuron its first section, which changes the network before this
    /// cycle's backward walks of `h`.
    fn next_row_grows(&self, h: usize) -> bool {
        (0..h).any(|s| {
            self.hexagons[s]
                .input
                .is_some_and(|input| self.fires_first_time(s, input))
        })
    }

    /// Runs the backward walks of hexagon `h` (fed by the input hexagons before it alone),
    /// and in the same block tasks the next cycle's forward walks of it: that cycle's rows
    /// are injected first (the backward walks read the potentials of this cycle's, kept in
    /// `Scratch::previous_row`), its live sections found, and its seeds drawn (this cycle
    /// draws none after). So the two phases need no meeting of the threads between them, and
    /// each block's sections are walked forward on the core that just walked them backward.
    /// The results are those of the two phases one after the other: a block task reads and
    /// writes only its own neurons and sections, and the sources' potentials of its row.
    fn backward_then_forward(&mut self, h: usize) {
        let backward = BackwardStep::of(self, h);
        self.start_forward();
        self.scratch
            .previous_row
            .resize_with(self.hexagons.len(), Vec::new);
        for s in 0..h {
            self.scratch.previous_row[s].clone_from(&self.hexagons[s].potentials);
            if let Some(input) = self.hexagons[s].input {
                self.inject(s, input, true);
            }
        }
        self.find_live_sections(h);
        let forward = ForwardStep::of(self, h, true);
        self.run_blocks(h, Phase::BackwardThenForward, None, |task, sources| {
            backward.run(task, &sources.of_previous_row());
            for (block, &live) in task.blocks.iter_mut().zip(task.ahead_live) {
                block.live = live;
            }
            forward.run(task, sources);
        });
        self.merge_deltas(h);
        self.forward_walked(h, true);
        self.scratch.walked_ahead = Some(h);
    }

    /// Adds the error terms that the backward walks of hexagon `h` recorded to their source
    /// neurons' deltas.
    fn merge_deltas(&mut self, h: usize) {
        let dim = self.hexagons[h].dim;
        for events in &self.scratch.events[..dim] {
            let mut start = 0;
            for run in &events.delta_runs {
                let neuron = &mut self.hexagons[run.hexagon as usize].neurons[run.neuron as usize];
                // Added one by one in synapse order, like the original. From `+0.0` that is
                // the sum the walk already made.
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
}

/// What the backward walks of one block of a hexagon do.
struct BackwardStep {
    walks: Walks,
    output: bool,
}

impl BackwardStep {
    /// The step for hexagon `h` of `cluster`.
    fn of(cluster: &Cluster, h: usize) -> BackwardStep {
        BackwardStep {
            walks: cluster.walks,
            output: cluster.hexagons[h].is_output,
        }
    }

    /// The derivatives of the block's neurons, then its backward section walks.
    fn run(&self, task: &mut BlockTask<'_>, sources: &Sources<'_>) {
        if self.output {
            output_derivatives(task.neurons, task.potentials);
        }
        backprop_neurons(task.neurons, task.potentials, *task.active);
        match self.walks {
            // SAFETY: chosen only where the CPU has AVX-512 (`Walks::runs_here`).
            #[cfg(target_arch = "x86_64")]
            Walks::Avx512 => unsafe { super::avx512::backprop_sections(task, sources) },
            // SAFETY: chosen only where the CPU has AVX2 (`Walks::runs_here`).
            #[cfg(target_arch = "x86_64")]
            Walks::Avx2 => unsafe { super::avx2::backprop_sections(task, sources) },
            Walks::Portable => backprop_sections(task, sources),
        }
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
    use super::super::two_classes::{cluster, expected, inputs, setups, train};
    use crate::Cluster;
    use crate::network::{ConnectionBlock, InputInterface, OutputInterface};

    /// Gives every chain of at least `shortest` synapses in `blocks` a range that ends in its
    /// middle, and returns how many there were.
    fn clamp_chains(blocks: &mut [ConnectionBlock], shortest: usize) -> usize {
        let mut clamped = 0;
        for block in blocks {
            let Some(sections) = block.sections.as_deref() else {
                continue;
            };
            for i in crate::network::bits(block.used) {
                let connection = &mut block.connections[i];
                let len = usize::from(connection.len);
                if len >= shortest {
                    connection.range = sections[i].ends[len / 2 - 1] as f32;
                    clamped += 1;
                }
            }
        }
        clamped
    }

    /// Trains `cluster` on samples `rows` as a training batch does: each cycle puts the next
    /// row into the interfaces (every input interface gets the sample's inputs) and says
    /// that its cycle follows. Returns after which cycles (counted from the first) the next
    /// forward pass had been walked ahead.
    fn train_ahead(cluster: &mut Cluster, rows: std::ops::Range<usize>) -> Vec<usize> {
        fn put(inputs_: &mut [InputInterface], outputs: &mut [OutputInterface], i: usize) {
            for input in inputs_ {
                input.values.copy_from_slice(&inputs(i));
            }
            outputs[0].expected.copy_from_slice(&expected(i));
        }
        let first = rows.start;
        put(&mut cluster.inputs, &mut cluster.outputs, first);
        let mut ahead = Vec::new();
        for i in rows.clone() {
            let next = i + 1;
            cluster.train_cycle(&mut |inputs_, outputs| {
                if next == rows.end {
                    return false;
                }
                put(inputs_, outputs, next);
                true
            });
            if cluster.scratch.walked_ahead.is_some() {
                ahead.push(i - first);
            }
        }
        ahead
    }

    /// Walking ahead with other shapes of network: two hidden hexagons in a row (only the
    /// first is walked ahead), and two input hexagons feeding the hidden one; and a network
    /// with reductions, which no cycle before them walks ahead of.
    #[test]
    fn walking_ahead_in_other_networks_changes_nothing() {
        let line = "hexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n    4,1,1\n\
             inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 8\n\
             outputs:\n    y:\n        target: 4,1,1\n        number_of_outputs: 2\n";
        let two_inputs = "hexagons:\n    1,1,1\n    2,0,1\n    2,1,1\n    3,1,1\n\
             inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 8\n\
             \x20   z:\n        target: 2,0,1\n        number_of_inputs: 8\n\
             outputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: 2\n";
        let plain = "hexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n\
             inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 8\n\
             outputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: 2\n";
        let cases = [
            ("line", line, "", 1),
            ("two inputs", two_inputs, "", 2),
            ("reductions", plain, "    enable_reduction: true\n", 1),
        ];
        for (what, layout, settings, walked) in cases {
            for threads in [1, 2] {
                let text = format!(
                    "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n{settings}{layout}"
                );
                let template = crate::Template::parse(&text).expect("the template parses");
                let options = crate::ClusterOptions {
                    seed: 3,
                    threads,
                    ..crate::ClusterOptions::default()
                };
                let mut ahead = Cluster::new(&template, options.clone()).unwrap();
                let mut apart = Cluster::new(&template, options).unwrap();
                let cycles = train_ahead(&mut ahead, 0..350);
                train(&mut apart, 0..350);
                assert!(ahead.save() == apart.save(), "{what}, {threads} threads");
                assert!(
                    cycles.len() > 300,
                    "{what}: {} cycles walked ahead",
                    cycles.len()
                );
                assert_eq!(ahead.scratch.walked_ahead, None);
                if what == "reductions" {
                    // The cycles before the reductions after cycles 100, 200 and 300.
                    assert!(![99, 199, 299].iter().any(|c| cycles.contains(c)), "{what}");
                }
                // The hexagon walked ahead: the first one that is not an input hexagon.
                let first = ahead.hexagons.iter().position(|h| !h.is_input);
                assert_eq!(first, Some(walked), "{what}");
                ahead.ensure_feeds();
                let sources: Vec<usize> = ahead.scratch.feeds[walked]
                    .iter()
                    .map(|feed| feed.source)
                    .collect();
                let inputs: Vec<usize> = (0..walked).collect();
                assert_eq!(sources, inputs, "{what}: fed by every input hexagon");
            }
        }
    }

    /// Where the next row's cycle follows, its forward walks of the hidden hexagon run in the
    /// tasks of this cycle's backward walks: the network is the one that cycles one after
    /// another give, with every kind of walks and thread count, also where the backward walks
    /// read their sources' potentials (chains clamped to their range). A cycle whose next row
    /// fires an input for the first time (row 1 here) does not walk ahead.
    #[test]
    fn walking_the_next_row_ahead_changes_nothing() {
        for (threads, walks) in setups(&[1, 2]) {
            let mut ahead = cluster(7, threads);
            assert!(ahead.set_walks(walks));
            let mut apart = cluster(7, threads);
            assert!(apart.set_walks(walks));
            let walked = train_ahead(&mut ahead, 0..200);
            train(&mut apart, 0..200);
            assert_eq!(walked.first(), Some(&1), "{walks:?}, {threads} threads");
            assert_eq!(walked.len(), 198, "every cycle but the first and last");
            assert!(ahead.save() == apart.save(), "{walks:?}, {threads} threads");
            for cluster in [&mut ahead, &mut apart] {
                let clamped = clamp_chains(&mut cluster.hexagons[1].blocks, 2);
                assert!(clamped > 0, "the hidden hexagon has chains to clamp");
            }
            assert_eq!(train_ahead(&mut ahead, 200..260).len(), 59);
            train(&mut apart, 200..260);
            assert!(
                ahead.save() == apart.save(),
                "{walks:?}, {threads} threads, clamped"
            );
        }
    }

    /// The backward walk does not clamp the potential to the section's range, the forward walk
    /// does: where a chain reaches beyond its range, the backward walk visits more synapses
    /// than the forward walk passed, and the vector walks must not take over the forward
    /// walk's end there.
    #[test]
    fn backward_walks_beyond_a_clamped_forward_walk() {
        let mut cluster = cluster(5, 1);
        train(&mut cluster, 0..400);
        // Every chain of at least four synapses gets a range that ends in its middle.
        let clamped: usize = cluster
            .hexagons
            .iter_mut()
            .map(|hexagon| clamp_chains(&mut hexagon.blocks, 4))
            .sum();
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
