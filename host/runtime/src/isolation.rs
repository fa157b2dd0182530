//! Program isolation: how a program a plugin runs (a package's tests, a
//! build tool) is started so that it sees only what it needs.
//!
//! With `[isolation] mode = "namespaces"` (the default) every program runs
//! under bubblewrap in new Linux namespaces: its own process tree (Loktar
//! and the other jobs are not in its `/proc`), its own mounts — the
//! toolchains read-only (`/usr`, `/opt`, the few `/etc` files programs
//! read, and the operator's `read_only` folders), its package folder and
//! artifact folder, a private `/tmp` in memory — and nothing else: not the
//! operator's configuration, not the plugin cache, not the rest of the
//! repository, not Loktar's environment. When the program ends, everything it started
//! ends with it (the namespace's first process is gone), and if Loktar dies
//! the sandbox is killed with it. The network is shared: tests may talk to
//! services.
//!
//! The package and artifact folders are handed to bubblewrap as the open
//! handles Loktar checked ([`loktar_support::beneath`]), never by name, so a link
//! swapped in meanwhile changes nothing.
//!
//! `mode = "container"` runs each program in a container of the operator's
//! image on the container engine instead ([`loktar_services::containers::program`]):
//! the same folders, the image's toolchains.
//!
//! `mode = "none"` runs programs with Loktar's own rights, for repositories
//! whose every author the operator trusts; Loktar then warns once per run.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use command_fds::{CommandFdExt, FdMapping};

use loktar_services::containers::ContainerProgram;
use loktar_settings::{IsolationMode, IsolationSettings};
use loktar_support::beneath::Folder;

/// Host folders every isolated program reads: where toolchains live.
const TOOLCHAIN_ROOTS: [&str; 8] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"];

/// The files of `/etc` programs commonly read (name resolution, users,
/// the dynamic loader, certificates, the alternatives that point `java` at
/// its JDK, the JVM's and Python's own settings); the rest of `/etc`
/// (keys, `shadow`) stays out.
const ETC_ENTRIES: [&str; 21] = [
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "java-17-openjdk",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "maven",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "resolv.conf",
    "ssl",
];

/// Where the handles of the package and artifact folders arrive in bubblewrap.
const PACKAGE_FD: i32 = 10;
const ARTIFACTS_FD: i32 = 11;
/// And of a `.git` folder in the package folder.
const GIT_FD: i32 = 12;

/// Variables that make the dynamic loader or libc load code or data of the
/// setter's choosing: a plugin may not set them for a program.
const LOADER_VARIABLES: [&str; 11] = [
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
];

/// Whether a plugin may not set the environment variable `name` for a program.
pub fn is_loader_variable(name: &str) -> bool {
    name.starts_with("LD_") || LOADER_VARIABLES.contains(&name)
}

/// Why a program could not be started isolated.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// bubblewrap is not installed.
    #[error("programs run isolated with bubblewrap, and `bwrap` is not in the `PATH` of loktar")]
    NoBubblewrap,
    /// A folder handle could not be passed on.
    #[error("cannot hand the folders to bubblewrap: {0}")]
    Handles(String),
}

