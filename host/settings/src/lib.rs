//! The host configuration: the "provision" side of Loktar.
//!
//! `loktar.json`, written by a repository's developers, *requests*
//! providers (`"test_type": "make"`). The host configuration, written by
//! whoever runs Loktar, says which plugin answers to each name, what it may
//! do, and the limits every plugin call runs under. It is a TOML file:
//! `--config`, else `LOKTAR_CONFIG`, else `loktar/loktar.toml` in the user's
//! config folder; without any, the built-in defaults apply.
//!
//! Never a file of the repository being built: whoever opens a pull request
//! writes that repository, and a host configuration there would let them
//! grant their code capabilities, drop the limits and send the operator's
//! credentials to endpoints of their choosing.

pub mod cluster;
pub mod server;
pub mod vault;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use loktar_support::diagnostic::{Diagnostic, Location};

/// The file name of the host configuration in the user's config folder.
pub const FILE_NAME: &str = "loktar.toml";

pub use cluster::{BUILT_IN_ROUTES, DEFAULT_QUEUE, ExecutorSettings, NatsSettings, is_queue_name, queue_of};
pub use loktar_protocol::{Capability, Role};
pub use server::{Collisions, RepositorySettings, ServerSettings};

/// What the configuration says about one plugin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// A third-party plugin: the component file, relative to the configuration file.
    pub path: Option<PathBuf>,
    /// The role the plugin plays; required with `path`.
    pub role: Option<Role>,
    /// The capabilities granted to it.
    pub capabilities: Option<Vec<Capability>>,
    /// Programs the `process` capability may run.
    pub programs: Option<Vec<String>>,
    /// Host environment variables passed to those programs.
    pub env: Option<Vec<String>>,
    /// Secrets (names under `[secrets]`) the plugin may read.
    pub secrets: Option<Vec<String>>,
    /// Object stores (names under `[stores]`) it may use besides the one named after it.
    pub stores: Option<Vec<String>>,
    /// Hosts the `http` capability may reach: `hooks.slack.com` (HTTPS on
    /// port 443) or `127.0.0.1:8080` (that port only).
    pub http_hosts: Option<Vec<String>>,
    /// The plugin's own settings, handed to it as JSON (`[plugins.<name>.settings]`).
    pub settings: Option<toml::Table>,
    /// For a plugin the repository declares in `loktar.json`: the
    /// repository's root, which its `path` is relative to (and read below,
    /// with no link on the way). Never from the host configuration.
    #[serde(skip)]
    pub declared_in: Option<PathBuf>,
    /// For a plugin the repository declares: what it asked for, before the
    /// policy (`capabilities` and `programs` above are what it was granted).
    #[serde(skip)]
    pub asked: Option<Asked>,
}

/// What a repository's plugin asks for in `loktar.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    /// Capabilities.
    pub capabilities: Vec<Capability>,
    /// Programs for `process`.
    pub programs: Vec<String>,
}

/// An entry of a plugin's `http_hosts`: `name` — HTTPS on port 443 only,
/// so that secrets such as webhook URLs never travel in the clear — or
/// `name:port`, that port only (IPv6 addresses in brackets: `[::1]:8080`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHost {
    /// The host name or address, as a URL writes it (IPv6 in brackets).
    pub name: String,
    /// The port, when the entry names one.
    pub port: Option<u16>,
}

impl HttpHost {
    /// Reads an entry; says what is wrong with a malformed one.
    pub fn parse(entry: &str) -> Result<HttpHost, String> {
        let (name, port) = match entry.rsplit_once(':') {
            Some((name, port)) if !entry.ends_with(']') => {
                let port = port.parse::<u16>().map_err(|_| format!("`{port}` is not a port"))?;
                (name, Some(port))
            }
            _ => (entry, None),
        };
        if name.is_empty() {
            return Err("no host name".to_string());
        }
        if name.contains(':') && !(name.starts_with('[') && name.ends_with(']')) {
            return Err("an IPv6 address is written in brackets".to_string());
        }
        Ok(HttpHost { name: name.to_string(), port })
    }

    /// Whether a request to `host` on `port`, over HTTPS or not, matches the entry.
    pub fn allows(&self, host: &str, port: u16, https: bool) -> bool {
        self.name.eq_ignore_ascii_case(host)
            && match self.port {
                Some(wanted) => wanted == port,
                None => https && port == 443,
            }
    }

