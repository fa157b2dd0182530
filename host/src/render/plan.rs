//! `loktar plan` as text and as JSON.
//!
//! The JSON shape is a contract for tooling (documented in
//! `docs/plan-json.md`): fields are only ever added, and `schema_version`
//! changes if one is removed or changes meaning.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use super::pad;
use crate::affected::Detection;
use crate::config::{PackageKind, Workspace, plugins, show_dir};
use crate::graph::plan::{ManifestChange, Plan, Step};
use crate::scm::{BaseOrigin, ChangeSet};
use crate::settings::Settings;
use crate::terminal::escaped;

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
        // A pull request's commits come from GitHub's API, not from git.
        let short = |sha: &str| escaped(&sha.chars().take(10).collect::<String>()).into_owned();
        let head = self.changes.head.as_deref().map_or("the work tree".to_string(), |h| format!("`{}`", short(h)));
        let base = self.changes.base.as_deref().map(|b| format!("`{}`", short(b)));
        let origin = match &self.changes.origin {
            BaseOrigin::Given => "given".to_string(),
            BaseOrigin::MergeBase { branch } => format!("merge-base with `{}`", escaped(branch)),
            BaseOrigin::Parent { branch } => format!("parent commit, on `{}`", escaped(branch)),
            BaseOrigin::RootCommit => "first commit".to_string(),
            BaseOrigin::Worktree => String::new(),
            BaseOrigin::PullRequest { number, branch } => {
                format!("pull request #{number} into `{}`", escaped(branch))
            }
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
            out.push_str(&format!(
                "nothing to do: commit `{}` says NOBUILD ({})\n",
                escaped(&sha),
                escaped(commit.subject())
            ));
            return out;
        }
        let total = self.workspace.packages.len();
        out.push_str(&format!("{} of {} affected\n", self.plan.steps.len(), plural(total, "package")));
        let width = self.plan.steps.iter().map(|s| self.name(s).chars().count()).max().unwrap_or(0);
        for level in self.plan.levels() {
            out.push_str(&format!("\nlevel {}\n", level[0].level));
            for step in level {
                out.push_str(&format!("  {}  {}\n", pad(&self.name(step), width), self.why(step)));
            }
        }
        for (name, files) in &self.detection.removed {
            out.push_str(&format!(
                "\nremoved from loktar.json: `{}` ({})\n",
                escaped(name),
                plural(files.len(), "changed file")
            ));
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

    fn name(&self, step: &Step) -> Cow<'_, str> {
        escaped(&self.workspace.packages[step.package].name)
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
                parts.push(format!("dependents not rebuilt: only {} commits", escaped(&keywords.join("/"))));
            }
        }
        let because_of = self.plan.because_of(step);
        if !because_of.is_empty() {
            let names: Vec<String> = because_of
                .iter()
                .map(|&d| format!("`{}`", escaped(&self.workspace.packages[d as usize].name)))
                .collect();
            parts.push(format!("depends on {}", names.join(", ")));
        }
        parts.join("; ")
    }

    /// Writes the plan as JSON, a piece at a time: with thousands of packages
    /// this is the largest output Loktar makes, and building it whole in
    /// fresh memory would cost more than writing it. `fixed` holds what does
    /// not depend on the change, written beforehand.
    pub fn write_json(&self, fixed: &FixedJson, sink: &mut dyn Write) -> io::Result<()> {
        let FixedJson { packages: fixed, repository_plugins } = fixed;
        if self.plan.steps.len() * PackageJson::READ_THROUGH_SHARE >= self.workspace.packages.len() {
            fixed.read_through();
        }
        let mut out = JsonOut { text: String::with_capacity(JsonOut::CHUNK + 4096), sink };
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
            self.step_json(&mut out, fixed, step);
            out.flush_if_full()?;
        }
        out.raw("],\"levels\":[");
        for (i, level) in self.plan.levels().into_iter().enumerate() {
            if i > 0 {
                out.raw(",");
            }
            out.names(fixed, level.iter().map(|step| step.package));
            out.flush_if_full()?;
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
        out.raw("],\"repository_plugins\":");
        out.raw(repository_plugins);
        out.raw("}\n");
        out.flush()
    }

    fn step_json(&self, out: &mut JsonOut, fixed: &PackageJson, step: &Step) {
        out.raw(fixed.fields(step.package));
        out.raw(",\"level\":");
        out.number(step.level);
        match step.seed.as_deref() {
            // Most steps of a large plan: dependents, nothing of their own changed.
            None => out.raw(",\"changed\":false,\"files\":[],\"manifest\":null,\"held_back_by\":null"),
            Some(seed) => {
                out.raw(",\"changed\":true,\"files\":");
                out.strings(seed.files.iter().map(String::as_str));
                out.raw(",\"manifest\":");
                out.optional(seed.manifest.map(|change| match change {
                    ManifestChange::Added => "added",
                    ManifestChange::Modified => "modified",
                    ManifestChange::Uncomparable => "uncomparable",
                }));
                out.raw(",\"held_back_by\":");
                match &seed.held_back {
                    Some(keywords) => out.strings(keywords.iter().map(String::as_str)),
                    None => out.raw("null"),
                }
            }
        }
        out.raw(",\"because_of\":");
        out.names(fixed, self.plan.because_of(step).iter().map(|&d| d as usize));
        out.raw("}");
    }
}

