//! `loktar doctor`: whether a run of this repository would find what it
//! needs, found out before a run does. From `loktar.json` and the host
//! configuration it works out what the packages use — the plugins of their
//! stages, what those plugins are granted (programs, the container engine,
//! registries, stores, secrets, GitHub, outbound hosts) and how programs
//! are isolated — and checks each once: the plugin loads, the secret is
//! set (its value never shown), the engine answers, the registry and the
//! store take the credentials (read-only calls: a tag list, `HeadBucket`),
//! GitHub answers (its rate limit), a host resolves, a program is on the
//! `PATH` programs see, a sandbox starts, the discovery plugins find the
//! dependencies. Network checks run side by side, each within a short
//! timeout, and only read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use super::context::{Options, find_root, github_repository, host_settings, plugin_session, workspace};
use crate::beneath::Folder;
use crate::blocking::wait_for;
use crate::config::{MANIFEST, Workspace};
use crate::containers::Engine;
use crate::containers::registry::Registry;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::discover;
use crate::github::Github;
use crate::graph::DependencyGraph;
use crate::objects::ObjectStore;
use crate::pipeline::stage::{Stage, stages_of};
use crate::runtime::PluginSession;
use crate::runtime::isolation::{self, Launch, Prepared};
use crate::scm::Git;
use crate::settings::{Capability, HttpHost, IsolationMode, PluginSettings, Role, Settings, StoreSettings};

/// What a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The host configuration and `loktar.json`.
    Configuration,
    /// A plugin loads with its grants.
    Plugin,
    /// A secret is set.
    Secret,
    /// A program plugins run is there.
    Program,
    /// Programs can be isolated.
    Isolation,
    /// The container engine answers.
    Engine,
    /// An image registry takes the credentials.
    Registry,
    /// An object store is there and takes the credentials.
    Store,
    /// GitHub answers.
    Github,
    /// A host an `http` plugin may reach resolves.
    Host,
}

impl Kind {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Configuration => "configuration",
            Kind::Plugin => "plugin",
            Kind::Secret => "secret",
            Kind::Program => "program",
            Kind::Isolation => "isolation",
            Kind::Engine => "engine",
            Kind::Registry => "registry",
            Kind::Store => "store",
            Kind::Github => "github",
            Kind::Host => "host",
        }
    }

    /// Whether the check goes over the network, and so has a timeout.
    fn is_remote(self) -> bool {
        matches!(self, Kind::Engine | Kind::Registry | Kind::Store | Kind::Github | Kind::Host | Kind::Isolation)
    }
}

/// One check and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What it is about.
    pub kind: Kind,
    /// Which one: a plugin's, a secret's, a store's name; empty for the only one.
    pub subject: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what is wrong.
    pub detail: String,
    /// The fix, when it failed.
    pub fix: Option<String>,
    /// The packages that need it.
    pub needed_by: Vec<String>,
}

impl Check {
    fn new(kind: Kind, subject: &str, result: Result<String, Diagnostic>, needed_by: Vec<String>) -> Check {
        let (ok, detail, fix) = match result {
            Ok(detail) => (true, detail, None),
            Err(problem) => {
                let detail = match &problem.location {
                    Some(at) => format!("{}:{}:{}: {}", at.file, at.line, at.column, problem.message),
                    None => problem.message,
                };
                (false, detail, problem.hint)
            }
        };
        Check { kind, subject: subject.to_string(), ok, detail, fix, needed_by }
    }
}

/// Every check, in a stable order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether every check passed.
    pub ok: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    fn of(checks: Vec<Check>) -> Report {
        Report { ok: checks.iter().all(|check| check.ok), checks }
    }
}

