//! The run store's behaviour, method by method, through its public
//! interface only: what the CLI and the server rely on — held on both
//! databases a store is kept in. Each behaviour is given a new, empty
//! database, and opens stores on it as often as it likes: on SQLite each is
//! a test of its own (`on_sqlite::…`); on PostgreSQL they run one after the
//! other, each in a database of its own, on one server the test starts.

#[path = "support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::time::Duration;

use loktar_protocol::{RunId, Stage};
use loktar_store::{Database, Delivery, NewRun, PostgresDatabase, Queued, QueuedRun, RunFilter};

/// Each behaviour, as a test on SQLite and a part of the test on PostgreSQL.
macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$name(&loktar_store::Database::File(dir.path().join("runs.db")));
                }
            )*
        }

        #[test]
        fn every_behaviour_holds_on_postgres() {
            on_postgres(&[$((stringify!($name), $name as fn(&Database))),*]);
        }
    };
}

behaviours!(
    runs_are_numbered_without_gaps_and_a_queued_run_keeps_its_number_when_it_starts,
    a_delivery_starts_one_run_however_often_it_arrives,
    the_same_delivery_from_twenty_stores_at_once_starts_one_run_and_other_runs_take_the_next_numbers,
    stages_and_packages_are_read_back_in_run_and_pipeline_order,
    a_run_ends_once_and_keeps_the_reason_it_was_given_before,
    runs_are_found_by_repository_branch_pull_request_status_and_page_newest_first,
    totals_count_runs_by_status_and_stages_that_ran,
    queued_runs_are_orphans_to_resume_with_their_request_and_a_requeued_run_says_why,
    a_resumed_run_keeps_the_rows_of_packages_it_does_not_run_again_before_the_new_ones,
    writes_grouped_in_a_batch_are_kept_when_committed_and_dropped_with_the_store_otherwise,
    open_pull_requests_remember_what_they_affect_and_what_was_said_of_them,
);