impl IsolationError {
    /// The obvious fix.
    pub fn hint(&self) -> Option<String> {
        match self {
            IsolationError::NoBubblewrap => Some(
                "install bubblewrap (`apt-get install bubblewrap`); only for repositories whose every author \
                 you trust, turn isolation off with `mode = \"none\"` under `[isolation]` in the host configuration"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// What a program is started with.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The program, found in Loktar's `PATH`.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [String],
    /// Its whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// The package folder (read-write: tests write their own output there).
    pub package: &'a Folder,
    /// The artifact folder, if the stage has one.
    pub artifacts: Option<&'a Folder>,
    /// Where it starts, the package folder or a folder below it.
    pub cwd: &'a Folder,
}

/// A program ready to start.
#[derive(Debug)]
pub enum Prepared<'a> {
    /// A local process (bubblewrap's, or the program's own).
    Process(tokio::process::Command),
    /// A container, for the engine to make.
    Container(ContainerProgram<'a>),
}

/// The program `name` as a program started under `settings` finds it:
/// with isolation, only in the folders of `PATH` the sandbox shows (a
/// program elsewhere, say behind a version manager's shims in the home
/// folder, would not find its own files there).
pub fn find_program(settings: &IsolationSettings, name: &str) -> Option<PathBuf> {
    match settings.mode {
        IsolationMode::None => loktar_support::programs::find(name),
        // Found by the container in the image's `PATH`.
        IsolationMode::Container => Some(PathBuf::from(name)),
        IsolationMode::Namespaces => {
            // Each root resolved once, not once per folder of `PATH`.
            let roots: Vec<PathBuf> = visible_roots(settings).map(real).collect();
            let path = std::env::var_os("PATH").unwrap_or_default();
            let visible = std::env::split_paths(&path).filter(|folder| {
                folder.is_absolute() && {
                    let folder = real(folder);
                    roots.iter().any(|root| folder.starts_with(root))
                }
            });
            loktar_support::programs::find_in(name, visible)
        }
    }
}

/// Prepares `launch` under `settings`.
pub fn prepare<'a>(settings: &'a IsolationSettings, launch: Launch<'a>) -> Result<Prepared<'a>, IsolationError> {
    match settings.mode {
        IsolationMode::None => {
            let mut command = tokio::process::Command::new(launch.program);
            command.args(launch.args).current_dir(launch.cwd.handle_path()).env_clear().envs(launch.env);
            Ok(Prepared::Process(command))
        }
        IsolationMode::Namespaces => namespaces(settings, launch).map(Prepared::Process),
        IsolationMode::Container => Ok(Prepared::Container(container(settings, launch))),
    }
}

/// The container of `launch`: the image's `PATH`, a `/tmp` of its own.
fn container<'a>(settings: &'a IsolationSettings, launch: Launch<'a>) -> ContainerProgram<'a> {
    let env = launch
        .env
        .into_iter()
        .filter(|(name, _)| !["PATH", "HOME", "TMPDIR"].iter().any(|own| name == own))
        .map(|(name, value)| format!("{}={}", name.to_string_lossy(), value.to_string_lossy()))
        .collect();
    ContainerProgram {
        image: settings.image.as_deref().unwrap_or_default(),
        program: launch.program.to_str().unwrap_or_default(),
        args: launch.args,
        env,
        package: launch.package,
        artifacts: launch.artifacts,
        cwd: launch.cwd,
        read_only: &settings.read_only,
    }
}

fn namespaces(settings: &IsolationSettings, launch: Launch<'_>) -> Result<tokio::process::Command, IsolationError> {
    let bwrap = loktar_support::programs::find("bwrap").ok_or(IsolationError::NoBubblewrap)?;
    let mut command = tokio::process::Command::new(bwrap);
    command.env_clear();
    let mut args: Vec<OsString> = Vec::new();
    let mut arg = |parts: &[&dyn AsRef<std::ffi::OsStr>]| args.extend(parts.iter().map(|p| p.as_ref().to_owned()));
    arg(&[&"--die-with-parent", &"--new-session", &"--unshare-all", &"--share-net", &"--cap-drop", &"ALL"]);
    arg(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
    for root in TOOLCHAIN_ROOTS {
        mount_read_only(&mut arg, Path::new(root));
    }
    for entry in ETC_ENTRIES {
        mount_read_only(&mut arg, &Path::new("/etc").join(entry));
    }
    // A private `/tmp` in memory, gone with the sandbox (even if Loktar is
    // killed). First: the package and the operator's read-only folders may
    // live below `/tmp`, and are mounted on top.
    arg(&[&"--tmpfs", &"/tmp"]);
    for folder in &settings.read_only {
        mount_read_only(&mut arg, folder);
    }
    let mut mappings = vec![FdMapping { parent_fd: dup(launch.package)?, child_fd: PACKAGE_FD }];
    arg(&[&"--bind-fd", &PACKAGE_FD.to_string(), &launch.package.shown()]);
    // A package at the repository's root would see `.git` (whose configuration
    // and hooks git runs on the host) and `.loktar` (logs, records and
    // artifacts Loktar writes): the first read-only, the second not at all.
    let git = launch.package.folder(Path::new(".git")).ok();
    if let Some(git) = &git {
        mappings.push(FdMapping { parent_fd: dup(git)?, child_fd: GIT_FD });
        arg(&[&"--ro-bind-fd", &GIT_FD.to_string(), &git.shown()]);
    }
    if launch.package.folder(Path::new(loktar_config::LOKTAR_DIR)).is_ok() {
        arg(&[&"--tmpfs", &launch.package.shown().join(loktar_config::LOKTAR_DIR)]);
    }
    if let Some(artifacts) = launch.artifacts {
        mappings.push(FdMapping { parent_fd: dup(artifacts)?, child_fd: ARTIFACTS_FD });
        arg(&[&"--bind-fd", &ARTIFACTS_FD.to_string(), &artifacts.shown()]);
    }
    arg(&[&"--chdir", &launch.cwd.shown()]);
    // The environment goes to bubblewrap's own process, which hands it on: as
    // `--setenv` arguments it would show in `/proc/<pid>/cmdline` to every user.
    command.envs(launch.env.into_iter().filter(|(name, _)| name != "HOME" && name != "TMPDIR"));
    arg(&[&"--setenv", &"HOME", &"/tmp", &"--setenv", &"TMPDIR", &"/tmp"]);
    arg(&[&"--", &launch.program]);
    args.extend(launch.args.iter().map(OsString::from));
    command.args(args);
    command.fd_mappings(mappings).map_err(|e| IsolationError::Handles(e.to_string()))?;
    Ok(command)
}

/// Adds a read-only mount of `path` as it is on the host: a link stays a
/// link (merged `/usr` systems link `/bin` to `usr/bin`), a missing path is left out.
fn mount_read_only(arg: &mut impl FnMut(&[&dyn AsRef<std::ffi::OsStr>]), path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            if let Ok(target) = std::fs::read_link(path) {
                arg(&[&"--symlink", &target, &path]);
            }
        }
        Ok(_) => arg(&[&"--ro-bind", &path, &path]),
        Err(_) => {}
    }
}

/// The folders a sandbox shows read-only: the toolchain roots and the operator's.
fn visible_roots(settings: &IsolationSettings) -> impl Iterator<Item = &Path> {
    TOOLCHAIN_ROOTS.iter().map(Path::new).chain(settings.read_only.iter().map(PathBuf::as_path))
}

/// Where `path` really is: `/bin` may be a link to `usr/bin`.
fn real(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

fn dup(folder: &Folder) -> Result<OwnedFd, IsolationError> {
    use std::os::fd::AsFd;
    folder.as_fd().try_clone_to_owned().map_err(|e| IsolationError::Handles(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_variables_are_recognised() {
        for name in ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "LOCPATH"] {
            assert!(is_loader_variable(name), "{name}");
        }
        for name in ["PATH", "HOME", "MAVEN_OPTS", "OLD_PRELOAD"] {
            assert!(!is_loader_variable(name), "{name}");
        }
    }
}
