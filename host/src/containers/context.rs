//! A build context as the engine receives it: the context folder as a tar
//! archive, minus what its `.dockerignore` excludes — as `docker build`
//! does. Links stay links, modes are kept, owners and times are fixed, and
//! entries come in name order, so the same folder makes the same archive.
//!
//! `.dockerignore` rules, as Docker reads them: one pattern per line, `#`
//! comments, paths relative to the context (a leading `/` is dropped);
//! `*` and `?` within a path segment, `**` across any number of segments;
//! a pattern matching a folder excludes what is inside; `!pattern` brings
//! back what an earlier rule excluded, the last matching rule deciding.
//! The Dockerfile and `.dockerignore` itself are always sent.

use std::io::Write;
use std::path::Path;

use crate::failure::Failure;

/// The ignore file in a context folder.
const IGNORE_FILE: &str = ".dockerignore";

/// The context folder, filtered by its `.dockerignore`, as a tar archive written into `into`.
pub fn archive<W: Write>(context: &Path, dockerfile: &str, into: W) -> std::io::Result<W> {
    let ignore = match std::fs::read_to_string(context.join(IGNORE_FILE)) {
        Ok(text) => DockerIgnore::parse(&text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
        Err(error) => return Err(error),
    };
    let kept = [dockerfile.trim_start_matches("./"), IGNORE_FILE];
    let mut builder = tar::Builder::new(into);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    add_folder(&mut builder, context, "", &ignore, &kept)?;
    builder.into_inner()
}

/// Writes the context folder as a gzipped tar to `file`; returns its size.
pub async fn archive_to_file(context: &Path, dockerfile: &str, file: &Path) -> Result<u64, Failure> {
    let (context, dockerfile, file) = (context.to_path_buf(), dockerfile.to_string(), file.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let written = std::fs::File::create(&file)?;
        let gzip =
            archive(&context, &dockerfile, flate2::write::GzEncoder::new(written, flate2::Compression::default()))?;
        gzip.finish()?.sync_all()?;
        Ok::<_, std::io::Error>(std::fs::metadata(&file)?.len())
    })
    .await
    .map_err(|e| Failure::new(format!("archiving the build context failed: {e}")))?
    .map_err(|e| Failure::new(format!("cannot archive the build context: {e}")))
}

fn add_folder<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    folder: &str,
    ignore: &DockerIgnore,
    kept: &[&str],
) -> std::io::Result<()> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(root.join(folder))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(std::io::Error::other(format!("`{}` is not a UTF-8 file name", entry.path().display())));
        };
        let relative = if folder.is_empty() { name.to_string() } else { format!("{folder}/{name}") };
        let excluded = ignore.excludes(&relative) && !kept.contains(&relative.as_str());
        if entry.file_type()?.is_dir() {
            // Inside an excluded folder only an exception can bring something back.
            if excluded && !ignore.has_exceptions() {
                continue;
            }
            if !excluded {
                builder.append_dir(&relative, entry.path())?;
            }
            add_folder(builder, root, &relative, ignore, kept)?;
        } else if !excluded {
            builder.append_path_with_name(entry.path(), &relative)?;
        }
    }
    Ok(())
}

/// The rules of a `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// The pattern's path segments.
    segments: Vec<String>,
    /// `!pattern`: brings matches back.
    exception: bool,
}

impl DockerIgnore {
    /// Reads the rules of a `.dockerignore` file's text.
    pub fn parse(text: &str) -> DockerIgnore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let segments: Vec<String> = pattern
                    .split('/')
                    .filter(|segment| !segment.is_empty() && *segment != ".")
                    .map(str::to_string)
                    .collect();
                (!segments.is_empty()).then_some(Rule { segments, exception })
            })
            .collect();
        DockerIgnore { rules }
    }

    /// Whether `relative` (a `/`-separated path in the context) is left out.
    pub fn excludes(&self, relative: &str) -> bool {
        let path: Vec<&str> = relative.split('/').collect();
        let mut excluded = false;
        for rule in &self.rules {
            // A rule matching a folder on the way matches what is inside it.
            if (1..=path.len()).any(|end| segments_match(&rule.segments, &path[..end])) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|rule| rule.exception)
    }
}

/// Whether pattern segments match path segments, `**` standing for any number of them.
fn segments_match(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| segments_match(rest, &path[skip..])),
        Some((first, rest)) => {
            path.split_first().is_some_and(|(name, tail)| wildcard_match(first, name) && segments_match(rest, tail))
        }
    }
}

/// `*` (any run of characters) and `?` (one character) within one segment.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    n = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_like_dockers() {
        let ignore = DockerIgnore::parse(
            "# build output\nlogs/\n/secret.txt\n**/*.tmp\n!keep.tmp\nnode_modules\ndocs/*.md\n!docs/README.md\n",
        );
        for excluded in
            ["logs", "logs/a.log", "secret.txt", "a.tmp", "deep/er/b.tmp", "node_modules/x/y.js", "docs/guide.md"]
        {
            assert!(ignore.excludes(excluded), "`{excluded}` should be excluded");
        }
        for kept in ["keep.tmp", "src/main.py", "secret.txt.bak", "docs/README.md", "docs/img/a.md", "logsx"] {
            assert!(!ignore.excludes(kept), "`{kept}` should be kept");
        }
    }

    #[test]
    fn wildcards_stay_within_a_segment() {
        assert!(wildcard_match("*.py", "app.py"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("*.py", "app.pyc"));
        assert!(segments_match(&["**".to_string()], &["any", "depth"]));
        assert!(!segments_match(&["*".to_string()], &["two", "deep"]));
    }
}
