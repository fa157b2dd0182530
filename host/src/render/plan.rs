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
            BaseOrigin::PullRequest { number, branch } => format!("pull request #{number} into `{branch}`"),
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

    /// The plan as JSON, written directly: with thousands of packages this
    /// is the largest output Loktar makes, and every millisecond counts.
    pub fn json(&self) -> String {
        let mut out = JsonOut(String::with_capacity(256 + self.plan.steps.len() * 192));
        let origin = serde_json::to_string(&self.changes.origin).unwrap_or_else(|_| "null".into());
        out.raw(&format!("{{\"schema_version\":{SCHEMA_VERSION},\"base\":"));
        out.optional(self.changes.base.as_deref());
        out.raw(",\"head\":");
        out.optional(self.changes.head.as_deref());
        out.raw(&format!(
            ",\"base_origin\":{origin},\"changed_files\":{},\"commits\":{},\"nobuild\":",
            self.changes.files.len(),
            self.changes.commits.len()
        ));
        match &self.detection.nobuild {
            Some(commit) => {
                out.raw("{\"sha\":");
                out.string(&commit.sha);
                out.raw(",\"subject\":");
                out.string(commit.subject());
                out.raw("}");
            }
            None => out.raw("null"),
        }
        out.raw(",\"packages\":[");
        for (i, step) in self.plan.steps.iter().enumerate() {
            if i > 0 {
                out.raw(",");
            }
            self.step_json(&mut out, step);
        }
        out.raw("],\"levels\":[");
        for (i, level) in self.plan.levels().into_iter().enumerate() {
            if i > 0 {
                out.raw(",");
            }
            out.strings(level.iter().map(|s| self.name(s)));
        }
        out.raw("],\"unowned_files\":");
        out.strings(self.detection.unowned.iter().map(String::as_str));
        out.raw(",\"removed_packages\":[");
        for (i, (name, files)) in self.detection.removed.iter().enumerate() {
            if i > 0 {
                out.raw(",");
            }
            out.raw("{\"name\":");
            out.string(name);
            out.raw(",\"files\":");
            out.strings(files.iter().map(String::as_str));
            out.raw("}");
        }
        out.raw("]}\n");
        out.0
    }

    fn step_json(&self, out: &mut JsonOut, step: &Step) {
        let package = &self.workspace.packages[step.package];
        let seed = step.seed.as_ref();
        out.raw("{\"name\":");
        out.string(&package.name);
        out.raw(",\"dir\":");
        out.string(show_dir(&package.dir));
        out.raw(",\"pkg_type\":");
        out.optional(package.pkg_type.as_deref());
        out.raw(",\"type\":");
        out.optional(package.kind.map(|kind| match kind {
            PackageKind::Service => "service",
            PackageKind::Library => "library",
        }));
        out.raw(&format!(",\"level\":{},\"changed\":{},\"files\":", step.level, seed.is_some()));
        out.strings(seed.map_or(&[][..], |s| &s.files[..]).iter().map(String::as_str));
        out.raw(",\"manifest\":");
        out.optional(seed.and_then(|s| s.manifest).map(|change| match change {
            ManifestChange::Added => "added",
            ManifestChange::Modified => "modified",
            ManifestChange::Uncomparable => "uncomparable",
        }));
        out.raw(",\"held_back_by\":");
        match seed.and_then(|s| s.held_back.as_deref()) {
            Some(keywords) => out.strings(keywords.iter().map(String::as_str)),
            None => out.raw("null"),
        }
        out.raw(",\"because_of\":");
        out.strings(step.because_of.iter().map(|&d| self.workspace.packages[d].name.as_str()));
        out.raw("}");
    }
}

/// A JSON text being written.
struct JsonOut(String);

impl JsonOut {
    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    /// A string value, escaped as JSON requires.
    fn string(&mut self, value: &str) {
        self.0.push('"');
        if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.0.push_str(value);
        } else {
            for c in value.chars() {
                match c {
                    '"' => self.0.push_str("\\\""),
                    '\\' => self.0.push_str("\\\\"),
                    '\n' => self.0.push_str("\\n"),
                    '\r' => self.0.push_str("\\r"),
                    '\t' => self.0.push_str("\\t"),
                    c if (c as u32) < 0x20 => self.0.push_str(&format!("\\u{:04x}", c as u32)),
                    c => self.0.push(c),
                }
            }
        }
        self.0.push('"');
    }

    fn optional(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.string(value),
            None => self.raw("null"),
        }
    }

    fn strings<'s>(&mut self, values: impl Iterator<Item = &'s str>) {
        self.0.push('[');
        for (i, value) in values.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.string(value);
        }
        self.0.push(']');
    }
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

#[cfg(test)]
mod tests {
    use super::JsonOut;

    #[test]
    fn strings_are_escaped_as_json_requires() {
        for text in
            ["plain", "quote \" and \\ backslash", "new\nline\ttab\r", "bell \u{7} nul \u{0}", "çà 日本語 😀", ""]
        {
            let mut out = JsonOut(String::new());
            out.string(text);
            let back: String = serde_json::from_str(&out.0).expect("valid JSON string");
            assert_eq!(back, text);
        }
        let mut out = JsonOut(String::new());
        out.strings(["a", "b\"c"].into_iter());
        assert_eq!(out.0, r#"["a","b\"c"]"#);
    }
}
