//! The `scalesim` command line, in the binary crate: `args` (what clap parses), `support` (what
//! several subcommands share), `dispatch` (one subcommand run). `anyhow` lives here only; the
//! library's errors are typed.

pub(crate) mod args;
pub(crate) mod dispatch;
pub(crate) mod support;
