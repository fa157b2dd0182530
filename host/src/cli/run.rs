//! `loktar run`: choose the packages (from git, `--all` or `--package`),
//! then run them through their stages with progress on stderr, log files,
//! the run record, and a summary on stdout.
//!
//! A run whose logs or record could not be written (a full disk) exits 1
//! whatever its packages did, after saying on stderr which file and why.

use std::io::Write;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use super::context::{Context, Options, Planned, block_on, plugin_runtime};
use super::{Done, ListFormat, Output, RangeArgs, unknown_package};
use crate::config::Package;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::events::console::Console;
use crate::events::logfiles::LogFiles;
use crate::events::record::Recorder;
use crate::events::{EventBus, RunInfo, RunOutcome, RunPackage, Subscriber, WriteFailure, WriteHealth};
use crate::github::Github;
use crate::pipeline::run::{NotRebuilt, RunSpec, execute, notify_nothing_to_run};
use tokio_util::sync::CancellationToken;

use crate::pipeline::scheduler;
use crate::pipeline::stage::{Stage, stages_of};
use crate::rebuild::{self, Candidate, Walk};
use crate::render;
use crate::runtime::bindings::types::RunContext;
use crate::settings::Role;
use crate::store::{self, NewRun, RunStore};
use crate::terminal::escaped;
use crate::{scm, timefmt};

/// Exit code of an interrupted run.
const INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    range: RangeArgs,

    /// Run every package, whatever changed
    #[arg(long, conflicts_with = "packages")]
    all: bool,

    /// Run this package (repeatable), whatever changed
    #[arg(long = "package", short = 'p', value_name = "NAME")]
    packages: Vec<String>,

    /// With `--package`: also run the packages it depends on (transitively), first
    #[arg(long, requires = "packages")]
    with_deps: bool,

    /// Print what would run, in order, and stop
    #[arg(long)]
    dry_run: bool,

    /// Run the stages up to this one only
    #[arg(long, value_enum, value_name = "STAGE", default_value_t = Stage::Notify)]
    stage: Stage,

    /// Packages at once [default: the number of cores]
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<NonZeroUsize>,

    /// At the first failure start nothing new and cancel what runs (clean-up still runs)
    #[arg(long)]
    fail_fast: bool,

    /// Format of the summary on stdout
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    format: ListFormat,

    /// Do not run again packages that are already green: their Loktar statuses on GitHub
    /// are all `success` on the newest commit that has any, and no later commit touched
    /// them or what they depend on. They get a `<pkg> - Not rebuilt` success status
    #[arg(long)]
    rebuild: bool,
}

/// The packages chosen, and why.
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
}

