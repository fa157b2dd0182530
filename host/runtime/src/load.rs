//! Loading a plugin: find its component (built-in or a path from the host
//! configuration), compile it (or take it from the cache), and check it
//! before anything runs: what it imports must be declared by its
//! `describe()` and granted by the host configuration. Deny by default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre};

use super::bindings::types::{self, PluginInfo};
use super::capabilities::Grants;
use super::engine::Made;
use super::state::{CallEnv, StoreState};
use super::{PluginError, PluginSession};
use loktar_settings::{Capability, Role, Settings};

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the `loktar` binary.
    BuiltIn,
    /// A component file named in the host configuration.
    Path(PathBuf),
    /// A component file the repository declares (`plugins` in `loktar.json`), relative to its root.
    Repository(PathBuf),
}

/// A plugin ready to be called.
pub struct LoadedPlugin {
    /// The provider name it answers to.
    pub name: String,
    /// The version its `describe()` reports.
    pub version: String,
    /// The roles it plays.
    pub roles: Vec<Role>,
    /// The capabilities it declares.
    pub requested: BTreeSet<Capability>,
    /// What the host configuration grants it.
    pub grants: Arc<Grants>,
    /// Where it comes from.
    pub origin: Origin,
    pub(crate) pre: InstancePre<StoreState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("name", &self.name).field("origin", &self.origin).finish_non_exhaustive()
    }
}

/// One line of `loktar plugins`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginListing {
    /// Provider name.
    pub name: String,
    /// Version, or the reason it did not load.
    pub version: Option<String>,
    /// Roles.
    pub roles: Vec<Role>,
    /// Capabilities it asks for.
    pub requested: Vec<Capability>,
    /// Capabilities the host configuration grants.
    pub granted: Vec<Capability>,
    /// `built-in` or the component's path.
    pub source: String,
    /// Why it could not be loaded, if it could not.
    pub error: Option<String>,
}

/// The names of the built-in plugins.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

/// Whether a plugin answers to provider `name`: a built-in, or one with a `path` in the host configuration.
pub(super) fn exists(settings: &Settings, name: &str) -> bool {
    settings.plugins.get(name).is_some_and(|plugin| plugin.path.is_some()) || builtin_names().any(|b| b == name)
}

/// The bytes of `relative` below the repository `root`, read through its handle.
fn read_in_repository(root: &Path, relative: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let folder = loktar_support::beneath::Folder::open(root).map_err(|e| e.to_string())?;
    let mut file = folder.open_file(relative).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Refuses a file that is not a WebAssembly component before compiling it,
/// by its header alone: the compiler's own message would quote the file's
/// first bytes, which may be anything (a text file, a key).
pub(super) fn check_component_header(name: &str, path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: &[u8] = &[0x0d, 0x00, 0x01, 0x00];
    let shown = path.display();
    if !bytes.starts_with(MAGIC) {
        return Err(PluginError::new(format!("plugin `{name}`: `{shown}` is not a WebAssembly file"))
            .hint(format!("point `path` under `[plugins.{name}]` at the `.wasm` component the plugin's build made")));
    }
    if bytes.get(4..8) != Some(COMPONENT_LAYER) {
        return Err(PluginError::new(format!("plugin `{name}`: `{shown}` is a WebAssembly module, not a component"))
            .hint("build it for `wasm32-wasip2` (or wrap the module with `wasm-tools component new`)"));
    }
    Ok(())
}

pub(super) async fn load(session: &PluginSession, name: &str) -> Result<LoadedPlugin, PluginError> {
    let settings = session.settings().plugins.get(name).cloned().unwrap_or_default();
    let (origin, bytes) = match &settings.path {
        Some(path) => {
            let (origin, read) = match &settings.declared_in {
                // Inside the repository, with no link on the way: a pull request could point one anywhere.
                Some(root) => (Origin::Repository(path.clone()), read_in_repository(root, path)),
                None => (Origin::Path(path.clone()), std::fs::read(path).map_err(|e| e.to_string())),
            };
            let bytes = read.map_err(|e| {
                let hint = match origin {
                    Origin::Repository(_) => format!("check `path` of plugin `{name}` under `plugins` in loktar.json"),
                    _ => format!("check `path` under `[plugins.{name}]` in the host configuration"),
                };
                PluginError::new(format!("cannot read plugin `{name}` from `{}`: {e}", path.display())).hint(hint)
            })?;
            check_component_header(name, path, &bytes)?;
            (origin, bytes)
        }
        None => match BUILTIN.iter().find(|(builtin, _)| *builtin == name) {
            Some((_, bytes)) => (Origin::BuiltIn, bytes.to_vec()),
            None => {
                let builtins: Vec<&str> = builtin_names().collect();
                return Err(PluginError::new(format!("no plugin named `{name}`")).hint(format!(
                    "built-in plugins: {}; add others under `[plugins.{name}]` in loktar.toml with `path` and `role`",
                    builtins.join(", ")
                )));
            }
        },
    };
    let engine = session.engine();
    let Made { component, digest } = engine.component(name, bytes).await?;
    // What the component is refuses it for good; what the configuration says does not.
    let refused = |refusal: PluginError| {
        engine.refuse(name, digest, &refusal);
        refusal
    };
    let imported = imported_capabilities(engine.wasmtime(), &component);
    let pre = engine.linker().instantiate_pre(&component).map_err(|e| {
        refused(PluginError::new(format!("plugin `{name}` imports something Loktar does not provide: {e:#}")))
    })?;
    let grants = Arc::new(Grants::from_settings(name, &settings, session.settings()));
    let info = describe(session, name, &pre).await?;
    let roles: Vec<Role> = info.roles.iter().map(|r| role(*r)).collect();
    let requested: BTreeSet<Capability> = info.capabilities.iter().map(|c| capability(*c)).collect();
    if let Some(configured) = settings.role
        && !roles.contains(&configured)
    {
        return Err(PluginError::new(format!(
            "plugin `{name}` is configured as a {} but its `describe()` says it plays: {}",
            configured.name(),
            roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
        )));
    }
    for capability in &imported {
        if !requested.contains(capability) {
            return Err(refused(
                PluginError::new(format!(
                    "plugin `{name}` imports capability `{}` without declaring it in `describe()`",
                    capability.name()
                ))
                .hint("a plugin must list every capability it imports; ask its author to declare it"),
            ));
        }
    }
    let granted = grants.capabilities();
    if let Some(missing) = requested.iter().find(|capability| !granted.contains(capability)) {
        // The whole list to write: a `capabilities` list replaces the one it overrides.
        let list: Vec<String> = Capability::ALL
            .iter()
            .filter(|c| granted.contains(c) || requested.contains(c))
            .map(|c| format!("\"{}\"", c.name()))
            .collect();
        let asked = settings.asked.as_ref().is_some_and(|asked| asked.capabilities.contains(missing));
        let hint = match origin {
            // A repository's plugin is granted only what loktar.json asks for, within the policy.
            Origin::Repository(_) if !asked => format!(
                "add `\"{}\"` to `capabilities` of plugin `{name}` under `plugins` in loktar.json (the host's \
                 policy must allow it too)",
                missing.name()
            ),
            Origin::Repository(_) => format!(
                "a repository's plugin gets at most `capabilities` under `[policy.repository_plugins]` in the host \
                 configuration; to trust this one with more, give it `capabilities = [{}]` under `[plugins.{name}]` there",
                list.join(", ")
            ),
            _ => format!("grant it in loktar.toml: `capabilities = [{}]` under `[plugins.{name}]`", list.join(", ")),
        };
        return Err(PluginError::new(format!(
            "plugin `{name}` needs capability `{}`, which the host configuration does not grant",
            missing.name()
        ))
        .hint(hint));
    }
    Ok(LoadedPlugin { name: name.to_string(), version: info.version, roles, requested, grants, origin, pre })
}

/// The capabilities the component's imports need.
pub(super) fn imported_capabilities(engine: &Engine, component: &Component) -> BTreeSet<Capability> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(import, _)| capability_of(import.split('@').next().unwrap_or(import)))
        .collect()
}

