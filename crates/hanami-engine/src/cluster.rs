//! The [`Cluster`]: a network built from a template, with its public API for training,
//! requests, inspection and checkpoints.

use std::sync::Arc;
use std::time::Instant;

use crate::error::EngineError;
use crate::geometry::{self, GROWTH_TARGETS, NO_HEXAGON};
use crate::memory::{MemoryPool, PoolShare, PoolSpent};
use crate::network::{
    ConnectionBlock, Hexagon, InputInterface, NEURONS_PER_BLOCK, Neuron, OUTPUT_TARGETS,
    OutputInterface, OutputTarget, SECTION_STORE_BYTES,
};
use crate::pace::{Pace, Work};
use crate::processing::{InterfacesFree, Scratch};
use crate::rng::Rng;
use crate::template::{Settings, Template};

/// How a cluster is created and run. Everything but `threads` is part of the cluster state
/// and travels in checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// Seed of the cluster's random generator. The same seed gives bit-identical results.
    pub seed: u64,
    /// Worker threads for processing the neuron blocks of a hexagon (and the rows of request
    /// batches): 1 runs everything on the calling thread; 2 splits the work between the
    /// calling thread and one dedicated worker thread that waits for work by spinning (then
    /// parks when idle), and runs cycles on the calling thread alone while measurements say
    /// that is faster (where the cores are far apart; see `pace.rs`); 0 uses the rayon pool
    /// the caller runs in, `n > 2` starts a rayon pool of `n` threads for this cluster.
    /// Results do not depend on this value.
    pub threads: usize,
    /// Memory budget of the network in bytes. Growth that would exceed it is refused and
    /// counted in [`GrowthStats::sections_refused`].
    pub memory_limit: usize,
    /// Whether the section walks may use the CPU's vector units (AVX-512 or AVX2 on x86-64,
    /// detected at run time). The results are bit-identical either way; `false` forces the portable
    /// walks (for comparisons).
    pub vector_walks: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            seed: 0,
            threads: 1,
            memory_limit: 1 << 30,
            vector_walks: true,
        }
    }
}

/// Name and size of an input or output interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceInfo<'a> {
    /// Interface name from the template.
    pub name: &'a str,
    /// Number of values.
    pub size: usize,
}

/// How big a cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeReport {
    /// Neurons of all hexagons (allocated, whether in use or not).
    pub neurons: usize,
    /// Synapse sections in use.
    pub sections: usize,
    /// Synapses that are set.
    pub synapses: usize,
    /// Memory held by the network (neurons, connection blocks, synapse storage, interfaces).
    pub bytes: usize,
}

/// Growth that did not happen, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrowthStats {
    /// Sections not created because the growth target was no hexagon (dead-end walk).
    pub sections_without_target: u64,
    /// Sections not created because a memory budget was exhausted: the cluster's own or its
    /// pool's.
    pub sections_refused: u64,
    /// Of `sections_refused`, those refused by the [`MemoryPool`] the cluster shares with
    /// others. Counted since the cluster was built or restored (checkpoints do not keep it).
    pub sections_refused_by_pool: u64,
}

/// How blocks of one hexagon are processed.
pub(crate) enum Parallelism {
    /// On the calling thread.
    Sequential,
    /// Split between the calling thread and a spinning worker, or on the calling thread alone
    /// while that is faster (`solo`, chosen by `pace` for the current cycles).
    Pair {
        threads: crate::team::Pair,
        pace: Pace,
        solo: bool,
    },
    /// In the rayon pool the caller runs in.
    Current,
    /// In the cluster's own pool.
    Pool(Arc<rayon::ThreadPool>),
}

impl Parallelism {
    pub(crate) fn new(threads: usize) -> Result<Self, EngineError> {
        Ok(match threads {
            0 => Parallelism::Current,
            1 => Parallelism::Sequential,
            2 => Parallelism::Pair {
                threads: crate::team::Pair::new().map_err(|e| EngineError::ThreadPool {
                    threads: 2,
                    message: e.to_string(),
                })?,
                pace: Pace::default(),
                solo: false,
            },
            n => Parallelism::Pool(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| EngineError::ThreadPool {
                        threads: n,
                        message: e.to_string(),
                    })?,
            )),
        })
    }

    /// Starts cycles of kind `work`: a pair chooses here whether its worker takes part in
    /// them (see [`crate::pace`]), and times them until [`Parallelism::finish`].
    pub(crate) fn start(&mut self, work: Work) -> Option<Timing> {
        match self {
            Parallelism::Pair { pace, solo, .. } => {
                *solo = pace.solo(work);
                Some(Timing {
                    work,
                    since: Instant::now(),
                })
            }
            _ => None,
        }
    }

    /// Ends the cycles started with `timing`, `rows` of them.
    pub(crate) fn finish(&mut self, timing: Option<Timing>, rows: usize) {
        if let (Some(timing), Parallelism::Pair { pace, .. }) = (timing, self) {
            let rows = u32::try_from(rows).unwrap_or(u32::MAX);
            pace.record(timing.work, rows, timing.since.elapsed());
        }
    }
}

