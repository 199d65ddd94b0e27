//! The `portcullis` binary: everything is in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
