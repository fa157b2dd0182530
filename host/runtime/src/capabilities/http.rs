//! `http`: outbound HTTP through `wasi:http`, to the hosts the host
//! configuration allow-lists for the plugin (`http_hosts`) and nowhere else.
//!
//! A request to any other host — or from a plugin without the capability —
//! is refused before a connection is made, and the refusal is written to the
//! stage log naming the host (never the full URL: a webhook's path is a
//! secret). Requests are not calls of a `Host` trait but go through
//! `wasi:http`'s hooks, so the grant is checked there, in [`AllowList`]'s
//! one `refusal`.

use std::sync::Arc;

use hyper::http::{self, uri::Scheme};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::{Grant, Grants};
use crate::stage_log::{Level, Source, StageLog};
use crate::state::StoreState;
use loktar_settings::{Capability, HttpHost, PluginSettings, Settings};

/// The hosts a plugin may reach.
#[derive(Debug)]
pub(crate) struct HttpGrant {
    /// `http_hosts` under its section (checked when the configuration was read).
    hosts: Vec<HttpHost>,
}

impl Grant for HttpGrant {
    const CAPABILITY: Capability = Capability::Http;

    fn from_settings(_: &str, plugin: &PluginSettings, _: &Settings) -> HttpGrant {
        let hosts = plugin.http_hosts.iter().flatten().filter_map(|entry| HttpHost::parse(entry).ok()).collect();
        HttpGrant { hosts }
    }

    fn of(grants: &Grants) -> Option<&HttpGrant> {
        grants.http.as_ref()
    }
}

/// Where one call's plugin may send requests.
#[derive(Debug)]
pub struct Outbound {
    ctx: WasiHttpCtx,
    rules: AllowList,
}

impl Outbound {
    /// Requests allowed as `grants` say; refusals logged to `log`.
    pub fn new(plugin: &str, grants: Arc<Grants>, log: StageLog) -> Outbound {
        Outbound { ctx: WasiHttpCtx::new(), rules: AllowList { plugin: plugin.to_string(), grants, log } }
    }
}

/// What one call's plugin may reach: nothing without its grant.
#[derive(Debug)]
struct AllowList {
    plugin: String,
    grants: Arc<Grants>,
    log: StageLog,
}

impl AllowList {
    /// Why a request to `uri` is refused, if it is.
    fn refusal(&self, uri: &http::Uri) -> Option<String> {
        let host = uri.host().unwrap_or_default();
        let shown = match uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let Some(grant) = HttpGrant::of(&self.grants) else {
            return Some(format!(
                "plugin `{}` may not make HTTP requests (to `{shown}`): capability `http` is not granted",
                self.plugin
            ));
        };
        if allows(&grant.hosts, uri) {
            return None;
        }
        Some(format!(
            "plugin `{}` may not reach `{shown}`: it is not in `http_hosts` under `[plugins.{}]` in loktar.toml",
            self.plugin, self.plugin
        ))
    }
}

/// Whether an entry of `hosts` matches the request (see [`HttpHost`]).
fn allows(hosts: &[HttpHost], uri: &http::Uri) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let https = uri.scheme() != Some(&Scheme::HTTP);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    hosts.iter().any(|entry| entry.allows(host, port, https))
}

impl WasiHttpHooks for AllowList {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                    HttpError,
                >,
            > + Send,
    > {
        drop(fut);
        if let Some(refusal) = self.refusal(request.uri()) {
            self.log.push(Source::Plugin, Level::Error, &refusal);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (table, outbound) = self.http_parts();
        WasiHttpCtxView { ctx: &mut outbound.ctx, table, hooks: &mut outbound.rules }
    }
}

/// Adds `wasi:http`'s client interfaces to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> http::Uri {
        text.parse().expect("a URI")
    }

    #[test]
    fn hosts_match_by_name_and_port() {
        let hosts: Vec<HttpHost> = ["hooks.slack.com", "127.0.0.1:8080", "[::1]:9000"]
            .into_iter()
            .map(|entry| HttpHost::parse(entry).expect("an entry"))
            .collect();
        assert!(allows(&hosts, &uri("https://hooks.slack.com/services/T/B/X")));
        assert!(allows(&hosts, &uri("http://[::1]:9000/x")), "IPv6 in brackets");
        assert!(!allows(&hosts, &uri("http://[::1]:9001/x")));
        assert!(allows(&hosts, &uri("https://HOOKS.slack.com:443/x")));
        assert!(!allows(&hosts, &uri("https://hooks.slack.com:8443/x")), "another port");
        assert!(!allows(&hosts, &uri("http://hooks.slack.com/x")), "a bare name is HTTPS only");
        assert!(!allows(&hosts, &uri("http://hooks.slack.com:443/x")), "a bare name is HTTPS only");
        assert!(allows(&hosts, &uri("http://127.0.0.1:8080/x")));
        assert!(!allows(&hosts, &uri("http://127.0.0.1:8081/x")));
        assert!(!allows(&hosts, &uri("https://evil.example/hooks.slack.com")));
        assert!(!allows(&hosts, &uri("https://hooks.slack.com.evil.example/")));
    }

    #[test]
    fn refusals_name_the_host_not_the_path() {
        let rules = AllowList {
            plugin: "slack".into(),
            grants: Arc::new(Grants {
                http: Some(HttpGrant { hosts: vec![HttpHost::parse("hooks.slack.com").expect("an entry")] }),
                ..Grants::default()
            }),
            log: StageLog::new(1024, "slack"),
        };
        let refusal = rules.refusal(&uri("https://evil.example:444/services/SECRET")).expect("refused");
        assert_eq!(
            refusal,
            "plugin `slack` may not reach `evil.example:444`: it is not in `http_hosts` under `[plugins.slack]` in loktar.toml"
        );
        let ungranted = AllowList { grants: Arc::default(), ..rules };
        let refusal = ungranted.refusal(&uri("https://hooks.slack.com/services/SECRET")).expect("refused");
        assert!(refusal.contains("capability `http` is not granted"), "{refusal}");
        assert!(!refusal.contains("SECRET"));
    }
}