/// Cycles being timed for a pair's choice.
pub(crate) struct Timing {
    work: Work,
    since: Instant,
}

/// A neural network grown from a cluster template.
///
/// All processing happens on the thread that calls a method (plus the worker threads chosen by
/// [`ClusterOptions::threads`]); the cluster is `Send`, so a server can own it in a worker
/// thread. The same seed and inputs give bit-identical results, whatever the thread count.
pub struct Cluster {
    pub(crate) settings: Settings,
    pub(crate) options: ClusterOptions,
    pub(crate) hexagons: Vec<Hexagon>,
    pub(crate) inputs: Vec<InputInterface>,
    pub(crate) outputs: Vec<OutputInterface>,
    pub(crate) rng: Rng,
    /// Training cycles since the last reduction.
    pub(crate) reduction_counter: u32,
    /// Set when anything grew in the current phase (the original's `enableCreation`).
    pub(crate) creation_enabled: bool,
    pub(crate) stats: GrowthStats,
    /// Connection blocks that have synapse storage.
    pub(crate) section_stores: usize,
    pub(crate) parallel: Parallelism,
    /// What the network holds of the memory pool it shares with other clusters, if any.
    pub(crate) pool: Option<PoolShare>,
    /// Which implementation of the section walks runs.
    pub(crate) walks: Walks,
    pub(crate) scratch: Scratch,
}

