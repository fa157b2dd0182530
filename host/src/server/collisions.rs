//! Colliding pull requests (`[server] collisions = "warn" | "block"`): when
//! the packages a pull request's latest run planned include packages of an
//! open pull request opened before it, the later one is told — one comment,
//! edited in place, a line per earlier pull request: "Packages also
//! affected by #N: `a`, `b`" — and with `block` its head also gets a
//! `loktar - collisions` status, `failure` while it collides, `success`
//! otherwise.
//!
//! The server learns open pull requests from `pull_request` events and, when
//! it starts, from GitHub's list; what each affects from its runs' plans. A
//! repository's pull requests are looked at again whenever one of them is
//! planned or closed; what was last said of each is kept, so nothing is
//! posted twice. GitHub's failures are logged and tried again next time.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Server;
use crate::settings::Collisions;
use crate::store::OpenPullRequest;

/// The status context of `block`.
pub(crate) const CONTEXT: &str = "loktar - collisions";

/// Marks the server's comment among a pull request's comments.
const MARKER: &str = "<!-- loktar: collisions -->";

/// What the comment says once a pull request no longer collides.
const RESOLVED: &str = "No other open pull request affects these packages any more.";

/// A pull request's number as the store keeps it.
fn stored(number: u64) -> i64 {
    i64::try_from(number).unwrap_or(i64::MAX)
}

/// Whether the server looks at collisions at all.
pub(crate) fn enabled(server: &Server) -> bool {
    server.settings.collisions != Collisions::Off
}

/// Pull request `number` of `repository` is open at `head`.
pub(crate) async fn opened(server: &Arc<Server>, repository: &str, number: u64, head: &str, created_at: Option<&str>) {
    if !enabled(server) {
        return;
    }
    let (repository, head) = (repository.to_string(), head.to_string());
    // Without GitHub's time, now: later than every pull request known so far.
    let created_at = created_at.map_or_else(|| crate::timefmt::rfc3339(std::time::SystemTime::now()), str::to_string);
    let number = stored(number);
    let kept = server.with_store(move |store| store.open_pull_request(&repository, number, &head, &created_at)).await;
    if let Err(problem) = kept {
        tracing::warn!("cannot keep an open pull request: {problem}");
    }
}

/// The latest run of pull request `number` planned `affected` at `head`;
/// its repository's pull requests are looked at again, in the background.
pub(crate) async fn planned(server: &Arc<Server>, repository: &str, number: u64, head: &str, affected: Vec<String>) {
    if !enabled(server) {
        return;
    }
    let (owned, head) = (repository.to_string(), head.to_string());
    let number = stored(number);
    let kept = server.with_store(move |store| store.set_affected(&owned, number, &head, &affected)).await;
    match kept {
        Ok(()) => refresh_later(server, repository),
        Err(problem) => tracing::warn!("cannot keep what a pull request affects: {problem}"),
    }
}

/// Pull request `number` was closed: it collides with nothing any more.
pub(crate) async fn closed(server: &Arc<Server>, repository: &str, number: u64) {
    if !enabled(server) {
        return;
    }
    let owned = repository.to_string();
    let number = stored(number);
    match server.with_store(move |store| store.close_pull_request(&owned, number)).await {
        Ok(()) => refresh_later(server, repository),
        Err(problem) => tracing::warn!("cannot forget a closed pull request: {problem}"),
    }
}

