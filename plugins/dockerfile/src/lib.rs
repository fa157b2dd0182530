//! The `dockerfile` discovery: the images a package's Dockerfiles build
//! `FROM`, as base names without registry, tag or digest
//! (`quay.io/acme/pet_api:3` → `pet_api`).
//!
//! Multi-stage aware: `FROM builder` where `builder` is an earlier stage is
//! not a dependency, and neither is `scratch`. `ARG` defaults declared
//! before the first `FROM` are resolved where a name uses them; a variable
//! with no known value only hides an image when it is in the image's name
//! (`FROM quay.io/acme/pet_api:${TAG}` still depends on `pet_api`). Reads
//! `Dockerfile`, `Dockerfile.*` and `*.Dockerfile` in the package folder.

use loktar_sdk::prelude::*;
use std::path::Path;

struct Dockerfile;

const ROOT: &str = "/package";

impl Discovery for Dockerfile {
    fn describe() -> PluginInfo {
        PluginInfo::new("dockerfile", env!("CARGO_PKG_VERSION"), Role::Discovery).with_capabilities(&[Capability::Log])
    }

    fn discover(_package: Package) -> Result<Vec<FoundDependency>, Error> {
        let entries =
            std::fs::read_dir(ROOT).map_err(|e| Error::new(format!("cannot list the package folder: {e}")))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name == "Dockerfile" || name.starts_with("Dockerfile.") || name.ends_with(".Dockerfile"))
            .collect();
        names.sort();
        let mut found = Vec::new();
        for name in names {
            let text = std::fs::read_to_string(Path::new(ROOT).join(&name))
                .map_err(|e| Error::new(format!("cannot read `{name}`: {e}")))?;
            for image in from_images(&text).map_err(|e| Error::new(format!("`{name}`: {e}")))? {
                found.push(FoundDependency { name: image, source: name.clone() });
            }
        }
        Ok(found)
    }
}

/// The base names of the images the `FROM` instructions use, stages excluded.
///
/// `ARG`s declared before the first `FROM` are resolved to their defaults
/// where a name uses them (`FROM ${BASE}:1.0`); a variable with no known
/// value leaves its part unknown, and only an image whose name (its last
/// path segment, before tag and digest) stays unknown is skipped:
/// `FROM quay.io/acme/pet_api:${TAG}` still depends on `pet_api`.
fn from_images(text: &str) -> Result<Vec<String>, String> {
    let mut args = MetaArgs::default();
    let mut seen_from = false;
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for (number, instruction) in instructions(text) {
        let mut words = words(&instruction).into_iter();
        let Some(keyword) = words.next() else { continue };
        if keyword.eq_ignore_ascii_case("ARG") {
            // Only `ARG`s before the first `FROM` are in scope for `FROM` lines.
            if !seen_from {
                words.for_each(|word| args.declare(word));
            }
            continue;
        }
        if !keyword.eq_ignore_ascii_case("FROM") {
            continue;
        }
        seen_from = true;
        let words: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
        let Some(image) = words.first() else {
            return Err(format!("line {number}: `FROM` names no image"));
        };
        let stage = match words.get(1..) {
            Some([]) | None => None,
            Some([as_word, stage]) if as_word.eq_ignore_ascii_case("AS") => Some(stage.to_ascii_lowercase()),
            Some(_) => {
                return Err(format!("line {number}: expected `FROM <image> [AS <stage>]`"));
            }
        };
        let image = args.expand(image);
        // Stages defined earlier in the file are not images to depend on.
        let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
        stages.extend(stage);
        if is_stage || image.eq_ignore_ascii_case("scratch") {
            continue;
        }
        if let Some(name) = known_name(&image)
            && !images.contains(&name)
        {
            images.push(name);
        }
    }
    Ok(images)
}

/// Stands for the value of a variable that has none known here; no image name holds it.
const UNKNOWN: char = '\0';

/// The base name of an expanded image reference, unless a variable of
/// unknown value (or anything else no image name holds) is in it.
fn known_name(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let name = last.split(':').next().unwrap_or(last);
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (!name.is_empty() && name.chars().all(valid)).then(|| image_base_name(image))
}