/// Which implementation of the section walks (and the vector work around them) a cluster
/// runs. All compute the same bits; they differ only in the instructions they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walks {
    /// Scalar code for any CPU.
    Portable,
    /// AVX2 section walks (forward, backward and the request batches' lane walks) and the
    /// portable code around them; for x86-64 CPUs with AVX2 (checked at run time).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 code; for x86-64 CPUs with AVX-512F (checked at run time).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Walks {
    /// The fastest walks this CPU runs, or the portable ones if `vector` is false.
    pub(crate) fn detect(vector: bool) -> Walks {
        if vector {
            Walks::supported().next_back().unwrap_or(Walks::Portable)
        } else {
            Walks::Portable
        }
    }

    /// The walks this CPU runs, slowest first (the portable ones always).
    pub fn supported() -> impl DoubleEndedIterator<Item = Walks> {
        let all = [
            Walks::Portable,
            #[cfg(target_arch = "x86_64")]
            Walks::Avx2,
            #[cfg(target_arch = "x86_64")]
            Walks::Avx512,
        ];
        all.into_iter().filter(|walks| walks.runs_here())
    }

    /// Whether this CPU has the instructions these walks use.
    fn runs_here(self) -> bool {
        match self {
            Walks::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Walks::Avx2 => crate::processing::avx2_available(),
            #[cfg(target_arch = "x86_64")]
            Walks::Avx512 => crate::processing::avx512_available(),
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("settings", &self.settings)
            .field("hexagons", &self.hexagons.len())
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Builds a cluster from template text with default options and the given seed.
    pub fn from_template_text(text: &str, seed: u64) -> Result<Cluster, EngineError> {
        let template = Template::parse(text)?;
        Cluster::new(
            &template,
            ClusterOptions {
                seed,
                ..ClusterOptions::default()
            },
        )
    }

    /// Builds a cluster from a parsed template (spec §1.6): hexagons in template order,
    /// neighbours and growth targets, input hexagons with `floor(n/64) + 1` neuron blocks,
    /// every other hexagon empty until growth reaches it.
    pub fn new(template: &Template, options: ClusterOptions) -> Result<Cluster, EngineError> {
        let parallel = Parallelism::new(options.threads)?;
        let walks = Walks::detect(options.vector_walks);
        let positions = template.hexagons();
        let count = positions.len();
        let mut is_input = vec![false; count];
        let mut is_output = vec![false; count];
        for i in template.inputs() {
            is_input[i.hexagon] = true;
        }
        for o in template.outputs() {
            is_output[o.hexagon] = true;
        }
        let neighbours = geometry::neighbours(positions);
        let mut rng = Rng::new(options.seed);
        let mut hexagons: Vec<Hexagon> = (0..count)
            .map(|id| Hexagon {
                position: positions[id],
                is_input: is_input[id],
                is_output: is_output[id],
                dim: 0,
                neurons: Vec::new(),
                potentials: Vec::new(),
                new_mask: Vec::new(),
                in_use: Vec::new(),
                active: Vec::new(),
                blocks: Vec::new(),
                neighbours: neighbours[id],
                targets: [NO_HEXAGON; GROWTH_TARGETS],
                input: None,
                output: None,
            })
            .collect();
        for (id, hexagon) in hexagons.iter_mut().enumerate() {
            hexagon.targets = geometry::growth_targets(
                id,
                &neighbours,
                &is_input,
                &is_output,
                template.settings().max_connection_distance,
                &mut rng,
            );
        }
        let targets: Vec<_> = hexagons.iter().map(|h| h.targets).collect();
        check_connected(template, &neighbours, &targets, &is_input, &is_output)?;
        let inputs = template
            .inputs()
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let hexagon = &mut hexagons[spec.hexagon];
                let blocks = spec.size / NEURONS_PER_BLOCK + 1;
                hexagon.resize_neurons(blocks);
                hexagon.input = Some(index);
                InputInterface {
                    name: spec.name.clone(),
                    hexagon: spec.hexagon,
                    values: vec![0.0; spec.size],
                }
            })
            .collect();
        let outputs = template
            .outputs()
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                hexagons[spec.hexagon].output = Some(index);
                OutputInterface {
                    name: spec.name.clone(),
                    hexagon: spec.hexagon,
                    targets: vec![[OutputTarget::EMPTY; OUTPUT_TARGETS]; spec.size],
                    values: vec![0.0; spec.size],
                    expected: vec![0.0; spec.size],
                    learns: true,
                }
            })
            .collect();
        Ok(Cluster {
            settings: *template.settings(),
            options,
            hexagons,
            inputs,
            outputs,
            rng,
            reduction_counter: 0,
            creation_enabled: false,
            stats: GrowthStats::default(),
            section_stores: 0,
            parallel,
            pool: None,
            walks,
            scratch: Scratch::default(),
        })
    }

    /// The settings the cluster was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The options the cluster runs with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Changes the number of worker threads (see [`ClusterOptions::threads`]).
    pub fn set_threads(&mut self, threads: usize) -> Result<(), EngineError> {
        self.parallel = Parallelism::new(threads)?;
        self.options.threads = threads;
        Ok(())
    }

    /// Changes the memory budget of the network (see [`ClusterOptions::memory_limit`]); a
    /// network already beyond it keeps what it has and stops growing.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.options.memory_limit = bytes;
    }

    /// Counts the network against `pool` from now on (and no longer against a pool it was in
    /// before), even if the pool cannot hold it: the network stays as it is and grows only
    /// when the pool has room. For networks that exist already, such as those a server
    /// brings back at start.
    pub fn join_pool(&mut self, pool: Arc<MemoryPool>) {
        self.pool = Some(PoolShare::taken(pool, self.memory_bytes()));
    }

    /// Stops counting the network against the pool it was in, if any.
    pub fn leave_pool(&mut self) {
        self.pool = None;
    }

    /// Counts the network against `pool` from now on if the pool has room for it; else
    /// leaves the cluster as it was and says how much memory the network needs and how much
    /// the pool has left.
    pub fn try_join_pool(&mut self, pool: Arc<MemoryPool>) -> Result<(), PoolSpent> {
        let needed = self.memory_bytes();
        let available = pool.limit().saturating_sub(pool.used());
        self.pool =
            Some(PoolShare::try_taken(pool, needed).ok_or(PoolSpent { needed, available })?);
        Ok(())
    }

    /// Chooses the vector or the portable section walks (see [`ClusterOptions::vector_walks`]).
    pub fn set_vector_walks(&mut self, vector: bool) {
        self.walks = Walks::detect(vector);
        self.options.vector_walks = vector;
    }

    /// Runs `walks` from now on, for comparisons of the implementations; returns `false` and
    /// changes nothing where this CPU lacks their instructions (see [`Walks::supported`]).
    pub fn set_walks(&mut self, walks: Walks) -> bool {
        if !walks.runs_here() {
            return false;
        }
        self.walks = walks;
        self.options.vector_walks = walks != Walks::Portable;
        true
    }

    /// The section walks this cluster runs.
    pub fn walks(&self) -> Walks {
        self.walks
    }

    /// Input interfaces in template order.
    pub fn inputs(&self) -> impl ExactSizeIterator<Item = InterfaceInfo<'_>> {
        self.inputs.iter().map(|i| InterfaceInfo {
            name: &i.name,
            size: i.values.len(),
        })
    }

    /// Output interfaces in template order.
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = InterfaceInfo<'_>> {
        self.outputs.iter().map(|o| InterfaceInfo {
            name: &o.name,
            size: o.values.len(),
        })
    }

    /// The values input `name` holds: those of the last cycle that set it (a cycle that
    /// does not name an input leaves it as it is; zeros at first), or `None` if there is no
    /// input of that name.
    pub fn input(&self, name: &str) -> Option<&[f32]> {
        self.inputs
            .iter()
            .find(|i| i.name == name)
            .map(|i| &i.values[..])
    }

    /// The expected values output `name` holds: those of the last training cycle that named
    /// it (zeros at first), or `None` if there is no output of that name.
    pub fn expected(&self, name: &str) -> Option<&[f32]> {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .map(|o| &o.expected[..])
    }

    /// The raw output values (sigmoid activations, 0 where an output has no links yet) of the
    /// last cycle, or `None` if there is no output of that name.
    pub fn output(&self, name: &str) -> Option<&[f32]> {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .map(|o| &o.values[..])
    }

    /// Runs one training cycle: sets the named inputs and expected values, runs the forward
    /// pass with growth, the backward pass, and reduction when it is due. Only the outputs
    /// named in `expected` learn: the others, and the synapses into their hexagons, keep
    /// their weights (the network may still grow there, and shared hidden neurons learn
    /// from the named outputs).
    ///
    /// A buffer may be shorter than its interface; the remaining values keep their previous
    /// contents. Nothing is changed if any name, length or value is invalid, if an expected
    /// value lies outside [0, 1], or if `expected` is empty.
    pub fn train_step(
        &mut self,
        inputs: &[(&str, &[f32])],
        expected: &[(&str, &[f32])],
    ) -> Result<(), EngineError> {
        let input_slots = self.check_inputs(inputs)?;
        let output_slots = self.check_expected(expected)?;
        if output_slots.is_empty() {
            return Err(EngineError::NothingToLearn);
        }
        for ((_, values), slot) in inputs.iter().zip(input_slots) {
            self.inputs[slot].values[..values.len()].copy_from_slice(values);
        }
        let mut learns = vec![false; self.outputs.len()];
        for ((_, values), slot) in expected.iter().zip(output_slots) {
            self.outputs[slot].expected[..values.len()].copy_from_slice(values);
            learns[slot] = true;
        }
        self.train_cycle_learning(&learns, &mut |_, _| false);
        Ok(())
    }

    /// One training cycle in which only the outputs marked in `learns` learn, with `then`
    /// run once after the cycle's last use of the interfaces' values.
    pub(crate) fn train_cycle_learning(&mut self, learns: &[bool], then: InterfacesFree<'_>) {
        for (output, &learns) in self.outputs.iter_mut().zip(learns) {
            output.learns = learns;
        }
        self.train_cycle(then);
        for output in &mut self.outputs {
            output.learns = true;
        }
    }

    /// Runs one request cycle on the named inputs; read the result with [`Cluster::output`].
    pub fn request_step(&mut self, inputs: &[(&str, &[f32])]) -> Result<(), EngineError> {
        let slots = self.check_inputs(inputs)?;
        for ((_, values), slot) in inputs.iter().zip(slots) {
            self.inputs[slot].values[..values.len()].copy_from_slice(values);
        }
        self.request_cycle();
        Ok(())
    }

    fn check_inputs(&self, inputs: &[(&str, &[f32])]) -> Result<Vec<usize>, EngineError> {
        inputs
            .iter()
            .map(|(name, values)| {
                let slot = self
                    .inputs
                    .iter()
                    .position(|i| i.name == *name)
                    .ok_or_else(|| EngineError::UnknownInput(name.to_string()))?;
                check_values(name, values, self.inputs[slot].values.len())?;
                Ok(slot)
            })
            .collect()
    }

    fn check_expected(&self, expected: &[(&str, &[f32])]) -> Result<Vec<usize>, EngineError> {
        expected
            .iter()
            .map(|(name, values)| {
                let slot = self
                    .outputs
                    .iter()
                    .position(|o| o.name == *name)
                    .ok_or_else(|| EngineError::UnknownOutput(name.to_string()))?;
                check_values(name, values, self.outputs[slot].expected.len())?;
                check_expected_range(name, values)?;
                Ok(slot)
            })
            .collect()
    }

    /// Counts neurons, sections, synapses and bytes.
    pub fn size(&self) -> SizeReport {
        let mut report = SizeReport {
            neurons: 0,
            sections: 0,
            synapses: 0,
            bytes: self.memory_bytes(),
        };
        for hexagon in &self.hexagons {
            report.neurons += hexagon.neurons.len();
            for block in &hexagon.blocks {
                report.sections += block.used.count_ones() as usize;
                if let Some(sections) = &block.sections {
                    report.synapses += sections
                        .iter()
                        .flat_map(|s| &s.target)
                        .filter(|&&t| t != crate::network::NO_TARGET)
                        .count();
                }
            }
        }
        report
    }

    /// The outputs that growth has not reached yet, in template order, with the reason:
    /// their hexagon has no neurons, so they answer 0 (spec §11.1 B18) and cannot learn
    /// until a section grows into it.
    pub fn unreached_outputs(&self) -> Vec<UnreachedOutput<'_>> {
        let targets: Vec<_> = self.hexagons.iter().map(|h| h.targets).collect();
        // Each input: the hexagons its growth can reach, and whether it has grown (an input
        // neuron owns a section from the first cycle it fired in with growth).
        let inputs: Vec<(&str, Vec<bool>, bool)> = self
            .inputs
            .iter()
            .map(|input| {
                let from: Vec<bool> = (0..targets.len()).map(|h| h == input.hexagon).collect();
                let grown = self.hexagons[input.hexagon].in_use.iter().any(|&w| w != 0);
                (
                    input.name.as_str(),
                    geometry::reachable(&targets, &from),
                    grown,
                )
            })
            .collect();
        self.outputs
            .iter()
            .filter(|output| self.hexagons[output.hexagon].neurons.is_empty())
            .map(|output| {
                let feeders = inputs
                    .iter()
                    .filter(|(_, reached, _)| reached[output.hexagon]);
                let cause = if feeders.clone().any(|&(_, _, grown)| grown) {
                    Unreached::NotYet
                } else {
                    Unreached::SilentInputs(feeders.map(|&(name, _, _)| name).collect())
                };
                UnreachedOutput {
                    name: &output.name,
                    cause,
                }
            })
            .collect()
    }

    /// Growth that was refused or had nowhere to go.
    pub fn growth_stats(&self) -> GrowthStats {
        self.stats
    }

    /// Memory held by the network, as counted against [`ClusterOptions::memory_limit`].
    pub(crate) fn memory_bytes(&self) -> usize {
        let mut bytes = self.section_stores * SECTION_STORE_BYTES;
        for hexagon in &self.hexagons {
            bytes += hexagon.neurons.len() * (std::mem::size_of::<Neuron>() + 4)
                + hexagon.blocks.len() * std::mem::size_of::<ConnectionBlock>()
                + hexagon.new_mask.len() * 3 * 8;
        }
        for input in &self.inputs {
            bytes += input.values.len() * 4;
        }
        for output in &self.outputs {
            bytes +=
                output.targets.len() * (std::mem::size_of::<[OutputTarget; OUTPUT_TARGETS]>() + 8);
        }
        bytes
    }
}

