//! The GitHub REST API through octocrab, for plugins with the `github`
//! capability (commit statuses, comments) and for Loktar's own reads.
//!
//! - Authentication from named secrets (`[github]`): a token, or a GitHub
//!   App acting as one of its installations; GitHub Enterprise through
//!   `api_url`. Plugins never see the credentials.
//! - Retries: a 5xx answer is tried again after `Retry-After` (else 1, 2,
//!   4… s); a rate limit (403/429 with `X-RateLimit-Remaining: 0`, or a
//!   secondary limit with `Retry-After`) is waited out until
//!   `X-RateLimit-Reset`, up to `max_wait_secs`.
//! - Pagination: a GET answered with a JSON array follows `Link:
//!   rel="next"` and merges every page into one array.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap};
use octocrab::Octocrab;
use tokio::sync::OnceCell;

use loktar_settings::{GithubSettings, Settings};
use loktar_support::diagnostic::Diagnostic;

/// The longest pause between two tries after a 5xx answer without `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A REST answer: its status and body (every page merged for paginated GETs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// GitHub as the host configuration describes it, signed in on first use.
pub struct Github {
    settings: GithubSettings,
    token: Option<String>,
    app_key: Option<String>,
    client: OnceCell<Octocrab>,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github").field("api_url", &self.settings.api_url).finish_non_exhaustive()
    }
}

impl Github {
    /// GitHub per `settings`, the secrets read from their variables now.
    pub fn from_settings(settings: &Settings) -> Github {
        let secret = |name: &Option<String>| settings.secret_value(name.as_deref()?);
        let (token, app_key) = (secret(&settings.github.token_secret), secret(&settings.github.app_key_secret));
        Github::new(settings.github.clone(), token, app_key)
    }

    /// GitHub per `settings` with the values of its secrets: the token, or the App's key.
    pub fn new(settings: GithubSettings, token: Option<String>, app_key: Option<String>) -> Github {
        Github { settings, token, app_key, client: OnceCell::new() }
    }

    async fn client(&self) -> Result<&Octocrab, Diagnostic> {
        self.client.get_or_try_init(|| async { self.sign_in() }).await
    }

