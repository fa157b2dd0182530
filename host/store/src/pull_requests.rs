//! The pull requests a server knows of, per repository: whether they are
//! open, the head their latest run planned, when they were opened, the
//! packages that run planned, the server's comment on them and what it last
//! said of their collisions with earlier ones (so that a comment is edited
//! in place — also after a pull request is reopened — and said again only
//! when it changes).

use super::RunStore;
use loktar_support::diagnostic::Diagnostic;

/// An open pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPullRequest {
    /// Its number.
    pub number: i64,
    /// Its head commit.
    pub head: String,
    /// When it was opened (RFC 3339, as GitHub writes it): earlier ones sort first.
    pub created_at: String,
    /// The packages its latest run planned; `None` before its first run.
    pub affected: Option<Vec<String>>,
    /// The id of the comment the server keeps on it, once posted.
    pub comment: Option<i64>,
    /// What the server last reported of it, and for which head.
    pub reported: Option<(String, String)>,
}

impl RunStore {
    /// Records that pull request `number` of `repository` is open (at
    /// `head` when it is new), opened at `created_at`; what was known of it stays.
    pub fn open_pull_request(
        &self,
        repository: &str,
        number: i64,
        head: &str,
        created_at: &str,
    ) -> Result<(), Diagnostic> {
        self.execute(
            "INSERT INTO pull_requests (repository, number, head, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repository, number) DO UPDATE SET closed = 0",
            &[&repository, &number, &head, &created_at],
        )
        .map(drop)
    }

    /// Pull request `number` was closed: it is no longer open (its comment is kept, should it reopen).
    pub fn close_pull_request(&self, repository: &str, number: i64) -> Result<(), Diagnostic> {
        self.execute(
            "UPDATE pull_requests SET closed = 1 WHERE repository = $1 AND number = $2",
            &[&repository, &number],
        )
        .map(drop)
    }

    /// Keeps the head the latest run of pull request `number` planned, and its packages.
    pub fn set_affected(
        &self,
        repository: &str,
        number: i64,
        head: &str,
        affected: &[String],
    ) -> Result<(), Diagnostic> {
        let affected = serde_json::to_string(affected).map_err(|e| Diagnostic::new(e.to_string()))?;
        self.execute(
            "UPDATE pull_requests SET head = $3, affected = $4 WHERE repository = $1 AND number = $2",
            &[&repository, &number, &head, &affected],
        )
        .map(drop)
    }

    /// Keeps the id of the server's comment on pull request `number` (none: it was deleted).
    pub fn set_comment(&self, repository: &str, number: i64, comment: Option<i64>) -> Result<(), Diagnostic> {
        self.execute(
            "UPDATE pull_requests SET comment = $3 WHERE repository = $1 AND number = $2",
            &[&repository, &number, &comment],
        )
        .map(drop)
    }

    /// Keeps what was reported of pull request `number` at `head`.
    pub fn set_reported(&self, repository: &str, number: i64, head: &str, text: &str) -> Result<(), Diagnostic> {
        self.execute(
            "UPDATE pull_requests SET reported_head = $3, reported = $4 WHERE repository = $1 AND number = $2",
            &[&repository, &number, &head, &text],
        )
        .map(drop)
    }

    /// The open pull requests of `repository`, earliest opened first.
    pub fn open_pull_requests(&self, repository: &str) -> Result<Vec<OpenPullRequest>, Diagnostic> {
        self.query_map(
            "SELECT number, head, created_at, affected, comment, reported_head, reported FROM pull_requests
             WHERE repository = $1 AND closed = 0 ORDER BY created_at, number",
            &[&repository],
            |row| {
                let affected: Option<String> = row.get(3)?;
                let reported: (Option<String>, Option<String>) = (row.get(5)?, row.get(6)?);
                Ok(OpenPullRequest {
                    number: row.get(0)?,
                    head: row.get(1)?,
                    created_at: row.get(2)?,
                    affected: affected.and_then(|text| serde_json::from_str(&text).ok()),
                    comment: row.get(4)?,
                    reported: match reported {
                        (Some(head), Some(text)) => Some((head, text)),
                        _ => None,
                    },
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_pull_requests_are_kept_in_the_order_they_were_opened() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RunStore::open_file(&dir.path().join("loktar.db")).expect("store");
        store.open_pull_request("acme/shop", 7, "b7", "2026-12-07T10:00:00Z").expect("open");
        store.open_pull_request("acme/shop", 3, "a3", "2026-12-06T10:00:00Z").expect("open");
        store.open_pull_request("acme/other", 1, "c1", "2026-12-01T10:00:00Z").expect("open");
        store.set_affected("acme/shop", 3, "a3", &["lib".to_string(), "app".to_string()]).expect("affected");
        store.set_comment("acme/shop", 3, Some(42)).expect("comment");
        store.set_reported("acme/shop", 3, "a3", "text").expect("reported");
        // Its event again: what was known stays; the head moves when its next run plans.
        store.open_pull_request("acme/shop", 3, "a4", "ignored").expect("again");
        let open = store.open_pull_requests("acme/shop").expect("list");
        assert_eq!(open.iter().map(|pull| pull.number).collect::<Vec<_>>(), [3, 7]);
        assert_eq!(open[0].head, "a3");
        assert_eq!(open[0].affected.as_deref(), Some(&["lib".to_string(), "app".to_string()][..]));
        assert_eq!((open[0].comment, open[0].reported.clone()), (Some(42), Some(("a3".into(), "text".into()))));
        assert_eq!(open[1].affected, None);
        store.close_pull_request("acme/shop", 3).expect("close");
        let open = store.open_pull_requests("acme/shop").expect("list");
        assert_eq!(open.iter().map(|pull| (pull.number, pull.head.as_str())).collect::<Vec<_>>(), [(7, "b7")]);
        // Reopened: its comment is still the one to edit.
        store.open_pull_request("acme/shop", 3, "a5", "ignored").expect("reopen");
        let open = store.open_pull_requests("acme/shop").expect("list");
        assert_eq!(open[0].comment, Some(42));
    }
}
