//! Reduction (spec §5, decided F): every 100 training cycles, synapses that rarely agree with
//! their target lose a point of their usage counter and disappear at zero. The original hangs
//! instead; here reduction always completes.

use crate::cluster::Cluster;
use crate::geometry::NO_HEXAGON;
use crate::network::PERMANENT_COUNTER;

/// Training cycles between two reductions.
pub(crate) const CYCLES_BETWEEN_REDUCTIONS: u32 = 100;

impl Cluster {
    /// Decrements the counters of all non-permanent synapses and removes those that reach
    /// zero. The remaining synapses of a section move up to close the gaps, keeping their
    /// order, and the next one (or the last one) takes over a removed synapse's border: the
    /// section still consumes the same potential, so a signal does not outlast the chain and
    /// grow new synapses in the removed ones' place (which made the network grow for ever).
    /// A section that lost all its synapses frees its slot, and its source immediately gets
    /// a fresh section for the same potential interval, so no interval is left uncovered.
    pub(crate) fn reduce(&mut self) {
        let mut freed = Vec::new();
        for hexagon in &mut self.hexagons {
            for block in &mut hexagon.blocks {
                let Some(sections) = block.sections.as_deref_mut() else {
                    continue;
                };
                let mut used = block.used;
                while used != 0 {
                    let i = used.trailing_zeros() as usize;
                    used &= used - 1;
                    let connection = &mut block.connections[i];
                    let section = &mut sections[i];
                    let len = usize::from(connection.len);
                    let mut kept = 0;
                    let mut carried = 0.0f32;
                    for pos in 0..len {
                        let mut counter = section.counter[pos];
                        if counter < PERMANENT_COUNTER {
                            counter = counter.saturating_sub(1);
                        }
                        if counter > 0 {
                            section.weight[kept] = section.weight[pos];
                            section.border[kept] = section.border[pos] + carried;
                            carried = 0.0;
                            section.target[kept] = section.target[pos];
                            section.counter[kept] = counter;
                            kept += 1;
                        } else {
                            carried += section.border[pos];
                        }
                    }
                    if kept > 0 {
                        section.border[kept - 1] += carried;
                    }
                    section.clear_from(kept);
                    section.update_ends(kept);
                    section.update_unsettled(kept);
                    connection.len = kept as u8;
                    if kept == 0 && len > 0 {
                        freed.push((
                            connection.source_hexagon as usize,
                            connection.source_neuron as usize,
                            connection.lower_bound,
                            connection.range,
                        ));
                        connection.source_hexagon = NO_HEXAGON;
                        block.used &= !(1 << i);
                    }
                }
            }
        }
        self.scratch.feeds_valid = false;
        for (h, neuron, lower_bound, range) in freed {
            self.create_section(h, neuron, lower_bound, range);
        }
    }
}