/// Checks what the repository `options` name needs; network checks give up after `timeout`.
/// Fails only when there is no repository to look at.
pub fn examine(options: &Options, timeout: Duration) -> Result<Report, Diagnostics> {
    let root = find_root(options.repo.as_deref())?;
    let mut settings = match host_settings(&root, options) {
        Ok(settings) => settings,
        Err(problem) => {
            return Ok(Report::of(vec![Check::new(
                Kind::Configuration,
                "host configuration",
                Err(problem),
                Vec::new(),
            )]));
        }
    };
    let found = match &settings.source {
        Some(path) => format!("`{}`", path.display()),
        None => {
            "none found (`--config`, `LOKTAR_CONFIG`, ~/.config/loktar/loktar.toml): the built-in defaults".to_string()
        }
    };
    let mut checks = vec![Check::new(Kind::Configuration, "host configuration", Ok(found), Vec::new())];
    let loaded = Workspace::read_source(&root, MANIFEST)
        .and_then(|source| workspace(&root, &mut settings, source))
        .and_then(|(workspace, providers)| workspace.check_folders().map(|()| (workspace, providers)));
    let workspace = match loaded {
        Ok((workspace, _)) => workspace,
        Err(problems) => {
            for problem in problems.0 {
                checks.push(Check::new(Kind::Configuration, MANIFEST, Err(problem), Vec::new()));
            }
            return Ok(Report::of(checks));
        }
    };
    let count = workspace.packages.len();
    let packages = format!("{count} package{}", if count == 1 { "" } else { "s" });
    checks.push(Check::new(Kind::Configuration, MANIFEST, Ok(packages), Vec::new()));
    let needs = needs(&settings, &workspace);
    let session = plugin_session(settings)?;
    let doctor =
        Doctor { settings: session.settings(), session: &session, workspace: &workspace, root: &root, timeout };
    let examined = wait_for(join_all(needs.into_iter().map(|((kind, subject), needed_by)| {
        let doctor = &doctor;
        async move {
            let result = doctor.check(kind, &subject, &needed_by).await;
            Check::new(kind, &subject, result, needed_by.into_iter().collect())
        }
    })))?;
    checks.extend(examined);
    Ok(Report::of(checks))
}

/// What the packages need, each with the packages that need it.
type Needs = BTreeMap<(Kind, String), BTreeSet<String>>;

/// The plugins of every package's stages and discovery, and what each of
/// them is granted; the dependency graph when plugins find dependencies.
fn needs(settings: &Settings, workspace: &Workspace) -> Needs {
    let notifiers = settings.notifiers();
    let mut needs = Needs::new();
    let mut plugins: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let all: BTreeSet<String> = workspace.packages.iter().map(|package| package.name.clone()).collect();
    add(&mut needs, Kind::Configuration, "dependency graph", &all);
    for package in &workspace.packages {
        let stages = stages_of(package, Stage::Notify, &notifiers);
        let providers = stages.into_iter().flat_map(|plan| plan.providers).chain(package.dependencies_type.clone());
        for provider in providers {
            plugins.entry(provider).or_default().insert(package.name.clone());
        }
    }
    for (plugin, packages) in &plugins {
        add(&mut needs, Kind::Plugin, plugin, packages);
        let Some(grant) = settings.plugins.get(plugin) else { continue };
        for capability in grant.capabilities.iter().flatten() {
            match capability {
                Capability::Log => {}
                Capability::Process => {
                    // In containers, programs are looked up in the image as they start.
                    if settings.isolation.mode != IsolationMode::Container {
                        for program in grant.programs.iter().flatten() {
                            add(&mut needs, Kind::Program, program, packages);
                        }
                    }
                    add(&mut needs, Kind::Isolation, "", packages);
                }
                Capability::ContainerEngine => {
                    add(&mut needs, Kind::Engine, "", packages);
                    // A registry plugin pushes to the registry named after it (`registry_type`).
                    if grant.role == Some(Role::Registry) {
                        add(&mut needs, Kind::Registry, plugin, packages);
                    }
                }
                Capability::ObjectStore => {
                    // A storage plugin keeps artifacts in the store named after it — the
                    // package's store, which a `build_type: "url"` build uses too. A
                    // repository's own plugin is granted no store.
                    if grant.role == Some(Role::Storage) && grant.declared_in.is_none() {
                        add(&mut needs, Kind::Store, plugin, packages);
                    }
                }
                Capability::Secrets => {
                    let named = settings_secrets(grant).into_iter().map(|(_, secret)| secret);
                    for secret in grant.secrets.iter().flatten().cloned().chain(named) {
                        add(&mut needs, Kind::Secret, &secret, packages);
                    }
                }
                Capability::Github => add(&mut needs, Kind::Github, "", packages),
                Capability::Http => {
                    for host in grant.http_hosts.iter().flatten() {
                        add(&mut needs, Kind::Host, host, packages);
                    }
                }
            }
        }
    }
    // What the registries, stores and GitHub sign in with, and the engine containers run on.
    let mut more: Vec<(Kind, String, BTreeSet<String>)> = Vec::new();
    for ((kind, subject), packages) in &needs {
        for secret in service_secrets(settings, *kind, subject, SignIn::AndApi) {
            more.push((Kind::Secret, secret, packages.clone()));
        }
        if *kind == Kind::Isolation && settings.isolation.mode == IsolationMode::Container {
            more.push((Kind::Engine, String::new(), packages.clone()));
        }
    }
    for (kind, subject, packages) in more {
        add(&mut needs, kind, &subject, &packages);
    }
    needs
}

