//! A PostgreSQL server of a test's own: Debian's PostgreSQL (installed by
//! `scripts/setup`), `initdb` into a temporary folder, on a free port of
//! 127.0.0.1, with a password, stopped when the test ends. As root (CI),
//! PostgreSQL runs as the `postgres` user, as it refuses root. Shared by the
//! store's tests and the command line's (`#[path]`-included there).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The user the tests connect as.
pub const USER: &str = "loktar";
/// Its password.
pub const PASSWORD: &str = "pg-test-password-5e1d";

/// A running PostgreSQL server of the test's own.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The folder of Debian's PostgreSQL programs (the newest installed).
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    found.pop().expect("PostgreSQL is not installed in /usr/lib/postgresql: run scripts/setup")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| std::os::unix::fs::MetadataExt::uid(&meta) == 0)
}

/// `program` from PostgreSQL's folder, as the `postgres` user when this is root.
fn command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Postgres {
    /// Makes a cluster and starts it.
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new().prefix("loktar-pg").tempdir().expect("temp dir");
        let bin = bin_dir();
        if is_root() {
            let uid = |field: usize| -> u32 {
                let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
                let line =
                    passwd.lines().find(|l| l.starts_with("postgres:")).expect("a `postgres` user (scripts/setup)");
                line.split(':').nth(field).and_then(|n| n.parse().ok()).expect("its ids")
            };
            std::os::unix::fs::chown(dir.path(), Some(uid(2)), Some(uid(3))).expect("give the folder to postgres");
        }
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).expect("write the password");
        if is_root() {
            std::fs::set_permissions(&password_file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .expect("let postgres read the password");
        }
        let mut initdb = command(&bin, "initdb");
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
            .arg(format!("--pwfile={}", password_file.display()));
        run(initdb, "initdb");
        let server = Postgres { dir, bin, port: free_port() };
        server.pg_ctl_start();
        server
    }

    fn pg_ctl_start(&self) {
        let mut start = command(&self.bin, "pg_ctl");
        start
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
                self.port,
                self.dir.path().display()
            ))
            .arg("start")
            .stdout(Stdio::null());
        run(start, "pg_ctl start");
    }

    /// The URL of database `name`, without the password.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Makes a new, empty database; its URL, without the password.
    pub fn create_database(&self, name: &str) -> String {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER, "-d", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\""))
            .env("PGPASSWORD", PASSWORD);
        run(psql, "CREATE DATABASE");
        self.url(name)
    }
}

impl Postgres {
    /// Stops it (`pg_ctl stop -m fast`: connections are closed), as an operator's restart would.
    #[allow(dead_code, reason = "not every test crate stops its server")]
    pub fn stop(&self) {
        let mut stop = command(&self.bin, "pg_ctl");
        stop.arg("-D").arg(self.dir.path().join("data")).args(["-m", "fast", "-w", "stop"]).stdout(Stdio::null());
        run(stop, "pg_ctl stop");
    }

    /// Starts it again after [`Postgres::stop`], on the same port with the same data.
    #[allow(dead_code, reason = "not every test crate stops its server")]
    pub fn start_again(&self) {
        self.pg_ctl_start();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = command(&self.bin, "pg_ctl");
        stop.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}
