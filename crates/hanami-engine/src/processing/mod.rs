//! Processing cycles (spec §3–§6): the forward pass over the hexagons in template order, the
//! backward pass in reverse order, growth between them and reduction every 100 cycles.
//!
//! The neuron blocks of one hexagon are independent work units: a block writes only its own
//! neurons and connection blocks. What a block would write elsewhere (split requests and
//! error terms for source neurons, "something grew") goes into its [`BlockEvents`], which are
//! merged after the hexagon in ascending block order. So results are the same for any number
//! of threads, and equal to running the blocks one after another.

mod backward;
mod forward;
mod growth;
mod output;
mod reduction;

use rayon::prelude::*;

use crate::cluster::{Cluster, Parallelism};
use crate::network::{ConnectionBlock, Hexagon, NEURONS_PER_BLOCK, Neuron};

/// Read-only view of the neurons of every hexagon except the one being processed, for
/// looking up the source neuron of a section.
pub(crate) struct Sources<'a> {
    neurons: Vec<&'a [Neuron]>,
}

impl<'a> Sources<'a> {
    /// `before` and `after` are the hexagons on either side of the current one.
    fn new(before: &'a [Hexagon], after: &'a [Hexagon]) -> Self {
        let mut neurons: Vec<&[Neuron]> = Vec::with_capacity(before.len() + after.len() + 1);
        neurons.extend(before.iter().map(|h| &h.neurons[..]));
        neurons.push(&[]);
        neurons.extend(after.iter().map(|h| &h.neurons[..]));
        Sources { neurons }
    }

    #[inline]
    fn neuron(&self, hexagon: u32, index: u32) -> &Neuron {
        &self.neurons[hexagon as usize][index as usize]
    }

    /// The used slots of `block` whose source neuron is active, as a bit mask. Built without
    /// branches on the (unpredictable) activity, which is much cheaper than skipping inactive
    /// sources one by one.
    #[inline]
    fn live_slots(&self, block: &ConnectionBlock) -> u64 {
        let mut live = 0u64;
        let mut used = block.used;
        while used != 0 {
            let i = used.trailing_zeros();
            used &= used - 1;
            let c = &block.connections[i as usize];
            live |= u64::from(self.neuron(c.source_hexagon, c.source_neuron).active) << i;
        }
        live
    }
}

/// A source neuron's section request, written by every processed section of that source
/// (the original's `isNew`, `newLowerBound`, `potentialRange`). The last one wins.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitRequest {
    hexagon: u32,
    neuron: u32,
    /// `(lower bound, range)` of the requested section; `None` clears the request.
    section: Option<(f32, f32)>,
}

/// The error terms of one section for its source neuron: the values before `end` (and after
/// the previous run's end) in [`BlockEvents::delta_values`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeltaRun {
    hexagon: u32,
    neuron: u32,
    end: usize,
}

/// What one block task leaves for the merge.
#[derive(Debug, Default)]
pub(crate) struct BlockEvents {
    grew: bool,
    splits: Vec<SplitRequest>,
    delta_runs: Vec<DeltaRun>,
    delta_values: Vec<f32>,
}

/// Buffers kept between cycles so that the hot path does not allocate.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    events: Vec<BlockEvents>,
    seeds: Vec<u32>,
    /// Input neurons that fire for the first time in this cycle.
    first_inputs: Vec<usize>,
}

/// One neuron block with the connection blocks that feed it.
struct BlockTask<'a> {
    /// Index of `blocks[0]` in the hexagon's connection-block list.
    first_block: usize,
    blocks: &'a mut [ConnectionBlock],
    neurons: &'a mut [Neuron],
    new_mask: &'a mut u64,
    events: &'a mut BlockEvents,
    seed: u32,
}

impl Cluster {
    /// One training cycle on the values already in the interfaces.
    pub(crate) fn train_cycle(&mut self) {
        self.forward(true);
        self.backward();
        if self.settings.enable_reduction {
            self.reduction_counter += 1;
            if self.reduction_counter >= reduction::CYCLES_BETWEEN_REDUCTIONS {
                self.reduction_counter = 0;
                self.reduce();
            }
        }
    }

    /// One request cycle on the input values already in the interfaces.
    pub(crate) fn request_cycle(&mut self) {
        self.forward(false);
    }

    /// Splits hexagon `h` into per-block tasks, runs `work` on each (in parallel when the
    /// cluster has threads), and returns the events in block order.
    fn run_blocks<F>(&mut self, h: usize, seeds: bool, work: F)
    where
        F: Fn(&mut BlockTask<'_>, &Sources<'_>) + Sync,
    {
        let dim = self.hexagons[h].dim;
        let Scratch {
            events,
            seeds: seed_buffer,
            ..
        } = &mut self.scratch;
        if events.len() < dim {
            events.resize_with(dim, BlockEvents::default);
        }
        seed_buffer.clear();
        if seeds {
            seed_buffer.extend((0..dim).map(|_| self.rng.rand()));
        } else {
            seed_buffer.resize(dim, 0);
        }
        let (before, rest) = self.hexagons.split_at_mut(h);
        let (current, after) = rest.split_first_mut().expect("hexagon index in range");
        let sources = Sources::new(before, after);
        let mut tasks: Vec<BlockTask<'_>> = current
            .neurons
            .chunks_mut(NEURONS_PER_BLOCK)
            .zip(current.blocks.chunks_mut(dim))
            .zip(current.new_mask.iter_mut())
            .zip(events.iter_mut())
            .zip(seed_buffer.iter())
            .enumerate()
            .map(|(b, ((((neurons, blocks), new_mask), events), &seed))| {
                events.grew = false;
                events.splits.clear();
                events.delta_runs.clear();
                events.delta_values.clear();
                BlockTask {
                    first_block: b * dim,
                    blocks,
                    neurons,
                    new_mask,
                    events,
                    seed,
                }
            })
            .collect();
        let run = |task: &mut BlockTask<'_>| work(task, &sources);
        match &self.parallel {
            _ if tasks.len() < 2 => tasks.iter_mut().for_each(run),
            Parallelism::Sequential => tasks.iter_mut().for_each(run),
            Parallelism::Current => tasks.par_iter_mut().for_each(run),
            Parallelism::Pool(pool) => pool.install(|| tasks.par_iter_mut().for_each(run)),
        }
    }
}
