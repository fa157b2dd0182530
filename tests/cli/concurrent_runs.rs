//! Two runs of two repositories in one process, as a server runs them:
//! through the library's application layer (plan, begin, execute), on one
//! tokio runtime, one plugin engine and one pool of executors taking both
//! runs' package jobs from one queue, each run with its own plugin session
//! under its own repository's host configuration, in the work folder its
//! caller chose and with its own event stream. Cancelling one run (its
//! `fail_fast`) stops only its own programs; the other finishes untouched.
//! The plugin both runs use is compiled once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use loktar::app::context::Options;
use loktar::app::run::{RunPlace, begin_run, plan_run};
use loktar::app::{Range, RunRequest, RunSelection};
use loktar::events::logfiles::LogFiles;
use loktar::events::{EventBus, EventKind, PackageOutcome, RunEvent, Subscriber, WriteHealth};
use loktar::pipeline::control::RunControl;
use loktar::pipeline::executors::{Executors, Runs};
use loktar::pipeline::jobs::LocalQueue;
use loktar::pipeline::run::{RunReport, execute};
use loktar::pipeline::stage::Stage;
use loktar::runtime::{PluginEngine, PluginSession};
use loktar::settings::Settings;

use crate::support::{TestRepo, sleeping, within};

/// A repository whose packages' `make ci` run `ci` (a recipe line each).
fn repo(packages: &[(&str, &str)]) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config("");
    let mut entries = Vec::new();
    for (name, ci) in packages {
        repo.write(&format!("{name}/Makefile"), &format!("ci:\n\t{ci}\n\nclean:\n\t@true\n"));
        entries.push(format!(r#"{{"pkg_name": "{name}", "test_type": "make"}}"#));
    }
    repo.write("loktar.json", &format!(r#"{{"packages": [{}]}}"#, entries.join(", ")));
    repo.commit("ENH: packages");
    repo
}

/// Keeps every event it is given.
struct Collect(Arc<Mutex<Vec<RunEvent>>>);

impl Subscriber for Collect {
    fn on_event(&mut self, event: &RunEvent) {
        self.0.lock().expect("events").push(event.clone());
    }
}

/// A run's report, its folder and the events its stream delivered.
struct Finished {
    report: RunReport,
    dir: PathBuf,
    events: Vec<RunEvent>,
}

/// Plans, begins and executes `--all` in `repo` on the current runtime,
/// working in `folder`, with a plugin session of its own on `engine`.
async fn run_all(
    repo: &TestRepo,
    engine: Arc<PluginEngine>,
    executors: &Executors,
    fail_fast: bool,
    folder: RunPlace,
) -> Finished {
    let options =
        Options { repo: Some(repo.path().to_path_buf()), config: Some(repo.host_config_path()), ..Options::default() };
    let request = RunRequest {
        range: Range { head: "HEAD".into(), ..Range::default() },
        selection: RunSelection::All,
        last_stage: Stage::Test,
        concurrency: 2,
        fail_fast,
        rebuild: false,
    };
    // Loading and planning read git and files: blocking work.
    let (_context, _store, info) = tokio::task::spawn_blocking(move || {
        let planned = plan_run(&options, &request).expect("planned");
        begin_run(planned, folder).expect("begun")
    })
    .await
    .expect("planning thread");
    // This repository's host configuration: the plugins it provides and what each is granted.
    let settings = Settings::load(Some(&repo.host_config_path()), repo.path()).expect("settings");
    let session = Arc::new(PluginSession::new(engine, settings));
    let info = Arc::new(info);
    let events = Arc::new(Mutex::new(Vec::new()));
    let health = WriteHealth::new();
    let sinks: Vec<Box<dyn Subscriber>> =
        vec![Box::new(Collect(events.clone())), Box::new(LogFiles::new(info.clone(), health.clone()))];
    let (bus, emitter) = EventBus::start(info.id().clone(), sinks, health).expect("events");
    let control = Arc::new(RunControl::new());
    let dir = info.dir.clone();
    let report = execute(session, info, emitter, &control, executors).await;
    bus.finish();
    let events = std::mem::take(&mut *events.lock().expect("events"));
    Finished { report, dir, events }
}

fn outcome<'a>(report: &'a RunReport, package: &str) -> &'a PackageOutcome {
    &report.packages.iter().find(|p| p.name == package).expect("the package is in the report").outcome
}

#[test]
fn two_runs_in_one_process_cancel_only_their_own_programs() {
    // `failing` fails at once and cancels its run; `slow` in the same run is stopped.
    let first = repo(&[("failing", "@false"), ("slow", "@sleep 71")]);
    // The other run's program takes a while and must be left to finish.
    let second = repo(&[("steady", "@sleep 3 && touch finished")]);
    let engine = Arc::new(PluginEngine::new(None).expect("plugin engine"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    // The second run works where its caller says, as a server's would.
    let work = tempfile::tempdir().expect("a work folder");
    let (first_run, second_run) = runtime.block_on(async {
        // Enough for every package of both runs at once.
        let executors = Executors::start(Arc::new(LocalQueue::new()), Runs::new(), 3);
        let first_run = run_all(&first, engine.clone(), &executors, true, RunPlace::InRepository);
        let database = loktar::store::Database::File(work.path().join(loktar::store::DATABASE));
        let second_place = RunPlace::Server { data_dir: work.path().to_path_buf(), database };
        let second_run = run_all(&second, engine.clone(), &executors, false, second_place);
        tokio::join!(first_run, second_run)
    });
    let (first_report, second_report) = (&first_run.report, &second_run.report);
    assert!(matches!(outcome(first_report, "failing"), PackageOutcome::Failed { .. }), "{first_report:?}");
    assert_eq!(outcome(first_report, "slow"), &PackageOutcome::Cancelled { reason: None }, "{first_report:?}");
    assert_eq!(outcome(second_report, "steady"), &PackageOutcome::Passed, "{second_report:?}");
    assert!(second.path().join("steady/finished").exists(), "the other run's program was stopped");
    assert!(within(5, || sleeping("71").is_empty()), "the cancelled run's program is still running");
    // Both runs' sessions loaded `make`, from the same bytes: compiled once.
    assert_eq!(engine.components_made(), 1, "the tester was compiled once for both runs");

    // Each run in its own folder: the repository's for the first, the caller's for the second.
    assert_eq!(first_run.dir, first.path().join(".loktar/runs/1"));
    let second_id = second_report.info.id().to_string();
    assert_eq!(second_run.dir, work.path().join("runs").join(&second_id));
    assert!(second_run.dir.join("steady/test.log").is_file(), "the log is in the caller's folder");
    assert!(work.path().join("loktar.db").is_file(), "the record is in the caller's store");
    assert!(!second.path().join(".loktar").exists(), "nothing was written in the repository's own folder");

    // Each stream is its own: its run's id, numbered from 0 without a gap,
    // starting and ending the run, naming packages only of its run.
    assert_ne!(first_report.info.id(), second_report.info.id());
    for (finished, names) in [(&first_run, &["failing", "slow"][..]), (&second_run, &["steady"][..])] {
        let events = &finished.events;
        assert!(events.iter().all(|event| event.run_id == *finished.report.info.id()));
        assert_eq!(
            events.iter().map(|event| event.seq).collect::<Vec<_>>(),
            (0..events.len() as u64).collect::<Vec<_>>()
        );
        assert!(matches!(events.first().map(|e| &e.kind), Some(EventKind::RunStarted { .. })));
        assert!(matches!(events.last().map(|e| &e.kind), Some(EventKind::RunFinished { .. })));
        for event in events {
            if let EventKind::StageStarted { package, .. } | EventKind::PackageFinished { package, .. } = &event.kind {
                assert!(names.contains(&&**package), "{package} is not in this run");
            }
        }
    }
}
