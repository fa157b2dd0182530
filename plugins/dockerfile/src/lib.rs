//! The `dockerfile` discovery: the images a package's Dockerfiles build
//! `FROM`, as base names without registry, tag or digest
//! (`quay.io/acme/pet_api:3` → `pet_api`).
//!
//! Multi-stage aware: `FROM builder` where `builder` is an earlier stage is
//! not a dependency, and neither is `scratch`. Reads `Dockerfile`,
//! `Dockerfile.*` and `*.Dockerfile` in the package folder.

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
fn from_images(text: &str) -> Result<Vec<String>, String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for (number, instruction) in instructions(text) {
        let mut words = instruction.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let args: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
        let Some(image) = args.first() else {
            return Err(format!("line {number}: `FROM` names no image"));
        };
        let stage = match args.get(1..) {
            Some([]) | None => None,
            Some([as_word, stage]) if as_word.eq_ignore_ascii_case("AS") => Some(stage.to_ascii_lowercase()),
            Some(_) => {
                return Err(format!("line {number}: expected `FROM <image> [AS <stage>]`"));
            }
        };
        // Stages defined earlier in the file are not images to depend on.
        let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(image));
        stages.extend(stage);
        if is_stage || image.eq_ignore_ascii_case("scratch") || image.contains('$') {
            continue;
        }
        let name = image_base_name(image);
        if !name.is_empty() && !images.contains(&name) {
            images.push(name);
        }
    }
    Ok(images)
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
        assert_eq!(from_images(text), Ok(vec!["awesome_lib".to_string(), "pet_api".to_string()]));
        assert!(from_images("FROM\n").is_err());
        assert!(from_images("FROM a b c\n").is_err());
    }
}
