//! Turns the parsed JSON of `loktar.json` into packages, collecting every
//! problem as a diagnostic instead of stopping at the first.
//!
//! This runs on every `loktar` call, for repositories with thousands of
//! packages, so the happy path allocates little: an entry with nothing to
//! report is read straight from the text into its package, without a tree;
//! strings are borrowed from the source, and positions stay byte offsets
//! until an error needs a line.

use std::borrow::Cow;

use super::fields::{BUILD_INFO_FIELDS, Field, PACKAGE_FIELDS, Role, Shape, TOP_LEVEL_KEYS};
use super::json::{self, Member, Node, NotPlain, Value};
use super::{BuildInfo, NO_TEST, Package, PackageKind, PackageTable, Positions, Providers, SourceFile, show_dir};
use crate::diagnostic::Diagnostic;
use crate::suggest::closest;

/// Parses and validates the text; returns the valid packages, indexed by
/// name and by folder with their dependencies resolved, and every problem found.
pub(super) fn parse(source: &SourceFile, providers: &Providers) -> (Vec<Package>, Indexed, Vec<Diagnostic>) {
    let mut validator = Validator { source, providers, problems: Vec::new() };
    // Sized up front: growing a vector of thousands of packages step by step
    // copies it again and again into fresh memory.
    let mut packages = Vec::with_capacity(expected_packages(&source.text));
    let mut number = 0;
    let parsed = json::parse_streaming(&source.text, "packages", &mut |mut item| {
        number += 1;
        match validator.plain_package(&mut item) {
            Ok(package) => packages.push(package),
            Err(NotPlain) => packages.extend(validator.package(number, &item.node()?)),
        }
        Ok(())
    });
    let root = match parsed {
        Ok(root) => root,
        Err(error) => {
            let message = format!("`{}` is not valid JSON: {}", source.shown_as, error.message);
            let indexed = Indexed {
                by_name: PackageTable::by_name(0),
                by_dir: PackageTable::by_dir(0),
                dependencies: Vec::new(),
            };
            return (Vec::new(), indexed, vec![Diagnostic::new(message).at(source.location(error.offset))]);
        }
    };
    validator.top_level(&root);
    let indexed = validator.cross_check(&packages);
    (packages, indexed, validator.problems)
}

/// What validation learns about the packages as a whole.
#[derive(Debug)]
pub(super) struct Indexed {
    pub(super) by_name: PackageTable,
    pub(super) by_dir: PackageTable,
    /// The package each `depends_on` item names: see [`super::Workspace`].
    pub(super) dependencies: Vec<u32>,
}

/// At least as many packages as the text holds, counted far faster than
/// parsing it: the opening braces (each entry has one; the top level, and a
/// `build_info`, only make the guess larger, which costs no memory that is
/// not written), but never more entries than fit in the text (none is
/// shorter than `{"pkg_name":"x"}`).
fn expected_packages(text: &str) -> usize {
    let braces = memchr::memchr_iter(b'{', text.as_bytes()).count();
    braces.min(text.len() / "{\"pkg_name\":\"x\"}".len())
}

/// How a package is named in messages: by name, or by position when it has none.
/// Formatted only when a message needs it.
#[derive(Clone, Copy)]
struct Label<'a> {
    name: Option<&'a str>,
    number: usize,
}

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name {
            Some(name) => write!(f, "package `{name}`"),
            None => write!(f, "package #{}", self.number),
        }
    }
}

struct Validator<'a> {
    source: &'a SourceFile,
    providers: &'a Providers,
    problems: Vec<Diagnostic>,
}

/// The members of one package entry, indexed like [`PACKAGE_FIELDS`].
struct Entry<'n> {
    fields: [Option<&'n Member<'n>>; PACKAGE_FIELDS.len()],
}

/// Indices into [`PACKAGE_FIELDS`], computed at compile time.
mod key {
    use super::{PACKAGE_FIELDS, field_index};
    pub(super) const PKG_NAME: usize = field_index("pkg_name");
    pub(super) const PKG_TYPE: usize = field_index("pkg_type");
    pub(super) const TEST_TYPE: usize = field_index("test_type");
    pub(super) const TYPE: usize = field_index("type");
    pub(super) const PKG_DIR: usize = field_index("pkg_dir");
    pub(super) const BUILD_INFO: usize = field_index("build_info");
    pub(super) const DEPENDS_ON: usize = field_index("depends_on");
    pub(super) const DEPENDENCIES_TYPE: usize = field_index("dependencies_type");
    pub(super) const EXCLUDE_KEYWORDS: usize = field_index("exclude_dependencies_only_on_keywords");
    pub(super) const ARTIFACT_NAME: usize = field_index("artifact_name");
    pub(super) const ARTIFACT_TYPE: usize = field_index("artifact_type");
    pub(super) const ARTIFACT_DIR: usize = field_index("artifact_dir");

