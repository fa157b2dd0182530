//! Hostile output: floods of log output from programs and plugins (empty
//! lines, one line that never ends, `yes`) and programs that print secrets.
//!
//! Each flooded run must end with a clear message and exit code 1, keep the
//! stage log file within the cap, and keep Loktar's memory bounded: its
//! peak resident size (`VmHWM` in `/proc/<pid>/status`, read while it runs)
//! may exceed that of a quiet run by [`HEADROOM_KIB`] at most. Each run that
//! prints a secret must leave its value in no output and no file it wrote.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{TestRepo, assert_secrets_hidden, files_below, loktar_command, run_bounded, test_plugin};

/// How much more memory than a quiet run a flooded one may take: the 4 MiB
/// log, its 65 536 lines and their events, with room to spare. Before the
/// cap counted lines, 30 MB of empty lines took 1.9 GB.
const HEADROOM_KIB: u64 = 96 * 1024;

/// The longest a flooded run may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// The default log cap, as the failure message says it.
const CAP_MESSAGE: &str = "wrote more than 4096 KiB of log output and was stopped";

/// The line a full log ends with.
const FULL_NOTE: &str = "-- loktar: the log is full (`4096` KiB or `65536` lines); output past this line is dropped";

/// A secret value no test writes anywhere but into Loktar's environment.
const CANARY: &str = "canary-5e0f7a13c9d2b864";

/// A multi-line secret, as a PEM key is; each body line is a canary of its own.
const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
                   b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
                   QyNTUxOQAAACBxK1cfGq3k7sW9Yc0lZ8mT2yPqXoVdJ4uNc1aHbFfE8wAAAJgcV3RxHFd0\n\
                   cQAAAAtzc2gtZWQyNTUxOQAAACBxK1cfGq3k7sW9Yc0lZ8mT2yPqXoVdJ4uNc1aHbFfE8w\n\
                   -----END OPENSSH PRIVATE KEY-----\n";

/// What a measured `loktar run` did.
#[derive(Debug)]
struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    /// Peak resident memory, in KiB.
    peak_kib: u64,
    took: Duration,
}

/// A repository with one package `flood`, tested by `test_type` with
/// `build_info`, its Makefile's `ci` rule running `ci` (one command a line).
fn repo(test_type: &str, build_info: &str, ci: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        &format!(
            r#"{{ "packages": [ {{ "pkg_name": "flood", "test_type": "{test_type}", "build_info": {build_info} }} ] }}"#
        ),
    );
    let recipe: String = ci.lines().map(|line| format!("\t@{line}\n")).collect();
    repo.write("flood/Makefile", &format!("ci:\n{recipe}\nclean:\n\t@echo cleaned\n"));
    repo.commit("a package");
    repo
}

/// The host configuration, outside the repository: the hostile plugin, the
/// two secrets handed to `make` through `env`, and the default log cap.
fn host_config(process_timeout_secs: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("loktar-operator").tempdir().expect("temp dir");
    let path = dir.path().join("loktar.toml");
    let text = format!(
        "[plugins.hostile]\npath = {:?}\nrole = \"tester\"\ncapabilities = [\"log\", \"process\"]\nprograms = [\"make\"]\n\n\
         [plugins.make]\nenv = [\"LOKTAR_TEST_CANARY\", \"LOKTAR_TEST_PEM\"]\n\n\
         [secrets.canary]\nenv = \"LOKTAR_TEST_CANARY\"\n\n[secrets.pem]\nenv = \"LOKTAR_TEST_PEM\"\n\n\
         [limits]\ntimeout_secs = 60\nprocess_timeout_secs = {process_timeout_secs}\n",
        test_plugin("hostile").display().to_string()
    );
    std::fs::write(&path, text).expect("write the host configuration");
    (dir, path)
}

/// Runs `loktar run --all` on `repo` under `config`, reading its peak
/// resident memory until it exits.
fn run_measured(repo: &TestRepo, config: &Path) -> Measured {
    let started = Instant::now();
    let mut command = loktar_command();
    command
        .current_dir(repo.path())
        .arg("--config")
        .arg(config)
        .args(["run", "--all", "-j", "1"])
        .envs([("LOKTAR_TEST_CANARY", CANARY), ("LOKTAR_TEST_PEM", PEM)]);
    let mut peak_kib = 0;
    // Memory blown by a flood grows for as long as the flood lasts: sampling sees it.
    let run = run_bounded(&mut command, DEADLINE, |pid| {
        if let Some(kib) = peak_rss_kib(&PathBuf::from(format!("/proc/{pid}/status"))) {
            peak_kib = peak_kib.max(kib);
        }
    });
    Measured { code: run.code, stdout: run.stdout, stderr: run.stderr, peak_kib, took: started.elapsed() }
}

