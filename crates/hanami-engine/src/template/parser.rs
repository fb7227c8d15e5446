//! Recursive-descent parser for the grammar of spec §1.2, with the semantic checks of §1.4
//! and the limits of [`super::limits`].

use std::collections::HashMap;

use super::error::{TemplateError, TemplateErrorKind as Kind};
use super::lexer::{Keyword, Lexer, Tok, Token, shortened};
use super::{InterfaceTemplate, Position, Settings, Template, limits};

/// Parses and checks a whole template.
pub(crate) fn parse(text: &str) -> Result<Template, TemplateError> {
    // Editors on Windows start UTF-8 files with a byte-order mark; positions then count
    // from the first character the user sees.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Blanks and line breaks alone are as empty as nothing (not a syntax error at their
    // end); a lone `\r` is still an invalid character.
    if matches!(Lexer::new(text).next_token(), Ok(t) if t.tok == Tok::Eof) {
        return Err(TemplateError::new(0, 0, Kind::Empty));
    }
    if text.len() > limits::MAX_TEMPLATE_BYTES {
        return Err(TemplateError::new(1, 1, Kind::TooLong));
    }
    Parser::new(text)?.template()
}

/// Refuses an input whose hexagon is listed after one that is no input's (see
/// [`Kind::InputListedLate`]).
fn input_hexagons_first(
    hexagons: &[Position],
    inputs: &[InterfaceTemplate],
) -> Result<(), TemplateError> {
    let is_input = |h: usize| inputs.iter().any(|i| i.hexagon == h);
    let Some(first_other) = (0..hexagons.len()).find(|&h| !is_input(h)) else {
        return Ok(());
    };
    match inputs.iter().find(|i| i.hexagon > first_other) {
        Some(late) => Err(TemplateError::new(
            late.line,
            late.column,
            Kind::InputListedLate {
                name: late.name.clone(),
                input: hexagons[late.hexagon],
                after: hexagons[first_other],
            },
        )),
        None => Ok(()),
    }
}

/// The template key of Hanami-rs's own setting (spec §11.1 B1, the "frozen request" switch).
const REQUEST_GROWTH: &str = "request_growth";

/// The keys of the `settings` block.
#[derive(Debug, Clone, Copy)]
enum SettingKey {
    NeuronCooldown,
    RefractoryTime,
    MaxConnectionDistance,
    EnableReduction,
    RequestGrowth,
}

/// Which kind of interface a block describes.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Input,
    Output,
}