/// The `ARG`s declared before the first `FROM`: name and default, `None` without one.
#[derive(Debug, Default)]
struct MetaArgs {
    declared: Vec<(String, Option<String>)>,
}

impl MetaArgs {
    /// Declares `NAME=default` or `NAME`; a default may use the `ARG`s declared before it.
    fn declare(&mut self, word: &str) {
        let (name, default) = match word.split_once('=') {
            Some((name, default)) => (name, Some(self.expand(default))),
            None => (word, None),
        };
        self.declared.retain(|(declared, _)| declared != name);
        self.declared.push((name.to_string(), default));
    }

    /// The default of `name`, `None` when it has none (a build argument may set it).
    fn value(&self, name: &str) -> Option<&str> {
        self.declared.iter().find(|(declared, _)| declared == name).and_then(|(_, value)| value.as_deref())
    }

    /// `word` with quotes removed and variables replaced as BuildKit does:
    /// `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`,
    /// `${NAME+word}`; what cannot be known becomes [`UNKNOWN`].
    fn expand(&self, word: &str) -> String {
        let mut out = String::new();
        let mut chars = word.chars().peekable();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\'' | '"', None) => quote = Some(c),
                (c, Some(open)) if c == open => quote = None,
                (c, Some('\'')) => out.push(c),
                ('\\', _) => out.push(chars.next().unwrap_or('\\')),
                ('$', _) => self.variable(&mut chars, &mut out),
                (c, _) => out.push(c),
            }
        }
        out
    }

    /// Expands the variable after a `$` into `out`.
    fn variable(&self, chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
        let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
        if chars.next_if_eq(&'{').is_none() {
            let name: String = std::iter::from_fn(|| chars.next_if(is_name)).collect();
            match (name.as_str(), self.value(&name)) {
                ("", _) => out.push('$'),
                (_, Some(value)) => out.push_str(value),
                (_, None) => out.push(UNKNOWN),
            }
            return;
        }
        let name: String = std::iter::from_fn(|| chars.next_if(is_name)).collect();
        // The rest up to the matching `}`, nested `${…}` included.
        let mut rest = String::new();
        let mut depth = 0;
        let mut closed = false;
        for c in chars.by_ref() {
            match c {
                '}' if depth == 0 => {
                    closed = true;
                    break;
                }
                '}' => depth -= 1,
                '{' => depth += 1,
                _ => {}
            }
            rest.push(c);
        }
        let value = self.value(&name);
        let set_and_not_empty = value.filter(|value| !value.is_empty());
        let (operator, word) =
            [":-", ":+", "-", "+"].into_iter().find_map(|op| Some((op, rest.strip_prefix(op)?))).unwrap_or(("", &rest));
        let expanded = match (closed && !name.is_empty(), operator, word) {
            (false, _, _) => None,
            (true, "", "") => value.map(str::to_string),
            (true, ":-", word) => Some(set_and_not_empty.map_or_else(|| self.expand(word), str::to_string)),
            (true, ":+", word) => Some(set_and_not_empty.map_or_else(String::new, |_| self.expand(word))),
            (true, "-", word) => Some(value.map_or_else(|| self.expand(word), str::to_string)),
            (true, "+", word) => Some(value.map_or_else(String::new, |_| self.expand(word))),
            // `${NAME?word}`, `${NAME#pattern}` and the like: not worth guessing.
            _ => None,
        };
        match expanded {
            Some(expanded) => out.push_str(&expanded),
            None => out.push(UNKNOWN),
        }
    }
}

/// The words of an instruction: split at blanks outside quotes.
fn words(instruction: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote = None;
    let mut escaped = false;
    for (at, c) in instruction.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (c, quote) {
            ('\\', q) if q != Some('\'') => escaped = true,
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(open)) if c == open => quote = None,
            (c, None) if c.is_whitespace() => {
                if let Some(from) = start.take() {
                    words.push(&instruction[from..at]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(at);
    }
    if let Some(from) = start {
        words.push(&instruction[from..]);
    }
    words
}

/// Instructions with `\` continuations joined, comments and blank lines dropped.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if current.is_empty() {
            start = index + 1;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push((start, std::mem::take(&mut current)));
            }
        }
    }
    if !current.is_empty() {
        out.push((start, current));
    }
    out
}

