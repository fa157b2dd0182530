//! `loktar plan` as text and as JSON.
//!
//! The JSON shape is a contract for tooling (documented in
//! `docs/plan-json.md`): fields are only ever added, and `schema_version`
//! changes if one is removed or changes meaning.

use serde::Serialize;

use super::pad;
use crate::affected::Detection;
use crate::config::{PackageKind, Workspace, show_dir};
use crate::graph::plan::{ManifestChange, Plan, Step};
use crate::scm::{BaseOrigin, ChangeSet};

/// Version of the JSON shape.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `loktar plan` reports.
#[derive(Debug)]
pub struct Report<'a> {
    /// The workspace.
    pub workspace: &'a Workspace,
    /// What git says changed.
    pub changes: &'a ChangeSet,
    /// Which packages that touches.
    pub detection: &'a Detection,
    /// The affected packages in order.
    pub plan: &'a Plan,
}

/// How many changed files to name per package in text output.
const FILES_SHOWN: usize = 3;

impl Report<'_> {
    /// The one-line description of the range.
    pub fn range_line(&self) -> String {
        let short = |sha: &str| sha.chars().take(10).collect::<String>();
        let head = self.changes.head.as_deref().map_or("the work tree".to_string(), |h| format!("`{}`", short(h)));
        let base = self.changes.base.as_deref().map(|b| format!("`{}`", short(b)));
        let origin = match &self.changes.origin {
            BaseOrigin::Given => "given".to_string(),
            BaseOrigin::MergeBase { branch } => format!("merge-base with `{branch}`"),
            BaseOrigin::Parent { branch } => format!("parent commit, on `{branch}`"),
            BaseOrigin::RootCommit => "first commit".to_string(),
            BaseOrigin::Worktree => String::new(),
        };
        let files = plural(self.changes.files.len(), "changed file");
        match (base, &self.changes.origin) {
            (Some(base), BaseOrigin::Worktree) => {
                format!("range: uncommitted changes against {base} (HEAD), {files}")
            }
            (None, BaseOrigin::Worktree) => {
                format!("range: uncommitted changes, no commit yet, {files}")
            }
            (base, _) => {
                let range = base.map_or(head.clone(), |base| format!("{base}..{head}"));
                let commits = plural(self.changes.commits.len(), "commit");
                format!("range: {range} ({origin}), {files} in {commits}")
            }
        }
    }

    /// Human-readable plan.
    pub fn text(&self) -> String {
        let mut out = self.range_line();
        out.push('\n');
        if let Some(commit) = &self.detection.nobuild {
            let sha: String = commit.sha.chars().take(10).collect();
            out.push_str(&format!("nothing to do: commit `{sha}` says NOBUILD ({})\n", commit.subject()));
            return out;
        }
        let total = self.workspace.packages.len();
        out.push_str(&format!("{} of {} affected\n", self.plan.steps.len(), plural(total, "package")));
        let width = self.plan.steps.iter().map(|s| self.name(s).chars().count()).max().unwrap_or(0);
        for level in self.plan.levels() {
            out.push_str(&format!("\nlevel {}\n", level[0].level));
            for step in level {
                out.push_str(&format!("  {}  {}\n", pad(self.name(step), width), self.why(step)));
            }
        }
        for (name, files) in &self.detection.removed {
            out.push_str(&format!("\nremoved from loktar.json: `{name}` ({})\n", plural(files.len(), "changed file")));
        }
        if !self.detection.unowned.is_empty() {
            out.push_str(&format!(
                "\n{} outside every package: {}\n",
                plural(self.detection.unowned.len(), "changed file"),
                list_files(&self.detection.unowned)
            ));
        }
        out
    }

    fn name(&self, step: &Step) -> &str {
        &self.workspace.packages[step.package].name
    }

    fn why(&self, step: &Step) -> String {
        let mut parts = Vec::new();
        if let Some(seed) = &step.seed {
            if !seed.files.is_empty() {
                parts.push(format!("changed: {}", list_files(&seed.files)));
            }
            match seed.manifest {
                Some(ManifestChange::Added) => parts.push("added to loktar.json".to_string()),
                Some(ManifestChange::Modified) => parts.push("entry in loktar.json changed".to_string()),
                Some(ManifestChange::Uncomparable) => {
                    parts.push("loktar.json changed and the base version could not be read".to_string())
                }
                None => {}
            }
            if let Some(keywords) = &seed.held_back {
                parts.push(format!("dependents not rebuilt: only {} commits", keywords.join("/")));
            }
        }
        if !step.because_of.is_empty() {
            let names: Vec<String> =
                step.because_of.iter().map(|&d| format!("`{}`", self.workspace.packages[d].name)).collect();
            parts.push(format!("depends on {}", names.join(", ")));
        }
        parts.join("; ")
    }

    /// The plan as JSON.
    pub fn json(&self) -> String {
        let packages = self
            .plan
            .steps
            .iter()
            .map(|step| {
                let package = &self.workspace.packages[step.package];
                let seed = step.seed.as_ref();
                JsonStep {
                    name: &package.name,
                    dir: show_dir(&package.dir),
                    pkg_type: package.pkg_type.as_deref(),
                    kind: package.kind,
                    level: step.level,
                    changed: seed.is_some(),
                    files: seed.map_or(&[][..], |s| &s.files[..]),
                    manifest: seed.and_then(|s| s.manifest),
                    held_back_by: seed.and_then(|s| s.held_back.as_deref()),
                    because_of: Names { workspace: self.workspace, packages: step.because_of.iter().copied() },
                }
            })
            .collect();
        let step_package: fn(&Step) -> usize = |step| step.package;
        let levels: Vec<LevelNames<'_>> = self
            .plan
            .levels()
            .into_iter()
            .map(|level| Names { workspace: self.workspace, packages: level.iter().map(step_package) })
            .collect();
        let document = JsonPlan {
            schema_version: SCHEMA_VERSION,
            base: self.changes.base.as_deref(),
            head: self.changes.head.as_deref(),
            base_origin: &self.changes.origin,
            changed_files: self.changes.files.len(),
            commits: self.changes.commits.len(),
            nobuild: self.detection.nobuild.as_ref().map(|c| JsonCommit { sha: &c.sha, subject: c.subject() }),
            packages,
            levels,
            unowned_files: self.detection.unowned.iter().map(String::as_str).collect(),
            removed_packages: self
                .detection
                .removed
                .iter()
                .map(|(name, files)| JsonRemoved { name, files: files.iter().map(String::as_str).collect() })
                .collect(),
        };
        to_json(&document)
    }
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema_version: u32,
    base: Option<&'a str>,
    head: Option<&'a str>,
    base_origin: &'a BaseOrigin,
    changed_files: usize,
    commits: usize,
    nobuild: Option<JsonCommit<'a>>,
    packages: Vec<JsonStep<'a>>,
    levels: Vec<LevelNames<'a>>,
    unowned_files: Vec<&'a str>,
    removed_packages: Vec<JsonRemoved<'a>>,
}

