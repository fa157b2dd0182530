//! The store in PostgreSQL, for servers scaled out (`[server] database =
//! "postgres://…"`): one pool of connections per server (a connection that
//! broke, as when PostgreSQL restarts, is replaced), the schema made and
//! versioned under a lock so that servers started at once agree, and the
//! store's statements run through `sqlx` on the server's runtime.
//!
//! The store's methods are synchronous, as SQLite's are: a session blocks
//! its thread on the runtime's handle while PostgreSQL answers, so it is
//! used where blocking is allowed (`spawn_blocking`, the events thread),
//! never on the runtime's workers.

use std::cell::RefCell;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Column as _, Row as _, TypeInfo as _};
use tokio::runtime::Handle;

use crate::sql::{Cell, Lock, Param, Row, SqlError};
use loktar_support::diagnostic::Diagnostic;

/// The version of the schema below; a database of a later one was made by a newer Loktar.
const SCHEMA_VERSION: i64 = 1;

/// The advisory lock (`pg_advisory_xact_lock`) that numbers runs and makes the schema.
const NUMBERING_LOCK: i64 = 0x6c6f_6b74_6172; // "loktar"

/// Connections at most, across the server's requests and its runs' records.
const MAX_CONNECTIONS: u32 = 16;

/// How long a statement waits for a connection (PostgreSQL down, or every one busy).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL database holding a store: shared by every store opened on it.
#[derive(Clone)]
pub struct PostgresDatabase {
    pool: sqlx::PgPool,
    runtime: Handle,
    shown: String,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PostgresDatabase").field(&self.shown).finish()
    }
}

impl PostgresDatabase {
    /// Connects to the database at `url` (`postgres://USER@HOST:PORT/DATABASE`,
    /// with libpq's parameters such as `sslmode`), with `password` when
    /// given, and brings it to this schema. Runs on the current runtime,
    /// which must have worker threads: its stores' statements run there.
    pub async fn connect(url: &str, password: Option<&str>) -> Result<PostgresDatabase, Diagnostic> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            Diagnostic::new(format!("`database` under `[server]` is not a PostgreSQL URL: {e}"))
                .hint("write it as `postgres://USER@HOST:PORT/DATABASE`, the password in `database_password`")
        })?;
        let shown = shown_url(&options);
        let options = match password {
            Some(password) => options.password(password),
            None => options,
        }
        .application_name("loktar");
        let unreachable = |e: sqlx::Error| {
            Diagnostic::new(format!("run store {shown}: {e}")).hint(
                "start PostgreSQL there, or correct `database` (and `database_password`) under `[server]`; \
                 the user needs to create tables in that database",
            )
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.map_err(unreachable)?;
        let version: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM loktar_schema").fetch_one(&pool).await.map_err(unreachable)?;
        if version > SCHEMA_VERSION {
            return Err(Diagnostic::new(format!(
                "run store {shown}: its schema is version {version}, made by a newer Loktar; this one knows {SCHEMA_VERSION}"
            ))
            .hint("run the newer Loktar, or give this one a database of its own"));
        }
        Ok(PostgresDatabase { pool, runtime: Handle::current(), shown })
    }

    /// Where it is, without its password: for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A session on it, for one store.
    pub(crate) fn session(&self) -> Session {
        Session { database: self.clone(), transaction: RefCell::new(None) }
    }
}

/// `postgres://user@host:port/database`: what a message may show of where the store is.
fn shown_url(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    format!("postgres://{}@{}:{}/{database}", options.get_username(), options.get_host(), options.get_port())
}

/// One store's use of the database: statements on any free connection of
/// the pool, or on the one its open transaction holds.
pub(crate) struct Session {
    database: PostgresDatabase,
    transaction: RefCell<Option<sqlx::Transaction<'static, sqlx::Postgres>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("database", &self.database).finish_non_exhaustive()
    }
}