/// At start: the open pull requests of each repository, as GitHub lists them.
pub(crate) async fn learn_open(server: &Arc<Server>) {
    if !enabled(server) {
        return;
    }
    for repository in server.settings.repositories.keys() {
        // Only those known before GitHub was asked may be found closed: one opened since is not in its answer.
        let owned = repository.clone();
        let known: Vec<i64> = match server.with_store(move |store| store.open_pull_requests(&owned)).await {
            Ok(pulls) => pulls.iter().map(|pull| pull.number).collect(),
            Err(problem) => {
                tracing::warn!("cannot read {repository}'s open pull requests: {problem}");
                continue;
            }
        };
        let path = format!("/repos/{repository}/pulls?state=open&per_page=100");
        let listed = match server.github.call("GET", &path, None).await {
            Ok(answer) if answer.status == 200 => serde_json::from_str::<Vec<Value>>(&answer.body).ok(),
            Ok(answer) => {
                tracing::warn!("GitHub answered {} to the list of {repository}'s pull requests", answer.status);
                None
            }
            Err(problem) => {
                tracing::warn!("cannot list {repository}'s pull requests: {problem}");
                None
            }
        };
        let Some(listed) = listed else { continue };
        let open: Vec<(i64, String, String)> = listed
            .iter()
            .filter_map(|pull| {
                let head = pull["head"]["sha"].as_str()?;
                let created = pull["created_at"].as_str().unwrap_or("").to_string();
                Some((pull["number"].as_i64()?, head.to_string(), created))
            })
            .collect();
        let owned = repository.clone();
        let kept = server
            .with_store(move |store| {
                for number in known.iter().filter(|number| !open.iter().any(|(open, _, _)| open == *number)) {
                    store.close_pull_request(&owned, *number)?;
                }
                open.iter()
                    .try_for_each(|(number, head, created)| store.open_pull_request(&owned, *number, head, created))
            })
            .await;
        match kept {
            // Those closed while the server was away collide with nothing any more.
            Ok(()) => refresh(server, repository).await,
            Err(problem) => tracing::warn!("cannot keep {repository}'s open pull requests: {problem}"),
        }
    }
}

/// Looks at `repository`'s pull requests again, in a task of its own (one a stopping server waits for).
fn refresh_later(server: &Arc<Server>, repository: &str) {
    let (owned, repository) = (server.clone(), repository.to_string());
    server.tasks.spawn(async move { refresh(&owned, &repository).await });
}

/// Says, for each open pull request of `repository` whose collisions
/// changed since last said, what it collides with.
async fn refresh(server: &Arc<Server>, repository: &str) {
    // One at a time: two looks at once would both post a first comment.
    let _one = server.collisions.lock().await;
    let owned = repository.to_string();
    let pulls = match server.with_store(move |store| store.open_pull_requests(&owned)).await {
        Ok(pulls) => pulls,
        Err(problem) => return tracing::warn!("cannot read the open pull requests: {problem}"),
    };
    for (at, pull) in pulls.iter().enumerate() {
        let Some(affected) = &pull.affected else { continue };
        let found = collisions(affected, &pulls[..at]);
        let text = said(&found);
        if pull.reported.as_ref().is_some_and(|(head, said)| *head == pull.head && *said == text) {
            continue;
        }
        match report(server, repository, pull, &found, &text).await {
            Ok(()) => {
                let (owned, number, head) = (repository.to_string(), pull.number, pull.head.clone());
                let kept = server.with_store(move |store| store.set_reported(&owned, number, &head, &text)).await;
                if let Err(problem) = kept {
                    tracing::warn!("cannot keep what was said of pull request #{number}: {problem}");
                }
            }
            // Tried again at the next look: nothing was marked said.
            Err(problem) => tracing::warn!("cannot tell pull request #{} of its collisions: {problem}", pull.number),
        }
    }
}

/// A collision: an earlier pull request and the packages of `affected` it affects too.
type Collision = (i64, Vec<String>);

/// Each earlier pull request that affects some of `affected`, with those packages.
fn collisions(affected: &[String], earlier: &[OpenPullRequest]) -> Vec<Collision> {
    earlier
        .iter()
        .filter_map(|other| {
            let theirs = other.affected.as_ref()?;
            let shared: Vec<String> = affected.iter().filter(|package| theirs.contains(package)).cloned().collect();
            (!shared.is_empty()).then_some((other.number, shared))
        })
        .collect()
}

