//! The test harness: scratch git repositories and a runner for `loktar`
//! whose output is filtered of what varies between runs (paths, hashes).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A git repository in a temporary folder, removed on drop, and the host
/// configuration its runs use, kept outside it as an operator's would be.
pub struct TestRepo {
    dir: tempfile::TempDir,
    host: tempfile::TempDir,
}

/// What a `loktar` run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// The stdout of a successful run.
    #[track_caller]
    pub fn ok(self) -> String {
        self.expect_code(0).stdout
    }

    /// Asserts that stdout says each of `texts`, showing it when it does not.
    #[track_caller]
    pub fn says(&self, texts: &[&str]) -> &Run {
        for text in texts {
            assert!(self.stdout.contains(text), "stdout does not say {text:?}:\n{}", self.stdout);
        }
        self
    }

    /// The stdout parsed as JSON.
    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let stdout = self.ok();
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"))
    }
}

impl TestRepo {
    /// An empty repository whose default branch is `main`.
    pub fn new() -> TestRepo {
        let dir = tempfile::Builder::new().prefix("loktar-test").tempdir().expect("temp dir");
        let host = tempfile::Builder::new().prefix("loktar-host").tempdir().expect("temp dir");
        let repo = TestRepo { dir, host };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    /// An empty repository like [`TestRepo::new`], in a folder made inside `parent`
    /// (a small file system, say); its host configuration stays in the system's temp folder.
    pub fn new_in(parent: &Path) -> TestRepo {
        let dir = tempfile::Builder::new().prefix("loktar-test").tempdir_in(parent).expect("temp dir");
        let host = tempfile::Builder::new().prefix("loktar-host").tempdir().expect("temp dir");
        let repo = TestRepo { dir, host };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    /// The repository in the layout of Loktar's own example, committed on `main`:
    /// `webfront` → `pet_api` → `awesome_lib`, and `rest_services/stock_api` not in CI.
    pub fn seed() -> TestRepo {
        let repo = TestRepo::new();
        repo.write(
            "loktar.json",
            r#"{ "packages": [
  { "pkg_type": "docker", "pkg_name": "pet_api", "test_type": "make", "type": "service",
    "pkg_dir": "rest_services/pet_api", "depends_on": ["awesome_lib"],
    "build_info": { "build_type": "url", "registry_type": "quay", "storage_type": "s3" } },
  { "pkg_type": "whl", "pkg_name": "awesome_lib", "test_type": "make", "type": "library" },
  { "pkg_type": "docker", "pkg_name": "webfront", "test_type": "make", "type": "service",
    "depends_on": ["pet_api"] }
] }
"#,
        );
        repo.write("webfront/index.html", "<p>pets</p>\n");
        repo.write("awesome_lib/setup.py", "# setup\n");
        repo.write("awesome_lib/awesome_lib/__init__.py", "# lib\n");
        repo.write("rest_services/pet_api/app.py", "# api\n");
        repo.write("rest_services/stock_api/app.py", "# not in CI\n");
        repo.commit("ENH: initial");
        repo
    }

    /// The repository's root folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the host configuration (`loktar.toml` outside the repository)
    /// that every `loktar` run of this repository is given through `LOKTAR_CONFIG`.
    pub fn host_config(&self, content: &str) {
        std::fs::write(self.host_config_path(), content).expect("write the host configuration");
    }

    /// Where [`TestRepo::host_config`] writes.
    pub fn host_config_path(&self) -> PathBuf {
        self.host.path().join("loktar.toml")
    }

    /// Writes a file, creating its folders.
    pub fn write(&self, path: &str, content: &str) {
        let full = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(full, content).expect("write file");
    }

    /// Removes a file or folder.
    pub fn remove(&self, path: &str) {
        let full = self.path().join(path);
        if full.is_dir() {
            std::fs::remove_dir_all(full).expect("remove folder");
        } else {
            std::fs::remove_file(full).expect("remove file");
        }
    }

    /// Runs git in the repository and returns its trimmed stdout.
    #[track_caller]
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(self.path())
            .args([
                "-c",
                "user.name=Loktar Test",
                "-c",
                "user.email=test@example.invalid",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .expect("run git");
        assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Stages everything and commits; returns the new commit's hash.
    #[track_caller]
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// A bare repository, added as the `origin` remote, with `main` pushed to it: the
    /// origin a server clones and a developer pushes to.
    pub fn push_to_new_origin(&self) -> tempfile::TempDir {
        let origin = tempfile::Builder::new().prefix("loktar-origin").tempdir().expect("temp dir");
        let bare = origin.path().display().to_string();
        self.git(&["init", "--quiet", "--bare", &bare]);
        self.git(&["remote", "add", "origin", &bare]);
        self.git(&["push", "--quiet", "origin", "main"]);
        origin
    }

    /// Runs `loktar args…` with the repository as the current folder.
    pub fn loktar(&self, args: &[&str]) -> Run {
        self.loktar_in(self.path(), args)
    }

    /// Runs `loktar args…` in `dir`.
    pub fn loktar_in(&self, dir: &Path, args: &[&str]) -> Run {
        self.run_loktar(dir, args, &[])
    }

    /// Runs `loktar args…` in the repository with extra environment variables (secrets, say).
    pub fn loktar_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_loktar(self.path(), args, env)
    }

    /// A `loktar` command for this repository: [`loktar_command`] with its host configuration, if written.
    pub fn command(&self) -> Command {
        let mut command = loktar_command();
        let config = self.host_config_path();
        if config.is_file() {
            command.env("LOKTAR_CONFIG", config);
        }
        command.current_dir(self.path());
        command
    }

    fn run_loktar(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = self.command().current_dir(dir).args(args).envs(env.iter().copied()).output().expect("run loktar");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Replaces what varies between runs, for snapshots: the repository path and commit hashes.
    pub fn filter(&self, text: &str) -> String {
        let mut text = text.replace(&self.path().display().to_string(), "[REPO]");
        if let Ok(real) = self.path().canonicalize() {
            text = text.replace(&real.display().to_string(), "[REPO]");
        }
        replace_hashes(&text)
    }
}

/// Every file below `dir` (none when it does not exist); links to folders are not followed.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            found.extend(files_below(&path))
        } else {
            found.push(path)
        }
    }
    found
}

