//! `loktar run`'s use case, for every front end: choose the packages of a
//! [`RunRequest`] (from git, all of them, or by name), leave out those
//! already green, plan each one's stages ([`RunPlan`]), then begin the run:
//! its record in the run store and its folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::context::{Context, Options, Planned, unknown_package};
use super::request::{RunRequest, RunSelection};
use crate::blocking::wait_for;
use crate::config::LOKTAR_DIR;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::events::{RunId, RunInfo, WriteFailure};
use crate::github::Github;
use crate::pipeline::plan::{NotRebuilt, PlannedPackage, RunPlan, Why};
use crate::pipeline::scheduler;
use crate::pipeline::stage::{Stage, stages_of};
use crate::rebuild::{self, Candidate, Walk};
use crate::runtime::bindings::types::RunContext;
use crate::settings::GithubSettings;
use crate::store::{Database, NewRun, RunStore};
use crate::terminal::escaped;
use crate::{scm, timefmt};

/// A run planned, not begun.
#[derive(Debug)]
pub struct PlannedRun {
    /// The repository it runs in.
    pub context: Context,
    /// What it will do.
    pub plan: RunPlan,
    /// How the packages were chosen, and why none were when none were.
    selection: Selection,
    /// The work tree's head: the commit built, unless the selection names one.
    head: scm::Head,
}

impl PlannedRun {
    /// Why the run has nothing to do, when it has nothing to do.
    pub fn nothing_to_run(&self) -> Option<String> {
        if !self.plan.packages.is_empty() {
            return None;
        }
        Some(match (&self.selection.empty_because, self.plan.not_rebuilt.is_empty()) {
            (_, false) => "every affected package is already green".to_string(),
            (Some(because), true) => because.clone(),
            (None, true) => "nothing is selected".to_string(),
        })
    }
}

/// Plans the run `request` asks for in the repository `options` name.
pub fn plan_run(options: &Options, request: &RunRequest) -> Result<PlannedRun, Diagnostics> {
    let (context, mut selection) = select(options, request)?;
    let notifiers = context.settings.notifiers();
    let not_rebuilt = if request.rebuild {
        skip_green(&context, &mut selection, request.last_stage, &notifiers)?
    } else {
        Vec::new()
    };
    let mut head = scm::head(&context.git, request.range.default_branch.as_deref());
    if head.branch.is_none() {
        head.branch = request.range.branch.clone();
    }
    let workspace = &context.workspace;
    let dependencies = dependencies_within(&context, &selection.packages);
    let plan = RunPlan {
        id: new_run_id(),
        root: workspace.root.clone(),
        packages: selection
            .packages
            .iter()
            .zip(dependencies)
            .map(|(&index, dependencies)| {
                let package = workspace.packages[index].clone();
                let stages = stages_of(&package, request.last_stage, &notifiers);
                let why = selection.why.remove(&index).unwrap_or_default();
                let (pkg_type, own) = (package.pkg_type.as_deref(), package.build_info.queue.as_deref());
                let queue = crate::settings::queue_of(context.settings.nats.as_ref(), pkg_type, own);
                PlannedPackage { package, stages, dependencies, why, queue }
            })
            .collect(),
        context: run_context(&head, selection.head.as_deref(), selection.base.clone(), &context.settings.github),
        options: scheduler::Options { concurrency: request.concurrency.max(1), fail_fast: request.fail_fast },
        notifiers,
        not_rebuilt,
    };
    Ok(PlannedRun { context, plan, selection, head })
}

/// Where a run keeps its record, logs and artifacts: the caller's choice.
#[derive(Debug, Clone)]
pub enum RunPlace {
    /// The repository's own run store, and `.loktar/runs/<number>` made
    /// with no link on the way (a repository could commit links there to
    /// have logs written anywhere): what `loktar run` uses.
    InRepository,
    /// The server's store (SQLite in `<data dir>/loktar.db`, or PostgreSQL)
    /// and the folder `<data dir>/runs/<run id>`: a server's, whose work
    /// trees come and go.
    Server {
        /// Its data folder.
        data_dir: PathBuf,
        /// Its run store.
        database: Database,
    },
}

