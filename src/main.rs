//! The `portcullis` binary: the top of the command line. The gateway and its subcommands are
//! the library's (`cli.rs`); `portcullis bench`, the load harness in `bench/`, is compiled into
//! this binary only, so that the library (and `hdrhistogram`) carries only the gateway.

mod bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A reverse-proxy authentication gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Gateway(portcullis::cli::Command),
    /// Load-test a gateway: virtual users log in, call a path, refresh on 401.
    Bench(bench::BenchArgs),
}

/// Parses the command line, runs the command, maps failure to exit code 1.
fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Gateway(command) => portcullis::cli::run(command),
        Command::Bench(args) => portcullis::cli::exit_code(bench(args)),
    }
}

/// The report goes to stdout: human-readable, or one JSON object with `--json`.
#[allow(clippy::print_stdout)]
fn bench(args: bench::BenchArgs) -> anyhow::Result<()> {
    let json = args.json();
    let plan = bench::Plan::try_from(args)?;
    // The load generator wants every core; the gateway's own runtime is single-threaded.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(bench::run(plan))?;
    if json {
        println!("{}", report.json());
    } else {
        print!("{report}");
    }
    Ok(())
}
