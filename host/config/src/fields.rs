//! The keys of `loktar.json`: one table that drives both validation and the
//! JSON Schema printed by `loktar schema`, so the two cannot drift apart.

use serde_json::{Value, json};

use loktar_settings::Capability;

use super::plugins::REPOSITORY_ROLES;
use super::providers::{BUILD_TYPES, NO_TEST, Providers};

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Any string.
    Text,
    /// A relative folder path.
    Folder,
    /// `service` or `library`.
    Kind,
    /// The name of a provider of the given kind.
    Provider(ProviderKind),
    /// A list of package names.
    Names,
    /// A provider name or a list of them.
    Providers(ProviderKind),
    /// A list of commit-message keywords.
    Keywords,
    /// The `build_info` object.
    BuildInfo,
}

/// What a provider name in `loktar.json` names: a plugin of a role, or
/// (`build_type`) one of Loktar's build types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// `test_type`
    Tester,
    /// `pkg_type`
    Builder,
    /// `registry_type`
    Registry,
    /// `storage_type`
    Storage,
    /// `dependencies_type`
    Discovery,
    /// `build_type` (not a plugin: `local` or `url`)
    BuildType,
}

impl ProviderKind {
    /// Whether `name` is accepted for this kind.
    pub fn accepts(self, providers: &Providers, name: &str) -> bool {
        let listed = |names: &[String]| names.iter().any(|n| n == name);
        match self {
            ProviderKind::Tester => name == NO_TEST || listed(&providers.testers),
            ProviderKind::Builder => listed(&providers.builders),
            ProviderKind::Registry => listed(&providers.registries),
            ProviderKind::Storage => listed(&providers.storages),
            ProviderKind::Discovery => listed(&providers.discoveries),
            ProviderKind::BuildType => BUILD_TYPES.contains(&name),
        }
    }

    /// The names accepted for this kind.
    pub fn names(self, providers: &Providers) -> Vec<String> {
        match self {
            ProviderKind::Tester => {
                let mut names = providers.testers.clone();
                names.push(NO_TEST.to_string());
                names
            }
            ProviderKind::Builder => providers.builders.clone(),
            ProviderKind::Registry => providers.registries.clone(),
            ProviderKind::Storage => providers.storages.clone(),
            ProviderKind::Discovery => providers.discoveries.clone(),
            ProviderKind::BuildType => BUILD_TYPES.iter().map(|s| (*s).to_string()).collect(),
        }
    }
}

/// One key of a package entry.
#[derive(Debug)]
pub struct Field {
    /// The key as written in the file.
    pub name: &'static str,
    /// The shape of its value.
    pub shape: Shape,
    /// Older Loktar name this key replaces, if it is an alias.
    pub alias_of: Option<&'static str>,
    /// One-line description for the schema and the docs.
    pub description: &'static str,
}

const fn field(name: &'static str, shape: Shape, description: &'static str) -> Field {
    Field { name, shape, alias_of: None, description }
}

const fn alias(name: &'static str, of: &'static str, shape: Shape, description: &'static str) -> Field {
    Field { name, shape, alias_of: Some(of), description }
}

/// Every key a package entry may have.
pub const PACKAGE_FIELDS: &[Field] = &[
    field("pkg_name", Shape::Text, "Unique name of the package."),
    field(
        "pkg_type",
        Shape::Provider(ProviderKind::Builder),
        "Builder plugin producing the artifact (docker, whl, deb, jar).",
    ),
    field("test_type", Shape::Provider(ProviderKind::Tester), "Tester plugin (make), or \"no-test\" to skip tests."),
    field("type", Shape::Kind, "Whether the package is a deployable service or a library."),
    field("pkg_dir", Shape::Folder, "Folder of the package, relative to the repository root. Defaults to pkg_name."),
    field("build_info", Shape::BuildInfo, "Build, publish and store settings, plus free-form plugin settings."),
    field("depends_on", Shape::Names, "Names of packages this package depends on."),
    field(
        "dependencies_type",
        Shape::Providers(ProviderKind::Discovery),
        "Discovery plugins that find dependencies in the package's files.",
    ),
    field(
        "exclude_dependencies_only_on_keywords",
        Shape::Keywords,
        "Commit-message prefixes (e.g. CLN, DOC) that change this package without rebuilding its dependents.",
    ),
    alias("artifact_name", "pkg_name", Shape::Text, "Older name of pkg_name."),
    alias("artifact_type", "pkg_type", Shape::Provider(ProviderKind::Builder), "Older name of pkg_type."),
    alias(
        "artifact_dir",
        "pkg_dir",
        Shape::Folder,
        "Older setting: the parent folder of the package; its folder is artifact_dir/artifact_name.",
    ),
];