/// A behaviour, by name.
type Named = (&'static str, fn(&Database));

/// Runs each behaviour on a database of its own, on one PostgreSQL server.
fn on_postgres(behaviours: &[Named]) {
    let server = postgres::Postgres::start();
    for (index, (name, behaviour)) in behaviours.iter().enumerate() {
        eprintln!("on PostgreSQL: {name}");
        let url = server.create_database(&format!("behaviour_{index}"));
        let database = PostgresDatabase::connect(&url, Some(postgres::PASSWORD))
            .unwrap_or_else(|problem| panic!("{name}: {problem}"));
        behaviour(&Database::Postgres(database));
    }
}

fn new_run(id: &str, started_ms: i64) -> NewRun {
    NewRun {
        id: RunId::new(id),
        started_ms,
        selection: "changes".to_string(),
        head: Some("abc".to_string()),
        base: Some("def".to_string()),
        branch: Some("main".to_string()),
        packages: 2,
        concurrency: 4,
    }
}

fn queued(id: &str, repository: &str, pull_request: Option<u64>, delivery: Option<&str>) -> QueuedRun {
    QueuedRun {
        id: RunId::new(id),
        received_ms: 1_000,
        selection: "changes".to_string(),
        repository: repository.to_string(),
        trigger: if pull_request.is_some() { "pull_request" } else { "push" }.to_string(),
        branch: Some("main".to_string()),
        pull_request,
        head: Some("h1".to_string()),
        base: None,
        delivery: delivery.map(|id| Delivery { id: id.to_string(), event: "push".to_string(), received_ms: 1_000 }),
        request: format!("{{\"run\":\"{id}\"}}"),
    }
}

fn runs_are_numbered_without_gaps_and_a_queued_run_keeps_its_number_when_it_starts(database: &Database) {
    let store = database.open().expect("a store");
    assert_eq!(store.begin_run(&new_run("a", 1)).expect("begun"), 1);
    let Queued::New { run: queued_number } = store.queue_run(&queued("b", "acme/repo", None, None)).expect("queued")
    else {
        panic!("a new run");
    };
    assert_eq!(queued_number, 2);
    // Started: the same number, and no number used up.
    assert_eq!(store.begin_run(&new_run("b", 2)).expect("begun"), 2);
    assert_eq!(store.begin_run(&new_run("c", 3)).expect("begun"), 3);
    let (run, _) = store.run(2).expect("read").expect("run 2");
    assert_eq!((run.status.as_str(), run.uuid.as_deref(), run.packages), ("running", Some("b"), 2));
    assert_eq!(run.repository.as_deref(), Some("acme/repo"), "what the queued run knew stays");
    assert_eq!(run.head.as_deref(), Some("abc"));
}

fn a_delivery_starts_one_run_however_often_it_arrives(database: &Database) {
    let store = database.open().expect("a store");
    let first = store.queue_run(&queued("a", "acme/repo", None, Some("d-1"))).expect("queued");
    assert_eq!(first, Queued::New { run: 1 });
    assert_eq!(
        store.queue_run(&queued("b", "acme/repo", None, Some("d-1"))).expect("again"),
        Queued::Duplicate { run: Some(1) }
    );
    assert_eq!(store.runs(10).expect("runs").len(), 1);
    // A delivery that starts no run: new once.
    let ping = Delivery { id: "d-2".to_string(), event: "ping".to_string(), received_ms: 5 };
    assert!(store.record_delivery(&ping).expect("recorded"));
    assert!(!store.record_delivery(&ping).expect("recorded"));
    assert_eq!(
        store.queue_run(&queued("c", "acme/repo", None, Some("d-2"))).expect("after a ping"),
        Queued::Duplicate { run: None }
    );
}

fn the_same_delivery_from_twenty_stores_at_once_starts_one_run_and_other_runs_take_the_next_numbers(
    database: &Database,
) {
    // Twenty requests of the same delivery, and twenty of others, each through a store of its own.
    let answers: Vec<(bool, Queued)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..40)
            .map(|n| {
                scope.spawn(move || {
                    let store = database.open().expect("a store");
                    let same = n % 2 == 0;
                    let delivery = if same { "d-same".to_string() } else { format!("d-{n}") };
                    (
                        same,
                        store.queue_run(&queued(&format!("r{n}"), "acme/repo", None, Some(&delivery))).expect("queued"),
                    )
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().expect("thread")).collect()
    });
    let new: Vec<i64> = answers
        .iter()
        .filter_map(|(_, answer)| match answer {
            Queued::New { run } => Some(*run),
            Queued::Duplicate { .. } => None,
        })
        .collect();
    assert_eq!(new.len(), 21, "one run of the repeated delivery and one of each other: {answers:?}");
    let first_of_same = answers.iter().find_map(|(same, answer)| match answer {
        Queued::New { run } if *same => Some(*run),
        _ => None,
    });
    for (same, answer) in &answers {
        if *same && *answer != (Queued::New { run: first_of_same.expect("a run") }) {
            assert_eq!(*answer, Queued::Duplicate { run: first_of_same });
        }
    }
    let mut numbers = new.clone();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=21).collect::<Vec<i64>>(), "numbered without gaps");
    assert_eq!(database.open().expect("a store").runs(100).expect("runs").len(), 21);
}