impl Session {
    /// Runs `work` on the open transaction's connection, else on one of the pool's.
    fn on_connection<T>(
        &self,
        work: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, SqlError> {
        let mut transaction = self.transaction.borrow_mut();
        let result = self.database.runtime.block_on(async {
            match transaction.as_mut() {
                Some(transaction) => work(transaction).await,
                None => work(&mut *self.database.pool.acquire().await?).await,
            }
        });
        Ok(result?)
    }

    pub(crate) fn execute(&self, sql: &str, params: Vec<Param>) -> Result<u64, SqlError> {
        self.on_connection(async |connection| Ok(bound(sql, params).execute(connection).await?.rows_affected()))
    }

    pub(crate) fn query(&self, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, SqlError> {
        let rows = self.on_connection(async |connection| bound(sql, params).fetch_all(connection).await)?;
        rows.iter().map(cells).collect()
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.transaction.borrow().is_some()
    }

    pub(crate) fn begin(&self, lock: Lock) -> Result<(), SqlError> {
        let transaction = self.database.runtime.block_on(self.database.pool.begin())?;
        *self.transaction.borrow_mut() = Some(transaction);
        self.lock(lock)
    }

    /// Takes `lock` in the open transaction, until it ends.
    pub(crate) fn lock(&self, lock: Lock) -> Result<(), SqlError> {
        match lock {
            Lock::Rows => Ok(()),
            Lock::Numbering => {
                self.execute("SELECT pg_advisory_xact_lock($1)", vec![Param::Int(Some(NUMBERING_LOCK))]).map(drop)
            }
        }
    }

    pub(crate) fn end(&self, commit: bool) -> Result<(), SqlError> {
        let Some(transaction) = self.transaction.borrow_mut().take() else { return Ok(()) };
        let ended = self
            .database
            .runtime
            .block_on(async { if commit { transaction.commit().await } else { transaction.rollback().await } });
        Ok(ended?)
    }
}

/// A transaction still open is rolled back: the connection goes back to the
/// pool, which works on the runtime — entered here, without blocking.
impl Drop for Session {
    fn drop(&mut self) {
        if let Some(transaction) = self.transaction.get_mut().take() {
            let _entered = self.database.runtime.enter();
            drop(transaction);
        }
    }
}

/// `sql` with `params` bound, in their order.
fn bound(sql: &str, params: Vec<Param>) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    // The store's own statements: every value in them is bound, never written in.
    let mut query = sqlx::query(AssertSqlSafe(sql.to_string()));
    for param in params {
        query = match param {
            Param::Int(value) => query.bind(value),
            Param::Text(value) => query.bind(value),
        };
    }
    query
}

/// A row's cells, by the types the schema gives them.
fn cells(row: &PgRow) -> Result<Row, SqlError> {
    let cell = |index: usize, type_name: &str| -> Result<Cell, SqlError> {
        let cell = match type_name {
            "INT8" => row.try_get::<Option<i64>, _>(index)?.map(Cell::Int),
            "INT4" => row.try_get::<Option<i32>, _>(index)?.map(|value| Cell::Int(value.into())),
            "TEXT" | "VARCHAR" => row.try_get::<Option<String>, _>(index)?.map(Cell::Text),
            "VOID" => None,
            other => return Err(SqlError::Column { index, wanted: "an integer or text", found: other.to_string() }),
        };
        Ok(cell.unwrap_or(Cell::Null))
    };
    let cells = row.columns().iter().map(|column| cell(column.ordinal(), column.type_info().name()));
    Ok(Row(cells.collect::<Result<_, _>>()?))
}

/// The schema, made once under the numbering lock (servers starting at once
/// wait for each other), in one implicit transaction. Integers are `BIGINT`
/// (Rust's `i64`); dates kept as text sort by code point (`"C"`), whatever
/// the database's locale.
const SCHEMA: &str = r#"
SELECT pg_advisory_xact_lock(119225799958898);
CREATE TABLE IF NOT EXISTS loktar_schema (version BIGINT NOT NULL);
INSERT INTO loktar_schema (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM loktar_schema);
CREATE TABLE IF NOT EXISTS runs (
    id           BIGINT PRIMARY KEY,
    started_ms   BIGINT NOT NULL,
    duration_ms  BIGINT,
    status       TEXT NOT NULL,
    selection    TEXT NOT NULL,
    head         TEXT,
    base         TEXT,
    branch       TEXT,
    packages     BIGINT NOT NULL,
    concurrency  BIGINT NOT NULL,
    owner        TEXT,
    uuid         TEXT UNIQUE,
    repository   TEXT,
    trigger      TEXT,
    pull_request BIGINT,
    reason       TEXT,
    request      TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    run         BIGINT REFERENCES runs(id)
);
CREATE TABLE IF NOT EXISTS pull_requests (
    repository    TEXT NOT NULL,
    number        BIGINT NOT NULL,
    head          TEXT NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    affected      TEXT,
    comment       BIGINT,
    reported_head TEXT,
    reported      TEXT,
    closed        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, number)
);
CREATE TABLE IF NOT EXISTS packages (
    run_id   BIGINT NOT NULL REFERENCES runs(id),
    position BIGINT NOT NULL,
    name     TEXT NOT NULL,
    status   TEXT NOT NULL,
    detail   TEXT,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE IF NOT EXISTS stages (
    run_id      BIGINT NOT NULL REFERENCES runs(id),
    position    BIGINT NOT NULL,
    package     TEXT NOT NULL,
    stage       TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT,
    duration_ms BIGINT,
    log_path    TEXT,
    PRIMARY KEY (run_id, position, stage)
);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_takes_the_numbering_lock() {
        assert!(SCHEMA.contains(&format!("pg_advisory_xact_lock({NUMBERING_LOCK})")));
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        let options =
            PgConnectOptions::from_str("postgres://ci:s3cret@db.internal:6432/loktar?sslmode=require").expect("a URL");
        assert_eq!(shown_url(&options), "postgres://ci@db.internal:6432/loktar");
    }
}
