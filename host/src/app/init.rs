//! `loktar init`: a proposed `loktar.json` for a repository that has none,
//! from the files git knows of (tracked, or untracked and not ignored —
//! so `.gitignore`d folders drop out). A folder is a package when it holds
//! a `Dockerfile` (`docker`), a `pyproject.toml` or `setup.py` (`whl`), a
//! `pom.xml` or `src/main/java` (`jar`), or a `<tree>/DEBIAN/control`
//! (`deb`); the first of those kinds wins where a folder holds several.
//! Vendored folders (`vendor`, `node_modules`, `third_party`, virtual
//! environments) are skipped. A `Makefile` with `ci` and `clean` rules makes
//! `test_type: "make"`; discovery plugins are named where they apply
//! (`dockerfile`, `python_requirements`, `docker_compose`), so that
//! dependencies between the packages are found at every plan.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::context::{Options, host_settings, plugin_session, workspace};
use crate::blocking::wait_for;
use crate::config::SourceFile;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::discover;

/// Folder names whose content is someone else's code.
const VENDORED: [&str; 7] = ["vendor", "node_modules", "third_party", ".venv", "venv", "site-packages", ".loktar"];

/// A proposed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposed {
    /// Its name: the folder's (its path, `_`-joined, where two folders share a name).
    pub name: String,
    /// Its folder, relative to the root (`.` for the root).
    pub dir: String,
    /// `docker`, `whl`, `jar` or `deb`.
    pub kind: &'static str,
    /// Whether its `Makefile` has `ci` and `clean` rules.
    pub make: bool,
    /// The discovery plugins that apply to its files.
    pub discovery: Vec<&'static str>,
    /// A `deb` package's install tree, when not the default `root`.
    pub install_tree: Option<String>,
    /// Why: the files that made it a package, and what else was seen.
    pub why: Vec<String>,
}

/// What `loktar init` proposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposal {
    /// The packages, by folder.
    pub packages: Vec<Proposed>,
    /// What a person should look at.
    pub notes: Vec<String>,
}

impl Proposal {
    /// The proposal as `loktar.json`.
    pub fn manifest(&self) -> Value {
        let packages: Vec<Value> = self
            .packages
            .iter()
            .map(|package| {
                let mut entry = json!({ "pkg_name": package.name, "pkg_type": package.kind });
                if package.dir != package.name {
                    entry["pkg_dir"] = json!(package.dir);
                }
                if package.make {
                    entry["test_type"] = json!("make");
                }
                match package.kind {
                    "docker" => entry["type"] = json!("service"),
                    "whl" | "jar" => entry["type"] = json!("library"),
                    _ => {}
                }
                if !package.discovery.is_empty() {
                    entry["dependencies_type"] = json!(package.discovery);
                }
                if let Some(tree) = &package.install_tree {
                    entry["build_info"] = json!({ "install_tree": tree });
                }
                entry
            })
            .collect();
        json!({ "packages": packages })
    }
}

/// A dependency between proposed packages that a discovery plugin finds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundDependency {
    /// The package that depends.
    pub package: String,
    /// The package it depends on.
    pub depends_on: String,
    /// The discovery plugin that found it.
    pub plugin: String,
    /// The file it was found in, relative to the package's folder.
    pub source: String,
}

/// The dependencies between the proposed packages that their discovery
/// plugins find today, with the host configuration `options` name: what
/// each plan will find again. A plugin that fails on a package is a problem
/// beside what the others found.
pub fn dependencies(
    options: &Options,
    root: &Path,
    manifest: &Value,
) -> Result<(Vec<FoundDependency>, Vec<Diagnostic>), Diagnostics> {
    let mut settings = host_settings(root, options)?;
    let text = serde_json::to_string_pretty(manifest).unwrap_or_default();
    let (workspace, _) = workspace(root, &mut settings, SourceFile::new("loktar.json (proposed)", text))?;
    if !discover::needed(&workspace) {
        return Ok((Vec::new(), Vec::new()));
    }
    let session = plugin_session(settings)?;
    let discovery = wait_for(discover::discover(&workspace, &session))?;
    let name = |index: usize| workspace.packages[index].name.clone();
    let found = discovery
        .found
        .into_iter()
        .map(|found| FoundDependency {
            package: name(found.edge.from),
            depends_on: name(found.edge.to),
            plugin: found.plugin,
            source: found.source,
        })
        .collect();
    Ok((found, discovery.problems))
}

