//! `hanamictl`: the command-line client of the Hanami AI server, on `hanami-sdk`.
//!
//! `hanamictl <resource> <verb> [flags] [ARG]` logs in with `HANAMI_ADDRESS`, `HANAMI_USER`
//! and `HANAMI_PW`, makes one call (or, for uploads, the upload sequence), and prints the
//! answer as a bordered table or, with `-j`, as the server's JSON. Exit status 0 on
//! success, 1 on any failure with the reason on standard error. See the crate's README.md.

mod cli;
mod commands;
mod error;
mod output;
mod password;
mod progress;

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failure(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
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
            print!("{}", error.render());
            ExitCode::SUCCESS
        }
        _ => {
            let _ = error.print();
            ExitCode::FAILURE
        }
    }
}