/// Begins a planned run: its record in the run store and its work folder.
/// Returns the loaded repository, the store (for the run's record to be
/// written into) and the run.
pub fn begin_run(planned: PlannedRun, place: RunPlace) -> Result<(Context, RunStore, RunInfo), Diagnostic> {
    let PlannedRun { context, mut plan, selection, head } = planned;
    let root = &context.workspace.root;
    // Where a full disk stops the record: the folder of an SQLite file (PostgreSQL's disk is its own).
    let store_dir = match &place {
        RunPlace::InRepository => Some(root.join(LOKTAR_DIR)),
        RunPlace::Server { data_dir, database: Database::File(_) } => Some(data_dir.clone()),
        RunPlace::Server { database: Database::Postgres(_), .. } => None,
    };
    let when_full = |problem| match &store_dir {
        Some(dir) => when_full(problem, dir),
        None => problem,
    };
    let store = match &place {
        RunPlace::InRepository => RunStore::open(root),
        RunPlace::Server { database, .. } => database.open(),
    }
    .map_err(when_full)?;
    let started = std::time::SystemTime::now();
    let number = store
        .begin_run(&NewRun {
            id: plan.id.clone(),
            started_ms: timefmt::unix_millis(started),
            selection: selection.kind.to_string(),
            head: selection.head.clone().or_else(|| head.commit.clone()),
            base: selection.base.clone(),
            branch: head.branch.clone(),
            packages: plan.packages.len(),
            concurrency: plan.options.concurrency,
        })
        .map_err(when_full)?;
    let dir = match place {
        RunPlace::InRepository => {
            let relative = Path::new(LOKTAR_DIR).join("runs").join(number.to_string());
            crate::beneath::Folder::open(root)
                .map_err(|e| e.to_string())
                .and_then(|root| root.create_folder(&relative).map(drop).map_err(|e| e.to_string()))
                .map_err(|e| {
                    cannot_make_folder(&root.join(&relative), &e)
                        .hint(format!("`{}` is Loktar's own folder: remove any link in it", LOKTAR_DIR))
                })?;
            root.join(relative)
        }
        RunPlace::Server { data_dir, .. } => {
            let dir = data_dir.join("runs").join(plan.id.as_str());
            std::fs::create_dir_all(&dir).map_err(|e| {
                cannot_make_folder(&dir, &e.to_string())
                    .hint(format!("check that `{}` can be written", data_dir.display()))
            })?;
            dir
        }
    };
    plan.context.run_id = number.to_string();
    let url = context.settings.notifications.run_url.as_ref().map(|url| url.replace("{run}", &number.to_string()));
    Ok((context, store, RunInfo::new(number, started, plan, dir, url)))
}

/// A new run's identity: a time-ordered UUID (version 7), unique across machines.
fn new_run_id() -> RunId {
    RunId::new(uuid::Uuid::now_v7().to_string())
}

fn cannot_make_folder(dir: &Path, error: &str) -> Diagnostic {
    Diagnostic::new(format!("cannot make the run folder `{}`: {error}", dir.display()))
}

/// The packages chosen, and why.
#[derive(Debug)]
struct Selection {
    /// Workspace indices in dependency order.
    packages: Vec<usize>,
    /// What chose them, for the record: `changes`, `all`, `packages`.
    kind: &'static str,
    /// The base commit of the range, when chosen from git.
    base: Option<String>,
    /// Why nothing is selected, when nothing is.
    empty_because: Option<String>,
    /// The commit built, when it is not the work tree's `HEAD` (a pull request's head).
    head: Option<String>,
    /// The commits `--rebuild` looks back through, newest first, with their files.
    walk: Walk,
    /// Why each package the change affects is in the run, by workspace index.
    why: HashMap<usize, Why>,
}

/// Chooses the packages: named ones, all of them, or those the change affects.
fn select(options: &Options, request: &RunRequest) -> Result<(Context, Selection), Diagnostics> {
    let (names, with_dependencies) = match &request.selection {
        RunSelection::Changes => return select_changes(options, request),
        RunSelection::All => (&[][..], false),
        RunSelection::Packages { names, with_dependencies } => (names.as_slice(), *with_dependencies),
    };
    let all = request.selection == RunSelection::All;
    let context = Context::load(options)?;
    let graph = &context.graph;
    let mut wanted = vec![all; context.workspace.packages.len()];
    let mut problems = Vec::new();
    for name in names {
        match context.workspace.index_of(name) {
            Some(index) => wanted[index] = true,
            None => problems.push(unknown_package(&context, name)),
        }
    }
    if !problems.is_empty() {
        return Err(Diagnostics(problems));
    }
    if with_dependencies {
        wanted = graph.with_dependencies((0..wanted.len()).filter(|&i| wanted[i]));
    }
    let packages = graph.order().iter().copied().filter(|&i| wanted[i]).collect();
    let kind = request.selection.kind();
    // Without a range, only the head commit's statuses can say a package is green.
    let walk = if request.rebuild {
        let head = scm::head(&context.git, None).commit;
        Walk { commits: head.into_iter().map(|sha| (sha, Some(Vec::new()))).collect() }
    } else {
        Walk::default()
    };
    let why = HashMap::new();
    Ok((context, Selection { packages, kind, base: None, empty_because: None, head: None, walk, why }))
}