    /// For each field that is an older name, the index of the field it names.
    pub(super) const ALIAS_OF: [Option<usize>; PACKAGE_FIELDS.len()] = {
        let mut table = [None; PACKAGE_FIELDS.len()];
        let mut index = 0;
        while index < PACKAGE_FIELDS.len() {
            if let Some(of) = PACKAGE_FIELDS[index].alias_of {
                table[index] = Some(field_index(of));
            }
            index += 1;
        }
        table
    };

    /// The index of a key. A `match` rather than a scan of the table: this
    /// runs for every key of every package.
    pub(super) fn of(key: &str) -> Option<usize> {
        Some(match key {
            "pkg_name" => PKG_NAME,
            "pkg_type" => PKG_TYPE,
            "test_type" => TEST_TYPE,
            "type" => TYPE,
            "pkg_dir" => PKG_DIR,
            "build_info" => BUILD_INFO,
            "depends_on" => DEPENDS_ON,
            "dependencies_type" => DEPENDENCIES_TYPE,
            "exclude_dependencies_only_on_keywords" => EXCLUDE_KEYWORDS,
            "artifact_name" => ARTIFACT_NAME,
            "artifact_type" => ARTIFACT_TYPE,
            "artifact_dir" => ARTIFACT_DIR,
            _ => return None,
        })
    }
}

/// The position of a key in [`PACKAGE_FIELDS`]; a typo fails the build.
const fn field_index(name: &str) -> usize {
    let mut index = 0;
    while index < PACKAGE_FIELDS.len() {
        let field = PACKAGE_FIELDS[index].name.as_bytes();
        let wanted = name.as_bytes();
        if field.len() == wanted.len() {
            let mut i = 0;
            while i < field.len() && field[i] == wanted[i] {
                i += 1;
            }
            if i == field.len() {
                return index;
            }
        }
        index += 1;
    }
    panic!("not a package field")
}

impl<'n> Entry<'n> {
    fn get(&self, key: usize) -> Option<&'n Member<'n>> {
        self.fields[key]
    }

    fn has(&self, key: usize) -> bool {
        self.get(key).is_some()
    }

    fn text(&self, key: usize) -> Option<(&'n str, usize)> {
        match self.get(key).map(|m| &m.value) {
            Some(Node { value: Value::String(s), offset }) => Some((s.as_ref(), *offset)),
            _ => None,
        }
    }

