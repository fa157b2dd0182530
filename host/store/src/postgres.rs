//! The store in PostgreSQL (`[server] database = "postgres://…"`): one
//! pool of connections per server (a connection that broke, as when
//! PostgreSQL restarts, is replaced), the schema made and versioned under a
//! lock, and the store's statements run through `sqlx`.
//!
//! The store's methods are synchronous, as SQLite's are: a session blocks
//! its thread while PostgreSQL answers, so it is used where blocking is
//! allowed (`spawn_blocking`, the events thread), never on an async
//! runtime's workers. Its connections are driven by a runtime of their own
//! (one thread), so that a store call never waits for a worker of the
//! server's runtime to be free.

use std::cell::{Cell, RefCell};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Column as _, Row as _, TypeInfo as _};

use crate::sql::{Cell as SqlCell, Lock, Param, Row, SqlError};
use loktar_support::diagnostic::Diagnostic;

/// The version of the schema below; a database of a later one was made by a newer Loktar.
const SCHEMA_VERSION: i64 = 1;

/// The advisory lock (`pg_advisory_xact_lock`) that numbers runs and makes the schema.
const NUMBERING_LOCK: i64 = 0x6c6f_6b74_6172; // "loktar"

/// Connections at most, across the server's requests and its runs' records:
/// more than the runs a server works at once, each holding one while it
/// writes a batch of its record.
const MAX_CONNECTIONS: u32 = 32;

/// The longest a statement may run (waiting for a lock included) before
/// PostgreSQL cancels it: the store's statements take milliseconds.
const STATEMENT_TIMEOUT: &str = "30s";

/// How long a statement waits for a connection (PostgreSQL down, or every one busy).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL database holding a store: shared by every store opened on it.
#[derive(Clone)]
pub struct PostgresDatabase {
    pool: sqlx::PgPool,
    runtime: Arc<StoreRuntime>,
    shown: String,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PostgresDatabase").field(&self.shown).finish()
    }
}

/// The runtime that drives the store's connections; shut down without
/// waiting, wherever the last store goes (an async task included).
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    fn block_on<T>(&self, work: impl Future<Output = T>) -> T {
        match &self.0 {
            Some(runtime) => runtime.handle().block_on(work),
            None => unreachable!("the runtime is taken only when dropped"),
        }
    }

    fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.0.as_ref().map(tokio::runtime::Runtime::enter)
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl PostgresDatabase {
    /// Connects to the database at `url` (`postgres://USER@HOST:PORT/DATABASE`,
    /// with the parameters sqlx reads, such as `sslmode`), with `password`
    /// when given, and brings it to this schema. Blocks: call it where
    /// blocking is allowed.
    pub fn connect(url: &str, password: Option<&str>) -> Result<PostgresDatabase, Diagnostic> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            Diagnostic::new(format!("`database` under `[server]` is not a PostgreSQL URL: {e}"))
                .hint("write it as `postgres://USER@HOST:PORT/DATABASE`, the password in `database_password`")
        })?;
        let shown = shown_url(&options);
        let options = match password {
            Some(password) => options.password(password),
            None => options,
        }
        .application_name("loktar")
        .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loktar-postgres")
            .enable_all()
            .build()
            .map_err(|e| Diagnostic::new(format!("run store {shown}: cannot start its thread: {e}")))?;
        let runtime = Arc::new(StoreRuntime(Some(runtime)));
        let unreachable = |e: sqlx::Error| {
            Diagnostic::new(format!("run store {shown}: {e}")).hint(
                "start PostgreSQL there, or correct `database` (and `database_password`) under `[server]`; \
                 the user needs to create tables in that database",
            )
        };
        let connected = runtime.block_on(async {
            let pool = PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            sqlx::raw_sql(AssertSqlSafe(schema())).execute(&pool).await?;
            let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM loktar_schema").fetch_one(&pool).await?;
            Ok::<_, sqlx::Error>((pool, version))
        });
        let (pool, version) = connected.map_err(unreachable)?;
        if version > SCHEMA_VERSION {
            return Err(Diagnostic::new(format!(
                "run store {shown}: its schema is version {version}, made by a newer Loktar; this one knows {SCHEMA_VERSION}"
            ))
            .hint("run the newer Loktar, or give this one a database of its own"));
        }
        Ok(PostgresDatabase { pool, runtime, shown })
    }

    /// Where it is, without its password: for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A session on it, for one store.
    pub(crate) fn session(&self) -> Session {
        Session { database: self.clone(), transaction: RefCell::new(None), aborted: Cell::new(false) }
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
    /// Whether a statement of the open transaction failed: PostgreSQL then
    /// refuses the rest, and its `COMMIT` rolls back without an error.
    aborted: Cell<bool>,
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
        if result.is_err() && transaction.is_some() {
            self.aborted.set(true);
        }
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
        self.aborted.set(false);
        // A transaction that cannot take its lock is of no use: it ends at once.
        self.lock(lock).inspect_err(|_| {
            let _ = self.end(false);
        })
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

    /// Ends the open transaction. One that a failed statement aborted is
    /// rolled back, and committing it is an error: its earlier writes are lost.
    pub(crate) fn end(&self, commit: bool) -> Result<(), SqlError> {
        let Some(transaction) = self.transaction.borrow_mut().take() else { return Ok(()) };
        let aborted = self.aborted.replace(false);
        let ended = self.database.runtime.block_on(async {
            if commit && !aborted { transaction.commit().await } else { transaction.rollback().await }
        });
        ended?;
        if commit && aborted { Err(SqlError::RolledBack) } else { Ok(()) }
    }
}

/// A transaction still open is rolled back: the connection goes back to the
/// pool, which works on the store's runtime — entered here, without blocking.
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
    let cell = |index: usize, type_name: &str| -> Result<SqlCell, SqlError> {
        let cell = match type_name {
            "INT8" => row.try_get::<Option<i64>, _>(index)?.map(SqlCell::Int),
            "INT4" => row.try_get::<Option<i32>, _>(index)?.map(|value| SqlCell::Int(value.into())),
            "TEXT" | "VARCHAR" => row.try_get::<Option<String>, _>(index)?.map(SqlCell::Text),
            "VOID" => None,
            other => return Err(SqlError::Column { index, wanted: "an integer or text", found: other.to_string() }),
        };
        Ok(cell.unwrap_or(SqlCell::Null))
    };
    let cells = row.columns().iter().map(|column| cell(column.ordinal(), column.type_info().name()));
    Ok(Row(cells.collect::<Result<_, _>>()?))
}

/// The schema, made once under the numbering lock (servers starting at once
/// wait for each other), in one implicit transaction. Integers are `BIGINT`
/// (Rust's `i64`); dates kept as text sort by code point (`"C"`), whatever
/// the database's locale.
fn schema() -> String {
    format!(
        r#"
SELECT pg_advisory_xact_lock({NUMBERING_LOCK});
CREATE TABLE IF NOT EXISTS loktar_schema (version BIGINT NOT NULL);
INSERT INTO loktar_schema (version) SELECT {SCHEMA_VERSION} WHERE NOT EXISTS (SELECT 1 FROM loktar_schema);
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
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        let options =
            PgConnectOptions::from_str("postgres://ci:s3cret@db.internal:6432/loktar?sslmode=require").expect("a URL");
        assert_eq!(shown_url(&options), "postgres://ci@db.internal:6432/loktar");
    }
}
