//! Turns the text of `loktar.json` into packages, collecting every problem
//! as a diagnostic instead of stopping at the first.
//!
//! serde_json reads the text ([`super::raw`]). Each package entry is read
//! once, member by member, into the place its key's shape in
//! [`PACKAGE_FIELDS`] says, and each key or value that is not what it should
//! be is reported where it is written. Strings are borrowed from the text
//! unless they hold escapes, and positions stay byte offsets until an error
//! needs a line.

use std::borrow::Cow;
use std::mem::take;

use serde_json::value::RawValue;

use super::fields::{PACKAGE_FIELDS, ProviderKind, Shape, TOP_LEVEL_KEYS};
use super::raw::{Kind, Member, Reader, TopLevel, TopValue, Unreadable};
use super::{
    BuildInfo, NO_TEST, Package, PackageIndex, PackageKind, Positions, Providers, SourceFile, show_dir, syntax,
};
use loktar_support::diagnostic::Diagnostic;
use loktar_support::suggest::closest;

/// Parses and validates the text; returns the valid packages, indexed by
/// name and by folder with their dependencies resolved, and every problem found.
pub(super) fn parse(source: &SourceFile, providers: &Providers) -> (Vec<Package>, Indexed, Vec<Diagnostic>) {
    let mut validator = Validator { source, reader: Reader::new(&source.text), providers, problems: Vec::new() };
    let (packages, indexed) = match validator.document() {
        Ok(packages) => {
            let indexed = validator.cross_check(&packages);
            (packages, indexed)
        }
        Err(unreadable) => {
            let message = format!("`{}` is not valid JSON: {}", source.shown_as, unreadable.description());
            validator.report(unreadable.offset, message, None);
            (Vec::new(), Indexed::default())
        }
    };
    if validator.problems.is_empty() {
        return (packages, indexed, Vec::new());
    }
    // serde_json checks the syntax of what it skips, not its depth or
    // escapes: a text with problems may be no valid JSON after all, and
    // then that is the one problem to report.
    if let Some(error) = syntax::first_error(&source.text) {
        let message = format!("`{}` is not valid JSON: {}", source.shown_as, error.message);
        return (Vec::new(), Indexed::default(), vec![Diagnostic::new(message).at(source.location(error.offset))]);
    }
    (packages, indexed, validator.problems)
}

/// What validation learns about the packages as a whole.
#[derive(Debug, Default)]
pub(super) struct Indexed {
    pub(super) by_name: PackageIndex,
    pub(super) by_dir: PackageIndex,
    /// The package each `depends_on` item names: see [`super::Workspace`].
    pub(super) dependencies: Vec<u32>,
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
    reader: Reader<'a>,
    providers: &'a Providers,
    problems: Vec<Diagnostic>,
}

/// What a package entry says, indexed like [`PACKAGE_FIELDS`].
#[derive(Default)]
struct Fields<'a> {
    /// Where each key is first written.
    keys: [Option<usize>; PACKAGE_FIELDS.len()],
    /// The fields whose value is a string: the text and where it is written.
    texts: [Option<(Cow<'a, str>, usize)>; PACKAGE_FIELDS.len()],
    /// The fields whose value is a list: the items' texts.
    lists: [Vec<String>; PACKAGE_FIELDS.len()],
    /// Where each item of `depends_on` is written.
    depends_at: Vec<usize>,
    build_info: BuildInfo,
}

impl Fields<'_> {
    fn take_text(&mut self, key: usize) -> Option<String> {
        self.texts[key].take().map(|(text, _)| text.into_owned())
    }
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

/// `package `x`: `build_info``, formatted only when a message needs it.
struct InBuildInfo<'a>(Label<'a>);

impl std::fmt::Display for InBuildInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: `build_info`", self.0)
    }
}

impl<'a> Validator<'a> {
    fn report(&mut self, offset: usize, message: String, hint: Option<String>) {
        let diagnostic = Diagnostic::new(message).at(self.source.location(offset)).maybe_hint(hint);
        self.problems.push(diagnostic);
    }

