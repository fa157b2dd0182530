//! A Docker Engine and an image registry for the tests, started here and
//! stopped when dropped — nothing pulled, nothing left running:
//!
//! - [`DockerEngine`]: Debian's `dockerd` with its own data root, exec root
//!   and unix socket in a temporary folder, `--iptables=false
//!   --bridge=none --storage-driver=vfs`, and a base image `busybox:loktar`
//!   made from the static busybox binary (`FROM scratch` + busybox).
//! - [`ImageRegistry`]: Debian's `docker-registry` (distribution v2) on
//!   127.0.0.1 with htpasswd (bcrypt) basic authentication.
//!
//! `scripts/setup` installs `docker.io`, `docker-registry`, `busybox-static`
//! and `apache2-utils` (htpasswd).

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The base image every test Dockerfile starts from.
pub const BASE_IMAGE: &str = "busybox:loktar";

/// How long a service may take to come up.
const STARTUP: Duration = Duration::from_secs(60);

/// A Docker Engine of the test's own.
pub struct DockerEngine {
    dir: TempDir,
    daemon: Child,
}

impl DockerEngine {
    /// Starts `dockerd` and makes the base image.
    pub fn start() -> DockerEngine {
        let dir = tempfile::Builder::new().prefix("lk-docker").tempdir_in("/tmp").expect("temp dir");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("dockerd log");
        let socket = dir.path().join("docker.sock");
        let daemon = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"])
            .args(["--containerd-namespace", "loktar-test", "--containerd-plugins-namespace", "loktar-test-plugins"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd (scripts/setup installs docker.io)");
        let engine = DockerEngine { dir, daemon };
        let deadline = Instant::now() + STARTUP;
        while !engine.docker(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "dockerd did not come up:\n{}", engine.daemon_log());
            std::thread::sleep(Duration::from_millis(200));
        }
        engine.make_base_image();
        engine
    }

    /// The `DOCKER_HOST` of this engine.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Runs the docker CLI against this engine, with its own client configuration.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_command(args).output().expect("run the docker CLI")
    }

    /// Runs the docker CLI and returns its standard output, failing the test if it fails.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn docker_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker");
        command
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .env("DOCKER_BUILDKIT", "0")
            .args(args);
        command
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// `busybox:loktar`: the static busybox and the links its applets need.
    fn make_base_image(&self) {
        self.import_image(BASE_IMAGE, &[], &["sh", "echo", "cat", "ls", "mkdir", "printf", "false", "true", "sleep"]);
    }

