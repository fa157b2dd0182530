//! Turns the parsed JSON of `loktar.json` into packages, collecting every
//! problem as a diagnostic instead of stopping at the first.

use std::collections::HashMap;
use std::path::Path;

use super::fields::{BUILD_INFO_FIELDS, Field, PACKAGE_FIELDS, Role, Shape, TOP_LEVEL_KEYS};
use super::json::{self, LineIndex, Member, Node, Value};
use super::{BuildInfo, NO_TEST, Package, PackageKind, Positions, Providers, show_dir};
use crate::diagnostic::{Diagnostic, Location};
use crate::suggest::closest;

/// Parses and validates the text; returns the valid packages and every problem found.
pub(super) fn parse(
    source: &str,
    file: &str,
    providers: &Providers,
) -> (Vec<Package>, Vec<Diagnostic>) {
    let mut validator = Validator {
        source,
        lines: LineIndex::new(source),
        file,
        providers,
        problems: Vec::new(),
    };
    let root = match json::parse(source) {
        Ok(root) => root,
        Err(error) => {
            let diagnostic =
                Diagnostic::new(format!("`{file}` is not valid JSON: {}", error.message))
                    .at(validator.location(error.offset));
            return (Vec::new(), vec![diagnostic]);
        }
    };
    let packages = validator.manifest(&root);
    validator.cross_check(&packages);
    (packages, validator.problems)
}

/// Checks that every package folder exists in the working tree.
pub(super) fn check_folders(root: &Path, packages: &[Package]) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for package in packages {
        let path = root.join(&package.dir);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => problems.push(
                Diagnostic::new(format!(
                    "package `{}`: `{}` is a file, not a folder",
                    package.name,
                    show_dir(&package.dir)
                ))
                .at(package.positions.dir.clone())
                .hint("set `pkg_dir` to the folder that holds the package"),
            ),
            Err(_) => problems.push(missing_folder(root, package)),
        }
    }
    problems
}

fn missing_folder(root: &Path, package: &Package) -> Diagnostic {
    let guess = closest_existing_folder(root, &package.dir);
    let message = format!(
        "package `{}`: folder `{}` does not exist",
        package.name, package.dir
    );
    let hint = match (package.positions.dir_written, guess) {
        (false, Some(guess)) => format!(
            "without `pkg_dir` the folder is the package name; set `\"pkg_dir\": \"{guess}\"` if that is its folder"
        ),
        (false, None) => "without `pkg_dir` the folder is the package name; set `pkg_dir` to the package's folder"
            .to_string(),
        (true, Some(guess)) => format!("did you mean `{guess}`? `pkg_dir` is relative to the repository root"),
        (true, None) => "`pkg_dir` is relative to the repository root; create the folder or fix the path".to_string(),
    };
    Diagnostic::new(message)
        .at(package.positions.dir.clone())
        .hint(hint)
}

/// Walks `dir` component by component, replacing each missing one with the
/// closest existing folder, to suggest what the user probably meant.
fn closest_existing_folder(root: &Path, dir: &str) -> Option<String> {
    let mut found: Vec<String> = Vec::new();
    for part in dir.split('/') {
        let here = root.join(found.join("/"));
        if here.join(part).is_dir() {
            found.push(part.to_string());
            continue;
        }
        let folders: Vec<String> = std::fs::read_dir(&here)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name != ".git")
            .collect();
        found.push(closest(part, folders.iter().map(String::as_str))?.to_string());
    }
    Some(found.join("/"))
}

struct Validator<'a> {
    source: &'a str,
    lines: LineIndex,
    file: &'a str,
    providers: &'a Providers,
    problems: Vec<Diagnostic>,
}

/// The values of one package entry as they are read, before defaults apply.
#[derive(Default)]
struct Entry<'n> {
    fields: HashMap<&'static str, &'n Member>,
}

impl<'n> Entry<'n> {
    fn text(&self, key: &str) -> Option<(&'n str, usize)> {
        match self.fields.get(key).map(|m| &m.value) {
            Some(Node {
                value: Value::String(s),
                offset,
            }) => Some((s.as_str(), *offset)),
            _ => None,
        }
    }