    /// Reads the whole text; returns the valid packages.
    fn document(&mut self) -> Result<Vec<Package>, Unreadable> {
        let file = &self.source.shown_as;
        let (root_offset, members) = match self.reader.top_level("packages")? {
            TopLevel::Object { offset, members } => (offset, members),
            TopLevel::Other(root) => {
                let message = format!("the top level of `{file}` must be an object, found {}", Kind::of(root).name());
                let hint = "write `{ \"packages\": [ … ] }`".to_string();
                self.report(self.reader.offset(root), message, Some(hint));
                return Ok(Vec::new());
            }
        };
        let no_packages = format!("`{file}` has no `packages` list");
        let mut packages = None;
        for (index, member) in members.iter().enumerate() {
            let key_offset = self.reader.offset(member.key_written);
            if members[..index].iter().any(|earlier| earlier.key == member.key) {
                self.report(key_offset, format!("key `{}` is written twice", member.key), None);
                continue;
            }
            match (member.key.as_ref(), &member.value) {
                ("packages", TopValue::Items(entries)) => packages = Some(self.packages(entries)?),
                ("packages", TopValue::Written(list)) => {
                    let message = format!("`packages` must be an array, found {}", Kind::of(list).name());
                    self.report(self.reader.offset(list), message, None);
                    packages = Some(Vec::new());
                }
                // Read and checked before the packages: see `config::plugins`.
                ("$schema" | "plugins", _) => {}
                (other, _) => {
                    let hint = closest(other, TOP_LEVEL_KEYS.iter().copied())
                        .map_or("the top level holds only `packages`, `plugins` and `$schema`".to_string(), |k| {
                            format!("did you mean `{k}`?")
                        });
                    self.report(key_offset, format!("unknown key `{other}` at the top level"), Some(hint));
                }
            }
        }
        if packages.is_none() {
            let hint = "add `\"packages\": [ { \"pkg_name\": \"…\" } ]`".to_string();
            self.report(root_offset, no_packages, Some(hint));
        }
        Ok(packages.unwrap_or_default())
    }

    /// Reads the entries of `packages`; returns their valid packages.
    fn packages(&mut self, entries: &[&'a RawValue]) -> Result<Vec<Package>, Unreadable> {
        let mut packages = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            packages.extend(self.package(index + 1, entry)?);
        }
        Ok(packages)
    }

    /// Reads entry `number` of `packages`: the package, unless it has problems.
    fn package(&mut self, number: usize, entry: &'a RawValue) -> Result<Option<Package>, Unreadable> {
        let entry_offset = self.reader.offset(entry);
        if Kind::of(entry) != Kind::Object {
            let found = Kind::of(entry).name();
            self.report(entry_offset, format!("entry #{number} of `packages` must be an object, found {found}"), None);
            return Ok(None);
        }
        let members = self.reader.members(entry)?;
        // Messages name the package even when its name comes last.
        let named = members.iter().filter(|member| {
            matches!(member.key.as_ref(), "pkg_name" | "artifact_name") && Kind::of(member.value) == Kind::String
        });
        let mut name = None;
        for member in named {
            let text = self.reader.text(member.value)?;
            if !text.is_empty() {
                name = Some(text);
                break;
            }
        }
        let label = Label { name: name.as_deref(), number };
        let problems_before = self.problems.len();
        let mut fields = Fields::default();
        for member in &members {
            self.field(label, member, &mut fields)?;
        }
        for (index, alias_of) in key::ALIAS_OF.iter().enumerate() {
            if let (Some(of), Some(key_offset)) = (*alias_of, fields.keys[index])
                && fields.keys[of].is_some()
            {
                let (of, older) = (PACKAGE_FIELDS[of].name, PACKAGE_FIELDS[index].name);
                let message = format!("{label}: both `{of}` and its older name `{older}` are set");
                self.report(key_offset, message, Some(format!("keep only `{of}`")));
            }
        }
        let Some(name) = label.name else {
            // A name written but empty or not a string is reported already.
            if fields.keys[key::PKG_NAME].is_none() && fields.keys[key::ARTIFACT_NAME].is_none() {
                let hint = "add `\"pkg_name\": \"<name>\"`".to_string();
                self.report(entry_offset, format!("{label} has no `pkg_name`"), Some(hint));
            }
            return Ok(None);
        };
        let name_offset = fields.texts[key::PKG_NAME].as_ref().or(fields.texts[key::ARTIFACT_NAME].as_ref());
        let name_offset = name_offset.map_or(entry_offset, |(_, offset)| *offset);
        if let Some(bad) = bad_name_char(name) {
            let hint = "use letters, digits, `_`, `-` and `.` only".to_string();
            self.report(name_offset, format!("{label}: the name contains `{bad}`"), Some(hint));
        }
        let folder = self.folder(label, name, &fields, entry_offset);
        if self.problems.len() > problems_before {
            return Ok(None);
        }
        let Some((dir, dir_offset, dir_written)) = folder else { return Ok(None) };
        let [depends_on, dependencies_type, exclude_keywords] =
            [key::DEPENDS_ON, key::DEPENDENCIES_TYPE, key::EXCLUDE_KEYWORDS].map(|key| take(&mut fields.lists[key]));
        Ok(Some(Package {
            name: name.to_string(),
            dir,
            pkg_type: fields.take_text(key::PKG_TYPE).or(fields.take_text(key::ARTIFACT_TYPE)),
            test_type: fields.take_text(key::TEST_TYPE).filter(|test| test != NO_TEST),
            kind: fields
                .take_text(key::TYPE)
                .map(|kind| if kind == "service" { PackageKind::Service } else { PackageKind::Library }),
            build_info: fields.build_info,
            depends_on,
            dependencies_type,
            exclude_keywords,
            positions: Positions { entry: entry_offset, dir: dir_offset, dir_written, depends_on: fields.depends_at },
        }))
    }

