//! Waiting for async work from synchronous code. The `loktar` binary makes
//! the process's one tokio runtime at its edge (`main`) and runs the command
//! line on one of the runtime's blocking threads; synchronous code there —
//! loading a repository, planning, reading a pull request — waits with
//! [`wait_for`] for async work (plugin calls, HTTP), which the runtime's
//! workers do. A server calls the same synchronous code through
//! `spawn_blocking` on its own runtime.

use std::future::Future;

use crate::diagnostic::Diagnostic;

/// Runs `future` on the current runtime and waits for it. Must be called
/// from a blocking thread of a runtime (`spawn_blocking`), never from
/// inside async code.
pub fn wait_for<F: Future>(future: F) -> Result<F::Output, Diagnostic> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| Diagnostic::new("internal error: async work was asked for outside the async runtime"))?;
    Ok(runtime.block_on(future))
}