/// `VmHWM` of a running process: its peak resident memory so far, in KiB.
fn peak_rss_kib(status_file: &Path) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The peak memory of a quiet run of `make` and of the hostile plugin, once
/// their compiled components are cached (as they are for the floods).
fn quiet_peak_kib() -> u64 {
    static QUIET: OnceLock<u64> = OnceLock::new();
    *QUIET.get_or_init(|| {
        let repo = TestRepo::new();
        repo.write(
            "loktar.json",
            r#"{ "packages": [ { "pkg_name": "quiet", "test_type": "make" },
                { "pkg_name": "calm", "test_type": "hostile", "build_info": { "attack": "none" } } ] }"#,
        );
        repo.write("quiet/Makefile", "ci:\n\t@echo hello\n");
        repo.write("calm/Makefile", "ci:\n\t@echo hello\n");
        repo.commit("quiet packages");
        let (_dir, config) = host_config(60);
        let warm = run_measured(&repo, &config);
        assert_eq!(warm.code, 0, "a quiet run fails:\n{}", warm.stderr);
        let quiet = run_measured(&repo, &config);
        assert_eq!(quiet.code, 0, "a quiet run fails:\n{}", quiet.stderr);
        eprintln!("quiet run: peak {} KiB in {:?}", quiet.peak_kib, quiet.took);
        quiet.peak_kib
    })
}

