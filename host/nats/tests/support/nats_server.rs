//! A `nats-server -js` of a test's own (2.12, from PyPI, installed by
//! `scripts/setup` into `~/.cache/loktar/tools/nats-server`), on a port of
//! 127.0.0.1 it chooses, killed when the test ends. Shared by the NATS
//! queue's tests, the command line's and the cluster benchmark
//! (`#[path]`-included there).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server -js` of the test's own, on a port it chose itself.
pub struct NatsServer {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

/// The `nats-server` `scripts/setup` installs; else the one on the `PATH`.
pub fn binary() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| std::path::PathBuf::from("/root"), std::path::PathBuf::from);
    let installed = home.join(".cache/loktar/tools/nats-server/bin/nats-server");
    if installed.is_file() { installed } else { std::path::PathBuf::from("nats-server") }
}

/// Starts `nats-server` keeping its data and ports file in `dir`: its child and URL.
fn launch(dir: &Path, port: &str) -> (Child, String) {
    let mut child = Command::new(binary())
        .args(["--jetstream", "--addr", "127.0.0.1", "--port", port, "--store_dir"])
        .arg(dir.join("jetstream"))
        .arg("--ports_file_dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server (scripts/setup installs it)");
    let ports = dir.join(format!("nats-server_{}.ports", child.id()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        assert!(child.try_wait().ok().flatten().is_none(), "nats-server stopped at once");
        let written = std::fs::read_to_string(&ports).ok();
        let url = written.and_then(|text| {
            let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
            ports["nats"][0].as_str().map(str::to_string)
        });
        if let Some(url) = url {
            break url;
        }
        assert!(Instant::now() < deadline, "nats-server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    (child, url)
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, url) = launch(dir.path(), "-1");
        NatsServer { child, url, dir }
    }

    /// Kills it (SIGKILL) and starts it again on the same port with the same storage.
    #[allow(dead_code, reason = "not every test crate kills its server")]
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.path().join(format!("nats-server_{}.ports", self.child.id())));
        let port = self.url.rsplit(':').next().unwrap_or_default().to_string();
        let (child, url) = launch(self.dir.path(), &port);
        (self.child, self.url) = (child, url);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