    /// A list of strings (a single string counts as a list of one), with each item's offset.
    fn list(&self, key: usize) -> Vec<(&'n str, usize)> {
        match self.get(key).map(|m| &m.value) {
            Some(Node { value: Value::String(s), offset }) => vec![(s.as_ref(), *offset)],
            Some(Node { value: Value::Array(items), .. }) => items
                .iter()
                .filter_map(|item| match &item.value {
                    Value::String(s) => Some((s.as_ref(), item.offset)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn strings(&self, key: usize) -> Vec<String> {
        self.list(key).into_iter().map(|(s, _)| s.to_string()).collect()
    }
}

/// `package `x`: `build_info``, formatted only when a message needs it.
struct InBuildInfo<'a>(Label<'a>);

impl std::fmt::Display for InBuildInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: `build_info`", self.0)
    }
}

impl<'a> Validator<'a> {
    /// The members of an object, first occurrence of each key only; reports
    /// every repeated key, prefixed with `context` (empty at the top level).
    fn unique<'m>(&mut self, context: &dyn std::fmt::Display, members: &'m [Member<'m>]) -> Vec<&'m Member<'m>> {
        let mut kept: Vec<&'m Member<'m>> = Vec::with_capacity(members.len());
        for member in members {
            if kept.iter().any(|k| k.key == member.key) {
                let prefix = context.to_string();
                let separator = if prefix.is_empty() { "" } else { ": " };
                let message = format!("{prefix}{separator}key `{}` is written twice", member.key);
                self.report(member.key_offset, message, None);
            } else {
                kept.push(member);
            }
        }
        kept
    }

    fn report(&mut self, offset: usize, message: String, hint: Option<String>) {
        let diagnostic = Diagnostic::new(message).at(self.source.location(offset)).maybe_hint(hint);
        self.problems.push(diagnostic);
    }

    /// Checks the top level; the package entries were validated while streaming.
    fn top_level(&mut self, root: &Node<'_>) {
        let file = &self.source.shown_as;
        let Value::Object(members) = &root.value else {
            let message = format!("the top level of `{file}` must be an object, found {}", root.value.type_name());
            self.report(root.offset, message, Some("write `{ \"packages\": [ … ] }`".to_string()));
            return;
        };
        let no_packages = format!("`{file}` has no `packages` list");
        let mut packages_node = None;
        for member in self.unique(&"", members) {
            match member.key.as_ref() {
                "packages" => packages_node = Some(&member.value),
                // Read and checked before the packages: see `config::plugins`.
                "$schema" | "plugins" => {}
                other => {
                    let hint = closest(other, TOP_LEVEL_KEYS.iter().copied())
                        .map_or("the top level holds only `packages`, `plugins` and `$schema`".to_string(), |k| {
                            format!("did you mean `{k}`?")
                        });
                    self.report(member.key_offset, format!("unknown key `{other}` at the top level"), Some(hint));
                }
            }
        }
        let Some(list) = packages_node else {
            let hint = "add `\"packages\": [ { \"pkg_name\": \"…\" } ]`".to_string();
            self.report(root.offset, no_packages, Some(hint));
            return;
        };
        if !matches!(list.value, Value::Array(_)) {
            let message = format!("`packages` must be an array, found {}", list.value.type_name());
            self.report(list.offset, message, None);
        }
    }

    fn package(&mut self, number: usize, node: &Node<'_>) -> Option<Package> {
        let Value::Object(members) = &node.value else {
            let found = node.value.type_name();
            self.report(node.offset, format!("entry #{number} of `packages` must be an object, found {found}"), None);
            return None;
        };
        let name = members.iter().find_map(|m| match (m.key.as_ref(), &m.value.value) {
            ("pkg_name" | "artifact_name", Value::String(name)) if !name.is_empty() => Some(name.as_ref()),
            _ => None,
        });
        let label = Label { name, number };
        let problems_before = self.problems.len();
        let entry = self.read_entry(label, members);
        for (index, alias_of) in key::ALIAS_OF.iter().enumerate() {
            if let (Some(of), Some(member)) = (*alias_of, entry.get(index))
                && entry.has(of)
            {
                let (of, older) = (PACKAGE_FIELDS[of].name, PACKAGE_FIELDS[index].name);
                let message = format!("{label}: both `{of}` and its older name `{older}` are set");
                self.report(member.key_offset, message, Some(format!("keep only `{of}`")));
            }
        }
        let name_offset = entry.text(key::PKG_NAME).or(entry.text(key::ARTIFACT_NAME)).map_or(node.offset, |(_, o)| o);
        let Some(name) = name else {
            if !entry.has(key::PKG_NAME) && !entry.has(key::ARTIFACT_NAME) {
                let hint = "add `\"pkg_name\": \"<name>\"`".to_string();
                self.report(node.offset, format!("{label} has no `pkg_name`"), Some(hint));
            } else if self.problems.len() == problems_before {
                self.report(name_offset, format!("{label}: `pkg_name` must not be empty"), None);
            }
            return None;
        };
        if let Some(bad) = bad_name_char(name) {
            let hint = "use letters, digits, `_`, `-` and `.` only".to_string();
            self.report(name_offset, format!("{label}: the name contains `{bad}`"), Some(hint));
        }
        let folder = self.folder(label, name, &entry, node.offset);
        if self.problems.len() > problems_before {
            return None;
        }
        let depends = entry.list(key::DEPENDS_ON);
        let text = |key: usize| entry.text(key).map(|(text, _)| text);
        let build_info = match entry.get(key::BUILD_INFO).map(|member| &member.value.value) {
            Some(Value::Object(members)) => build_info(members),
            _ => BuildInfo::default(),
        };
        Some(
            Valid {
                name,
                entry: node.offset,
                folder: folder?,
                pkg_type: text(key::PKG_TYPE).or(text(key::ARTIFACT_TYPE)),
                test_type: text(key::TEST_TYPE),
                kind: text(key::TYPE),
                build_info,
                depends_on: depends.iter().map(|(name, _)| (*name).to_string()).collect(),
                depends_at: depends.iter().map(|(_, offset)| *offset).collect(),
                dependencies_type: entry.strings(key::DEPENDENCIES_TYPE),
                exclude_keywords: entry.strings(key::EXCLUDE_KEYWORDS),
            }
            .into_package(),
        )
    }

    /// Reads a package entry that has nothing to report, without building a
    /// tree of it: known keys, once each, with strings (free of escapes) and
    /// arrays of strings where the fields want them, and nothing a message
    /// would be about. Any other entry is [`NotPlain`] — found at the first
    /// thing out of the ordinary — and is then read whole by
    /// [`Validator::package`], which explains what is wrong. Most entries
    /// are plain, and building their trees was most of the time a plan took.
    fn plain_package(&mut self, item: &mut json::Item<'_, 'a>) -> Result<Package, NotPlain> {
        // A plain entry has no empty string anywhere: each field rejects one.
        let filled =
            |(text, offset): (&'a str, usize)| if text.is_empty() { Err(NotPlain) } else { Ok((text, offset)) };
        let providers = self.providers;
        let accepted = |role: Role, text: &str| if role.accepts(providers, text) { Ok(()) } else { Err(NotPlain) };
        let mut texts: [Option<(&'a str, usize)>; PACKAGE_FIELDS.len()] = [None; PACKAGE_FIELDS.len()];
        let mut seen = [false; PACKAGE_FIELDS.len()];
        let (mut depends_on, mut depends_at) = (Vec::new(), Vec::new());
        let (mut dependencies_type, mut exclude_keywords) = (Vec::new(), Vec::new());
        let mut build_info = BuildInfo::default();
        let mut all_filled = true;
        while let Some(key) = item.next_key()? {
            let index = key::of(key).ok_or(NotPlain)?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(NotPlain);
            }
            match PACKAGE_FIELDS[index].shape {
                Shape::Text | Shape::Folder => texts[index] = Some(filled(item.string()?)?),
                Shape::Kind => {
                    let (kind, offset) = item.string()?;
                    if kind != "service" && kind != "library" {
                        return Err(NotPlain);
                    }
                    texts[index] = Some((kind, offset));
                }
                Shape::Provider(role) => {
                    let (name, offset) = item.string()?;
                    accepted(role, name)?;
                    texts[index] = Some((name, offset));
                }
                // The lists and `build_info` each have a place of their own below.
                Shape::Providers(role) if index == key::DEPENDENCIES_TYPE && item.at_string() => {
                    let (name, _) = item.string()?;
                    accepted(role, name)?;
                    dependencies_type.push(name.to_string());
                }
                Shape::Providers(role) if index == key::DEPENDENCIES_TYPE => {
                    item.strings(|name, _| dependencies_type.push(name.to_string()))?;
                    dependencies_type.iter().try_for_each(|name| accepted(role, name))?;
                }
                Shape::Names if index == key::DEPENDS_ON => item.strings(|name, offset| {
                    all_filled &= !name.is_empty();
                    depends_on.push(name.to_string());
                    depends_at.push(offset);
                })?,
                Shape::Keywords if index == key::EXCLUDE_KEYWORDS => item.strings(|keyword, _| {
                    all_filled &= !keyword.is_empty();
                    exclude_keywords.push(keyword.to_string());
                })?,
                Shape::BuildInfo if index == key::BUILD_INFO => {
                    let node = item.value()?;
                    let Value::Object(members) = &node.value else {
                        return Err(NotPlain);
                    };
                    let problems_before = self.problems.len();
                    self.check_build_info(Label { name: None, number: 0 }, members);
                    if self.problems.len() > problems_before {
                        self.problems.truncate(problems_before);
                        return Err(NotPlain);
                    }
                    build_info = self::build_info(members);
                }
                // A field of these shapes with no place here yet: read whole.
                Shape::Providers(_) | Shape::Names | Shape::Keywords | Shape::BuildInfo => return Err(NotPlain),
            }
        }
        let older_beside_newer =
            key::ALIAS_OF.iter().enumerate().any(|(index, of)| of.is_some_and(|of| seen[index] && seen[of]));
        if !all_filled || older_beside_newer {
            return Err(NotPlain);
        }
        let (name, _) = texts[key::PKG_NAME].or(texts[key::ARTIFACT_NAME]).ok_or(NotPlain)?;
        if bad_name_char(name).is_some() {
            return Err(NotPlain);
        }
        let folder = resolve_folder(name, texts[key::PKG_DIR], texts[key::ARTIFACT_DIR], item.offset());
        let text = |key: usize| texts[key].map(|(text, _)| text);
        Ok(Valid {
            name,
            entry: item.offset(),
            folder: folder.map_err(|_| NotPlain)?,
            pkg_type: text(key::PKG_TYPE).or(text(key::ARTIFACT_TYPE)),
            test_type: text(key::TEST_TYPE),
            kind: text(key::TYPE),
            build_info,
            depends_on,
            depends_at,
            dependencies_type,
            exclude_keywords,
        }
        .into_package())
    }

    /// Sorts the members into known fields, reporting unknown and repeated keys and wrong shapes.
    fn read_entry<'n>(&mut self, label: Label<'_>, members: &'n [Member<'n>]) -> Entry<'n> {
        let mut entry = Entry { fields: [None; PACKAGE_FIELDS.len()] };
        for member in members {
            let Some(index) = key::of(&member.key) else {
                let hint = match closest(&member.key, PACKAGE_FIELDS.iter().map(|f| f.name)) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => {
                        let known: Vec<&str> =
                            PACKAGE_FIELDS.iter().filter(|f| f.alias_of.is_none()).map(|f| f.name).collect();
                        format!("known keys: {}", known.join(", "))
                    }
                };
                self.report(member.key_offset, format!("{label}: unknown key `{}`", member.key), Some(hint));
                continue;
            };
            if entry.fields[index].replace(member).is_some() {
                self.report(member.key_offset, format!("{label}: key `{}` is written twice", member.key), None);
                continue;
            }
            self.check_shape(label, &PACKAGE_FIELDS[index], &member.value);
        }
        entry
    }

