//! The Hanami neural engine: a network that grows while it learns.
//!
//! A [`Cluster`] is built from a cluster [`Template`] (hexagons, settings, named inputs and
//! outputs). Each training cycle feeds one sample forward through the hexagons in template
//! order, growing synapses where the signal needs them, and propagates the error back. The
//! engine follows the original OpenHanami engine (commit 04376e7a) on its default path — same
//! constants, same `f32` arithmetic — and fixes its documented defects; see
//! `docs/compatibility.md`.
//!
//! The crate is pure computation: no async, no I/O, no database. Dataset rows come in
//! through the [`Rows`] trait, checkpoints are byte buffers. Processing is parallel over the
//! neuron blocks of a hexagon (the calling thread plus one spinning worker for two threads,
//! which it leaves idle while cycles measure faster without it; rayon for more) and
//! deterministic: the same seed and inputs give bit-identical results for
//! any thread count.
//!
//! ```
//! use hanami_engine::Cluster;
//! let template = "version: 1 settings: refractory_time: 1 hexagons: 1,1,1 2,1,1 3,1,1 \
//!     inputs: x: target: 1,1,1 number_of_inputs: 4 \
//!     outputs: y: target: 3,1,1 number_of_outputs: 2";
//! let mut cluster = Cluster::from_template_text(template, 42).unwrap();
//! cluster.train_step(&[("x", &[1.0, 0.0, 3.0, 0.0])], &[("y", &[1.0, 0.0])]).unwrap();
//! cluster.request_step(&[("x", &[1.0, 0.0, 3.0, 0.0])]).unwrap();
//! assert_eq!(cluster.output("y").unwrap().len(), 2);
//! ```

mod batch;
mod checkpoint;
mod cluster;
mod error;
mod geometry;
mod memory;
mod network;
mod pace;
mod processing;
mod rng;
mod team;
pub mod template;

pub use batch::{BatchOutcome, Rows, RowsFn, argmax, one_hot};
pub use checkpoint::{
    CHECKPOINT_HEADER_BYTES, CheckpointError, FORMAT_VERSION, check_checkpoint_header,
};
pub use cluster::{
    Cluster, ClusterOptions, GrowthStats, InterfaceInfo, SizeReport, Unreached, UnreachedOutput,
    Walks, check_expected_range, check_finite,
};
pub use error::{EngineError, RowError};
pub use memory::{MemoryPool, PoolSpent};
pub use template::{Template, TemplateError};