/// The capability an imported interface (without its version) stands for,
/// if any. `wasi:sockets` stands for none: it loads — toolchains import it
/// whether or not the code opens a socket — and stays closed, as no
/// plugin's WASI context allows a socket.
pub(super) fn capability_of(interface: &str) -> Option<Capability> {
    Some(match interface {
        "loktar:plugin/log" => Capability::Log,
        "loktar:plugin/process" => Capability::Process,
        "loktar:plugin/container-engine" => Capability::ContainerEngine,
        "loktar:plugin/object-store" => Capability::ObjectStore,
        "loktar:plugin/github" => Capability::Github,
        "loktar:plugin/secrets" => Capability::Secrets,
        other if other.starts_with("wasi:http/") => Capability::Http,
        _ => return None,
    })
}

pub(super) async fn describe(
    session: &PluginSession,
    name: &str,
    pre: &InstancePre<StoreState>,
) -> Result<PluginInfo, PluginError> {
    let probe = LoadedPlugin {
        name: name.to_string(),
        version: String::new(),
        roles: Vec::new(),
        requested: BTreeSet::new(),
        grants: Arc::default(),
        origin: Origin::BuiltIn,
        pre: pre.clone(),
    };
    let outcome = session
        .call(&probe, &CallEnv::default(), async |store, pre| {
            let instance = pre.instantiate_async(&mut *store).await?;
            let describe = instance.get_typed_func::<(), (PluginInfo,)>(&mut *store, "describe")?;
            let (info,) = describe.call_async(&mut *store, ()).await?;
            Ok(info)
        })
        .await
        .map_err(|mut e| {
            e.problem.message.push_str(" (while asking it to describe itself)");
            e
        })?;
    Ok(outcome.value)
}

pub(super) fn role(role: types::Role) -> Role {
    match role {
        types::Role::Tester => Role::Tester,
        types::Role::Builder => Role::Builder,
        types::Role::Registry => Role::Registry,
        types::Role::Storage => Role::Storage,
        types::Role::Notifier => Role::Notifier,
        types::Role::Discovery => Role::Discovery,
    }
}

pub(super) fn capability(capability: types::Capability) -> Capability {
    match capability {
        types::Capability::Log => Capability::Log,
        types::Capability::Process => Capability::Process,
        types::Capability::ContainerEngine => Capability::ContainerEngine,
        types::Capability::ObjectStore => Capability::ObjectStore,
        types::Capability::Github => Capability::Github,
        types::Capability::Http => Capability::Http,
        types::Capability::Secrets => Capability::Secrets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loktar_settings::Settings;

    #[test]
    fn every_built_in_plugin_has_its_grants_and_nothing_else_does() {
        // The plugins are the folders of `plugins/`; their roles and grants
        // are in `builtin.toml`: the two must name the same plugins.
        let embedded: BTreeSet<&str> = builtin_names().collect();
        let settings = Settings::builtin();
        let configured: BTreeSet<&str> = settings.plugins.keys().map(String::as_str).collect();
        assert_eq!(embedded, configured);
        let without_role: Vec<&str> = settings
            .plugins
            .iter()
            .filter(|(_, plugin)| plugin.role.is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(without_role, ["github", "slack"], "only the notifiers wait for the operator to give a role");
    }
}
