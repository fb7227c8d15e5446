//! Checkpoints (spec §8, own format): the whole cluster state, including the random
//! generator, so that a restored cluster continues bit for bit like the original would.
//!
//! Layout, all little-endian:
//!
//! ```text
//! magic    "HANAMICP"             8 bytes
//! version  u32                    FORMAT_VERSION
//! reserved u32                    0
//! length   u64                    payload bytes
//! payload                         settings, options, generator, hexagons, interfaces
//! crc      u32                    CRC-32 (IEEE) of everything before it
//! ```
//!
//! Restoring checks the magic, version, length and checksum first, then decodes with bounds
//! checks, then validates every index the processing code relies on. A bad file gives a
//! [`CheckpointError`], never a panic.

use std::io::{Read, Write};

use thiserror::Error;

use crate::cluster::{Cluster, ClusterOptions, GrowthStats, Parallelism, Walks};
use crate::geometry::{GROWTH_TARGETS, NO_HEXAGON, SIDES};
use crate::network::{
    Connection, ConnectionBlock, Hexagon, INITIAL_TOLERANCE, InputInterface, NEURONS_PER_BLOCK,
    NO_NEURON, Neuron, OUTPUT_TARGETS, OutputInterface, OutputTarget, SECTION_STORE_BYTES,
    SECTIONS_PER_BLOCK, bit, new_section_store,
};
use crate::processing::Scratch;
use crate::rng::Rng;
use crate::template::{Position, Settings, limits};

/// File magic.
const MAGIC: &[u8; 8] = b"HANAMICP";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the payload: what [`check_checkpoint_header`] reads.
pub const CHECKPOINT_HEADER_BYTES: usize = 8 + 4 + 4 + 8;

/// Checks the start of a checkpoint of `total_len` bytes without reading the rest: `head`
/// holds its first [`CHECKPOINT_HEADER_BYTES`] bytes (all of it when it is shorter). Finds a
/// file of another kind, another format version, and one truncated or extended since it
/// was written; the checksum and the content are checked by [`Cluster::restore`].
pub fn check_checkpoint_header(head: &[u8], total_len: u64) -> Result<(), CheckpointError> {
    let seen = &head[..head.len().min(CHECKPOINT_HEADER_BYTES)];
    if seen.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(seen) {
            CheckpointError::Truncated
        } else {
            CheckpointError::BadMagic
        });
    }
    if &seen[..8] != MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    if seen.len() < CHECKPOINT_HEADER_BYTES || total_len < (CHECKPOINT_HEADER_BYTES + 4) as u64 {
        return Err(CheckpointError::Truncated);
    }
    let version = u32::from_le_bytes(seen[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion { found: version });
    }
    let length = u64::from_le_bytes(seen[16..24].try_into().expect("8 bytes"));
    let expected_total = (CHECKPOINT_HEADER_BYTES as u64)
        .saturating_add(length)
        .saturating_add(4);
    if total_len < expected_total {
        return Err(CheckpointError::Truncated);
    }
    if total_len > expected_total {
        return Err(malformed("trailing bytes after the checkpoint"));
    }
    Ok(())
}

/// Why a checkpoint was refused.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The data does not start with the checkpoint magic.
    #[error("not a Hanami checkpoint")]
    BadMagic,
    /// The data ends before the checkpoint does.
    #[error("the checkpoint is truncated")]
    Truncated,
    /// Written by a newer (or unknown) format version.
    #[error(
        "checkpoint format version {found} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        /// Version found in the file.
        found: u32,
    },
    /// The checksum does not match: the data was damaged.
    #[error("the checkpoint is corrupted (checksum mismatch)")]
    ChecksumMismatch,
    /// The checksum matches but the content is inconsistent.
    #[error("the checkpoint is malformed: {0}")]
    Malformed(String),
    /// Reading the checkpoint failed.
    #[error("reading the checkpoint failed: {0}")]
    Io(#[from] std::io::Error),
    /// The network would hold more memory than [`Cluster::restore_within`] allowed; the
    /// restore stopped before it took more.
    #[error("the network takes more than the {limit} bytes it may take")]
    TooLarge {
        /// The bytes it was allowed.
        limit: usize,
    },
}

fn malformed(message: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed(message.into())
}