    /// Works out the package folder (see [`resolve_folder`]), reporting why it cannot be used.
    fn folder(&mut self, label: Label<'_>, name: &str, entry: &Entry<'_>, entry_offset: usize) -> Option<Folder> {
        let written = (entry.text(key::PKG_DIR), entry.text(key::ARTIFACT_DIR));
        match resolve_folder(name, written.0, written.1, entry_offset) {
            Ok(folder) => Some(folder),
            Err(FolderProblem::Name(problem)) => {
                let message = format!("{label}: the name cannot be used as a folder: {problem}");
                self.report(entry_offset, message, Some("set `pkg_dir`".into()));
                None
            }
            Err(FolderProblem::Written { key, offset, problem }) => {
                let hint = "write a folder relative to the repository root, like `services/api`".to_string();
                self.report(offset, format!("{label}: `{key}` {problem}"), Some(hint));
                None
            }
        }
    }

    fn check_shape(&mut self, label: Label<'_>, field: &Field, node: &Node<'_>) {
        let key = field.name;
        let wrong = |expected: &str| format!("{label}: `{key}` must be {expected}, found {}", node.value.type_name());
        match (field.shape, &node.value) {
            (Shape::Text | Shape::Folder, Value::String(s)) if s.is_empty() => {
                self.report(node.offset, format!("{label}: `{key}` must not be empty"), None);
            }
            (Shape::Text | Shape::Folder, Value::String(_)) => {}
            (Shape::Kind, Value::String(s)) if s == "service" || s == "library" => {}
            (Shape::Kind, _) => {
                self.report(node.offset, format!("{label}: `type` must be `service` or `library`"), None);
            }
            (Shape::Provider(role) | Shape::Providers(role), Value::String(s)) => {
                self.check_provider(&label, key, role, s, node.offset);
            }
            (Shape::Names | Shape::Keywords | Shape::Providers(_), Value::Array(items)) => {
                for item in items {
                    match (&item.value, field.shape) {
                        (Value::String(s), Shape::Providers(role)) => {
                            self.check_provider(&label, key, role, s, item.offset);
                        }
                        (Value::String(s), _) if s.is_empty() => {
                            self.report(item.offset, format!("{label}: `{key}` has an empty item"), None);
                        }
                        (Value::String(_), _) => {}
                        (other, _) => {
                            let message =
                                format!("{label}: items of `{key}` must be strings, found {}", other.type_name());
                            self.report(item.offset, message, None);
                        }
                    }
                }
            }
            (Shape::Text | Shape::Folder | Shape::Provider(_), _) => {
                self.report(node.offset, wrong("a string"), None);
            }
            (Shape::Names | Shape::Keywords, _) => {
                let hint = format!("write `\"{key}\": [\"…\"]`");
                self.report(node.offset, wrong("an array of strings"), Some(hint));
            }
            (Shape::Providers(_), _) => self.report(node.offset, wrong("a string or an array of strings"), None),
            (Shape::BuildInfo, Value::Object(members)) => self.check_build_info(label, members),
            (Shape::BuildInfo, _) => self.report(node.offset, wrong("an object"), None),
        }
    }

