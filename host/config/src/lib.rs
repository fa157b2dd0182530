//! `loktar.json`: the packages of a monorepo, parsed and validated.
//!
//! Loading never panics and never guesses: every problem in the file becomes
//! a [`Diagnostic`] with the file, line and column, the package and the fix,
//! and all of them are reported together.

mod fields;
mod folders;
pub mod owners;
pub mod plugins;
mod providers;
mod raw;
mod syntax;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustc_hash::FxHashMap as HashMap;

pub use fields::schema;
pub use providers::{NO_TEST, Providers};

use loktar_support::diagnostic::{Diagnostic, Diagnostics, Location};
use owners::Owners;

/// Package indices by one of the packages' strings, the name or the folder.
pub type PackageIndex = HashMap<String, usize>;

/// Indexes `packages` by `key`; of packages that share a key, the first.
pub fn index_by(packages: &[Package], key: impl Fn(&Package) -> &str) -> PackageIndex {
    let mut index = PackageIndex::with_capacity_and_hasher(packages.len(), Default::default());
    for (position, package) in packages.iter().enumerate() {
        index.entry(key(package).to_string()).or_insert(position);
    }
    index
}

/// In [`Workspace`]'s resolved dependencies, a `depends_on` item that names no package.
const NOT_A_PACKAGE: u32 = u32::MAX;

/// The file Loktar reads at the repository root.
pub const MANIFEST: &str = "loktar.json";

/// Loktar's own folder at the repository root: the run store, run logs and
/// artifacts; never part of the repository, hidden from the programs it runs.
pub const LOKTAR_DIR: &str = ".loktar";

/// Whether a package is deployed on its own or used by other packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// A deployable service.
    Service,
    /// A library other packages use.
    Library,
}

/// Build, publish and store settings of a package.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildInfo {
    /// `local` or `url`; `None` means local.
    pub build_type: Option<String>,
    /// Registry provider that publishes the artifact.
    pub registry_type: Option<String>,
    /// Storage provider that stores the artifact.
    pub storage_type: Option<String>,
    /// The executors' queue its jobs go to, over the one its `pkg_type` needs.
    pub queue: Option<String>,
    /// Every other key: settings for the plugins.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// One package of the monorepo.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// Unique name.
    pub name: String,
    /// Folder relative to the repository root, `/`-separated, `""` for the root.
    pub dir: String,
    /// Builder provider (`pkg_type`).
    pub pkg_type: Option<String>,
    /// Tester provider; `None` when absent or `no-test`.
    pub test_type: Option<String>,
    /// `type`: service or library.
    pub kind: Option<PackageKind>,
    /// `build_info`.
    pub build_info: BuildInfo,
    /// Packages this one depends on, as written.
    pub depends_on: Vec<String>,
    /// Discovery providers that find more dependencies.
    pub dependencies_type: Vec<String>,
    /// Commit-message prefixes that do not propagate to dependents.
    pub exclude_keywords: Vec<String>,
    /// Where the entry, its name, its folder and each `depends_on` item are written.
    pub positions: Positions,
}

/// Byte offsets of the parts of a package entry in `loktar.json`, turned into
/// lines and columns by [`SourceFile::location`] when an error needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Positions {
    /// The entry's opening brace.
    pub entry: usize,
    /// The `pkg_dir`/`artifact_dir` value, or the entry when the folder is implied.
    pub dir: usize,
    /// Whether the folder was written (`pkg_dir` or `artifact_dir`) or implied by the name.
    pub dir_written: bool,
    /// Each `depends_on` item.
    pub depends_on: Vec<usize>,
}

/// The text of a `loktar.json` and the name to show for it in messages.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The file as the user should see it (relative to the current folder when inside it).
    pub shown_as: String,
    /// The whole text.
    pub text: String,
    lines: OnceLock<LineIndex>,
}

impl SourceFile {
    /// Wraps a text.
    pub fn new(shown_as: &str, text: String) -> Self {
        SourceFile { shown_as: shown_as.to_string(), text, lines: OnceLock::new() }
    }

