//! The `loktar` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    loktar::cli::main()
}
