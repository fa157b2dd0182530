//! `[server]` in the operator's `loktar.toml`: how `loktar server` listens,
//! where it keeps its data, which repositories it builds and who may write
//! through its API.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! data_dir = "/var/lib/loktar"
//! database = "postgres://loktar@db.internal/loktar"   # else SQLite in data_dir
//! database_password = "postgres"       # a secret under [secrets]
//! public_url = "https://ci.example.com"
//! webhook_secret = "github_webhook"     # a secret under [secrets]
//! api_tokens = ["ci_admin"]             # secrets under [secrets]
//!
//! [server.repositories."acme/shop"]
//! clone_url = "https://github.com/acme/shop.git"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The address to listen on; port 0 takes a free one (the bound address is printed).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Run logs, repository mirrors and the database; relative to the
    /// configuration file's folder.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The PostgreSQL database (`postgres://USER@HOST:PORT/DATABASE`) the
    /// run store is kept in, for servers scaled out; else an SQLite file in
    /// `data_dir`.
    pub database: Option<String>,
    /// The secret (under `[secrets]`) holding `database`'s password.
    pub database_password: Option<String>,
    /// The server's address as people reach it, for links in statuses and messages.
    pub public_url: Option<String>,
    /// The server's address as executors elsewhere reach it, for its storage
    /// proxy [default: `public_url`; else where it listens, when that is
    /// this machine's loopback].
    pub executor_url: Option<String>,
    /// The secret (under `[secrets]`) GitHub signs webhooks with.
    pub webhook_secret: Option<String>,
    /// Secrets (under `[secrets]`) holding the tokens that may use the API's write routes.
    #[serde(default)]
    pub api_tokens: Vec<String>,
    /// Whether the API's read routes answer without a token.
    #[serde(default = "yes")]
    pub public_read: bool,
    /// Runs at once, and packages at once in each [default: the number of cores].
    pub executors: Option<usize>,
    /// A new push to a branch, or a new head on a pull request, cancels the older run.
    #[serde(default = "yes")]
    pub cancel_superseded: bool,
    /// What to do when two open pull requests affect the same packages.
    #[serde(default)]
    pub collisions: Collisions,
    /// The repositories the server builds, by `owner/repo`.
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositorySettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: default_listen(),
            data_dir: default_data_dir(),
            database: None,
            database_password: None,
            public_url: None,
            executor_url: None,
            webhook_secret: None,
            api_tokens: Vec::new(),
            public_read: true,
            executors: None,
            cancel_superseded: true,
            collisions: Collisions::Off,
            repositories: BTreeMap::new(),
        }
    }
}

/// One repository the server builds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySettings {
    /// Where it is cloned from: a URL or path git can fetch from without a
    /// prompt. On GitHub's own host (`https://github.com/…`, or the host of a
    /// GitHub Enterprise `api_url`), git is given `[github]`'s credentials.
    pub clone_url: String,
}

/// What the server does about pull requests that affect the same packages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Collisions {
    /// Nothing.
    #[default]
    Off,
    /// A comment on the later pull request.
    Warn,
    /// A comment and a failing `loktar - collisions` status.
    Block,
}

/// Whether `url` names a PostgreSQL database: the only kind `database` takes.
pub fn is_postgres_url(url: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|scheme| url.starts_with(scheme))
}

/// Whether a database URL carries a password (`user:password@`, or a
/// `password` parameter): `database_password` holds it instead, so that the
/// URL can be shown and logged.
pub fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before, query),
        None => (rest, ""),
    };
    let authority = authority.split('/').next().unwrap_or(authority);
    let in_userinfo = authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'));
    // Parameter names as the driver reads them: percent-decoded (`pass%77ord`), in any case.
    let named_password = query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or(pair);
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy().to_ascii_lowercase();
        name.contains("pass")
    });
    in_userinfo || named_password
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_string()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("loktar-data")
}

fn yes() -> bool {
    true
}
