//! A program run in a container of the container engine: how
//! `[isolation] mode = "container"` starts a test or a build tool.
//!
//! The container sees the image's file system read-only, the package
//! folder and the artifact folder (bound at the paths they have on the
//! host, so the plugin's view of them holds), the package's `.git`
//! read-only, a private `/tmp` in memory and nothing else of the host. It
//! runs as Loktar's user with no capabilities and no way to gain any, on
//! the host's network (tests may talk to services, as with namespaces),
//! under an init process so everything it starts ends with it. Its output
//! arrives as two byte streams, as a local program's would.
//!
//! The engine binds folders by name; each is checked to still be the
//! folder Loktar opened link-free just before the container is made.

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{AttachContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, ReadHalf, SimplexStream, WriteHalf};

use super::Engine;
use loktar_support::beneath::Folder;
use loktar_support::diagnostic::Diagnostic;

/// The label every program container carries, with Loktar's process id,
/// so an operator can find what a killed Loktar left behind.
pub const LABEL: &str = "loktar.program";

/// Bytes of output buffered between the engine and the stage log.
const PIPE_SIZE: usize = 64 * 1024;

/// What a program container is made of.
#[derive(Debug)]
pub struct ContainerProgram<'a> {
    /// The image.
    pub image: &'a str,
    /// The program, found in the image's `PATH`.
    pub program: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// Its environment (`NAME=value`).
    pub env: Vec<String>,
    /// The package folder, read-write.
    pub package: &'a Folder,
    /// The artifact folder, read-write.
    pub artifacts: Option<&'a Folder>,
    /// Where it starts.
    pub cwd: &'a Folder,
    /// More host folders it reads (`read_only` of `[isolation]`).
    pub read_only: &'a [std::path::PathBuf],
}

/// A started program container. Dropping it removes the container.
pub struct RunningContainer {
    docker: Docker,
    id: String,
    /// The program's standard output, until taken.
    pub stdout: Option<ReadHalf<SimplexStream>>,
    /// Its standard error, until taken.
    pub stderr: Option<ReadHalf<SimplexStream>>,
    removed: bool,
}

impl std::fmt::Debug for RunningContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningContainer").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Engine {
    /// Makes and starts the container of `program`.
    pub async fn start_program(&self, program: ContainerProgram<'_>) -> Result<RunningContainer, Diagnostic> {
        let docker = self.docker().await?.clone();
        let body = container_body(&program)?;
        let made = docker.create_container(None, body).await.map_err(|e| self.program_failed(&program, e))?;
        let mut running =
            RunningContainer { docker: docker.clone(), id: made.id, stdout: None, stderr: None, removed: false };
        // Attached before it starts, so no output is missed.
        let options =
            AttachContainerOptionsBuilder::default().stdout(true).stderr(true).stream(true).logs(true).build();
        let attached =
            docker.attach_container(&running.id, Some(options)).await.map_err(|e| self.failed("attaching", e))?;
        let (stdout_reader, stdout_writer) = tokio::io::simplex(PIPE_SIZE);
        let (stderr_reader, stderr_writer) = tokio::io::simplex(PIPE_SIZE);
        tokio::spawn(pump(attached.output, stdout_writer, stderr_writer));
        running.stdout = Some(stdout_reader);
        running.stderr = Some(stderr_reader);
        docker.start_container(&running.id, None).await.map_err(|e| self.program_failed(&program, e))?;
        Ok(running)
    }

    fn program_failed(&self, program: &ContainerProgram<'_>, error: BollardError) -> Diagnostic {
        let text = error.to_string();
        if text.contains("executable file not found") || text.contains("no such file or directory") {
            return Diagnostic::new(format!("`{}` is not in the image `{}`", program.program, program.image))
                .hint("install it in the image, or name an image that has it with `image` under `[isolation]`");
        }
        if matches!(&error, BollardError::DockerResponseServerError { status_code: 404, .. }) {
            return Diagnostic::new(format!(
                "the image `{}` of `[isolation]` is not on the container engine",
                program.image
            ))
            .hint(format!("pull or build it there first (`docker pull {}`)", program.image));
        }
        self.failed("starting the program's container", error)
    }
}

