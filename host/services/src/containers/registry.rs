//! One image registry of the host configuration, spoken to over the
//! distribution v2 HTTP API: a repository's tags (every page) and a tag's
//! manifest digest. The engine pushes with [`Registry::credentials`].
//!
//! Sign-in is HTTP basic with the configured user and secret, or — when the
//! registry answers `401` with `WWW-Authenticate: Bearer realm=…` (Quay,
//! Docker Hub) — a token fetched from that realm with those credentials.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error_chain;
use crate::links::encode_component;
use loktar_settings::RegistrySettings;
use loktar_support::diagnostic::Diagnostic;

/// The manifest media types a digest is asked for, newest first.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Tags asked for per page.
const PAGE_SIZE: usize = 100;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A registry, ready to be asked.
pub struct Registry {
    name: String,
    base_url: String,
    host: String,
    namespace: String,
    username: Option<String>,
    password: Option<String>,
    password_secret: Option<String>,
    api_url: Option<String>,
    api_token: Option<String>,
    api_token_secret: Option<String>,
    client: OnceLock<Result<HttpClient, String>>,
    tokens: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("name", &self.name).field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// A response whose body has been read.
struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Bytes,
}

impl Registry {
    /// The registry `settings` describe; `secret` reads a named secret.
    pub fn new(name: &str, settings: &RegistrySettings, secret: impl Fn(&str) -> Option<String>) -> Registry {
        let url = settings.url.trim_end_matches('/');
        let (base_url, host) = match url.split_once("://") {
            Some((_, host)) => (url.to_string(), host.to_string()),
            None => (format!("https://{url}"), url.to_string()),
        };
        Registry {
            name: name.to_string(),
            base_url,
            host,
            namespace: settings.namespace.trim_matches('/').to_string(),
            username: settings.username.clone(),
            password: settings.password_secret.as_deref().and_then(&secret),
            password_secret: settings.password_secret.clone(),
            api_url: settings.api_url.as_deref().map(|url| url.trim_end_matches('/').to_string()),
            api_token: settings.api_token_secret.as_deref().and_then(&secret),
            api_token_secret: settings.api_token_secret.clone(),
            client: OnceLock::new(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Where `repository` lives: `<host>/<namespace>/<repository>`.
    pub fn remote(&self, repository: &str) -> String {
        format!("{}/{}/{repository}", self.host, self.namespace)
    }

    /// `<host>/<namespace>`: where its images are.
    pub fn prefix(&self) -> String {
        format!("{}/{}", self.host, self.namespace)
    }

    /// The namespace images go under.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether the host configuration gives the registry's REST API.
    pub fn has_api(&self) -> bool {
        self.api_url.is_some()
    }

    /// Calls the REST API at `path` (after `api_url`) with the API token;
    /// returns the status and body, whatever the status.
    pub async fn api(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), Diagnostic> {
        let base = self.api_url.as_deref().ok_or_else(|| {
            Diagnostic::new(format!("registry `{}` has no REST API in the host configuration", self.name))
                .hint(format!("set `api_url` and `api_token_secret` under `[registries.{}]` in loktar.toml", self.name))
        })?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| Diagnostic::new(format!("`{method}` is not an HTTP method")))?;
        if !path.starts_with('/') {
            return Err(Diagnostic::new(format!("the API path `{path}` does not start with `/`")));
        }
        let url = format!("{base}{path}");
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::USER_AGENT, "loktar")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.api_token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Diagnostic::new(format!("registry `{}`: `{url}` is not a valid URL: {e}", self.name)))?;
        let answer = self.exchange(request, base).await?;
        if answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN {
            let fix = match &self.api_token_secret {
                Some(secret) => format!("check the value of secret `{secret}` and the token's permissions"),
                None => format!("set `api_token_secret` under `[registries.{}]`", self.name),
            };
            return Err(Diagnostic::new(format!(
                "registry `{}` refused the API call `{path}`: HTTP {}",
                self.name,
                answer.status.as_u16()
            ))
            .hint(fix));
        }
        Ok((answer.status.as_u16(), String::from_utf8_lossy(&answer.body).into_owned()))
    }