fn stages_and_packages_are_read_back_in_run_and_pipeline_order(database: &Database) {
    let store = database.open().expect("a store");
    let run = store.begin_run(&new_run("a", 1)).expect("begun");
    let ms = Duration::from_millis;
    store.record_stage(run, 1, "web", Stage::Build, "passed", None, ms(20), Some(Path::new("/l/b"))).expect("stage");
    store.record_stage(run, 1, "web", Stage::Test, "passed", Some(""), ms(10), None).expect("stage");
    store.record_stage(run, 0, "lib", Stage::Test, "failed", Some("exit 2"), ms(5), None).expect("stage");
    // Recorded again: the later record stands.
    store.record_stage(run, 0, "lib", Stage::Test, "failed", Some("exit 3"), ms(6), None).expect("stage");
    store.record_package(run, 0, "lib", "failed", "exit 3").expect("package");
    store.record_package(run, 1, "web", "passed", "").expect("package");
    store.record_package(run, 2, "app", "skipped", "because `lib` failed").expect("package");
    let (_, rows) = store.run(run).expect("read").expect("the run");
    let shown: Vec<String> = rows
        .iter()
        .map(|row| format!("{} {:?} {} {:?} {:?}", row.package, row.stage, row.status, row.detail, row.duration_ms))
        .collect();
    assert_eq!(
        shown,
        [
            r#"lib Some("test") failed Some("exit 3") Some(6)"#,
            r#"web Some("test") passed None Some(10)"#,
            r#"web Some("build") passed None Some(20)"#,
            r#"app None skipped Some("because `lib` failed") None"#,
        ]
    );
    assert_eq!(rows[2].log.as_deref(), Some("/l/b"));
    // A program's message may hold a NUL, which PostgreSQL's text cannot: both keep U+FFFD instead.
    store.record_stage(run, 2, "app", Stage::Test, "failed", Some("bad\0byte"), ms(1), None).expect("stage");
    let (_, rows) = store.run(run).expect("read").expect("the run");
    assert_eq!(rows.last().and_then(|row| row.detail.as_deref()), Some("bad\u{FFFD}byte"));
    let text = |s: &str| s.to_string();
    assert_eq!(
        store.package_outcomes(run).expect("outcomes"),
        [(text("lib"), text("failed")), (text("web"), text("passed")), (text("app"), text("skipped"))]
    );
    assert!(store.run(99).expect("read").is_none());
}

fn a_run_ends_once_and_keeps_the_reason_it_was_given_before(database: &Database) {
    let store = database.open().expect("a store");
    let run = store.begin_run(&new_run("a", 1)).expect("begun");
    assert!(!store.has_ended(run, None).expect("asked"));
    assert!(!store.has_ended(run, Some(("web", Stage::Test))).expect("asked"));
    store.record_stage(run, 0, "web", Stage::Test, "passed", None, Duration::ZERO, None).expect("stage");
    assert!(store.has_ended(run, Some(("web", Stage::Test))).expect("asked"), "that stage has");
    store.set_reason(run, "superseded by `beef`").expect("reason");
    store.finish_run(run, "cancelled", Duration::from_millis(1500)).expect("finished");
    assert!(store.has_ended(run, None).expect("asked"));
    assert!(store.has_ended(404, None).expect("asked"), "a run that is not there has ended");
    store.set_reason(run, "too late").expect("no error");
    let (row, _) = store.run(run).expect("read").expect("the run");
    assert_eq!((row.status.as_str(), row.duration_ms), ("cancelled", Some(1500)));
    assert_eq!(row.reason.as_deref(), Some("superseded by `beef`"), "an ended run keeps its story");
}

fn runs_are_found_by_repository_branch_pull_request_status_and_page_newest_first(database: &Database) {
    let store = database.open().expect("a store");
    store.queue_run(&queued("a", "acme/one", None, None)).expect("queued");
    store.queue_run(&queued("b", "acme/two", Some(7), None)).expect("queued");
    store.queue_run(&queued("c", "acme/one", Some(7), None)).expect("queued");
    store.begin_run(&new_run("c", 3)).expect("begun");
    let ids = |filter: RunFilter| -> Vec<i64> {
        store.find_runs(&RunFilter { limit: 10, ..filter }).expect("found").iter().map(|run| run.id).collect()
    };
    assert_eq!(ids(RunFilter::default()), [3, 2, 1]);
    assert_eq!(ids(RunFilter { repository: Some("acme/one".into()), ..RunFilter::default() }), [3, 1]);
    assert_eq!(ids(RunFilter { pull_request: Some(7), ..RunFilter::default() }), [3, 2]);
    assert_eq!(ids(RunFilter { status: Some("queued".into()), ..RunFilter::default() }), [2, 1]);
    assert_eq!(ids(RunFilter { branch: Some("main".into()), before: Some(3), ..RunFilter::default() }), [2, 1]);
    assert_eq!(ids(RunFilter { branch: Some("other".into()), ..RunFilter::default() }), Vec::<i64>::new());
    assert_eq!(store.runs(1).expect("runs").iter().map(|run| run.id).collect::<Vec<_>>(), [3]);
}

