//! Errors of the engine's public API.

use thiserror::Error;

use crate::template::TemplateError;

/// Error a [`crate::Rows`] source reports for a row it cannot deliver.
pub type RowError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of cluster creation and processing.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The template text was rejected.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The network could never grow into an output's hexagon: it would answer 0 for ever.
    #[error(
        "line {line}, column {column} of the template: output '{name}' on \
         hexagon {position} cannot be reached from any input: the network \
         grows from the input hexagons along the original's growth walks (seven of the twelve \
         sides, towards +x, ±z and the rows beside, never -x, tried in the walk's order), \
         up to max_connection_distance hexagons at a time, and not \
         through output hexagons; place outputs at larger x than the inputs, as the \
         documentation's templates do"
    )]
    UnreachableOutput {
        /// Output name.
        name: String,
        /// Its hexagon, `x,y,z`.
        position: String,
        /// Line of its name in the template.
        line: u32,
        /// Column of its name in the template.
        column: u32,
    },
    /// The random draw of growth targets missed the rare paths to an output's hexagon.
    #[error(
        "line {line}, column {column} of the template: output '{name}' on \
         hexagon {position} is not reached by this cluster's growth plan, \
         which is drawn at random: the template reaches that hexagon only along rare paths; \
         create the cluster again, or move the output nearer to the inputs"
    )]
    OutputMissedByGrowthPlan {
        /// Output name.
        name: String,
        /// Its hexagon, `x,y,z`.
        position: String,
        /// Line of its name in the template.
        line: u32,
        /// Column of its name in the template.
        column: u32,
    },
    /// Growth from an input's hexagon could never reach an output: its values would be
    /// ignored.
    #[error(
        "line {line}, column {column} of the template: input '{name}' on \
         hexagon {position} cannot reach any output: the network grows from \
         each input hexagon along the original's growth walks (seven of the twelve sides, \
         towards +x, ±z and the rows beside, never -x), up to max_connection_distance \
         hexagons at a time, never into another input hexagon and not through output \
         hexagons, so its values would be ignored; give it a hidden hexagon on its +x side \
         that leads to an output, as the documentation's templates do"
    )]
    UnconnectedInput {
        /// Input name.
        name: String,
        /// Its hexagon, `x,y,z`.
        position: String,
        /// Line of its name in the template.
        line: u32,
        /// Column of its name in the template.
        column: u32,
    },
    /// The random draw of growth targets missed the rare paths from an input's hexagon to
    /// any output.
    #[error(
        "line {line}, column {column} of the template: input '{name}' on \
         hexagon {position} reaches no output in this cluster's growth \
         plan, which is drawn at random: the template connects it only along rare paths; \
         create the cluster again, or move the input nearer to the outputs"
    )]
    InputMissedByGrowthPlan {
        /// Input name.
        name: String,
        /// Its hexagon, `x,y,z`.
        position: String,
        /// Line of its name in the template.
        line: u32,
        /// Column of its name in the template.
        column: u32,
    },
    /// No input interface has this name.
    #[error("the cluster has no input named '{0}'")]
    UnknownInput(String),
    /// No output interface has this name.
    #[error("the cluster has no output named '{0}'")]
    UnknownOutput(String),
    /// More values than the interface has neurons.
    #[error("'{name}' takes at most {size} values, got {got}")]
    TooManyValues {
        /// Interface name.
        name: String,
        /// Interface size.
        size: usize,
        /// Number of values given.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("the value at index {index} of '{name}' is not a finite number")]
    NonFinite {
        /// Interface name.
        name: String,
        /// Index of the value within the interface.
        index: usize,
    },
    /// An expected value lies outside [0, 1], which the sigmoid outputs cannot reach
    /// (training toward it saturates the outputs for good).
    #[error(
        "the expected value at index {index} of '{name}' is {value}, outside [0, 1] (outputs \
         are sigmoids: scale the targets into that range)"
    )]
    ExpectedOutOfRange {
        /// Output name.
        name: String,
        /// Index of the value within the interface.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A value of a batch's row was refused.
    #[error("row {row} (counted from 0): {source}")]
    AtRow {
        /// Row index.
        row: usize,
        /// Why the row was refused.
        source: Box<EngineError>,
    },
    /// A training cycle was asked for without expected values for any output.
    #[error("a training step needs expected values for at least one output")]
    NothingToLearn,
    /// A row source failed.
    #[error("reading row {row} for '{name}' failed: {source}")]
    Row {
        /// Row index.
        row: usize,
        /// Interface name.
        name: String,
        /// What the source reported.
        source: RowError,
    },
    /// The worker threads could not be started.
    #[error("could not start {threads} worker threads: {message}")]
    ThreadPool {
        /// Requested thread count.
        threads: usize,
        /// The reason.
        message: String,
    },
}