/// Floods the log of package `flood` and checks how the run ended.
#[track_caller]
fn flood(shape: &str, plugin: &str, repo: &TestRepo, process_timeout_secs: u64) -> Measured {
    let quiet = quiet_peak_kib();
    let (_dir, config) = host_config(process_timeout_secs);
    let run = run_measured(repo, &config);
    eprintln!("{shape}: exit {}, peak {} KiB (quiet run {quiet} KiB) in {:?}", run.code, run.peak_kib, run.took);
    assert_eq!(run.code, 1, "{shape}: unexpected exit code\n--- stderr\n{}", run.stderr);
    assert!(
        run.stderr.contains("✗ flood: test failed in")
            && run.stderr.contains(&format!("plugin `{plugin}` {CAP_MESSAGE}")),
        "{shape}: no clear message on stderr:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains(FULL_NOTE), "{shape}: the lines shown do not say the log is full:\n{}", run.stderr);
    assert!(run.peak_kib > 0, "{shape}: the peak memory of loktar could not be read");
    assert!(
        run.peak_kib <= quiet + HEADROOM_KIB,
        "{shape}: loktar peaked at {} KiB, a quiet run at {quiet} KiB",
        run.peak_kib
    );
    let log = stage_log(repo);
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(u64::MAX);
    assert!(size <= 4096 * 1024 + 64 * 1024, "{shape}: the stage log file holds {size} bytes");
    run
}

/// The log file of the `flood` package's test stage in the latest run.
fn stage_log(repo: &TestRepo) -> PathBuf {
    let logs: Vec<PathBuf> = files_below(&repo.path().join(".loktar/runs"))
        .into_iter()
        .filter(|path| path.ends_with("flood/test.log"))
        .collect();
    assert_eq!(logs.len(), 1, "one stage log expected: {logs:?}");
    logs[0].clone()
}

/// The text of the `flood` package's test log.
fn stage_log_text(repo: &TestRepo) -> String {
    String::from_utf8_lossy(&std::fs::read(stage_log(repo)).expect("read the stage log")).into_owned()
}

/// What the notes of a log say was dropped: (lines, bytes) for each output cut.
fn dropped(log: &str) -> Vec<(u64, u64)> {
    log.lines()
        .filter_map(|line| line.strip_prefix("-- loktar: the log was cut: "))
        .filter_map(|rest| {
            let (lines, rest) = rest.split_once(" line")?;
            let bytes = rest.split_once('(')?.1.split_once(" bytes)")?.0;
            Some((lines.parse().ok()?, bytes.parse().ok()?))
        })
        .collect()
}

#[test]
fn empty_lines_from_a_program_are_capped_by_count() {
    // 30 MB of empty lines on stdout, then on stderr: no text at all, 30 million lines.
    for (shape, ci) in [
        ("empty lines on stdout", "yes '' | head -c 30000000"),
        ("empty lines on stderr", "yes '' | head -c 30000000 >&2"),
    ] {
        let repo = repo("make", "{}", ci);
        flood(shape, "make", &repo, 60);
        let log = stage_log_text(&repo);
        // All but the 65 536 lines kept (one of them the plugin's `running make ci`).
        assert_eq!(dropped(&log)[0], (30_000_000 - 65_535, 30_000_000 - 65_535), "{shape}:\n{}", tail(&log));
    }
}

#[test]
fn one_line_that_never_ends_is_dropped_without_being_kept() {
    // 100 MB without a newline; then the same line followed by ordinary output.
    for (shape, ci, expected) in [
        ("one 100 MB line", "head -c 100000000 /dev/zero | tr '\\0' x", (1, 100_000_000)),
        (
            "one 100 MB line, then more",
            "head -c 100000000 /dev/zero | tr '\\0' x; echo; echo after the flood",
            (2, 100_000_000 + "\nafter the flood\n".len() as u64),
        ),
    ] {
        let repo = repo("make", "{}", ci);
        flood(shape, "make", &repo, 60);
        let log = stage_log_text(&repo);
        assert_eq!(dropped(&log)[0], expected, "{shape}:\n{}", tail(&log));
        assert!(!log.contains("after the flood"), "{shape}: a line past the cap was kept");
    }
}

#[test]
fn yes_is_drained_to_its_end_and_stopped_by_its_timeout() {
    let repo = repo("make", "{}", "yes | head -c 100000000");
    flood("100 MB of `yes`", "make", &repo, 60);
    let log = stage_log_text(&repo);
    let lines = 50_000_000 - 65_535;
    assert_eq!(dropped(&log)[0], (lines, 2 * lines), "{}", tail(&log));

    // `yes` alone never ends: drained at constant memory until the process timeout stops it.
    let repo = self::repo("make", "{}", "yes");
    let run = flood("endless `yes`", "make", &repo, 3);
    assert!(run.took >= Duration::from_secs(3), "`yes` was stopped after {:?}, before its timeout", run.took);
    let log = stage_log_text(&repo);
    assert!(dropped(&log)[0].0 > 1_000_000, "`yes` was not drained:\n{}", tail(&log));
}

#[test]
fn a_plugin_flooding_its_stdout_is_stopped() {
    for (shape, attack) in [("println!() in a loop", "flood-blank"), ("print! of one endless line", "flood-giant")] {
        let repo = repo("hostile", &format!(r#"{{ "attack": "{attack}" }}"#), "true");
        flood(shape, "hostile", &repo, 60);
    }
}

#[test]
fn a_secret_a_program_prints_shows_nowhere() {
    let repo = repo(
        "make",
        "{}",
        "echo \"the token is $$LOKTAR_TEST_CANARY\"\n\
         echo \"twice: $${LOKTAR_TEST_CANARY}$${LOKTAR_TEST_CANARY}.\"\n\
         echo \"on stderr: $$LOKTAR_TEST_CANARY\" >&2\n\
         exit 3",
    );
    let (_dir, config) = host_config(60);
    let run = run_measured(&repo, &config);
    assert_eq!(run.code, 1, "{}", run.stderr);
    // The lines under the failed stage on stderr, the log file and the run record.
    assert!(run.stderr.contains("│ the token is [secret]"), "{}", run.stderr);
    let log = stage_log_text(&repo);
    // Stdout's lines in their order; stderr's line anywhere (two pipes are read side by side).
    assert!(log.contains("the token is [secret]\ntwice: [secret].\n"), "{log}");
    assert!(log.contains("on stderr: [secret]\n"), "{log}");
    assert_secrets_hidden(&[CANARY, &CANARY[..16]], &[&run.stdout, &run.stderr], &repo.path().join(".loktar"));
}

#[test]
fn a_multi_line_secret_is_hidden_line_by_line() {
    let repo = repo("make", "{}", "printf '%s\\n' \"$$LOKTAR_TEST_PEM\"\nexit 1");
    let (_dir, config) = host_config(60);
    let run = run_measured(&repo, &config);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let log = stage_log_text(&repo);
    assert!(log.contains("[secret]\n[secret]\n[secret]\n[secret]\n[secret]\n"), "{log}");
    let lines: Vec<&str> = PEM.lines().collect();
    assert_secrets_hidden(&lines, &[&run.stdout, &run.stderr], &repo.path().join(".loktar"));
}

/// The end of a long log, for assertion messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