/// Proposes the packages of the repository at `root`.
pub fn propose(root: &Path) -> Result<Proposal, Diagnostic> {
    let output = std::process::Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard", "-z"])
        .current_dir(root)
        .output()
        .map_err(|e| Diagnostic::new(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(Diagnostic::new(format!("git cannot list the files of `{}`", root.display()))
            .hint("run `loktar init` inside a git repository"));
    }
    let files: Vec<String> = output
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .filter(|name| !name.split('/').any(|part| VENDORED.contains(&part)))
        .collect();
    Ok(propose_from(&files, |path| std::fs::read_to_string(root.join(path)).ok()))
}

/// What makes a folder a package: its kind, the file that says so, and a deb's install tree.
type Sign = (&'static str, String, Option<String>);

/// [`propose`] over `files` (paths relative to the root), reading a file's text with `read`.
pub fn propose_from(files: &[String], read: impl Fn(&str) -> Option<String>) -> Proposal {
    let mut found: BTreeMap<String, Vec<Sign>> = BTreeMap::new();
    for file in files {
        let (dir, name) = split(file);
        let mut mark = |dir: &str, kind: &'static str, tree: Option<String>| {
            let kinds = found.entry(dir.to_string()).or_default();
            // One reason of a kind per folder: the first file that says so.
            if !kinds.iter().any(|(seen, _, _)| *seen == kind) {
                kinds.push((kind, file.clone(), tree));
            }
        };
        match name {
            "Dockerfile" => mark(dir, "docker", None),
            "pyproject.toml" | "setup.py" => mark(dir, "whl", None),
            "pom.xml" => mark(dir, "jar", None),
            "control" if dir.ends_with("DEBIAN") => {
                let (tree_parent, _) = split(dir);
                let (package, tree) = split(tree_parent);
                let tree = (tree != "root").then(|| tree.to_string());
                mark(package, "deb", tree);
            }
            _ => {}
        }
        if let Some(at) = file.find("src/main/java/") {
            let dir = file[..at].trim_end_matches('/');
            let dir = if dir.is_empty() { "." } else { dir };
            mark(dir, "jar", None);
        }
    }
    // Looked up for each package: a set, not a scan of every file.
    let listed: std::collections::HashSet<&str> = files.iter().map(String::as_str).collect();
    let mut proposal = Proposal::default();
    for (dir, mut kinds) in found {
        kinds.sort_by_key(|(kind, _, _)| ["docker", "whl", "jar", "deb"].iter().position(|k| k == kind));
        let (kind, file, install_tree) = kinds[0].clone();
        let mut why = vec![format!("`{file}`")];
        for (other, other_file, _) in &kinds[1..] {
            if *other != kind {
                why.push(format!("also `{other_file}` ({other}, not used)"));
            }
        }
        let in_dir = |name: &str| if dir == "." { name.to_string() } else { format!("{dir}/{name}") };
        let has = |name: &str| listed.contains(in_dir(name).as_str());
        let make = match has("Makefile").then(|| read(&in_dir("Makefile"))).flatten() {
            Some(text) => {
                let rules = |rule: &str| text.lines().any(|line| line.split(':').next() == Some(rule));
                match (rules("ci"), rules("clean")) {
                    (true, true) => true,
                    (ci, _) => {
                        let missing = if ci { "clean" } else { "ci" };
                        proposal.notes.push(format!(
                            "`{}` has no `{missing}` rule: no tests until it has `ci` and `clean`",
                            in_dir("Makefile")
                        ));
                        false
                    }
                }
            }
            None => false,
        };
        if make {
            why.push("`make ci`".to_string());
        }
        let mut discovery = Vec::new();
        if kind == "docker" {
            discovery.push("dockerfile");
        }
        if has("requirements.txt") {
            discovery.push("python_requirements");
        }
        if ["docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"].iter().any(|name| has(name)) {
            discovery.push("docker_compose");
        }
        let name = if dir == "." { "root".to_string() } else { split(&dir).1.to_string() };
        proposal.packages.push(Proposed { name, dir, kind, make, discovery, install_tree, why });
    }
    // Two folders of one name: each is named by its path.
    let names: Vec<String> = proposal.packages.iter().map(|p| p.name.clone()).collect();
    for package in &mut proposal.packages {
        if names.iter().filter(|name| **name == package.name).count() > 1 {
            package.name = package.dir.replace('/', "_");
        }
    }
    for package in &proposal.packages {
        if !package.make {
            proposal.notes.push(format!("`{}` has no `make ci`: its tests will not run", package.name));
        }
    }
    proposal
}

/// `(folder, name)` of a path; the folder of a top-level name is `.`.
fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => (".", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_string()).collect()
    }

    #[test]
    fn each_kind_is_found_in_its_folder_with_its_reasons() {
        let files = files(&[
            "api/Dockerfile",
            "api/requirements.txt",
            "api/Makefile",
            "lib/setup.py",
            "lib/Dockerfile",
            "tools/cli/pyproject.toml",
            "java/svc/src/main/java/a/App.java",
            "pkg/debian-tree/DEBIAN/control",
            "docs/README.md",
        ]);
        let proposal = propose_from(&files, |path| (path == "api/Makefile").then(|| "ci:\n\t@true\nclean:\n".into()));
        let shown: Vec<(&str, &str, &str, bool)> =
            proposal.packages.iter().map(|p| (p.name.as_str(), p.dir.as_str(), p.kind, p.make)).collect();
        assert_eq!(
            shown,
            [
                ("api", "api", "docker", true),
                ("svc", "java/svc", "jar", false),
                ("lib", "lib", "docker", false),
                ("pkg", "pkg", "deb", false),
                ("cli", "tools/cli", "whl", false),
            ]
        );
        assert_eq!(proposal.packages[0].discovery, ["dockerfile", "python_requirements"]);
        assert!(proposal.packages[2].why.iter().any(|why| why.contains("lib/setup.py")), "{proposal:?}");
        assert_eq!(proposal.packages[3].install_tree.as_deref(), Some("debian-tree"));
        let manifest = proposal.manifest();
        assert_eq!(manifest["packages"][1]["pkg_dir"], "java/svc");
        assert_eq!(manifest["packages"][3]["build_info"]["install_tree"], "debian-tree");
    }

    #[test]
    fn a_makefile_without_clean_is_noted_and_folders_of_one_name_are_told_apart() {
        let files = files(&["a/web/Dockerfile", "a/web/Makefile", "b/web/Dockerfile"]);
        let proposal = propose_from(&files, |_| Some("ci:\n\t@true\n".into()));
        let names: Vec<&str> = proposal.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a_web", "b_web"]);
        assert!(
            proposal
                .notes
                .iter()
                .any(|note| note == "`a/web/Makefile` has no `clean` rule: no tests until it has `ci` and `clean`"),
            "{:?}",
            proposal.notes
        );
    }
}