/// The parts of the plan's JSON that do not depend on the change, written
/// while git reads the range (see [`Report::write_json`]).
#[derive(Debug)]
pub struct FixedJson {
    /// Each package's fixed fields.
    packages: PackageJson,
    /// The `repository_plugins` array: the plugins the repository declares,
    /// each with what it asked for and what it was granted.
    repository_plugins: String,
}

impl FixedJson {
    /// Writes the fixed parts for `workspace` under `settings`.
    pub fn new(workspace: &Workspace, settings: &Settings) -> FixedJson {
        // Strings and lists of strings: serialising them cannot fail.
        let repository_plugins =
            serde_json::to_string(&plugins::repository_plugins(settings)).unwrap_or_else(|_| "[]".to_string());
        FixedJson { packages: PackageJson::new(workspace), repository_plugins }
    }
}

/// The fields of each package's JSON that do not depend on the change
/// (`{"name":…,"dir":…,"pkg_type":…,"type":…`), written one after the other
/// before the plan is known: `loktar plan` writes them while git reads the
/// range, and writing the plan then copies neighbouring text instead of
/// visiting the strings of thousands of packages scattered in memory.
#[derive(Debug)]
pub struct PackageJson {
    text: String,
    /// Package `i`'s fields are `text[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    /// Where package `i`'s quoted name ends; it starts right after `{"name":`.
    name_ends: Vec<usize>,
}

impl PackageJson {
    const NAME_KEY: &str = "{\"name\":";

    /// Writes the fixed fields of every package of `workspace`.
    pub fn new(workspace: &Workspace) -> PackageJson {
        let packages = &workspace.packages;
        let mut text = String::with_capacity(packages.len() * 96);
        let mut starts = Vec::with_capacity(packages.len() + 1);
        let mut name_ends = Vec::with_capacity(packages.len());
        starts.push(0);
        for package in packages {
            text.push_str(Self::NAME_KEY);
            push_string(&mut text, &package.name);
            name_ends.push(text.len());
            text.push_str(",\"dir\":");
            push_string(&mut text, show_dir(&package.dir));
            text.push_str(",\"pkg_type\":");
            push_optional(&mut text, package.pkg_type.as_deref());
            text.push_str(",\"type\":");
            push_optional(
                &mut text,
                package.kind.map(|kind| match kind {
                    PackageKind::Service => "service",
                    PackageKind::Library => "library",
                }),
            );
            starts.push(text.len());
        }
        PackageJson { text, starts, name_ends }
    }

    /// A plan with at least 1 in this many of the packages reads the fixed
    /// fields through before writing (see [`PackageJson::read_through`]).
    const READ_THROUGH_SHARE: usize = 32;

    /// Reads the fixed fields through once, in order, for writing the plan
    /// to find them in the CPU's caches. Written while git reads the range,
    /// they have left the caches by the time the plan is known, and the plan
    /// visits its packages out of order (by level), each visit waiting for
    /// memory: two thirds of a millisecond at 10,000 packages. Read in order,
    /// one byte of each 64-byte cache line, they come back in 0.08 ms.
    fn read_through(&self) {
        const LINE: usize = 64;
        let text = self.text.as_bytes().chunks(LINE).fold(0u8, |sum, line| sum ^ line[0]);
        let offsets = |values: &[usize]| values.chunks(LINE / size_of::<usize>()).fold(0, |sum, line| sum ^ line[0]);
        std::hint::black_box((text, offsets(&self.starts), offsets(&self.name_ends)));
    }

