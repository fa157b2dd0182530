//! The store in an SQLite file: its schema, the migrations of files older
//! Loktars wrote, and statements run through `rusqlite`.

use std::cell::Cell as Flag;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::sql::{Cell, Lock, Param, Row, SqlError};

/// A connection to a store's SQLite file.
#[derive(Debug)]
pub(crate) struct Sqlite {
    connection: rusqlite::Connection,
    /// Whether a transaction this connection began is open.
    open: Flag<bool>,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`, brought to this schema.
    pub(crate) fn open(path: &Path) -> Result<Sqlite, SqlError> {
        let connection = rusqlite::Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        // WAL without a sync per commit: a crash may lose the last stage, never corrupt the file.
        connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        if user_version(&connection)? < SCHEMA_VERSION {
            // Under the write lock: stores opened at once on a new or older file make or migrate it once.
            let transaction =
                rusqlite::Transaction::new_unchecked(&connection, rusqlite::TransactionBehavior::Immediate)?;
            transaction.execute_batch(SCHEMA)?;
            migrate(&transaction)?;
            transaction.commit()?;
        }
        Ok(Sqlite { connection, open: Flag::new(false) })
    }

    pub(crate) fn execute(&self, sql: &str, params: &[Param]) -> Result<u64, SqlError> {
        let mut statement = self.connection.prepare(&in_sqlite_notation(sql))?;
        let changed = statement.execute(rusqlite::params_from_iter(params))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    pub(crate) fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, SqlError> {
        let mut statement = self.connection.prepare(&in_sqlite_notation(sql))?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut read = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = (0..columns)
                .map(|index| {
                    Ok(match row.get_ref(index)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(value) => Cell::Int(value),
                        ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
                        ValueRef::Real(_) => {
                            return Err(SqlError::Column {
                                index,
                                wanted: "an integer or text",
                                found: "a real".into(),
                            });
                        }
                        ValueRef::Blob(_) => {
                            return Err(SqlError::Column {
                                index,
                                wanted: "an integer or text",
                                found: "a blob".into(),
                            });
                        }
                    })
                })
                .collect::<Result<Vec<Cell>, SqlError>>()?;
            read.push(Row(cells));
        }
        Ok(read)
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.open.get()
    }

    /// A transaction that numbers runs takes SQLite's write lock at once
    /// (`IMMEDIATE`, waiting for it as long as the busy timeout allows), so
    /// that a concurrent writer cannot make it fail half-way.
    pub(crate) fn begin(&self, lock: Lock) -> Result<(), SqlError> {
        self.connection.execute_batch(match lock {
            Lock::Rows => "BEGIN",
            Lock::Numbering => "BEGIN IMMEDIATE",
        })?;
        self.open.set(true);
        Ok(())
    }

    pub(crate) fn end(&self, commit: bool) -> Result<(), SqlError> {
        self.open.set(false);
        // A failed statement may have rolled the transaction back already.
        if self.connection.is_autocommit() {
            return Ok(());
        }
        self.connection.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })?;
        Ok(())
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Int(Some(value)) => ToSqlOutput::from(*value),
            Param::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Param::Int(None) | Param::Text(None) => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

/// A statement in PostgreSQL's notation (`$1`) in SQLite's (`?1`).
fn in_sqlite_notation(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The version of the schema below and [`migrate`]'s.
const SCHEMA_VERSION: i64 = 4;

fn user_version(connection: &rusqlite::Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings an older database up to this schema.
fn migrate(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    let version = user_version(connection)?;
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        connection.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?.exists([table, column])
    };
    if version < 1 {
        if !has_column("runs", "owner")? {
            connection.execute_batch("ALTER TABLE runs ADD COLUMN owner TEXT")?;
        }
        connection.execute_batch("PRAGMA user_version = 1")?;
    }
    if version < 2 {
        if !has_column("runs", "uuid")? {
            connection.execute_batch("ALTER TABLE runs ADD COLUMN uuid TEXT")?;
        }
        connection
            .execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS runs_uuid ON runs(uuid); PRAGMA user_version = 2")?;
    }
    if version < 3 {
        // What a server knows of a run: where it came from and why it ended so.
        for column in ["repository TEXT", "trigger TEXT", "pull_request INTEGER", "reason TEXT", "request TEXT"] {
            let name = column.split(' ').next().unwrap_or(column);
            if !has_column("runs", name)? {
                connection.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {column}"))?;
            }
        }
        connection.execute_batch("PRAGMA user_version = 3")?;
    }
    if version < 4 {
        // Pull requests are closed, not forgotten (a data folder of this table's first days lacks the column).
        if !has_column("pull_requests", "closed")? {
            connection.execute_batch("ALTER TABLE pull_requests ADD COLUMN closed INTEGER NOT NULL DEFAULT 0")?;
        }
        connection.execute_batch("PRAGMA user_version = 4")?;
    }
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_ms  INTEGER NOT NULL,
    duration_ms INTEGER,
    status      TEXT NOT NULL,
    selection   TEXT NOT NULL,
    head        TEXT,
    base        TEXT,
    branch      TEXT,
    packages    INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    owner       TEXT,
    uuid        TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    run         INTEGER REFERENCES runs(id)
);
CREATE TABLE IF NOT EXISTS pull_requests (
    repository    TEXT NOT NULL,
    number        INTEGER NOT NULL,
    head          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    affected      TEXT,
    comment       INTEGER,
    reported_head TEXT,
    reported      TEXT,
    closed        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, number)
);
CREATE TABLE IF NOT EXISTS packages (
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    name     TEXT NOT NULL,
    status   TEXT NOT NULL,
    detail   TEXT,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE IF NOT EXISTS stages (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    position    INTEGER NOT NULL,
    package     TEXT NOT NULL,
    stage       TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT,
    duration_ms INTEGER,
    log_path    TEXT,
    PRIMARY KEY (run_id, position, stage)
);
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_become_sqlite_s_and_nothing_else_changes() {
        assert_eq!(
            in_sqlite_notation("SELECT $1, $12 FROM t WHERE a = '$' AND b = $2x"),
            "SELECT ?1, ?12 FROM t WHERE a = '$' AND b = ?2x"
        );
    }
}