    /// The credentials the engine pushes with.
    pub fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
            serveraddress: Some(self.host.clone()),
            ..DockerCredentials::default()
        }
    }

    /// Why a push was refused, with the fix, when the engine's message says so.
    pub fn explain_push_failure(&self, error: Diagnostic) -> Diagnostic {
        let lower = error.message.to_lowercase();
        if lower.contains("unauthorized") || lower.contains("authentication required") || lower.contains("denied") {
            return error.hint(self.credentials_hint());
        }
        if lower.contains("connection refused") || lower.contains("no such host") || lower.contains("dial tcp") {
            return error.hint(format!("is the registry running? check `url` under `[registries.{}]`", self.name));
        }
        error
    }

    fn credentials_hint(&self) -> String {
        match &self.password_secret {
            Some(secret) => {
                format!("check `username` under `[registries.{}]` and the value of secret `{secret}`", self.name)
            }
            None => format!("set `username` and `password_secret` under `[registries.{}]`", self.name),
        }
    }

    /// Whether the registry answers as one and takes the credentials —
    /// `GET /v2/` signed in, then the tags of `repository`: read-only calls.
    /// Returns how many tags `repository` has.
    pub async fn check(&self, repository: &str) -> Result<usize, Diagnostic> {
        let path = format!("{}/{repository}", self.namespace);
        let answer = self.send(Method::GET, &format!("{}/v2/", self.base_url), None, &path).await?;
        let refused = answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN;
        if !refused && !answer.headers.contains_key("docker-distribution-api-version") {
            return Err(Diagnostic::new(format!(
                "`{}` does not answer as an image registry: `GET /v2/` gave HTTP {} without `Docker-Distribution-API-Version`",
                self.base_url,
                answer.status.as_u16()
            ))
            .hint(format!("check `url` under `[registries.{}]` in loktar.toml", self.name)));
        }
        self.expect_success(&answer, "signing in (`GET /v2/`)")?;
        Ok(self.tags(repository).await?.len())
    }

    /// The tags of `repository`, every page; empty when the repository does not exist.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, Diagnostic> {
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let path = format!("{}/{repository}", self.namespace);
        let mut url = format!("{}/v2/{path}/tags/list?n={PAGE_SIZE}", self.base_url);
        let mut tags = Vec::new();
        loop {
            let answer = self.send(Method::GET, &url, None, &path).await?;
            if answer.status == StatusCode::NOT_FOUND {
                return Ok(tags);
            }
            self.expect_success(&answer, &format!("listing the tags of `{path}`"))?;
            let page: Page = serde_json::from_slice(&answer.body).map_err(|e| {
                Diagnostic::new(format!("registry `{}` sent a tag list that is not JSON: {e}", self.name))
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match crate::links::next_page(&answer.headers) {
                Some(next) if next.starts_with('/') => url = format!("{}{next}", self.base_url),
                Some(next) => url = next,
                None => return Ok(tags),
            }
        }
    }

    /// The manifest digest of `repository:tag`, `None` when the tag does not exist.
    pub async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>, Diagnostic> {
        let path = format!("{}/{repository}", self.namespace);
        let url = format!("{}/v2/{path}/manifests/{tag}", self.base_url);
        let answer = self.send(Method::HEAD, &url, Some(MANIFEST_TYPES), &path).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.expect_success(&answer, &format!("reading the manifest of `{path}:{tag}`"))?;
        let digest = answer.headers.get("docker-content-digest").and_then(|v| v.to_str().ok()).ok_or_else(|| {
            Diagnostic::new(format!("registry `{}` did not say the digest of `{path}:{tag}`", self.name))
        })?;
        Ok(Some(digest.to_string()))
    }

    fn expect_success(&self, answer: &Answer, what: &str) -> Result<(), Diagnostic> {
        if answer.status.is_success() {
            return Ok(());
        }
        let error = Diagnostic::new(format!(
            "registry `{}` refused {what}: HTTP {}{}",
            self.name,
            answer.status.as_u16(),
            registry_message(&answer.body).map(|m| format!(" ({m})")).unwrap_or_default()
        ));
        Err(match answer.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => error.hint(self.credentials_hint()),
            _ => error,
        })
    }

    fn client(&self) -> Result<&HttpClient, Diagnostic> {
        let client = self.client.get_or_init(|| {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
                .map_err(|e| format!("cannot load the system's certificate authorities: {e}"))?
                .https_or_http()
                .enable_http1()
                .build();
            Ok(Client::builder(TokioExecutor::new()).build(connector))
        });
        client.as_ref().map_err(|e| Diagnostic::new(e.clone()))
    }

    /// Sends a request signed in for pulling `path`, answering a bearer challenge once.
    async fn send(&self, method: Method, url: &str, accept: Option<&str>, path: &str) -> Result<Answer, Diagnostic> {
        let scope = format!("repository:{path}:pull");
        let cached = self.tokens.lock().unwrap_or_else(PoisonError::into_inner).get(&scope).cloned();
        let authorization = cached.map(|token| format!("Bearer {token}")).or_else(|| self.basic());
        let answer = self.request(method.clone(), url, accept, authorization.as_deref()).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        let Some(challenge) = bearer_challenge(&answer.headers) else {
            return Ok(answer);
        };
        let token = self.token(&challenge, &scope).await?;
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).insert(scope, token.clone());
        self.request(method, url, accept, Some(&format!("Bearer {token}"))).await
    }

    fn basic(&self) -> Option<String> {
        let user = self.username.as_deref()?;
        let password = self.password.as_deref().unwrap_or_default();
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
    }

    /// A token from the realm of a bearer challenge.
    async fn token(&self, challenge: &HashMap<String, String>, scope: &str) -> Result<String, Diagnostic> {
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let realm = challenge.get("realm").ok_or_else(|| {
            Diagnostic::new(format!("registry `{}` asked for a token without saying where from", self.name))
        })?;
        let mut url =
            format!("{realm}?scope={}", encode_component(challenge.get("scope").map_or(scope, String::as_str)));
        if let Some(service) = challenge.get("service") {
            url.push_str(&format!("&service={}", encode_component(service)));
        }
        let answer = self.request(Method::GET, &url, None, self.basic().as_deref()).await?;
        self.expect_success(&answer, "to sign in")?;
        let token: Token = serde_json::from_slice(&answer.body).map_err(|e| {
            Diagnostic::new(format!("registry `{}` sent a sign-in answer that is not JSON: {e}", self.name))
        })?;
        token
            .token
            .or(token.access_token)
            .ok_or_else(|| Diagnostic::new(format!("registry `{}` sent a sign-in answer without a token", self.name)))
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Answer, Diagnostic> {
        let mut request = Request::builder().method(method).uri(url).header(header::USER_AGENT, "loktar");
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| Diagnostic::new(format!("registry `{}`: `{url}` is not a valid URL: {e}", self.name)))?;
        self.exchange(request, &self.base_url).await
    }

    /// Sends a request to the server at `base` and reads the whole answer.
    async fn exchange(&self, request: Request<Full<Bytes>>, base: &str) -> Result<Answer, Diagnostic> {
        let key = if base == self.base_url { "url" } else { "api_url" };
        let unreachable = |e: &dyn std::fmt::Display| {
            Diagnostic::new(format!("cannot reach registry `{}` at `{base}`: {e}", self.name))
                .hint(format!("is it running? check `{key}` under `[registries.{}]` in loktar.toml", self.name))
        };
        let response = self.client()?.request(request).await.map_err(|e| unreachable(&error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| unreachable(&e))?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

/// The parameters of a `WWW-Authenticate: Bearer …` challenge.
fn bearer_challenge(headers: &header::HeaderMap) -> Option<HashMap<String, String>> {
    let value = headers.get(header::WWW_AUTHENTICATE)?.to_str().ok()?;
    let params = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    let mut found = HashMap::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        found.insert(key, value.to_string());
        rest = remaining.trim_start_matches(',').trim();
    }
    Some(found)
}

/// The first message of a registry's JSON error body (`{"errors":[{"message":…}]}`).
fn registry_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("errors")?.get(0)?.get("message")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed() {
        let mut headers = header::HeaderMap::new();
        headers.insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(
                r#"Bearer realm="https://quay.io/v2/auth",service="quay.io",scope="repository:org/app:pull""#,
            ),
        );
        let found = bearer_challenge(&headers).expect("a bearer challenge");
        assert_eq!(found["realm"], "https://quay.io/v2/auth");
        assert_eq!(found["service"], "quay.io");
        assert_eq!(found["scope"], "repository:org/app:pull");
    }

    #[test]
    fn urls_without_a_scheme_are_https() {
        let settings = RegistrySettings {
            url: "quay.io".into(),
            namespace: "acme".into(),
            username: None,
            password_secret: None,
            api_url: None,
            api_token_secret: None,
        };
        let registry = Registry::new("quay", &settings, |_| None);
        assert_eq!(registry.base_url, "https://quay.io");
        assert_eq!(registry.remote("app"), "quay.io/acme/app");
    }
}
