//! `loktar server`: GitHub webhooks in, runs out, in one process — the API
//! gateway, the job service and the worker manager of Loktar's design, with
//! the run store (SQLite) and the executors (in-process) embedded — or,
//! with `[nats]`, its package jobs on NATS JetStream for `loktar executor`
//! processes on other machines ([`crate::executor`]), and with `[server]
//! database` its run store in PostgreSQL.
//!
//! A webhook is verified, recorded and answered at once (`202` with the
//! run's number; [`webhooks`], [`intake`]); the run is planned and
//! executed in the background ([`runner`]) by the same application layer
//! `loktar run` uses ([`crate::app`]), in a checkout of its own
//! (`crate::mirrors`). The REST API reads the run store ([`api`], with
//! [`follow`] for what is still being written, and [`metrics`]), serves
//! stored artifacts ([`artifacts`]) and starts, cancels and reruns runs
//! ([`control`]). Runs a stopped or killed
//! server left unfinished are resumed when it starts ([`recovery`]).
//!
//! Configured under `[server]` in the operator's `loktar.toml`
//! ([`crate::settings::ServerSettings`]); the configuration of each run
//! (`loktar.json`, repository plugins) comes from the commit it builds.

mod api;
mod artifacts;
mod collisions;
mod control;
mod follow;
mod intake;
mod metrics;
mod problem;
mod recovery;
mod runner;
pub mod signature;
mod stores;
mod webhooks;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::context::Options;
use crate::blocking::wait_for;
use crate::diagnostic::Diagnostic;
use crate::github::Github;
use crate::mirrors::Mirrors;
use crate::nats::{NatsOptions, NatsQueue};
use crate::pipeline::control::RunControl;
use crate::pipeline::executors::{Executors, Runs};
use crate::pipeline::jobs::{JobQueue, LocalQueue};
use crate::settings::{DEFAULT_QUEUE, NatsSettings, ServerSettings, Settings};
use crate::store::{DATABASE, Database, PostgresDatabase, RunStore};
use problem::Problem;

/// The largest webhook body GitHub sends (its documented cap is 25 MB).
const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;

/// How long running stages may go on after `SIGTERM` before they are cancelled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What every request and background run shares.
pub(crate) struct Server {
    /// `[server]` of the operator's configuration.
    settings: ServerSettings,
    /// The operator's configuration file, read again by each run.
    config: Option<PathBuf>,
    /// Where the run store is: each run records through a store of its own.
    database: Database,
    /// The run store of the requests, on SQLite.
    store: Mutex<RunStore>,
    mirrors: Mirrors,
    /// The webhook secret's value; without one, every webhook is refused.
    webhook_secret: Option<String>,
    /// The API tokens' values.
    api_tokens: Vec<String>,
    /// GitHub as `[github]` says: its credentials fetch the repositories.
    github: Github,
    /// The stores the storage proxy reads; why they cannot be opened, if so.
    artifact_stores: Result<artifacts::ArtifactStores, Diagnostic>,
    /// Held while a repository's pull requests are looked at for collisions.
    collisions: tokio::sync::Mutex<()>,
    /// Runs being worked at once: as many as there are executors, or with
    /// executors elsewhere [`RUNS_AT_ONCE_ELSEWHERE`].
    runs_at_once: Semaphore,
    /// Package jobs in flight at once in each run.
    packages_at_once: usize,
    /// The in-process executors: package jobs at once, across every run.
    executors: Executors,
    /// The runs executing here, as executors elsewhere reach them.
    runs: Arc<Runs>,
    /// Uploads through the storage proxy at once.
    uploads: Semaphore,
    /// Runs accepted and not finished, by number.
    active: Mutex<HashMap<i64, Active>>,
    /// The background runs, waited for at shutdown.
    tasks: TaskTracker,
    /// Cancelled at `SIGTERM`: runs not started yet never start.
    stopping: CancellationToken,
    /// Webhook deliveries by what became of them, for `/metrics`.
    deliveries: metrics::Deliveries,
}

/// Without the secrets' values.
impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("settings", &self.settings)
            .field("config", &self.config)
            .field("executors", &self.executors.count())
            .finish_non_exhaustive()
    }
}

/// A run accepted and not finished.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    /// The repository (`owner/repo`).
    repository: String,
    /// What it builds: a newer run of the same cancels it.
    subject: intake::Subject,
    /// Stops it (clean-up still runs).
    control: Arc<RunControl>,
}

