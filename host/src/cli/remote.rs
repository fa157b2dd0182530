//! `loktar remote`: a Loktar server's runs from the command line, through
//! its REST API — list and show them as `loktar runs` does, print or
//! follow a stage's log, cancel, rerun and start runs. The server is
//! `--server` (or `LOKTAR_SERVER`); the API token, which the write routes
//! need, is read from `LOKTAR_TOKEN` only, never from the command line.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ListFormat;
use crate::blocking::wait_for;
use crate::diagnostic::Diagnostic;
use crate::links::encode_component;
use crate::loktar_server::LoktarServer;
use crate::render;
use crate::store::{RunRow, StageRow};
use crate::terminal::escaped;

/// `loktar remote`.
#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// The server's URL, as it prints it
    #[arg(long, value_name = "URL", env = "LOKTAR_SERVER", global = true)]
    server: Option<String>,

    /// Output format: text, or the server's JSON
    #[arg(long, value_enum, default_value_t = ListFormat::Text, global = true)]
    format: ListFormat,

    #[command(subcommand)]
    action: RemoteAction,
}

#[derive(Debug, Subcommand)]
enum RemoteAction {
    /// List the server's runs, newest first
    Runs {
        /// Only runs of this repository (`owner/repo`)
        #[arg(long)]
        repository: Option<String>,
        /// Only runs of this branch
        #[arg(long)]
        branch: Option<String>,
        /// Only runs of this pull request
        #[arg(long, value_name = "N")]
        pull_request: Option<u32>,
        /// Only runs that ended so (`passed`, `failed`, `interrupted`) or are `queued`/`running`
        #[arg(long)]
        status: Option<String>,
        /// How many runs to list (at most 200)
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one run: each package's stages, outcomes, times and logs
    Show {
        /// The run's number, as `loktar remote runs` lists it
        id: i64,
    },
    /// Print a stage's log; with `--follow`, as it is written until the stage ends
    Logs {
        /// The run's number
        id: i64,
        /// The package
        package: String,
        /// The stage: test, build, publish, store or notify
        stage: String,
        /// Stream the log while the stage runs
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a run that has not ended (clean-up still runs); needs `LOKTAR_TOKEN`
    Cancel {
        /// The run's number
        id: i64,
    },
    /// Run a run's commit again — the packages that did not pass, or `--all`; needs `LOKTAR_TOKEN`
    Rerun {
        /// The run's number
        id: i64,
        /// Every package of the run, not only those that did not pass
        #[arg(long)]
        all: bool,
    },
    /// Start a run of a branch's head or of a commit; needs `LOKTAR_TOKEN`
    Trigger {
        /// The repository (`owner/repo`), one the server builds
        #[arg(long)]
        repository: String,
        /// The branch whose head runs
        #[arg(long, required_unless_present = "commit", conflicts_with = "commit")]
        branch: Option<String>,
        /// The commit (full hash) that runs
        #[arg(long)]
        commit: Option<String>,
        /// Run these packages [default: those the changes affect]
        #[arg(long = "package", value_name = "NAME", conflicts_with = "all")]
        packages: Vec<String>,
        /// Run every package
        #[arg(long)]
        all: bool,
    },
}

/// Runs `loktar remote …`; returns what to print on stdout.
pub(crate) fn remote(args: &RemoteArgs) -> Result<String, Diagnostic> {
    let url = args.server.as_deref().ok_or_else(|| {
        Diagnostic::new("no server named").hint("give `--server http://<host>:<port>`, or set `LOKTAR_SERVER`")
    })?;
    let token = std::env::var("LOKTAR_TOKEN").ok().filter(|token| !token.is_empty());
    let server = LoktarServer::new(url, token)?;
    if std::env::var_os("LOKTAR_TOKEN").is_some() && server.token_in_clear() {
        tracing::warn!(
            "`LOKTAR_TOKEN` goes to {} unencrypted: use https:// for a server on another machine",
            server.url()
        );
    }
    let json = args.format == ListFormat::Json;
    wait_for(async {
        match &args.action {
            RemoteAction::Runs { repository, branch, pull_request, status, limit } => {
                let mut query = vec![format!("limit={limit}")];
                let filters =
                    [("repository", repository.clone()), ("branch", branch.clone()), ("status", status.clone())];
                for (name, value) in filters {
                    if let Some(value) = value {
                        query.push(format!("{name}={}", encode_component(&value)));
                    }
                }
                if let Some(number) = pull_request {
                    query.push(format!("pull_request={number}"));
                }
                let answer = server.get_json(&format!("/api/runs?{}", query.join("&"))).await?;
                if json {
                    return Ok(pretty(&answer));
                }
                let rows: Vec<RunRow> = serde_json::from_value(answer["runs"].clone()).map_err(unreadable)?;
                Ok(if rows.is_empty() { "no runs on this server yet\n".to_string() } else { render::run::runs(&rows) })
            }
            RemoteAction::Show { id } => {
                let answer = server.get_json(&format!("/api/runs/{id}")).await?;
                if json {
                    return Ok(pretty(&answer));
                }
                let run: RunRow = serde_json::from_value(answer["run"].clone()).map_err(unreadable)?;
                let mut shown = render::run::run_record(&run, &stage_rows(&answer["packages"]));
                if let Some(reason) = &run.reason {
                    shown.push_str(&format!("\nreason: {}\n", escaped(reason)));
                }
                Ok(shown)
            }
            RemoteAction::Logs { id, package, stage, follow } => {
                let path = format!(
                    "/api/runs/{id}/packages/{}/stages/{}/log{}",
                    encode_component(package),
                    encode_component(stage),
                    if *follow { "?follow=true" } else { "" }
                );
                let mut stdout = std::io::stdout().lock();
                // To a terminal, a program's control characters are shown, never obeyed; a pipe gets the bytes.
                let terminal = std::io::IsTerminal::is_terminal(&stdout);
                let mut line = Vec::new();
                server
                    .stream(&path, |bytes| {
                        if !terminal {
                            stdout.write_all(bytes)?;
                            return stdout.flush();
                        }
                        line.extend_from_slice(bytes);
                        while let Some(end) = line.iter().position(|&b| b == b'\n') {
                            let text: Vec<u8> = line.drain(..=end).collect();
                            writeln!(stdout, "{}", escaped(&String::from_utf8_lossy(&text[..end])))?;
                        }
                        stdout.flush()
                    })
                    .await?;
                if !line.is_empty() {
                    let _ = writeln!(stdout, "{}", escaped(String::from_utf8_lossy(&line).as_ref()));
                }
                Ok(String::new())
            }
            RemoteAction::Cancel { id } => {
                let answer = server.post_json(&format!("/api/runs/{id}/cancel"), &json!({})).await?;
                Ok(if json { pretty(&answer) } else { format!("run {id} is being cancelled\n") })
            }
            RemoteAction::Rerun { id, all } => {
                let body = json!({ "packages": if *all { "all" } else { "failed" } });
                let answer = server.post_json(&format!("/api/runs/{id}/rerun"), &body).await?;
                Ok(if json { pretty(&answer) } else { started(&server, &answer) })
            }
            RemoteAction::Trigger { repository, branch, commit, packages, all } => {
                let mut body = json!({ "repository": repository });
                if let Some(branch) = branch {
                    body["branch"] = json!(branch);
                }
                if let Some(commit) = commit {
                    body["commit"] = json!(commit);
                }
                if *all {
                    body["packages"] = json!("all");
                } else if !packages.is_empty() {
                    body["packages"] = json!(packages);
                }
                let answer = server.post_json("/api/runs", &body).await?;
                Ok(if json { pretty(&answer) } else { started(&server, &answer) })
            }
        }
    })?
}

/// `run 8 started: <server>/api/runs/8`.
fn started(server: &LoktarServer, answer: &Value) -> String {
    match answer["run"].as_i64() {
        Some(run) => format!("run {run} started: {}/api/runs/{run}\n", server.url()),
        None => pretty(answer),
    }
}

/// A run's packages as the API shows them, as rows of `loktar runs show`.
fn stage_rows(packages: &Value) -> Vec<StageRow> {
    let text = |value: &Value| value.as_str().map(str::to_string);
    let mut rows = Vec::new();
    for (position, package) in packages.as_array().into_iter().flatten().enumerate() {
        let name = text(&package["name"]).unwrap_or_default();
        let stages = package["stages"].as_array().filter(|stages| !stages.is_empty());
        let Some(stages) = stages else {
            rows.push(StageRow {
                position: position as i64,
                package: name,
                stage: None,
                status: text(&package["status"]).unwrap_or_default(),
                detail: text(&package["detail"]),
                duration_ms: None,
                log: None,
            });
            continue;
        };
        for stage in stages {
            rows.push(StageRow {
                position: position as i64,
                package: name.clone(),
                stage: text(&stage["stage"]),
                status: text(&stage["status"]).unwrap_or_default(),
                detail: text(&stage["detail"]),
                duration_ms: stage["duration_ms"].as_i64(),
                log: text(&stage["log"]),
            });
        }
    }
    rows
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).map_or_else(|_| value.to_string(), |text| text + "\n")
}

fn unreadable(error: serde_json::Error) -> Diagnostic {
    Diagnostic::new(format!("the server's answer is not what Loktar expects: {error}"))
        .hint("is the server the same version of Loktar? `GET /api/health` says its version")
}