    /// Reads one member of a package entry into `fields`, reporting an
    /// unknown or repeated key and a value of the wrong shape.
    fn field(&mut self, label: Label<'_>, member: &Member<'a>, fields: &mut Fields<'a>) -> Result<(), Unreadable> {
        let key_offset = self.reader.offset(member.key_written);
        let Some(index) = key::of(&member.key) else {
            let hint = match closest(&member.key, PACKAGE_FIELDS.iter().map(|f| f.name)) {
                Some(k) => format!("did you mean `{k}`?"),
                None => {
                    let known: Vec<&str> =
                        PACKAGE_FIELDS.iter().filter(|f| f.alias_of.is_none()).map(|f| f.name).collect();
                    format!("known keys: {}", known.join(", "))
                }
            };
            self.report(key_offset, format!("{label}: unknown key `{}`", member.key), Some(hint));
            return Ok(());
        };
        if fields.keys[index].replace(key_offset).is_some() {
            self.report(key_offset, format!("{label}: key `{}` is written twice", member.key), None);
            return Ok(());
        }
        let (key, shape, value) = (PACKAGE_FIELDS[index].name, PACKAGE_FIELDS[index].shape, member.value);
        let offset = self.reader.offset(value);
        let found = Kind::of(value);
        let wrong = |expected: &str| format!("{label}: `{key}` must be {expected}, found {}", found.name());
        match (shape, found) {
            (Shape::Text | Shape::Folder, Kind::String) => {
                let text = self.reader.text(value)?;
                if text.is_empty() {
                    self.report(offset, format!("{label}: `{key}` must not be empty"), None);
                }
                fields.texts[index] = Some((text, offset));
            }
            (Shape::Kind, Kind::String) => {
                let text = self.reader.text(value)?;
                if text != "service" && text != "library" {
                    self.report(offset, format!("{label}: `type` must be `service` or `library`"), None);
                }
                fields.texts[index] = Some((text, offset));
            }
            (Shape::Kind, _) => self.report(offset, format!("{label}: `type` must be `service` or `library`"), None),
            (Shape::Provider(role), Kind::String) => {
                let text = self.reader.text(value)?;
                self.check_provider(&label, key, role, &text, offset);
                fields.texts[index] = Some((text, offset));
            }
            (Shape::Providers(role), Kind::String) => {
                let text = self.reader.text(value)?;
                self.check_provider(&label, key, role, &text, offset);
                fields.lists[index].push(text.into_owned());
            }
            (Shape::Names | Shape::Keywords | Shape::Providers(_), Kind::Array) => {
                for item in self.reader.items(value)? {
                    let offset = self.reader.offset(item);
                    if Kind::of(item) != Kind::String {
                        let found = Kind::of(item).name();
                        let message = format!("{label}: items of `{key}` must be strings, found {found}");
                        self.report(offset, message, None);
                        continue;
                    }
                    let text = self.reader.text(item)?;
                    match shape {
                        Shape::Providers(role) => self.check_provider(&label, key, role, &text, offset),
                        _ if text.is_empty() => {
                            self.report(offset, format!("{label}: `{key}` has an empty item"), None);
                        }
                        _ => {}
                    }
                    fields.lists[index].push(text.into_owned());
                    if index == key::DEPENDS_ON {
                        fields.depends_at.push(offset);
                    }
                }
            }
            (Shape::Text | Shape::Folder | Shape::Provider(_), _) => self.report(offset, wrong("a string"), None),
            (Shape::Names | Shape::Keywords, _) => {
                let hint = format!("write `\"{key}\": [\"…\"]`");
                self.report(offset, wrong("an array of strings"), Some(hint));
            }
            (Shape::Providers(_), _) => self.report(offset, wrong("a string or an array of strings"), None),
            (Shape::BuildInfo, Kind::Object) => fields.build_info = self.build_info(label, value)?,
            (Shape::BuildInfo, _) => self.report(offset, wrong("an object"), None),
        }
        Ok(())
    }