/// An output that growth has not reached yet (see [`Cluster::unreached_outputs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreachedOutput<'a> {
    /// The output's name.
    pub name: &'a str,
    /// Why nothing has grown into its hexagon.
    pub cause: Unreached<'a>,
}

/// Why growth has not reached an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreached<'a> {
    /// Growth can lead to the output only from these inputs (template order), and none of
    /// them has grown yet: an input grows the network from the first cycle in which it holds
    /// a value above 0 and the network grows (training, or requests unless the template
    /// turns `request_growth` off).
    SilentInputs(Vec<&'a str>),
    /// Some input that can lead there has grown; whether growth gets there is drawn at random.
    NotYet,
}

/// Refuses a template whose network could not connect every interface: an output that no
/// input can grow into would answer 0 for ever, and an input from which growth reaches no
/// output would be ignored. The growth-target lists are drawn at random, so each check
/// also tells whether some other draw would have connected it.
fn check_connected(
    template: &Template,
    neighbours: &[[u32; geometry::SIDES]],
    targets: &[[u32; GROWTH_TARGETS]],
    is_input: &[bool],
    is_output: &[bool],
) -> Result<(), EngineError> {
    let distance = template.settings().max_connection_distance;
    let at_all =
        |from: &[bool]| geometry::reachable_at_all(neighbours, is_input, is_output, distance, from);
    let position = |hexagon: usize| {
        let p = template.hexagons()[hexagon];
        format!("{},{},{}", p.x, p.y, p.z)
    };
    let reached = geometry::reachable(targets, is_input);
    if let Some(output) = template.outputs().iter().find(|o| !reached[o.hexagon]) {
        let (name, position) = (output.name.clone(), position(output.hexagon));
        let (line, column) = (output.line, output.column);
        return Err(if at_all(is_input)[output.hexagon] {
            EngineError::OutputMissedByGrowthPlan {
                name,
                position,
                line,
                column,
            }
        } else {
            EngineError::UnreachableOutput {
                name,
                position,
                line,
                column,
            }
        });
    }
    for input in template.inputs() {
        let from: Vec<bool> = (0..is_input.len()).map(|h| h == input.hexagon).collect();
        let reaches_an_output =
            |reached: Vec<bool>| template.outputs().iter().any(|o| reached[o.hexagon]);
        if !reaches_an_output(geometry::reachable(targets, &from)) {
            let (name, position) = (input.name.clone(), position(input.hexagon));
            let (line, column) = (input.line, input.column);
            return Err(if reaches_an_output(at_all(&from)) {
                EngineError::InputMissedByGrowthPlan {
                    name,
                    position,
                    line,
                    column,
                }
            } else {
                EngineError::UnconnectedInput {
                    name,
                    position,
                    line,
                    column,
                }
            });
        }
    }
    Ok(())
}

