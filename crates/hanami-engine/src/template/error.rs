//! Errors of the template parser.

use thiserror::Error;

use super::{Position, limits};

/// A template was rejected. Carries the 1-based line and column of the offending token.
///
/// `Display` gives `line L, column C: <message>`; the server prefixes it with its own text.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{}", self.render())]
pub struct TemplateError {
    /// 1-based line of the offending token (0 when the template is empty).
    pub line: u32,
    /// 1-based column (in characters) of the offending token (0 when the template is empty).
    pub column: u32,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

impl TemplateError {
    pub(crate) fn new(line: u32, column: u32, kind: TemplateErrorKind) -> Self {
        TemplateError { line, column, kind }
    }

    fn render(&self) -> String {
        if self.line == 0 {
            self.kind.to_string()
        } else {
            format!("line {}, column {}: {}", self.line, self.column, self.kind)
        }
    }
}

/// The reasons a template can be rejected.
///
/// Messages of checks that the original has keep its wording, so that users who know it
/// recognise them.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TemplateErrorKind {
    /// The template text is empty, or holds only blanks and line breaks (after a byte-order
    /// mark, if any).
    #[error("Parsing of cluster-template failed, because the input is empty")]
    Empty,
    /// The template is longer than [`limits::MAX_TEMPLATE_BYTES`].
    #[error("the template is larger than {} bytes", limits::MAX_TEMPLATE_BYTES)]
    TooLong,
    /// A character that cannot start any token (also an unclosed quote).
    #[error("invalid character {0:?}")]
    InvalidCharacter(char),
    /// An integer literal that does not fit into a signed 64-bit integer.
    #[error("integer is out of range")]
    IntegerOutOfRange,
    /// The token does not fit the grammar.
    #[error("syntax error: expected {expected}, found {found}")]
    Syntax {
        /// What the grammar allows at this point.
        expected: &'static str,
        /// The token that was found instead.
        found: String,
    },
    /// `neuron_cooldown` is not greater than 1.
    #[error("neuron_cooldown must be > 1.0")]
    CooldownTooSmall,
    /// `neuron_cooldown` does not fit into a finite `f32`.
    #[error("neuron_cooldown must be a finite 32-bit float (at most about 3.4e38)")]
    CooldownTooLarge,
    /// `max_connection_distance` is below 1.
    #[error("max_connection_distance must be >= 1")]
    DistanceTooSmall,
    /// `max_connection_distance` is above [`limits::MAX_CONNECTION_DISTANCE`].
    #[error(
        "max_connection_distance must be <= {}",
        limits::MAX_CONNECTION_DISTANCE
    )]
    DistanceTooLarge,
    /// `refractory_time` is below 1.
    #[error("refractory_time must be >= 1")]
    RefractoryTooSmall,
    /// `refractory_time` is above [`limits::MAX_REFRACTORY_TIME`].
    #[error("refractory_time must be <= {}", limits::MAX_REFRACTORY_TIME)]
    RefractoryTooLarge,
    /// A negative coordinate or count.
    #[error("negative value {0} is not allowed here")]
    Negative(i64),
    /// A coordinate above [`limits::MAX_COORDINATE`].
    #[error("coordinate {0} is larger than {max}", max = limits::MAX_COORDINATE)]
    CoordinateTooLarge(i64),
    /// More than [`limits::MAX_HEXAGONS`] hexagons.
    #[error("too many hexagons: at most {} are allowed", limits::MAX_HEXAGONS)]
    TooManyHexagons,
    /// A hexagon position is listed twice.
    #[error("Hexagon with the position [ {0} , {1} , {2} ] already exist.")]
    DuplicateHexagon(u32, u32, u32),
    /// An input or output targets a position that is not a listed hexagon.
    #[error("Hexagon with the position [ {0} , {1} , {2} ] doesn't exist.")]
    UnknownHexagon(u32, u32, u32),
    /// An interface name is longer than [`limits::MAX_NAME_LEN`] characters.
    #[error("Name '{0}' is longer than {max} characters.", max = limits::MAX_NAME_LEN)]
    NameTooLong(String),
    /// Two inputs or outputs share a name.
    #[error("the name '{0}' is used by more than one input or output")]
    DuplicateName(String),
    /// `number_of_inputs` or `number_of_outputs` is 0.
    #[error("'{0}' must have at least one neuron")]
    EmptyInterface(String),
    /// `number_of_inputs` above [`limits::MAX_INPUTS`].
    #[error("input '{0}' has more than {max} inputs", max = limits::MAX_INPUTS)]
    TooManyInputs(String),
    /// `number_of_outputs` above [`limits::MAX_OUTPUTS`].
    #[error("output '{0}' has more than {max} outputs", max = limits::MAX_OUTPUTS)]
    TooManyOutputs(String),
    /// The inputs together have more than [`limits::MAX_INPUTS`] neurons; `'{0}'` is the
    /// first one beyond.
    #[error(
        "the inputs up to '{0}' have more than {max} inputs together",
        max = limits::MAX_INPUTS
    )]
    TooManyInputsInAll(String),
    /// The outputs together have more than [`limits::MAX_OUTPUTS`] neurons.
    #[error(
        "the outputs up to '{0}' have more than {max} outputs together",
        max = limits::MAX_OUTPUTS
    )]
    TooManyOutputsInAll(String),
    /// Two inputs, or two outputs, target the same hexagon.
    #[error("'{0}' targets a hexagon that already has an interface of this kind")]
    HexagonAlreadyUsed(String),
    /// An input and an output target the same hexagon.
    #[error("'{0}' targets a hexagon that is also the target of an {1}")]
    InputAndOutputOnSameHexagon(String, &'static str),
    /// An input's hexagon is listed after a hexagon that is no input's: the network processes
    /// hexagons in the listed order and gives an input its values at its turn.
    #[error(
        "input '{name}' is on hexagon {}, which the template lists after hexagon {}: the \
         network processes hexagons in the listed order and gives an input its values at its \
         turn, so the hexagons before it would get them a cycle late and could not learn; \
         list the input hexagons first",
        show(*input),
        show(*after)
    )]
    InputListedLate {
        /// The input.
        name: String,
        /// Its hexagon.
        input: Position,
        /// The first hexagon listed that is no input's.
        after: Position,
    },
}

/// `x,y,z`, as a template writes a position.
fn show(Position { x, y, z }: Position) -> String {
    format!("{x},{y},{z}")
}