    /// The port a connection goes to.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(443)
    }
}

/// Where a named object store keeps its objects. A storage plugin uses the
/// store with its own provider name (`[stores.fs]` for the `fs` plugin).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum StoreSettings {
    /// A folder on this machine.
    Fs {
        /// The folder; relative paths are relative to the repository root.
        dir: PathBuf,
    },
    /// A bucket on an S3-compatible server.
    S3(S3Settings),
}

/// Where an `s3` store is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket.
    #[serde(default)]
    pub prefix: String,
    /// The region.
    #[serde(default = "default_region")]
    pub region: String,
    /// The server's URL, for servers other than AWS.
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`); default: on with `endpoint`.
    pub path_style: Option<bool>,
    /// The secret (under `[secrets]`) holding the access key id.
    pub access_key_secret: String,
    /// The secret (under `[secrets]`) holding the secret access key.
    pub secret_key_secret: String,
    /// Files larger than this many MiB are uploaded in parts (at least 5).
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold_mib: u64,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

impl S3Settings {
    /// Files above this many MiB are uploaded in parts, unless configured otherwise.
    pub const DEFAULT_MULTIPART_THRESHOLD_MIB: u64 = 256;
}

fn default_multipart_threshold() -> u64 {
    S3Settings::DEFAULT_MULTIPART_THRESHOLD_MIB
}

/// Which container engine `container-engine` talks to (`[engine]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// The Docker Engine API address (`unix:///run/docker.sock`, `tcp://host:2375`);
    /// default: `DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    pub host: Option<String>,
}

/// An image registry (`[registries.<name>]`) images are pushed to. Plugins
/// with `container-engine` name it; the host signs in, plugins never see the
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// The registry: `quay.io`, `https://registry.example.com`, `http://127.0.0.1:5000`
    /// (`https://` unless a scheme is given).
    pub url: String,
    /// The namespace (organisation) images go under.
    pub namespace: String,
    /// The user (a Quay robot account: `org+robot`).
    pub username: Option<String>,
    /// The secret (under `[secrets]`) holding the password or token.
    pub password_secret: Option<String>,
    /// The registry's REST API, for Quay: `https://quay.io/api/v1`. With it,
    /// `quay` creates missing repositories and `build_type: "url"` builds.
    pub api_url: Option<String>,
    /// The secret holding the API's OAuth token (sent as `Authorization: Bearer`).
    pub api_token_secret: Option<String>,
}

/// How Loktar reaches GitHub (`[github]`): with a token, or as a GitHub App
/// installation; GitHub Enterprise through `api_url`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// The REST API's base URL; GitHub Enterprise: `https://<host>/api/v3`.
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// The secret (under `[secrets]`) holding a token.
    pub token_secret: Option<String>,
    /// A GitHub App's id, to act as one of its installations instead of with a token.
    pub app_id: Option<u64>,
    /// The secret holding the App's private key (PEM).
    pub app_key_secret: Option<String>,
    /// The App installation to act as.
    pub installation_id: Option<u64>,
    /// How often a call is tried again after a 5xx answer or a rate limit.
    #[serde(default = "default_github_retries")]
    pub retries: u32,
    /// The longest a rate limit is waited out, in seconds; longer is an error.
    #[serde(default = "default_github_max_wait")]
    pub max_wait_secs: u64,
    /// The repository (`owner/repo`); default: the `origin` remote's.
    pub repository: Option<String>,
    /// Where a pull request's changes are read (`--github-pr`): `api` (its
    /// files and commits from GitHub, no history needed) or `git` (only its
    /// base and head from GitHub, the range from the local clone).
    #[serde(default)]
    pub pr_changes: PrChanges,
}

/// Where a pull request's changes are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrChanges {
    /// Files and commits from GitHub's API.
    #[default]
    Api,
    /// Base and head from GitHub, the range from local git.
    Git,
}

impl Default for GithubSettings {
    fn default() -> Self {
        GithubSettings {
            api_url: default_github_api(),
            token_secret: None,
            app_id: None,
            app_key_secret: None,
            installation_id: None,
            retries: default_github_retries(),
            max_wait_secs: default_github_max_wait(),
            repository: None,
            pr_changes: PrChanges::Api,
        }
    }
}