/// The index of the first value that is NaN or infinite. The common all-finite case is one
/// branch-free (vectorised) pass over the values.
pub(crate) fn first_non_finite(values: &[f32]) -> Option<usize> {
    // `|v| < ∞` is false exactly for NaN and ±∞.
    if values
        .iter()
        .fold(true, |finite, v| finite & (v.abs() < f32::INFINITY))
    {
        None
    } else {
        values.iter().position(|v| !v.is_finite())
    }
}

/// Refuses a value of the interface `name` that is NaN or infinite, as every step does;
/// for callers that take values in parts before a step (direct IO's staged messages).
pub fn check_finite(name: &str, values: &[f32]) -> Result<(), EngineError> {
    match first_non_finite(values) {
        Some(index) => Err(EngineError::NonFinite {
            name: name.to_string(),
            index,
        }),
        None => Ok(()),
    }
}

/// Refuses expected values outside [0, 1], as every training step does (checked after
/// [`check_finite`]: all finite).
pub fn check_expected_range(name: &str, values: &[f32]) -> Result<(), EngineError> {
    match values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        Some(index) => Err(EngineError::ExpectedOutOfRange {
            name: name.to_string(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

fn check_values(name: &str, values: &[f32], size: usize) -> Result<(), EngineError> {
    if values.len() > size {
        return Err(EngineError::TooManyValues {
            name: name.to_string(),
            size,
            got: values.len(),
        });
    }
    check_finite(name, values)
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    #[test]
    fn first_non_finite_finds_nan_and_infinities() {
        assert_eq!(first_non_finite(&[]), None);
        let mut values = vec![1.0f32; 37];
        values[3] = -0.0;
        values[4] = f32::MAX;
        values[5] = -f32::MAX;
        values[6] = f32::MIN_POSITIVE / 2.0;
        assert_eq!(first_non_finite(&values), None);
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 17, 36] {
                let mut v = values.clone();
                v[at] = bad;
                v[36 - at / 2] = bad;
                assert_eq!(first_non_finite(&v), Some(at.min(36 - at / 2)));
            }
        }
    }
}