    /// The line and column of a byte offset; the line index is built on first use.
    pub fn location(&self, offset: usize) -> Location {
        let lines = self.lines.get_or_init(|| LineIndex::new(&self.text));
        let (line, column) = lines.position(&self.text, offset);
        Location { file: self.shown_as.clone(), line, column }
    }
}

/// Converts byte offsets into 1-based line and column numbers.
#[derive(Debug, Clone)]
struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes the line starts of `source`.
    fn new(source: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', source.as_bytes()).map(|i| i + 1));
        LineIndex { line_starts }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    fn position(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(source.len());
        let line = self.line_starts.partition_point(|&start| start <= offset).saturating_sub(1);
        let start = self.line_starts[line];
        let column = source.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line + 1, column)
    }
}

/// A repository's validated `loktar.json`.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The repository root (the folder holding `loktar.json`).
    pub root: PathBuf,
    /// `loktar.json`, kept for error positions and to compare entries with another revision.
    pub manifest: SourceFile,
    /// The packages in file order.
    pub packages: Vec<Package>,
    /// Package indices by name.
    by_name: PackageIndex,
    /// Package indices by folder.
    by_dir: PackageIndex,
    /// The package each `depends_on` item names (or [`NOT_A_PACKAGE`]),
    /// package by package in file order: see [`Workspace::declared_dependencies`].
    dependencies: Vec<u32>,
}

impl Workspace {
    /// Reads and validates `loktar.json` in `root`, including that every
    /// package folder exists. `shown_as` is how the file is named in errors.
    pub fn load(root: &Path, shown_as: &str, providers: &Providers) -> Result<Workspace, Diagnostics> {
        let workspace = Workspace::read(root, shown_as, providers)?;
        workspace.check_folders()?;
        Ok(workspace)
    }

    /// Reads and validates `loktar.json` in `root` like [`Workspace::load`],
    /// except that the package folders are left for [`Workspace::check_folders`]
    /// — unless the file has problems of its own: any with the folders are
    /// then reported with them.
    pub fn read(root: &Path, shown_as: &str, providers: &Providers) -> Result<Workspace, Diagnostics> {
        Workspace::from_source(root, Workspace::read_source(root, shown_as)?, providers)
    }

