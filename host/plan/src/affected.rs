//! From what changed in git to which packages changed: owners of changed
//! files, entries of `loktar.json` that differ from the base, and the
//! commit-message rules (`NOBUILD`, exclusion keywords).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use crate::graph::plan::{ManifestChange, Seed};
use crate::scm::{ChangeSet, Commit, History};
use loktar_config::owners::Owners;
use loktar_config::{self as config, MANIFEST, Package, Providers, Workspace};
use loktar_support::diagnostic::Diagnostic;

/// The word in a commit message that turns a run off.
pub const NOBUILD: &str = "NOBUILD";

/// What the change set means for the workspace's packages.
#[derive(Debug, Default)]
pub struct Detection {
    /// For each package, why it changed directly (`None`: it did not).
    pub seeds: Vec<Option<Box<Seed>>>,
    /// Changed files that belong to no package.
    pub unowned: Vec<String>,
    /// Packages the base revision had and the head no longer has, with their changed files.
    pub removed: BTreeMap<String, Vec<String>>,
    /// The commit whose message says `NOBUILD`, if any: then nothing runs.
    pub nobuild: Option<Commit>,
}

/// Works out which packages of `workspace` the change set touches;
/// `owners` indexes the workspace's package folders.
pub fn detect(
    workspace: &Workspace,
    owners: &Owners<'_>,
    providers: &Providers,
    history: &dyn History,
    changes: &ChangeSet,
) -> Result<Detection, Diagnostic> {
    let mut detection = Detection { seeds: vec![None; workspace.packages.len()], ..Detection::default() };
    if let Some(commit) = changes.commits.iter().find(|c| says_nobuild(&c.message)) {
        detection.nobuild = Some(commit.clone());
        return Ok(detection);
    }
    let mut manifest_changed = false;
    for file in &changes.files {
        for path in file.paths() {
            if path == MANIFEST {
                manifest_changed = true;
            }
            match owners.owner(path) {
                Some(owner) => {
                    let seed = detection.seeds[owner].get_or_insert_with(Box::default);
                    if !seed.files.iter().any(|f| f == path) {
                        seed.files.push(path.to_string());
                    }
                }
                None if path == MANIFEST => {}
                None => detection.unowned.push(path.to_string()),
            }
        }
    }
    if manifest_changed {
        let base_source = changes.base.as_deref().and_then(|base| history.file_at(base, MANIFEST));
        compare_manifest(workspace, base_source.as_deref(), &mut detection.seeds);
        if let Some(base_source) = &base_source {
            attribute_removed(workspace, providers, base_source, &mut detection);
        }
    }
    hold_back_keyword_only_changes(workspace, history, changes, owners, &mut detection.seeds)?;
    Ok(detection)
}

/// Whether a commit message carries `NOBUILD` as a word of its own.
pub fn says_nobuild(message: &str) -> bool {
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    message.match_indices(NOBUILD).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + NOBUILD.len()..].chars().next();
        !before.is_some_and(word_char) && !after.is_some_and(word_char)
    })
}

/// The keywords a commit subject starts with: `CLN/DOC: tidy` gives `CLN`, `DOC`.
pub fn subject_keywords(subject: &str) -> Vec<&str> {
    let Some((prefix, _)) = subject.split_once(':') else {
        return Vec::new();
    };
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        return Vec::new();
    }
    let keywords: Vec<&str> = prefix.split('/').collect();
    if keywords.iter().any(|k| k.is_empty()) { Vec::new() } else { keywords }
}

fn compare_manifest(workspace: &Workspace, base_source: Option<&str>, seeds: &mut [Option<Box<Seed>>]) {
    let head_entries = config::canonical_entries(&workspace.manifest.text).unwrap_or_default();
    let base_entries = match base_source {
        None => Some(HashMap::default()),
        Some(source) => config::canonical_entries(source),
    };
    for (index, package) in workspace.packages.iter().enumerate() {
        let change = match &base_entries {
            None => Some(ManifestChange::Uncomparable),
            Some(base) => match base.get(&package.name) {
                None => Some(ManifestChange::Added),
                Some(entry) if head_entries.get(&package.name) != Some(entry) => Some(ManifestChange::Modified),
                Some(_) => None,
            },
        };
        if let Some(change) = change {
            seeds[index].get_or_insert_with(Box::default).manifest = Some(change);
        }
    }
}