    /// Imports `name`: the static busybox with links for `applets` in `/bin`,
    /// and the host files `files` at the same paths (say a program and the
    /// libraries it loads).
    pub fn import_image(&self, name: &str, files: &[&str], applets: &[&str]) {
        let mut archive = tar::Builder::new(Vec::new());
        // Every folder first, readable by all: a folder left for the engine to
        // make may end up closed to a program that runs without capabilities.
        let mut folders = std::collections::BTreeSet::from(["bin".to_string()]);
        for file in files {
            let mut folder = std::path::Path::new(file.trim_start_matches('/')).parent();
            while let Some(path) = folder.filter(|path| !path.as_os_str().is_empty()) {
                folders.insert(path.display().to_string());
                folder = path.parent();
            }
        }
        for folder in &folders {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            header.set_cksum();
            archive.append_data(&mut header, folder, std::io::empty()).expect("tar");
        }
        let mut add_file = |path: &str, host: &str| {
            let bytes = std::fs::read(host).unwrap_or_else(|e| panic!("{host} (scripts/setup installs it): {e}"));
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            archive.append_data(&mut header, path, bytes.as_slice()).expect("tar");
        };
        add_file("bin/busybox", "/bin/busybox");
        for file in files {
            add_file(file.trim_start_matches('/'), file);
        }
        for applet in applets {
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            link.set_mode(0o777);
            archive.append_link(&mut link, format!("bin/{applet}"), "busybox").expect("tar");
        }
        let archive = archive.into_inner().expect("tar");
        let mut import = self
            .docker_command(&["import", "--change", "ENV PATH=/bin:/usr/bin", "-", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker import");
        import.stdin.take().expect("stdin").write_all(&archive).expect("send the image");
        assert!(import.wait().expect("docker import").success(), "docker import of {name} failed");
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        stop(&mut self.daemon, Duration::from_secs(20));
        // dockerd leaves its network namespace mounted (`exec/netns/default`): while it is,
        // nothing below can be removed, and the images' layers would stay on the disk.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let below = self.dir.path().display().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .filter(|point| point.starts_with(&below))
            .collect();
        points.sort_unstable_by(|a, b| b.cmp(a));
        for point in points {
            let _ = Command::new("umount").arg(point).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        // Containers' files belong to root and vfs layers are plain folders: TempDir removes them.
    }
}

/// A distribution v2 registry of the test's own, with one user.
pub struct ImageRegistry {
    dir: TempDir,
    server: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The registry's user.
pub const REGISTRY_USER: &str = "loktar+ci";
/// The user's password; a canary that must never show up in output or logs.
pub const REGISTRY_PASSWORD: &str = "canary-registry-password-5c1d";

impl ImageRegistry {
    /// Starts `docker-registry` on a free port.
    pub fn start() -> ImageRegistry {
        let dir = tempfile::Builder::new().prefix("lk-registry").tempdir_in("/tmp").expect("temp dir");
        let hashed = Command::new("htpasswd")
            .args(["-Bbn", REGISTRY_USER, REGISTRY_PASSWORD])
            .output()
            .expect("htpasswd (scripts/setup installs apache2-utils)");
        assert!(hashed.status.success(), "htpasswd failed");
        std::fs::write(dir.path().join("htpasswd"), &hashed.stdout).expect("htpasswd file");
        let port = free_port();
        let mut registry = ImageRegistry { dir, server: None, port };
        registry.launch();
        registry
    }

    fn launch(&mut self) {
        let dir = self.dir.path();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{}\n  secret: loktar-test\nauth:\n  htpasswd:\n    realm: loktar-test\n    path: {}\n",
            dir.join("data").display(),
            self.port,
            dir.join("htpasswd").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let server = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry (scripts/setup installs it)");
        self.server = Some(server);
        let deadline = Instant::now() + STARTUP;
        let probe = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host());
        while http_exchange(self.port, &probe).0 != 401 {
            assert!(Instant::now() < deadline, "docker-registry did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the registry (to test what happens when it is down).
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            stop(&mut server, Duration::from_secs(10));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, as image references name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A GET (or HEAD with `head`) of `path`, signed in: status, headers (lowercase names) and body.
    pub fn get(&self, path: &str, head: bool) -> (u16, Vec<(String, String)>, String) {
        use base64::Engine as _;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
        let method = if head { "HEAD" } else { "GET" };
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Basic {credentials}\r\n\
             Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json\r\n\r\n",
            self.host()
        );
        http_exchange(self.port, &request)
    }
}

impl Drop for ImageRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends one HTTP/1.0 request: status, headers (lowercase names) and body.
fn http_exchange(port: u16, request: &str) -> (u16, Vec<(String, String)>, String) {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Vec::new(), String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, Vec::new(), String::new());
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// SIGTERM, then SIGKILL after `grace`.
fn stop(child: &mut Child, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The `loktar.toml` for an engine and a registry `quay` in namespace `loktar`.
pub fn host_config(engine: &DockerEngine, registry_url: &str) -> String {
    format!(
        "[engine]\nhost = \"{}\"\n\n[registries.quay]\nurl = \"{registry_url}\"\nnamespace = \"loktar\"\n\
         username = \"{REGISTRY_USER}\"\npassword_secret = \"quay_token\"\n\n[secrets.quay_token]\nenv = \"TEST_QUAY_TOKEN\"\n",
        engine.host()
    )
}