    /// Package `index`'s fixed fields, from the opening brace on.
    fn fields(&self, index: usize) -> &str {
        &self.text[self.starts[index]..self.starts[index + 1]]
    }

    /// Package `index`'s name as a JSON string.
    fn name(&self, index: usize) -> &str {
        &self.text[self.starts[index] + Self::NAME_KEY.len()..self.name_ends[index]]
    }
}

/// A JSON text being written, handed to the sink in chunks.
struct JsonOut<'w> {
    text: String,
    sink: &'w mut dyn Write,
}

impl JsonOut<'_> {
    /// How much text is gathered before it is written: with its slack, the
    /// buffer stays below the size from which the allocator gives an
    /// allocation fresh memory of its own.
    const CHUNK: usize = 32 * 1024;

    fn raw(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn number(&mut self, value: usize) {
        self.text.push_str(itoa::Buffer::new().format(value));
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.text.len() >= Self::CHUNK { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.write_all(self.text.as_bytes())?;
        self.text.clear();
        Ok(())
    }

    /// A string value, escaped as JSON requires.
    fn string(&mut self, value: &str) {
        push_string(&mut self.text, value);
    }

    fn optional(&mut self, value: Option<&str>) {
        push_optional(&mut self.text, value);
    }

    fn strings<'s>(&mut self, values: impl Iterator<Item = &'s str>) {
        self.text.push('[');
        for (i, value) in values.enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.string(value);
        }
        self.text.push(']');
    }

    /// An array of package names, already escaped in `fixed`.
    fn names(&mut self, fixed: &PackageJson, packages: impl Iterator<Item = usize>) {
        self.text.push('[');
        for (i, package) in packages.enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(fixed.name(package));
        }
        self.text.push(']');
    }
}

/// Appends a JSON string, escaped as JSON requires.
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    if !value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(value);
    } else {
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Appends a JSON string, or `null`.
fn push_optional(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => push_string(out, value),
        None => out.push_str("null"),
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
    let shown: Vec<String> = files.iter().take(FILES_SHOWN).map(|f| format!("`{}`", escaped(f))).collect();
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
    use std::path::PathBuf;

    use super::{JsonOut, PackageJson};
    use crate::config::{Providers, SourceFile, Workspace, parse};

    fn written(write: impl FnOnce(&mut JsonOut<'_>)) -> String {
        let mut bytes = Vec::new();
        let mut out = JsonOut { text: String::new(), sink: &mut bytes };
        write(&mut out);
        out.flush().expect("writes to memory");
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        for text in
            ["plain", "quote \" and \\ backslash", "new\nline\ttab\r", "bell \u{7} nul \u{0}", "çà 日本語 😀", ""]
        {
            let json = written(|out| out.string(text));
            let back: String = serde_json::from_str(&json).expect("valid JSON string");
            assert_eq!(back, text);
        }
        assert_eq!(written(|out| out.strings(["a", "b\"c"].into_iter())), r#"["a","b\"c"]"#);
        assert_eq!(written(|out| out.number(1234)), "1234");
    }

    #[test]
    fn package_fields_are_written_once_then_sliced() {
        let text = r#"{"packages": [
            {"pkg_name": "api", "pkg_dir": "services/my \"api\"", "pkg_type": "whl", "type": "service"},
            {"pkg_name": "lib"}]}"#;
        let source = SourceFile::new("loktar.json", text.to_string());
        let packages = parse(&source, &Providers::builtin()).expect("valid");
        let workspace = Workspace::new(PathBuf::from("/repo"), source, packages);
        let fixed = PackageJson::new(&workspace);
        assert_eq!(fixed.fields(0), r#"{"name":"api","dir":"services/my \"api\"","pkg_type":"whl","type":"service""#);
        assert_eq!(fixed.fields(1), r#"{"name":"lib","dir":"lib","pkg_type":null,"type":null"#);
        assert_eq!((fixed.name(0), fixed.name(1)), (r#""api""#, r#""lib""#));
    }
}