impl Server {
    fn store(&self) -> std::sync::MutexGuard<'_, RunStore> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Active>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call` on the run store, on a blocking thread (the store waits
    /// for SQLite's lock or PostgreSQL's answer there, never on the
    /// runtime's workers): on SQLite through the server's one connection, on
    /// PostgreSQL through a store of its own, so that requests share the
    /// pool's connections rather than wait for each other.
    async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        call: impl FnOnce(&RunStore) -> Result<T, Diagnostic> + Send + 'static,
    ) -> Result<T, Diagnostic> {
        let server = self.clone();
        tokio::task::spawn_blocking(move || match &server.database {
            Database::Postgres(_) => call(&server.database.open()?),
            Database::File(_) => call(&server.store()),
        })
        .await
        .map_err(|e| Diagnostic::new(format!("internal error: the run store's thread failed: {e}")))?
    }

    /// The data folder: mirrors, work trees, run folders and the database.
    fn data_dir(&self) -> &std::path::Path {
        &self.settings.data_dir
    }

    /// Where `repository`'s `fs` stores named relative to it keep their objects.
    fn store_root(&self, repository: &str) -> PathBuf {
        store_root(self.data_dir(), repository)
    }
}

/// Where `repository`'s `fs` stores named relative to it keep their objects, below `data_dir`.
fn store_root(data_dir: &std::path::Path, repository: &str) -> PathBuf {
    data_dir.join("stores").join(repository.replace('/', "+"))
}

/// Starts the server with the operator's configuration from `options`,
/// prints the address it listens on, and serves until `SIGTERM` or
/// `SIGINT`; then takes no new work, lets running runs finish for a while,
/// cancels what is left (clean-up runs) and returns once all is recorded.
/// Called on a blocking thread of the process's runtime.
pub fn serve(options: &Options) -> Result<(), Diagnostic> {
    let cwd = std::env::current_dir().map_err(|e| Diagnostic::new(format!("cannot read the current folder: {e}")))?;
    let settings = Settings::load(options.config.as_deref(), &cwd)?;
    // Before any secret is read, and before any thread of ours starts.
    crate::vault::seal(&settings)?;
    let server = settings.server.clone();
    let webhook_secret = match &server.webhook_secret {
        Some(name) => Some(secret(&settings, name, "webhook_secret")?),
        None => {
            tracing::warn!(
                "no `webhook_secret` under `[server]`: every webhook will be refused\n\
                 hint: set `webhook_secret` to a secret under `[secrets]`, and the same value in GitHub's webhook"
            );
            None
        }
    };
    let api_tokens =
        server.api_tokens.iter().map(|name| secret(&settings, name, "api_tokens")).collect::<Result<Vec<_>, _>>()?;
    let database = match &server.database {
        Some(url) => {
            let password = server.database_password.as_deref().map(|name| secret(&settings, name, "database_password"));
            let password = password.transpose()?;
            Database::Postgres(PostgresDatabase::connect(url, password.as_deref())?)
        }
        None => Database::File(server.data_dir.join(DATABASE)),
    };
    let store = database.open()?;
    let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
    let runs = Runs::new();
    // With `[nats]`, executors elsewhere (`loktar executor`) work the jobs.
    let (queue, executors, runs_at_once, packages_at_once): (Arc<dyn JobQueue>, _, _, _) = match &settings.nats {
        Some(nats) => {
            if server.executors.is_some_and(|count| count > 0) {
                return Err(Diagnostic::new("`executors` under `[server]` and `[nats]` do not go together").hint(
                    "with `[nats]`, `loktar executor` processes run the jobs: remove `executors`, and start one \
                     beside the server if it should work too",
                ));
            }
            let queue = wait_for(connect_nats(nats))??;
            queue.serve(runs.clone());
            (Arc::new(queue), 0, RUNS_AT_ONCE_ELSEWHERE, PACKAGES_AT_ONCE_ELSEWHERE)
        }
        None => {
            let executors = server.executors.unwrap_or_else(cores).max(1);
            (Arc::new(LocalQueue::new()), executors, executors, executors)
        }
    };
    let state = Arc::new(Server {
        config: settings.source.clone(),
        database,
        store: Mutex::new(store),
        mirrors: Mirrors::new(server.data_dir.join("repositories")),
        webhook_secret,
        api_tokens,
        github: Github::from_settings(&settings),
        artifact_stores: artifacts::ArtifactStores::open(
            settings.source.as_deref(),
            &server.data_dir,
            server.repositories.keys(),
        ),
        collisions: tokio::sync::Mutex::new(()),
        runs_at_once: Semaphore::new(runs_at_once),
        packages_at_once,
        executors: Executors::start(queue, runs.clone(), executors),
        runs,
        uploads: Semaphore::new(UPLOADS_AT_ONCE),
        active: Mutex::default(),
        tasks: TaskTracker::new(),
        stopping: CancellationToken::new(),
        deliveries: metrics::Deliveries::default(),
        settings: server,
    });
    wait_for(run(state))?
}

/// Uploads through the storage proxy at once: each spools to the data folder's disk.
const UPLOADS_AT_ONCE: usize = 4;

/// Runs worked at once when executors elsewhere run their jobs.
const RUNS_AT_ONCE_ELSEWHERE: usize = 16;
/// Package jobs of one run on the queue at once when executors elsewhere
/// run them: the executors' slots, not this, bound the work.
const PACKAGES_AT_ONCE_ELSEWHERE: usize = 1024;