impl Cluster {
    /// Serialises the whole cluster state.
    pub fn save(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.memory_bytes() / 2 + 1024));
        w.0.extend_from_slice(MAGIC);
        w.u32(FORMAT_VERSION);
        w.u32(0);
        w.u64(0); // payload length, patched below
        self.encode(&mut w);
        let length = (w.0.len() - CHECKPOINT_HEADER_BYTES) as u64;
        w.0[16..24].copy_from_slice(&length.to_le_bytes());
        let crc = crc32(&w.0);
        w.u32(crc);
        w.0
    }

    /// Writes [`Cluster::save`]'s bytes to `out`.
    pub fn save_to<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        out.write_all(&self.save())
    }

    /// Rebuilds a cluster from [`Cluster::save`]'s bytes. The restored cluster runs on the
    /// calling thread; use [`Cluster::set_threads`] for more.
    pub fn restore(bytes: &[u8]) -> Result<Cluster, CheckpointError> {
        Cluster::restore_within(bytes, usize::MAX)
    }

    /// [`Cluster::restore`] of a network that may hold at most `limit` bytes (as counted
    /// against its memory budgets): a larger one is refused with
    /// [`CheckpointError::TooLarge`] as soon as its parts rebuilt so far take more, so that
    /// refusing it never takes much more memory than the limit.
    pub fn restore_within(bytes: &[u8], limit: usize) -> Result<Cluster, CheckpointError> {
        check_checkpoint_header(bytes, bytes.len() as u64)?;
        let body = &bytes[..bytes.len() - 4];
        let stored_crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
        if crc32(body) != stored_crc {
            return Err(CheckpointError::ChecksumMismatch);
        }
        let mut r = Reader {
            data: &body[CHECKPOINT_HEADER_BYTES..],
            limit,
            charged: 0,
        };
        let cluster = Cluster::decode(&mut r)?;
        if !r.data.is_empty() {
            return Err(malformed("unread bytes at the end of the payload"));
        }
        cluster.validate()?;
        Ok(cluster)
    }

    /// Reads a whole checkpoint from `input` and restores it.
    pub fn restore_from<R: Read>(input: &mut R) -> Result<Cluster, CheckpointError> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        Cluster::restore(&bytes)
    }

    fn encode(&self, w: &mut Writer) {
        let s = &self.settings;
        w.f32(s.neuron_cooldown);
        w.u32(s.refractory_time);
        w.u32(s.max_connection_distance);
        w.bool(s.enable_reduction);
        w.u64(self.options.seed);
        w.bool(s.request_growth);
        w.u64(self.options.memory_limit as u64);
        w.u64(self.rng.state());
        w.u32(self.reduction_counter);
        w.u64(self.stats.sections_without_target);
        w.u64(self.stats.sections_refused);
        w.u32(self.hexagons.len() as u32);
        for hexagon in &self.hexagons {
            encode_hexagon(w, hexagon);
        }
        w.u32(self.inputs.len() as u32);
        for input in &self.inputs {
            w.name(&input.name);
            w.u32(input.hexagon as u32);
            w.u32(input.values.len() as u32);
            input.values.iter().for_each(|&v| w.f32(v));
        }
        w.u32(self.outputs.len() as u32);
        for output in &self.outputs {
            w.name(&output.name);
            w.u32(output.hexagon as u32);
            w.u32(output.values.len() as u32);
            for ((targets, &value), &expected) in output
                .targets
                .iter()
                .zip(&output.values)
                .zip(&output.expected)
            {
                for target in targets {
                    w.f32(target.weight);
                    w.u32(target.neuron);
                }
                w.f32(value);
                w.f32(expected);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Cluster, CheckpointError> {
        let mut settings = Settings {
            neuron_cooldown: r.f32()?,
            refractory_time: r.u32()?,
            max_connection_distance: r.u32()?,
            enable_reduction: r.bool()?,
            ..Settings::default()
        };
        let seed = r.u64()?;
        settings.request_growth = r.bool()?;
        let options = ClusterOptions {
            seed,
            threads: 1,
            memory_limit: usize::try_from(r.u64()?).unwrap_or(usize::MAX),
            vector_walks: true,
        };
        let walks = Walks::detect(options.vector_walks);
        let rng = Rng::from_state(r.u64()?);
        let reduction_counter = r.u32()?;
        let stats = GrowthStats {
            sections_without_target: r.u64()?,
            sections_refused: r.u64()?,
            sections_refused_by_pool: 0,
        };
        let hexagon_count = r.count(HEXAGON_MIN_BYTES)?;
        let mut hexagons = Vec::with_capacity(hexagon_count);
        let mut section_stores = 0;
        for _ in 0..hexagon_count {
            let (hexagon, stores) = decode_hexagon(r)?;
            hexagons.push(hexagon);
            section_stores += stores;
        }
        let input_count = r.count(4 + 4 + 4)?;
        let mut inputs = Vec::with_capacity(input_count);
        for index in 0..input_count {
            let name = r.name()?;
            let hexagon = r.u32()? as usize;
            let size = r.count(4)?;
            let values = (0..size).map(|_| r.f32()).collect::<Result<Vec<_>, _>>()?;
            let slot = hexagons
                .get_mut(hexagon)
                .ok_or_else(|| malformed(format!("input '{name}' targets a missing hexagon")))?;
            if slot.input.replace(index).is_some() {
                return Err(malformed("two inputs on one hexagon"));
            }
            inputs.push(InputInterface {
                name,
                hexagon,
                values,
            });
        }
        let output_count = r.count(4 + 4 + 4)?;
        let mut outputs = Vec::with_capacity(output_count);
        for index in 0..output_count {
            let name = r.name()?;
            let hexagon = r.u32()? as usize;
            let size = r.count(OUTPUT_TARGETS * 8 + 8)?;
            let mut output = OutputInterface {
                name,
                hexagon,
                targets: Vec::with_capacity(size),
                values: Vec::with_capacity(size),
                expected: Vec::with_capacity(size),
                learns: true,
            };
            for _ in 0..size {
                let mut targets = [OutputTarget::EMPTY; OUTPUT_TARGETS];
                for target in &mut targets {
                    target.weight = r.f32()?;
                    target.neuron = r.u32()?;
                }
                output.targets.push(targets);
                output.values.push(r.f32()?);
                // Within [0, 1], where steps keep them: earlier builds could leave a failed
                // batch row's values beyond it (not finite ones are refused below).
                let expected = r.f32()?;
                output.expected.push(if expected.is_finite() {
                    expected.clamp(0.0, 1.0)
                } else {
                    expected
                });
            }
            let slot = hexagons.get_mut(hexagon).ok_or_else(|| {
                malformed(format!(
                    "output '{}' targets a missing hexagon",
                    output.name
                ))
            })?;
            if slot.output.replace(index).is_some() {
                return Err(malformed("two outputs on one hexagon"));
            }
            outputs.push(output);
        }
        Ok(Cluster {
            settings,
            options,
            hexagons,
            inputs,
            outputs,
            rng,
            reduction_counter,
            creation_enabled: false,
            stats,
            section_stores,
            parallel: Parallelism::Sequential,
            pool: None,
            walks,
            scratch: Scratch::default(),
        })
    }

    /// Checks every invariant that processing relies on for indexing.
    fn validate(&self) -> Result<(), CheckpointError> {
        let s = &self.settings;
        let settings_ok = s.neuron_cooldown > 1.0
            && s.neuron_cooldown.is_finite()
            && (1..=limits::MAX_REFRACTORY_TIME).contains(&s.refractory_time)
            && (1..=limits::MAX_CONNECTION_DISTANCE).contains(&s.max_connection_distance);
        if !settings_ok {
            return Err(malformed("settings out of range"));
        }
        // Counts up to the next reduction, which resets it.
        if self.reduction_counter >= crate::processing::CYCLES_BETWEEN_REDUCTIONS {
            return Err(malformed("reduction counter out of range"));
        }
        let count = self.hexagons.len();
        if count == 0 || count > limits::MAX_HEXAGONS {
            return Err(malformed("bad hexagon count"));
        }
        let hexagon_ref =
            |id: u32, own: usize| id == NO_HEXAGON || (id as usize) < count && id as usize != own;
        for (id, hexagon) in self.hexagons.iter().enumerate() {
            let blocks = hexagon.neurons.len() / NEURONS_PER_BLOCK;
            let shape_ok = hexagon.neurons.len() % NEURONS_PER_BLOCK == 0
                && hexagon.new_mask.len() == blocks
                && hexagon.blocks.len() == hexagon.dim * hexagon.dim
                && if hexagon.is_input {
                    hexagon.dim == 0
                } else {
                    blocks == hexagon.dim
                }
                && hexagon.is_input == hexagon.input.is_some()
                && hexagon.is_output == hexagon.output.is_some()
                && !(hexagon.is_input && hexagon.is_output);
            if !shape_ok {
                return Err(malformed(format!("hexagon {id} has an inconsistent shape")));
            }
            if !hexagon
                .neighbours
                .iter()
                .chain(&hexagon.targets)
                .all(|&t| hexagon_ref(t, id))
            {
                return Err(malformed(format!(
                    "hexagon {id} refers to a missing hexagon"
                )));
            }
            for block in &hexagon.blocks {
                if block.used != 0 && block.sections.is_none() {
                    return Err(malformed("used section slots without synapses"));
                }
                let mut used = block.used;
                while used != 0 {
                    let i = used.trailing_zeros() as usize;
                    used &= used - 1;
                    let c = &block.connections[i];
                    let source = c.source_hexagon as usize;
                    // Output hexagons feed no other (growth never gives them sections).
                    let valid = source < count
                        && source != id
                        && !self.hexagons[source].is_output
                        && (c.source_neuron as usize) < self.hexagons[source].neurons.len()
                        && c.from_input == self.hexagons[source].is_input;
                    if !valid {
                        return Err(malformed(format!(
                            "a section of hexagon {id} has an invalid source"
                        )));
                    }
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for input in &self.inputs {
            let hexagon = &self.hexagons[input.hexagon];
            let ok = names.insert(input.name.as_str())
                && hexagon.is_input
                && !input.values.is_empty()
                && input.values.len() <= limits::MAX_INPUTS
                && input.values.iter().all(|v| v.is_finite())
                && hexagon.neurons.len()
                    == (input.values.len() / NEURONS_PER_BLOCK + 1) * NEURONS_PER_BLOCK;
            if !ok {
                return Err(malformed(format!("input '{}' is inconsistent", input.name)));
            }
        }
        for output in &self.outputs {
            let neurons = self.hexagons[output.hexagon].neurons.len();
            let ok = names.insert(output.name.as_str())
                && self.hexagons[output.hexagon].is_output
                && !output.values.is_empty()
                && output.values.len() <= limits::MAX_OUTPUTS
                && output.expected.iter().all(|v| v.is_finite())
                && output
                    .targets
                    .iter()
                    .flatten()
                    .all(|t| t.neuron == NO_NEURON || (t.neuron as usize) < neurons);
            if !ok {
                return Err(malformed(format!(
                    "output '{}' is inconsistent",
                    output.name
                )));
            }
        }
        Ok(())
    }
}

/// Smallest encoding of a hexagon, to bound counts before allocating.
const HEXAGON_MIN_BYTES: usize = 12 + 2 + 4 + (SIDES + GROWTH_TARGETS) * 4 + 4;
/// Encoded size of one neuron.
const NEURON_BYTES: usize = 5 * 4 + 4 + 2;
/// Encoded size of one connection.
const CONNECTION_BYTES: usize = 4 + 4 + 1 + 3 * 4 + 1;
/// Encoded size of one synapse.
const SYNAPSE_BYTES: usize = 4 + 4 + 1 + 1;

fn encode_hexagon(w: &mut Writer, hexagon: &Hexagon) {
    let p = hexagon.position;
    w.u32(p.x);
    w.u32(p.y);
    w.u32(p.z);
    w.bool(hexagon.is_input);
    w.bool(hexagon.is_output);
    w.u32(hexagon.dim as u32);
    hexagon
        .neighbours
        .iter()
        .chain(&hexagon.targets)
        .for_each(|&v| w.u32(v));
    w.u32(hexagon.neurons.len() as u32);
    for (index, (n, &potential)) in hexagon.neurons.iter().zip(&hexagon.potentials).enumerate() {
        for v in [
            n.input,
            potential,
            n.delta,
            n.new_lower_bound,
            n.potential_range,
        ] {
            w.f32(v);
        }
        w.u32(n.refractory);
        w.bool(bit(&hexagon.active, index));
        w.bool(bit(&hexagon.in_use, index));
    }
    hexagon.new_mask.iter().for_each(|&m| w.u64(m));
    for block in &hexagon.blocks {
        w.u64(block.used);
        w.bool(block.sections.is_some());
        for c in &block.connections {
            w.u32(c.source_hexagon);
            w.u32(c.source_neuron);
            w.bool(c.from_input);
            w.f32(c.lower_bound);
            w.f32(c.range);
            w.f32(c.tolerance);
            w.u8(c.len);
        }
        if let Some(sections) = &block.sections {
            // Unused slots and positions from `len` on are always unset: not stored.
            for (i, section) in sections.iter().enumerate() {
                if block.used & (1 << i) != 0 {
                    for k in 0..usize::from(block.connections[i].len) {
                        w.f32(section.weight[k]);
                        w.f32(section.border[k]);
                        w.u8(section.target[k]);
                        w.u8(section.counter[k]);
                    }
                }
            }
        }
    }
}

fn decode_hexagon(r: &mut Reader<'_>) -> Result<(Hexagon, usize), CheckpointError> {
    let position = Position {
        x: r.u32()?,
        y: r.u32()?,
        z: r.u32()?,
    };
    let is_input = r.bool()?;
    let is_output = r.bool()?;
    let dim = r.u32()? as usize;
    let mut neighbours = [0u32; SIDES];
    for v in &mut neighbours {
        *v = r.u32()?;
    }
    let mut targets = [0u32; GROWTH_TARGETS];
    for v in &mut targets {
        *v = r.u32()?;
    }
    let neuron_count = r.count(NEURON_BYTES)?;
    let mask_count = neuron_count.div_ceil(NEURONS_PER_BLOCK);
    r.charge(neuron_count * (std::mem::size_of::<Neuron>() + 4) + mask_count * 3 * 8)?;
    let mut neurons = Vec::with_capacity(neuron_count);
    let mut potentials = Vec::with_capacity(neuron_count);
    let mut active = vec![0u64; mask_count];
    let mut in_use = vec![0u64; mask_count];
    for index in 0..neuron_count {
        let input = r.f32()?;
        potentials.push(r.f32()?);
        neurons.push(Neuron {
            input,
            delta: r.f32()?,
            new_lower_bound: r.f32()?,
            potential_range: r.f32()?,
            refractory: r.u32()?,
        });
        let (word, shift) = (index / NEURONS_PER_BLOCK, index % NEURONS_PER_BLOCK);
        active[word] |= u64::from(r.bool()?) << shift;
        in_use[word] |= u64::from(r.bool()?) << shift;
    }
    let new_mask = (0..mask_count)
        .map(|_| r.u64())
        .collect::<Result<Vec<_>, _>>()?;
    let block_count = dim
        .checked_mul(dim)
        .ok_or_else(|| malformed("hexagon too large"))?;
    r.need(block_count.saturating_mul(8 + 1 + SECTIONS_PER_BLOCK * CONNECTION_BYTES))?;
    r.charge(block_count * std::mem::size_of::<ConnectionBlock>())?;
    let mut blocks = Vec::with_capacity(block_count);
    let mut stores = 0;
    for _ in 0..block_count {
        let mut block = ConnectionBlock {
            used: r.u64()?,
            ..ConnectionBlock::default()
        };
        let has_store = r.bool()?;
        for (i, c) in block.connections.iter_mut().enumerate() {
            *c = Connection {
                source_hexagon: r.u32()?,
                source_neuron: r.u32()?,
                from_input: r.bool()?,
                lower_bound: r.f32()?,
                range: r.f32()?,
                tolerance: r.f32()?,
                len: r.u8()?,
            };
            if usize::from(c.len) > crate::network::SYNAPSES_PER_SECTION {
                return Err(malformed("section longer than 64 synapses"));
            }
            // The section walk relies on a tolerance below 0.5 (it only ever shrinks).
            if !(0.0..=INITIAL_TOLERANCE).contains(&c.tolerance) {
                return Err(malformed("section tolerance out of range"));
            }
            // A free slot holds no synapses: a new section there starts empty.
            if block.used & (1 << i) == 0 && c.len != 0 {
                return Err(malformed("a free section slot holds synapses"));
            }
        }
        if has_store {
            r.charge(SECTION_STORE_BYTES)?;
            let mut sections = new_section_store();
            for (i, section) in sections.iter_mut().enumerate() {
                if block.used & (1 << i) == 0 {
                    continue;
                }
                let len = usize::from(block.connections[i].len);
                r.need(len * SYNAPSE_BYTES)?;
                for k in 0..len {
                    section.weight[k] = r.f32()?;
                    section.border[k] = r.f32()?;
                    section.target[k] = r.u8()?;
                    section.counter[k] = r.u8()?;
                    // Synapses before `len` are all set: the walks rely on it.
                    if usize::from(section.target[k]) >= NEURONS_PER_BLOCK {
                        return Err(malformed("unset synapse or target outside its block"));
                    }
                    // Borders are finite and not negative, so a chain's ends never decrease.
                    if !(section.border[k] >= 0.0 && section.border[k].is_finite()) {
                        return Err(malformed("synapse border negative or not finite"));
                    }
                }
                section.update_ends(len);
                section.update_unsettled(len);
            }
            block.sections = Some(sections);
            stores += 1;
        }
        blocks.push(block);
    }
    let hexagon = Hexagon {
        active,
        in_use,
        potentials,
        position,
        is_input,
        is_output,
        dim,
        neurons,
        new_mask,
        blocks,
        neighbours,
        targets,
        input: None,
        output: None,
    };
    Ok((hexagon, stores))
}

/// Little-endian encoder.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn name(&mut self, name: &str) {
        self.u32(name.len() as u32);
        self.0.extend_from_slice(name.as_bytes());
    }
}

/// Bounds-checked little-endian decoder.
struct Reader<'a> {
    data: &'a [u8],
    /// Bytes the network being rebuilt may hold.
    limit: usize,
    /// Bytes of it rebuilt so far (its large parts, as [`Cluster::memory_bytes`] counts them).
    charged: usize,
}

impl<'a> Reader<'a> {
    /// Counts `bytes` that the rebuilt network is about to hold; refused beyond the limit.
    fn charge(&mut self, bytes: usize) -> Result<(), CheckpointError> {
        self.charged = self.charged.saturating_add(bytes);
        if self.charged > self.limit {
            return Err(CheckpointError::TooLarge { limit: self.limit });
        }
        Ok(())
    }
    fn need(&self, n: usize) -> Result<(), CheckpointError> {
        if self.data.len() < n {
            Err(malformed("a record runs past the end of the payload"))
        } else {
            Ok(())
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        self.need(n)?;
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, CheckpointError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("a flag is neither 0 nor 1")),
        }
    }
    fn u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn f32(&mut self) -> Result<f32, CheckpointError> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// A `u32` count of records of at least `min_bytes` each that must fit into the rest.
    fn count(&mut self, min_bytes: usize) -> Result<usize, CheckpointError> {
        let n = self.u32()? as usize;
        self.need(n.saturating_mul(min_bytes))?;
        Ok(n)
    }
    fn name(&mut self) -> Result<String, CheckpointError> {
        let len = self.u32()? as usize;
        if len == 0 || len > limits::MAX_NAME_LEN {
            return Err(malformed("bad interface name length"));
        }
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| malformed("interface name is not UTF-8"))
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::bits;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// The walks rely on chains whose ends never decrease; a checkpoint with a border that
    /// breaks this (negative, NaN, infinite) is refused, one with a zero border is not.
    #[test]
    fn synapse_borders_must_be_finite_and_not_negative() {
        let mut cluster = Cluster::from_template_text(
            "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\nhexagons:\n    1,1,1\n    2,1,1\n\
             inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 4\n\
             outputs:\n    y:\n        target: 2,1,1\n        number_of_outputs: 1\n",
            1,
        )
        .unwrap();
        for i in 0..20 {
            let value = 10.0 + i as f32;
            cluster
                .train_step(&[("x", &[value, 0.0, value, 1.0])], &[("y", &[1.0])])
                .unwrap();
        }
        let (h, c, i) = cluster
            .hexagons
            .iter()
            .enumerate()
            .flat_map(|(h, hexagon)| {
                hexagon
                    .blocks
                    .iter()
                    .enumerate()
                    .flat_map(move |(c, block)| {
                        bits(block.used)
                            .filter(|&i| block.connections[i].len > 0)
                            .map(move |i| (h, c, i))
                    })
            })
            .next()
            .expect("a section with synapses");
        for (border, refused) in [
            (-1.0, true),
            (f32::NAN, true),
            (f32::INFINITY, true),
            (0.0, false),
        ] {
            let mut damaged = Cluster::restore(&cluster.save()).unwrap();
            let sections = damaged.hexagons[h].blocks[c].sections.as_mut().unwrap();
            sections[i].border[0] = border;
            assert_eq!(
                Cluster::restore(&damaged.save()).is_err(),
                refused,
                "border {border}"
            );
        }
    }

    /// A trained cluster of an input, a hidden and an output hexagon.
    fn three_hexagons() -> Cluster {
        let mut cluster = Cluster::from_template_text(
            "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n    enable_reduction: true\n\
             hexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n\
             inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 4\n\
             outputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: 2\n",
            1,
        )
        .unwrap();
        for i in 0..40 {
            let value = 10.0 + i as f32;
            let class = (i % 2) as f32;
            cluster
                .train_step(
                    &[("x", &[value, 0.0, value * class, 1.0])],
                    &[("y", &[class, 1.0 - class])],
                )
                .unwrap();
        }
        cluster
    }

    /// What the engine never makes, even a checkpoint with a valid checksum cannot bring in
    /// (a fuzzer found each of these accepted, and processing then panicked or learned
    /// from NaN): a section fed by an output hexagon, a free slot holding synapses, a
    /// reduction counter past its period, inputs and expected values that are not finite.
    #[test]
    fn states_the_engine_never_makes_are_refused() {
        let cluster = three_hexagons();
        let hidden = &cluster.hexagons[1];
        let (c, i) = hidden
            .blocks
            .iter()
            .enumerate()
            .find_map(|(c, block)| bits(block.used).next().map(|i| (c, i)))
            .expect("a section in the hidden hexagon");
        let free = hidden.blocks[c].used.trailing_ones() as usize;
        type Damage = Box<dyn Fn(&mut Cluster)>;
        let damages: [(&str, Damage); 5] = [
            (
                "output as source",
                Box::new(move |d| {
                    let connection = &mut d.hexagons[1].blocks[c].connections[i];
                    connection.source_hexagon = 2;
                    connection.source_neuron = 0;
                    connection.from_input = false;
                }),
            ),
            (
                "free slot with synapses",
                Box::new(move |d| d.hexagons[1].blocks[c].connections[free].len = 1),
            ),
            (
                "reduction counter",
                Box::new(|d| d.reduction_counter = crate::processing::CYCLES_BETWEEN_REDUCTIONS),
            ),
            ("input", Box::new(|d| d.inputs[0].values[1] = f32::NAN)),
            (
                "expected",
                Box::new(|d| d.outputs[0].expected[0] = f32::INFINITY),
            ),
        ];
        for (what, damage) in damages {
            let mut damaged = Cluster::restore(&cluster.save()).unwrap();
            damage(&mut damaged);
            assert!(
                matches!(
                    Cluster::restore(&damaged.save()),
                    Err(CheckpointError::Malformed(_))
                ),
                "{what}"
            );
        }
    }

    /// Expected values beyond [0, 1], which earlier builds could leave behind, are brought
    /// into it; counts that reports read stop at their maximum instead of overflowing.
    #[test]
    fn restored_values_and_counts_stay_in_range() {
        let mut cluster = Cluster::restore(&three_hexagons().save()).unwrap();
        cluster.outputs[0].expected[0] = 162.0;
        cluster.stats.sections_without_target = u64::MAX;
        cluster.stats.sections_refused = u64::MAX;
        let mut restored = Cluster::restore(&cluster.save()).unwrap();
        assert_eq!(restored.expected("y").unwrap()[0], 1.0);
        // Growth from the inputs then finds no target, and counts it.
        restored.hexagons[0].targets = [NO_HEXAGON; GROWTH_TARGETS];
        for i in 0..200 {
            let value = 100.0 + i as f32;
            restored
                .train_step(&[("x", &[value, value, 0.0, 3.0])], &[("y", &[1.0, 0.0])])
                .unwrap();
        }
        assert_eq!(restored.growth_stats().sections_without_target, u64::MAX);
    }
}
