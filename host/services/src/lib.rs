//! The outside services Loktar reaches on plugins' behalf, each behind a
//! small client that says what failed and the fix: container engines and
//! image registries ([`containers`]), object stores ([`objects`]) and
//! GitHub ([`github`]), and the `Link` header their
//! paginated answers share ([`links`]). Plugins see them through the runtime's capabilities.

pub mod containers;
pub mod github;
pub mod links;
pub mod objects;
