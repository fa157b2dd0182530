//! The two databases the run store keeps its records in — SQLite, embedded,
//! and PostgreSQL, for servers scaled out — behind one small interface:
//! statements in PostgreSQL's `$1` notation, values of the two kinds the
//! store keeps (integers and text), rows of cells, and transactions. Every
//! query of the store is written once, in the SQL both understand; what
//! differs (schemas, locks) lives in `sqlite.rs` and `postgres.rs`.

use crate::postgres::Session;
use crate::sqlite::Sqlite;

/// A statement could not be run, or its result not read.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// SQLite said no.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no, or could not be reached.
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    /// A write of the open transaction failed, so the transaction was rolled
    /// back at its commit: its other writes are lost too.
    #[error("a write failed, so the writes grouped with it were rolled back")]
    RolledBack,
    /// A cell was not of the kind the store wrote there.
    #[error("column {index} holds {found}, not {wanted}")]
    Column {
        /// Which column, from 0.
        index: usize,
        /// What the store expected.
        wanted: &'static str,
        /// What was there.
        found: String,
    },
}

/// A value bound to a statement; its kind is kept when it is null, as
/// PostgreSQL types every parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

/// What can be bound to a statement (`&[&dyn Bind]`, as `rusqlite::params!`).
pub(crate) trait Bind {
    fn param(&self) -> Param;
    /// The null of this kind.
    fn null() -> Param
    where
        Self: Sized;
}

impl Bind for i64 {
    fn param(&self) -> Param {
        Param::Int(Some(*self))
    }
    fn null() -> Param {
        Param::Int(None)
    }
}

/// Text as both databases keep it: PostgreSQL's text holds no NUL, so none
/// is kept in either (each is written as U+FFFD).
fn text(text: &str) -> Param {
    Param::Text(Some(if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text.to_string() }))
}

impl Bind for String {
    fn param(&self) -> Param {
        text(self)
    }
    fn null() -> Param {
        Param::Text(None)
    }
}

impl Bind for &str {
    fn param(&self) -> Param {
        text(self)
    }
    fn null() -> Param {
        Param::Text(None)
    }
}

impl<T: Bind> Bind for Option<T> {
    fn param(&self) -> Param {
        self.as_ref().map_or_else(T::null, Bind::param)
    }
    fn null() -> Param {
        T::null()
    }
}

/// One cell of a row read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    fn kind(&self) -> String {
        match self {
            Cell::Null => "null",
            Cell::Int(_) => "an integer",
            Cell::Text(_) => "text",
        }
        .to_string()
    }
}

/// What a cell can be read as.
pub(crate) trait FromCell: Sized {
    const WANTED: &'static str;
    fn from_cell(cell: &Cell) -> Option<Self>;
}

impl FromCell for i64 {
    const WANTED: &'static str = "an integer";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Int(value) => Some(*value),
            _ => None,
        }
    }
}

impl FromCell for String {
    const WANTED: &'static str = "text";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Text(value) => Some(value.clone()),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    const WANTED: &'static str = T::WANTED;
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Null => Some(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// A row read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    /// Cell `index`, as `T`.
    pub(crate) fn get<T: FromCell>(&self, index: usize) -> Result<T, SqlError> {
        let Some(cell) = self.0.get(index) else {
            return Err(SqlError::Column { index, wanted: T::WANTED, found: "no such column".to_string() });
        };
        T::from_cell(cell).ok_or(SqlError::Column { index, wanted: T::WANTED, found: cell.kind() })
    }
}

/// What a transaction locks besides the rows it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Nothing more.
    Rows,
    /// Run numbers and deliveries: one such transaction at a time, so that
    /// runs are numbered without gaps and a delivery starts one run.
    Numbering,
}

/// A connection to either database.
#[derive(Debug)]
pub(crate) enum Connection {
    Sqlite(Sqlite),
    Postgres(Session),
}

impl Connection {
    /// Runs a statement; how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[&dyn Bind]) -> Result<u64, SqlError> {
        let params: Vec<Param> = params.iter().map(|value| value.param()).collect();
        match self {
            Connection::Sqlite(sqlite) => sqlite.execute(sql, &params),
            Connection::Postgres(session) => session.execute(sql, params),
        }
    }

    /// Runs a query; its rows.
    pub(crate) fn query(&self, sql: &str, params: &[&dyn Bind]) -> Result<Vec<Row>, SqlError> {
        let params: Vec<Param> = params.iter().map(|value| value.param()).collect();
        match self {
            Connection::Sqlite(sqlite) => sqlite.query(sql, &params),
            Connection::Postgres(session) => session.query(sql, params),
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_row(&self, sql: &str, params: &[&dyn Bind]) -> Result<Option<Row>, SqlError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Whether a transaction is open.
    pub(crate) fn in_transaction(&self) -> bool {
        match self {
            Connection::Sqlite(sqlite) => sqlite.in_transaction(),
            Connection::Postgres(session) => session.in_transaction(),
        }
    }

    /// Opens a transaction taking `lock`.
    pub(crate) fn begin(&self, lock: Lock) -> Result<(), SqlError> {
        match self {
            Connection::Sqlite(sqlite) => sqlite.begin(lock),
            Connection::Postgres(session) => session.begin(lock),
        }
    }

    /// Takes `lock` within the open transaction. On SQLite, nothing more: a
    /// transaction takes the one write lock at its first write (nothing
    /// numbers runs within a batch).
    pub(crate) fn lock(&self, lock: Lock) -> Result<(), SqlError> {
        match self {
            Connection::Sqlite(_) => Ok(()),
            Connection::Postgres(session) => session.lock(lock),
        }
    }

    /// Ends the open transaction, keeping (`commit`) or dropping its writes.
    pub(crate) fn end(&self, commit: bool) -> Result<(), SqlError> {
        match self {
            Connection::Sqlite(sqlite) => sqlite.end(commit),
            Connection::Postgres(session) => session.end(commit),
        }
    }
}

/// A transaction opened by [`Transaction::begin`]: committed by
/// [`Transaction::commit`], rolled back when dropped otherwise. Within one
/// already open (a batch), it is that one's part and ends with it.
pub(crate) struct Transaction<'a> {
    connection: &'a Connection,
    opened: bool,
}

impl<'a> Transaction<'a> {
    pub(crate) fn begin(connection: &'a Connection, lock: Lock) -> Result<Transaction<'a>, SqlError> {
        let opened = !connection.in_transaction();
        if opened {
            connection.begin(lock)?
        } else {
            connection.lock(lock)?
        }
        Ok(Transaction { connection, opened })
    }

    pub(crate) fn commit(mut self) -> Result<(), SqlError> {
        let opened = std::mem::take(&mut self.opened);
        if opened { self.connection.end(true) } else { Ok(()) }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.opened {
            let _ = self.connection.end(false);
        }
    }
}
