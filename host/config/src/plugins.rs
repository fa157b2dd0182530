//! Plugins a repository declares in its own `loktar.json`:
//!
//! ```json
//! { "plugins": { "zip": { "path": "ci/zip.wasm", "role": "builder",
//!                         "capabilities": ["log", "process"], "programs": ["zip"] } },
//!   "packages": [ { "pkg_name": "app", "pkg_type": "zip" } ] }
//! ```
//!
//! The repository *asks*; the operator's policy (`[policy.repository_plugins]`
//! in the host configuration) caps what it gets: capabilities and programs
//! beyond the policy are not granted, and secrets, stores, hosts and
//! variables come only from a `[plugins.<name>]` section the operator
//! writes for that plugin by name. A repository plugin may not take the
//! name of a plugin the operator or Loktar provides. Its component is read
//! from inside the repository, with no link on the way.

use std::borrow::Cow;
use std::path::{Component, Path};

use serde::Serialize;
use serde_json::value::RawValue;

use super::SourceFile;
use super::raw::{Kind, Member, Reader, TopLevel, TopValue, Unreadable};
use loktar_settings::{Asked, Capability, PluginSettings, Role, Settings};
use loktar_support::diagnostic::{Diagnostic, Diagnostics};

/// The top-level key.
pub const KEY: &str = "plugins";

/// Capabilities the policy cannot grant a repository plugin: only a
/// `[plugins.<name>]` section the operator writes for it by name.
const OPERATOR_ONLY: [Capability; 3] = [Capability::ContainerEngine, Capability::Github, Capability::ObjectStore];

/// One plugin as the repository declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredPlugin {
    /// Its provider name.
    pub name: String,
    /// Its component, relative to the repository root.
    pub path: String,
    /// Its role.
    pub role: Role,
    /// The capabilities it asks for.
    pub capabilities: Vec<Capability>,
    /// The programs it asks to run.
    pub programs: Vec<String>,
}

/// The plugins `loktar.json` declares (none without a `plugins` key).
pub fn declared(source: &SourceFile) -> Result<Vec<DeclaredPlugin>, Diagnostics> {
    // Most files have none: no parse at all for them.
    if memchr::memmem::find(source.text.as_bytes(), b"\"plugins\"").is_none() {
        return Ok(Vec::new());
    }
    let reader = Reader::new(&source.text);
    let mut problems = Vec::new();
    let mut report = |offset: usize, message: String, hint: &str| {
        problems.push(Diagnostic::new(message).at(source.location(offset)).hint(hint.to_string()));
    };
    // A file that is no valid JSON is reported, with its position, by the package validation.
    let Ok(plugins) = read(reader, &mut report) else { return Ok(Vec::new()) };
    if problems.is_empty() { Ok(plugins) } else { Err(Diagnostics(problems)) }
}

const EXAMPLE: &str = r#"write `"plugins": { "zip": { "path": "ci/zip.wasm", "role": "builder" } }`"#;

/// Reads the `plugins` object, reporting what is wrong in it.
fn read<'a>(
    reader: Reader<'a>,
    report: &mut impl FnMut(usize, String, &str),
) -> Result<Vec<DeclaredPlugin>, Unreadable> {
    // The top level as validation reads it; only `plugins` is looked at here.
    let TopLevel::Object { members, .. } = reader.top_level("packages")? else { return Ok(Vec::new()) };
    let Some(list) = members.iter().find(|member| member.key == KEY) else { return Ok(Vec::new()) };
    let TopValue::Written(list) = list.value else { return Ok(Vec::new()) };
    if Kind::of(list) != Kind::Object {
        let found = Kind::of(list).name();
        report(reader.offset(list), format!("`plugins` must be an object, found {found}"), EXAMPLE);
        return Ok(Vec::new());
    }
    let mut plugins = Vec::new();
    for entry in reader.members(list)? {
        if let Some(plugin) = read_entry(reader, &entry, report)? {
            plugins.push(plugin);
        }
    }
    Ok(plugins)
}

