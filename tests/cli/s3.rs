//! The `s3` storage against a real S3 server (`s3_server`: s3s-fs in this
//! process, checking every request's SigV4 signature), read back with an
//! independent client.

use crate::s3_server::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::support::TestRepo;

/// `loktar.toml` for a store `s3` on `endpoint`, bucket `bucket`.
fn config(endpoint: &str, bucket: &str, threshold_mib: u64) -> String {
    format!(
        "[stores.s3]\nkind = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"{bucket}\"\nprefix = \"ci\"\n\
         access_key_secret = \"s3_key\"\nsecret_key_secret = \"s3_secret\"\nmultipart_threshold_mib = {threshold_mib}\n\n\
         [secrets.s3_key]\nenv = \"TEST_S3_KEY\"\n\n[secrets.s3_secret]\nenv = \"TEST_S3_SECRET\"\n"
    )
}

/// A `deb` package `data` whose install tree holds `size` bytes of noise, stored with `s3`.
fn repo(endpoint: &str, bucket: &str, size: usize, threshold_mib: u64) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&config(endpoint, bucket, threshold_mib));
    repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "data", "pkg_type": "deb", "build_info": { "storage_type": "s3",
  "control": { "Package": "data", "Version": "1.0", "Architecture": "all", "Maintainer": "L <l@example.invalid>", "Description": "noise" } } } ] }"#,
    );
    // Noise does not compress, so the package is about `size` bytes.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    std::fs::create_dir_all(repo.path().join("data/root/usr/share/data")).expect("folder");
    std::fs::write(repo.path().join("data/root/usr/share/data/noise.bin"), noise).expect("noise");
    repo.commit("data package");
    repo
}

fn run(repo: &TestRepo, key: &str, secret: &str) -> crate::support::Run {
    repo.loktar_with_env(&["run", "--all"], &[("TEST_S3_KEY", key), ("TEST_S3_SECRET", secret)])
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn no_canary_in(repo: &TestRepo, run: &crate::support::Run) {
    let outputs = [run.stdout.as_str(), run.stderr.as_str()];
    crate::support::assert_secrets_hidden(&[SECRET_KEY], &outputs, &repo.path().join(".loktar/runs"));
}

#[test]
fn s3_uploads_what_an_independent_client_reads_back_and_a_rerun_uploads_nothing() {
    let server = S3Server::start(&["artifacts"]);
    let repo = repo(&server.endpoint, "artifacts", 64 * 1024, 64);
    let first = run(&repo, ACCESS_KEY, SECRET_KEY).expect_code(0);
    no_canary_in(&repo, &first);
    let deb = repo.path().join(".loktar/runs/1/data/artifacts/data_1.0_all.deb");
    let local = std::fs::read(&deb).expect("the built package");
    let remote = server.read("artifacts", "ci/data/1.0/data_1.0_all.deb");
    assert_eq!(sha256(&remote), sha256(&local));
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/data/store.log")).expect("store log");
    assert!(log.contains("at s3://artifacts/ci/data/1.0/data_1.0_all.deb"), "{log}");

    // The same commit again: nothing is uploaded (the object on the server is not rewritten).
    let object = server.root.path().join("artifacts/ci/data/1.0/data_1.0_all.deb");
    let written = std::fs::metadata(&object).and_then(|m| m.modified()).expect("object on disk");
    std::thread::sleep(std::time::Duration::from_millis(20));
    run(&repo, ACCESS_KEY, SECRET_KEY).expect_code(0);
    assert_eq!(std::fs::metadata(&object).and_then(|m| m.modified()).ok(), Some(written));
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/2/data/store.log")).expect("store log");
    assert!(log.contains("is already stored with the same content"), "{log}");
}

#[test]
fn s3_uploads_large_files_in_parts() {
    let server = S3Server::start(&["artifacts"]);
    let repo = repo(&server.endpoint, "artifacts", 12 << 20, 5);
    run(&repo, ACCESS_KEY, SECRET_KEY).expect_code(0);
    let local = std::fs::read(repo.path().join(".loktar/runs/1/data/artifacts/data_1.0_all.deb")).expect("package");
    assert!(local.len() > 10 << 20, "the package is large enough for parts");
    let remote = server.read("artifacts", "ci/data/1.0/data_1.0_all.deb");
    assert_eq!(sha256(&remote), sha256(&local));
}

#[test]
fn s3_errors_are_clear_and_never_show_the_secret() {
    let server = S3Server::start(&["artifacts"]);
    let wrong = repo(&server.endpoint, "artifacts", 1024, 64);
    let run_wrong = run(&wrong, ACCESS_KEY, "not-the-secret").expect_code(1);
    assert!(
        run_wrong
            .stdout
            .contains("data store: plugin `s3`: store `s3`: look up `data/1.0/data_1.0_all.deb` failed with"),
        "{}",
        run_wrong.stdout
    );
    assert!(run_wrong.stdout.contains("hint: the server refused the credentials"), "{}", run_wrong.stdout);

    let missing = repo(&server.endpoint, "no-such-bucket", 1024, 64);
    let run_missing = run(&missing, ACCESS_KEY, SECRET_KEY).expect_code(1);
    assert!(
        run_missing.stdout.contains("store `s3`: bucket `no-such-bucket` does not exist on"),
        "{}",
        run_missing.stdout
    );
    assert!(
        run_missing.stdout.contains("hint: create it, or fix `bucket` under `[stores.s3]`"),
        "{}",
        run_missing.stdout
    );
    no_canary_in(&missing, &run_missing);

    let endpoint = server.endpoint.clone();
    drop(server);
    let down = repo(&endpoint, "artifacts", 1024, 64);
    let run_down = run(&down, ACCESS_KEY, SECRET_KEY).expect_code(1);
    assert!(run_down.stdout.contains(&format!("cannot reach the S3 server at `{endpoint}`")), "{}", run_down.stdout);

    let unset = run(&down, "", "");
    assert!(unset.stdout.contains("store `s3`: secret `s3_key` is not set"), "{}", unset.stdout);
}