fn default_github_api() -> String {
    "https://api.github.com".to_string()
}

fn default_github_retries() -> u32 {
    4
}

fn default_github_max_wait() -> u64 {
    300
}

/// What notifiers are told besides the run itself (`[notifications]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// The page of a run, `{run}` standing for its number
    /// (`https://ci.example.com/loktar/runs/{run}`): statuses and messages link to it.
    pub run_url: Option<String>,
}

/// Where a named secret comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// The host environment variable that holds it.
    pub env: String,
}

/// How programs that plugins run (tests, builds) are kept apart from the
/// host (`[isolation]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IsolationSettings {
    /// `namespaces` (the default): each program in Linux namespaces made by
    /// bubblewrap, seeing only the toolchains, its package folder, its
    /// artifact folder and a private `/tmp`. `container`: each program in a
    /// container of `image` on the container engine (`[engine]`), which must
    /// run on this machine. `none`: programs run with Loktar's own rights —
    /// for repositories whose every author you trust.
    pub mode: IsolationMode,
    /// More host folders programs may read (a toolchain outside `/usr` and `/opt`).
    pub read_only: Vec<PathBuf>,
    /// With `mode = "container"`: the image programs run in, with the
    /// toolchains they need (`make`, `python3`, a JDK…).
    pub image: Option<String>,
}

/// Whether programs are isolated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// Linux namespaces, through bubblewrap.
    #[default]
    Namespaces,
    /// A container of the container engine.
    Container,
    /// No isolation.
    None,
}

/// What the operator lets a repository's own plugins have (`[policy]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// `[policy.repository_plugins]`.
    pub repository_plugins: RepositoryPluginPolicy,
}

/// The most a plugin declared in `loktar.json` is granted, whatever it asks
/// for. Secrets, stores, hosts and variables it gets only from a
/// `[plugins.<name>]` section the operator writes for it by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryPluginPolicy {
    /// Capabilities a repository plugin may be granted (default: `log`).
    pub capabilities: Vec<Capability>,
    /// Programs its `process` capability may run (default: none).
    pub programs: Vec<String>,
}

impl Default for RepositoryPluginPolicy {
    fn default() -> Self {
        RepositoryPluginPolicy { capabilities: vec![Capability::Log], programs: Vec::new() }
    }
}

/// Limits on every plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock deadline of one plugin call, in seconds.
    pub timeout_secs: u64,
    /// Linear memory a plugin may use, in MiB.
    pub memory_mib: u64,
    /// Log output one plugin call may write, in KiB: line ends count as a
    /// byte each, and at most 16 lines per KiB are kept (blank ones too), so
    /// a flood of empty lines is stopped like any other.
    pub log_kib: u64,
    /// Default and maximum run time of one program started through `process`, in seconds.
    pub process_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout_secs: 3600, memory_mib: 512, log_kib: 4096, process_timeout_secs: 3600 }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    plugins: BTreeMap<String, PluginSettings>,
    #[serde(default)]
    secrets: BTreeMap<String, Secret>,
    #[serde(default)]
    stores: BTreeMap<String, StoreSettings>,
    #[serde(default)]
    registries: BTreeMap<String, RegistrySettings>,
    engine: Option<EngineSettings>,
    github: Option<GithubSettings>,
    notifications: Option<NotificationSettings>,
    limits: Option<Limits>,
    isolation: Option<IsolationSettings>,
    policy: Option<Policy>,
    server: Option<ServerSettings>,
    nats: Option<NatsSettings>,
    executor: Option<ExecutorSettings>,
}

/// The host configuration in force: the built-in defaults overlaid with the user's file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Settings per provider name.
    pub plugins: BTreeMap<String, PluginSettings>,
    /// Named secrets and the environment variables holding them.
    pub secrets: BTreeMap<String, Secret>,
    /// Named object stores.
    pub stores: BTreeMap<String, StoreSettings>,
    /// Named image registries.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// The container engine.
    pub engine: EngineSettings,
    /// GitHub.
    pub github: GithubSettings,
    /// What notifiers are told.
    pub notifications: NotificationSettings,
    /// Limits on every plugin call.
    pub limits: Limits,
    /// How programs are isolated.
    pub isolation: IsolationSettings,
    /// What a repository's own plugins may have.
    pub policy: Policy,
    /// `loktar server`.
    pub server: ServerSettings,
    /// The job queue across machines, when jobs run on other machines.
    pub nats: Option<NatsSettings>,
    /// `loktar executor`.
    pub executor: ExecutorSettings,
    /// The file read, if any.
    pub source: Option<PathBuf>,
}

