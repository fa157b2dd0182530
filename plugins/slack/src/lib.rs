//! The `slack` notifier: one message per run — repository, branch, commit,
//! author, each package's outcome and duration, and a link to the run — in
//! Block Kit with a plain-text fallback.
//!
//! Two ways in, chosen in `[plugins.slack.settings]`:
//! - `webhook_secret`: the secret holding an incoming-webhook URL; the
//!   message goes to the webhook's channel.
//! - `token_secret` + `channels`: a bot token, one `chat.postMessage` per
//!   channel (`api_url` defaults to `https://slack.com/api`).
//!
//! `only_on_failure = true` stays quiet about runs that passed. A message
//! Slack rate-limits (429) is sent again after its `Retry-After` (twice at
//! most, waiting 30 s at most). Webhook URLs and tokens are secrets: no
//! message or log line contains them.

use loktar_sdk::http;
use loktar_sdk::prelude::*;
use loktar_sdk::protocol::{EventKind, PackageResult, RunEvent, RunOutcome};
use loktar_sdk::raw::secrets;
use serde_json::{Value, json};

struct Slack;

/// How often a message Slack rate-limited (429) is sent again.
const RATE_LIMIT_RETRIES: u32 = 2;
/// The longest `Retry-After` waited for; longer is an error.
const RATE_LIMIT_MAX_WAIT_SECS: u64 = 30;

/// Slack's limit on the text of one section block.
const SECTION_LIMIT: usize = 3000;
/// Package lines shown before the rest are counted instead.
const PACKAGE_LINES: usize = 200;

impl Notifier for Slack {
    fn describe() -> PluginInfo {
        PluginInfo::new("slack", env!("CARGO_PKG_VERSION"), Role::Notifier).with_capabilities(&[
            Capability::Log,
            Capability::Http,
            Capability::Secrets,
        ])
    }

    fn notify(context: RunContext, event: String) -> Result<(), Error> {
        let event: RunEvent = serde_json::from_str(&event)
            .map_err(|e| Error::new(format!("the host sent an event this plugin cannot read: {e}")))?;
        let EventKind::RunFinished { outcome, duration_ms, packages, nothing_to_run, run_url, .. } = event.kind else {
            return Ok(());
        };
        let settings = Settings::read(&context.settings)?;
        if settings.only_on_failure && outcome == RunOutcome::Passed {
            log::info("the run passed and `only_on_failure` is set: no message");
            return Ok(());
        }
        let finished = Finished { outcome, duration_ms, packages, nothing_to_run, run_url };
        let message = message(&context, &finished);
        match &settings.destination {
            Destination::Webhook { secret } => post_to_webhook(&secrets::get(secret)?, &message),
            Destination::Bot { secret, channels, api_url } => {
                let token = secrets::get(secret)?;
                for channel in channels {
                    post_to_channel(api_url, &token, channel, &message)?;
                }
                Ok(())
            }
        }
    }
}

/// What `[plugins.slack.settings]` says.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    destination: Destination,
    only_on_failure: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Destination {
    Webhook { secret: String },
    Bot { secret: String, channels: Vec<String>, api_url: String },
}

