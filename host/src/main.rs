//! The `loktar` binary: everything lives in the library's `cli` module.

use std::process::ExitCode;

/// mimalloc: planning a large monorepo makes many small allocations, which
/// it serves in a fraction of the system allocator's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Makes the process's one tokio runtime and runs the command line on one
/// of its blocking threads (see `loktar::blocking`).
fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            // Not `eprintln!`: stderr may be unwritable, and that must not panic.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("error: cannot start the async runtime: {error}\n").as_bytes(),
            );
            return ExitCode::from(2);
        }
    };
    let command_line = runtime.spawn_blocking(loktar::cli::main);
    let code = runtime.block_on(command_line).unwrap_or(ExitCode::from(2));
    // Done: work left in the background (a notification's connection, say) is not waited for.
    runtime.shutdown_background();
    code
}