/// Which secrets of a service: those it signs in with, or those and its REST API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignIn {
    Only,
    AndApi,
}

/// The secrets a registry, a store or GitHub signs in with (and a registry's REST API token).
fn service_secrets(settings: &Settings, kind: Kind, subject: &str, which: SignIn) -> Vec<String> {
    let named: Vec<&String> = match kind {
        Kind::Registry => settings
            .registries
            .get(subject)
            .map(|registry| {
                let api = if which == SignIn::AndApi { registry.api_token_secret.as_ref() } else { None };
                registry.password_secret.iter().chain(api).collect()
            })
            .unwrap_or_default(),
        Kind::Store => match settings.stores.get(subject) {
            Some(StoreSettings::S3(s3)) => vec![&s3.access_key_secret, &s3.secret_key_secret],
            _ => Vec::new(),
        },
        Kind::Github => {
            [&settings.github.token_secret, &settings.github.app_key_secret].into_iter().flatten().collect()
        }
        _ => Vec::new(),
    };
    named.into_iter().cloned().collect()
}

/// The secrets a plugin's own settings name (`webhook_secret = "slack_hook"`):
/// keys ending in `_secret`, with the key.
fn settings_secrets(plugin: &PluginSettings) -> Vec<(String, String)> {
    let table = plugin.settings.iter().flatten();
    table
        .filter(|(key, _)| key.ends_with("_secret"))
        .filter_map(|(key, value)| value.as_str().map(|secret| (key.clone(), secret.to_string())))
        .collect()
}

/// Adds a need of `packages`.
fn add(needs: &mut Needs, kind: Kind, subject: &str, packages: &BTreeSet<String>) {
    needs.entry((kind, subject.to_string())).or_default().extend(packages.iter().cloned());
}

/// What the checks read.
struct Doctor<'a> {
    settings: &'a Settings,
    session: &'a PluginSession,
    workspace: &'a Workspace,
    root: &'a Path,
    timeout: Duration,
}

