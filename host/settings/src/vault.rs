//! Secret values, kept in Loktar's memory and out of its environment.
//!
//! The host configuration names each secret by the environment variable
//! that holds it (`[secrets.quay_token] env = "QUAY_TOKEN"`). A process's
//! environment stays readable in `/proc/<pid>/environ` for as long as it
//! lives, so once the configuration is known Loktar takes the values out:
//! it writes them to an anonymous in-memory file and `exec`s itself again —
//! same process, same arguments — with that file as standard input and an
//! environment without them. The new image reads them into memory, puts
//! `/dev/null` in place of its standard input, and every reader asks
//! [`value`]. (A running process cannot take variables out of its own
//! `/proc/<pid>/environ`.) Loktar also makes itself non-dumpable, so that
//! other processes of its user cannot read its memory, environment or open
//! files through `/proc` either; programs it runs are isolated besides
//! (the runtime's `isolation`).

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::sync::OnceLock;

use crate::Settings;
use loktar_support::diagnostic::Diagnostic;

/// Set in the environment of the image that reads the values from its standard input.
const SEALED: &str = "LOKTAR_SECRETS_ON_STDIN";

/// The values, by variable, once sealed.
static VALUES: OnceLock<HashMap<String, String>> = OnceLock::new();

/// The value of the secret held by the environment variable `variable`:
/// from memory once sealed, else (a command that never seals, such as
/// `loktar plan`) from the environment.
pub fn value(variable: &str) -> Option<String> {
    match VALUES.get() {
        Some(values) => values.get(variable).cloned(),
        None => std::env::var(variable).ok(),
    }
}

/// Takes the values of the secrets `settings` names out of the
/// environment. Returns once they are in memory (at once when none is
/// set); in between, this process is replaced by a new image of itself,
/// which comes back here with the values on its standard input.
pub fn seal(settings: &Settings) -> Result<(), Diagnostic> {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    if VALUES.get().is_some() {
        return Ok(());
    }
    if std::env::var_os(SEALED).is_some() {
        return receive();
    }
    let values: Vec<(String, String)> = settings
        .secrets
        .values()
        .filter_map(|secret| std::env::var(&secret.env).ok().map(|value| (secret.env.clone(), value)))
        .collect();
    if values.is_empty() {
        let _ = VALUES.set(HashMap::new());
        return Ok(());
    }
    let failed = |e: std::io::Error| {
        Diagnostic::new(format!("cannot take the secrets out of loktar's environment: {e}"))
            .hint("Loktar needs `memfd_create` and `/proc/self/exe` (Linux)")
    };
    let file =
        rustix::fs::memfd_create("loktar-secrets", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| failed(e.into()))?;
    let mut file = std::fs::File::from(file);
    for (variable, value) in &values {
        file.write_all(variable.as_bytes()).and_then(|()| file.write_all(b"\0")).map_err(failed)?;
        file.write_all(value.as_bytes()).and_then(|()| file.write_all(b"\0")).map_err(failed)?;
    }
    file.rewind().map_err(failed)?;
    let mut arguments = std::env::args_os();
    // `/proc/self/exe`: this very binary, even if the file was replaced since it started.
    let mut image = std::process::Command::new("/proc/self/exe");
    if let Some(name) = arguments.next() {
        image.arg0(name);
    }
    image.args(arguments).stdin(file).env(SEALED, "1");
    for (variable, _) in &values {
        image.env_remove(variable);
    }
    // Returns only if the new image could not be started.
    Err(failed(image.exec()))
}

/// In the new image: reads the values from standard input, then replaces it with `/dev/null`.
fn receive() -> Result<(), Diagnostic> {
    let failed = |e: std::io::Error| Diagnostic::new(format!("cannot read the secrets handed over: {e}"));
    let mut text = Vec::new();
    std::io::stdin().lock().read_to_end(&mut text).map_err(failed)?;
    let null = std::fs::File::open("/dev/null").map_err(failed)?;
    rustix::stdio::dup2_stdin(&null).map_err(|e| failed(e.into()))?;
    let mut fields = text.split(|byte| *byte == 0).map(|field| String::from_utf8_lossy(field).into_owned());
    let mut values = HashMap::new();
    while let (Some(variable), Some(value)) = (fields.next(), fields.next()) {
        values.insert(variable, value);
    }
    let _ = VALUES.set(values);
    Ok(())
}
