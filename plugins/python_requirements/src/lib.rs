//! The `python_requirements` discovery: the distributions named in
//! `requirements*.txt` files in the package folder, `app/` and `src/`.
//!
//! Understands comments, line continuations, `-r`/`-c` includes, editable
//! installs (`-e path` and `-e url#egg=name`), extras, environment markers and
//! every PEP 440 operator; other pip options are skipped.

use loktar_sdk::prelude::*;
use std::path::{Path, PathBuf};

struct PythonRequirements;

const ROOT: &str = "/package";
const FOLDERS: [&str; 3] = ["", "app", "src"];
/// Includes deeper than this are a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

impl Discovery for PythonRequirements {
    fn describe() -> PluginInfo {
        PluginInfo::new("python_requirements", env!("CARGO_PKG_VERSION"), Role::Discovery)
            .with_capabilities(&[Capability::Log])
    }

    fn discover(_package: Package) -> Result<Vec<FoundDependency>, Error> {
        let mut found = Vec::new();
        for folder in FOLDERS {
            let dir = Path::new(ROOT).join(folder);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_requirements_file(p))
                .collect();
            files.sort();
            for file in files {
                read_file(&file, 0, &mut found)?;
            }
        }
        Ok(found)
    }
}

fn is_requirements_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("requirements") && name.ends_with(".txt")
}

fn shown(path: &Path) -> String {
    path.strip_prefix(ROOT).unwrap_or(path).display().to_string()
}

fn read_file(path: &Path, depth: usize, found: &mut Vec<FoundDependency>) -> Result<(), Error> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(Error::new(format!("`{}`: includes nest more than {MAX_INCLUDE_DEPTH} deep", shown(path)))
            .with_hint("look for a `-r` loop"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read `{}`: {e}", shown(path))))?;
    let source = shown(path);
    for (number, line) in logical_lines(&text) {
        let line = strip_comment(&line);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = option_value(line, &["-r", "--requirement", "-c", "--constraint"]) {
            let include = path.parent().unwrap_or(Path::new(ROOT)).join(rest);
            if !include.starts_with(ROOT) || !include.is_file() {
                log::warn(&format!("{source}:{number}: included file `{rest}` not found in the package"));
                continue;
            }
            read_file(&include, depth + 1, found)?;
        } else if let Some(target) = option_value(line, &["-e", "--editable"]) {
            if let Some(name) = editable_name(target) {
                found.push(FoundDependency { name, source: source.clone() });
            }
        } else if line.starts_with('-') {
            // --index-url, --hash, --pre, -f …: options, not requirements.
        } else {
            match requirement_name(line) {
                Some(name) => found.push(FoundDependency { name, source: source.clone() }),
                None => {
                    return Err(Error::new(format!("{source}:{number}: `{line}` is not a requirement"))
                        .with_hint("write `name`, `name[extra]>=1.0` or `name @ url`"));
                }
            }
        }
    }
    Ok(())
}

/// Joins `\`-continued lines; yields each logical line with its first line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (index, line) in text.lines().enumerate() {
        if current.is_empty() {
            start = index + 1;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                lines.push((start, std::mem::take(&mut current)));
            }
        }
    }
    if !current.is_empty() {
        lines.push((start, current));
    }
    lines
}

/// A `#` starts a comment at the start of a line or after whitespace (URLs keep their `#egg=`).
fn strip_comment(line: &str) -> String {
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        if c == '#' && previous.is_whitespace() {
            return line[..at].to_string();
        }
        previous = c;
    }
    line.to_string()
}

/// The value of an option written as `-r file`, `-rfile`, `--requirement=file` or `--requirement file`.
fn option_value<'a>(line: &'a str, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| {
        let rest = line.strip_prefix(name)?;
        let value = if name.starts_with("--") {
            rest.strip_prefix('=').or_else(|| rest.strip_prefix(char::is_whitespace))?
        } else {
            rest
        };
        let value = value.trim();
        (!value.is_empty()).then_some(value)
    })
}

/// The distribution of an editable install: `#egg=name`, else the last path component.
fn editable_name(target: &str) -> Option<String> {
    if let Some((_, fragment)) = target.split_once("#egg=") {
        return requirement_name(fragment);
    }
    let path = target.trim_end_matches('/');
    let last = path.rsplit('/').next()?;
    (!last.is_empty() && last != "." && !last.contains(':')).then(|| last.to_string())
}

/// The name at the start of a requirement (PEP 508): letters, digits, `.`, `_`, `-`,
/// followed by extras, a version specifier, a URL or markers.
fn requirement_name(line: &str) -> Option<String> {
    let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))).unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let rest = rest.trim_start();
    let valid_rest = rest.is_empty()
        || rest.starts_with(['[', ';', '@', '(', ','])
        || ["===", "==", "!=", "~=", ">=", "<=", ">", "<"].iter().any(|op| rest.starts_with(op));
    valid_rest.then(|| name.to_string())
}

loktar_sdk::export!(discovery: PythonRequirements);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_from_every_form() {
        assert_eq!(requirement_name("requests[socks,security]>=2.0; python_version < '3.9'"), Some("requests".into()));
        assert_eq!(requirement_name("awesome_lib===1.0"), Some("awesome_lib".into()));
        assert_eq!(requirement_name("pkg.name~=1.2"), Some("pkg.name".into()));
        assert_eq!(requirement_name("x @ https://example.invalid/x.whl"), Some("x".into()));
        assert_eq!(requirement_name("y (>=1.0)"), Some("y".into()));
        assert_eq!(requirement_name("=== broken"), None);
        assert_eq!(requirement_name("name ? 3"), None);
        assert_eq!(editable_name("git+https://h.invalid/r.git#egg=awesome_lib"), Some("awesome_lib".into()));
        assert_eq!(editable_name("../libs/awesome_lib/"), Some("awesome_lib".into()));
        assert_eq!(strip_comment("a==1 # pinned"), "a==1 ");
        assert_eq!(strip_comment("https://h/x#egg=y"), "https://h/x#egg=y");
        assert_eq!(option_value("--requirement=base.txt", &["--requirement"]), Some("base.txt"));
        assert_eq!(option_value("-rbase.txt", &["-r"]), Some("base.txt"));
        assert_eq!(logical_lines("a \\\n>=1\nb\n"), vec![(1, "a >=1".to_string()), (3, "b".to_string())]);
    }
}
