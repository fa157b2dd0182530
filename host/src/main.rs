//! The `loktar` binary: everything lives in the library's `cli` module.

/// mimalloc: planning a large monorepo makes many small allocations, which
/// it serves in a fraction of the system allocator's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    loktar::cli::main()
}