impl Settings {
    /// The value of the secret the configuration calls `name`, if it is
    /// defined and its variable is set.
    pub fn secret_value(&self, name: &str) -> Option<String> {
        self.secrets.get(name).and_then(|secret| vault::value(&secret.env))
    }

    /// The plugins the configuration makes notifiers: every run tells them.
    pub fn notifiers(&self) -> Vec<String> {
        let notifier = |(_, plugin): &(&String, &PluginSettings)| plugin.role == Some(Role::Notifier);
        self.plugins.iter().filter(notifier).map(|(name, _)| name.clone()).collect()
    }

    /// The built-in defaults alone.
    pub fn builtin() -> Settings {
        let file: File = toml::from_str(include_str!("builtin.toml")).unwrap_or_default();
        Settings {
            plugins: file.plugins,
            secrets: BTreeMap::new(),
            stores: file.stores,
            registries: file.registries,
            engine: file.engine.unwrap_or_default(),
            github: file.github.unwrap_or_default(),
            notifications: file.notifications.unwrap_or_default(),
            limits: Limits::default(),
            isolation: IsolationSettings::default(),
            policy: Policy::default(),
            server: ServerSettings::default(),
            nats: None,
            executor: ExecutorSettings::default(),
            source: None,
        }
    }

    /// Moves the folders of `fs` stores that lie below the repository root
    /// `from` (those the configuration names relative to it) below `to`: a
    /// server keeps them in its data folder, not in a checkout that goes.
    pub fn rebase_store_folders(&mut self, from: &Path, to: &Path) {
        for store in self.stores.values_mut() {
            if let StoreSettings::Fs { dir } = store
                && let Ok(relative) = dir.strip_prefix(from)
            {
                *dir = to.join(relative);
            }
        }
    }

    /// Folders of `fs` stores, relative to the repository root, made absolute.
    fn resolve_store_folders(mut self, root: &Path) -> Settings {
        for store in self.stores.values_mut() {
            if let StoreSettings::Fs { dir } = store {
                *dir = root.join(&*dir);
            }
        }
        self
    }

