//! What every use case needs: the repository, its validated workspace and
//! dependency graph, and — for commands about a change — the plan.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::request::Range;
use crate::affected::{self, Detection};
use crate::blocking::wait_for;
use crate::config::owners::Owners;
use crate::config::{MANIFEST, Providers, SourceFile, Workspace};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::discover;
use crate::github::Github;
use crate::graph::DependencyGraph;
use crate::graph::plan::Plan;
use crate::render::plan::Report;
use crate::runtime::{PluginEngine, PluginSession};
use crate::scm::pull_request::PullRequestReader;
use crate::scm::{self, BaseOrigin, ChangeSet, Git, History, Selection};
use crate::settings::{PrChanges, Settings};

/// A loaded repository.
#[derive(Debug)]
pub struct Context {
    pub(crate) workspace: Workspace,
    pub(crate) graph: DependencyGraph,
    pub(crate) providers: Providers,
    pub(crate) settings: Settings,
    pub(crate) git: Git,
}

/// The plan for a change, with what it was computed from.
pub struct Planned {
    pub(crate) changes: ChangeSet,
    /// Where more about the change comes from: local git, or GitHub for a pull request.
    pub(crate) history: Box<dyn History>,
    pub(crate) detection: Detection,
    pub(crate) plan: Plan,
}

impl Context {
    /// Finds the repository from `--repo` (or the current folder) and loads it.
    pub(crate) fn load(options: &Options) -> Result<Context, Diagnostics> {
        let root = find_root(options.repo.as_deref())?;
        Context::load_at(root, options, Folders::CheckNow).map(|(context, _)| context)
    }

    /// Loads the repository and plans the selected changes.
    pub(crate) fn load_and_plan(options: &Options, range: &Range) -> Result<(Context, Planned), Diagnostics> {
        Context::load_and_plan_preparing(options, range, |_| ()).map(|(context, planned, ())| (context, planned))
    }

    /// Loads the repository and plans the selected changes, doing `prepare`
    /// (work that needs the workspace but not the plan) while git is still busy.
    ///
    /// Git reads the range on a second thread while this one parses
    /// `loktar.json`: the two are independent, and together they are most of
    /// the time a plan takes.
    pub(crate) fn load_and_plan_preparing<T>(
        options: &Options,
        range: &Range,
        prepare: impl FnOnce(&Context) -> T,
    ) -> Result<(Context, Planned, T), Diagnostics> {
        if let Some(number) = range.github_pr {
            let context = Context::load(options)?;
            let (changes, history) = context.pull_request_changes(number)?;
            let planned = context.plan(changes, history)?;
            let prepared = prepare(&context);
            return Ok((context, planned, prepared));
        }
        let root = find_root(options.repo.as_deref())?;
        let git = Git::new(&root);
        let selection = Selection {
            base: range.base.clone(),
            head: Some(range.head.clone()),
            default_branch: range.default_branch.clone(),
            worktree: range.worktree,
        };
        let started = std::time::Instant::now();
        std::thread::scope(|scope| {
            let reading = scope.spawn(|| {
                let changes = scm::changes(&git, &selection);
                tracing::debug!(elapsed = ?started.elapsed(), "git range read");
                changes
            });
            let (context, folders) = Context::load_at(root.clone(), options, Folders::Defer)?;
            tracing::debug!(elapsed = ?started.elapsed(), "workspace loaded");
            // Ready before git is done, so that only the plan itself waits for it.
            let owners = context.workspace.owners();
            let prepared = prepare(&context);
            let folders_checked = if folders == Folders::Defer { context.workspace.check_folders() } else { Ok(()) };
            let changes =
                reading.join().unwrap_or_else(|_| Err(Diagnostic::new("internal error: reading the git range failed")));
            // A broken configuration is reported before any git problem.
            folders_checked?;
            let history = Box::new(context.git.clone());
            let planned = context.plan_with(&owners, changes?, history)?;
            drop(owners);
            tracing::debug!(elapsed = ?started.elapsed(), "plan computed");
            Ok((context, planned, prepared))
        })
    }

