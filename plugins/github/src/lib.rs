//! The `github` notifier: a commit status per package and stage on the
//! commit a run builds, with Loktar's contexts — `<package> - test` and
//! `<package> - artifact` — so branch protection can require them.
//!
//! - When the run starts, each status the run will settle is `pending`.
//! - When a package ends: `success`; `failure` when its stage failed (or,
//!   for the artifact, when it was never built because the tests failed),
//!   and when it did not run because a dependency failed; `error` when
//!   Loktar itself failed — the stage's plugin crashed, ran out of time, or
//!   could not load — or the run was cancelled before it ended.
//! - `<package> - Not rebuilt` (`success`) for each package `--rebuild`
//!   left out because it is already green.
//! - A run with nothing affected posts one `success` status, context
//!   `loktar`, saying so — required checks never wait for a run that
//!   builds nothing.
//!
//! Descriptions are cut to GitHub's 140 characters; `target_url` is the
//! run's page when the host configuration gives one (`[notifications]
//! run_url`). The repository is the one `[github] repository` names, else the
//! `origin` remote's (`github.com/<owner>/<repo>`, or a GitHub Enterprise
//! host) — the host's own choice, read the same way; the host signs the calls in.

use loktar_sdk::prelude::*;
use loktar_sdk::protocol::status::{NOTHING_AFFECTED, artifact_context, not_rebuilt_context, test_context};
use loktar_sdk::protocol::{self, EventKind, NotRebuilt, PackageOutcome, RunEvent, Stage, StageOutcome, StageResult};
use loktar_sdk::raw::github::{self, Request};
use serde_json::{Value, json};

struct Github;

/// GitHub's limit on a status description.
const DESCRIPTION_LIMIT: usize = 140;

impl Notifier for Github {
    fn describe() -> PluginInfo {
        PluginInfo::new("github", env!("CARGO_PKG_VERSION"), Role::Notifier)
            .with_capabilities(&[Capability::Log, Capability::Github])
    }

    fn notify(context: RunContext, event: String) -> Result<(), Error> {
        let event: RunEvent = serde_json::from_str(&event)
            .map_err(|e| Error::new(format!("the host sent an event this plugin cannot read: {e}")))?;
        let statuses = statuses(&event.kind);
        if statuses.is_empty() {
            return Ok(());
        }
        let repository = repository(&context)?;
        if context.commit.is_empty() {
            return Err(Error::new("the run has no commit to put statuses on")
                .with_hint("commit the work: GitHub statuses belong to commits"));
        }
        let target = match &event.kind {
            EventKind::RunStarted { run_url, .. }
            | EventKind::PackageFinished { run_url, .. }
            | EventKind::RunFinished { run_url, .. } => run_url.as_deref(),
            _ => None,
        };
        for status in statuses {
            post(&repository, &context.commit, &status, target)?;
        }
        Ok(())
    }
}

/// A commit status to post.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    context: String,
    state: &'static str,
    description: String,
}

impl Status {
    fn new(context: String, state: &'static str, description: impl Into<String>) -> Status {
        Status { context, state, description: description.into() }
    }
}

/// The statuses an event settles.
fn statuses(event: &EventKind) -> Vec<Status> {
    match event {
        EventKind::RunStarted { packages, not_rebuilt, .. } => {
            let mut statuses = not_rebuilt_statuses(not_rebuilt);
            for package in packages {
                let settled = protocol::status::contexts_settled(&package.name, &package.planned);
                statuses.extend(settled.into_iter().map(|context| Status::new(context, "pending", "queued")));
            }
            statuses
        }
        EventKind::PackageFinished { package, outcome, planned, stages, artifacts, .. } => {
            package_statuses(package, outcome, planned, stages, artifacts)
        }
        EventKind::RunFinished { nothing_to_run: Some(reason), not_rebuilt, .. } => {
            let mut statuses = not_rebuilt_statuses(not_rebuilt);
            let nothing = format!("nothing to build: {reason}");
            statuses.push(Status::new(NOTHING_AFFECTED.to_string(), "success", nothing));
            statuses
        }
        _ => Vec::new(),
    }
}

/// `<package> - Not rebuilt` for each package `--rebuild` left out as already green.
fn not_rebuilt_statuses(not_rebuilt: &[NotRebuilt]) -> Vec<Status> {
    not_rebuilt
        .iter()
        .map(|package| {
            let commit: String = package.commit.chars().take(7).collect();
            let description = format!("already green on {commit}: not run again");
            Status::new(not_rebuilt_context(&package.name), "success", description)
        })
        .collect()
}

