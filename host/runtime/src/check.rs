//! What `loktar plugin check` says of a component file before anyone wires
//! it into a run, with no configuration: what it is (its name, version,
//! roles and the capabilities it declares), each interface it imports and
//! what Loktar does with it, and whether Loktar refuses it whatever the
//! configuration — decided, when its imports are enough to refuse it,
//! before it is compiled.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::load::{capability_of, check_component_header, describe, imported_capabilities};
use super::{PluginEngine, PluginError, PluginSession, imports};
use loktar_settings::{Capability, Role, Settings};

/// How long `describe()` of a component being checked may take.
const DESCRIBE_DEADLINE_SECS: u64 = 30;

/// What a component is and what it needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentReport {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// What its `describe()` says; none when it was refused before.
    pub plugin: Option<Described>,
    /// The interfaces it imports, in its order.
    pub imports: Vec<Import>,
    /// Why Loktar refuses it whatever the configuration grants, if it does.
    pub refusal: Option<String>,
}

/// A plugin's own account of itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Described {
    /// The provider name it answers to.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The roles it plays.
    pub roles: Vec<Role>,
    /// The capabilities it declares: none is granted until `loktar.toml` says so.
    pub declares: Vec<Capability>,
}

/// One interface a component imports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Import {
    /// `wasi:cli/environment@0.2.3`, `loktar:plugin/process@0.1.0`…
    pub name: String,
    /// What Loktar does with it.
    #[serde(flatten)]
    pub use_: ImportUse,
}

/// What Loktar does with an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "use", rename_all = "snake_case")]
pub enum ImportUse {
    /// Linked for every plugin (WASI's clocks, files of its own folders, randomness…).
    Provided,
    /// Linked, and usable once `capability` is declared and granted.
    Capability {
        /// The capability it stands for.
        capability: Capability,
        /// Whether the plugin's `describe()` declares it; `None` when it was not asked.
        declared: Option<bool>,
    },
    /// Linked and closed: every socket operation is denied at run time.
    Closed,
    /// Not provided: the component is refused.
    Refused,
}

/// Checks the component in `path`, compiling it (through `engine`'s cache)
/// only when its imports do not refuse it already. An error for a file that
/// cannot be read or is not a component.
pub async fn check_component(engine: Arc<PluginEngine>, path: &Path) -> Result<ComponentReport, PluginError> {
    let name = path.file_stem().map_or_else(|| "plugin".to_string(), |stem| stem.to_string_lossy().into_owned());
    let bytes = std::fs::read(path)
        .map_err(|e| PluginError::new(format!("cannot read `{}`: {e}", path.display())).hint("check the path"))?;
    check_component_header(&name, path, &bytes)?;
    let mut report = ComponentReport {
        path: path.to_path_buf(),
        bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        plugin: None,
        imports: imports::top_level_imports(&bytes)
            .unwrap_or_default()
            .into_iter()
            .map(|name| Import { use_: use_of(&name), name })
            .collect(),
        refusal: None,
    };
    if report.imports.iter().any(|import| import.use_ == ImportUse::Refused) {
        report.refusal = imports::check(&name, &bytes).err().map(|refusal| refusal.problem.message);
        return Ok(report);
    }
    let made = engine.component(&name, bytes).await?;
    let pre = match engine.linker().instantiate_pre(&made.component) {
        Ok(pre) => pre,
        Err(e) => {
            report.refusal = Some(format!("plugin `{name}` imports something Loktar does not provide: {e:#}"));
            return Ok(report);
        }
    };
    let imported = imported_capabilities(engine.wasmtime(), &made.component);
    // Asked with a short deadline: nobody has vetted this component yet.
    let mut settings = Settings::builtin();
    settings.limits.timeout_secs = DESCRIBE_DEADLINE_SECS;
    let session = PluginSession::new(engine, settings);
    let info = match describe(&session, &name, &pre).await {
        Ok(info) => info,
        Err(error) => {
            report.refusal = Some(error.problem.message);
            return Ok(report);
        }
    };
    let described = Described {
        name: info.name,
        version: info.version,
        roles: info.roles.into_iter().map(super::load::role).collect(),
        declares: info.capabilities.into_iter().map(super::load::capability).collect(),
    };
    for import in &mut report.imports {
        if let ImportUse::Capability { capability, declared } = &mut import.use_ {
            *declared = Some(described.declares.contains(capability));
        }
    }
    let undeclared: Vec<String> = imported
        .iter()
        .filter(|capability| !described.declares.contains(capability))
        .map(|capability| format!("`{}`", capability.name()))
        .collect();
    if !undeclared.is_empty() {
        let (what, them) = if undeclared.len() == 1 { ("capability", "it") } else { ("capabilities", "them") };
        report.refusal = Some(format!(
            "plugin `{}` imports {what} {} without declaring {them} in `describe()`",
            described.name,
            undeclared.join(", ")
        ));
    }
    report.plugin = Some(described);
    Ok(report)
}

/// What Loktar does with `import`, before the plugin says what it declares.
fn use_of(import: &str) -> ImportUse {
    if !imports::is_provided(import) {
        return ImportUse::Refused;
    }
    let interface = import.split('@').next().unwrap_or(import);
    match capability_of(interface) {
        Some(capability) => ImportUse::Capability { capability, declared: None },
        None if interface.starts_with("wasi:sockets/") => ImportUse::Closed,
        None => ImportUse::Provided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_import_is_provided_closed_tied_to_a_capability_or_refused() {
        assert_eq!(use_of("wasi:clocks/monotonic-clock@0.2.3"), ImportUse::Provided);
        assert_eq!(use_of("wasi:sockets/tcp@0.2.0"), ImportUse::Closed);
        assert_eq!(
            use_of("loktar:plugin/process@0.1.0"),
            ImportUse::Capability { capability: Capability::Process, declared: None }
        );
        assert_eq!(
            use_of("wasi:http/outgoing-handler@0.2.3"),
            ImportUse::Capability { capability: Capability::Http, declared: None }
        );
        assert_eq!(use_of("wasi:keyvalue/store@0.2.0"), ImportUse::Refused);
        assert_eq!(use_of("wasi:cli/environment@0.3.0"), ImportUse::Refused, "another major version");
    }
}
