//! `hanamictl`: the command-line client of the Hanami AI server, on `hanami-sdk`.
//!
//! `hanamictl <resource> <verb> [flags] [ARG]` logs in with `HANAMI_ADDRESS`, `HANAMI_USER`
//! and `HANAMI_PW`, makes one call (or, for uploads, the upload sequence), and prints the
//! answer as a bordered table or, with `-j`, as the server's JSON. Exit status 0 on
//! success, 1 on any failure with the reason on standard error. See the crate's README.md.

mod cli;
mod commands;
mod error;
mod interrupts;
mod output;
mod password;
mod progress;

use std::io::Write as _;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failure(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error::report(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error::report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Parses the command line and the variables that stand for flags. A variable that is set
/// but empty counts as unset (`export HANAMI_CA_CERT=` is a common way to switch a setting
/// off), instead of failing every command over a flag that was never typed; and a typed
/// flag makes its variable irrelevant (clap would still read it for the global flag at the
/// levels of the command where it was not typed).
fn parse() -> Result<cli::Cli, clap::Error> {
    let command = cli::Cli::command().mut_args(|arg| {
        let empty = arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some_and(|value| value.is_empty()));
        if empty || typed(&arg) {
            arg.env(None::<&str>)
        } else {
            arg
        }
    });
    cli::Cli::from_arg_matches(&command.try_get_matches()?)
}

/// Whether the command line names the long flag of `arg` (`--flag` or `--flag=value`).
fn typed(arg: &clap::Arg) -> bool {
    let Some(long) = arg.get_long().map(|long| format!("--{long}")) else {
        return false;
    };
    let with_value = format!("{long}=");
    std::env::args().any(|word| word == long || word.starts_with(&with_value))
}

/// Help and version go to standard output with status 0 (also for a group command given
/// without its verb, as in the original); real usage errors go to standard error with
/// status 1.
fn parse_failure(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(std::io::stdout().lock(), "{}", error.render());
            ExitCode::SUCCESS
        }
        _ => {
            let _ = error.print();
            if let Some(variable) = variable_behind(error) {
                error::report(format_args!(
                    "note: the value comes from the variable {variable}"
                ));
            }
            ExitCode::FAILURE
        }
    }
}

/// The variable that gave the invalid value of a flag that was not typed, if any.
fn variable_behind(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let command = cli::Cli::command();
    let arg = command.get_arguments().find(|arg| {
        arg.get_long()
            .is_some_and(|long| shown.split(' ').next() == Some(&format!("--{long}")))
    })?;
    let variable = arg.get_env()?;
    (!typed(arg) && std::env::var_os(variable).is_some())
        .then(|| variable.to_string_lossy().into_owned())
}
