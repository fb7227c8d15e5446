//! Growth (spec §3.6, §3.7, §6): new sections for neurons that ask for one, placed in a random
//! free slot of a growth-target hexagon, which is resized when it is full.

use crate::cluster::Cluster;
use crate::geometry::{GROWTH_TARGETS, NO_HEXAGON};
use crate::network::{
    ConnectionBlock, NEURONS_PER_BLOCK, Neuron, SECTION_STORE_BYTES, new_section_store,
};

impl Cluster {
    /// Creates the sections requested during this forward pass, in hexagon, block and neuron
    /// order.
    pub(crate) fn structural_update(&mut self) {
        for h in 0..self.hexagons.len() {
            for b in 0..self.hexagons[h].new_mask.len() {
                let mut mask = self.hexagons[h].new_mask[b];
                while mask != 0 {
                    let j = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let index = b * NEURONS_PER_BLOCK + j;
                    let neuron = self.hexagons[h].neurons[index];
                    self.create_section(h, index, neuron.new_lower_bound, neuron.potential_range);
                    self.hexagons[h].neurons[index].new_lower_bound = 0.0;
                }
                self.hexagons[h].new_mask[b] = 0;
            }
        }
    }

    /// Gives neuron `neuron` of hexagon `h` a section for the potential interval
    /// `[lower_bound, lower_bound + range)` in a random growth-target hexagon. Returns whether
    /// a section was created: not for output hexagons, dead-end targets (spec §11.1 B4), or
    /// when a memory budget is spent (B5).
    pub(crate) fn create_section(
        &mut self,
        h: usize,
        neuron: usize,
        lower_bound: f32,
        range: f32,
    ) -> bool {
        if self.hexagons[h].is_output {
            return false;
        }
        let target = self.hexagons[h].targets[self.rng.below(GROWTH_TARGETS)];
        if target == NO_HEXAGON || self.hexagons[target as usize].is_input {
            self.stats.sections_without_target =
                self.stats.sections_without_target.saturating_add(1);
            return false;
        }
        let t = target as usize;
        let slot = match self.find_free_slot(t) {
            Ok(Some(slot)) => Ok(slot),
            // A resized hexagon has free slots in its new blocks.
            Ok(None) => self
                .resize(t)
                .and_then(|()| self.find_free_slot(t))
                .map(|slot| slot.expect("a resized hexagon has free slots")),
            Err(refusal) => Err(refusal),
        };
        let (c, i) = match slot {
            Ok(slot) => slot,
            Err(refusal) => {
                // Counts for reports: they stop at their maximum (a restored one may start
                // anywhere) instead of wrapping.
                self.stats.sections_refused = self.stats.sections_refused.saturating_add(1);
                if refusal == Refusal::Pool {
                    self.stats.sections_refused_by_pool =
                        self.stats.sections_refused_by_pool.saturating_add(1);
                }
                return false;
            }
        };
        let from_input = self.hexagons[h].is_input;
        let block = &mut self.hexagons[t].blocks[c];
        block.used |= 1 << i;
        let connection = &mut block.connections[i];
        connection.source_hexagon = h as u32;
        connection.source_neuron = neuron as u32;
        connection.from_input = from_input;
        connection.lower_bound = lower_bound;
        connection.range = range;
        // The tolerance of a reused slot is kept, as in the original.
        self.hexagons[h].in_use[neuron / NEURONS_PER_BLOCK] |= 1 << (neuron % NEURONS_PER_BLOCK);
        self.scratch.feeds_valid = false;
        true
    }

    /// A free section slot `(connection block, slot)` of hexagon `t`, searched from a random
    /// connection block onwards, or `None` if every slot is taken. Allocates the block's
    /// synapse storage on first use.
    fn find_free_slot(&mut self, t: usize) -> Result<Option<(usize, usize)>, Refusal> {
        let count = self.hexagons[t].blocks.len();
        if count == 0 {
            return Ok(None);
        }
        let mut c = self.rng.below(count);
        for _ in 0..count {
            let used = self.hexagons[t].blocks[c].used;
            if used != u64::MAX {
                if self.hexagons[t].blocks[c].sections.is_none() {
                    self.take_memory(SECTION_STORE_BYTES)?;
                    self.hexagons[t].blocks[c].sections = Some(new_section_store());
                    self.section_stores += 1;
                }
                return Ok(Some((c, (!used).trailing_zeros() as usize)));
            }
            c = (c + 1) % count;
        }
        Ok(None)
    }

    /// Grows hexagon `t` from `n` to `n + 1` neuron blocks and from `n²` to `(n + 1)²`
    /// connection blocks; block `(b, k)` keeps feeding neuron block `b`. Refused when a
    /// memory budget does not allow it.
    fn resize(&mut self, t: usize) -> Result<(), Refusal> {
        let n = self.hexagons[t].dim;
        let m = n + 1;
        let extra = (m * m - n * n) * std::mem::size_of::<ConnectionBlock>()
            + NEURONS_PER_BLOCK * (std::mem::size_of::<Neuron>() + 4)
            + 3 * 8;
        self.take_memory(extra)?;
        let hexagon = &mut self.hexagons[t];
        let old = std::mem::take(&mut hexagon.blocks);
        let mut blocks: Vec<ConnectionBlock> =
            (0..m * m).map(|_| ConnectionBlock::default()).collect();
        for (index, block) in old.into_iter().enumerate() {
            blocks[(index / n) * m + index % n] = block;
        }
        hexagon.blocks = blocks;
        hexagon.dim = m;
        hexagon.resize_neurons(m);
        self.scratch.feeds_valid = false;
        Ok(())
    }

    /// Counts `bytes` more of network against the cluster's memory budget and its pool's,
    /// unless either would be exceeded. (`memory_bytes` grows by exactly `bytes` when the
    /// caller allocates them.)
    fn take_memory(&mut self, bytes: usize) -> Result<(), Refusal> {
        if self.memory_bytes() + bytes > self.options.memory_limit {
            return Err(Refusal::Cluster);
        }
        let fits = self.pool.as_mut().is_none_or(|share| share.try_grow(bytes));
        if fits { Ok(()) } else { Err(Refusal::Pool) }
    }
}

/// Which memory budget refused growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The cluster's own ([`crate::ClusterOptions::memory_limit`]).
    Cluster,
    /// The pool it shares with other clusters ([`crate::MemoryPool`]).
    Pool,
}