impl Settings {
    fn read(json: &str) -> Result<Settings, Error> {
        let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        let text = |key: &str| value[key].as_str().filter(|t| !t.is_empty()).map(str::to_string);
        let channels: Vec<String> =
            value["channels"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        let destination = match (text("webhook_secret"), text("token_secret")) {
            (Some(secret), None) => Destination::Webhook { secret },
            (None, Some(secret)) if !channels.is_empty() => Destination::Bot {
                secret,
                channels,
                api_url: text("api_url").unwrap_or_else(|| "https://slack.com/api".to_string()),
            },
            (None, Some(_)) => {
                return Err(Error::new("`token_secret` is set but `channels` lists no channel")
                    .with_hint("add `channels = [\"#ci\"]` under `[plugins.slack.settings]` in loktar.toml"));
            }
            (Some(_), Some(_)) => {
                return Err(Error::new("both `webhook_secret` and `token_secret` are set")
                    .with_hint("keep one under `[plugins.slack.settings]`: a webhook, or a bot token with channels"));
            }
            (None, None) => {
                return Err(Error::new("Slack is not configured: no `webhook_secret` or `token_secret`").with_hint(
                    "under `[plugins.slack.settings]` in loktar.toml, set `webhook_secret = \"<secret>\"` \
                     (and grant it: `secrets = [\"<secret>\"]` under `[plugins.slack]`)",
                ));
            }
        };
        Ok(Settings { destination, only_on_failure: value["only_on_failure"].as_bool().unwrap_or(false) })
    }
}

/// Posts to an incoming webhook, which answers `200 ok`.
fn post_to_webhook(url: &str, message: &Value) -> Result<(), Error> {
    let answer = post(url, &[("content-type", "application/json")], &message.to_string())?;
    if answer.status != 200 {
        return Err(Error::new(format!(
            "Slack refused the message: HTTP {} `{}`",
            answer.status,
            answer.body.trim().chars().take(200).collect::<String>()
        ))
        .with_hint("check the webhook in the secret `webhook_secret` names: it may have been revoked"));
    }
    log::info("message posted to the webhook's channel");
    Ok(())
}

/// Posts with `chat.postMessage`, which answers `{"ok": true}` or `{"ok": false, "error": …}`.
fn post_to_channel(api_url: &str, token: &str, channel: &str, message: &Value) -> Result<(), Error> {
    let mut body = message.clone();
    body["channel"] = json!(channel);
    let url = format!("{}/chat.postMessage", api_url.trim_end_matches('/'));
    let authorization = format!("Bearer {token}");
    let headers = [("content-type", "application/json; charset=utf-8"), ("authorization", authorization.as_str())];
    let answer = post(&url, &headers, &body.to_string())?;
    let said: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    if answer.status != 200 || said["ok"] != true {
        let error = said["error"].as_str().unwrap_or("no error given");
        let hint = match error {
            "not_in_channel" | "channel_not_found" => format!("invite the bot to `{channel}`"),
            "invalid_auth" | "not_authed" | "token_revoked" => {
                "check the bot token in the secret `token_secret` names".to_string()
            }
            _ => "see https://api.slack.com/methods/chat.postMessage for the error".to_string(),
        };
        return Err(Error::new(format!("Slack refused the message to `{channel}`: HTTP {} `{error}`", answer.status))
            .with_hint(hint));
    }
    log::info(&format!("message posted to `{channel}`"));
    Ok(())
}

/// Posts `body`; a rate-limited answer (429) is sent again after its `Retry-After`.
fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Result<http::Response, Error> {
    let mut attempt = 0;
    loop {
        let answer = http::post(url, headers, body.as_bytes())?;
        if answer.status != 429 || attempt == RATE_LIMIT_RETRIES {
            return Ok(answer);
        }
        let wait = answer.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(1);
        if wait > RATE_LIMIT_MAX_WAIT_SECS {
            return Ok(answer);
        }
        log::info(&format!("Slack is rate-limiting: sending again in {wait} s"));
        std::thread::sleep(std::time::Duration::from_secs(wait));
        attempt += 1;
    }
}

/// What a `run_finished` event says.
struct Finished {
    outcome: RunOutcome,
    duration_ms: u64,
    packages: Vec<PackageResult>,
    nothing_to_run: Option<String>,
    run_url: Option<String>,
}

/// The message for a finished run: Block Kit blocks and the plain-text fallback.
fn message(context: &RunContext, event: &Finished) -> Value {
    let outcome = event.outcome.name();
    let run = &context.run_id;
    let repository = context.repository_slug().unwrap_or_else(|| "the repository".to_string());
    let branch = context.branch.clone().unwrap_or_else(|| "(detached)".to_string());
    let commit: String = context.commit.chars().take(7).collect();
    let author = context.author.as_deref().map(author_name).unwrap_or("unknown");
    let packages = &event.packages;
    let counted = match &event.nothing_to_run {
        Some(reason) => format!("nothing to build: {reason}"),
        None => counts(packages),
    };
    let title = format!("{} Loktar run {run} {}", outcome_mark(outcome), outcome_word(outcome));
    let fallback = format!(
        "Loktar run {run} {}: {repository} on {branch} ({commit}) by {author} — {counted}",
        outcome_word(outcome)
    );
    let commit_shown = match commit_url(context) {
        Some(url) => format!("<{url}|`{commit}`>"),
        None => format!("`{commit}`"),
    };
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": title } }),
        json!({ "type": "section", "fields": [
            { "type": "mrkdwn", "text": format!("*Repository*\n{}", escape(&repository)) },
            { "type": "mrkdwn", "text": format!("*Branch*\n{}", escape(&branch)) },
            { "type": "mrkdwn", "text": format!("*Commit*\n{commit_shown}") },
            { "type": "mrkdwn", "text": format!("*Author*\n{}", escape(author)) },
        ]}),
    ];
    let mut lines: Vec<String> = packages.iter().take(PACKAGE_LINES).map(package_line).collect();
    if packages.len() > PACKAGE_LINES {
        lines.push(format!("… and {} more", packages.len() - PACKAGE_LINES));
    }
    if lines.is_empty() {
        lines.push(escape(&counted));
    }
    for text in sections(&lines) {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } }));
    }
    let duration = seconds(event.duration_ms);
    blocks.push(json!({ "type": "context", "elements": [
        { "type": "mrkdwn", "text": escape(&format!("{counted} · {duration}")) },
    ]}));
    if let Some(url) = &event.run_url {
        blocks.push(json!({ "type": "actions", "elements": [
            { "type": "button", "text": { "type": "plain_text", "text": "Open the run" }, "url": url },
        ]}));
    }
    json!({ "text": fallback, "blocks": blocks })
}