/// Files that no current package owns may belong to a package the change removed.
fn attribute_removed(workspace: &Workspace, providers: &Providers, base_source: &str, detection: &mut Detection) {
    let base = config::SourceFile::new(MANIFEST, base_source.to_string());
    let Ok(base_packages) = config::parse(&base, providers) else {
        return;
    };
    let removed: Vec<Package> = base_packages.into_iter().filter(|p| workspace.package(&p.name).is_none()).collect();
    if removed.is_empty() {
        return;
    }
    for package in &removed {
        detection.removed.insert(package.name.clone(), Vec::new());
    }
    let owners = Owners::new(&removed);
    detection.unowned.retain(|path| match owners.owner(path) {
        Some(owner) => {
            detection.removed.entry(removed[owner].name.clone()).or_default().push(path.clone());
            false
        }
        None => true,
    });
}

/// Marks changed packages whose every touching commit carries only their exclusion keywords.
fn hold_back_keyword_only_changes(
    workspace: &Workspace,
    history: &dyn History,
    changes: &ChangeSet,
    owners: &Owners<'_>,
    seeds: &mut [Option<Box<Seed>>],
) -> Result<(), Diagnostic> {
    let candidates: Vec<usize> = (0..seeds.len())
        .filter(|&i| {
            let seed = seeds[i].as_ref();
            !workspace.packages[i].exclude_keywords.is_empty()
                && seed.is_some_and(|s| s.manifest.is_none() && !s.files.is_empty())
        })
        .collect();
    if candidates.is_empty() || changes.commits.is_empty() {
        return Ok(());
    }
    // Only a commit whose keywords some candidate allows can hold a package
    // back: without one, the files of each commit need not be read.
    let allowed_somewhere = |commit: &Commit| {
        let keywords = subject_keywords(commit.subject());
        !keywords.is_empty()
            && candidates.iter().any(|&i| {
                keywords.iter().all(|k| workspace.packages[i].exclude_keywords.iter().any(|allowed| allowed == k))
            })
    };
    if !changes.commits.iter().any(allowed_somewhere) {
        return Ok(());
    }
    let subjects: HashMap<&str, &str> = changes.commits.iter().map(|c| (c.sha.as_str(), c.subject())).collect();
    let commit_files = history.files_by_commit(changes)?;
    for package in candidates {
        let allowed = &workspace.packages[package].exclude_keywords;
        let mut used: Vec<String> = Vec::new();
        let mut touched = false;
        let mut all_excluded = true;
        for (sha, files) in &commit_files {
            if !files.iter().any(|f| owners.owner(f) == Some(package)) {
                continue;
            }
            touched = true;
            let keywords = subject_keywords(subjects.get(sha.as_str()).copied().unwrap_or(""));
            if keywords.is_empty() || !keywords.iter().all(|k| allowed.iter().any(|a| a == k)) {
                all_excluded = false;
                break;
            }
            for keyword in keywords {
                if !used.iter().any(|u| u == keyword) {
                    used.push(keyword.to_string());
                }
            }
        }
        if touched
            && all_excluded
            && let Some(seed) = seeds[package].as_mut()
        {
            seed.held_back = Some(used);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nobuild_as_a_word() {
        assert!(says_nobuild("NOBUILD: docs only"));
        assert!(says_nobuild("fix typo [NOBUILD]"));
        assert!(says_nobuild("title\n\nbody NOBUILD"));
        assert!(!says_nobuild("NOBUILDING things"));
        assert!(!says_nobuild("MY_NOBUILD flag"));
        assert!(!says_nobuild("nobuild"));
    }

    #[test]
    fn reads_subject_keywords() {
        assert_eq!(subject_keywords("CLN/DOC: tidy"), ["CLN", "DOC"]);
        assert_eq!(subject_keywords("DOC: readme"), ["DOC"]);
        assert!(subject_keywords("fix: a b").len() == 1);
        assert!(subject_keywords("no prefix here").is_empty());
        assert!(subject_keywords("two words: x").is_empty());
        assert!(subject_keywords("CLN//DOC: x").is_empty());
        assert!(subject_keywords(": x").is_empty());
    }
}