/// The keys of `build_info` Loktar itself reads; any other key is a plugin setting.
pub const BUILD_INFO_FIELDS: &[Field] = &[
    field(
        "build_type",
        Shape::Provider(ProviderKind::BuildType),
        "local (default): build with the engine; url: remote build.",
    ),
    field("registry_type", Shape::Provider(ProviderKind::Registry), "Registry plugin that publishes the artifact."),
    field("storage_type", Shape::Provider(ProviderKind::Storage), "Storage plugin that stores the artifact."),
    field(
        "queue",
        Shape::Text,
        "The executors' queue its jobs go to (`loktar executor --queues`); by default the one its pkg_type needs.",
    ),
];

/// Keys allowed at the top level of `loktar.json`.
pub const TOP_LEVEL_KEYS: &[&str] = &["packages", "plugins", "$schema"];

/// The JSON Schema (draft 2020-12) of `loktar.json`.
pub fn schema(providers: &Providers) -> Value {
    let properties: serde_json::Map<String, Value> =
        PACKAGE_FIELDS.iter().map(|f| (f.name.to_string(), field_schema(f, providers))).collect();
    let build_info: serde_json::Map<String, Value> =
        BUILD_INFO_FIELDS.iter().map(|f| (f.name.to_string(), field_schema(f, providers))).collect();
    let mut properties = properties;
    if let Some(info) = properties.get_mut("build_info") {
        *info = json!({
            "type": "object",
            "description": "Build, publish and store settings, plus free-form plugin settings.",
            "properties": build_info,
            "additionalProperties": true,
        });
    }
    let roles: Vec<&str> = REPOSITORY_ROLES.iter().map(|role| role.name()).collect();
    let capabilities: Vec<&str> = Capability::ALL.iter().map(|capability| capability.name()).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://loktar.dev/schema/loktar.json",
        "title": "loktar.json",
        "description": "The packages of a monorepo built by Loktar.",
        "type": "object",
        "required": ["packages"],
        "additionalProperties": false,
        "properties": {
            "$schema": { "type": "string" },
            "plugins": {
                "type": "object",
                "description": "The repository's own plugins, by provider name; the host's policy caps what they are granted.",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["path", "role"],
                    "properties": {
                        "path": { "type": "string", "minLength": 1, "description": "The component, relative to the repository root." },
                        "role": { "enum": roles },
                        "capabilities": { "type": "array", "items": { "enum": capabilities } },
                        "programs": { "type": "array", "items": { "type": "string" } },
                    },
                },
            },
            "packages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": properties,
                    "oneOf": [
                        { "required": ["pkg_name"], "not": { "required": ["artifact_name"] } },
                        { "required": ["artifact_name"], "not": { "required": ["pkg_name"] } },
                    ],
                },
            },
        },
    })
}

fn field_schema(field: &Field, providers: &Providers) -> Value {
    let mut schema = match field.shape {
        Shape::Text | Shape::Folder => json!({ "type": "string", "minLength": 1 }),
        Shape::Kind => json!({ "enum": ["service", "library"] }),
        Shape::Provider(kind) => json!({ "enum": kind.names(providers) }),
        Shape::Names | Shape::Keywords => json!({ "type": "array", "items": { "type": "string" } }),
        Shape::Providers(kind) => {
            let names = kind.names(providers);
            json!({ "oneOf": [{ "enum": names }, { "type": "array", "items": { "enum": names } }] })
        }
        Shape::BuildInfo => json!({ "type": "object" }),
    };
    if let Some(object) = schema.as_object_mut() {
        object.insert("description".into(), Value::from(field.description));
        if field.alias_of.is_some() {
            object.insert("deprecated".into(), Value::Bool(true));
        }
    }
    schema
}