struct Parser<'a> {
    /// The whole template, for messages that quote a line.
    source: &'a str,
    lexer: Lexer<'a>,
    look: Token<'a>,
    positions: HashMap<Position, usize>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, TemplateError> {
        let mut lexer = Lexer::new(text);
        let look = lexer.next_token()?;
        Ok(Parser {
            source: text,
            lexer,
            look,
            positions: HashMap::new(),
        })
    }

    fn advance(&mut self) -> Result<Token<'a>, TemplateError> {
        let current = self.look;
        self.look = self.lexer.next_token()?;
        Ok(current)
    }

    fn syntax(&self, expected: &'static str) -> TemplateError {
        self.error_at(
            &self.look,
            Kind::Syntax {
                expected,
                found: self.look.describe(),
            },
        )
    }

    fn error_at(&self, token: &Token<'_>, kind: Kind) -> TemplateError {
        TemplateError::new(token.line, token.column, kind)
    }

    fn expect(&mut self, tok: Tok, expected: &'static str) -> Result<Token<'a>, TemplateError> {
        if self.look.tok == tok {
            self.advance()
        } else {
            Err(self.syntax(expected))
        }
    }

    fn number(&mut self, expected: &'static str) -> Result<(i64, Token<'a>), TemplateError> {
        match self.look.tok {
            Tok::Number(n) => Ok((n, self.advance()?)),
            _ => Err(self.syntax(expected)),
        }
    }

    fn template(mut self) -> Result<Template, TemplateError> {
        self.version()?;
        self.expect(Tok::Keyword(Keyword::Settings), "`settings`")?;
        self.expect(Tok::Colon, "`:` after `settings`")?;
        let settings = self.settings()?;

        self.expect(Tok::Colon, "`:` after `hexagons`")?;
        let mut hexagons = Vec::new();
        loop {
            let (position, token) = self.position("a hexagon position `x,y,z`")?;
            if self.positions.insert(position, hexagons.len()).is_some() {
                let Position { x, y, z } = position;
                return Err(self.error_at(&token, Kind::DuplicateHexagon(x, y, z)));
            }
            if self.positions.len() > limits::MAX_HEXAGONS {
                return Err(self.error_at(&token, Kind::TooManyHexagons));
            }
            hexagons.push(position);
            match self.look.tok {
                Tok::Number(_) => continue,
                Tok::Keyword(Keyword::Inputs) => break,
                _ => return Err(self.syntax("another hexagon position or `inputs`")),
            }
        }
        self.advance()?;
        self.expect(Tok::Colon, "`:` after `inputs`")?;
        let inputs = self.interfaces(Side::Input, &[])?;
        input_hexagons_first(&hexagons, &inputs)?;
        self.expect(Tok::Colon, "`:` after `outputs`")?;
        let outputs = self.interfaces(Side::Output, &inputs)?;
        Ok(Template {
            settings,
            hexagons,
            inputs,
            outputs,
        })
    }

    /// The `version: 1` line. A line that names another version (`version: 7`, or
    /// `version: 10`, which lexes as `version: 1` and `0`) is quoted whole, so the message
    /// says which version was asked for.
    fn version(&mut self) -> Result<(), TemplateError> {
        const EXPECTED: &str = "`version: 1` (the only version of the template language)";
        let line = self.look.line;
        let other_version = |parser: &Self| {
            let text = parser.source.lines().nth(line.saturating_sub(1) as usize)?;
            let text = text.trim_matches([' ', '\t']);
            text.starts_with("version").then(|| Kind::Syntax {
                expected: EXPECTED,
                found: format!("`{}`", shortened(text)),
            })
        };
        let start = self.look;
        if start.tok != Tok::Version {
            return Err(match other_version(self) {
                Some(kind) => self.error_at(&start, kind),
                None => self.syntax(EXPECTED),
            });
        }
        self.advance()?;
        let glued = self.look.line == line
            && self.look.column == start.column + start.text.len() as u32
            && matches!(self.look.tok, Tok::Number(_) | Tok::Float(_));
        match other_version(self) {
            Some(kind) if glued => Err(self.error_at(&start, kind)),
            _ => Ok(()),
        }
    }

    /// `setting+`, ending at the `hexagons` keyword (consumed).
    fn settings(&mut self) -> Result<Settings, TemplateError> {
        const EXPECTED_SETTING: &str = "a setting (`neuron_cooldown`, `refractory_time`, \
             `max_connection_distance`, `enable_reduction` or `request_growth`)";
        let mut settings = Settings::default();
        let mut count = 0;
        loop {
            let key = match self.look.tok {
                Tok::Keyword(Keyword::NeuronCooldown) => SettingKey::NeuronCooldown,
                Tok::Keyword(Keyword::RefractoryTime) => SettingKey::RefractoryTime,
                Tok::Keyword(Keyword::MaxConnectionDistance) => SettingKey::MaxConnectionDistance,
                Tok::Keyword(Keyword::EnableReduction) => SettingKey::EnableReduction,
                // Not a keyword of the lexer, so that interfaces may still bear the name.
                Tok::Identifier if self.look.text == REQUEST_GROWTH => SettingKey::RequestGrowth,
                Tok::Keyword(Keyword::Hexagons) if count > 0 => {
                    self.advance()?;
                    return Ok(settings);
                }
                _ if count > 0 => {
                    return Err(self.syntax("another setting or `hexagons`"));
                }
                _ => return Err(self.syntax(EXPECTED_SETTING)),
            };
            self.advance()?;
            self.expect(Tok::Colon, "`:` after the setting name")?;
            let value = self.look;
            match key {
                SettingKey::NeuronCooldown => {
                    let cooldown = match value.tok {
                        Tok::Number(n) => n as f64,
                        Tok::Float(f) => f,
                        _ => return Err(self.syntax("a number")),
                    };
                    // Checked as stored: 1.00000001 becomes 1.0 in `f32`.
                    let narrowed = cooldown as f32;
                    if narrowed <= 1.0 {
                        return Err(self.error_at(&value, Kind::CooldownTooSmall));
                    }
                    if !narrowed.is_finite() {
                        return Err(self.error_at(&value, Kind::CooldownTooLarge));
                    }
                    settings.neuron_cooldown = narrowed;
                }
                SettingKey::RefractoryTime => {
                    let Tok::Number(n) = value.tok else {
                        return Err(self.syntax("a whole number"));
                    };
                    if n < 1 {
                        return Err(self.error_at(&value, Kind::RefractoryTooSmall));
                    }
                    if n > i64::from(limits::MAX_REFRACTORY_TIME) {
                        return Err(self.error_at(&value, Kind::RefractoryTooLarge));
                    }
                    settings.refractory_time = n as u32;
                }
                SettingKey::MaxConnectionDistance => {
                    let Tok::Number(n) = value.tok else {
                        return Err(self.syntax("a whole number"));
                    };
                    if n < 1 {
                        return Err(self.error_at(&value, Kind::DistanceTooSmall));
                    }
                    if n > i64::from(limits::MAX_CONNECTION_DISTANCE) {
                        return Err(self.error_at(&value, Kind::DistanceTooLarge));
                    }
                    settings.max_connection_distance = n as u32;
                }
                SettingKey::EnableReduction => settings.enable_reduction = self.boolean()?,
                SettingKey::RequestGrowth => settings.request_growth = self.boolean()?,
            }
            self.advance()?;
            count += 1;
        }
    }

    /// The boolean value of a setting (not consumed).
    fn boolean(&self) -> Result<bool, TemplateError> {
        match self.look.tok {
            Tok::Bool(b) => Ok(b),
            _ => Err(self.syntax("`true` or `false`")),
        }
    }

    /// `NUMBER , NUMBER , NUMBER`; returns the position and the first token.
    fn position(&mut self, expected: &'static str) -> Result<(Position, Token<'a>), TemplateError> {
        let mut coords = [0u32; 3];
        let mut first = None;
        for (i, coord) in coords.iter_mut().enumerate() {
            if i > 0 {
                self.expect(Tok::Comma, "`,` between coordinates")?;
            }
            let (n, token) = self.number(if i == 0 { expected } else { "a coordinate" })?;
            first.get_or_insert(token);
            if n < 0 {
                return Err(self.error_at(&token, Kind::Negative(n)));
            }
            if n > i64::from(limits::MAX_COORDINATE) {
                return Err(self.error_at(&token, Kind::CoordinateTooLarge(n)));
            }
            *coord = n as u32;
        }
        let [x, y, z] = coords;
        Ok((Position { x, y, z }, first.unwrap_or(self.look)))
    }

    /// `input+` or `output+`. Inputs end at the `outputs` keyword (consumed), outputs at the
    /// end of the template.
    fn interfaces(
        &mut self,
        side: Side,
        inputs: &[InterfaceTemplate],
    ) -> Result<Vec<InterfaceTemplate>, TemplateError> {
        let (count_kw, count_text, limit) = match side {
            Side::Input => (
                Keyword::NumberOfInputs,
                "`number_of_inputs`",
                limits::MAX_INPUTS,
            ),
            Side::Output => (
                Keyword::NumberOfOutputs,
                "`number_of_outputs`",
                limits::MAX_OUTPUTS,
            ),
        };
        let mut list: Vec<InterfaceTemplate> = Vec::new();
        // Neurons of the interfaces in `list`; each is within the limit, so the sum of at most
        // 1024 fits a `u64`.
        let mut total = 0u64;
        loop {
            let name_token = if names_an_interface(self.look.tok, side) {
                self.advance()?
            } else {
                return Err(self.syntax(match side {
                    Side::Input => "an input name",
                    Side::Output => "an output name",
                }));
            };
            let name = name_token.text.to_string();
            if name.chars().count() > limits::MAX_NAME_LEN {
                return Err(self.error_at(&name_token, Kind::NameTooLong(shortened(&name))));
            }
            if inputs.iter().chain(&list).any(|i| i.name == name) {
                return Err(self.error_at(&name_token, Kind::DuplicateName(name)));
            }
            self.expect(Tok::Colon, "`:` after the name")?;
            if side == Side::Output
                && list.is_empty()
                && name_token.tok == Tok::Keyword(Keyword::Target)
                && self.look.tok != Tok::Keyword(Keyword::Target)
            {
                // `outputs:` named an input after the first one: it ended the inputs, and
                // that input's `target:` was read as the first output's name.
                return Err(self.syntax(
                    "`target` (an input cannot be named `outputs`: the word starts the outputs)",
                ));
            }
            self.expect(Tok::Keyword(Keyword::Target), "`target`")?;
            self.expect(Tok::Colon, "`:` after `target`")?;
            let (position, pos_token) = self.position("a hexagon position `x,y,z`")?;
            let Some(&hexagon) = self.positions.get(&position) else {
                let Position { x, y, z } = position;
                return Err(self.error_at(&pos_token, Kind::UnknownHexagon(x, y, z)));
            };
            if list.iter().any(|i| i.hexagon == hexagon) {
                return Err(self.error_at(&pos_token, Kind::HexagonAlreadyUsed(name)));
            }
            if side == Side::Output && inputs.iter().any(|i| i.hexagon == hexagon) {
                return Err(
                    self.error_at(&pos_token, Kind::InputAndOutputOnSameHexagon(name, "input"))
                );
            }
            self.expect(Tok::Keyword(count_kw), count_text)?;
            self.expect(Tok::Colon, "`:`")?;
            let (size, size_token) = self.number("a whole number")?;
            if size < 0 {
                return Err(self.error_at(&size_token, Kind::Negative(size)));
            }
            if size == 0 {
                return Err(self.error_at(&size_token, Kind::EmptyInterface(name)));
            }
            if size as u64 > limit as u64 {
                let kind = match side {
                    Side::Input => Kind::TooManyInputs(name),
                    Side::Output => Kind::TooManyOutputs(name),
                };
                return Err(self.error_at(&size_token, kind));
            }
            total += size as u64;
            if total > limit as u64 {
                let kind = match side {
                    Side::Input => Kind::TooManyInputsInAll(name),
                    Side::Output => Kind::TooManyOutputsInAll(name),
                };
                return Err(self.error_at(&size_token, kind));
            }
            list.push(InterfaceTemplate {
                name,
                hexagon,
                size: size as usize,
                line: name_token.line,
                column: name_token.column,
            });
            match (side, self.look.tok) {
                (_, tok) if names_an_interface(tok, side) => continue,
                (Side::Input, Tok::Keyword(Keyword::Outputs)) => {
                    self.advance()?;
                    return Ok(list);
                }
                (Side::Output, Tok::Eof) => return Ok(list),
                (Side::Input, _) => return Err(self.syntax("another input or `outputs`")),
                (Side::Output, _) => {
                    return Err(self.syntax("another output or the end of the template"));
                }
            }
        }
    }
}

/// Whether a token can name an input (`side` [`Side::Input`]) or an output: a name, and also
/// a word of the language (`target`, `settings`, `true`, …, as a dataset's column may be
/// called), except `outputs` among the inputs, where it ends them.
fn names_an_interface(tok: Tok, side: Side) -> bool {
    match tok {
        Tok::Identifier | Tok::Bool(_) => true,
        Tok::Keyword(Keyword::Outputs) => side == Side::Output,
        Tok::Keyword(_) => true,
        _ => false,
    }
}
