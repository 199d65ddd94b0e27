//! The `portcullis` binary: the top of the command line. The gateway and its subcommands are
//! the library's (`cli.rs`); `portcullis bench`, the load harness in `bench/`, is compiled into
//! this binary only, so that the library (and `hdrhistogram`) carries only the gateway. So are
//! `portcullis completions` and `portcullis man`, which are generated from the whole command
//! line defined here.

mod bench;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Print a shell completion script for bash, zsh or fish.
    ///
    /// E.g. `portcullis completions bash > /etc/bash_completion.d/portcullis`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    ///
    /// E.g. `portcullis man > /usr/local/share/man/man1/portcullis.1`.
    Man,
}

/// Parses the command line, runs the command, maps failure to exit code 1.
fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Gateway(command) => portcullis::cli::run(command),
        Command::Bench(args) => portcullis::cli::exit_code(bench(args)),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "portcullis", &mut script);
            portcullis::cli::exit_code(print(&script))
        }
        Command::Man => portcullis::cli::exit_code(man()),
    }
}

/// The manual page (its SUBCOMMANDS section lists every command) on stdout.
fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    print(&page)
}

/// Writes a generated text to stdout. A reader that stopped early (`| head`) is not an error:
/// the output simply ends, as with other Unix tools.
fn print(text: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
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
