//! Two runs in one process, as a server runs them: through the library's
//! application layer (plan, begin, execute), on one tokio runtime and one
//! plugin engine. Cancelling one run (its `fail_fast`) stops only its own
//! programs; the other finishes untouched.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use loktar::app::context::Options;
use loktar::app::run::{begin_run, plan_run};
use loktar::app::{Range, RunRequest, RunSelection};
use loktar::events::{EventBus, PackageOutcome, WriteHealth};
use loktar::pipeline::run::{RunReport, execute};
use loktar::pipeline::stage::Stage;
use loktar::runtime::{RunningPrograms, Runtime};
use tokio_util::sync::CancellationToken;

use crate::support::{TestRepo, sleeping};

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

/// Plans, begins and executes `--all` in `repo` on the current runtime.
async fn run_all(repo: &TestRepo, engine: Arc<Runtime>, fail_fast: bool) -> RunReport {
    let options = Options { repo: Some(repo.path().to_path_buf()), config: Some(repo.host_config_path()) };
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
        begin_run(planned).expect("begun")
    })
    .await
    .expect("planning thread");
    let (bus, emitter) = EventBus::start(Vec::new(), WriteHealth::new()).expect("events");
    let (cancel, programs) = (CancellationToken::new(), RunningPrograms::default());
    let report = execute(engine, Arc::new(info), emitter, &cancel, &programs, &AtomicBool::new(false)).await;
    bus.finish();
    report
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
    let settings = loktar::settings::Settings::load(Some(&first.host_config_path()), first.path()).expect("settings");
    let engine = Arc::new(Runtime::new(settings, None).expect("plugin engine"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let (first_report, second_report) = runtime.block_on(async {
        let first_run = run_all(&first, engine.clone(), true);
        let second_run = run_all(&second, engine.clone(), false);
        tokio::join!(first_run, second_run)
    });
    assert!(matches!(outcome(&first_report, "failing"), PackageOutcome::Failed { .. }), "{first_report:?}");
    assert_eq!(outcome(&first_report, "slow"), &PackageOutcome::Cancelled, "{first_report:?}");
    assert_eq!(outcome(&second_report, "steady"), &PackageOutcome::Passed, "{second_report:?}");
    assert!(second.path().join("steady/finished").exists(), "the other run's program was stopped");
    assert_eq!(sleeping("71"), Vec::<u32>::new(), "the cancelled run's program is still running");
}
