//! The builders on real fixtures, checked with the real consumers: wheels
//! are installed with pip into a scratch virtual environment and imported.

use std::path::Path;
use std::process::Command;

use crate::support::TestRepo;

const SETUP_PY: &str =
    "from setuptools import setup\n\nsetup(name=\"tiny-lib\", version=\"1.2.0\", packages=[\"tiny_lib\"])\n";

/// A repository with one `whl` package, `tiny_lib`, committed on `main`.
fn wheel_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "tiny_lib", "pkg_type": "whl", "test_type": "no-test", "type": "library" } ] }"#,
    );
    repo.write("tiny_lib/setup.py", SETUP_PY);
    repo.write("tiny_lib/tiny_lib/__init__.py", "def shout(text):\n    return text.upper() + \"!\"\n");
    repo.commit("a library");
    repo
}

/// The wheels a run built for `package`.
fn wheels(repo: &TestRepo, run: u32, package: &str) -> Vec<std::path::PathBuf> {
    let folder = repo.path().join(format!(".loktar/runs/{run}/{package}/artifacts"));
    let mut found: Vec<_> = std::fs::read_dir(&folder)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|path| path.extension().is_some_and(|e| e == "whl"));
    found
}

/// Installs `wheel` into a fresh virtual environment and runs `code` with its python.
fn install_and_run(wheel: &Path, code: &str) -> String {
    let venv = tempfile::tempdir().expect("temp dir");
    let made = Command::new("python3").args(["-m", "venv"]).arg(venv.path()).status().expect("python3 -m venv");
    assert!(made.success(), "cannot make a virtual environment");
    let python = venv.path().join("bin/python");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check"])
        .arg(wheel)
        .output()
        .expect("pip install");
    assert!(installed.status.success(), "pip install failed: {}", String::from_utf8_lossy(&installed.stderr));
    let ran = Command::new(&python).args(["-c", code]).output().expect("python");
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    String::from_utf8_lossy(&ran.stdout).trim().to_string()
}

#[test]
fn whl_builds_an_installable_wheel_with_the_release_version_on_the_default_branch() {
    let repo = wheel_repo();
    let summary = repo.loktar(&["run", "--all", "--stage", "build", "--format", "json"]).json();
    let artifact = &summary["packages"][0]["artifacts"][0];
    assert_eq!(
        (&artifact["kind"], &artifact["name"], &artifact["version"]),
        (&"wheel".into(), &"tiny_lib".into(), &"1.2.0".into())
    );
    let built = wheels(&repo, 1, "tiny_lib");
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(built[0].file_name().and_then(|n| n.to_str()), Some("tiny_lib-1.2.0-py3-none-any.whl"));
    let digest = format!("sha256:{}", sha256(&built[0]));
    assert_eq!(artifact["digest"], digest.as_str());
    let printed = install_and_run(
        &built[0],
        "import tiny_lib, importlib.metadata as m; print(tiny_lib.shout('hi'), m.version('tiny-lib'))",
    );
    assert_eq!(printed, "HI! 1.2.0");
    // The build never wrote into the work tree.
    assert_eq!(repo.git(&["status", "--porcelain", "--ignored", "tiny_lib"]), "");
}

#[test]
fn whl_gives_branch_builds_a_local_version_from_branch_and_commit() {
    let repo = wheel_repo();
    repo.git(&["switch", "--quiet", "-c", "feature/Loud"]);
    repo.write("tiny_lib/tiny_lib/__init__.py", "def shout(text):\n    return text.upper() + \"!!\"\n");
    let head = repo.commit("louder");
    let summary = repo.loktar(&["run", "--stage", "build", "--format", "json"]).json();
    let version = format!("1.2.0+feature.loud.{}", &head[..8]);
    assert_eq!(summary["packages"][0]["artifacts"][0]["version"], version.as_str());
    let built = wheels(&repo, 1, "tiny_lib");
    assert_eq!(built.len(), 1, "{built:?}");
    let printed = install_and_run(
        &built[0],
        "import tiny_lib, importlib.metadata as m; print(tiny_lib.shout('hi'), m.version('tiny-lib'))",
    );
    assert_eq!(printed, format!("HI!! {version}"));
}