/// Chooses the packages the changes of the request's range affect.
fn select_changes(options: &Options, request: &RunRequest) -> Result<(Context, Selection), Diagnostics> {
    let (context, planned) = Context::load_and_plan(options, &request.range)?;
    let empty_because = if let Some(commit) = &planned.detection.nobuild {
        let sha: String = commit.sha.chars().take(10).collect();
        Some(format!("commit `{sha}` says NOBUILD ({})", escaped(commit.subject())))
    } else {
        Some(format!("no package is affected; {}", planned.report(&context).range_line()))
    };
    let packages = planned.plan.steps.iter().map(|step| step.package).collect();
    let names =
        |indices: &[u32]| indices.iter().map(|&i| context.workspace.packages[i as usize].name.clone()).collect();
    let why = planned
        .plan
        .steps
        .iter()
        .map(|step| {
            let changed_files = step.seed.as_ref().map(|seed| seed.files.clone()).unwrap_or_default();
            (step.package, Why { changed_files, because_of: names(planned.plan.because_of(step)) })
        })
        .collect();
    let base = planned.changes.base.clone();
    let head = match planned.changes.origin {
        scm::BaseOrigin::PullRequest { .. } => planned.changes.head.clone(),
        _ => None,
    };
    let walk = if request.rebuild { walk_of(&planned)? } else { Walk::default() };
    Ok((context, Selection { packages, kind: request.selection.kind(), base, empty_because, head, walk, why }))
}

/// The head commit and the range's commits, newest first, with the files each touched.
fn walk_of(planned: &Planned) -> Result<Walk, Diagnostic> {
    let changes = &planned.changes;
    let Some(head) = &changes.head else {
        return Err(Diagnostic::new("`--rebuild` needs a commit: uncommitted work has no statuses")
            .hint("leave out `--worktree`, or commit the work first"));
    };
    let mut files: std::collections::HashMap<String, Vec<String>> =
        planned.history.files_by_commit(changes)?.into_iter().collect();
    let mut commits = vec![(head.clone(), files.remove(head))];
    commits.extend(changes.commits.iter().filter(|c| &c.sha != head).map(|c| (c.sha.clone(), files.remove(&c.sha))));
    Ok(Walk { commits })
}

/// Takes the packages that are already green out of the selection; returns them.
fn skip_green(
    context: &Context,
    selection: &mut Selection,
    last_stage: Stage,
    notifiers: &[String],
) -> Result<Vec<NotRebuilt>, Diagnostic> {
    let workspace = &context.workspace;
    let candidates: Vec<Candidate> = selection
        .packages
        .iter()
        .map(|&package| {
            let name = &workspace.packages[package].name;
            let planned: Vec<Stage> = stages_of(&workspace.packages[package], last_stage, notifiers)
                .iter()
                .filter(|plan| !plan.is_skipped())
                .map(|plan| plan.stage)
                .collect();
            Candidate { package, contexts: loktar_protocol::status::contexts_settled(name, &planned) }
        })
        .collect();
    let repository = context.github_repository()?;
    let github = Github::from_settings(&context.settings);
    let green = wait_for(rebuild::already_green(
        &github,
        &repository,
        workspace,
        &context.graph,
        &candidates,
        &selection.walk,
    ))??;
    selection.packages.retain(|package| !green.iter().any(|g| g.package == *package));
    Ok(green
        .into_iter()
        .map(|g| NotRebuilt { name: workspace.packages[g.package].name.clone(), commit: g.commit })
        .collect())
}

/// For each selected package, the positions of the selected packages it depends on.
fn dependencies_within(context: &Context, packages: &[usize]) -> Vec<Vec<usize>> {
    let mut position = vec![None; context.workspace.packages.len()];
    for (at, &package) in packages.iter().enumerate() {
        position[package] = Some(at);
    }
    packages
        .iter()
        .map(|&package| context.graph.dependencies(package).filter_map(|dependency| position[dependency]).collect())
        .collect()
}

/// `problem` with a hint to free space, when a full disk caused it.
pub fn when_full(problem: Diagnostic, loktar_dir: &std::path::Path) -> Diagnostic {
    let failure = WriteFailure::Record { message: problem.message.clone() };
    if failure.is_disk_full(loktar_dir) { problem.hint(failure.hint(loktar_dir)) } else { problem }
}

/// Where and why the run happens, as plugins see it; `commit` overrides the
/// work tree's. The repository is the one `[github] repository` names, else
/// the `origin` remote: plugins post to the repository the host reads from.
/// The run's number is set when it begins.
fn run_context(head: &scm::Head, commit: Option<&str>, base: Option<String>, github: &GithubSettings) -> RunContext {
    let default_branch = head.default_branch.clone().unwrap_or_default();
    let on_default_branch = head
        .branch
        .as_deref()
        .is_some_and(|branch| branch == default_branch || Some(branch) == default_branch.strip_prefix("origin/"));
    let repository_url = match &github.repository {
        Some(slug) => Some(loktar_protocol::repository_url(&github.api_url, slug)),
        None => head.origin_url.clone(),
    };
    RunContext {
        run_id: String::new(),
        commit: commit.map(str::to_string).or_else(|| head.commit.clone()).unwrap_or_default(),
        branch: head.branch.clone(),
        base,
        default_branch,
        on_default_branch,
        commit_time: head.commit_time.clone(),
        repository_url,
        author: head.author.clone(),
        // Each plugin call gets its own section; see `PluginSession::role_call`.
        settings: "{}".to_string(),
    }
}