/// Asserts that none of `secrets` shows in `outputs` (a run's stdout and
/// stderr) or in any file below `dir` (its logs and records).
#[track_caller]
pub fn assert_secrets_hidden(secrets: &[&str], outputs: &[&str], dir: &Path) {
    for secret in secrets {
        assert!(!outputs.iter().any(|output| output.contains(secret)), "a secret leaked into the output");
        for file in files_below(dir) {
            let text = std::fs::read(&file).unwrap_or_default();
            assert!(!String::from_utf8_lossy(&text).contains(secret), "a secret leaked into {}", file.display());
        }
    }
}

/// A `loktar` command with an environment that does not leak the caller's settings.
pub fn loktar_command() -> Command {
    let mut command = Command::new(loktar_bin());
    for var in [
        "LOKTAR_BASE",
        "LOKTAR_HEAD",
        "LOKTAR_REPO",
        "LOKTAR_DEFAULT_BRANCH",
        "LOKTAR_SERVER",
        "LOKTAR_TOKEN",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    // No host configuration but the one a test gives: not the machine user's either.
    let no_user_config = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-user-config");
    command
        .env("NO_COLOR", "1")
        .env("LOKTAR_CACHE_DIR", wasm_cache_dir())
        .env_remove("LOKTAR_CONFIG")
        .env("XDG_CONFIG_HOME", no_user_config)
        // The key of the compile cache, shared like the cache: not the machine user's.
        .env("XDG_DATA_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-data"));
    command
}

/// One compile cache for every test, so no component is compiled twice.
pub fn wasm_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache")
}

/// The test-only plugins of `tests/plugins`, built once for `wasm32-wasip2`;
/// returns the component file of `name` (`hostile`, `sockets`, `shout`, `noop`, `zip`, `shelf`, `vault`, `bell`).
pub fn test_plugin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let target = BUILT.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-plugins");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/plugins/Cargo.toml");
        // One build per role: cargo would unify the SDK's role features across one build.
        let roles: [&[&str]; 5] =
            [&["hostile", "sockets", "shout", "noop"], &["zip"], &["shelf"], &["vault"], &["bell"]];
        for crates in roles {
            let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cargo
                .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
                .arg("--manifest-path")
                .arg(&manifest);
            for crate_name in crates {
                cargo.args(["-p", &format!("loktar-test-plugin-{crate_name}")]);
            }
            for var in
                ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"]
            {
                cargo.env_remove(var);
            }
            let status = cargo.arg("--target-dir").arg(&target).status().expect("run cargo");
            assert!(status.success(), "building the test plugins {crates:?} failed");
        }
        target
    });
    target.join("wasm32-wasip2/release").join(format!("loktar_test_plugin_{name}.wasm"))
}

/// The binary cargo built for these tests.
pub fn loktar_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_loktar"))
}

/// Replaces runs of 10 or 40 hex digits (short and full commit hashes) with `[SHA]`.
///
/// A run is every lowercase hex digit between two other characters, and
/// holds a digit: `filter` feeds plain assertions as well as snapshots, so
/// this is done here rather than with insta's filters.
fn replace_hashes(text: &str) -> String {
    static HEX: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new("[0-9a-f]+").expect("a valid pattern"));
    HEX.replace_all(text, |hex: &regex::Captures<'_>| {
        let run = &hex[0];
        if matches!(run.len(), 10 | 40) && run.bytes().any(|b| b.is_ascii_digit()) { "[SHA]" } else { run }.to_string()
    })
    .into_owned()
}

/// Runs `command` (its output piped and read as it comes) to its end,
/// calling `watch` with its pid every 2 ms meanwhile; after `deadline` it is
/// killed and the test fails, so no test waits forever on a hang.
#[track_caller]
pub fn run_bounded(command: &mut Command, deadline: std::time::Duration, mut watch: impl FnMut(u32)) -> Run {
    use std::io::Read;
    use std::process::Stdio;
    let started = std::time::Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the command");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        watch(child.id());
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Polls `done` every 20 ms for at most `seconds`; whether it became true.
/// (A killed process is gone a moment after `kill` returns, not at once.)
pub fn within(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

/// Pids of running processes whose command line is `sleep <seconds>`.
pub fn sleeping(seconds: &str) -> Vec<u32> {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| line == wanted.as_bytes()))
        .collect()
}