    /// Loads the context of the repository at `root`. With [`Folders::Defer`], whether the package folders exist is left to the
    /// caller, unless plugins read them or the graph is broken: returns which
    /// of the two it did.
    fn load_at(root: PathBuf, options: &Options, folders: Folders) -> Result<(Context, Folders), Diagnostics> {
        let mut settings = host_settings(&root, options)?;
        let source = Workspace::read_source(&root, &shown_path(&root.join(MANIFEST)))?;
        let (workspace, providers) = workspace(&root, &mut settings, source)?;
        let discovering = discover::needed(&workspace);
        // Plugins read the folders: a missing one is reported before a plugin fails on it.
        let folders = if discovering { Folders::CheckNow } else { folders };
        if folders == Folders::CheckNow {
            workspace.check_folders()?;
        }
        let discovered = if discovering {
            let session = plugin_session(settings.clone())?;
            wait_for(discover::discover(&workspace, &session))?.into_result()?
        } else {
            Vec::new()
        };
        let edges = discover::found_edges(&discovered);
        let graph = match DependencyGraph::from_workspace(&workspace, &edges) {
            Ok(graph) => graph,
            Err(broken) => {
                // Problems with the folders come first, as they do when they are checked first.
                if folders == Folders::Defer {
                    workspace.check_folders()?;
                }
                return Err(broken.into());
            }
        };
        tracing::debug!(packages = workspace.packages.len(), root = %root.display(), "workspace loaded");
        Ok((Context { git: Git::new(&root), workspace, graph, providers, settings }, folders))
    }

    /// Computes the plan for a change set.
    pub(crate) fn plan(&self, changes: ChangeSet, history: Box<dyn History>) -> Result<Planned, Diagnostics> {
        self.plan_with(&self.workspace.owners(), changes, history)
    }

    /// Computes the plan for a change set, with the package folders already indexed.
    fn plan_with(
        &self,
        owners: &Owners<'_>,
        changes: ChangeSet,
        history: Box<dyn History>,
    ) -> Result<Planned, Diagnostics> {
        tracing::debug!(files = changes.files.len(), commits = changes.commits.len(), "changes read");
        let mut detection = affected::detect(&self.workspace, owners, &self.providers, history.as_ref(), &changes)?;
        let seeds = std::mem::take(&mut detection.seeds);
        let plan = if detection.nobuild.is_some() { Plan::default() } else { Plan::compute(&self.graph, seeds) };
        Ok(Planned { changes, history, detection, plan })
    }

    /// The repository on GitHub (`owner/repo`): `[github] repository`, else the `origin` remote's.
    pub(crate) fn github_repository(&self) -> Result<String, Diagnostic> {
        github_repository(&self.settings, &self.git)
    }

    /// A GitHub pull request's changes: from the API, or (`[github]
    /// pr_changes = "git"`) its base and head from the API and the range from git.
    fn pull_request_changes(&self, number: u64) -> Result<(ChangeSet, Box<dyn History>), Diagnostic> {
        let repository = self.github_repository()?;
        let reader = PullRequestReader::new(Github::from_settings(&self.settings), self.git.clone(), &repository)?;
        let pull = reader.pull_request(number)?;
        match self.settings.github.pr_changes {
            PrChanges::Api => Ok((reader.changes(&pull)?, Box::new(reader))),
            PrChanges::Git => {
                let selection =
                    Selection { base: Some(pull.base.clone()), head: Some(pull.head.clone()), ..Selection::default() };
                let mut changes = scm::changes(&self.git, &selection)?;
                changes.origin = BaseOrigin::PullRequest { number, branch: pull.base_ref };
                Ok((changes, Box::new(self.git.clone())))
            }
        }
    }
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned").field("changes", &self.changes).field("plan", &self.plan).finish_non_exhaustive()
    }
}

impl Planned {
    /// The printable report.
    pub(crate) fn report<'a>(&'a self, context: &'a Context) -> Report<'a> {
        Report { workspace: &context.workspace, changes: &self.changes, detection: &self.detection, plan: &self.plan }
    }
}

