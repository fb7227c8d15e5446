//! Tokens of the template language (spec §1.1): longest match first, keywords before
//! identifiers, digits-only runs as numbers.

use super::error::{TemplateError, TemplateErrorKind};

/// Reserved words of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    Settings,
    Hexagons,
    Inputs,
    Outputs,
    Target,
    NumberOfInputs,
    NumberOfOutputs,
    /// Reserved by the older syntax; no rule accepts it.
    NumberOfNeurons,
    NeuronCooldown,
    MaxConnectionDistance,
    RefractoryTime,
    EnableReduction,
}

const KEYWORDS: [(&str, Keyword); 12] = [
    ("settings", Keyword::Settings),
    ("hexagons", Keyword::Hexagons),
    ("inputs", Keyword::Inputs),
    ("outputs", Keyword::Outputs),
    ("target", Keyword::Target),
    ("number_of_inputs", Keyword::NumberOfInputs),
    ("number_of_outputs", Keyword::NumberOfOutputs),
    ("number_of_neurons", Keyword::NumberOfNeurons),
    ("neuron_cooldown", Keyword::NeuronCooldown),
    ("max_connection_distance", Keyword::MaxConnectionDistance),
    ("refractory_time", Keyword::RefractoryTime),
    ("enable_reduction", Keyword::EnableReduction),
];

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tok {
    /// `version:1` or `version: 1`.
    Version,
    Keyword(Keyword),
    Bool(bool),
    Comma,
    Colon,
    Number(i64),
    Float(f64),
    Identifier,
    /// A quoted string: lexed, but accepted by no rule.
    Str,
    Eof,
}

/// One token with its 1-based position and its text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    pub tok: Tok,
    pub text: &'a str,
    pub line: u32,
    pub column: u32,
}

impl Token<'_> {
    /// How the token is named in a syntax-error message.
    pub(crate) fn describe(&self) -> String {
        let text = shortened(self.text);
        match self.tok {
            Tok::Eof => "end of template".to_string(),
            Tok::Number(_) | Tok::Float(_) => format!("number `{text}`"),
            Tok::Identifier => format!("name `{text}`"),
            _ => format!("`{text}`"),
        }
    }
}

/// Characters of template text that an error message quotes at most.
const QUOTED_CHARS: usize = 60;