    /// Reads a `build_info` object: the keys Loktar reads, checked, and
    /// every other key as a plugin setting.
    fn build_info(&mut self, label: Label<'_>, object: &'a RawValue) -> Result<BuildInfo, Unreadable> {
        let inner = InBuildInfo(label);
        let mut info = BuildInfo::default();
        let members = self.reader.members(object)?;
        for (index, member) in members.iter().enumerate() {
            let key = member.key.as_ref();
            if members[..index].iter().any(|earlier| earlier.key == key) {
                let offset = self.reader.offset(member.key_written);
                self.report(offset, format!("{inner}: key `{key}` is written twice"), None);
                continue;
            }
            if key == "queue" {
                let offset = self.reader.offset(member.value);
                match Kind::of(member.value) {
                    Kind::String => {
                        let text = self.reader.text(member.value)?;
                        if loktar_settings::is_queue_name(&text) {
                            info.queue = Some(text.into_owned());
                        } else {
                            let message = format!("{inner}: `{text}` is not a queue name");
                            self.report(offset, message, Some("use letters, digits, `-` and `_`: `docker`".into()));
                        }
                    }
                    other => {
                        self.report(offset, format!("{inner}: `queue` must be a string, found {}", other.name()), None)
                    }
                }
                continue;
            }
            let (setting, kind) = match key {
                "build_type" => (&mut info.build_type, ProviderKind::BuildType),
                "registry_type" => (&mut info.registry_type, ProviderKind::Registry),
                "storage_type" => (&mut info.storage_type, ProviderKind::Storage),
                _ => {
                    info.settings.insert(key.to_string(), self.reader.parse(member.value)?);
                    continue;
                }
            };
            let offset = self.reader.offset(member.value);
            match Kind::of(member.value) {
                Kind::String => {
                    let text = self.reader.text(member.value)?;
                    self.check_provider(&inner, key, kind, &text, offset);
                    *setting = Some(text.into_owned());
                }
                other => {
                    let message = format!("{inner}: `{key}` must be a string, found {}", other.name());
                    self.report(offset, message, None);
                }
            }
        }
        Ok(info)
    }