impl RunningContainer {
    /// Waits for the program to end; its exit code.
    pub async fn wait(&mut self) -> Result<Option<i32>, String> {
        let mut waits = self.docker.wait_container(&self.id, None);
        let code = match waits.next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the container engine stopped answering".to_string()),
        };
        self.remove().await;
        Ok(i32::try_from(code).ok())
    }

    /// Stops the program and everything it started, and removes the container.
    pub async fn stop(&mut self) {
        self.remove().await;
    }

    async fn remove(&mut self) {
        if !self.removed {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = self.docker.remove_container(&self.id, Some(options)).await;
            self.removed = true;
        }
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        if !self.removed
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
            runtime.spawn(async move {
                let options = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = docker.remove_container(&id, Some(options)).await;
            });
        }
    }
}

/// Copies the engine's multiplexed output into the two pipes until it
/// ends, then closes them (a pipe's reader sees its end only then).
async fn pump(
    mut output: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<LogOutput, BollardError>> + Send>>,
    mut stdout: WriteHalf<SimplexStream>,
    mut stderr: WriteHalf<SimplexStream>,
) {
    while let Some(Ok(item)) = output.next().await {
        let written = match item {
            LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.write_all(&message).await,
            LogOutput::StdErr { message } => stderr.write_all(&message).await,
            LogOutput::StdIn { .. } => Ok(()),
        };
        if written.is_err() {
            break;
        }
    }
    let _ = tokio::join!(stdout.shutdown(), stderr.shutdown());
}

/// The container's configuration.
fn container_body(program: &ContainerProgram<'_>) -> Result<ContainerCreateBody, Diagnostic> {
    let bind = |folder: &Folder, read_only: bool| -> Result<Mount, Diagnostic> {
        still_the_same(folder)?;
        Ok(bind_mount(folder.shown(), read_only))
    };
    let tmpfs = |target: &Path| Mount {
        target: Some(target.display().to_string()),
        typ: Some(MountType::TMPFS),
        ..Mount::default()
    };
    let mut mounts = vec![tmpfs(Path::new("/tmp")), bind(program.package, false)?];
    // As with namespaces: the package's `.git` read-only, Loktar's own `.loktar` not at all.
    if let Ok(git) = program.package.folder(Path::new(".git")) {
        mounts.push(bind(&git, true)?);
    }
    if program.package.folder(Path::new(loktar_config::LOKTAR_DIR)).is_ok() {
        mounts.push(tmpfs(&program.package.shown().join(loktar_config::LOKTAR_DIR)));
    }
    if let Some(artifacts) = program.artifacts {
        mounts.push(bind(artifacts, false)?);
    }
    mounts.extend(program.read_only.iter().map(|folder| bind_mount(folder, true)));
    let user = format!("{}:{}", rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    let mut cmd = vec![program.program.to_string()];
    cmd.extend(program.args.iter().cloned());
    let mut env = program.env.clone();
    env.extend(["HOME=/tmp".to_string(), "TMPDIR=/tmp".to_string()]);
    Ok(ContainerCreateBody {
        image: Some(program.image.to_string()),
        cmd: Some(cmd),
        env: Some(env),
        working_dir: Some(program.cwd.shown().display().to_string()),
        user: Some(user),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(HashMap::from([(LABEL.to_string(), std::process::id().to_string())])),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            init: Some(true),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            network_mode: Some("host".to_string()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    })
}

/// A host folder bound at the same path in the container.
fn bind_mount(path: &Path, read_only: bool) -> Mount {
    let path = path.display().to_string();
    Mount {
        source: Some(path.clone()),
        target: Some(path),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Mount::default()
    }
}

/// Fails unless `folder`'s path still names the folder Loktar opened: the
/// engine binds by name, and a link swapped in since must not redirect it.
fn still_the_same(folder: &Folder) -> Result<(), Diagnostic> {
    use std::os::fd::AsFd;
    let opened = rustix::fs::fstat(folder.as_fd());
    let named = rustix::fs::lstat(folder.shown());
    match (opened, named) {
        (Ok(opened), Ok(named)) if opened.st_dev == named.st_dev && opened.st_ino == named.st_ino => Ok(()),
        _ => Err(Diagnostic::new(format!(
            "`{}` changed while its program was being started (a link or another folder took its place)",
            folder.shown().display()
        ))),
    }
}