    /// Finds and reads the host configuration for a repository at `root`.
    pub fn load(explicit: Option<&Path>, root: &Path) -> Result<Settings, Diagnostic> {
        let chosen = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("LOKTAR_CONFIG").map(PathBuf::from))
            .or_else(|| user_config_dir().map(|d| d.join("loktar").join(FILE_NAME)).filter(|p| p.is_file()));
        warn_of_repository_config(root, chosen.as_deref());
        let mut settings = Settings::builtin();
        let Some(path) = chosen else {
            return Ok(settings.resolve_store_folders(root));
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diagnostic::new(format!("cannot read the host configuration `{}`: {e}", path.display()))
                .hint("pass an existing file with `--config` or `LOKTAR_CONFIG`")
        })?;
        let file: File = toml::from_str(&text).map_err(|e| {
            // The place names the file; without one, the message does.
            match position(&path, &text, e.span()) {
                Some(at) => Diagnostic::new(format!("not a valid host configuration: {}", e.message())).at(at),
                None => {
                    Diagnostic::new(format!("`{}` is not a valid host configuration: {}", path.display(), e.message()))
                }
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (name, mut plugin) in file.plugins {
            if let Some(relative) = plugin.path.take() {
                plugin.path = Some(base.join(relative));
                if plugin.role.is_none() {
                    return Err(Diagnostic::new(format!(
                        "`{}`: plugin `{name}` has a `path` but no `role`",
                        path.display()
                    ))
                    .hint("add `role = \"tester\"` (or builder, registry, storage, notifier, discovery)"));
                }
            }
            for entry in plugin.http_hosts.iter().flatten() {
                if let Err(problem) = HttpHost::parse(entry) {
                    return Err(Diagnostic::new(format!(
                        "`{}`: plugin `{name}`: `http_hosts` entry `{entry}`: {problem}",
                        path.display()
                    ))
                    .hint("write `name` (HTTPS on port 443), `name:port` or `[ipv6]:port`"));
                }
            }
            let entry = settings.plugins.entry(name).or_default();
            overlay(entry, plugin);
        }
        if let Some(limits) = file.limits {
            // A zero would fail every stage at once, or keep no log at all: never what an operator means.
            let zero = [
                ("timeout_secs", limits.timeout_secs),
                ("memory_mib", limits.memory_mib),
                ("log_kib", limits.log_kib),
                ("process_timeout_secs", limits.process_timeout_secs),
            ]
            .into_iter()
            .find(|(_, value)| *value == 0);
            if let Some((key, _)) = zero {
                return Err(Diagnostic::new(format!("`{}`: `{key}` under `[limits]` is 0", path.display()))
                    .hint(format!("give `{key}` a value of at least 1, or remove it for the default")));
            }
            settings.limits = limits;
        }
        settings.secrets = file.secrets;
        settings.stores.extend(file.stores);
        settings.registries.extend(file.registries);
        if let Some(engine) = file.engine {
            settings.engine = engine;
        }
        if let Some(github) = file.github {
            settings.github = github;
        }
        if let Some(notifications) = file.notifications {
            settings.notifications = notifications;
        }
        if let Some(policy) = file.policy {
            settings.policy = policy;
        }
        if let Some(mut server) = file.server {
            server.data_dir = base.join(&server.data_dir);
            if let Some(url) = server.database.as_deref().filter(|url| !server::is_postgres_url(url)) {
                // Only a scheme is shown: anything else of what is not a URL may be a password.
                let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
                let shown =
                    scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) && !scheme.is_empty();
                let what =
                    if shown { format!("`{scheme}://…`, not a PostgreSQL URL") } else { "not a URL".to_string() };
                return Err(Diagnostic::new(format!("`{}`: `database` under `[server]` is {what}", path.display()))
                    .hint(
                        "write `postgres://USER@HOST:PORT/DATABASE` (the password in `database_password`), \
                     or remove `database` to keep the runs in SQLite in `data_dir`",
                    ));
            }
            if server.database.as_deref().is_some_and(server::has_password) {
                return Err(Diagnostic::new(format!(
                    "`{}`: `database` under `[server]` holds a password",
                    path.display()
                ))
                .hint(
                    "remove it from the URL and name a secret holding it in `database_password`: \
                     the URL is shown in messages, a secret never is",
                ));
            }
            settings.server = server;
        }
        let queues = file
            .nats
            .iter()
            .flat_map(|nats| nats.routes.iter().map(|(of, queue)| (format!("[nats.routes] {of}"), queue)));
        let queues = queues
            .chain(file.executor.iter().flat_map(|e| e.queues.iter().map(|q| ("[executor] queues".to_string(), q))));
        for (field, queue) in queues {
            if !is_queue_name(queue) {
                return Err(Diagnostic::new(format!(
                    "`{}`: `{queue}` in `{field}` is not a queue name",
                    path.display()
                ))
                .hint("use letters, digits, `-` and `_`: `docker`, `jvm`"));
            }
        }
        settings.nats = file.nats;
        // Relative to the file's folder, the default too.
        settings.executor = file.executor.unwrap_or_default();
        settings.executor.work_dir = base.join(&settings.executor.work_dir);
        if let Some(isolation) = file.isolation {
            if let Some(relative) = isolation.read_only.iter().find(|folder| !folder.is_absolute()) {
                return Err(Diagnostic::new(format!(
                    "`{}`: `{}` in `read_only` under `[isolation]` is not an absolute path",
                    path.display(),
                    relative.display()
                ))
                .hint("name host folders from the root: `read_only = [\"/opt/toolchain\"]`"));
            }
            match (isolation.mode, &isolation.image) {
                (IsolationMode::Container, None) => {
                    return Err(Diagnostic::new(format!(
                        "`{}`: `mode = \"container\"` under `[isolation]` needs the `image` programs run in",
                        path.display()
                    ))
                    .hint("name an image with the toolchains your packages use: `image = \"debian:12\"`"));
                }
                (IsolationMode::Namespaces | IsolationMode::None, Some(image)) => {
                    return Err(Diagnostic::new(format!(
                        "`{}`: `image = \"{image}\"` under `[isolation]` is used only with `mode = \"container\"`",
                        path.display()
                    ))
                    .hint("add `mode = \"container\"`, or remove `image`"));
                }
                _ => {}
            }
            settings.isolation = isolation;
        }
        // Every secret named anywhere must be defined under `[secrets]`.
        let github = &settings.github;
        let mut named: Vec<(String, &String)> = Vec::new();
        for (name, plugin) in &settings.plugins {
            named.extend(plugin.secrets.iter().flatten().map(|secret| (format!("plugin `{name}` is granted"), secret)));
        }
        for (name, store) in &settings.stores {
            if let StoreSettings::S3(s3) = store {
                named.extend(
                    [&s3.access_key_secret, &s3.secret_key_secret].map(|s| (format!("store `{name}` reads"), s)),
                );
            }
        }
        for (name, registry) in &settings.registries {
            let secrets = registry.password_secret.iter().chain(&registry.api_token_secret);
            named.extend(secrets.map(|secret| (format!("registry `{name}` reads"), secret)));
        }
        named.extend(github.token_secret.iter().chain(&github.app_key_secret).map(|s| ("`[github]` reads".into(), s)));
        let server = &settings.server;
        let server_secrets = server.webhook_secret.iter().chain(&server.api_tokens).chain(&server.database_password);
        named.extend(server_secrets.map(|s| ("`[server]` reads".into(), s)));
        if let Some((who, secret)) = named.iter().find(|(_, secret)| !settings.secrets.contains_key(*secret)) {
            return Err(Diagnostic::new(format!(
                "`{}`: {who} secret `{secret}`, which `[secrets]` does not define",
                path.display()
            ))
            .hint(format!("add `[secrets.{secret}]` with `env = \"<VARIABLE>\"`")));
        }
        if github.app_id.is_some() != github.app_key_secret.is_some()
            || github.app_id.is_some() != github.installation_id.is_some()
        {
            return Err(Diagnostic::new(format!("`{}`: `[github]` names part of a GitHub App", path.display()))
                .hint("a GitHub App needs `app_id`, `app_key_secret` and `installation_id` together"));
        }
        settings.source = Some(path);
        Ok(settings.resolve_store_folders(root))
    }
}

