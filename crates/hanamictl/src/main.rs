//! `hanamictl`: the command-line client of the Hanami AI server, on `hanami-sdk`.
//!
//! `hanamictl <resource> <verb> [flags] [ARG]` logs in with `HANAMI_ADDRESS`, `HANAMI_USER`
//! and `HANAMI_PW`, makes one call (or, for uploads, the upload sequence), and prints the
//! answer as a bordered table or, with `-j`, as the server's JSON. Exit status 0 on
//! success, 1 on a failure and 130 on Ctrl-C or SIGTERM, with the reason on standard error.
//! See the crate's README.md.

mod cli;
mod commands;
mod connection;
mod error;
mod export;
mod interrupts;
mod local;
mod logs;
mod output;
mod password;
mod progress;
mod waiting;

use std::io::Write as _;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failure(e),
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

/// Parses the command line and the variables that stand for flags (empty variables count
/// as unset, typed flags win at every level of the command: see `hanami_flags`).
fn parse() -> Result<cli::Cli, clap::Error> {
    let words: Vec<_> = std::env::args_os().collect();
    let command = hanami_flags::without_unused_variables(cli::Cli::command(), &words);
    cli::Cli::from_arg_matches(&command.try_get_matches_from(&words)?)
}

/// Help and version go to standard output with status 0 (also for a group command given
/// without its verb, as in the original); real usage errors go to standard error with
/// status 1.
fn parse_failure(mut error: clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(std::io::stdout().lock(), "{}", error.render());
            ExitCode::SUCCESS
        }
        // A group command with only global flags (`hanamictl -j`, `hanamictl project -j`):
        // its help, as without the flags (and as in the original).
        ErrorKind::MissingSubcommand => {
            let words: Vec<_> = std::env::args_os().collect();
            let _ = cli::group_help(&words).print_help();
            ExitCode::SUCCESS
        }
        _ => {
            let words: Vec<_> = std::env::args_os().collect();
            let hint = cli::usage_hint(&error, &words);
            if hint.is_some() {
                // Clap's own tip (to pass the flag as a value, after `--`) is wrong advice
                // where the hint names the right command.
                error.insert(ContextKind::Suggested, ContextValue::StyledStrs(Vec::new()));
                let text = error.render().to_string().replace("\n\n\n", "\n\n");
                let _ = write!(std::io::stderr().lock(), "{text}");
            } else {
                let _ = error.print();
            }
            if let Some(variable) =
                hanami_flags::variable_behind(&error, &cli::Cli::command(), &words)
            {
                error::report(format_args!(
                    "note: the value comes from the variable {variable}"
                ));
            }
            if let Some(hint) = hint {
                error::report(hint);
            }
            ExitCode::FAILURE
        }
    }
}
