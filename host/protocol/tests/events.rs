//! The event JSON: what `docs/events.md` shows is what the types read and
//! write, and every kind survives a trip through JSON unchanged.

use loktar_protocol::{
    Artifact, EventKind, Level, Line, NotRebuilt, PackageOutcome, PackageResult, PlannedPackage, RunEvent, RunId,
    RunOutcome, SCHEMA_VERSION, Source, Stage, StageOutcome, StageResult,
};
use time::OffsetDateTime;

/// The example of `docs/events.md`: its one JSON block.
fn documented_example() -> &'static str {
    let doc = include_str!("../../../docs/events.md");
    let start = doc.find("```json\n").expect("docs/events.md has a JSON example") + "```json\n".len();
    let length = doc[start..].find("```").expect("the example ends");
    &doc[start..start + length]
}

#[test]
fn the_documented_example_is_read_and_written_back_unchanged() {
    let text = documented_example();
    let events: Vec<RunEvent> = serde_json::from_str(text).expect("the documented events parse");
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|event| event.schema_version == SCHEMA_VERSION));
    assert_eq!(events.iter().map(|event| event.seq).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6]);
    let EventKind::PackageFinished { outcome, stages, .. } = &events[4].kind else {
        panic!("the fifth event is a package_finished: {:?}", events[4].kind)
    };
    assert_eq!(*outcome, PackageOutcome::Failed { stage: Some(Stage::Test) });
    assert_eq!(stages[0].outcome.name(), "failed");
    assert_eq!(
        events[5].kind,
        EventKind::PackageFinished {
            run_url: Some("https://ci.example.com/runs/7".into()),
            package: "api".into(),
            outcome: PackageOutcome::Skipped { dependency: "lib".into() },
            planned: vec![Stage::Test, Stage::Build, Stage::Publish],
            stages: Vec::new(),
            artifacts: Vec::new(),
        }
    );
    // Written back, the events say the same as the document, field for field.
    let documented: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let written = serde_json::to_value(&events).expect("events serialise");
    assert_eq!(written, documented);
}

fn event(seq: u64, kind: EventKind) -> RunEvent {
    let at = OffsetDateTime::from_unix_timestamp_nanos(1_765_051_510_123_456_789).expect("a time");
    RunEvent {
        schema_version: SCHEMA_VERSION,
        run_id: RunId::new("0193a0b4-7c1e-7d2a-9f7a-5b2f0c8e4a11"),
        seq,
        at,
        kind,
    }
}

#[test]
fn every_kind_of_event_round_trips_through_json() {
    let failed = StageOutcome::Failed { message: "boom".into(), hint: Some("fix it".into()), internal: true };
    let kinds = vec![
        EventKind::RunStarted {
            run_url: None,
            packages: vec![PlannedPackage {
                name: "a".into(),
                planned: vec![Stage::Test],
                depends_on: vec!["b".into()],
                changed_files: vec!["a/src/main.rs".into()],
                because_of: vec!["b".into()],
            }],
            not_rebuilt: vec![NotRebuilt { name: "c".into(), commit: "abc".into() }],
        },
        EventKind::StageStarted { package: "a".into(), stage: Stage::Build },
        EventKind::Log {
            package: "a".into(),
            stage: Stage::Build,
            line: Line { source: Source::Stderr, level: Level::Warn, text: "x \"quoted\" é\n".into() },
        },
        EventKind::StageFinished {
            package: "a".into(),
            stage: Stage::Store,
            outcome: StageOutcome::Skipped { reason: "no `build_info.storage_type`".into() },
            duration_ms: 0,
        },
        EventKind::StageFinished { package: "a".into(), stage: Stage::Test, outcome: failed.clone(), duration_ms: 7 },
        EventKind::PackageFinished {
            run_url: Some("https://ci/7".into()),
            package: "a".into(),
            outcome: PackageOutcome::Failed { stage: None },
            planned: vec![Stage::Test, Stage::Build],
            stages: vec![
                StageResult { stage: Stage::Test, outcome: StageOutcome::Passed { summary: None }, duration_ms: 1 },
                StageResult { stage: Stage::Build, outcome: failed, duration_ms: 2 },
                StageResult { stage: Stage::Publish, outcome: StageOutcome::Cancelled, duration_ms: 3 },
            ],
            artifacts: vec![Artifact {
                kind: "image".into(),
                name: "a".into(),
                version: "3".into(),
                location: "registry/a:3".into(),
                digest: Some("sha256:00".into()),
            }],
        },
        EventKind::RunFinished {
            run_url: None,
            outcome: RunOutcome::Interrupted,
            duration_ms: u64::MAX,
            packages: vec![PackageResult {
                name: "a".into(),
                outcome: PackageOutcome::Cancelled { reason: Some("superseded by `abc`".into()) },
                duration_ms: 9,
            }],
            nothing_to_run: Some("nothing changed".into()),
            not_rebuilt: Vec::new(),
        },
    ];
    for (seq, kind) in kinds.into_iter().enumerate() {
        let event = event(seq as u64, kind);
        let json = serde_json::to_string(&event).expect("serialise");
        let back: RunEvent = serde_json::from_str(&json).expect("parse back");
        assert_eq!(back, event, "{json}");
    }
}

#[test]
fn an_event_reads_as_documented() {
    let json = serde_json::to_value(event(3, EventKind::StageStarted { package: "api".into(), stage: Stage::Test }))
        .expect("serialise");
    assert_eq!(
        json,
        serde_json::json!({
            "schema_version": 1, "run_id": "0193a0b4-7c1e-7d2a-9f7a-5b2f0c8e4a11", "seq": 3,
            "at": "2025-12-06T20:05:10.123456789Z", "event": "stage_started", "package": "api", "stage": "test",
        })
    );
}

#[test]
fn an_unknown_kind_or_a_missing_field_is_an_error() {
    let base = r#""schema_version":1,"run_id":"r","seq":0,"at":"2026-12-06T20:05:10Z""#;
    let unknown = format!(r#"{{{base},"event":"run_exploded"}}"#);
    assert!(serde_json::from_str::<RunEvent>(&unknown).is_err());
    let missing = format!(r#"{{{base},"event":"stage_started","package":"a"}}"#);
    let error = serde_json::from_str::<RunEvent>(&missing).expect_err("no stage");
    assert!(error.to_string().contains("stage"), "{error}");
    let extra = format!(r#"{{{base},"event":"stage_started","package":"a","stage":"test","new_field":1}}"#);
    assert!(serde_json::from_str::<RunEvent>(&extra).is_ok(), "fields added later are ignored");
}
