//! `sockline-server`: parses the command line, logs to stderr, and runs the reference server.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sockline::server::cli::{run, Args};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: piped or redirected logs stay plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    run(args).await
}