    /// The text of `loktar.json` in `root`, unchecked.
    pub fn read_source(root: &Path, shown_as: &str) -> Result<SourceFile, Diagnostics> {
        let path = root.join(MANIFEST);
        let source = match std::fs::read_to_string(&path) {
            Ok(source) => source,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Diagnostic::new(format!("no `{MANIFEST}` in the repository root `{}`", root.display()))
                    .hint(format!(
                        "create `{MANIFEST}` listing the packages (`loktar schema` prints its format), or pass `--repo`"
                    ))
                    .into());
            }
            Err(error) => {
                return Err(Diagnostic::new(format!("cannot read `{}`: {error}", path.display())).into());
            }
        };
        Ok(SourceFile::new(shown_as, source))
    }

    /// Validates the text of `loktar.json`, like [`Workspace::read`].
    pub fn from_source(root: &Path, manifest: SourceFile, providers: &Providers) -> Result<Workspace, Diagnostics> {
        let started = std::time::Instant::now();
        let (packages, indexed, mut problems) = validate::parse(&manifest, providers);
        tracing::debug!(elapsed = ?started.elapsed(), packages = packages.len(), "loktar.json parsed");
        if !problems.is_empty() {
            problems.extend(folders::check_folders(root, &manifest, &packages));
            return Err(in_file_order(problems));
        }
        // Validation has indexed the packages and resolved their dependencies already.
        let validate::Indexed { by_name, by_dir, dependencies } = indexed;
        Ok(Workspace { root: root.to_path_buf(), manifest, packages, by_name, by_dir, dependencies })
    }

    /// Checks that every package folder exists in the working tree.
    pub fn check_folders(&self) -> Result<(), Diagnostics> {
        let started = std::time::Instant::now();
        let problems = folders::check_folders(&self.root, &self.manifest, &self.packages);
        tracing::debug!(elapsed = ?started.elapsed(), "package folders checked");
        if problems.is_empty() { Ok(()) } else { Err(in_file_order(problems)) }
    }

    /// Builds a workspace from packages already validated.
    pub fn new(root: PathBuf, manifest: SourceFile, packages: Vec<Package>) -> Workspace {
        let by_name = index_by(&packages, |package| &package.name);
        let by_dir = index_by(&packages, |package| &package.dir);
        let dependencies = packages
            .iter()
            .flat_map(|package| package.depends_on.iter().map(|name| by_name.get(name).copied()))
            .map(|index| index.map_or(NOT_A_PACKAGE, |index| index as u32))
            .collect();
        Workspace { root, manifest, packages, by_name, by_dir, dependencies }
    }

    /// Each declared dependency that names a package (all of them, once
    /// validated), as (dependent, dependency) indices, in file order.
    pub fn declared_dependencies(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let dependents =
            self.packages.iter().enumerate().flat_map(|(index, package)| package.depends_on.iter().map(move |_| index));
        dependents
            .zip(&self.dependencies)
            .filter(|&(_, &to)| to != NOT_A_PACKAGE)
            .map(|(from, &to)| (from, to as usize))
    }

    /// The index of a package by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Which package owns a path, by the packages' folders.
    pub fn owners(&self) -> Owners<'_> {
        Owners::indexed(&self.by_dir)
    }

    /// A package by name.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.index_of(name).map(|i| &self.packages[i])
    }

    /// The package name closest to `name`, for "did you mean" hints.
    pub fn closest_name(&self, name: &str) -> Option<&str> {
        loktar_support::suggest::closest(name, self.packages.iter().map(|p| p.name.as_str()))
    }
}

/// Problems sorted by where they are in the file, so that the report reads top to bottom.
fn in_file_order(mut problems: Vec<Diagnostic>) -> Diagnostics {
    problems.sort_by_key(|p| p.location.as_ref().map(|l| (l.line, l.column)));
    Diagnostics(problems)
}

/// Parses `loktar.json` text without touching the filesystem.
pub fn parse(source: &SourceFile, providers: &Providers) -> Result<Vec<Package>, Diagnostics> {
    match validate::parse(source, providers) {
        (packages, _, problems) if problems.is_empty() => Ok(packages),
        (_, _, problems) => Err(Diagnostics(problems)),
    }
}

/// Each package entry of a `loktar.json` text by name, as a JSON value:
/// two entries that mean the same compare equal, whatever their formatting
/// and key order.
///
/// Used to find which entries changed between two revisions; returns `None`
/// when the text is not a readable package list.
pub fn canonical_entries(source: &str) -> Option<HashMap<String, serde_json::Value>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        packages: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    let manifest: Manifest = serde_json::from_str(source.strip_prefix('\u{feff}').unwrap_or(source)).ok()?;
    let named = |entry: serde_json::Map<String, serde_json::Value>| {
        let name = ["pkg_name", "artifact_name"].into_iter().find_map(|key| entry.get(key)?.as_str())?;
        Some((name.to_string(), serde_json::Value::Object(entry)))
    };
    manifest.packages.into_iter().map(named).collect()
}

/// Shows a repository-relative folder in messages (`.` for the root).
pub fn show_dir(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_keeps_the_first_package_of_a_key() {
        let text = r#"{"packages": [{"pkg_name": "api", "pkg_dir": "services/api"}, {"pkg_name": "web"}]}"#;
        let mut packages =
            parse(&SourceFile::new("loktar.json", text.to_string()), &Providers::builtin()).expect("valid");
        // Validation reports two packages in one folder; an index sees them first.
        packages[1].dir = "services/api".to_string();
        assert_eq!(index_by(&packages, |package| &package.dir).get("services/api"), Some(&0));
        assert_eq!(index_by(&packages, |package| &package.name).get("web"), Some(&1));
    }
}