/// `✅ `pet_api` passed in 3.2 s`
fn package_line(package: &PackageResult) -> String {
    let outcome = package.outcome.name();
    let name = escape(&package.name);
    if outcome == "skipped" {
        format!("{} `{name}` {outcome}", outcome_mark(outcome))
    } else {
        format!("{} `{name}` {outcome} in {}", outcome_mark(outcome), seconds(package.duration_ms))
    }
}

/// Lines joined into section texts under Slack's limit.
fn sections(lines: &[String]) -> Vec<String> {
    let mut sections: Vec<String> = Vec::new();
    for line in lines {
        match sections.last_mut() {
            Some(last) if last.len() + 1 + line.len() <= SECTION_LIMIT => {
                last.push('\n');
                last.push_str(line);
            }
            _ => sections.push(line.chars().take(SECTION_LIMIT).collect()),
        }
    }
    sections
}

/// `3 passed, 1 failed, 2 skipped`
fn counts(packages: &[PackageResult]) -> String {
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for package in packages {
        let outcome = package.outcome.name();
        match counted.iter_mut().find(|(name, _)| *name == outcome) {
            Some((_, count)) => *count += 1,
            None => counted.push((outcome, 1)),
        }
    }
    let parts: Vec<String> = counted.iter().map(|(outcome, count)| format!("{count} {outcome}")).collect();
    if parts.is_empty() { "no packages".to_string() } else { parts.join(", ") }
}

fn outcome_mark(outcome: &str) -> &'static str {
    match outcome {
        "passed" => "✅",
        "failed" => "❌",
        "skipped" => "⏭️",
        "cancelled" | "interrupted" => "⏹️",
        _ => "•",
    }
}

fn outcome_word(outcome: &str) -> &str {
    match outcome {
        "interrupted" => "was interrupted",
        other => other,
    }
}

/// `Jane Doe` from `Jane Doe <jane@example.com>`.
fn author_name(author: &str) -> &str {
    author.split(" <").next().unwrap_or(author).trim()
}

