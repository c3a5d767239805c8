//! The `scalesim` command line. Thin: parses arguments (`cli::args`), runs the subcommand
//! (`cli::dispatch`), prints one error line on failure.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    if !matches!(args.command, cli::args::Command::Worker { .. }) {
        // Before any thread starts: an interrupted run leaves no half-written folder.
        scalesim::experiment::outdir::clean_up_on_interrupt();
    }
    match cli::dispatch::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line of a sane length, whatever a value in the input held.
            eprintln!("error: {}", scalesim::text::clip_message(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