impl Doctor<'_> {
    async fn check(&self, kind: Kind, subject: &str, needed_by: &BTreeSet<String>) -> Result<String, Diagnostic> {
        // A service is signed in to only with its secrets: without them there is nothing to try.
        for secret in service_secrets(self.settings, kind, subject, SignIn::Only) {
            if self.secret(&secret).is_err() {
                return Err(Diagnostic::new(format!("not checked: secret `{secret}` is not usable"))
                    .hint(format!("fix the check of secret `{secret}` first")));
            }
        }
        let checking = async {
            match kind {
                Kind::Configuration => self.graph().await,
                Kind::Plugin => self.plugin(subject).await,
                Kind::Secret => self.secret(subject),
                Kind::Program => self.program(subject),
                Kind::Isolation => self.isolation().await,
                Kind::Engine => self.engine().await,
                Kind::Registry => self.registry(subject, needed_by).await,
                Kind::Store => self.store(subject).await,
                Kind::Github => self.github().await,
                Kind::Host => resolve(subject).await,
            }
        };
        if !kind.is_remote() {
            return checking.await;
        }
        tokio::time::timeout(self.timeout, checking).await.unwrap_or_else(|_| {
            Err(Diagnostic::new(format!("no answer within {} s", self.timeout.as_secs_f32()))
                .hint(self.unanswered_hint(kind, subject)))
        })
    }

    fn unanswered_hint(&self, kind: Kind, subject: &str) -> String {
        let config = self.config_name();
        match kind {
            Kind::Engine => {
                format!("is the engine running? check `host` under `[engine]` in {config}, or `DOCKER_HOST`")
            }
            Kind::Registry => format!("is the registry up? check `url` under `[registries.{subject}]` in {config}"),
            Kind::Store => format!("is the server up? check `endpoint` under `[stores.{subject}]` in {config}"),
            Kind::Github => format!("check `api_url` under `[github]` in {config} and this machine's network"),
            _ => "check this machine's network and DNS, or give it longer with `--timeout`".to_string(),
        }
    }

    /// How messages name the host configuration.
    fn config_name(&self) -> String {
        match &self.settings.source {
            Some(path) => format!("`{}`", path.display()),
            None => "loktar.toml".to_string(),
        }
    }

    async fn plugin(&self, name: &str) -> Result<String, Diagnostic> {
        let plugin = self.session.load(name).await.map_err(|error| error.problem)?;
        let settings = self.settings.plugins.get(name).cloned().unwrap_or_default();
        // Secrets its own settings name: granted to it, and — for a plugin that makes HTTP
        // requests — a URL in one goes to a host it may reach.
        for (key, secret) in settings_secrets(&settings) {
            let granted = settings.secrets.iter().flatten().any(|granted| *granted == secret);
            if !granted {
                return Err(Diagnostic::new(format!(
                    "plugin `{name}` reads secret `{secret}` (`{key}` in its settings), which is not granted to it"
                ))
                .hint(format!("add `\"{secret}\"` to `secrets` under `[plugins.{name}]` in {}", self.config_name())));
            }
            if !plugin.requested.contains(&Capability::Http) {
                continue;
            }
            let url = self.settings.secret_value(&secret).and_then(|value| value.trim().parse::<http::Uri>().ok());
            if let Some(url) = url.filter(|url| url.scheme().is_some())
                && let Some(host) = url.host()
            {
                let https = url.scheme_str() == Some("https");
                let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
                let hosts: Vec<HttpHost> =
                    settings.http_hosts.iter().flatten().filter_map(|entry| HttpHost::parse(entry).ok()).collect();
                if !hosts.iter().any(|entry| entry.allows(host, port, https)) {
                    return Err(Diagnostic::new(format!(
                        "the URL in secret `{secret}` goes to `{host}:{port}`, which plugin `{name}` may not reach"
                    ))
                    .hint(format!(
                        "add it to `http_hosts` under `[plugins.{name}]` (a bare name is HTTPS on port 443)"
                    )));
                }
            }
        }
        let granted: Vec<&str> = plugin.grants.capabilities().into_iter().map(Capability::name).collect();
        Ok(format!("version {}; granted {}", plugin.version, granted.join(", ")))
    }

    /// The discovery plugins run, and the graph they make with `depends_on` has no cycle.
    async fn graph(&self) -> Result<String, Diagnostic> {
        let discovery = if discover::needed(self.workspace) {
            discover::discover(self.workspace, self.session).await
        } else {
            discover::Discovery::default()
        };
        let problems = match DependencyGraph::from_workspace(self.workspace, &discover::found_edges(&discovery.found)) {
            Ok(_) => discovery.problems,
            Err(broken) => discovery.problems.into_iter().chain(Diagnostics::from(broken).0).collect(),
        };
        if let Some(first) = problems.first() {
            // Every problem at once, so that one run of the doctor shows them all.
            let messages: Vec<String> = problems.iter().map(|problem| problem.message.clone()).collect();
            return Err(Diagnostic::new(messages.join("; ")).maybe_hint(first.hint.clone()));
        }
        let found = discovery.found.len();
        let edges = self.workspace.declared_dependencies().count() + found;
        Ok(format!(
            "{edges} dependenc{}, {found} of them found by discovery plugins; no cycle",
            if edges == 1 { "y" } else { "ies" }
        ))
    }

    fn secret(&self, name: &str) -> Result<String, Diagnostic> {
        let config = self.config_name();
        let secret = self.settings.secrets.get(name).ok_or_else(|| {
            Diagnostic::new(format!("secret `{name}` is not defined"))
                .hint(format!("add `[secrets.{name}]` with `env = \"<VARIABLE>\"` to {config}"))
        })?;
        match crate::vault::value(&secret.env) {
            Some(value) if !value.is_empty() => Ok(format!("set, from `{}`", secret.env)),
            Some(_) => Err(Diagnostic::new(format!("`{}`, the variable of secret `{name}`, is empty", secret.env))
                .hint(format!("give `{}` the secret's value in the environment loktar runs in", secret.env))),
            None => Err(Diagnostic::new(format!("`{}`, the variable of secret `{name}`, is not set", secret.env))
                .hint(format!("set `{}` in the environment loktar runs in", secret.env))),
        }
    }

    fn program(&self, name: &str) -> Result<String, Diagnostic> {
        let isolation = &self.settings.isolation;
        let path = isolation::find_program(isolation, name).ok_or_else(|| {
            let seen = if isolation.mode == IsolationMode::Namespaces {
                " (isolated programs see the folders of `PATH` below /usr, /bin, /sbin, /lib*, /opt and \
                 `read_only` of `[isolation]`)"
            } else {
                ""
            };
            Diagnostic::new(format!("`{name}` is not on the `PATH` programs see{seen}")).hint(format!(
                "install it{}; or, if no package needs it, take it out of `programs` of the plugin in {}",
                debian_package(name)
                    .map(|package| format!(" (Debian: `apt-get install {package}`)"))
                    .unwrap_or_default(),
                self.config_name()
            ))
        })?;
        Ok(format!("`{}`", path.display()))
    }

    async fn isolation(&self) -> Result<String, Diagnostic> {
        let settings = &self.settings.isolation;
        match settings.mode {
            IsolationMode::None => Ok("off (`mode = \"none\"`): programs run with Loktar's own rights".to_string()),
            IsolationMode::Container => {
                let image = settings.image.as_deref().ok_or_else(|| {
                    Diagnostic::new("`mode = \"container\"` names no image")
                        .hint(format!("set `image` under `[isolation]` in {}", self.config_name()))
                })?;
                match Engine::new(&self.settings.engine).inspect(image).await? {
                    Some(_) => Ok(format!(
                        "containers of image `{image}` (programs are looked up in it as they start, not here)"
                    )),
                    None => Err(Diagnostic::new(format!("image `{image}` is not on the container engine"))
                        .hint(format!("pull or build it there: `docker pull {image}`"))),
                }
            }
            IsolationMode::Namespaces => self.sandbox().await,
        }
    }

    /// Starts `true` in a sandbox, as a package's program would start.
    async fn sandbox(&self) -> Result<String, Diagnostic> {
        let settings = &self.settings.isolation;
        let program = isolation::find_program(settings, "true").ok_or_else(|| {
            Diagnostic::new("`true` is not on the `PATH` isolated programs see")
                .hint("programs see the folders of `PATH` below /usr, /bin, /sbin, /lib*, /opt and `read_only` of `[isolation]`")
        })?;
        let folder = Folder::open(self.root)
            .map_err(|e| Diagnostic::new(format!("cannot open the repository `{}`: {e}", self.root.display())))?;
        let launch =
            Launch { program: &program, args: &[], env: Vec::new(), package: &folder, artifacts: None, cwd: &folder };
        let mut command = match isolation::prepare(settings, launch) {
            Ok(Prepared::Process(command)) => command,
            Ok(Prepared::Container(_)) => return Err(Diagnostic::new("internal error: namespaces made a container")),
            Err(error) => return Err(Diagnostic::new(error.to_string()).maybe_hint(error.hint())),
        };
        command.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).kill_on_drop(true);
        let output = command
            .output()
            .await
            .map_err(|e| Diagnostic::new(format!("bubblewrap did not start: {e}")).hint("reinstall bubblewrap"))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
            let said = if said.is_empty() { format!("it ended with {}", output.status) } else { said };
            return Err(Diagnostic::new(format!("bubblewrap cannot make a sandbox: {said}")).hint(
                "bubblewrap needs user namespaces: run loktar as root, or allow them \
                 (`sysctl kernel.unprivileged_userns_clone=1`); only for repositories whose every author you \
                 trust, set `mode = \"none\"` under `[isolation]`",
            ));
        }
        let bubblewrap = crate::programs::find("bwrap").map(|path| path.display().to_string()).unwrap_or_default();
        Ok(format!("namespaces, a sandbox started (bubblewrap `{bubblewrap}`)"))
    }

    async fn engine(&self) -> Result<String, Diagnostic> {
        let engine = Engine::new(&self.settings.engine);
        let (version, api) = engine.version().await?;
        Ok(format!("`{}` answers: Docker Engine {version}, API {api}", engine.address()))
    }

    async fn registry(&self, name: &str, needed_by: &BTreeSet<String>) -> Result<String, Diagnostic> {
        let settings = self.settings.registries.get(name).ok_or_else(|| {
            Diagnostic::new(format!("no registry `{name}` in the host configuration")).hint(format!(
                "add `[registries.{name}]` with `url`, `namespace`, `username` and `password_secret` to {}",
                self.config_name()
            ))
        })?;
        let registry = Registry::new(name, settings, |secret| self.settings.secret_value(secret));
        // Read-only calls that need the credentials, for a package's repository.
        let repository = needed_by.first().map_or_else(|| "loktar".to_string(), |name| name.to_ascii_lowercase());
        let tags = registry.check(&repository).await?;
        let user = settings.username.as_deref().map(|user| format!(" as `{user}`")).unwrap_or_default();
        Ok(format!("`{}` signs in{user}: `{}` has {tags} tag(s)", settings.url, registry.remote(&repository)))
    }

    async fn store(&self, name: &str) -> Result<String, Diagnostic> {
        let settings = self.settings.stores.get(name).ok_or_else(|| {
            Diagnostic::new(format!("no store `{name}` in the host configuration"))
                .hint(format!("add `[stores.{name}]` to {} (see the README's `Storing artifacts`)", self.config_name()))
        })?;
        ObjectStore::open(name, settings, |secret| self.settings.secret_value(secret))?.check().await
    }

    async fn github(&self) -> Result<String, Diagnostic> {
        let repository = github_repository(self.settings, &Git::new(self.root))?;
        // One try: a doctor reports what GitHub answers now.
        let mut settings = self.settings.clone();
        settings.github.retries = 0;
        let github = Github::from_settings(&settings);
        let answer = github.call("GET", "/rate_limit", None).await?;
        if answer.status == 401 || answer.status == 403 {
            let secret = match (&self.settings.github.token_secret, &self.settings.github.app_key_secret) {
                (Some(secret), _) | (None, Some(secret)) => format!("the value of secret `{secret}`"),
                (None, None) => "`token_secret` under `[github]`".to_string(),
            };
            return Err(Diagnostic::new(format!("GitHub refused the credentials: HTTP {}", answer.status))
                .hint(format!("check {secret}: the token may have expired or been revoked")));
        }
        if !(200..300).contains(&answer.status) {
            return Err(Diagnostic::new(format!("`{}/rate_limit` answered HTTP {}", github.api_url(), answer.status))
                .hint(format!("check `api_url` under `[github]` in {}", self.config_name())));
        }
        let limits: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let core = &limits["resources"]["core"];
        let left = match (core["remaining"].as_u64(), core["limit"].as_u64()) {
            (Some(remaining), Some(limit)) => format!("{remaining} of {limit} requests left this hour"),
            _ => "no rate limit said".to_string(),
        };
        Ok(format!("`{}` answers for `{repository}`: {left}", github.api_url()))
    }
}

/// Resolves an `http_hosts` entry (checked when the configuration was read).
async fn resolve(entry: &str) -> Result<String, Diagnostic> {
    let host = HttpHost::parse(entry).map_err(|problem| Diagnostic::new(format!("`{entry}`: {problem}")))?;
    let name = host.name.trim_start_matches('[').trim_end_matches(']');
    let mut addresses = tokio::net::lookup_host((name, host.port_or_default())).await.map_err(|e| {
        Diagnostic::new(format!("`{name}` does not resolve: {e}"))
            .hint("check this machine's DNS, or the name in `http_hosts` of the plugin in the host configuration")
    })?;
    match addresses.next() {
        Some(address) => Ok(format!("resolves to {}", address.ip())),
        None => Err(Diagnostic::new(format!("`{name}` resolves to no address"))),
    }
}

/// The Debian package of a program the built-in plugins run.
fn debian_package(program: &str) -> Option<&'static str> {
    Some(match program {
        "make" => "make",
        "python3" => "python3-pip",
        "dpkg-deb" => "dpkg",
        "javac" | "jar" => "default-jdk-headless",
        "mvn" => "maven",
        "cp" => "coreutils",
        "git" => "git",
        _ => return None,
    })
}