pub(crate) fn run(options: &Options, args: &RunArgs, color: bool) -> Result<Done, Diagnostics> {
    let (context, mut selection) = select(options, args)?;
    let concurrency = args.jobs.map_or_else(default_jobs, NonZeroUsize::get);
    let notifiers: Vec<String> = context
        .settings
        .plugins
        .iter()
        .filter(|(_, plugin)| plugin.role == Some(Role::Notifier))
        .map(|(name, _)| name.clone())
        .collect();
    let workspace = &context.workspace;
    let not_rebuilt =
        if args.rebuild { skip_green(&context, &mut selection, args.stage, &notifiers)? } else { Vec::new() };
    let planned: Vec<RunPackage> = selection
        .packages
        .iter()
        .map(|&index| {
            let package = &workspace.packages[index];
            RunPackage { name: package.name.clone(), stages: stages_of(package, args.stage, &notifiers) }
        })
        .collect();
    let dependencies = dependencies_within(&context, &selection.packages);

    let mut output: String = not_rebuilt
        .iter()
        .map(|green| format!("not rebuilt: `{}` is green on `{}`\n", escaped(&green.name), short(&green.commit)))
        .collect();
    if selection.packages.is_empty() {
        let because = match (&selection.empty_because, not_rebuilt.is_empty()) {
            (_, false) => "every affected package is already green".to_string(),
            (Some(because), true) => because.clone(),
            (None, true) => "nothing is selected".to_string(),
        };
        output.push_str(&format!("nothing to run: {because}\n"));
        // Required checks must not wait for a run that builds nothing: notifiers hear of it.
        if !notifiers.is_empty() && !args.dry_run {
            let head = scm::head(&context.git, args.range.default_branch.as_deref());
            let spec = RunSpec {
                root: workspace.root.clone(),
                packages: Vec::new(),
                dependencies: Vec::new(),
                context: run_context(&head, selection.head.as_deref(), String::new(), selection.base.clone()),
                options: scheduler::Options { concurrency, fail_fast: args.fail_fast },
                notifiers,
                run_url: None,
                not_rebuilt,
            };
            let runtime = plugin_runtime(context.settings.clone())?;
            for failure in block_on(notify_nothing_to_run(&runtime, &spec, &because))? {
                output.push_str(&format!("notify: {}\n", escaped(&failure.to_string())));
            }
        }
        return Ok(Done::with_output(output));
    }
    if args.dry_run {
        let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
        output.push_str(&render::run::dry_run(&planned, &dependencies, &names, concurrency));
        return Ok(Done::with_output(output));
    }

    let head = scm::head(&context.git, args.range.default_branch.as_deref());
    let loktar_dir = workspace.root.join(store::DIR);
    let store = RunStore::open(&workspace.root).map_err(|problem| when_full(problem, &loktar_dir))?;
    let started = std::time::SystemTime::now();
    let id = store
        .begin_run(&NewRun {
            started_ms: timefmt::unix_millis(started),
            selection: selection.kind.to_string(),
            head: selection.head.clone().or_else(|| head.commit.clone()),
            base: selection.base.clone(),
            branch: head.branch.clone(),
            packages: selection.packages.len(),
            concurrency,
        })
        .map_err(|problem| when_full(problem, &loktar_dir))?;
    let dir = loktar_dir.join("runs").join(id.to_string());
    // Made below the repository with no link on the way: a repository could commit
    // `.loktar/runs/<n>` as links to have logs and artifacts written anywhere.
    crate::beneath::Folder::open(&workspace.root)
        .map_err(|e| e.to_string())
        .and_then(|root| {
            root.create_folder(&std::path::Path::new(store::DIR).join("runs").join(id.to_string()))
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| {
            Diagnostic::new(format!("cannot make the run folder `{}`: {e}", dir.display()))
                .hint(format!("`{}` is Loktar's own folder: remove any link in it", store::DIR))
        })?;
    let info = Arc::new(RunInfo { id, started, packages: planned, concurrency, dir });
    let spec = RunSpec {
        root: workspace.root.clone(),
        packages: selection.packages.iter().map(|&i| workspace.packages[i].clone()).collect::<Vec<Package>>(),
        dependencies,
        context: run_context(&head, selection.head.as_deref(), id.to_string(), selection.base),
        options: scheduler::Options { concurrency, fail_fast: args.fail_fast },
        notifiers,
        run_url: context.settings.notifications.run_url.as_ref().map(|url| url.replace("{run}", &id.to_string())),
        not_rebuilt,
    };
    let runtime = Arc::new(plugin_runtime(context.settings.clone())?);
    let live = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let health = WriteHealth::new();
    let subscribers: Vec<Box<dyn Subscriber>> = vec![
        Box::new(Console::new(live, color)),
        Box::new(LogFiles::new(health.clone())),
        Box::new(Recorder::new(store, health.clone())),
    ];
    let (bus, emitter) = EventBus::start(subscribers, health.clone())
        .map_err(|e| Diagnostic::new(format!("cannot start the run's reporting: {e}")))?;

    let interrupted = Arc::new(AtomicBool::new(false));
    let mut report = block_on(async {
        let cancel = CancellationToken::new();
        let root = workspace.root.clone();
        let abandon = move || {
            // Leaving at once still leaves an honest record behind.
            if let Ok(store) = RunStore::open(&root) {
                let _ = store.finish_run(id, RunOutcome::Interrupted.name(), started.elapsed().unwrap_or_default());
            }
        };
        watch_signals(cancel.clone(), interrupted.clone(), abandon);
        execute(runtime, spec, info, emitter, &cancel, &interrupted).await
    })?;
    bus.finish();

    // Only the record's last writes can fail after the run decided its outcome; they fail it too.
    let failures = health.failures();
    if report.outcome == RunOutcome::Passed && !failures.is_empty() {
        report.outcome = RunOutcome::Failed;
    }
    tell_write_failures(&failures, id, report.outcome, &loktar_dir, color);
    let output = match args.format {
        ListFormat::Text => output + &render::run::summary(&report),
        ListFormat::Json => render::run::json(&report),
    };
    let code = match report.outcome {
        RunOutcome::Passed => ExitCode::SUCCESS,
        RunOutcome::Failed => ExitCode::from(1),
        RunOutcome::Interrupted => ExitCode::from(INTERRUPTED),
    };
    Ok(Done::printing(Output::Text(output), code))
}

/// Says on stderr what the run could not write, and what that means for its record.
fn tell_write_failures(
    failures: &[WriteFailure],
    run: i64,
    outcome: RunOutcome,
    loktar_dir: &std::path::Path,
    color: bool,
) {
    let Some(first) = failures.first() else { return };
    let mut stderr = std::io::stderr().lock();
    for failure in failures {
        let problem = match failure {
            WriteFailure::Record { .. } => {
                format!("{failure}; the record of run `{run}` is incomplete: `loktar runs` may not show how it ended")
            }
            WriteFailure::StageLog { .. } => failure.to_string(),
        };
        let _ = writeln!(stderr, "{}", Diagnostic::new(problem).render(color));
    }
    let ended = if outcome == RunOutcome::Interrupted { "was interrupted, and" } else { "failed:" };
    let summary = Diagnostic::new(format!("run `{run}` {ended} its logs or record could not be written"));
    let _ = writeln!(stderr, "{}\n", summary.hint(first.hint(loktar_dir)).render(color));
}

/// `problem` with a hint to free space, when a full disk caused it.
fn when_full(problem: Diagnostic, loktar_dir: &std::path::Path) -> Diagnostic {
    let failure = WriteFailure::Record { message: problem.message.clone() };
    if failure.is_disk_full(loktar_dir) { problem.hint(failure.hint(loktar_dir)) } else { problem }
}

/// Chooses the packages: named ones, all of them, or those the change affects.
fn select(options: &Options, args: &RunArgs) -> Result<(Context, Selection), Diagnostics> {
    if !args.all && args.packages.is_empty() {
        let (context, planned) = Context::load_and_plan(options, &args.range)?;
        let empty_because = if let Some(commit) = &planned.detection.nobuild {
            let sha: String = commit.sha.chars().take(10).collect();
            Some(format!("commit `{sha}` says NOBUILD ({})", escaped(commit.subject())))
        } else {
            Some(format!("no package is affected; {}", planned.report(&context).range_line()))
        };
        let packages = planned.plan.steps.iter().map(|step| step.package).collect();
        let base = planned.changes.base.clone();
        let head = match planned.changes.origin {
            scm::BaseOrigin::PullRequest { .. } => planned.changes.head.clone(),
            _ => None,
        };
        let walk = if args.rebuild { walk_of(&planned)? } else { Walk::default() };
        return Ok((context, Selection { packages, kind: "changes", base, empty_because, head, walk }));
    }
    let context = Context::load(options)?;
    let graph = &context.graph;
    let mut wanted = vec![args.all; context.workspace.packages.len()];
    let mut problems = Vec::new();
    for name in &args.packages {
        match context.workspace.index_of(name) {
            Some(index) => wanted[index] = true,
            None => problems.push(unknown_package(&context, name)),
        }
    }
    if !problems.is_empty() {
        return Err(Diagnostics(problems));
    }
    if args.with_deps {
        let mut stack: Vec<usize> = (0..wanted.len()).filter(|&i| wanted[i]).collect();
        while let Some(package) = stack.pop() {
            for dependency in graph.dependencies(package) {
                if !wanted[dependency] {
                    wanted[dependency] = true;
                    stack.push(dependency);
                }
            }
        }
    }
    let packages = graph.order().iter().copied().filter(|&i| wanted[i]).collect();
    let kind = if args.all { "all" } else { "packages" };
    // Without a range, only the head commit's statuses can say a package is green.
    let walk = if args.rebuild {
        let head = scm::head(&context.git, None).commit;
        Walk { commits: head.into_iter().map(|sha| (sha, Some(Vec::new()))).collect() }
    } else {
        Walk::default()
    };
    Ok((context, Selection { packages, kind, base: None, empty_because: None, head: None, walk }))
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
            let planned = stages_of(&workspace.packages[package], last_stage, notifiers);
            let runs = |stage: Stage| planned.iter().any(|plan| plan.stage == stage && !plan.is_skipped());
            let mut contexts = Vec::new();
            if runs(Stage::Test) {
                contexts.push(format!("{name} - test"));
            }
            if runs(Stage::Build) {
                contexts.push(format!("{name} - artifact"));
            }
            Candidate { package, contexts }
        })
        .collect();
    let repository = context.github_repository()?;
    let github = Github::from_settings(&context.settings);
    let green = block_on(rebuild::already_green(
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

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
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

/// One job per core.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The first SIGINT or SIGTERM cancels the run (clean-up runs, the record is
/// written, the exit code is 130); a second one kills what runs and exits at once.
fn watch_signals(cancel: CancellationToken, interrupted: Arc<AtomicBool>, abandon: impl FnOnce() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot watch for Ctrl-C; interrupting will not clean up");
        return;
    };
    tokio::spawn(async move {
        let mut abandon = Some(abandon);
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if interrupted.swap(true, Ordering::SeqCst) {
                crate::runtime::kill_running_programs();
                if let Some(abandon) = abandon.take() {
                    abandon();
                }
                // Not `eprintln!`: it panics when stderr cannot be written (a log file on a full disk).
                let _ = writeln!(std::io::stderr(), "interrupted again: stopped at once, without cleaning up");
                std::process::exit(i32::from(INTERRUPTED));
            }
            let _ = writeln!(
                std::io::stderr(),
                "interrupted: cancelling running stages and cleaning up (interrupt again to quit at once)"
            );
            cancel.cancel();
        }
    });
}

/// Where and why the run happens, as plugins see it; `commit` overrides the work tree's.
fn run_context(head: &scm::Head, commit: Option<&str>, run_id: String, base: Option<String>) -> RunContext {
    let default_branch = head.default_branch.clone().unwrap_or_default();
    let on_default_branch = head
        .branch
        .as_deref()
        .is_some_and(|branch| branch == default_branch || Some(branch) == default_branch.strip_prefix("origin/"));
    RunContext {
        run_id,
        commit: commit.map(str::to_string).or_else(|| head.commit.clone()).unwrap_or_default(),
        branch: head.branch.clone(),
        base,
        default_branch,
        on_default_branch,
        commit_time: head.commit_time.clone(),
        repository_url: head.origin_url.clone(),
        author: head.author.clone(),
        // Each plugin call gets its own section; see `Runtime::role_call`.
        settings: "{}".to_string(),
    }
}