fn read_entry<'a>(
    reader: Reader<'a>,
    entry: &Member<'a>,
    report: &mut impl FnMut(usize, String, &str),
) -> Result<Option<DeclaredPlugin>, Unreadable> {
    let name = entry.key.to_string();
    if Kind::of(entry.value) != Kind::Object {
        let found = Kind::of(entry.value).name();
        report(reader.offset(entry.value), format!("plugin `{name}` must be an object, found {found}"), EXAMPLE);
        return Ok(None);
    }
    let (mut path, mut role, mut capabilities, mut programs) = (None, None, vec![Capability::Log], Vec::new());
    let mut complete = true;
    for field in reader.members(entry.value)? {
        let offset = reader.offset(field.value);
        match field.key.as_ref() {
            "path" => match string(reader, field.value)? {
                Some(text) if is_inside(&text) => path = Some(text.into_owned()),
                _ => {
                    let message = format!("plugin `{name}`: `path` must name a file inside the repository");
                    report(offset, message, "a path relative to the repository root, without `..`");
                    complete = false;
                }
            },
            "role" => match string(reader, field.value)?.as_deref().and_then(repository_role) {
                Some(found) => role = Some(found),
                None => {
                    let roles = REPOSITORY_ROLES.map(Role::name).join(", ");
                    let message = format!("plugin `{name}`: `role` must be one of {roles}");
                    report(offset, message, "notifiers are chosen by the host configuration alone");
                    complete = false;
                }
            },
            "capabilities" => {
                match strings(reader, field.value)?
                    .map(|names| names.iter().map(|name| Capability::from_name(name)).collect())
                {
                    Some(Some(found)) => capabilities = found,
                    _ => {
                        let message = format!("plugin `{name}`: `capabilities` must be a list of capability names");
                        let hint = "log, process, container-engine, object-store, github, http, secrets";
                        report(offset, message, hint);
                        complete = false;
                    }
                }
            }
            "programs" => match strings(reader, field.value)? {
                Some(found) => programs = found.into_iter().map(Cow::into_owned).collect(),
                None => {
                    let message = format!("plugin `{name}`: `programs` must be a list of program names");
                    report(offset, message, r#"`"programs": ["make"]`"#);
                    complete = false;
                }
            },
            other => {
                let message = format!("plugin `{name}`: unknown key `{other}`");
                report(
                    reader.offset(field.key_written),
                    message,
                    "a repository plugin has `path`, `role`, `capabilities` and `programs`",
                );
                complete = false;
            }
        }
    }
    let missing = [("path", path.is_none()), ("role", role.is_none())];
    for (key, _) in missing.iter().filter(|(_, missing)| *missing) {
        report(reader.offset(entry.key_written), format!("plugin `{name}` has no `{key}`"), EXAMPLE);
        complete = false;
    }
    let (Some(path), Some(role)) = (path, role) else { return Ok(None) };
    if !complete {
        return Ok(None);
    }
    // Every plugin writes its log; asking for other capabilities does not take it away.
    if !capabilities.contains(&Capability::Log) {
        capabilities.insert(0, Capability::Log);
    }
    Ok(Some(DeclaredPlugin { name, path, role, capabilities, programs }))
}

/// The text of a string value; `None` for any other value.
fn string<'a>(reader: Reader<'a>, value: &'a RawValue) -> Result<Option<Cow<'a, str>>, Unreadable> {
    if Kind::of(value) != Kind::String {
        return Ok(None);
    }
    reader.text(value).map(Some)
}

/// The texts of an array of strings; `None` for any other value.
fn strings<'a>(reader: Reader<'a>, value: &'a RawValue) -> Result<Option<Vec<Cow<'a, str>>>, Unreadable> {
    if Kind::of(value) != Kind::Array {
        return Ok(None);
    }
    let mut texts = Vec::new();
    for item in reader.items(value)? {
        match string(reader, item)? {
            Some(text) => texts.push(text),
            None => return Ok(None),
        }
    }
    Ok(Some(texts))
}

fn is_inside(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The roles a repository plugin may play: any but notifier, which only the
/// operator configures.
pub const REPOSITORY_ROLES: [Role; 5] = [Role::Tester, Role::Builder, Role::Registry, Role::Storage, Role::Discovery];

fn repository_role(name: &str) -> Option<Role> {
    Role::from_name(name).filter(|role| REPOSITORY_ROLES.contains(role))
}

/// A repository plugin as the plan shows it: what it asked for and what it
/// was granted. The text plan's last lines ([`summary`]) and the JSON
/// plan's `repository_plugins` are both made of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryPlugin<'a> {
    /// Its provider name.
    pub name: &'a str,
    /// Its component, relative to the repository root.
    pub path: Cow<'a, str>,
    /// Its role.
    pub role: Role,
    /// What it asked for in `loktar.json`.
    pub asked: Permissions<'a>,
    /// What it was granted: the ask within the operator's policy, and what
    /// the operator grants it by name.
    pub granted: Permissions<'a>,
}

/// Capabilities (by [`Capability::name`]) and programs, as a repository
/// plugin asked for them or was granted them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permissions<'a> {
    /// Capability names.
    pub capabilities: Vec<&'static str>,
    /// Program names.
    pub programs: &'a [String],
}