/// The commit's page, for repositories on a web host (`https://host/owner/repo`).
fn commit_url(context: &RunContext) -> Option<String> {
    let url = context.repository_url.as_deref()?;
    let base = url.strip_suffix(".git").unwrap_or(url).trim_end_matches('/');
    let web = base.starts_with("https://") && !base.contains('@');
    (web && !context.commit.is_empty()).then(|| format!("{base}/commit/{}", context.commit))
}

fn seconds(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// Slack's mrkdwn escaping: `&`, `<` and `>`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

loktar_sdk::export!(notifier: Slack);

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RunContext {
        RunContext {
            run_id: "7".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: Some("feature/x".into()),
            base: None,
            default_branch: "main".into(),
            on_default_branch: false,
            commit_time: None,
            repository_url: Some("https://github.com/acme/monorepo.git".into()),
            author: Some("Jane Doe <jane@example.com>".into()),
            settings: "{}".into(),
        }
    }

    #[test]
    fn settings_choose_a_webhook_or_a_bot() {
        let webhook = Settings::read(r#"{"webhook_secret": "hook", "only_on_failure": true}"#).expect("valid");
        assert_eq!(
            webhook,
            Settings { destination: Destination::Webhook { secret: "hook".into() }, only_on_failure: true }
        );
        let bot = Settings::read(r##"{"token_secret": "bot", "channels": ["#ci"]}"##).expect("valid");
        assert_eq!(
            bot.destination,
            Destination::Bot {
                secret: "bot".into(),
                channels: vec!["#ci".into()],
                api_url: "https://slack.com/api".into()
            }
        );
        assert!(Settings::read("{}").err().expect("nothing set").message.contains("not configured"));
        assert!(Settings::read(r#"{"token_secret": "bot"}"#).err().expect("no channel").message.contains("channels"));
        assert!(Settings::read(r#"{"token_secret": "b", "webhook_secret": "w"}"#).is_err());
    }

    #[test]
    fn the_message_names_the_run_and_each_package() {
        use loktar_sdk::protocol::{PackageOutcome, Stage};
        let package = |name: &str, outcome, duration_ms| PackageResult { name: name.into(), outcome, duration_ms };
        let event = Finished {
            outcome: RunOutcome::Failed,
            duration_ms: 4200,
            run_url: Some("https://ci.example.com/runs/7".into()),
            packages: vec![
                package("awesome_lib", PackageOutcome::Passed, 1500),
                package("pet_api", PackageOutcome::Failed { stage: Some(Stage::Test) }, 2500),
                package("web<front>", PackageOutcome::Skipped { dependency: "pet_api".into() }, 0),
            ],
            nothing_to_run: None,
        };
        let message = message(&context(), &event);
        assert_eq!(
            message["text"],
            "Loktar run 7 failed: acme/monorepo on feature/x (0123456) by Jane Doe — 1 passed, 1 failed, 1 skipped"
        );
        let blocks = message["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["text"]["text"], "❌ Loktar run 7 failed");
        assert_eq!(
            blocks[1]["fields"][2]["text"],
            "*Commit*\n<https://github.com/acme/monorepo/commit/0123456789abcdef0123456789abcdef01234567|`0123456`>"
        );
        assert_eq!(
            blocks[2]["text"]["text"],
            "✅ `awesome_lib` passed in 1.5 s\n❌ `pet_api` failed in 2.5 s\n⏭️ `web&lt;front&gt;` skipped"
        );
        assert_eq!(blocks.last().expect("a link")["elements"][0]["url"], "https://ci.example.com/runs/7");
    }

    #[test]
    fn long_package_lists_split_into_sections_under_the_limit() {
        let lines: Vec<String> =
            (0..300).map(|i| format!("✅ `package_with_a_long_name_{i:03}` passed in 1.0 s")).collect();
        let sections = sections(&lines);
        assert!(sections.len() > 1);
        assert!(sections.iter().all(|s| s.len() <= SECTION_LIMIT));
        assert_eq!(sections.iter().map(|s| s.lines().count()).sum::<usize>(), 300);
    }
}