    /// Works out the package folder (see [`resolve_folder`]), reporting why it cannot be used.
    fn folder(&mut self, label: Label<'_>, name: &str, fields: &Fields<'_>, entry_offset: usize) -> Option<Folder> {
        let written = |index: usize| fields.texts[index].as_ref().map(|(text, offset)| (text.as_ref(), *offset));
        match resolve_folder(name, written(key::PKG_DIR), written(key::ARTIFACT_DIR), entry_offset) {
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

    fn check_provider(
        &mut self,
        label: &dyn std::fmt::Display,
        key: &str,
        kind: ProviderKind,
        name: &str,
        offset: usize,
    ) {
        if kind.accepts(self.providers, name) {
            return;
        }
        let names = kind.names(self.providers);
        let what = if kind == ProviderKind::BuildType { "build type" } else { "plugin" };
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
        let mut names = PackageIndex::with_capacity_and_hasher(packages.len(), Default::default());
        let mut dirs = PackageIndex::with_capacity_and_hasher(packages.len(), Default::default());
        for (index, package) in packages.iter().enumerate() {
            // Of packages that share a name or a folder, the first keeps it.
            let first = *names.entry(package.name.clone()).or_insert(index);
            if first != index {
                let first_at = self.source.location(packages[first].positions.entry);
                let message = format!("package `{}` is defined twice", package.name);
                let hint = format!("the first definition is at {first_at}; rename or remove one");
                self.report(package.positions.entry, message, Some(hint));
                continue;
            }
            let first = *dirs.entry(package.dir.clone()).or_insert(index);
            if first != index {
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
                let found = names.get(target).copied();
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

    /// Reads one entry after packages `base` and `core`: its package, if
    /// valid, and the messages about it.
    fn read_entry(entry: &str) -> (Option<Package>, Vec<String>) {
        let text = format!(r#"{{"packages": [{{"pkg_name": "base"}}, {{"pkg_name": "core"}}, {entry}]}}"#);
        let (mut packages, _, problems) = parse(&SourceFile::new("loktar.json", text), &Providers::builtin());
        (packages.drain(..).nth(2), problems.into_iter().map(|problem| problem.message).collect())
    }

    #[test]
    fn an_entry_is_a_package_exactly_when_it_has_nothing_to_report() {
        let valid = [
            r#"{"pkg_name": "a"}"#,
            r#"{ "pkg_name" : "a" , "pkg_dir" : "x/./y/" }"#,
            r#"{"pkg_name": "api", "pkg_dir": "rest/api", "pkg_type": "docker", "test_type": "make",
                "type": "service", "depends_on": ["core", "base"], "dependencies_type": "dockerfile",
                "exclude_dependencies_only_on_keywords": ["CLN", "DOC"],
                "build_info": {"build_type": "local", "registry_type": "quay", "storage_type": "s3", "n": [1]}}"#,
            r#"{"artifact_name": "lib", "artifact_dir": "libs", "artifact_type": "whl", "build_info": {}}"#,
            r#"{"pkg_name": "svc", "test_type": "no-test", "depends_on": [], "type": "library",
                "dependencies_type": ["python_requirements", "docker_compose"]}"#,
            r#"{"pkg_name": "é-ü_1.0"}"#,
        ];
        for entry in valid {
            let (package, problems) = read_entry(entry);
            assert_eq!(problems, Vec::<String>::new(), "{entry}");
            assert!(package.is_some(), "{entry}");
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
            let (package, problems) = read_entry(entry);
            assert!(package.is_none() && !problems.is_empty(), "{entry}: {problems:?}");
        }
        // Escapes are decoded.
        let (package, problems) =
            read_entry(r#"{"pkg_name": "a\u0062", "pkg_dir": "x\/y", "depends_on": ["\u0063ore"]}"#);
        assert_eq!(problems, Vec::<String>::new());
        let package = package.expect("valid");
        assert_eq!((package.name.as_str(), package.dir.as_str()), ("ab", "x/y"));
        assert_eq!(package.depends_on, ["core"]);
    }

    #[test]
    fn json_that_serde_json_skipped_unchecked_is_reported_when_there_are_problems() {
        let lone_surrogate = read_entry(r#"{"pkg_name": "\udc00"}"#).1;
        assert_eq!(lone_surrogate, ["`loktar.json` is not valid JSON: invalid unicode escape"]);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let nested = read_entry(&deep).1;
        assert_eq!(nested, ["`loktar.json` is not valid JSON: values are nested more than 128 levels deep"]);
        // A number serde_json cannot hold, where a value is read whole.
        let too_large = read_entry(r#"{"pkg_name": "a", "build_info": {"n": 1e999}}"#).1;
        assert_eq!(too_large, ["`loktar.json` is not valid JSON: number out of range"]);
    }

    #[test]
    fn a_queue_is_read_and_a_name_nats_cannot_carry_is_refused() {
        let (package, problems) = read_entry(r#"{"pkg_name": "api", "build_info": {"queue": "gpu-1"}}"#);
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(package.and_then(|p| p.build_info.queue).as_deref(), Some("gpu-1"));
        let (_, problems) = read_entry(r#"{"pkg_name": "api", "build_info": {"queue": "gpu.*"}}"#);
        assert_eq!(problems, ["package `api`: `build_info`: `gpu.*` is not a queue name"]);
        let (_, problems) = read_entry(r#"{"pkg_name": "api", "build_info": {"queue": 1}}"#);
        assert_eq!(problems, ["package `api`: `build_info`: `queue` must be a string, found a number"]);
    }

    #[test]
    fn an_entry_with_problems_does_not_hide_the_ones_after_it() {
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