impl<'a> Permissions<'a> {
    fn new(capabilities: &[Capability], programs: &'a [String]) -> Permissions<'a> {
        Permissions { capabilities: capabilities.iter().map(|c| c.name()).collect(), programs }
    }
}

/// The repository's plugins in `settings`, in name order (none when the
/// repository declares no plugin).
pub fn repository_plugins(settings: &Settings) -> Vec<RepositoryPlugin<'_>> {
    settings
        .plugins
        .iter()
        .filter(|(_, plugin)| plugin.declared_in.is_some())
        .filter_map(|(name, plugin)| {
            // Both are set by `grant`, for every plugin the repository declares.
            let (Some(asked), Some(role)) = (&plugin.asked, plugin.role) else { return None };
            Some(RepositoryPlugin {
                name,
                path: plugin.path.as_deref().map(|path| path.to_string_lossy()).unwrap_or_default(),
                role,
                asked: Permissions::new(&asked.capabilities, &asked.programs),
                granted: Permissions::new(
                    plugin.capabilities.as_deref().unwrap_or_default(),
                    plugin.programs.as_deref().unwrap_or_default(),
                ),
            })
        })
        .collect()
}

/// One line per repository plugin for the text plan: what it asked for and
/// what it was granted (none when the repository declares no plugin).
pub fn summary(settings: &Settings) -> String {
    let names = |grants: &Permissions<'_>| {
        let mut all: Vec<String> = grants.capabilities.iter().map(|name| format!("`{name}`")).collect();
        all.extend(grants.programs.iter().map(|p| format!("program `{}`", loktar_support::terminal::escaped(p))));
        if all.is_empty() { "nothing".to_string() } else { all.join(", ") }
    };
    let mut out = String::new();
    for plugin in repository_plugins(settings) {
        out.push_str(&format!(
            "\nrepository plugin `{}` ({}): asked for {}; granted {}",
            loktar_support::terminal::escaped(plugin.name),
            loktar_support::terminal::escaped(&plugin.path),
            names(&plugin.asked),
            names(&plugin.granted)
        ));
    }
    if out.is_empty() { out } else { format!("{out}\n") }
}

