//! A client of a Loktar server's REST API (`docs/api.md`), for
//! `loktar remote`: JSON answers read whole, a log streamed as it comes,
//! the API token sent as a bearer token. A refusal becomes a diagnostic
//! carrying the server's own message and hint; an unreachable server says
//! which address was tried.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::error_chain;
use loktar_support::diagnostic::Diagnostic;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Loktar server, reached over HTTP or HTTPS.
#[derive(Clone)]
pub struct LoktarServer {
    /// Its URL, without a trailing slash.
    base: String,
    /// An API token of the server, for the write routes (and reads, without `public_read`).
    token: Option<String>,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Without the token's value.
impl std::fmt::Debug for LoktarServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoktarServer")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

impl LoktarServer {
    /// A client of the server at `url` (`http://…` or `https://…`).
    pub fn new(url: &str, token: Option<String>) -> Result<LoktarServer, Diagnostic> {
        let base = url.trim_end_matches('/').to_string();
        let parsed: hyper::Uri = base.parse().map_err(|e| bad_url(url, &e))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(bad_url(url, &"it is not an http:// or https:// address"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| Diagnostic::new(format!("cannot load the system's certificate authorities: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(LoktarServer { base, token, http: Client::builder(TokioExecutor::new()).build(connector) })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Whether a token would cross a network in clear: `http://` to a host other than this machine.
    pub fn token_in_clear(&self) -> bool {
        let Ok(uri) = self.base.parse::<hyper::Uri>() else { return false };
        let local = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"));
        uri.scheme_str() == Some("http") && !local
    }

    /// `GET path`, answered with JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, Diagnostic> {
        let answer = self.send(Method::GET, path, None).await?;
        self.json_of(path, answer).await
    }

    /// `POST path` with a JSON body, answered with JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, Diagnostic> {
        let body = Full::new(Bytes::from(body.to_string()));
        let answer = self.send(Method::POST, path, Some(("application/json", body))).await?;
        self.json_of(path, answer).await
    }

    /// `PUT path` with `bytes`, answered with JSON.
    pub async fn put_bytes(&self, path: &str, bytes: Bytes) -> Result<Value, Diagnostic> {
        let answer = self.send(Method::PUT, path, Some(("application/octet-stream", Full::new(bytes)))).await?;
        self.json_of(path, answer).await
    }

    /// `GET path`, answered with JSON, or `None` when the server has no such thing (404).
    pub async fn get_json_if_found(&self, path: &str) -> Result<Option<Value>, Diagnostic> {
        let answer = self.request(Method::GET, path, None).await?;
        if answer.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let answer = self.accepted(answer).await?;
        self.json_of(path, answer).await.map(Some)
    }

    /// `GET path`, its body handed to `write` as it arrives (a log followed live).
    pub async fn stream(
        &self,
        path: &str,
        mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), Diagnostic> {
        let mut body = self.send(Method::GET, path, None).await?.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.failed(path, &e))?;
            if let Some(bytes) = frame.data_ref() {
                write(bytes).map_err(|e| Diagnostic::new(format!("cannot write the answer out: {e}")))?;
            }
        }
        Ok(())
    }

    /// Sends a request; an answer other than 2xx is the server's refusal, as a diagnostic.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Full<Bytes>)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Diagnostic> {
        let answer = self.request(method, path, body).await?;
        self.accepted(answer).await
    }

    /// The answer when it is 2xx, else the server's refusal.
    async fn accepted(
        &self,
        answer: hyper::Response<hyper::body::Incoming>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Diagnostic> {
        if answer.status().is_success() {
            return Ok(answer);
        }
        let status = answer.status();
        let text = answer.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Err(refusal(status, &text, self.token.is_some()))
    }

    /// Sends a request; its answer, whatever its status.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Full<Bytes>)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Diagnostic> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some((content_type, body)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| self.failed(path, &e))?;
        self.http.request(request).await.map_err(|e| {
            Diagnostic::new(format!("cannot reach the Loktar server at {}: {}", self.base, error_chain(&e)))
                .hint("check `--server` (or `LOKTAR_SERVER`) and that the server runs")
        })
    }

    async fn json_of(&self, path: &str, answer: hyper::Response<hyper::body::Incoming>) -> Result<Value, Diagnostic> {
        let bytes = answer.into_body().collect().await.map_err(|e| self.failed(path, &e))?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| {
            Diagnostic::new(format!(
                "the server at {} answered `{path}` with something that is not JSON: {e}",
                self.base
            ))
            .hint("is `--server` the address of a Loktar server?")
        })
    }

    fn failed(&self, path: &str, error: &dyn std::error::Error) -> Diagnostic {
        Diagnostic::new(format!("the request `{path}` to {} failed: {}", self.base, error_chain(error)))
    }
}

fn bad_url(url: &str, error: &dyn std::fmt::Display) -> Diagnostic {
    Diagnostic::new(format!("`{url}` is not a server address: {error}"))
        .hint("give the server's URL, as it prints it: `--server http://127.0.0.1:8080`")
}

/// The server's refusal: its `{"error", "hint"}` when it sent one.
fn refusal(status: StatusCode, body: &[u8], had_token: bool) -> Diagnostic {
    let problem: Option<Value> = serde_json::from_slice(body).ok();
    let message = problem.as_ref().and_then(|p| p["error"].as_str()).map(str::to_string);
    let hint = problem.as_ref().and_then(|p| p["hint"].as_str()).map(str::to_string);
    let message = message.unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason given").to_string());
    let diagnostic = Diagnostic::new(format!("the server refused: {message} (HTTP {})", status.as_u16()));
    match status {
        StatusCode::UNAUTHORIZED if !had_token => {
            diagnostic.hint("set `LOKTAR_TOKEN` to one of the server's API tokens (`api_tokens` under `[server]`)")
        }
        _ => match hint {
            Some(hint) => diagnostic.hint(hint),
            None => diagnostic,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_carries_the_server_s_message_and_hint() {
        let body = br#"{"error": "no run 9", "hint": "`GET /api/runs` lists them"}"#;
        let refused = refusal(StatusCode::NOT_FOUND, body, false);
        assert_eq!(refused.message, "the server refused: no run 9 (HTTP 404)");
        assert_eq!(refused.hint.as_deref(), Some("`GET /api/runs` lists them"));
        let unauthorized = refusal(StatusCode::UNAUTHORIZED, br#"{"error": "this route needs an API token"}"#, false);
        assert!(unauthorized.hint.is_some_and(|hint| hint.contains("LOKTAR_TOKEN")));
        assert_eq!(
            refusal(StatusCode::BAD_GATEWAY, b"<html>", true).message,
            "the server refused: Bad Gateway (HTTP 502)"
        );
    }

    #[test]
    fn only_http_addresses_are_servers() {
        assert!(LoktarServer::new("ftp://example.com", None).is_err());
        assert!(LoktarServer::new("127.0.0.1:8080", None).is_err());
        assert_eq!(
            LoktarServer::new("http://127.0.0.1:8080/", None).map(|s| s.url().to_string()).ok().as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }
}