loktar_sdk::export!(discovery: Dockerfile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_but_not_stages() {
        let text = "# syntax=docker/dockerfile:1\nARG BASE=x\nFROM --platform=linux/amd64 quay.io/acme/awesome_lib:1.2 AS build\nRUN make\nFROM build AS test\nFROM scratch\nFROM \\\n  registry:5000/team/pet_api@sha256:abc\nFROM ${BASE}\nCOPY --from=build /x /x\n";
        assert_eq!(from_images(text), Ok(vec!["awesome_lib".to_string(), "pet_api".to_string(), "x".to_string()]));
        assert!(from_images("FROM\n").is_err());
        assert!(from_images("FROM a b c\n").is_err());
    }

    fn images(text: &str) -> Vec<String> {
        from_images(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_variable_tag_keeps_the_known_name() {
        assert_eq!(images("FROM registry.example.com/acme/pet_api:${TAG}\n"), ["pet_api"]);
        assert_eq!(images("ARG TAG\nFROM registry.example.com/acme/pet_api:$TAG AS run\n"), ["pet_api"]);
        assert_eq!(images("FROM ${REGISTRY}/acme/pet_api@${DIGEST}\n"), ["pet_api"]);
        assert_eq!(images("FROM ${REGISTRY:-quay.io}/acme/Pet_Api:${TAG:-latest}\n"), ["pet_api"]);
    }

    #[test]
    fn arg_defaults_before_the_first_from_decide_the_name() {
        assert_eq!(images("ARG BASE=acme/awesome_lib\nFROM ${BASE}:1.0\n"), ["awesome_lib"]);
        assert_eq!(images("ARG BASE=acme/awesome_lib\nFROM $BASE\n"), ["awesome_lib"]);
        assert_eq!(images("ARG BASE=\"acme/awesome_lib\"\nFROM \"$BASE:2\"\n"), ["awesome_lib"]);
        let chained = "ARG REGISTRY=quay.io OWNER=acme\nARG IMAGE=${REGISTRY}/${OWNER}/base-image\nFROM ${IMAGE}:3\n";
        assert_eq!(images(chained), ["base-image"]);
        assert_eq!(images("ARG BASE\nFROM ${BASE:-acme/fallback}\n"), ["fallback"]);
        assert_eq!(images("ARG BASE=x\nARG BASE=acme/second\nFROM ${BASE}\n"), ["second"]);
        assert_eq!(images("ARG FLAVOUR=slim\nFROM acme/python${FLAVOUR:+-}${FLAVOUR}\n"), ["python-slim"]);
        // A default naming an earlier stage is that stage.
        assert_eq!(images("ARG STAGE=build\nFROM acme/sdk AS build\nFROM ${STAGE}\n"), ["sdk"]);
    }

    #[test]
    fn names_that_stay_unknown_are_skipped() {
        for text in [
            "FROM ${BASE}\n",
            "ARG BASE\nFROM ${BASE}:1.0\n",
            "FROM acme/${NAME}:1\n",
            "FROM acme/pet_api${SUFFIX}\n",
            "FROM ${BASE?required}\n",
            "FROM ${BASE\n",
            "FROM $\n",
            // `ARG`s after the first `FROM` belong to a stage, not to later `FROM`s.
            "FROM scratch\nARG LATE=acme/late\nFROM ${LATE}\n",
        ] {
            assert_eq!(from_images(text), Ok(Vec::new()), "{text:?}");
        }
        assert_eq!(images("FROM acme/known\nFROM ${UNKNOWN}\nFROM acme/other:${TAG}\n"), ["known", "other"]);
    }

    #[test]
    fn words_split_outside_quotes() {
        assert_eq!(words("ARG A=\"x y\" B='$C' D=e\\ f"), ["ARG", "A=\"x y\"", "B='$C'", "D=e\\ f"]);
        assert_eq!(MetaArgs::default().expand("'$C'"), "$C");
    }
}