    fn check_build_info(&mut self, label: Label<'_>, members: &[Member<'_>]) {
        let inner = InBuildInfo(label);
        for member in self.unique(&inner, members) {
            let key = member.key.as_ref();
            let Some(field) = BUILD_INFO_FIELDS.iter().find(|f| f.name == key) else {
                continue; // a plugin setting
            };
            match (&member.value.value, field.shape) {
                (Value::String(s), Shape::Provider(role)) => {
                    self.check_provider(&inner, key, role, s, member.value.offset);
                }
                (Value::String(_), _) => {}
                (other, _) => {
                    let message = format!("{inner}: `{key}` must be a string, found {}", other.type_name());
                    self.report(member.value.offset, message, None);
                }
            }
        }
    }

    fn check_provider(&mut self, label: &dyn std::fmt::Display, key: &str, role: Role, name: &str, offset: usize) {
        if role.accepts(self.providers, name) {
            return;
        }
        let names = role.names(self.providers);
        let what = if role == Role::BuildType { "build type" } else { "plugin" };
        let hint = match closest(name, names.iter().map(String::as_str)) {
            Some(guess) => format!("did you mean `{guess}`?"),
            None => format!("known: {}", names.join(", ")),
        };
        let message = format!("{label}: `{key}` names `{name}`, which is not a known {what}");
        self.report(offset, message, Some(hint));
    }

    /// Checks that involve several packages (names, folders, `depends_on`),
    /// and returns the tables by name and by folder, which the workspace keeps.
    fn cross_check(&mut self, packages: &[Package]) -> Indexed {
        let mut names = PackageTable::by_name(packages.len());
        let mut dirs = PackageTable::by_dir(packages.len());
        for (index, package) in packages.iter().enumerate() {
            if let Err(first) = names.insert(packages, index) {
                let first_at = self.source.location(packages[first].positions.entry);
                let message = format!("package `{}` is defined twice", package.name);
                let hint = format!("the first definition is at {first_at}; rename or remove one");
                self.report(package.positions.entry, message, Some(hint));
                continue;
            }
            if let Err(first) = dirs.insert(packages, index) {
                let message = format!(
                    "packages `{}` and `{}` both own folder `{}`",
                    packages[first].name,
                    package.name,
                    show_dir(&package.dir)
                );
                let hint = "give each package its own `pkg_dir`".to_string();
                self.report(package.positions.dir, message, Some(hint));
            }
        }
        // Resolved once here: the dependency graph needs the indices too.
        let mut dependencies = Vec::with_capacity(packages.iter().map(|p| p.depends_on.len()).sum());
        for package in packages {
            for (target, offset) in package.depends_on.iter().zip(&package.positions.depends_on) {
                let found = names.find(packages, target);
                dependencies.push(found.map_or(super::NOT_A_PACKAGE, |index| index as u32));
                if found.is_some() {
                    continue;
                }
                let hint = closest(target, packages.iter().map(|p| p.name.as_str()))
                    .map_or("list only packages defined in loktar.json".to_string(), |guess| {
                        format!("did you mean `{guess}`?")
                    });
                let message =
                    format!("package `{}`: `depends_on` names `{target}`, which is not a package", package.name);
                self.report(*offset, message, Some(hint));
            }
        }
        Indexed { by_name: names, by_dir: dirs, dependencies }
    }
}