/// The final `test` and `artifact` statuses of a finished package.
fn package_statuses(
    name: &str,
    outcome: &PackageOutcome,
    planned: &[Stage],
    stages: &[StageResult],
    artifacts: &[protocol::Artifact],
) -> Vec<Status> {
    let outcome_of = |stage: Stage| stages.iter().find(|s| s.stage == stage).map(|s| &s.outcome);
    let cancelled = matches!(outcome, PackageOutcome::Cancelled { .. });
    // Skipped because a dependency failed: it did not pass, and says why.
    if let PackageOutcome::Skipped { .. } = outcome {
        let why = outcome.detail();
        let mut statuses = Vec::new();
        if planned.contains(&Stage::Test) {
            statuses.push(Status::new(test_context(name), "failure", format!("not run: {why}")));
        }
        if planned.contains(&Stage::Build) {
            statuses.push(Status::new(artifact_context(name), "failure", format!("not run: {why}")));
        }
        return statuses;
    }
    let mut statuses = Vec::new();
    if planned.contains(&Stage::Test) {
        let context = test_context(name);
        statuses.push(match outcome_of(Stage::Test) {
            Some(stage @ StageOutcome::Passed { .. }) => {
                Status::new(context, "success", text(stage).unwrap_or("tests passed"))
            }
            Some(stage @ StageOutcome::Failed { .. }) => {
                Status::new(context, failed_state(stage), text(stage).unwrap_or("tests failed"))
            }
            _ if cancelled => Status::new(context, "error", outcome.detail()),
            _ => Status::new(context, "error", "the tests did not run"),
        });
    }
    if planned.contains(&Stage::Build) {
        let context = artifact_context(name);
        let failed = stages.iter().find(|s| {
            matches!(s.stage, Stage::Build | Stage::Publish | Stage::Store)
                && matches!(s.outcome, StageOutcome::Failed { .. })
        });
        let built = matches!(outcome_of(Stage::Build), Some(StageOutcome::Passed { .. }));
        statuses.push(if let Some(stage) = failed {
            let what = stage.stage.name();
            let message = text(&stage.outcome).unwrap_or("see the run");
            Status::new(context, failed_state(&stage.outcome), format!("{what} failed: {message}"))
        } else if cancelled {
            Status::new(context, "error", outcome.detail())
        } else if built {
            Status::new(context, "success", describe(artifacts))
        } else {
            Status::new(context, "failure", "not built: the tests failed")
        });
    }
    statuses
}

/// `failure` when the package failed; `error` when Loktar or the plugin itself broke.
fn failed_state(outcome: &StageOutcome) -> &'static str {
    if matches!(outcome, StageOutcome::Failed { internal: true, .. }) { "error" } else { "failure" }
}

/// What a stage said: its failure, or the summary it passed with; `None` when it said nothing.
fn text(outcome: &StageOutcome) -> Option<&str> {
    outcome.detail().filter(|text| !text.is_empty())
}

/// `image pet_api:3, wheel awesome_lib 1.2.0` for a success description.
fn describe(artifacts: &[protocol::Artifact]) -> String {
    let described: Vec<String> = artifacts.iter().map(|a| format!("{} {} {}", a.kind, a.name, a.version)).collect();
    if described.is_empty() { "built".to_string() } else { described.join(", ") }
}

/// At most [`DESCRIPTION_LIMIT`] characters, cut with an ellipsis.
fn shortened(text: &str) -> String {
    let text = text.lines().next().unwrap_or_default();
    if text.chars().count() <= DESCRIPTION_LIMIT {
        return text.to_string();
    }
    let kept: String = text.chars().take(DESCRIPTION_LIMIT - 1).collect();
    format!("{kept}…")
}

/// `owner/repo` of the `origin` remote, which statuses go to.
fn repository(context: &RunContext) -> Result<String, Error> {
    context.repository_slug().ok_or_else(|| {
        Error::new("the repository has no `origin` remote on GitHub to post statuses to")
            .with_hint("add it: `git remote add origin https://github.com/<owner>/<repo>.git`")
    })
}

/// Posts one status; anything but `201 Created` is an error naming the context.
fn post(repository: &str, commit: &str, status: &Status, target: Option<&str>) -> Result<(), Error> {
    let mut body = json!({
        "state": status.state,
        "context": status.context,
        "description": shortened(&status.description),
    });
    if let Some(target) = target {
        body["target_url"] = json!(target);
    }
    let answer = github::call(&Request {
        method: "POST".to_string(),
        path: format!("/repos/{repository}/statuses/{commit}"),
        body: Some(body.to_string()),
    })?;
    if answer.status != 201 {
        let said: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let message = said["message"].as_str().unwrap_or("no message");
        return Err(Error::new(format!(
            "GitHub refused the status `{}` on `{repository}`: HTTP {} ({message})",
            status.context, answer.status
        ))
        .with_hint("the token needs the `repo:status` scope (or an App's `statuses: write` permission)"));
    }
    log::info(&format!("{} → {}: {}", status.context, status.state, shortened(&status.description)));
    Ok(())
}

loktar_sdk::export!(notifier: Github);

#[cfg(test)]
mod tests {
    use super::*;

    fn context(url: &str) -> RunContext {
        RunContext {
            run_id: "1".into(),
            commit: "a".repeat(40),
            branch: None,
            base: None,
            default_branch: "main".into(),
            on_default_branch: true,
            commit_time: None,
            repository_url: Some(url.into()),
            author: None,
            settings: "{}".into(),
        }
    }

    #[test]
    fn the_repository_comes_from_the_origin_remote() {
        assert_eq!(repository(&context("https://github.com/acme/monorepo.git")).ok().as_deref(), Some("acme/monorepo"));
        assert_eq!(repository(&context("git@github.com:acme/monorepo.git")).ok().as_deref(), Some("acme/monorepo"));
        assert_eq!(
            repository(&context("https://ghe.example.com/acme/monorepo")).ok().as_deref(),
            Some("acme/monorepo")
        );
        assert!(repository(&context("https://github.com/")).is_err());
    }

    #[test]
    fn descriptions_are_cut_to_140_characters() {
        assert_eq!(shortened("short"), "short");
        let long = "é".repeat(200);
        assert_eq!(shortened(&long).chars().count(), 140);
        assert!(shortened(&long).ends_with('…'));
        assert_eq!(shortened("first line\nsecond"), "first line");
    }
}