/// `no package named …`, with the closest name as a hint.
pub(crate) fn unknown_package(context: &Context, name: &str) -> Diagnostic {
    let hint = match context.workspace.closest_name(name) {
        Some(guess) => format!("did you mean `{guess}`?"),
        None => "`loktar graph` lists the packages".to_string(),
    };
    Diagnostic::new(format!("no package named `{name}` in loktar.json")).hint(hint)
}

/// Whether loading a context checks that the package folders exist, or
/// leaves that to its caller (see [`Context::load_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Folders {
    CheckNow,
    Defer,
}

/// The host configuration for the repository at `root`, with `options`'
/// overrides, its secrets taken out of the environment ([`crate::vault`]).
pub(crate) fn host_settings(root: &Path, options: &Options) -> Result<Settings, Diagnostic> {
    let mut settings = Settings::load(options.config.as_deref(), root)?;
    if let Some(repository) = &options.github_repository {
        settings.github.repository = Some(repository.clone());
    }
    if let Some(store_root) = &options.store_root {
        settings.rebase_store_folders(root, store_root);
    }
    // Before any plugin or program runs, and before the secrets are read.
    crate::vault::seal(&settings)?;
    Ok(settings)
}

/// The workspace `source` declares, its own plugins added to `settings`
/// with what the policy grants them; no folder checked, no plugin run.
pub(crate) fn workspace(
    root: &Path,
    settings: &mut Settings,
    source: SourceFile,
) -> Result<(Workspace, Providers), Diagnostics> {
    let declared = crate::config::plugins::declared(&source)?;
    for note in crate::config::plugins::grant(settings, root, &source, declared)? {
        tracing::warn!("{note}");
    }
    let providers = Providers::from_settings(settings);
    let workspace = Workspace::from_source(root, source, &providers)?;
    Ok((workspace, providers))
}

/// The repository on GitHub (`owner/repo`): `[github] repository`, else that of `git`'s `origin` remote.
pub(crate) fn github_repository(settings: &Settings, git: &Git) -> Result<String, Diagnostic> {
    if let Some(repository) = &settings.github.repository {
        return Ok(repository.clone());
    }
    scm::head(git, None).origin_url.as_deref().and_then(loktar_protocol::repository_slug).ok_or_else(|| {
        Diagnostic::new("cannot tell which GitHub repository this is")
            .hint("set `repository = \"<owner>/<repo>\"` under `[github]` in loktar.toml, or add the `origin` remote")
    })
}

/// Options every command shares.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--repo`: any folder inside the repository.
    pub repo: Option<PathBuf>,
    /// `--config`: the host configuration file.
    pub config: Option<PathBuf>,
    /// The GitHub repository (`owner/repo`), over `[github] repository`: a
    /// server knows it from the webhook.
    pub github_repository: Option<String>,
    /// Where `fs` stores named relative to the repository are, instead of
    /// below it: a server's checkouts are removed after each run.
    pub store_root: Option<PathBuf>,
}

/// The process's plugin engine, started on first use and shared by every
/// session: a component is compiled (or read from the cache) once per process.
pub(crate) fn plugin_engine() -> Result<Arc<PluginEngine>, Diagnostic> {
    static ENGINE: OnceLock<Arc<PluginEngine>> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let engine = Arc::new(PluginEngine::new(PluginEngine::default_cache_dir().as_deref())?);
    Ok(ENGINE.get_or_init(|| engine).clone())
}

/// The plugins of a repository's host configuration, on the process's engine.
pub(crate) fn plugin_session(settings: Settings) -> Result<PluginSession, Diagnostic> {
    Ok(PluginSession::new(plugin_engine()?, settings))
}

pub(crate) fn find_root(repo: Option<&Path>) -> Result<PathBuf, Diagnostic> {
    let start = repo.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    scm::find_root(&start)
}

/// A path as the user should see it: relative to the current folder when inside it.
fn shown_path(path: &Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|cwd| {
        let cwd = cwd.canonicalize().ok()?;
        let path = path.parent()?.canonicalize().ok()?.join(path.file_name()?);
        path.strip_prefix(&cwd).ok().map(Path::to_path_buf)
    });
    relative.unwrap_or_else(|| path.to_path_buf()).display().to_string()
}
