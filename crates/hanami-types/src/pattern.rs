//! The string patterns of the API's inputs (ids, names, uuids, tokens), which the server
//! checks and names in its 400s by their regular expressions (the original's wording), and
//! which clients can put in words for their users.

/// The string patterns of the API (always matched against the whole value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// A lower- or upper-case hex UUID, `8-4-4-4-12`.
    Uuid,
    /// Project ids and roles: a letter, then letters, digits and `_`.
    Id,
    /// User ids: like [`Pattern::Id`], plus `@`.
    IdExt,
    /// Display names: a letter, then letters, digits, `_`, `-` and spaces.
    Name,
    /// Tokens: letters, digits, `_`, `.` and `-` (may be empty).
    Token,
    /// Endpoint ids: a letter, then letters, digits, `.`, `_` and `/`.
    Endpoint,
    /// Cluster modes: exactly `TASK` or `DIRECT`.
    Mode,
}

impl Pattern {
    /// Every pattern.
    pub const ALL: [Pattern; 7] = [
        Pattern::Uuid,
        Pattern::Id,
        Pattern::IdExt,
        Pattern::Name,
        Pattern::Token,
        Pattern::Endpoint,
        Pattern::Mode,
    ];

    /// Whether the whole value matches.
    pub fn matches(self, value: &str) -> bool {
        let mut chars = value.chars();
        let first_letter = || {
            value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
        };
        match self {
            Pattern::Uuid => crate::is_uuid(value),
            Pattern::Id => first_letter() && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            Pattern::IdExt => {
                first_letter() && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
            }
            Pattern::Name => {
                first_letter() && chars.all(|c| c.is_ascii_alphanumeric() || "_- ".contains(c))
            }
            Pattern::Token => chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            Pattern::Endpoint => {
                first_letter() && chars.all(|c| c.is_ascii_alphanumeric() || "._/".contains(c))
            }
            Pattern::Mode => value == "TASK" || value == "DIRECT",
        }
    }

    /// The pattern as a regular expression, for error messages.
    pub fn regex(self) -> &'static str {
        match self {
            Pattern::Uuid => {
                "^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$"
            }
            Pattern::Id => "^[a-zA-Z][a-zA-Z_0-9]*$",
            Pattern::IdExt => "^[a-zA-Z][a-zA-Z_0-9@]*$",
            Pattern::Name => "^[a-zA-Z][a-zA-Z_0-9\\- ]*$",
            Pattern::Token => "^[a-zA-Z_.\\-0-9]*$",
            Pattern::Endpoint => "^[a-zA-Z][a-zA-Z._/0-9]*$",
            Pattern::Mode => "^(TASK|DIRECT)$",
        }
    }

    /// The rule in words, for people (the API's messages name the regular expression):
    /// what a value must be.
    pub fn rule(self) -> &'static str {
        match self {
            Pattern::Uuid => "a uuid (8-4-4-4-12 hexadecimal digits, as the server gave it)",
            Pattern::Id => "a letter followed by letters, digits and '_' only",
            Pattern::IdExt => "a letter followed by letters, digits, '_' and '@' only",
            Pattern::Name => "a letter followed by letters, digits, '_', '-' and spaces only",
            Pattern::Token => "letters, digits, '_', '.' and '-' only",
            Pattern::Endpoint => "a letter followed by letters, digits, '.', '_' and '/' only",
            Pattern::Mode => "TASK or DIRECT",
        }
    }

    /// The pattern whose regular expression an API message names (`… doesn't match with
    /// regex "…"`), if any.
    pub fn named_in(message: &str) -> Option<Pattern> {
        let named = message.split("with regex \"").nth(1)?.split('"').next()?;
        Pattern::ALL
            .into_iter()
            .find(|pattern| pattern.regex() == named)
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn patterns() {
        assert!(Pattern::Uuid.matches("8a1b2c3d-0000-4000-8000-123456789ABC"));
        assert!(!Pattern::Uuid.matches("8a1b2c3d-0000-4000-8000-123456789abg"));
        assert!(!Pattern::Uuid.matches("fail_cluster"));
        assert!(Pattern::IdExt.matches("a@b_c1"));
        assert!(!Pattern::IdExt.matches("a.b@c"));
        assert!(!Pattern::Id.matches("a@b"));
        assert!(!Pattern::Id.matches("_abc"));
        assert!(Pattern::Name.matches("Project A-1_x"));
        assert!(!Pattern::Name.matches(" leading"));
        assert!(Pattern::Token.matches(""));
        assert!(!Pattern::Token.matches("abc$def"));
        assert!(Pattern::Endpoint.matches("v1.0alpha/cluster/all"));
        assert!(!Pattern::Endpoint.matches("v1.0alpha/clus-ter"));
    }

    /// Every pattern is found again from a message that names its expression.
    #[test]
    fn messages_name_their_pattern() {
        for pattern in Pattern::ALL {
            let message = format!(
                "Given item 'x' doesn't match with regex \"{}\"",
                pattern.regex()
            );
            assert_eq!(Pattern::named_in(&message), Some(pattern), "{message}");
        }
        assert_eq!(
            Pattern::named_in("Given item 'x' is shorter than 4 characters"),
            None
        );
        assert_eq!(Pattern::named_in("doesn't match with regex \"^x$\""), None);
    }
}