#[test]
fn whl_errors_name_the_package_and_keep_the_tool_output() {
    let repo = wheel_repo();
    repo.remove("tiny_lib/setup.py");
    repo.commit("no project file");
    let run = repo.loktar(&["run", "--all", "--stage", "build"]).expect_code(1);
    assert!(
        run.stdout.contains("tiny_lib build: plugin `whl`: package `tiny_lib` has no `pyproject.toml` or `setup.py`"),
        "{}",
        run.stdout
    );

    repo.write(
        "tiny_lib/setup.py",
        "from setuptools import setup\nsetup(name=\"tiny-lib\", version=\"1.2.0\", packages=[\"tiny_lib\"]\n",
    );
    repo.commit("broken setup.py");
    let run = repo.loktar(&["run", "--all", "--stage", "build"]).expect_code(1);
    assert!(run.stdout.contains("building the wheel of `tiny_lib` failed: pip exited with 1"), "{}", run.stdout);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/2/tiny_lib/build.log")).expect("build log");
    assert!(log.contains("SyntaxError"), "the tool's output is in the log:\n{log}");
}

fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn fs_storage_keeps_each_version_once_and_never_overwrites_it() {
    let repo = wheel_repo();
    let summary = repo.loktar(&["run", "--all", "--format", "json"]).json();
    let artifact = &summary["packages"][0]["artifacts"][0];
    let stored = repo.path().join(".loktar/artifacts/tiny_lib/1.2.0/tiny_lib-1.2.0-py3-none-any.whl");
    let location = artifact["location"].as_str().unwrap_or_default();
    assert_eq!(
        Path::new(location.strip_prefix("file://").unwrap_or(location)).canonicalize().ok(),
        stored.canonicalize().ok()
    );
    assert_eq!(artifact["digest"], format!("sha256:{}", sha256(&stored)).as_str());
    let stages: Vec<&str> = summary["packages"][0]["stages"]
        .as_array()
        .map(|s| s.iter().map(|s| s["outcome"].as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    assert_eq!(stages, ["skipped", "passed", "skipped", "passed", "skipped"], "test, build, publish, store, notify");

    // The same commit again: the same wheel, byte for byte, found already stored.
    repo.loktar(&["run", "--all"]).ok();
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/2/tiny_lib/store.log")).expect("store log");
    assert!(log.contains("is already stored with the same content"), "{log}");

    // New code under the same version is refused, and the stored wheel is untouched.
    let before = sha256(&stored);
    repo.write("tiny_lib/tiny_lib/__init__.py", "def shout(text):\n    return text\n");
    repo.commit("quieter, same version");
    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    assert!(run.stdout.contains("tiny_lib store: plugin `fs`: `tiny_lib/1.2.0/tiny_lib-1.2.0-py3-none-any.whl` is already stored with different content"), "{}", run.stdout);
    assert!(run.stdout.contains("hint: a stored version is never overwritten"), "{}", run.stdout);
    assert_eq!(sha256(&stored), before);
}

/// A repository with one `deb` package, `hello`: an executable in `root/usr/bin`.
fn deb_repo(control: Option<&str>, build_info: &str) -> TestRepo {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        &format!(r#"{{ "packages": [ {{ "pkg_name": "hello", "pkg_type": "deb", "build_info": {build_info} }} ] }}"#),
    );
    repo.write("hello/root/usr/bin/hello", "#!/bin/sh\necho hello from a deb\n");
    let script = repo.path().join("hello/root/usr/bin/hello");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    repo.write("hello/root/usr/share/doc/hello/README", "docs\n");
    if let Some(control) = control {
        repo.write("hello/root/DEBIAN/control", control);
    }
    repo.commit("a deb package");
    repo
}

const CONTROL_FIELDS: &str = r#"{ "control": { "Package": "hello", "Version": "1.0-1", "Architecture": "all", "Maintainer": "Loktar <ci@example.invalid>", "Description": "says hello" } }"#;

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let output = Command::new("dpkg-deb").args(args).arg(deb).output().expect("dpkg-deb");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn deb_builds_a_package_dpkg_installs_with_modes_and_root_owner() {
    let repo = deb_repo(None, CONTROL_FIELDS);
    let summary = repo.loktar(&["run", "--all", "--format", "json"]).json();
    let artifact = &summary["packages"][0]["artifacts"][0];
    assert_eq!(
        (&artifact["kind"], &artifact["name"], &artifact["version"]),
        (&"deb".into(), &"hello".into(), &"1.0-1".into())
    );
    let deb = repo.path().join(".loktar/runs/1/hello/artifacts/hello_1.0-1_all.deb");
    let info = dpkg_deb(&["--info"], &deb);
    assert!(info.contains(" Package: hello") && info.contains(" Version: 1.0-1"), "{info}");
    let contents = dpkg_deb(&["--contents"], &deb);
    let hello = contents.lines().find(|l| l.ends_with("./usr/bin/hello")).unwrap_or_else(|| panic!("{contents}"));
    assert!(hello.starts_with("-rwxr-xr-x root/root"), "modes kept, owner root: {hello}");
    assert!(contents.contains("./usr/share/doc/hello/README"), "{contents}");
    // Stored by the default storage too; built again from the same commit, it is the same file.
    assert!(repo.path().join(".loktar/artifacts/hello/1.0-1/hello_1.0-1_all.deb").is_file());
    repo.loktar(&["run", "--all"]).ok();

    // Installed with dpkg into a scratch root, it runs.
    let root = tempfile::tempdir().expect("temp dir");
    for folder in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.path().join(folder)).expect("dpkg folders");
    }
    std::fs::write(root.path().join("var/lib/dpkg/status"), "").expect("status");
    let installed = Command::new("dpkg")
        .arg(format!("--root={}", root.path().display()))
        .args(["--log=/dev/null", "--force-not-root", "--force-script-chrootless", "--install"])
        .arg(&deb)
        .output()
        .expect("dpkg");
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    let ran = Command::new(root.path().join("usr/bin/hello")).output().expect("run the installed program");
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from a deb\n");
}