    /// A list of strings (a single string counts as a list of one), with each item's offset.
    fn list(&self, key: &str) -> Vec<(&'n str, usize)> {
        match self.fields.get(key).map(|m| &m.value) {
            Some(Node {
                value: Value::String(s),
                offset,
            }) => vec![(s.as_str(), *offset)],
            Some(Node {
                value: Value::Array(items),
                ..
            }) => items
                .iter()
                .filter_map(|item| match &item.value {
                    Value::String(s) => Some((s.as_str(), item.offset)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Validator<'_> {
    fn location(&self, offset: usize) -> Location {
        let (line, column) = self.lines.position(self.source, offset);
        Location {
            file: self.file.to_string(),
            line,
            column,
        }
    }

    fn report(&mut self, offset: usize, message: String, hint: Option<String>) {
        let diagnostic = Diagnostic::new(message)
            .at(self.location(offset))
            .maybe_hint(hint);
        self.problems.push(diagnostic);
    }

    fn manifest(&mut self, root: &Node) -> Vec<Package> {
        let Value::Object(members) = &root.value else {
            self.report(
                root.offset,
                format!(
                    "the top level of `{}` must be an object, found {}",
                    self.file,
                    root.value.type_name()
                ),
                Some("write `{ \"packages\": [ … ] }`".to_string()),
            );
            return Vec::new();
        };
        let mut packages_node = None;
        let mut seen = Vec::new();
        for member in members {
            if seen.contains(&member.key.as_str()) {
                self.report(
                    member.key_offset,
                    format!("key `{}` is written twice", member.key),
                    None,
                );
                continue;
            }
            seen.push(member.key.as_str());
            match member.key.as_str() {
                "packages" => packages_node = Some(&member.value),
                "$schema" => {}
                other => {
                    let hint = closest(other, TOP_LEVEL_KEYS.iter().copied())
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| {
                            Some("the top level holds only `packages` (and `$schema`)".to_string())
                        });
                    self.report(
                        member.key_offset,
                        format!("unknown key `{other}` at the top level"),
                        hint,
                    );
                }
            }
        }
        let Some(list) = packages_node else {
            self.report(
                root.offset,
                format!("`{}` has no `packages` list", self.file),
                Some("add `\"packages\": [ { \"pkg_name\": \"…\" } ]`".to_string()),
            );
            return Vec::new();
        };
        let Value::Array(items) = &list.value else {
            self.report(
                list.offset,
                format!(
                    "`packages` must be an array, found {}",
                    list.value.type_name()
                ),
                None,
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| self.package(index + 1, item))
            .collect()
    }

    fn package(&mut self, number: usize, node: &Node) -> Option<Package> {
        let Value::Object(members) = &node.value else {
            self.report(
                node.offset,
                format!(
                    "entry #{number} of `packages` must be an object, found {}",
                    node.value.type_name()
                ),
                None,
            );
            return None;
        };
        let name = members
            .iter()
            .find_map(|m| match (&m.key[..], &m.value.value) {
                ("pkg_name" | "artifact_name", Value::String(name)) if !name.is_empty() => {
                    Some(name.as_str())
                }
                _ => None,
            });
        let label = match name {
            Some(name) => format!("package `{name}`"),
            None => format!("package #{number}"),
        };
        let problems_before = self.problems.len();
        let mut entry = Entry::default();
        for member in members {
            let Some(field) = PACKAGE_FIELDS.iter().find(|f| f.name == member.key) else {
                let known = PACKAGE_FIELDS.iter().map(|f| f.name);
                let hint = match closest(&member.key, known) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!(
                        "known keys: {}",
                        PACKAGE_FIELDS
                            .iter()
                            .filter(|f| f.alias_of.is_none())
                            .map(|f| f.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.report(
                    member.key_offset,
                    format!("{label}: unknown key `{}`", member.key),
                    Some(hint),
                );
                continue;
            };
            if entry.fields.insert(field.name, member).is_some() {
                self.report(
                    member.key_offset,
                    format!("{label}: key `{}` is written twice", field.name),
                    None,
                );
                continue;
            }
            self.check_shape(&label, field, &member.value);
        }
        for field in PACKAGE_FIELDS {
            if let (Some(of), Some(member)) = (field.alias_of, entry.fields.get(field.name))
                && entry.fields.contains_key(of)
            {
                let message = format!(
                    "{label}: both `{of}` and its older name `{}` are set",
                    field.name
                );
                self.report(
                    member.key_offset,
                    message,
                    Some(format!("keep only `{of}`")),
                );
            }
        }
        let Some(name) = name else {
            if !entry.fields.contains_key("pkg_name") && !entry.fields.contains_key("artifact_name")
            {
                self.report(
                    node.offset,
                    format!("{label} has no `pkg_name`"),
                    Some("add `\"pkg_name\": \"<name>\"`".to_string()),
                );
            } else if self.problems.len() == problems_before {
                let offset = entry
                    .fields
                    .get("pkg_name")
                    .or(entry.fields.get("artifact_name"))
                    .map_or(node.offset, |m| m.value.offset);
                self.report(
                    offset,
                    format!("{label}: `pkg_name` must not be empty"),
                    None,
                );
            }
            return None;
        };
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            let offset = entry
                .text("pkg_name")
                .or(entry.text("artifact_name"))
                .map_or(node.offset, |(_, o)| o);
            self.report(
                offset,
                format!("{label}: the name contains `{bad}`"),
                Some("use letters, digits, `_`, `-` and `.` only".to_string()),
            );
        }
        let dir = self.folder(&label, name, &entry, node.offset);
        if self.problems.len() > problems_before {
            return None;
        }
        let (dir, dir_offset, dir_written) = dir?;
        let build_info = self.build_info(&entry);
        let test_type = entry
            .text("test_type")
            .map(|(t, _)| t)
            .filter(|t| *t != NO_TEST)
            .map(str::to_string);
        let depends = entry.list("depends_on");
        Some(Package {
            name: name.to_string(),
            dir,
            pkg_type: entry
                .text("pkg_type")
                .or(entry.text("artifact_type"))
                .map(|(t, _)| t.to_string()),
            test_type,
            kind: entry.text("type").map(|(t, _)| {
                if t == "service" {
                    PackageKind::Service
                } else {
                    PackageKind::Library
                }
            }),
            build_info,
            depends_on: depends.iter().map(|(d, _)| (*d).to_string()).collect(),
            dependencies_type: entry
                .list("dependencies_type")
                .iter()
                .map(|(d, _)| (*d).to_string())
                .collect(),
            exclude_keywords: entry
                .list("exclude_dependencies_only_on_keywords")
                .iter()
                .map(|(k, _)| (*k).to_string())
                .collect(),
            positions: Positions {
                entry: self.location(node.offset),
                dir: self.location(dir_offset),
                dir_written,
                depends_on: depends
                    .iter()
                    .map(|(_, offset)| self.location(*offset))
                    .collect(),
            },
        })
    }

    /// Works out the package folder: `pkg_dir`, `artifact_dir/<name>`, or the name.
    fn folder(
        &mut self,
        label: &str,
        name: &str,
        entry: &Entry<'_>,
        entry_offset: usize,
    ) -> Option<(String, usize, bool)> {
        let (written, offset, key) = if let Some((dir, offset)) = entry.text("pkg_dir") {
            (dir.to_string(), offset, "pkg_dir")
        } else if let Some((parent, offset)) = entry.text("artifact_dir") {
            (format!("{parent}/{name}"), offset, "artifact_dir")
        } else {
            return match normalize_dir(name) {
                Ok(dir) => Some((dir, entry_offset, false)),
                Err(problem) => {
                    self.report(
                        entry_offset,
                        format!("{label}: the name cannot be used as a folder: {problem}"),
                        Some("set `pkg_dir`".into()),
                    );
                    None
                }
            };
        };
        match normalize_dir(&written) {
            Ok(dir) => Some((dir, offset, true)),
            Err(problem) => {
                self.report(
                    offset,
                    format!("{label}: `{key}` {problem}"),
                    Some(
                        "write a folder relative to the repository root, like `services/api`"
                            .to_string(),
                    ),
                );
                None
            }
        }
    }

    fn build_info(&mut self, entry: &Entry<'_>) -> BuildInfo {
        let mut info = BuildInfo::default();
        let Some(Node {
            value: Value::Object(members),
            ..
        }) = entry.fields.get("build_info").map(|m| &m.value)
        else {
            return info;
        };
        for member in members {
            let text = match &member.value.value {
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            match member.key.as_str() {
                "build_type" => info.build_type = text,
                "registry_type" => info.registry_type = text,
                "storage_type" => info.storage_type = text,
                key => {
                    info.settings
                        .insert(key.to_string(), to_serde(&member.value.value));
                }
            }
        }
        info
    }

    fn check_shape(&mut self, label: &str, field: &Field, node: &Node) {
        let key = field.name;
        let wrong = |expected: &str| {
            format!(
                "{label}: `{key}` must be {expected}, found {}",
                node.value.type_name()
            )
        };
        match (field.shape, &node.value) {
            (Shape::Text | Shape::Folder, Value::String(s)) => {
                if s.is_empty() {
                    self.report(
                        node.offset,
                        format!("{label}: `{key}` must not be empty"),
                        None,
                    );
                }
            }
            (Shape::Text | Shape::Folder, _) => self.report(node.offset, wrong("a string"), None),
            (Shape::Kind, Value::String(s)) if s == "service" || s == "library" => {}
            (Shape::Kind, _) => self.report(
                node.offset,
                format!("{label}: `type` must be `service` or `library`"),
                None,
            ),
            (Shape::Provider(role), Value::String(s)) => {
                self.check_provider(label, key, role, s, node.offset)
            }
            (Shape::Provider(_), _) => self.report(node.offset, wrong("a string"), None),
            (Shape::Providers(role), Value::String(s)) => {
                self.check_provider(label, key, role, s, node.offset)
            }
            (Shape::Names | Shape::Keywords | Shape::Providers(_), Value::Array(items)) => {
                for item in items {
                    match (&item.value, field.shape) {
                        (Value::String(s), Shape::Providers(role)) => {
                            self.check_provider(label, key, role, s, item.offset)
                        }
                        (Value::String(s), _) if s.is_empty() => self.report(
                            item.offset,
                            format!("{label}: `{key}` has an empty item"),
                            None,
                        ),
                        (Value::String(_), _) => {}
                        (other, _) => self.report(
                            item.offset,
                            format!(
                                "{label}: items of `{key}` must be strings, found {}",
                                other.type_name()
                            ),
                            None,
                        ),
                    }
                }
            }
            (Shape::Names | Shape::Keywords, _) => self.report(
                node.offset,
                wrong("an array of strings"),
                Some(format!("write `\"{key}\": [\"…\"]`")),
            ),
            (Shape::Providers(_), _) => {
                self.report(node.offset, wrong("a string or an array of strings"), None)
            }
            (Shape::BuildInfo, Value::Object(members)) => {
                let mut seen = Vec::new();
                for member in members {
                    if seen.contains(&member.key.as_str()) {
                        self.report(
                            member.key_offset,
                            format!("{label}: `build_info.{}` is written twice", member.key),
                            None,
                        );
                        continue;
                    }
                    seen.push(member.key.as_str());
                    if let Some(field) = BUILD_INFO_FIELDS.iter().find(|f| f.name == member.key) {
                        let inner = format!("{label}: `build_info`");
                        match &member.value.value {
                            Value::String(s) => {
                                if let Shape::Provider(role) = field.shape {
                                    self.check_provider(
                                        &inner,
                                        field.name,
                                        role,
                                        s,
                                        member.value.offset,
                                    );
                                }
                            }
                            other => self.report(
                                member.value.offset,
                                format!(
                                    "{inner}: `{}` must be a string, found {}",
                                    field.name,
                                    other.type_name()
                                ),
                                None,
                            ),
                        }
                    }
                }
            }
            (Shape::BuildInfo, _) => self.report(node.offset, wrong("an object"), None),
        }
    }

    fn check_provider(&mut self, label: &str, key: &str, role: Role, name: &str, offset: usize) {
        let names = role.names(self.providers);
        if names.iter().any(|n| n == name) {
            return;
        }
        let what = if role == Role::BuildType {
            "build type"
        } else {
            "plugin"
        };
        let hint = match closest(name, names.iter().map(String::as_str)) {
            Some(guess) => format!("did you mean `{guess}`?"),
            None => format!("known: {}", names.join(", ")),
        };
        self.report(
            offset,
            format!("{label}: `{key}` names `{name}`, which is not a known {what}"),
            Some(hint),
        );
    }

    /// Checks that involve several packages: names, folders, `depends_on`.
    fn cross_check(&mut self, packages: &[Package]) {
        let mut names: HashMap<&str, &Package> = HashMap::new();
        let mut dirs: HashMap<&str, &Package> = HashMap::new();
        for package in packages {
            if let Some(first) = names.insert(&package.name, package) {
                names.insert(&first.name, first);
                self.problems.push(
                    Diagnostic::new(format!("package `{}` is defined twice", package.name))
                        .at(package.positions.entry.clone())
                        .hint(format!(
                            "the first definition is at {}; rename or remove one",
                            first.positions.entry
                        )),
                );
                continue;
            }
            if let Some(first) = dirs.insert(&package.dir, package) {
                dirs.insert(&first.dir, first);
                self.problems.push(
                    Diagnostic::new(format!(
                        "packages `{}` and `{}` both own folder `{}`",
                        first.name,
                        package.name,
                        show_dir(&package.dir)
                    ))
                    .at(package.positions.dir.clone())
                    .hint("give each package its own `pkg_dir`"),
                );
            }
        }
        for package in packages {
            for (target, location) in package.depends_on.iter().zip(&package.positions.depends_on) {
                if names.contains_key(target.as_str()) {
                    continue;
                }
                let hint = closest(target, names.keys().copied())
                    .map(|guess| format!("did you mean `{guess}`?"))
                    .unwrap_or_else(|| "list only packages defined in loktar.json".to_string());
                self.problems.push(
                    Diagnostic::new(format!(
                        "package `{}`: `depends_on` names `{target}`, which is not a package",
                        package.name
                    ))
                    .at(location.clone())
                    .hint(hint),
                );
            }
        }
    }
}

/// Normalises a folder written in `loktar.json` to `a/b` form (`""` for the root).
fn normalize_dir(written: &str) -> Result<String, String> {
    if written.starts_with('/') {
        return Err(format!("`{written}` is absolute"));
    }
    if written.contains('\\') {
        return Err(format!(
            "`{written}` contains `\\`; use `/` between folders"
        ));
    }
    let mut parts = Vec::new();
    for part in written.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{written}` leaves the repository with `..`")),
            ".git" => return Err(format!("`{written}` points into `.git`")),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

fn to_serde(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => {
            serde_json::from_str(n).unwrap_or_else(|_| serde_json::Value::String(n.clone()))
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|i| to_serde(&i.value)).collect())
        }
        Value::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|m| (m.key.clone(), to_serde(&m.value.value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_folders() {
        assert_eq!(normalize_dir("./a//b/").as_deref(), Ok("a/b"));
        assert_eq!(normalize_dir(".").as_deref(), Ok(""));
        assert!(normalize_dir("../x").is_err());
        assert!(normalize_dir("/abs").is_err());
        assert!(normalize_dir("a/.git/b").is_err());
    }

    #[test]
    fn reads_aliases_and_build_info() {
        let source = r#"{"packages": [
            {"artifact_name": "lib", "artifact_dir": "libs", "artifact_type": "whl",
             "build_info": {"storage_type": "s3", "bucket": "b", "n": 3}},
            {"pkg_name": "svc", "test_type": "no-test", "depends_on": ["lib"], "dependencies_type": "dockerfile"}
        ]}"#;
        let (packages, problems) = parse(source, "loktar.json", &Providers::builtin());
        assert_eq!(problems, []);
        assert_eq!(packages[0].dir, "libs/lib");
        assert_eq!(packages[0].pkg_type.as_deref(), Some("whl"));
        assert_eq!(packages[0].build_info.storage_type.as_deref(), Some("s3"));
        assert_eq!(packages[0].build_info.settings["n"], serde_json::json!(3));
        assert_eq!(packages[1].test_type, None);
        assert_eq!(packages[1].dependencies_type, vec!["dockerfile"]);
    }
}