/// Adds the repository's plugins to `settings`, each granted what it asks
/// for within the operator's policy, and returns, for each plugin that
/// asked for more than it got, a sentence saying so.
pub fn grant(
    settings: &mut Settings,
    root: &Path,
    source: &SourceFile,
    declared: Vec<DeclaredPlugin>,
) -> Result<Vec<String>, Diagnostics> {
    let policy = settings.policy.repository_plugins.clone();
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let builtins = Settings::builtin().plugins;
    for plugin in declared {
        let operator = settings.plugins.get(&plugin.name).cloned();
        let provided =
            builtins.contains_key(&plugin.name) || operator.as_ref().is_some_and(|settings| settings.path.is_some());
        if provided {
            let location = source.location(source.text.find(&format!("\"{}\"", plugin.name)).unwrap_or(0));
            problems.push(
                Diagnostic::new(format!(
                    "plugin `{}` is provided by Loktar or the host configuration: the repository cannot redefine it",
                    plugin.name
                ))
                .at(location)
                .hint("give the repository's plugin a name of its own"),
            );
            continue;
        }
        // The operator may name more for this plugin by name; the policy caps what it asks for.
        let operator = operator.unwrap_or_default();
        // The engine and its registries, GitHub and the stores act with the
        // operator's own credentials: only the operator's grant by name opens them.
        let allowed = |capability: &Capability| {
            (policy.capabilities.contains(capability) && !OPERATOR_ONLY.contains(capability))
                || operator.capabilities.as_ref().is_some_and(|granted| granted.contains(capability))
        };
        let capabilities: Vec<Capability> = plugin.capabilities.iter().copied().filter(allowed).collect();
        let programs: Vec<String> = plugin
            .programs
            .iter()
            .filter(|program| {
                policy.programs.contains(program)
                    || operator.programs.as_ref().is_some_and(|granted| granted.contains(program))
            })
            .cloned()
            .collect();
        let refused: Vec<String> = plugin
            .capabilities
            .iter()
            .filter(|c| !capabilities.contains(c))
            .map(|c| format!("`{}`", c.name()))
            .chain(plugin.programs.iter().filter(|p| !programs.contains(p)).map(|p| format!("program `{p}`")))
            .collect();
        if !refused.is_empty() {
            notes.push(format!(
                "repository plugin `{}` asked for {}, which the host's policy does not grant \
                 (`[policy.repository_plugins]`, or `[plugins.{}]` in the host configuration)",
                plugin.name,
                refused.join(", "),
                plugin.name
            ));
        }
        settings.plugins.insert(
            plugin.name.clone(),
            PluginSettings {
                path: Some(plugin.path.into()),
                role: Some(plugin.role),
                capabilities: Some(capabilities),
                programs: Some(programs),
                declared_in: Some(root.to_path_buf()),
                asked: Some(Asked { capabilities: plugin.capabilities.clone(), programs: plugin.programs.clone() }),
                ..operator
            },
        );
    }
    if problems.is_empty() { Ok(notes) } else { Err(Diagnostics(problems)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declare(text: &str) -> Result<Vec<DeclaredPlugin>, Vec<String>> {
        let source = SourceFile::new("loktar.json", text.to_string());
        declared(&source).map_err(|problems| problems.0.into_iter().map(|p| p.message).collect())
    }

    #[test]
    fn declared_plugins_are_read_and_checked() {
        let found = declare(
            r#"{"plugins": {"zip": {"path": "ci/zip.wasm", "role": "builder", "programs": ["zip"]}}, "packages": []}"#,
        );
        assert_eq!(
            found,
            Ok(vec![DeclaredPlugin {
                name: "zip".into(),
                path: "ci/zip.wasm".into(),
                role: Role::Builder,
                capabilities: vec![Capability::Log],
                programs: vec!["zip".into()],
            }])
        );
        assert_eq!(declare(r#"{"packages": []}"#), Ok(vec![]));
        let problems = declare(
            r#"{"plugins": {"a": {"path": "../x.wasm", "role": "notifier", "capabilities": ["root"], "x": 1}}}"#,
        )
        .expect_err("problems");
        assert_eq!(
            problems,
            [
                "plugin `a`: `path` must name a file inside the repository",
                "plugin `a`: `role` must be one of tester, builder, registry, storage, discovery",
                "plugin `a`: `capabilities` must be a list of capability names",
                "plugin `a`: unknown key `x`",
                "plugin `a` has no `path`",
                "plugin `a` has no `role`",
            ]
        );
    }

    #[test]
    fn the_policy_caps_what_a_repository_plugin_gets() {
        let source = SourceFile::new("loktar.json", String::new());
        let mut settings = Settings::builtin();
        settings.policy.repository_plugins.programs = vec!["zip".into()];
        let asked = DeclaredPlugin {
            name: "zip".into(),
            path: "ci/zip.wasm".into(),
            role: Role::Builder,
            capabilities: vec![Capability::Log, Capability::Process, Capability::Secrets],
            programs: vec!["zip".into(), "curl".into()],
        };
        let notes = grant(&mut settings, Path::new("/repo"), &source, vec![asked.clone()]).expect("granted");
        let zip = &settings.plugins["zip"];
        assert_eq!(zip.capabilities.as_deref(), Some(&[Capability::Log][..]));
        assert_eq!(zip.programs.as_deref(), Some(&["zip".to_string()][..]));
        assert_eq!(zip.secrets, None);
        assert_eq!(zip.declared_in.as_deref(), Some(Path::new("/repo")));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("`process`, `secrets`, program `curl`"), "{}", notes[0]);
        let zip = &repository_plugins(&settings)[0];
        assert_eq!((zip.name, zip.path.as_ref(), zip.role), ("zip", "ci/zip.wasm", Role::Builder));
        assert_eq!(zip.asked.capabilities, ["log", "process", "secrets"]);
        assert_eq!(
            (zip.granted.capabilities.as_slice(), zip.granted.programs),
            (&["log"][..], &["zip".to_string()][..])
        );

        // The engine, GitHub and stores only by the operator's grant by name.
        settings.policy.repository_plugins.capabilities = vec![Capability::Log, Capability::ContainerEngine];
        let engine = DeclaredPlugin {
            name: "pusher".into(),
            capabilities: vec![Capability::Log, Capability::ContainerEngine],
            ..asked.clone()
        };
        grant(&mut settings, Path::new("/repo"), &source, vec![engine.clone()]).expect("granted");
        assert_eq!(settings.plugins["pusher"].capabilities.as_deref(), Some(&[Capability::Log][..]));
        let named =
            PluginSettings { capabilities: Some(vec![Capability::ContainerEngine]), ..PluginSettings::default() };
        settings.plugins.insert("pusher".into(), named);
        grant(&mut settings, Path::new("/repo"), &source, vec![engine]).expect("granted");
        let both = [Capability::Log, Capability::ContainerEngine];
        assert_eq!(settings.plugins["pusher"].capabilities.as_deref(), Some(&both[..]));

        let taken = DeclaredPlugin { name: "make".into(), ..asked };
        let error = grant(&mut settings, Path::new("/repo"), &source, vec![taken]).expect_err("a built-in name");
        assert!(error.0[0].message.starts_with("plugin `make` is provided by Loktar"), "{}", error.0[0].message);
    }
}