/// What the comment says of `collisions`: a line each; empty when there are none.
fn said(collisions: &[Collision]) -> String {
    let line = |(number, shared): &Collision| {
        let names: Vec<String> = shared.iter().map(|package| format!("`{package}`")).collect();
        format!("Packages also affected by #{number}: {}", names.join(", "))
    };
    collisions.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// Posts or edits the comment (when what it says changed; its id kept as
/// soon as it is made) and, with `block`, the status.
async fn report(
    server: &Arc<Server>,
    repository: &str,
    pull: &OpenPullRequest,
    found: &[Collision],
    text: &str,
) -> Result<(), crate::diagnostic::Diagnostic> {
    let said_before = pull.reported.as_ref().map(|(_, said)| said.as_str());
    if said_before.unwrap_or("") != text {
        let body = if text.is_empty() { RESOLVED } else { text };
        let body = json!({ "body": format!("{MARKER}\n{body}") }).to_string();
        let mut comment = pull.comment;
        if let Some(id) = comment {
            let path = format!("/repos/{repository}/issues/comments/{id}");
            let answer = server.github.call("PATCH", &path, Some(&body)).await?;
            // Deleted by someone: a new one is made below.
            if answer.status == 404 {
                comment = None;
            } else {
                expect_success(answer, "edit the comment")?;
            }
        }
        // Nothing to take back: a pull request that never collided gets no comment.
        if comment.is_none() && !text.is_empty() {
            let path = format!("/repos/{repository}/issues/{}/comments", pull.number);
            let answer = expect_success(server.github.call("POST", &path, Some(&body)).await?, "comment")?;
            comment = serde_json::from_str::<Value>(&answer.body).ok().and_then(|made| made["id"].as_i64());
        }
        if comment != pull.comment {
            let (owned, number) = (repository.to_string(), pull.number);
            server.with_store(move |store| store.set_comment(&owned, number, comment)).await?;
        }
    }
    if server.settings.collisions == Collisions::Block {
        let numbers: Vec<String> = found.iter().map(|(number, _)| format!("#{number}")).collect();
        let (state, description) = if found.is_empty() {
            ("success", "no earlier open pull request affects its packages".to_string())
        } else {
            ("failure", format!("packages also affected by {}", numbers.join(", ")))
        };
        let body = json!({ "state": state, "context": CONTEXT, "description": description }).to_string();
        let path = format!("/repos/{repository}/statuses/{}", pull.head);
        expect_success(server.github.call("POST", &path, Some(&body)).await?, "post the collisions status")?;
    }
    Ok(())
}

fn expect_success(
    answer: crate::github::Answer,
    what: &str,
) -> Result<crate::github::Answer, crate::diagnostic::Diagnostic> {
    if (200..300).contains(&answer.status) {
        Ok(answer)
    } else {
        Err(crate::diagnostic::Diagnostic::new(format!("GitHub answered {} when asked to {what}", answer.status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(number: i64, affected: &[&str]) -> OpenPullRequest {
        OpenPullRequest {
            number,
            head: format!("h{number}"),
            created_at: String::new(),
            affected: Some(affected.iter().map(|name| (*name).to_string()).collect()),
            comment: None,
            reported: None,
        }
    }

    #[test]
    fn a_pull_request_collides_with_each_earlier_one_sharing_packages() {
        let earlier = [pull(1, &["lib", "app"]), pull(2, &["docs"]), pull(3, &["app"])];
        let affected = ["lib".to_string(), "app".to_string()];
        let found = collisions(&affected, &earlier);
        assert_eq!(found, [(1, vec!["lib".to_string(), "app".to_string()]), (3, vec!["app".to_string()])]);
        assert_eq!(said(&found), "Packages also affected by #1: `lib`, `app`\nPackages also affected by #3: `app`");
        assert!(collisions(&affected, &earlier[1..2]).is_empty());
        assert_eq!(said(&[]), "");
    }
}
