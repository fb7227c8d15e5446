//! The policy file: which role may call which endpoint with which method.
//!
//! Format (blank lines and surrounding whitespace are insignificant):
//!
//! ```text
//! v1.0alpha/cluster
//! - GET: admin, member
//! - POST: admin, member
//! ```
//!
//! An endpoint id is written without the leading slash. Access is granted only if the
//! endpoint has a block, the block has a line for the method, and the caller's role is
//! listed there; everything else is denied. When an endpoint appears twice, its first block
//! wins. The built-in default is the original's example policy (roles `admin` and `member`).

use std::collections::HashMap;
use std::fmt;

/// The default policy, used when no policy file is configured.
pub const DEFAULT_POLICY: &str = include_str!("../policies/default.policy");

/// The HTTP methods the API knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    /// Parses an upper-case method name; other methods (HEAD, PATCH, ...) are not part of the API.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "GET" => Some(Self::Get),
            "POST" => Some(Self::Post),
            "PUT" => Some(Self::Put),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy file that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("policy line {line}: {message}")]
pub struct PolicyError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// A parsed policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: HashMap<String, HashMap<Method, Vec<String>>>,
    /// Line numbers of blocks that repeat an endpoint id (ignored, as in the original).
    ignored_blocks: Vec<usize>,
}

