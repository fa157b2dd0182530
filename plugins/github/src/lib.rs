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
//! run_url`). The repository is the `origin` remote's (`github.com/<owner>/<repo>`,
//! or a GitHub Enterprise host); the host signs the calls in.

use loktar_sdk::prelude::*;
use loktar_sdk::raw::github::{self, Request};
use serde_json::{Value, json};

struct Github;

/// GitHub's limit on a status description.
const DESCRIPTION_LIMIT: usize = 140;
/// The context of the status a run with nothing affected posts.
const NOTHING_CONTEXT: &str = "loktar";

impl Notifier for Github {
    fn describe() -> PluginInfo {
        PluginInfo::new("github", env!("CARGO_PKG_VERSION"), Role::Notifier)
            .with_capabilities(&[Capability::Log, Capability::Github])
    }

    fn notify(context: RunContext, event: String) -> Result<(), Error> {
        let event: Value = serde_json::from_str(&event)
            .map_err(|e| Error::new(format!("the host sent an event that is not JSON: {e}")))?;
        let statuses = statuses(&event);
        if statuses.is_empty() {
            return Ok(());
        }
        let repository = repository(&context)?;
        if context.commit.is_empty() {
            return Err(Error::new("the run has no commit to put statuses on")
                .with_hint("commit the work: GitHub statuses belong to commits"));
        }
        let target = event["run_url"].as_str();
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
fn statuses(event: &Value) -> Vec<Status> {
    let mut statuses = not_rebuilt(event);
    statuses.extend(settled(event));
    statuses
}

/// `<package> - Not rebuilt` for each package `--rebuild` left out as already green.
fn not_rebuilt(event: &Value) -> Vec<Status> {
    event["not_rebuilt"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|package| {
            let name = package["name"].as_str().unwrap_or_default();
            let commit: String = package["commit"].as_str().unwrap_or_default().chars().take(7).collect();
            Status::new(format!("{name} - Not rebuilt"), "success", format!("already green on {commit}: not run again"))
        })
        .collect()
}

/// The test and artifact statuses an event settles.
fn settled(event: &Value) -> Vec<Status> {
    match event["event"].as_str() {
        Some("run_started") => event["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|package| {
                let name = package["name"].as_str().unwrap_or_default();
                let stages = planned(package);
                let mut pending = Vec::new();
                if stages.contains(&"test") {
                    pending.push(Status::new(format!("{name} - test"), "pending", "queued"));
                }
                if stages.contains(&"build") {
                    pending.push(Status::new(format!("{name} - artifact"), "pending", "queued"));
                }
                pending
            })
            .collect(),
        Some("package_finished") => package_statuses(event),
        Some("run_finished") => match event["nothing_to_run"].as_str() {
            Some(reason) => {
                vec![Status::new(NOTHING_CONTEXT.to_string(), "success", format!("nothing to build: {reason}"))]
            }
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The stages a package was planned to go through (not skipped by its configuration).
fn planned(package: &Value) -> Vec<&str> {
    package["planned"].as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// The final `test` and `artifact` statuses of a finished package.
fn package_statuses(event: &Value) -> Vec<Status> {
    let name = event["package"].as_str().unwrap_or_default();
    let stages: Vec<&Value> = event["stages"].as_array().into_iter().flatten().collect();
    let outcome_of = |stage: &str| stages.iter().find(|s| s["stage"] == stage).copied();
    let planned = planned(event);
    let cancelled = event["outcome"] == "cancelled";
    // Skipped because a dependency failed: it did not pass, and says why.
    if event["outcome"] == "skipped" {
        let why = text(event, "detail").unwrap_or("a dependency failed").to_string();
        return ["test", "build"]
            .iter()
            .filter(|stage| planned.contains(stage))
            .map(|stage| {
                let suffix = if *stage == "test" { "test" } else { "artifact" };
                Status::new(format!("{name} - {suffix}"), "failure", format!("not run: {why}"))
            })
            .collect();
    }
    let mut statuses = Vec::new();
    if planned.contains(&"test") {
        let context = format!("{name} - test");
        statuses.push(match outcome_of("test") {
            Some(stage) if stage["outcome"] == "passed" => {
                Status::new(context, "success", text(stage, "message").unwrap_or("tests passed"))
            }
            Some(stage) if stage["outcome"] == "failed" => {
                Status::new(context, failed_state(stage), text(stage, "message").unwrap_or("tests failed"))
            }
            _ if cancelled => Status::new(context, "error", "the run was cancelled"),
            _ => Status::new(context, "error", "the tests did not run"),
        });
    }
    if planned.contains(&"build") {
        let context = format!("{name} - artifact");
        let artifact_stages = ["build", "publish", "store"];
        let failed = stages
            .iter()
            .find(|s| artifact_stages.contains(&s["stage"].as_str().unwrap_or_default()) && s["outcome"] == "failed");
        let built = outcome_of("build").is_some_and(|s| s["outcome"] == "passed");
        statuses.push(if let Some(stage) = failed {
            let what = stage["stage"].as_str().unwrap_or("build");
            Status::new(
                context,
                failed_state(stage),
                format!("{what} failed: {}", text(stage, "message").unwrap_or("see the run")),
            )
        } else if cancelled {
            Status::new(context, "error", "the run was cancelled")
        } else if built {
            Status::new(context, "success", artifacts(event))
        } else {
            Status::new(context, "failure", "not built: the tests failed")
        });
    }
    statuses
}

/// `failure` when the package failed; `error` when Loktar or the plugin itself broke.
fn failed_state(stage: &Value) -> &'static str {
    if stage["internal"] == true { "error" } else { "failure" }
}

fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value[key].as_str().filter(|t| !t.is_empty())
}

/// `image pet_api:3, wheel awesome_lib 1.2.0` for a success description.
fn artifacts(event: &Value) -> String {
    let described: Vec<String> = event["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} {} {}",
                a["kind"].as_str().unwrap_or("artifact"),
                a["name"].as_str().unwrap_or_default(),
                a["version"].as_str().unwrap_or_default()
            )
        })
        .collect();
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