/// The settings of a `build_info` object.
fn build_info(members: &[Member<'_>]) -> BuildInfo {
    let mut info = BuildInfo::default();
    for member in members {
        let text = match &member.value.value {
            Value::String(s) => Some(s.to_string()),
            _ => None,
        };
        match member.key.as_ref() {
            "build_type" => info.build_type = text,
            "registry_type" => info.registry_type = text,
            "storage_type" => info.storage_type = text,
            key => {
                info.settings.insert(key.to_string(), to_serde(&member.value.value));
            }
        }
    }
    info
}

/// A package folder: `a/b` form, the offset of where it is written (the
/// entry's when implied by the name), and whether it is written.
type Folder = (String, usize, bool);

/// Why a package has no usable folder.
enum FolderProblem {
    /// The folder is implied by the name, which cannot be one.
    Name(String),
    /// The folder written under `key` cannot be used.
    Written { key: &'static str, offset: usize, problem: String },
}

/// The package folder: `pkg_dir`, else `artifact_dir/<name>`, else the name.
fn resolve_folder(
    name: &str,
    pkg_dir: Option<(&str, usize)>,
    artifact_dir: Option<(&str, usize)>,
    entry_offset: usize,
) -> Result<Folder, FolderProblem> {
    let (written, offset, key) = match (pkg_dir, artifact_dir) {
        (Some((dir, offset)), _) => (Cow::Borrowed(dir), offset, "pkg_dir"),
        (None, Some((parent, offset))) => (Cow::Owned(format!("{parent}/{name}")), offset, "artifact_dir"),
        (None, None) => {
            return normalize_dir(name).map(|dir| (dir, entry_offset, false)).map_err(FolderProblem::Name);
        }
    };
    match normalize_dir(&written) {
        Ok(dir) => Ok((dir, offset, true)),
        Err(problem) => Err(FolderProblem::Written { key, offset, problem }),
    }
}

/// The first character a package name may not hold, if any.
fn bad_name_char(name: &str) -> Option<char> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    // Nearly every name is ASCII: checked byte by byte before any decoding.
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return None;
    }
    name.chars().find(|&c| !allowed(c))
}

/// Everything a valid package entry says, however it was read.
struct Valid<'t> {
    name: &'t str,
    entry: usize,
    folder: Folder,
    pkg_type: Option<&'t str>,
    test_type: Option<&'t str>,
    kind: Option<&'t str>,
    build_info: BuildInfo,
    depends_on: Vec<String>,
    depends_at: Vec<usize>,
    dependencies_type: Vec<String>,
    exclude_keywords: Vec<String>,
}

impl Valid<'_> {
    fn into_package(self) -> Package {
        let (dir, dir_offset, dir_written) = self.folder;
        Package {
            name: self.name.to_string(),
            dir,
            pkg_type: self.pkg_type.map(str::to_string),
            test_type: self.test_type.filter(|test| *test != NO_TEST).map(str::to_string),
            kind: self.kind.map(|kind| if kind == "service" { PackageKind::Service } else { PackageKind::Library }),
            build_info: self.build_info,
            depends_on: self.depends_on,
            dependencies_type: self.dependencies_type,
            exclude_keywords: self.exclude_keywords,
            positions: Positions { entry: self.entry, dir: dir_offset, dir_written, depends_on: self.depends_at },
        }
    }
}