fn totals_count_runs_by_status_and_stages_that_ran(database: &Database) {
    let store = database.open().expect("a store");
    let run = store.begin_run(&new_run("a", 1)).expect("begun");
    store.record_stage(run, 0, "a", Stage::Test, "passed", None, Duration::from_millis(30), None).expect("stage");
    store.record_stage(run, 1, "b", Stage::Test, "failed", None, Duration::from_millis(12), None).expect("stage");
    store.record_stage(run, 1, "b", Stage::Build, "skipped", None, Duration::from_millis(99), None).expect("stage");
    store.finish_run(run, "failed", Duration::from_secs(1)).expect("finished");
    store.queue_run(&queued("b", "acme/repo", None, None)).expect("queued");
    let totals = store.totals().expect("totals");
    assert_eq!(totals.runs, [("failed".to_string(), 1), ("queued".to_string(), 1)]);
    assert_eq!(totals.stages, [("test".to_string(), 2, 42)], "skipped stages do not count");
}

fn queued_runs_are_orphans_to_resume_with_their_request_and_a_requeued_run_says_why(database: &Database) {
    let store = database.open().expect("a store");
    store.queue_run(&queued("a", "acme/repo", None, None)).expect("queued");
    let running = store.begin_run(&new_run("b", 2)).expect("begun");
    // Running in this very process: not an orphan.
    assert_eq!(store.orphans().expect("orphans").iter().map(|run| run.id).collect::<Vec<_>>(), [1]);
    assert_eq!(store.request(1).expect("request").as_deref(), Some("{\"run\":\"a\"}"));
    assert_eq!(store.request(running).expect("request"), None, "a CLI run has none");
    store.requeue(running, "the server stopped before it ended").expect("requeued");
    let orphans = store.orphans().expect("orphans");
    assert_eq!(orphans.iter().map(|run| run.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(orphans[1].reason.as_deref(), Some("the server stopped before it ended"));
}

fn a_resumed_run_keeps_the_rows_of_packages_it_does_not_run_again_before_the_new_ones(database: &Database) {
    let store = database.open().expect("a store");
    let run = store.begin_run(&new_run("a", 1)).expect("begun");
    store.record_stage(run, 0, "lib", Stage::Test, "passed", None, Duration::ZERO, None).expect("stage");
    store.record_package(run, 0, "lib", "passed", "").expect("package");
    store.record_stage(run, 1, "web", Stage::Test, "failed", None, Duration::ZERO, None).expect("stage");
    store.record_package(run, 1, "web", "failed", "").expect("package");
    store.prepare_resume(run, &["web".to_string()]).expect("prepared");
    // The resumed plan numbers its packages from 0 again.
    store.record_stage(run, 0, "web", Stage::Test, "passed", None, Duration::ZERO, None).expect("stage");
    store.record_package(run, 0, "web", "passed", "").expect("package");
    let (_, rows) = store.run(run).expect("read").expect("the run");
    let shown: Vec<(&str, &str)> = rows.iter().map(|row| (row.package.as_str(), row.status.as_str())).collect();
    assert_eq!(shown, [("lib", "passed"), ("web", "passed")]);
    assert!(rows[0].position < rows[1].position);
    // Resumed again (the server stopped twice): the rows kept before stay first.
    store.record_stage(run, 1, "app", Stage::Test, "failed", None, Duration::ZERO, None).expect("stage");
    store.record_package(run, 1, "app", "failed", "").expect("package");
    store.prepare_resume(run, &["app".to_string()]).expect("prepared again");
    store.record_stage(run, 0, "app", Stage::Test, "passed", None, Duration::ZERO, None).expect("stage");
    store.record_package(run, 0, "app", "passed", "").expect("package");
    let (_, rows) = store.run(run).expect("read").expect("the run");
    let shown: Vec<(&str, &str)> = rows.iter().map(|row| (row.package.as_str(), row.status.as_str())).collect();
    assert_eq!(shown, [("lib", "passed"), ("web", "passed"), ("app", "passed")]);
}

fn writes_grouped_in_a_batch_are_kept_when_committed_and_dropped_with_the_store_otherwise(database: &Database) {
    let store = database.open().expect("a store");
    let run = store.begin_run(&new_run("a", 1)).expect("begun");
    store.begin_batch().expect("batch");
    store.begin_batch().expect("a batch already open is fine");
    for position in 0..50 {
        store.record_package(run, position, &format!("p{position}"), "passed", "").expect("package");
    }
    let elsewhere = database.open().expect("another store");
    assert_eq!(elsewhere.package_outcomes(run).expect("outcomes").len(), 0, "not committed yet");
    store.commit().expect("committed");
    store.commit().expect("nothing open: fine");
    assert_eq!(elsewhere.package_outcomes(run).expect("outcomes").len(), 50);
    // A batch never committed is not kept.
    store.begin_batch().expect("batch");
    store.record_package(run, 50, "lost", "passed", "").expect("package");
    drop(store);
    let reopened = database.open().expect("reopened");
    assert_eq!(reopened.package_outcomes(run).expect("outcomes").len(), 50);
}

fn open_pull_requests_remember_what_they_affect_and_what_was_said_of_them(database: &Database) {
    let store = database.open().expect("a store");
    store.open_pull_request("acme/repo", 2, "h2", "2026-12-01T10:00:00Z").expect("opened");
    store.open_pull_request("acme/repo", 1, "h1", "2026-12-01T09:00:00Z").expect("opened");
    store.open_pull_request("acme/other", 9, "h9", "2026-12-01T08:00:00Z").expect("opened");
    store.set_affected("acme/repo", 1, "h1b", &["lib".to_string(), "app".to_string()]).expect("affected");
    store.set_comment("acme/repo", 1, Some(77)).expect("comment");
    store.set_reported("acme/repo", 1, "h1b", "Packages also affected by #2").expect("reported");
    let open = store.open_pull_requests("acme/repo").expect("open");
    assert_eq!(open.iter().map(|pr| pr.number).collect::<Vec<_>>(), [1, 2], "oldest first");
    assert_eq!(open[0].head, "h1b");
    assert_eq!(open[0].affected.as_deref(), Some(&["lib".to_string(), "app".to_string()][..]));
    assert_eq!(open[0].comment, Some(77));
    assert_eq!(open[0].reported, Some(("h1b".to_string(), "Packages also affected by #2".to_string())));
    assert_eq!((open[1].affected.clone(), open[1].comment, open[1].reported.clone()), (None, None, None));
    // Closed, it is not open; opened again, it keeps what was said (its comment is edited, not made anew).
    store.close_pull_request("acme/repo", 1).expect("closed");
    assert_eq!(store.open_pull_requests("acme/repo").expect("open").len(), 1);
    store.open_pull_request("acme/repo", 1, "h1c", "2026-12-01T09:00:00Z").expect("reopened");
    let open = store.open_pull_requests("acme/repo").expect("open");
    assert_eq!(open[0].comment, Some(77));
    store.set_comment("acme/repo", 1, None).expect("comment gone");
    assert_eq!(store.open_pull_requests("acme/repo").expect("open")[0].comment, None);
}