    fn sign_in(&self) -> Result<Octocrab, Diagnostic> {
        let settings = &self.settings;
        let invalid = |e: &dyn std::fmt::Display| {
            Diagnostic::new(format!("cannot set up the GitHub client for `{}`: {e}", settings.api_url))
                .hint("check `api_url` under `[github]` in loktar.toml")
        };
        let builder = Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| invalid(&e))?
            .add_header(header::ACCEPT, "application/vnd.github+json".to_string())
            .add_header(header::HeaderName::from_static("x-github-api-version"), "2022-11-28".to_string());
        match (&self.token, settings.app_id, &self.app_key, settings.installation_id) {
            (_, Some(app), Some(key), Some(installation)) => {
                let key = octocrab::EncodingKey::from_rsa_pem(key.as_bytes()).map_err(|e| {
                    Diagnostic::new(format!("the GitHub App key is not an RSA private key in PEM: {e}"))
                        .hint("put the App's private key (`-----BEGIN RSA PRIVATE KEY-----…`) in the secret `app_key_secret` names")
                })?;
                let app = builder.app(app.into(), key).build().map_err(|e| invalid(&e))?;
                app.installation(installation.into()).map_err(|e| invalid(&e))
            }
            (Some(token), _, _, _) => builder.personal_token(token.clone()).build().map_err(|e| invalid(&e)),
            _ => Err(Diagnostic::new("Loktar has no GitHub credentials").hint(
                "set `token_secret` (or `app_id`, `app_key_secret` and `installation_id`) under `[github]` in loktar.toml, \
                 and the secret's variable",
            )),
        }
    }

    /// The REST API's base URL.
    pub fn api_url(&self) -> &str {
        &self.settings.api_url
    }

    /// A token git fetches with over HTTPS (as `x-access-token`): the
    /// configured token, or a fresh installation token of the App (octocrab
    /// keeps it while it is valid); `None` without credentials.
    pub async fn git_token(&self) -> Result<Option<String>, Diagnostic> {
        use octocrab::secrecy::ExposeSecret;
        let settings = &self.settings;
        match (&self.token, settings.app_id, &self.app_key, settings.installation_id) {
            (_, Some(_), Some(_), Some(_)) => {
                let token = self.client().await?.installation_token().await.map_err(|e| {
                    Diagnostic::new(format!("cannot get an installation token of the GitHub App: {e}"))
                        .hint("check `app_id`, `installation_id` and the key under `[github]` in loktar.toml")
                })?;
                Ok(Some(token.expose_secret().to_string()))
            }
            (Some(token), _, _, _) => Ok(Some(token.clone())),
            _ => Ok(None),
        }
    }

    /// Calls `method path` (a path after `api_url`, or a full URL GitHub gave)
    /// with an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<Answer, Diagnostic> {
        let method = method.to_ascii_uppercase();
        let body: Option<serde_json::Value> = match body {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| Diagnostic::new(format!("the body of `{method} {path}` is not JSON: {e}")))?,
            ),
            None => None,
        };
        let client = self.client().await?;
        let (status, headers, text) = self.send(client, &method, path, body.as_ref()).await?;
        let mut next = crate::links::next_page(&headers);
        if method != "GET" || next.is_none() || !(200..300).contains(&status) {
            return Ok(Answer { status, body: text });
        }
        let mut merged = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(items)) => items,
            _ => return Ok(Answer { status, body: text }),
        };
        while let Some(url) = next {
            let (page_status, headers, text) = self.send(client, &method, &url, None).await?;
            if !(200..300).contains(&page_status) {
                return Ok(Answer { status: page_status, body: text });
            }
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Array(items)) => merged.extend(items),
                _ => return Err(Diagnostic::new(format!("page `{url}` of a paginated answer is not a JSON array"))),
            }
            next = crate::links::next_page(&headers);
        }
        Ok(Answer { status, body: serde_json::Value::Array(merged).to_string() })
    }

    /// `GET path` and every page after it (`Link: rel="next"`), each page's
    /// JSON as it came — for answers that are objects holding a list, such as
    /// a comparison's commits. Anything but a 2xx answer is an error.
    pub async fn pages(&self, path: &str) -> Result<Vec<serde_json::Value>, Diagnostic> {
        let client = self.client().await?;
        let mut pages = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(url) = next {
            let (status, headers, text) = self.send(client, "GET", &url, None).await?;
            if !(200..300).contains(&status) {
                let said: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let message = said["message"].as_str().unwrap_or("no message");
                return Err(Diagnostic::new(format!("GitHub answered `GET {url}` with HTTP {status} ({message})"))
                    .hint("check the repository, the number, and that the credentials under `[github]` may read it"));
            }
            pages.push(
                serde_json::from_str(&text)
                    .map_err(|e| Diagnostic::new(format!("GitHub's answer to `GET {url}` is not JSON: {e}")))?,
            );
            next = crate::links::next_page(&headers);
        }
        Ok(pages)
    }

    /// One request, tried again after 5xx answers and rate limits.
    async fn send(
        &self,
        client: &Octocrab,
        method: &str,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, HeaderMap, String), Diagnostic> {
        let mut attempt = 0;
        loop {
            let response = match method {
                "GET" => client._get(url).await,
                "POST" => client._post(url, body).await,
                "PATCH" => client._patch(url, body).await,
                "PUT" => client._put(url, body).await,
                "DELETE" => client._delete(url, body).await,
                other => return Err(Diagnostic::new(format!("`{other}` is not a method Loktar sends to GitHub"))),
            }
            .map_err(|e| self.unreachable(&e))?;
            let (parts, body) = response.into_parts();
            let text = body.collect().await.map_err(|e| self.unreachable(&e))?.to_bytes();
            let status = parts.status.as_u16();
            match retry_after(status, &parts.headers, attempt) {
                Some(wait) if attempt < self.settings.retries => {
                    if wait > Duration::from_secs(self.settings.max_wait_secs) {
                        return Err(Diagnostic::new(format!(
                            "GitHub's rate limit for `{method} {url}` resets in {} s, longer than Loktar waits",
                            wait.as_secs()
                        ))
                        .hint("raise `max_wait_secs` under `[github]`, or use a GitHub App, whose limits are higher"));
                    }
                    tracing::debug!(status, wait = ?wait, "GitHub asked to try again later");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Ok((status, parts.headers, String::from_utf8_lossy(&text).into_owned())),
            }
        }
    }

    fn unreachable(&self, error: &dyn std::fmt::Display) -> Diagnostic {
        Diagnostic::new(format!("calling GitHub at `{}` failed: {error}", self.settings.api_url))
            .hint("check the network, `api_url` under `[github]` in loktar.toml, and the credentials")
    }
}

/// How long to wait before trying again, when the answer says to.
fn retry_after(status: u16, headers: &HeaderMap, attempt: u32) -> Option<Duration> {
    let number =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let retry_after = number("retry-after").map(Duration::from_secs);
    match status {
        500..=599 => Some(retry_after.unwrap_or_else(|| Duration::from_secs(1u64 << attempt.min(5)).min(MAX_BACKOFF))),
        403 | 429 => {
            if let Some(wait) = retry_after {
                return Some(wait);
            }
            if number("x-ratelimit-remaining") != Some(0) {
                return None;
            }
            let reset = number("x-ratelimit-reset")?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
            Some(Duration::from_secs(reset.saturating_sub(now) + 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_wait_until_the_reset_and_5xx_back_off() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(502, &headers, 0), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(503, &headers, 2), Some(Duration::from_secs(4)));
        assert_eq!(retry_after(403, &headers, 0), None, "a plain 403 is a refusal, not a limit");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        headers.insert("x-ratelimit-remaining", "0".parse().expect("header"));
        headers.insert("x-ratelimit-reset", (now + 9).to_string().parse().expect("header"));
        let wait = retry_after(403, &headers, 0).expect("a wait");
        assert!((9..=10).contains(&wait.as_secs()), "{wait:?}");
        headers.insert("retry-after", "3".parse().expect("header"));
        assert_eq!(retry_after(429, &headers, 0), Some(Duration::from_secs(3)));
    }
}
