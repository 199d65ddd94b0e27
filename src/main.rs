//! The `portcullis` binary: everything is in the library; see `cli.rs`.

/// mimalloc instead of the system allocator: the proxy path allocates small, short-lived
/// buffers on every request from two or more threads, where glibc malloc showed up at ~10% of
/// the profile (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