/// Normalises a folder written in `loktar.json` to `a/b` form (`""` for the root).
fn normalize_dir(written: &str) -> Result<String, String> {
    // Nearly every folder is already normal; this runs for each package.
    if is_normal(written.as_bytes()) {
        return Ok(written.to_string());
    }
    if written.starts_with('/') {
        return Err(format!("`{written}` is absolute"));
    }
    if written.contains('\\') {
        return Err(format!("`{written}` contains `\\`; use `/` between folders"));
    }
    let mut parts = Vec::new();
    for part in written.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{written}` leaves the repository with `..`")),
            ".git" => return Err(format!("`{written}` points into `.git`")),
            ".loktar" => return Err(format!("`{written}` points into `.loktar`, Loktar's own folder")),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Whether a folder is already in `a/b` form: no `\\`, and no part empty,
/// `.`, `..`, `.git` or `.loktar`. One pass over the bytes.
fn is_normal(dir: &[u8]) -> bool {
    let plain = |part: &[u8]| !matches!(part, b"" | b"." | b".." | b".git" | b".loktar");
    let mut part_start = 0;
    for (index, &byte) in dir.iter().enumerate() {
        match byte {
            b'\\' => return false,
            b'/' if !plain(&dir[part_start..index]) => return false,
            b'/' => part_start = index + 1,
            _ => {}
        }
    }
    plain(&dir[part_start..])
}

fn to_serde(value: &Value<'_>) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => serde_json::from_str(n).unwrap_or_else(|_| serde_json::Value::String((*n).to_string())),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(|i| to_serde(&i.value)).collect()),
        Value::Object(members) => {
            serde_json::Value::Object(members.iter().map(|m| (m.key.to_string(), to_serde(&m.value.value))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_an_index() {
        for (index, field) in PACKAGE_FIELDS.iter().enumerate() {
            assert_eq!(key::of(field.name), Some(index), "{}", field.name);
        }
        assert_eq!(key::of("pkg_nmae"), None);
    }

    #[test]
    fn expects_at_least_as_many_packages_as_the_text_holds() {
        assert_eq!(expected_packages(r#"{"packages": [{"pkg_name": "a"}, {"artifact_name": "b"}]}"#), 3);
        assert_eq!(expected_packages(r#"{"packages": []}"#), 1);
        // Braces without room for entries do not reserve room for packages.
        assert_eq!(expected_packages(&"{".repeat(80)), 5);
    }

    #[test]
    fn normalizes_folders() {
        assert_eq!(normalize_dir("./a//b/").as_deref(), Ok("a/b"));
        assert_eq!(normalize_dir(".").as_deref(), Ok(""));
        assert!(normalize_dir("../x").is_err());
        assert!(normalize_dir("/abs").is_err());
        assert!(normalize_dir("a/.git/b").is_err());
        assert_eq!(normalize_dir("a/b").as_deref(), Ok("a/b"));
        assert_eq!(normalize_dir("a/./b").as_deref(), Ok("a/b"));
        assert_eq!(normalize_dir(".gitx/..y").as_deref(), Ok(".gitx/..y"));
        assert!(normalize_dir("a\\b").is_err());
        assert!(normalize_dir("a/..").is_err());
    }

    #[test]
    fn a_folder_is_normal_exactly_when_no_part_needs_normalizing() {
        let parts = ["", ".", "..", ".git", "a", ".gitx", "..y", "é", "a\\b"];
        let slow = |dir: &str| {
            !dir.contains('\\') && dir.split('/').all(|part| !matches!(part, "" | "." | ".." | ".git" | ".loktar"))
        };
        for first in parts {
            for second in parts {
                for third in parts {
                    for dir in [first.to_string(), format!("{first}/{second}"), format!("{first}/{second}/{third}")] {
                        assert_eq!(is_normal(dir.as_bytes()), slow(&dir), "{dir:?}");
                    }
                }
            }
        }
    }

    /// Reads one entry both ways: plainly if it can be, then whole.
    fn both_ways(entry: &str) -> (Option<Package>, Option<Package>, Vec<String>) {
        let source = SourceFile::new("loktar.json", format!(r#"{{"packages": [{entry}]}}"#));
        let providers = Providers::builtin();
        let mut validator = Validator { source: &source, providers: &providers, problems: Vec::new() };
        let (mut plain, mut whole) = (None, None);
        json::parse_streaming(&source.text, "packages", &mut |mut item| {
            plain = validator.plain_package(&mut item).ok();
            whole = validator.package(1, &item.node()?);
            Ok(())
        })
        .expect("valid JSON");
        (plain, whole, validator.problems.into_iter().map(|problem| problem.message).collect())
    }

    #[test]
    fn an_entry_is_read_plainly_exactly_when_it_has_nothing_to_report() {
        let plain = [
            r#"{"pkg_name": "a"}"#,
            r#"{ "pkg_name" : "a" , "pkg_dir" : "x/./y/" }"#,
            r#"{"pkg_name": "api", "pkg_dir": "rest/api", "pkg_type": "docker", "test_type": "make",
                "type": "service", "depends_on": ["lib", "base"], "dependencies_type": "dockerfile",
                "exclude_dependencies_only_on_keywords": ["CLN", "DOC"],
                "build_info": {"build_type": "local", "registry_type": "quay", "storage_type": "s3", "n": [1]}}"#,
            r#"{"artifact_name": "lib", "artifact_dir": "libs", "artifact_type": "whl", "build_info": {}}"#,
            r#"{"pkg_name": "svc", "test_type": "no-test", "depends_on": [], "type": "library",
                "dependencies_type": ["python_requirements", "docker_compose"]}"#,
            r#"{"pkg_name": "é-ü_1.0"}"#,
        ];
        for entry in plain {
            let (plain, whole, problems) = both_ways(entry);
            assert_eq!(problems, Vec::<String>::new(), "{entry}");
            assert!(plain.is_some(), "{entry}");
            assert_eq!(plain, whole, "{entry}");
        }
        let reported = [
            "{}",
            "[]",
            r#""a""#,
            r#"{"pkg_dir": "a"}"#,
            r#"{"pkg_name": ""}"#,
            r#"{"pkg_name": "a b"}"#,
            r#"{"pkg_name": ".."}"#,
            r#"{"pkg_name": "a", "pkg_name": "b"}"#,
            r#"{"pkg_nmae": "a"}"#,
            r#"{"pkg_name": "a", "artifact_name": "a"}"#,
            r#"{"pkg_name": "a", "pkg_dir": "../x"}"#,
            r#"{"pkg_name": "a", "pkg_dir": 3}"#,
            r#"{"pkg_name": "a", "type": "daemon"}"#,
            r#"{"pkg_name": "a", "pkg_type": "rpm"}"#,
            r#"{"pkg_name": "a", "test_type": ""}"#,
            r#"{"pkg_name": "a", "depends_on": "b"}"#,
            r#"{"pkg_name": "a", "depends_on": ["b", ""]}"#,
            r#"{"pkg_name": "a", "depends_on": ["b", 1]}"#,
            r#"{"pkg_name": "a", "dependencies_type": ["dockerfile", "nope"]}"#,
            r#"{"pkg_name": "a", "dependencies_type": "nope"}"#,
            r#"{"pkg_name": "a", "exclude_dependencies_only_on_keywords": [""]}"#,
            r#"{"pkg_name": "a", "build_info": {"registry_type": "nope"}}"#,
            r#"{"pkg_name": "a", "build_info": {"build_type": "local", "build_type": "url"}}"#,
            r#"{"pkg_name": "a", "build_info": []}"#,
        ];
        for entry in reported {
            let (plain, _, problems) = both_ways(entry);
            assert!(plain.is_none() && !problems.is_empty(), "{entry}: {problems:?}");
        }
        // Escapes need decoding, so the entry is read whole, to the same effect.
        let (plain, whole, problems) = both_ways(r#"{"pkg_name": "a\u0062", "pkg_dir": "x\/y"}"#);
        assert!(plain.is_none() && problems.is_empty());
        assert_eq!(whole.map(|package| (package.name, package.dir)), Some(("ab".into(), "x/y".into())));
    }

    #[test]
    fn entries_after_one_read_whole_are_read_in_place() {
        let source = SourceFile::new(
            "loktar.json",
            "{\"packages\": [{\"pkg_name\": \"a\"},\n {\"pkg_name\": \"b\", \"x\": 1},\n {\"pkg_name\": \"c\"}]}"
                .to_string(),
        );
        let (packages, _, problems) = parse(&source, &Providers::builtin());
        let names: Vec<&str> = packages.iter().map(|package| package.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].message.as_str(), problems[0].location.as_ref().map(|l| (l.line, l.column))),
            ("package `b`: unknown key `x`", Some((2, 20)))
        );
        assert_eq!(packages[1].positions.entry, source.text.rfind('{').expect("third entry"));
    }

    #[test]
    fn reads_aliases_and_build_info() {
        let source = SourceFile::new(
            "loktar.json",
            r#"{"packages": [
            {"artifact_name": "lib", "artifact_dir": "libs", "artifact_type": "whl",
             "build_info": {"storage_type": "s3", "bucket": "b", "n": 3}},
            {"pkg_name": "svc", "test_type": "no-test", "depends_on": ["lib"], "dependencies_type": "dockerfile"}
        ]}"#
            .to_string(),
        );
        let (packages, _, problems) = parse(&source, &Providers::builtin());
        assert_eq!(problems, []);
        assert_eq!(packages[0].dir, "libs/lib");
        assert_eq!(packages[0].pkg_type.as_deref(), Some("whl"));
        assert_eq!(packages[0].build_info.storage_type.as_deref(), Some("s3"));
        assert_eq!(packages[0].build_info.settings["n"], serde_json::json!(3));
        assert_eq!(packages[1].test_type, None);
        assert_eq!(packages[1].dependencies_type, vec!["dockerfile"]);
    }
}