/// `text` as an error message quotes it: whole if short, else its start and `…`.
pub(crate) fn shortened(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Splits template text into tokens on demand.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    /// A position on the current line whose column is known, and that column (1-based):
    /// columns are counted on from there, so a long line costs linear time, not quadratic.
    column_mark: (usize, u32),
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `c` may come right after a word: a blank, a line break or the start of another
/// token (anything else is an invalid character wherever it stands).
fn may_follow_word(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | ',' | ':' | '"' | '-')
        || u8::try_from(c).is_ok_and(is_ident_byte)
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Lexer {
            text,
            pos: 0,
            line: 1,
            column_mark: (0, 1),
        }
    }

    /// The column of `pos`, which lies on the current line at or after the last one asked.
    fn column_of(&mut self, pos: usize) -> u32 {
        let (from, column) = self.column_mark;
        let column = column + self.text[from..pos].chars().count() as u32;
        self.column_mark = (pos, column);
        column
    }

    /// Skips blanks and line breaks. `\r\n` counts as a line break (a documented extension);
    /// a lone `\r` is an invalid character, as in the original.
    fn skip_blanks(&mut self) {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b' ' | b'\t' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.column_mark = (self.pos, 1);
                }
                b'\r' if bytes.get(self.pos + 1) == Some(&b'\n') => self.pos += 1,
                _ => break,
            }
        }
    }

    /// The next token, or the lexer error at this point.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, TemplateError> {
        self.skip_blanks();
        let start = self.pos;
        let line = self.line;
        let column = self.column_of(start);
        let rest = &self.text[start..];
        let bytes = rest.as_bytes();
        let make = |tok, len: usize| Token {
            tok,
            text: &rest[..len],
            line,
            column,
        };
        let Some(&first) = bytes.first() else {
            return Ok(make(Tok::Eof, 0));
        };
        let error = |kind| TemplateError::new(line, column, kind);

        let (token, len) = if rest.starts_with("version: 1") {
            (make(Tok::Version, 10), 10)
        } else if rest.starts_with("version:1") {
            (make(Tok::Version, 9), 9)
        } else if first == b',' {
            (make(Tok::Comma, 1), 1)
        } else if first == b':' {
            (make(Tok::Colon, 1), 1)
        } else if first == b'"' {
            let len =
                quoted_len(bytes).ok_or_else(|| error(TemplateErrorKind::InvalidCharacter('"')))?;
            (make(Tok::Str, len), len)
        } else if is_ident_byte(first)
            || (first == b'-' && bytes.get(1).is_some_and(u8::is_ascii_digit))
        {
            let (token, len) = self.word(rest, line, column)?;
            // A character that no token takes, right after a word (`hexa\0gons`), is
            // reported where it is, not as the word before it being out of place.
            if let Some(c) = rest[len..].chars().next().filter(|&c| !may_follow_word(c)) {
                let column = column + rest[..len].chars().count() as u32;
                return Err(TemplateError::new(
                    line,
                    column,
                    TemplateErrorKind::InvalidCharacter(c),
                ));
            }
            (token, len)
        } else {
            let c = rest.chars().next().unwrap_or('\0');
            return Err(error(TemplateErrorKind::InvalidCharacter(c)));
        };
        self.pos += len;
        Ok(token)
    }

    /// Numbers, floats, keywords, booleans and identifiers: the longest match wins, and on a
    /// tie the number (digits only) or keyword wins over the identifier.
    fn word(
        &self,
        rest: &'a str,
        line: u32,
        column: u32,
    ) -> Result<(Token<'a>, usize), TemplateError> {
        let bytes = rest.as_bytes();
        let sign = usize::from(bytes[0] == b'-');
        let digits = bytes[sign..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let number_len = if digits > 0 { sign + digits } else { 0 };
        let float_len = if number_len > 0 && bytes.get(number_len) == Some(&b'.') {
            let frac = bytes[number_len + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if frac > 0 { number_len + 1 + frac } else { 0 }
        } else {
            0
        };
        let ident_len = if sign == 0 {
            bytes.iter().take_while(|&&b| is_ident_byte(b)).count()
        } else {
            0
        };
        let token = |tok, len: usize| Token {
            tok,
            text: &rest[..len],
            line,
            column,
        };
        if float_len > 0 && float_len > ident_len {
            let value = rest[..float_len].parse::<f64>().unwrap_or(f64::INFINITY);
            return Ok((token(Tok::Float(value), float_len), float_len));
        }
        if number_len > 0 && number_len >= ident_len {
            let value = rest[..number_len].parse::<i64>().map_err(|_| {
                TemplateError::new(line, column, TemplateErrorKind::IntegerOutOfRange)
            })?;
            return Ok((token(Tok::Number(value), number_len), number_len));
        }
        let word = &rest[..ident_len];
        let tok = match word {
            "true" | "True" => Tok::Bool(true),
            "false" | "False" => Tok::Bool(false),
            _ => KEYWORDS
                .iter()
                .find(|(k, _)| *k == word)
                .map_or(Tok::Identifier, |(_, kw)| Tok::Keyword(*kw)),
        };
        Ok((token(tok, ident_len), ident_len))
    }
}

/// Length of a closed `"…"` string with backslash escapes, or `None` when it is not closed.
fn quoted_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token().expect("lexes");
            out.push(t.tok);
            if t.tok == Tok::Eof {
                return out;
            }
        }
    }

    #[test]
    fn longest_match_and_keyword_precedence() {
        assert_eq!(
            toks("version: 10"),
            vec![Tok::Version, Tok::Number(0), Tok::Eof]
        );
        assert_eq!(toks("1abc"), vec![Tok::Identifier, Tok::Eof]);
        assert_eq!(toks("123"), vec![Tok::Number(123), Tok::Eof]);
        assert_eq!(
            toks("-5abc"),
            vec![Tok::Number(-5), Tok::Identifier, Tok::Eof]
        );
        assert_eq!(toks("1e9"), vec![Tok::Identifier, Tok::Eof]);
        assert_eq!(toks("12.5"), vec![Tok::Float(12.5), Tok::Eof]);
        assert_eq!(
            toks("True false"),
            vec![Tok::Bool(true), Tok::Bool(false), Tok::Eof]
        );
        assert_eq!(toks("TRUE"), vec![Tok::Identifier, Tok::Eof]);
        assert_eq!(toks("targets"), vec![Tok::Identifier, Tok::Eof]);
        assert_eq!(toks("\"x\""), vec![Tok::Str, Tok::Eof]);
        assert_eq!(
            toks("a\r\nb"),
            vec![Tok::Identifier, Tok::Identifier, Tok::Eof]
        );
    }

    #[test]
    fn bad_characters_are_reported_with_position() {
        let err = Lexer::new("a\n  #").next_token().and_then(|_| {
            let mut l = Lexer::new("a\n  #");
            l.next_token()?;
            l.next_token()
        });
        let err = err.unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        assert_eq!(err.kind, TemplateErrorKind::InvalidCharacter('#'));
        let err = Lexer::new("99999999999999999999").next_token().unwrap_err();
        assert_eq!(err.kind, TemplateErrorKind::IntegerOutOfRange);
        // A character no token takes, right after a word, is named where it is, not as the
        // word before it.
        for (text, bad, column) in [("1.", '.', 2), ("hexa\0gons", '\0', 5), ("ab@", '@', 3)] {
            let err = Lexer::new(text).next_token().unwrap_err();
            assert_eq!(
                err.kind,
                TemplateErrorKind::InvalidCharacter(bad),
                "{text:?}"
            );
            assert_eq!((err.line, err.column), (1, column), "{text:?}");
        }
        assert!(Lexer::new("\"open").next_token().is_err());
        assert!(Lexer::new("a\rb").next_token().is_ok());
    }
}