/// The job queue on NATS that `[nats]` names.
async fn connect_nats(nats: &NatsSettings) -> Result<NatsQueue, Diagnostic> {
    let url = crate::nats::shown_url(&nats.url);
    let options = NatsOptions::from_settings(Some(nats), None, DEFAULT_QUEUE)
        .ok_or_else(|| Diagnostic::new("`[nats]` names no server"))?;
    NatsQueue::connect(&options).await.map_err(|problem| {
        Diagnostic::new(problem.to_string().replace(&nats.url, &url))
            .hint("start nats-server with JetStream on (`nats-server -js`), or check `url` under `[nats]`")
    })
}

/// The value of the secret `[server] <field>` names.
fn secret(settings: &Settings, name: &str, field: &str) -> Result<String, Diagnostic> {
    settings.secret_value(name).filter(|value| !value.is_empty()).ok_or_else(|| {
        let variable = settings.secrets.get(name).map_or("?", |secret| secret.env.as_str());
        Diagnostic::new(format!("secret `{name}` of `{field}` under `[server]` is not set"))
            .hint(format!("set the environment variable `{variable}` before starting the server"))
    })
}

async fn run(server: Arc<Server>) -> Result<(), Diagnostic> {
    let listen = &server.settings.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Diagnostic::new(format!("cannot listen on `{listen}`: {e}"))
            .hint("choose another `listen` address under `[server]` (port 0 takes a free one)")
    })?;
    let address = listener.local_addr().map_err(|e| Diagnostic::new(format!("cannot read the bound address: {e}")))?;
    // On stdout, first: scripts and tests read the port from it.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "loktar server listening on http://{address}");
    let _ = stdout.flush();
    // Where executors elsewhere send artifacts and their job's token: where the
    // operator says, else where it listens when that is only this machine (a
    // loopback address means the same machine to whoever dials it).
    let settings = &server.settings;
    let proxy = settings.executor_url.clone().or_else(|| settings.public_url.clone());
    match proxy.or_else(|| address.ip().is_loopback().then(|| format!("http://{address}"))) {
        Some(url) => server.runs.set_store_proxy_url(url),
        None if server.executors.count() == 0 => tracing::warn!(
            "executors elsewhere cannot store artifacts through this server: it knows no address of its own for them\n\
             hint: set `executor_url` (or `public_url`) under `[server]`"
        ),
        None => {}
    }
    // Before new work: what the last process left unfinished.
    let resumed = recovery::resume(&server).await?;
    if resumed > 0 {
        tracing::warn!("{resumed} run(s) the server left unfinished when it last stopped are resumed");
    }
    // In the background: GitHub's answer must not hold the first webhook back.
    server.tasks.spawn({
        let server = server.clone();
        async move { collisions::learn_open(&server).await }
    });
    watch_signals(server.stopping.clone());
    let served = axum::serve(listener, router(server.clone()))
        .with_graceful_shutdown(server.stopping.clone().cancelled_owned())
        .await
        .map_err(|e| Diagnostic::new(format!("the server stopped: {e}")));
    shut_down(&server).await;
    served
}

/// The routes.
fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/hooks/github", post(webhooks::github))
        .route("/api/health", get(api::health))
        .route("/metrics", get(metrics::metrics))
        .route("/api/runs", get(api::runs).post(control::trigger))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/events", get(api::events))
        .route("/api/runs/{id}/cancel", post(control::cancel))
        .route("/api/runs/{id}/rerun", post(control::rerun))
        .route("/api/runs/{id}/packages/{package}/stages/{stage}/log", get(api::log))
        .route("/api/artifacts/{package}/{version}/{file}", get(artifacts::artifact))
        .route("/api/stores/{store}/{*key}", get(stores::describe).put(stores::put))
        .fallback(Problem::no_route)
        .method_not_allowed_fallback(Problem::wrong_method)
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY))
        .with_state(server)
}

/// Lets running runs finish for [`SHUTDOWN_GRACE`], then cancels them and
/// waits until they have recorded how they ended.
async fn shut_down(server: &Arc<Server>) {
    server.tasks.close();
    let running = server.active().len();
    if running > 0 {
        tracing::warn!("stopping: waiting up to {}s for {running} run(s)", SHUTDOWN_GRACE.as_secs());
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, server.tasks.wait()).await.is_err() {
        let running: Vec<i64> = server.active().keys().copied().collect();
        let recorded = server
            .with_store(move |store| {
                running.iter().try_for_each(|&run| store.set_reason(run, "the server stopped before it ended"))
            })
            .await;
        if let Err(problem) = recorded {
            tracing::error!("{problem}");
        }
        for active in server.active().values() {
            active.control.interrupt(Some("the server stopped before it ended"));
        }
        server.tasks.wait().await;
    }
}

/// `SIGTERM` or `SIGINT` cancels `stopping`: the server, or an executor, takes no new work.
pub(crate) fn watch_signals(stopping: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot watch for SIGTERM; stopping will not wait for running work");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!("stopping: no new work is taken");
        stopping.cancel();
    });
}
