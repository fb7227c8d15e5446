//! Command-line flags that environment variables stand for (`HANAMI_ADDRESS` for
//! `--address`, say): the rules that the server `hanami` and the client `hanamictl` share.
//!
//! - A variable that is set but empty counts as unset: `export HANAMI_TLS_CERT=` is a
//!   common way to switch a setting off, and must not fail the start over a flag nobody
//!   typed.
//! - A typed flag makes its variable irrelevant (clap would still read the variable for a
//!   global flag at the levels of a command where the flag was not typed).
//! - When clap refuses a value that came from a variable, the user is told which variable
//!   to look at ([`variable_behind`]); and so when a value that clap took fails later
//!   ([`variables_quoted`]).

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};

/// `command` with the variables of its flags dropped where they are set but empty, or
/// where the flag is typed on the command line `words` (the program's arguments).
pub fn without_unused_variables(command: Command, words: &[OsString]) -> Command {
    command.mut_args(|arg| {
        let empty = arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some_and(|value| value.is_empty()));
        if empty || typed(&arg, words) {
            arg.env(None::<&str>)
        } else {
            arg
        }
    })
}

/// The variable that gave the value clap refused in `error`, for a flag of `command` that
/// was not typed in `words`; `None` when the value was typed or the error is of another
/// kind.
pub fn variable_behind(
    error: &clap::Error,
    command: &Command,
    words: &[OsString],
) -> Option<String> {
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    // Shown as `--token-expiry <TOKEN_EXPIRY>`.
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = shown.split(' ').next()?;
    let arg = command.get_arguments().find(|arg| {
        arg.get_long()
            .is_some_and(|long| flag.strip_prefix("--") == Some(long))
    })?;
    let variable = arg.get_env()?;
    (!typed(arg, words) && std::env::var_os(variable).is_some())
        .then(|| variable.to_string_lossy().into_owned())
}

/// The variables of `command`'s flags not typed in `words` whose (non-empty) values `text`
/// quotes, as `(variable, value)`: for an error about a value clap took (a file that cannot
/// be read, an address that cannot be listened on), to say where that value came from.
pub fn variables_quoted(
    command: &Command,
    words: &[OsString],
    text: &str,
) -> Vec<(String, String)> {
    command
        .get_arguments()
        .filter(|arg| !typed(arg, words))
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_str()?;
            let value = std::env::var(variable).ok()?;
            (!value.is_empty() && text.contains(&value)).then(|| (variable.to_owned(), value))
        })
        .collect()
}

/// Whether `words` name the long flag of `arg` (`--flag` or `--flag=value`).
fn typed(arg: &Arg, words: &[OsString]) -> bool {
    let Some(long) = arg.get_long().map(|long| format!("--{long}")) else {
        return false;
    };
    let with_value = format!("{long}=");
    words.iter().any(|word| {
        word.to_str()
            .is_some_and(|word| word == long || word.starts_with(&with_value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command with one flag backed by a variable unique to the test.
    fn command(variable: &'static str) -> Command {
        Command::new("test").arg(
            Arg::new("number")
                .long("number")
                .env(variable)
                .value_parser(clap::value_parser!(u32)),
        )
    }

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn empty_variables_count_as_unset() {
        const VARIABLE: &str = "HANAMI_FLAGS_TEST_EMPTY";
        // SAFETY: the variable is this test's own; the other test of this crate sets a
        // variable of its own, and no code of this crate reads the environment from another
        // thread (`std::env::var_os` takes the environment lock, as `set_var` does).
        unsafe { std::env::set_var(VARIABLE, "") };
        let args = words(&["test"]);
        let matches = without_unused_variables(command(VARIABLE), &args)
            .try_get_matches_from(&args)
            .unwrap();
        assert_eq!(matches.get_one::<u32>("number"), None);
        // Without the rule clap refuses the empty value.
        assert!(command(VARIABLE).try_get_matches_from(&args).is_err());
    }

    #[test]
    fn values_that_fail_later_name_their_variable_unless_typed() {
        const VARIABLE: &str = "HANAMI_FLAGS_TEST_QUOTED";
        // SAFETY: as in the tests above, the variable is this test's own.
        unsafe { std::env::set_var(VARIABLE, "42") };
        let text = "cannot use 42: in use";
        assert_eq!(
            variables_quoted(&command(VARIABLE), &words(&["test"]), text),
            [(VARIABLE.to_owned(), "42".to_owned())]
        );
        assert!(variables_quoted(&command(VARIABLE), &words(&["test"]), "other").is_empty());
        let typed = words(&["test", "--number", "42"]);
        assert!(variables_quoted(&command(VARIABLE), &typed, text).is_empty());
    }

    #[test]
    fn refused_values_name_their_variable_unless_typed() {
        const VARIABLE: &str = "HANAMI_FLAGS_TEST_BAD";
        // SAFETY: the variable is this test's own; the other test of this crate sets a
        // variable of its own, and no code of this crate reads the environment from another
        // thread (`std::env::var_os` takes the environment lock, as `set_var` does).
        unsafe { std::env::set_var(VARIABLE, "many") };
        let args = words(&["test"]);
        let error = without_unused_variables(command(VARIABLE), &args)
            .try_get_matches_from(&args)
            .unwrap_err();
        assert_eq!(
            variable_behind(&error, &command(VARIABLE), &args).as_deref(),
            Some(VARIABLE)
        );
        // A typed bad value is the user's own: no variable to name, and the variable's
        // value does not matter.
        for typed in [&["test", "--number", "x"][..], &["test", "--number=x"]] {
            let args = words(typed);
            let error = without_unused_variables(command(VARIABLE), &args)
                .try_get_matches_from(&args)
                .unwrap_err();
            assert_eq!(variable_behind(&error, &command(VARIABLE), &args), None);
        }
        let args = words(&["test", "--number", "7"]);
        let matches = without_unused_variables(command(VARIABLE), &args)
            .try_get_matches_from(&args)
            .unwrap();
        assert_eq!(matches.get_one::<u32>("number"), Some(&7));
    }
}