impl Policy {
    /// The built-in default policy.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_POLICY).expect("the built-in policy parses")
    }

    /// Parses policy text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut rules: HashMap<String, HashMap<Method, Vec<String>>> = HashMap::new();
        let mut ignored_blocks = Vec::new();
        // The endpoint whose block is open, and whether it is the first block of that id.
        let mut current: Option<(String, bool)> = None;
        // Some editors start UTF-8 files with a byte order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |message: String| PolicyError {
                line: line_no,
                message,
            };
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('-') {
                let Some((endpoint, first)) = &current else {
                    return Err(err("method line before any endpoint".into()));
                };
                let (method, roles) = rest
                    .split_once(':')
                    .ok_or_else(|| err("expected '- METHOD: role, role'".into()))?;
                let method_name = method.trim();
                let method = Method::parse(method_name).ok_or_else(|| {
                    err(format!(
                        "unknown method '{}', expected GET, POST, PUT or DELETE",
                        method_name.escape_debug()
                    ))
                })?;
                let mut parsed = Vec::new();
                for role in roles.split(',') {
                    let role = role.trim();
                    if role.is_empty()
                        || !role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(err(format!(
                            "invalid role '{}', roles are letters, digits and '_'",
                            role.escape_debug()
                        )));
                    }
                    parsed.push(role.to_owned());
                }
                if *first {
                    rules
                        .get_mut(endpoint)
                        .expect("block was registered")
                        .entry(method)
                        .or_default()
                        .extend(parsed);
                }
            } else {
                if let Some(rest) = line.strip_prefix('/') {
                    return Err(err(format!(
                        "endpoint ids have no leading '/': write '{}'",
                        rest.escape_debug()
                    )));
                }
                if !line
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-._".contains(c))
                {
                    return Err(err(format!(
                        "invalid endpoint id '{}', expected letters, digits and '/-._'",
                        line.escape_debug()
                    )));
                }
                let first = !rules.contains_key(line);
                if first {
                    rules.insert(line.to_owned(), HashMap::new());
                } else {
                    ignored_blocks.push(line_no);
                }
                current = Some((line.to_owned(), first));
            }
        }
        Ok(Self {
            rules,
            ignored_blocks,
        })
    }

    /// The line numbers of blocks for an endpoint id that an earlier block already has:
    /// their rules are ignored (as in the original), so they are most likely a mistake.
    pub fn ignored_blocks(&self) -> &[usize] {
        &self.ignored_blocks
    }

    /// Whether `role` may call `endpoint` (without leading slash) with `method`.
    pub fn allows(&self, endpoint: &str, method: Method, role: &str) -> bool {
        self.rules
            .get(endpoint)
            .and_then(|methods| methods.get(&method))
            .is_some_and(|roles| roles.iter().any(|r| r == role))
    }

    /// The roles the policy names anywhere, sorted and without repeats.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = self
            .rules
            .values()
            .flat_map(|methods| methods.values())
            .flatten()
            .map(String::as_str)
            .collect();
        roles.sort_unstable();
        roles.dedup();
        roles
    }

    /// The roles as a message lists them (`admin, member`), or that there are none.
    pub fn roles_text(&self) -> String {
        match self.roles() {
            roles if roles.is_empty() => "none: it allows nothing but the login".to_owned(),
            roles => roles.join(", "),
        }
    }

    /// The endpoint ids the policy has rules for.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    /// Whether the endpoint id appears in the policy at all.
    pub fn knows(&self, endpoint: &str) -> bool {
        self.rules.contains_key(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policy_matches_the_original_example() {
        let p = Policy::builtin();
        assert!(p.allows("v1.0alpha/user", Method::Post, "admin"));
        assert!(!p.allows("v1.0alpha/user", Method::Post, "member"));
        assert!(p.allows("v1.0alpha/user/project", Method::Delete, "member"));
        assert!(p.allows("v1.0alpha/cluster", Method::Get, "member"));
        assert!(!p.allows("v1.0alpha/cluster", Method::Put, "admin"));
        assert!(p.allows("v1.0alpha/token", Method::Put, "member"));
        assert!(!p.allows("v1.0alpha/token", Method::Post, "member"));
        assert!(!p.allows("v1.0alpha/error_log", Method::Get, "member"));
        assert!(!p.allows("v1.0alpha/nonexistent", Method::Get, "admin"));
        assert!(!p.allows("v1.0alpha/cluster", Method::Get, "tester"));
    }

    /// Messages list the roles, or say that there are none (they ended in "(its roles: )").
    #[test]
    fn roles_are_listed_or_said_to_be_none() {
        assert_eq!(Policy::builtin().roles_text(), "admin, member");
        let empty = Policy::parse("").unwrap();
        assert_eq!(empty.roles_text(), "none: it allows nothing but the login");
    }

    #[test]
    fn parses_whitespace_and_first_block_wins() {
        let p = Policy::parse(
            "\n  a/b\n-   GET :  x,y \n\n- POST: z\na/b\n- DELETE: x\n- GET: w\nc\n- PUT: q\n",
        )
        .unwrap();
        assert!(p.allows("a/b", Method::Get, "x"));
        assert!(p.allows("a/b", Method::Get, "y"));
        assert!(p.allows("a/b", Method::Post, "z"));
        assert!(!p.allows("a/b", Method::Delete, "x"));
        assert!(!p.allows("a/b", Method::Get, "w"));
        assert!(p.allows("c", Method::Put, "q"));
        assert!(p.knows("c"));
        assert!(!p.knows("d"));
        // The second `a/b` block (line 6) is the one ignored.
        assert_eq!(p.ignored_blocks(), &[6]);
        assert!(Policy::builtin().ignored_blocks().is_empty());
    }

    #[test]
    fn reports_line_of_each_error() {
        let cases = [
            ("- GET: admin", 1, "before any endpoint"),
            ("a\n- HEAD: admin", 2, "unknown method 'HEAD'"),
            ("a\n- GET admin", 2, "expected '- METHOD"),
            ("a\n\n- GET: ad-min", 3, "invalid role 'ad-min'"),
            ("a\n- GET: admin,", 2, "invalid role ''"),
            ("a b", 1, "invalid endpoint id"),
            // Control characters are shown escaped, not written to the terminal.
            ("a\n- GET: adm\u{0}in", 2, "invalid role 'adm\\0in'"),
            ("a\n- G\u{1b}[2J: admin", 2, "unknown method 'G\\u{1b}[2J'"),
            ("a\tb\u{7}", 1, "invalid endpoint id 'a\\tb\\u{7}'"),
            (
                "\n/v1.0alpha/auth\n- GET: admin",
                2,
                "write 'v1.0alpha/auth'",
            ),
        ];
        for (text, line, needle) in cases {
            let e = Policy::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(needle), "{text:?}: {}", e.message);
        }
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let p = Policy::parse("\u{feff}v1.0alpha/auth\n- GET: admin\n").unwrap();
        assert!(p.allows("v1.0alpha/auth", Method::Get, "admin"));
        assert_eq!(p.endpoints().collect::<Vec<_>>(), ["v1.0alpha/auth"]);
    }

    #[test]
    fn empty_policy_denies_everything() {
        let p = Policy::parse("").unwrap();
        assert!(!p.allows("v1.0alpha/auth", Method::Get, "admin"));
    }
}