#[derive(Serialize)]
struct JsonCommit<'a> {
    sha: &'a str,
    subject: &'a str,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    name: &'a str,
    dir: &'a str,
    pkg_type: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<PackageKind>,
    level: usize,
    changed: bool,
    files: &'a [String],
    manifest: Option<ManifestChange>,
    held_back_by: Option<&'a [String]>,
    because_of: StepNames<'a>,
}

/// Package indices serialised as a list of names, without collecting them first.
struct Names<'a, I> {
    workspace: &'a Workspace,
    packages: I,
}

impl<I: Iterator<Item = usize> + Clone> Serialize for Names<'_, I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let packages = &self.workspace.packages;
        serializer.collect_seq(self.packages.clone().map(|i| packages[i].name.as_str()))
    }
}

type StepNames<'a> = Names<'a, std::iter::Copied<std::slice::Iter<'a, usize>>>;
type LevelNames<'a> = Names<'a, std::iter::Map<std::slice::Iter<'a, Step>, fn(&Step) -> usize>>;

#[derive(Serialize)]
struct JsonRemoved<'a> {
    name: &'a str,
    files: Vec<&'a str>,
}

/// Serialises a document compactly (as `cargo metadata` does; pipe it to
/// `jq` to read it), with a trailing newline.
pub fn to_json(document: &impl Serialize) -> String {
    let mut bytes = Vec::with_capacity(64 * 1024);
    if let Err(error) = serde_json::to_writer(&mut bytes, document) {
        return format!("{{\"error\": \"{error}\"}}\n");
    }
    bytes.push(b'\n');
    // serde_json writes only valid UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn list_files(files: &[String]) -> String {
    let shown: Vec<String> = files.iter().take(FILES_SHOWN).map(|f| format!("`{f}`")).collect();
    match files.len().saturating_sub(FILES_SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// `1 package`, `2 packages`, `2 dependencies`.
pub fn plural(count: usize, noun: &str) -> String {
    match (count, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{count} {stem}ies"),
        (_, None) => format!("{count} {noun}s"),
    }
}
