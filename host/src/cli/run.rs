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

use clap::Args;

use tokio_util::sync::CancellationToken;

use super::{Done, ListFormat, Output, RangeArgs};
use crate::app::context::{Options, plugin_session};
use crate::app::run::{RunPlace, begin_run, plan_run};
use crate::app::{RunRequest, RunSelection};
use crate::blocking::wait_for;
use crate::config::LOKTAR_DIR;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::events::console::Console;
use crate::events::logfiles::LogFiles;
use crate::events::record::Recorder;
use crate::events::{EventBus, RunOutcome, Subscriber, WriteFailure, WriteHealth};
use crate::pipeline::control::RunControl;
use crate::pipeline::executors::{Executors, Runs};
use crate::pipeline::jobs::LocalQueue;
use crate::pipeline::run::{execute, notify_nothing_to_run};
use crate::pipeline::stage::Stage;
use crate::render;
use crate::store::RunStore;
use crate::terminal::escaped;

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

impl RunArgs {
    /// The run these arguments ask for.
    fn request(&self) -> RunRequest {
        let selection = if self.all {
            RunSelection::All
        } else if self.packages.is_empty() {
            RunSelection::Changes
        } else {
            RunSelection::Packages { names: self.packages.clone(), with_dependencies: self.with_deps }
        };
        RunRequest {
            range: (&self.range).into(),
            selection,
            last_stage: self.stage,
            concurrency: self.jobs.map_or_else(default_jobs, NonZeroUsize::get),
            fail_fast: self.fail_fast,
            rebuild: self.rebuild,
        }
    }
}

pub(crate) fn run(options: &Options, args: &RunArgs, color: bool) -> Result<Done, Diagnostics> {
    let planned = plan_run(options, &args.request())?;
    let mut output: String = planned
        .plan
        .not_rebuilt
        .iter()
        .map(|green| format!("not rebuilt: `{}` is green on `{}`\n", escaped(&green.name), short(&green.commit)))
        .collect();
    if let Some(because) = planned.nothing_to_run() {
        output.push_str(&format!("nothing to run: {because}\n"));
        // Required checks must not wait for a run that builds nothing: notifiers hear of it.
        if !planned.plan.notifiers.is_empty() && !args.dry_run {
            let session = plugin_session(planned.context.settings.clone())?;
            for failure in wait_for(notify_nothing_to_run(&session, &planned.plan, &because))? {
                output.push_str(&format!("notify: {}\n", escaped(&failure.to_string())));
            }
        }
        return Ok(Done::with_output(output));
    }
    if args.dry_run {
        output.push_str(&render::run::dry_run(&planned.plan));
        return Ok(Done::with_output(output));
    }

    let (context, store, info) = begin_run(planned, RunPlace::InRepository)?;
    let (number, started, loktar_dir) = (info.number, info.started, context.workspace.root.join(LOKTAR_DIR));
    let info = Arc::new(info);
    let session = Arc::new(plugin_session(context.settings.clone())?);
    let live = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let health = WriteHealth::new();
    let subscribers: Vec<Box<dyn Subscriber>> = vec![
        Box::new(Console::new(info.clone(), live, color)),
        Box::new(LogFiles::new(info.clone(), health.clone())),
        Box::new(Recorder::new(store, info.clone(), health.clone())),
    ];
    let (bus, emitter) = EventBus::start(info.id().clone(), subscribers, health.clone())
        .map_err(|e| Diagnostic::new(format!("cannot start the run's reporting: {e}")))?;

    let control = Arc::new(RunControl::new());
    let finished = wait_for(async {
        let abandon = CancellationToken::new();
        watch_signals(control.clone(), abandon.clone());
        // `-j` executors in this process, for this run alone.
        let executors =
            Executors::start(Arc::new(LocalQueue::new()), Runs::new(), info.plan.options.concurrency.max(1));
        tokio::select! {
            report = execute(session, info, emitter, &control, &executors) => Some(report),
            () = abandon.cancelled() => {
                // Interrupted again: the run's programs are stopped and nothing cleans up.
                control.programs().kill_all();
                None
            }
        }
    })?;
    let Some(mut report) = finished else {
        // The record still says how the run ended.
        if let Ok(store) = RunStore::open(&context.workspace.root) {
            let _ = store.finish_run(number, RunOutcome::Interrupted.name(), started.elapsed().unwrap_or_default());
        }
        // Not `eprintln!`: it panics when stderr cannot be written (a log file on a full disk).
        let _ = writeln!(std::io::stderr(), "interrupted again: stopped at once, without cleaning up");
        return Ok(Done::printing(Output::Text(String::new()), ExitCode::from(INTERRUPTED)));
    };
    bus.finish();

    // Only the record's last writes can fail after the run decided its outcome; they fail it too.
    let failures = health.failures();
    if report.outcome == RunOutcome::Passed && !failures.is_empty() {
        report.outcome = RunOutcome::Failed;
    }
    tell_write_failures(&failures, number, report.outcome, &loktar_dir, color);
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

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// One job per core.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The first SIGINT or SIGTERM cancels the run (clean-up runs, the record is
/// written, the exit code is 130); a second one abandons it: what runs is
/// killed and Loktar exits at once.
fn watch_signals(control: Arc<RunControl>, abandon: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot watch for Ctrl-C; interrupting will not clean up");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if control.interrupt(None) {
                abandon.cancel();
                return;
            }
            let _ = writeln!(
                std::io::stderr(),
                "interrupted: cancelling running stages and cleaning up (interrupt again to quit at once)"
            );
        }
    });
}
