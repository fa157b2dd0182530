//! The `jar` builder: the Java sources under `src/main/java` compiled by
//! `javac`, packed with the resources of `src/main/resources` by `jar`.
//!
//! - `build_info.version` (or the project `<version>` of a `pom.xml`): the
//!   version; on branches Loktar's label is appended (`1.0.0+feature.x.1a2b3c4d`).
//! - `build_info.main_class`: the jar's entry point, optional.
//! - `build_info.emr: true`: stored under Loktar's Elastic MapReduce layout
//!   (see the storage plugins).
//!
//! Builds are reproducible: entries carry a fixed date.

use loktar_sdk::prelude::*;
use loktar_sdk::process::{self, Command};

struct Jar;

const SOURCES: &str = "src/main/java";
const RESOURCES: &str = "src/main/resources";
/// Compiled classes, inside the artifact folder while the jar is made.
const CLASSES: &str = "jar-classes";
/// The list of sources handed to `javac` (`@file`), so no command line gets too long.
const SOURCE_LIST: &str = "jar-sources.txt";

impl Builder for Jar {
    fn describe() -> PluginInfo {
        PluginInfo::new("jar", env!("CARGO_PKG_VERSION"), Role::Builder)
            .with_capabilities(&[Capability::Log, Capability::Process])
    }

    fn build(context: RunContext, package: Package) -> Result<Vec<Artifact>, Error> {
        let settings: serde_json::Value = serde_json::from_str(&package.settings).unwrap_or_default();
        let mut sources = Vec::new();
        java_files(&format!("/package/{SOURCES}"), &mut sources);
        if sources.is_empty() {
            return Err(Error::new(format!("package `{}` has no Java sources under `{SOURCES}`", package.name))
                .with_hint("a `jar` package keeps its sources in `src/main/java/<package path>/*.java`"));
        }
        sources.sort();
        let mut version = project_version(&settings)?;
        if let Some(label) = loktar_sdk::branch_label(&context) {
            version = format!("{version}+{label}");
        }
        let folders = process::folders()?;
        let artifacts =
            folders.artifacts.ok_or_else(|| Error::new("the host gave the `jar` builder no artifact folder"))?;
        let host_sources: Vec<String> =
            sources.iter().map(|s| format!("{}/{}", folders.package, s.trim_start_matches("/package/"))).collect();
        let _ = std::fs::remove_dir_all(format!("/artifacts/{CLASSES}"));
        std::fs::create_dir_all(format!("/artifacts/{CLASSES}"))
            .and_then(|()| std::fs::write(format!("/artifacts/{SOURCE_LIST}"), host_sources.join("\n") + "\n"))
            .map_err(|e| Error::new(format!("cannot prepare the build folder: {e}")))?;
        log::info(&format!("compiling {} Java files", sources.len()));
        let compiled = process::run_checked(
            &Command::new("javac")
                .arg("-encoding")
                .arg("UTF-8")
                .arg("-d")
                .arg(&format!("{artifacts}/{CLASSES}"))
                .arg(&format!("@{artifacts}/{SOURCE_LIST}")),
            "compiling",
        );
        let file = format!("{}-{version}.jar", package.name);
        let packed = compiled.and_then(|()| {
            let mut jar = Command::new("jar")
                .arg("--create")
                .arg(&format!("--file={artifacts}/{file}"))
                .arg("--date=1980-01-01T00:00:02Z");
            if let Some(main) = settings["main_class"].as_str() {
                jar = jar.arg(&format!("--main-class={main}"));
            }
            jar = jar.arg("-C").arg(&format!("{artifacts}/{CLASSES}")).arg(".");
            if std::path::Path::new(&format!("/package/{RESOURCES}")).is_dir() {
                jar = jar.arg("-C").arg(&format!("{}/{RESOURCES}", folders.package)).arg(".");
            }
            process::run_checked(&jar, "packing the jar")
        });
        let _ = std::fs::remove_dir_all(format!("/artifacts/{CLASSES}"));
        let _ = std::fs::remove_file(format!("/artifacts/{SOURCE_LIST}"));
        packed?;
        Ok(vec![loktar_sdk::file_artifact("jar", &package.name, &version, &file)?])
    }
}

/// Every `.java` file below `dir`, as guest paths.
fn java_files(dir: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            java_files(&path, found);
        } else if path.ends_with(".java") {
            found.push(path);
        }
    }
}

/// `build_info.version`, else the project's own `<version>` in `pom.xml`.
fn project_version(settings: &serde_json::Value) -> Result<String, Error> {
    if let Some(version) = settings["version"].as_str() {
        return Ok(version.to_string());
    }
    let pom = std::fs::read_to_string("/package/pom.xml").unwrap_or_default();
    pom_version(&pom).ok_or_else(|| {
        Error::new("the jar has no version")
            .with_hint("set `build_info.version`, or a project `<version>` in `pom.xml`")
    })
}

/// The project's `<version>`: the first one outside `<parent>`, `<dependencies>` and the like.
fn pom_version(pom: &str) -> Option<String> {
    let mut text = pom.to_string();
    for nested in ["parent", "dependencies", "dependencyManagement", "build", "plugins", "profiles"] {
        while let (Some(start), Some(end)) = (text.find(&format!("<{nested}>")), text.find(&format!("</{nested}>"))) {
            if end < start {
                break;
            }
            text.replace_range(start..end + nested.len() + 3, "");
        }
    }
    let start = text.find("<version>")? + "<version>".len();
    let end = start + text[start..].find("</version>")?;
    Some(text[start..end].trim().to_string()).filter(|v| !v.is_empty() && !v.contains('$'))
}

loktar_sdk::export!(builder: Jar);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_version_is_not_the_parents_or_a_dependencys() {
        let pom = "<project><parent><version>9</version></parent><dependencies><dependency><version>8</version></dependency></dependencies><version>1.4.0</version></project>";
        assert_eq!(pom_version(pom).as_deref(), Some("1.4.0"));
        assert_eq!(pom_version("<project><version>${revision}</version></project>"), None);
        assert_eq!(pom_version("<project/>"), None);
    }
}