#[test]
fn deb_takes_the_control_file_from_the_tree_and_labels_branch_builds() {
    let control = "Package: hello\nVersion: 2.0\nArchitecture: all\nMaintainer: Loktar <ci@example.invalid>\nDescription: says hello\n";
    let repo = deb_repo(Some(control), "{}");
    repo.git(&["switch", "--quiet", "-c", "fix/typo"]);
    repo.write("hello/root/usr/share/doc/hello/README", "fixed docs\n");
    let head = repo.commit("typo");
    let summary = repo.loktar(&["run", "--stage", "build", "--format", "json"]).json();
    let version = format!("2.0+fix.typo.{}", &head[..8]);
    assert_eq!(summary["packages"][0]["artifacts"][0]["version"], version.as_str());
    let deb = repo.path().join(format!(".loktar/runs/1/hello/artifacts/hello_{version}_all.deb"));
    assert!(dpkg_deb(&["--info"], &deb).contains(&format!(" Version: {version}")));
}

#[test]
fn deb_errors_name_the_file_and_keep_the_tool_output() {
    let repo = deb_repo(Some("Package hello\n"), "{}");
    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    assert!(
        run.stdout
            .contains("hello build: plugin `deb`: `root/DEBIAN/control` line 1: `Package hello` is not `Field: value`"),
        "{}",
        run.stdout
    );

    let bad_depends = CONTROL_FIELDS.replace(r#""Description""#, r#""Depends": "libc6 (>> ", "Description""#);
    repo.write(
        "loktar.json",
        &format!(r#"{{ "packages": [ {{ "pkg_name": "hello", "pkg_type": "deb", "build_info": {bad_depends} }} ] }}"#),
    );
    repo.remove("hello/root/DEBIAN/control");
    repo.commit("control in build_info, broken Depends");
    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    assert!(
        run.stdout.contains("hello build: plugin `deb`: dpkg-deb failed: `dpkg-deb` exited with 2"),
        "{}",
        run.stdout
    );
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/2/hello/build.log")).expect("build log");
    assert!(log.contains("Depends"), "dpkg-deb's complaint is in the log:\n{log}");
}

const MAIN_JAVA: &str = "package com.example;\n\npublic class Main {\n    public static void main(String[] args) {\n        System.out.println(\"hello from java \" + Greeting.WORD);\n    }\n}\n";
const GREETING_JAVA: &str = "package com.example;\n\nclass Greeting {\n    static final String WORD = \"there\";\n}\n";

/// A repository with one `jar` package, `tool`, committed on `main`.
fn jar_repo(build_info: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        &format!(r#"{{ "packages": [ {{ "pkg_name": "tool", "pkg_type": "jar", "build_info": {build_info} }} ] }}"#),
    );
    repo.write("tool/src/main/java/com/example/Main.java", MAIN_JAVA);
    repo.write("tool/src/main/java/com/example/Greeting.java", GREETING_JAVA);
    repo.write("tool/src/main/resources/tool.properties", "greeting=there\n");
    repo.commit("a java tool");
    repo
}

#[test]
fn jar_builds_a_runnable_jar_with_its_resources() {
    let repo = jar_repo(r#"{ "version": "1.0.0", "main_class": "com.example.Main" }"#);
    let summary = repo.loktar(&["run", "--all", "--format", "json"]).json();
    let artifact = &summary["packages"][0]["artifacts"][0];
    assert_eq!((&artifact["kind"], &artifact["version"]), (&"jar".into(), &"1.0.0".into()));
    let jar = repo.path().join(".loktar/runs/1/tool/artifacts/tool-1.0.0.jar");
    let listed = Command::new("jar").arg("tf").arg(&jar).output().expect("jar tf");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for entry in ["com/example/Main.class", "com/example/Greeting.class", "tool.properties", "META-INF/MANIFEST.MF"] {
        assert!(listed.lines().any(|l| l == entry), "`{entry}` missing from:\n{listed}");
    }
    let ran = Command::new("java").arg("-cp").arg(&jar).arg("com.example.Main").output().expect("java");
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from java there\n");
    let ran = Command::new("java").arg("-jar").arg(&jar).output().expect("java -jar");
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from java there\n", "the main class is the entry point");
    // Stored by the default storage; rebuilt from the same commit, the same bytes.
    assert!(repo.path().join(".loktar/artifacts/tool/1.0.0/tool-1.0.0.jar").is_file());
    repo.loktar(&["run", "--all"]).ok();
}

/// A Maven project `com.example:tool:<version>`, built with Debian's plugins.
fn pom(version: &str, dependencies: &str) -> String {
    format!(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n  <modelVersion>4.0.0</modelVersion>\n\
         <groupId>com.example</groupId>\n  <artifactId>tool</artifactId>\n  <version>{version}</version>\n\
         <properties>\n    <maven.compiler.source>17</maven.compiler.source>\n\
         <maven.compiler.target>17</maven.compiler.target>\n\
         <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>\n  </properties>\n\
         <dependencies>{dependencies}</dependencies>\n</project>\n"
    )
}

/// `loktar args…` with Maven pointed at the repository of Debian's Maven plugins (offline).
fn loktar_maven(repo: &TestRepo, args: &[&str]) -> crate::support::Run {
    repo.loktar_with_env(args, &[("MAVEN_OPTS", "-Dmaven.repo.local=/usr/share/maven-repo")])
}

#[test]
fn maven_projects_are_built_offline_by_maven_without_touching_the_work_tree() {
    let repo = jar_repo(r#"{ "main_class": "com.example.Main" }"#);
    repo.write("tool/pom.xml", &pom("1.4.0", ""));
    let head = repo.commit("a Maven project");
    let summary = loktar_maven(&repo, &["run", "--all", "--format", "json"]).json();
    assert_eq!(summary["packages"][0]["artifacts"][0]["version"], "1.4.0");
    let jar = repo.path().join(".loktar/runs/1/tool/artifacts/tool-1.4.0.jar");
    let listed = Command::new("jar").arg("tf").arg(&jar).output().expect("jar tf");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for entry in ["com/example/Main.class", "tool.properties", "META-INF/maven/com.example/tool/pom.properties"] {
        assert!(
            listed.lines().any(|l| l == entry),
            "`{entry}` missing from (Maven packs its pom.properties):\n{listed}"
        );
    }
    let ran = Command::new("java").arg("-cp").arg(&jar).arg("com.example.Main").output().expect("java");
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from java there\n");
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/tool/build.log")).expect("build log");
    assert!(log.contains("BUILD SUCCESS"), "Maven's output is in the log:\n{log}");
    assert!(!repo.path().join("tool/target").exists(), "Maven built a copy, not the work tree");
    assert_eq!(repo.git(&["status", "--porcelain", "--", "tool"]), "");
    assert!(!repo.path().join(".loktar/runs/1/tool/artifacts/maven-project").exists(), "the copy is removed");

    // On a branch, the same jar under Loktar's branch version.
    repo.git(&["switch", "--quiet", "-c", "fix"]);
    let head_fix = repo.commit("a fix");
    assert_ne!(head, head_fix);
    let summary = loktar_maven(&repo, &["run", "--all", "--format", "json"]).json();
    assert_eq!(summary["packages"][0]["artifacts"][0]["version"], format!("1.4.0+fix.{}", &head_fix[..8]).as_str());
}

#[test]
fn maven_failures_keep_its_output_and_say_it_runs_offline() {
    let repo = jar_repo("{}");
    let missing = "<dependency><groupId>org.example.absent</groupId><artifactId>nowhere</artifactId><version>9.9</version></dependency>";
    repo.write("tool/pom.xml", &pom("1.4.0", missing));
    repo.commit("a dependency nobody has");
    let run = loktar_maven(&repo, &["run", "--all"]).expect_code(1);
    run.says(&["tool build: plugin `jar`: Maven failed: `mvn` exited with 1", "Maven runs offline"]);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/tool/build.log")).expect("build log");
    assert!(log.contains("org.example.absent:nowhere:jar:9.9"), "Maven names what it could not resolve:\n{log}");
}

#[test]
fn emr_jars_are_stored_under_prod_on_the_default_branch_and_dev_on_others() {
    let repo = jar_repo(r#"{ "emr": true }"#);
    repo.write("tool/pom.xml", &pom("2.1.0", ""));
    repo.commit("version from the pom");
    loktar_maven(&repo, &["run", "--all"]).ok();
    assert!(repo.path().join(".loktar/artifacts/jars/prod/tool/tool-2.1.0.jar").is_file());
    repo.git(&["switch", "--quiet", "-c", "spark-tuning"]);
    let head = repo.commit("tuning");
    loktar_maven(&repo, &["run", "--all"]).ok();
    let dev = format!(".loktar/artifacts/jars/dev/tool/spark-tuning/tool-2.1.0+spark.tuning.{}.jar", &head[..8]);
    assert!(repo.path().join(dev).is_file());
}

#[test]
fn jar_errors_keep_the_compiler_output() {
    let repo = jar_repo(r#"{ "version": "1.0.0" }"#);
    repo.write(
        "tool/src/main/java/com/example/Greeting.java",
        "package com.example;\nclass Greeting { static final String WORD = 42; }\n",
    );
    repo.commit("type error");
    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    assert!(run.stdout.contains("tool build: plugin `jar`: compiling failed: `javac` exited with 1"), "{}", run.stdout);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/tool/build.log")).expect("build log");
    assert!(log.contains("Greeting.java:2: error: incompatible types"), "javac's output is in the log:\n{log}");

    let repo = jar_repo("{}");
    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    assert!(run.stdout.contains("tool build: plugin `jar`: the jar has no version"), "{}", run.stdout);
}
