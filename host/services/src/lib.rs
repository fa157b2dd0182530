//! The outside services Loktar talks to, each behind a small client that
//! says what failed and the fix: container engines and image registries
//! ([`containers`]), object stores ([`objects`]) and GitHub ([`github`]),
//! and the `Link` header their paginated answers share ([`links`]).
//! Plugins reach them through the runtime's capabilities; planning reads
//! pull requests and commit statuses from GitHub directly.

pub mod containers;
pub mod github;
pub mod links;
pub mod objects;
