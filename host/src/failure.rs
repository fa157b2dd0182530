//! [`Failure`]: how a host service — an object store, the container engine,
//! a registry, GitHub — says an operation failed: a sentence naming the
//! service and what it was doing, and the obvious fix when there is one.
//! Capabilities hand it to plugins as their WIT `error`.

/// A failed operation of a host service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What failed, naming the service.
    pub message: String,
    /// The obvious fix, if any.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into(), hint: None }
    }

    /// Adds the obvious fix.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