/// Says once that a `loktar.toml` in the repository is not read (it was,
/// before the host configuration became the operator's alone), unless the
/// operator chose that very file.
fn warn_of_repository_config(root: &Path, chosen: Option<&Path>) {
    let in_repository = root.join(FILE_NAME);
    if !in_repository.is_file() {
        return;
    }
    let same = |chosen: &Path| match (chosen.canonicalize(), in_repository.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if chosen.is_some_and(same) {
        return;
    }
    tracing::warn!(
        "`{FILE_NAME}` in the repository is not read: the host configuration comes from `--config`, \
         `LOKTAR_CONFIG` or `~/.config/loktar/{FILE_NAME}`, never from the repository being built\n\
         hint: if you run Loktar on your own repository, pass it yourself: `--config {FILE_NAME}`"
    );
}

/// Fields the user sets replace the built-in ones; the others stay.
fn overlay(base: &mut PluginSettings, user: PluginSettings) {
    base.path = user.path.or(base.path.take());
    base.role = user.role.or(base.role);
    base.capabilities = user.capabilities.or(base.capabilities.take());
    base.programs = user.programs.or(base.programs.take());
    base.env = user.env.or(base.env.take());
    base.secrets = user.secrets.or(base.secrets.take());
    base.stores = user.stores.or(base.stores.take());
    base.http_hosts = user.http_hosts.or(base.http_hosts.take());
    base.settings = user.settings.or(base.settings.take());
    base.declared_in = None;
    base.asked = None;
}

/// Where in the file `path` (of `text`) the span starts.
fn position(path: &Path, text: &str, span: Option<std::ops::Range<usize>>) -> Option<Location> {
    let start = span?.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let column = text[..start].rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some(Location { file: path.display().to_string(), line, column })
}

fn user_config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_keeps_relative_store_folders_in_its_own_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        std::fs::write(&path, "[stores.kept]\nkind = \"fs\"\ndir = \"artifacts\"\n\n[stores.fixed]\nkind = \"fs\"\ndir = \"/srv/artifacts\"\n")
            .expect("write");
        let checkout = dir.path().join("work/run-1");
        let mut settings = Settings::load(Some(&path), &checkout).expect("valid");
        settings.rebase_store_folders(&checkout, Path::new("/data/stores/acme+shop"));
        let folder = |name: &str| match &settings.stores[name] {
            StoreSettings::Fs { dir } => dir.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(folder("kept"), Path::new("/data/stores/acme+shop/artifacts"));
        assert_eq!(folder("fixed"), Path::new("/srv/artifacts"), "an absolute folder stays");
    }

    #[test]
    fn a_server_database_is_a_postgres_url_shown_without_its_password_and_its_password_a_secret() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        std::fs::write(&path, "[server]\ndatabase = \"ci:s3cret@db/loktar\"\n").expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("not a URL");
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
        std::fs::write(&path, "[server]\ndatabase = \"mysql://ci:s3cret@db/loktar\"\n").expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("not PostgreSQL");
        assert!(
            error.message.ends_with("`database` under `[server]` is `mysql://…`, not a PostgreSQL URL"),
            "{error:?}"
        );
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
        for url in [
            "postgres://ci:s3cret@db/loktar",
            "postgres://ci@db/loktar?sslmode=require&password=s3cret",
            "postgres://ci@db/loktar?PASS%77ORD=s3cret",
        ] {
            std::fs::write(&path, format!("[server]\ndatabase = {url:?}\n")).expect("write");
            let error = Settings::load(Some(&path), dir.path()).expect_err("a password in the URL");
            assert!(error.message.ends_with("`database` under `[server]` holds a password"), "{error:?}");
            assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
        }
        std::fs::write(&path, "[server]\ndatabase = \"postgres://ci@db/loktar\"\ndatabase_password = \"pg\"\n")
            .expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("an undefined secret");
        assert!(error.message.contains("secret `pg`, which `[secrets]` does not define"), "{error:?}");
        std::fs::write(
            &path,
            "[server]\ndatabase = \"postgresql://ci@db/loktar\"\ndatabase_password = \"pg\"\n\n[secrets.pg]\nenv = \"PG\"\n",
        )
        .expect("write");
        let server = Settings::load(Some(&path), dir.path()).expect("valid").server;
        assert_eq!(server.database.as_deref(), Some("postgresql://ci@db/loktar"));
    }

    #[test]
    fn a_limit_of_zero_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        for key in ["timeout_secs", "memory_mib", "log_kib", "process_timeout_secs"] {
            std::fs::write(&path, format!("[limits]\n{key} = 0\n")).expect("write");
            let error = Settings::load(Some(&path), dir.path()).expect_err("a zero limit");
            assert!(error.message.ends_with(&format!("`{key}` under `[limits]` is 0")), "{}", error.message);
        }
        std::fs::write(&path, "[limits]\ntimeout_secs = 1\n").expect("write");
        assert_eq!(Settings::load(Some(&path), dir.path()).expect("valid").limits.timeout_secs, 1);
    }

    #[test]
    fn container_isolation_needs_an_image_and_only_it_takes_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        std::fs::write(&path, "[isolation]\nmode = \"container\"\n").expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("no image");
        assert!(error.message.ends_with("needs the `image` programs run in"), "{}", error.message);
        std::fs::write(&path, "[isolation]\nimage = \"debian:12\"\n").expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("an image without containers");
        assert!(error.message.ends_with("is used only with `mode = \"container\"`"), "{}", error.message);
        std::fs::write(&path, "[isolation]\nmode = \"container\"\nimage = \"debian:12\"\n").expect("write");
        let settings = Settings::load(Some(&path), dir.path()).expect("valid");
        assert_eq!(
            (settings.isolation.mode, settings.isolation.image.as_deref()),
            (IsolationMode::Container, Some("debian:12"))
        );
    }

    #[test]
    fn builtin_settings_grant_make_only_make() {
        let settings = Settings::builtin();
        let make = &settings.plugins["make"];
        assert_eq!(make.capabilities.as_deref(), Some(&[Capability::Log, Capability::Process][..]));
        assert_eq!(make.programs.as_deref(), Some(&["make".to_string()][..]));
        assert_eq!(settings.plugins["dockerfile"].programs, None);
    }

    #[test]
    fn http_hosts_entries_are_names_ports_or_bracketed_addresses() {
        let parsed = |entry: &str| HttpHost::parse(entry).map(|host| (host.name, host.port));
        assert_eq!(parsed("hooks.slack.com"), Ok(("hooks.slack.com".into(), None)));
        assert_eq!(parsed("127.0.0.1:8080"), Ok(("127.0.0.1".into(), Some(8080))));
        assert_eq!(parsed("[::1]:8080"), Ok(("[::1]".into(), Some(8080))));
        assert_eq!(parsed("[::1]"), Ok(("[::1]".into(), None)));
        assert_eq!(parsed("host:notaport"), Err("`notaport` is not a port".into()));
        assert_eq!(parsed("::1"), Err("an IPv6 address is written in brackets".into()));
        assert_eq!(parsed(":80"), Err("no host name".into()));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        std::fs::write(&path, "[plugins.slack]\nhttp_hosts = [\"hooks.slack.com:https\"]\n").expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("a malformed entry");
        assert!(
            error
                .message
                .ends_with("plugin `slack`: `http_hosts` entry `hooks.slack.com:https`: `https` is not a port"),
            "{}",
            error.message
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        std::fs::write(&path, "[plugins.make]\nprogams = [\"make\"]\n").expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("unknown key");
        assert!(error.message.contains("unknown field `progams`"), "{}", error.message);
        let at = error.location.expect("a position");
        assert_eq!((at.file, at.line, at.column), (path.display().to_string(), 2, 1));
    }

    #[test]
    fn registries_and_the_engine_are_read_and_their_secrets_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        let registry = "[engine]\nhost = \"unix:///tmp/d.sock\"\n\n[registries.quay]\nurl = \"quay.io\"\n\
                        namespace = \"acme\"\nusername = \"acme+ci\"\npassword_secret = \"quay_token\"\n";
        std::fs::write(&path, registry).expect("write");
        let error = Settings::load(Some(&path), dir.path()).expect_err("an undefined secret");
        assert!(error.message.contains("registry `quay` reads secret `quay_token`"), "{}", error.message);

        std::fs::write(&path, format!("{registry}\n[secrets.quay_token]\nenv = \"QUAY_TOKEN\"\n")).expect("write");
        let settings = Settings::load(Some(&path), dir.path()).expect("valid");
        assert_eq!(settings.engine.host.as_deref(), Some("unix:///tmp/d.sock"));
        assert_eq!(settings.registries["quay"].namespace, "acme");
        assert_eq!(settings.registries["quay"].api_url, None);
    }

    #[test]
    fn secrets_named_by_plugins_stores_and_github_must_be_defined() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        for (text, who) in [
            ("[plugins.make]\nsecrets = [\"npm\"]\n", "plugin `make` is granted secret `npm`"),
            (
                "[stores.s3]\nkind = \"s3\"\nbucket = \"b\"\naccess_key_secret = \"k\"\nsecret_key_secret = \"s\"\n",
                "store `s3` reads secret `k`",
            ),
            ("[github]\ntoken_secret = \"gh\"\n", "`[github]` reads secret `gh`"),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = Settings::load(Some(&path), dir.path()).expect_err("an undefined secret");
            assert!(error.message.ends_with(&format!("{who}, which `[secrets]` does not define")), "{}", error.message);
        }
    }

    #[test]
    fn user_settings_overlay_the_builtin_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loktar.toml");
        std::fs::write(
            &path,
            "[plugins.make]\nenv = [\"CC\"]\n\n[plugins.mine]\npath = \"mine.wasm\"\nrole = \"tester\"\n\n[limits]\ntimeout_secs = 5\n",
        )
        .expect("write");
        let settings = Settings::load(Some(&path), dir.path()).expect("valid");
        assert_eq!(settings.plugins["make"].programs.as_deref(), Some(&["make".to_string()][..]));
        assert_eq!(settings.plugins["make"].env.as_deref(), Some(&["CC".to_string()][..]));
        assert_eq!(settings.plugins["mine"].path.as_deref(), Some(dir.path().join("mine.wasm").as_path()));
        assert_eq!(settings.limits.timeout_secs, 5);
        assert_eq!(settings.limits.memory_mib, Limits::default().memory_mib);
    }
}
