//! What the server answers when a request cannot be served: a status code
//! and a JSON body `{"error": "...", "hint": "..."}` that says what was
//! wrong and how to fix it, as the command line's diagnostics do.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::diagnostic::Diagnostic;

/// A refused request.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    diagnostic: Diagnostic,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Problem {
        Problem { status, diagnostic: Diagnostic::new(message) }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.diagnostic = self.diagnostic.hint(hint);
        self
    }

    /// The server's own failure (its store, its disk): `500`; the details
    /// (paths of the server's files) go to its log, not to the caller.
    pub(crate) fn internal(diagnostic: Diagnostic) -> Problem {
        tracing::error!("{diagnostic}");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server failed; its log says why")
    }

    /// `400` for a query string the route cannot read; `hint` says what it takes.
    pub(crate) fn bad_query(rejection: &axum::extract::rejection::QueryRejection, hint: &str) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, format!("bad query: {}", rejection.body_text())).hint(hint)
    }

    /// `404` for a path no route serves.
    pub(crate) async fn no_route(uri: axum::http::Uri) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, format!("no route `{}`", uri.path()))
            .hint("docs/api.md lists the routes: `/hooks/github` and `/api/…`")
    }

    /// `405` for a route asked with another method.
    pub(crate) async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
        Problem::new(StatusCode::METHOD_NOT_ALLOWED, format!("`{}` does not take `{method}`", uri.path()))
            .hint("docs/api.md says which method each route takes")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.diagnostic.message });
        if let Some(hint) = self.diagnostic.hint {
            body["hint"] = hint.into();
        }
        (self.status, Json(body)).into_response()
    }
}
