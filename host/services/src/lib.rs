//! The outside services Loktar talks to, each behind a small client that
//! says what failed and the fix: container engines and image registries
//! ([`containers`]), object stores ([`objects`]), GitHub ([`github`]) and
//! Loktar servers ([`loktar_server`], for `loktar remote`), and the `Link`
//! header paginated answers share ([`links`]).
//! Plugins reach them through the runtime's capabilities; planning reads
//! pull requests and commit statuses from GitHub directly.

pub mod containers;
pub mod github;
pub mod links;
pub mod loktar_server;
pub mod objects;

/// An error with its causes, which hyper keeps apart (`connection refused` is a cause).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
