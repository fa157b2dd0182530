//! Outbound HTTP through `wasi:http` (feature `http`; declare
//! [`Capability::Http`]). The host sends requests only to the hosts its
//! configuration allow-lists for the plugin (`http_hosts`); anything else
//! fails with `HttpRequestDenied` and a line in the stage log.
//!
//! ```ignore
//! let answer = loktar_sdk::http::post("https://hooks.slack.com/services/…", &[("content-type", "application/json")], body)?;
//! ```
//!
//! Messages never contain the URL: webhook URLs are secrets.
//!
//! [`Capability::Http`]: crate::prelude::Capability::Http

use std::io::{Read, Write};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

use crate::prelude::Error;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text (lossily decoded).
    pub body: String,
}

impl Response {
    /// The value of header `name` (lowercase), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// Sends `POST url` with `headers` and `body`.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, Error> {
    request(Method::Post, url, headers, Some(body))
}

/// Sends `GET url` with `headers`.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response, Error> {
    request(Method::Get, url, headers, None)
}

fn request(method: Method, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response, Error> {
    let target = Target::parse(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, &value.as_bytes().to_vec())
            .map_err(|e| failure(format!("header `{name}` cannot be sent: {e:?}"), None))?;
    }
    // A known length rather than a chunked body: some servers want one.
    if let Some(body) = body {
        fields
            .append("content-length", &body.len().to_string().into_bytes())
            .map_err(|e| failure(format!("header `content-length` cannot be sent: {e:?}"), None))?;
    }
    let request = OutgoingRequest::new(fields);
    let refused = |what: &str| failure(format!("the request's {what} was refused"), None);
    request.set_method(&method).map_err(|()| refused("method"))?;
    request.set_scheme(Some(&target.scheme)).map_err(|()| refused("scheme"))?;
    request.set_authority(Some(&target.authority)).map_err(|()| refused("host"))?;
    request.set_path_with_query(Some(&target.path)).map_err(|()| refused("path"))?;
    let outgoing = request.body().map_err(|()| refused("body"))?;
    let sent = outgoing_handler::handle(request, None).map_err(|e| sending_failed(&target, &e))?;
    let written = match body {
        Some(body) => outgoing.write().map_err(|()| refused("body")).and_then(|mut stream| {
            Write::write_all(&mut stream, body)
                .and_then(|()| Write::flush(&mut stream))
                .map_err(|e| failure(format!("sending to `{}` failed: {e}", target.host()), None))
        }),
        None => Ok(()),
    };
    let finished = written.and_then(|()| OutgoingBody::finish(outgoing, None).map_err(|e| sending_failed(&target, &e)));
    sent.subscribe().block();
    // An answer wins over a body that could not be written to the end: the
    // server may have stopped reading once it had what it needed.
    let response = match sent.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(error))) => return Err(sending_failed(&target, &error)),
        Some(Err(())) | None => {
            return Err(finished.err().unwrap_or_else(|| failure(format!("no answer from `{}`", target.host()), None)));
        }
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|()| refused("answer"))?;
    let mut text = Vec::new();
    {
        let mut stream = incoming.stream().map_err(|()| refused("answer"))?;
        stream
            .read_to_end(&mut text)
            .map_err(|e| failure(format!("reading the answer of `{}` failed: {e}", target.host()), None))?;
    }
    Ok(Response { status, headers, body: String::from_utf8_lossy(&text).into_owned() })
}

/// The parts of a URL `wasi:http` takes apart.
struct Target {
    scheme: Scheme,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Error> {
        let invalid = || failure("a URL to send to is not an `http://` or `https://` URL".to_string(), None);
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return Err(invalid()),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid());
        }
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
        Ok(Target { scheme, authority: authority.to_string(), path })
    }

    /// The host and port, which may be shown (the path may be a secret).
    fn host(&self) -> &str {
        &self.authority
    }
}

fn sending_failed(target: &Target, error: &ErrorCode) -> Error {
    match error {
        ErrorCode::HttpRequestDenied => failure(
            format!("Loktar refused the request to `{}`", target.host()),
            Some("allow the host with `http_hosts` under this plugin's section in loktar.toml".to_string()),
        ),
        other => failure(format!("sending to `{}` failed: {other}", target.host()), None),
    }
}

fn failure(message: String, hint: Option<String>) -> Error {
    Error { message, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_apart_into_scheme_host_and_path() {
        let target = Target::parse("https://hooks.slack.com/services/T/B/X").expect("a URL");
        assert!(matches!(target.scheme, Scheme::Https));
        assert_eq!(target.authority, "hooks.slack.com");
        assert_eq!(target.path, "/services/T/B/X");
        let target = Target::parse("http://127.0.0.1:8080?a=1").expect("a URL");
        assert_eq!((target.authority.as_str(), target.path.as_str()), ("127.0.0.1:8080", "/?a=1"));
        assert_eq!(Target::parse("http://127.0.0.1:8080").expect("a URL").path, "/");
        assert!(Target::parse("ftp://x/y").is_err());
        assert!(Target::parse("https://user:pw@x/y").is_err());
        let error = Target::parse("hooks.slack.com/services/SECRET").err().expect("no scheme");
        assert!(!error.message.contains("SECRET"));
    }
}
