//! The `jar` builder: the Java sources under `src/main/java` compiled by
//! `javac`, packed with the resources of `src/main/resources` by `jar` — or,
//! for a Maven project (a `pom.xml` in the package), built by Maven offline.
//!
//! - `build_info.build_tool`: `maven` (the default with a `pom.xml`) or
//!   `javac` (the default without). Maven runs `package` with `--offline`
//!   on a scratch copy of the package (its `target/` never lands in the work
//!   tree): the plugins and dependencies come from its local repository —
//!   `~/.m2/repository`, or `-Dmaven.repo.local=…` in `MAVEN_OPTS`, which
//!   the built-in grants pass on. The project's main jar is the artifact.
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
/// Maven's copy of the project, inside the artifact folder while it builds.
const MAVEN_COPY: &str = "maven-project";
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
        let file = format!("{}-{version}.jar", package.name);
        if uses_maven(&settings)? {
            maven(&folders.package, &artifacts, &file)?;
            return Ok(vec![loktar_sdk::file_artifact("jar", &package.name, &version, &file)?]);
        }
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

/// Whether Maven builds the package: `build_info.build_tool`, else whether it has a `pom.xml`.
fn uses_maven(settings: &serde_json::Value) -> Result<bool, Error> {
    match settings["build_tool"].as_str() {
        Some("maven") => Ok(true),
        Some("javac") => Ok(false),
        Some(other) => {
            Err(Error::new(format!("`build_info.build_tool` is `{other}`, which the `jar` builder does not know"))
                .with_hint("use `maven` or `javac`"))
        }
        None => Ok(std::path::Path::new("/package/pom.xml").is_file()),
    }
}

/// Builds the Maven project in `package` (host path) offline and copies its
/// main jar to `artifacts/file`.
fn maven(package: &str, artifacts: &str, file: &str) -> Result<(), Error> {
    let pom = std::fs::read_to_string("/package/pom.xml")
        .map_err(|e| Error::new(format!("cannot read `pom.xml`: {e}")).with_hint("Maven builds need one"))?;
    let (artifact_id, pom_version) = match (pom_field(&pom, "artifactId"), pom_field(&pom, "version")) {
        (Some(id), Some(version)) => (id, version),
        _ => {
            return Err(Error::new("`pom.xml` has no project `<artifactId>` and `<version>` of its own")
                .with_hint("Maven names the jar after them; set both in the project"));
        }
    };
    // Maven writes `target/` beside the pom: it works on a copy, so the work tree stays clean.
    let _ = std::fs::remove_dir_all(format!("/artifacts/{MAVEN_COPY}"));
    std::fs::create_dir_all(format!("/artifacts/{MAVEN_COPY}"))
        .map_err(|e| Error::new(format!("cannot prepare the build folder: {e}")))?;
    let copy = format!("{artifacts}/{MAVEN_COPY}");
    let built = process::run_checked(
        &Command::new("cp").arg("-R").arg(&format!("{package}/.")).arg(&copy),
        "copying the project",
    )
    .and_then(|()| {
        log::info("building with Maven, offline");
        let status = process::run(
            &Command::new("mvn")
                .arg("--offline")
                .arg("--batch-mode")
                .arg("--no-transfer-progress")
                .arg("--file")
                .arg(&format!("{copy}/pom.xml"))
                .arg("-DskipTests")
                .arg("-Dproject.build.outputTimestamp=1980-01-01T00:00:02Z")
                .arg("package"),
        )?;
        if status.success() {
            return Ok(());
        }
        let how = status.code.map_or_else(|| "was stopped".to_string(), |code| format!("exited with {code}"));
        Err(Error::new(format!("Maven failed: `mvn` {how}")).with_hint(
            "its output is in the stage log above; Maven runs offline, so every plugin and dependency must be \
                 in its local repository (`~/.m2/repository`, or `-Dmaven.repo.local=…` in `MAVEN_OPTS`)",
        ))
    })
    .and_then(|()| {
        let jar = format!("/artifacts/{MAVEN_COPY}/target/{artifact_id}-{pom_version}.jar");
        std::fs::copy(&jar, format!("/artifacts/{file}")).map(|_| ()).map_err(|e| {
            Error::new(format!("Maven did not make `target/{artifact_id}-{pom_version}.jar`: {e}"))
                .with_hint("the `jar` builder takes the project's main jar; keep Maven's default `finalName`")
        })
    });
    let _ = std::fs::remove_dir_all(format!("/artifacts/{MAVEN_COPY}"));
    built
}

/// `build_info.version`, else the project's own `<version>` in `pom.xml`.
fn project_version(settings: &serde_json::Value) -> Result<String, Error> {
    if let Some(version) = settings["version"].as_str() {
        return Ok(version.to_string());
    }
    let pom = std::fs::read_to_string("/package/pom.xml").unwrap_or_default();
    pom_field(&pom, "version").ok_or_else(|| {
        Error::new("the jar has no version")
            .with_hint("set `build_info.version`, or a project `<version>` in `pom.xml`")
    })
}

/// The project's own `<field>` (`version`, `artifactId`): the first one
/// outside `<parent>`, `<dependencies>` and the like.
fn pom_field(pom: &str, field: &str) -> Option<String> {
    let mut text = pom.to_string();
    for nested in ["parent", "dependencies", "dependencyManagement", "build", "plugins", "profiles"] {
        while let (Some(start), Some(end)) = (text.find(&format!("<{nested}>")), text.find(&format!("</{nested}>"))) {
            if end < start {
                break;
            }
            text.replace_range(start..end + nested.len() + 3, "");
        }
    }
    let (open, close) = (format!("<{field}>"), format!("</{field}>"));
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(text[start..end].trim().to_string()).filter(|v| !v.is_empty() && !v.contains('$'))
}

loktar_sdk::export!(builder: Jar);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_version_is_not_the_parents_or_a_dependencys() {
        let pom = "<project><parent><version>9</version></parent><dependencies><dependency><version>8</version></dependency></dependencies><version>1.4.0</version></project>";
        assert_eq!(pom_field(pom, "version").as_deref(), Some("1.4.0"));
        assert_eq!(pom_field("<project><version>${revision}</version></project>", "version"), None);
        assert_eq!(pom_field("<project/>", "version"), None);
        let pom = "<project><parent><artifactId>base</artifactId></parent><artifactId>tool</artifactId></project>";
        assert_eq!(pom_field(pom, "artifactId").as_deref(), Some("tool"));
    }
}
