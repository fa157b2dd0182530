//! The run store: every run, its packages and their stages. A repository's
//! is an embedded SQLite database at `.loktar/loktar.db`: nothing to
//! install, and safe to share between two `loktar run`s at once.
//!
//! `loktar server` keeps one in its data folder — or, scaled out, in
//! PostgreSQL (`[server] database`) — with what a server knows besides: the
//! webhook deliveries it received (each starts one run however often it
//! comes), runs queued before they are planned, and where each run came
//! from. Both databases run the same statements (`sql.rs`).

mod owner;
mod postgres;
mod pull_requests;
mod sql;
mod sqlite;

pub use postgres::PostgresDatabase;
pub use pull_requests::OpenPullRequest;
pub use sql::SqlError;

use std::path::{Path, PathBuf};
use std::time::Duration;

use loktar_config::LOKTAR_DIR;
use loktar_protocol::{RunId, Stage};
use loktar_support::diagnostic::Diagnostic;
use owner::Owner;
use sql::{Bind, Connection, Lock, Row, Transaction};
use sqlite::Sqlite;

/// The database file inside [`LOKTAR_DIR`].
pub const DATABASE: &str = "loktar.db";

/// The store could not be used.
#[derive(Debug, thiserror::Error)]
#[error("run store {place}: {source}")]
pub struct StoreError {
    place: Place,
    #[source]
    source: SqlError,
}

impl From<StoreError> for Diagnostic {
    fn from(error: StoreError) -> Self {
        let hint = match &error.place {
            Place::File(path) => {
                format!("if the file is damaged, move `{}` away; Loktar starts a new one", path.display())
            }
            Place::Postgres(_) => "is PostgreSQL up, and may `[server] database`'s user write there?".to_string(),
        };
        Diagnostic::new(error.to_string()).hint(hint)
    }
}

/// What a run is, as recorded when it starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Its identity, unique across machines.
    pub id: RunId,
    /// When it started (ms since the epoch).
    pub started_ms: i64,
    /// How the packages were chosen: `changes`, `all`, `packages`.
    pub selection: String,
    /// The commit under test, if any.
    pub head: Option<String>,
    /// The base it was compared with, if any.
    pub base: Option<String>,
    /// The branch, if known.
    pub branch: Option<String>,
    /// How many packages it runs.
    pub packages: usize,
    /// Jobs at once.
    pub concurrency: usize,
}

/// One run, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRow {
    /// Its number.
    pub id: i64,
    /// Its identity across machines (the `run_id` of its events); none for
    /// runs recorded before Loktar kept it.
    pub uuid: Option<String>,
    /// `running`, `passed`, `failed` or `interrupted`.
    pub status: String,
    /// Start, ms since the epoch.
    pub started_ms: i64,
    /// How long it took, once finished.
    pub duration_ms: Option<i64>,
    /// How the packages were chosen.
    pub selection: String,
    /// The commit.
    pub head: Option<String>,
    /// The base commit.
    pub base: Option<String>,
    /// The branch.
    pub branch: Option<String>,
    /// Packages in the run.
    pub packages: i64,
    /// Packages that failed.
    pub failed: i64,
    /// The repository (`owner/repo`), for a server's runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// What asked for it (`push`, `pull_request`, `api`), for a server's runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The pull request it tests, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<i64>,
    /// Why it ended as it did, when the outcome alone does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts over every run recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Runs by status.
    pub runs: Vec<(String, i64)>,
    /// Per stage: how many ran (skipped ones aside) and their time in all, in ms.
    pub stages: Vec<(String, i64, i64)>,
}

/// Whether a run of this status is still to end: `queued` or `running`.
pub fn is_unfinished(status: &str) -> bool {
    matches!(status, "queued" | "running")
}

impl RunRow {
    /// Whether it is still to end.
    pub fn is_unfinished(&self) -> bool {
        is_unfinished(&self.status)
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this repository's.
    pub repository: Option<String>,
    /// Only this branch's.
    pub branch: Option<String>,
    /// Only this pull request's.
    pub pull_request: Option<u64>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs numbered below this one (the next page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// A webhook delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// GitHub's `X-GitHub-Delivery`.
    pub id: String,
    /// Its event (`push`, `pull_request`…).
    pub event: String,
    /// When it arrived (ms since the epoch).
    pub received_ms: i64,
}

/// A run a server accepted, before it is planned.
#[derive(Debug, Clone)]
pub struct QueuedRun {
    /// Its identity.
    pub id: RunId,
    /// When it was accepted (ms since the epoch).
    pub received_ms: i64,
    /// How the packages will be chosen: `changes`, `all`, `packages`.
    pub selection: String,
    /// The repository (`owner/repo`).
    pub repository: String,
    /// What asked for it: `push`, `pull_request`, `api`.
    pub trigger: String,
    /// The branch.
    pub branch: Option<String>,
    /// The pull request, if any.
    pub pull_request: Option<u64>,
    /// The commit to build.
    pub head: Option<String>,
    /// The commit to compare with, if known.
    pub base: Option<String>,
    /// The delivery that asked for it, if a webhook did.
    pub delivery: Option<Delivery>,
    /// What the server needs to start it again after a restart (JSON of its own).
    pub request: String,
}

/// What [`RunStore::queue_run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// A new run, numbered so.
    New {
        /// Its number.
        run: i64,
    },
    /// The delivery was received before; it started this run, if any.
    Duplicate {
        /// The run it started.
        run: Option<i64>,
    },
}

/// One stage or package row of a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StageRow {
    /// The package's position in the run.
    #[serde(skip)]
    pub position: i64,
    /// The package.
    pub package: String,
    /// The stage, or `None` for a package that never ran a stage.
    pub stage: Option<String>,
    /// Its outcome.
    pub status: String,
    /// The message beside it.
    pub detail: Option<String>,
    /// How long it ran.
    pub duration_ms: Option<i64>,
    /// Its log file.
    pub log: Option<String>,
}

/// Where a store is kept.
#[derive(Debug, Clone)]
pub enum Database {
    /// An SQLite file (created if needed): a repository's, or a server's in its data folder.
    File(PathBuf),
    /// A PostgreSQL database, for servers scaled out.
    Postgres(PostgresDatabase),
}

impl Database {
    /// Opens a store on it. A server's store leaves runs whose process is
    /// gone as they are: the server resumes them ([`RunStore::orphans`]).
    /// On PostgreSQL, the store's methods block their thread: call them
    /// where blocking is allowed, never on an async runtime's workers.
    pub fn open(&self) -> Result<RunStore, Diagnostic> {
        match self {
            Database::File(path) => RunStore::open_file(path),
            Database::Postgres(database) => Ok(RunStore {
                connection: Connection::Postgres(database.session()),
                place: Place::Postgres(database.shown().to_string()),
            }),
        }
    }
}

/// Where a store is, for messages.
#[derive(Debug, Clone)]
enum Place {
    File(PathBuf),
    /// Its URL without the password.
    Postgres(String),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::File(path) => write!(f, "`{}`", path.display()),
            Place::Postgres(url) => f.write_str(url),
        }
    }
}

/// A run store: a repository's, or a server's.
#[derive(Debug)]
pub struct RunStore {
    connection: Connection,
    place: Place,
}

impl RunStore {
    /// Opens (creating if needed) the store of the repository at `root`.
    pub fn open(root: &Path) -> Result<RunStore, Diagnostic> {
        let dir = root.join(LOKTAR_DIR);
        // The repository could carry these as links, to have Loktar write its logs and artifacts anywhere.
        for own in [LOKTAR_DIR, DATABASE, "runs", "artifacts"] {
            let path = if own == LOKTAR_DIR { dir.clone() } else { dir.join(own) };
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Diagnostic::new(format!(
                    "`{}` is a link: Loktar keeps its runs there and follows no link",
                    path.display()
                ))
                .hint(format!("remove the link: `{LOKTAR_DIR}` is Loktar's own folder, never part of a repository")));
            }
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| Diagnostic::new(format!("cannot create `{}`: {e}", dir.display())))?;
        // Git ignores the whole folder without the user touching .gitignore.
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(&ignore, "# Loktar's runs, logs and artifacts: not part of the repository.\n*\n");
        }
        let store = RunStore::open_file(&dir.join(DATABASE))?;
        store.mark_interrupted()?;
        Ok(store)
    }

    /// Opens (creating if needed) the store in the SQLite file `path`: a
    /// server's, in its data folder. Runs whose process is gone are left as
    /// they are: the server resumes them ([`RunStore::orphans`]).
    pub fn open_file(path: &Path) -> Result<RunStore, Diagnostic> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Diagnostic::new(format!("cannot create `{}`: {e}", dir.display())))?;
        }
        let place = Place::File(path.to_path_buf());
        match Sqlite::open(path) {
            Ok(sqlite) => Ok(RunStore { connection: Connection::Sqlite(sqlite), place }),
            Err(source) => Err(StoreError { place, source }.into()),
        }
    }

    fn fail(&self, source: SqlError) -> Diagnostic {
        Diagnostic::from(StoreError { place: self.place.clone(), source })
    }

    fn execute(&self, sql: &str, params: &[&dyn Bind]) -> Result<u64, Diagnostic> {
        self.connection.execute(sql, params).map_err(|e| self.fail(e))
    }

    fn query(&self, sql: &str, params: &[&dyn Bind]) -> Result<Vec<Row>, Diagnostic> {
        self.connection.query(sql, params).map_err(|e| self.fail(e))
    }

    /// The first row of a query, read by `read`, if there is one.
    fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn Bind],
        read: impl FnOnce(&Row) -> Result<T, SqlError>,
    ) -> Result<Option<T>, Diagnostic> {
        let row = self.connection.query_row(sql, params).map_err(|e| self.fail(e))?;
        row.as_ref().map(read).transpose().map_err(|e| self.fail(e))
    }

    /// Every row of a query, each read by `read`.
    fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn Bind],
        read: impl FnMut(&Row) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, Diagnostic> {
        self.query(sql, params)?.iter().map(read).collect::<Result<_, _>>().map_err(|e| self.fail(e))
    }

    fn transaction(&self, lock: Lock) -> Result<Transaction<'_>, Diagnostic> {
        Transaction::begin(&self.connection, lock).map_err(|e| self.fail(e))
    }

    /// Marks `interrupted` the runs still `running` whose process, on this
    /// machine, is gone (killed, or the machine restarted): nothing will
    /// ever finish them.
    fn mark_interrupted(&self) -> Result<(), Diagnostic> {
        let running =
            self.query_map("SELECT id, owner FROM runs WHERE status = 'running' AND owner IS NOT NULL", &[], |row| {
                Ok((row.get::<i64>(0)?, row.get::<String>(1)?))
            })?;
        for (id, owner) in running {
            if Owner::parse(&owner).is_some_and(|owner| owner.is_gone()) {
                self.execute("UPDATE runs SET status = 'interrupted' WHERE id = $1 AND status = 'running'", &[&id])?;
            }
        }
        Ok(())
    }

    /// Starts grouping writes into one transaction, until [`RunStore::commit`].
    pub fn begin_batch(&self) -> Result<(), Diagnostic> {
        if !self.connection.in_transaction() {
            self.connection.begin(Lock::Rows).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Commits the writes grouped since [`RunStore::begin_batch`].
    pub fn commit(&self) -> Result<(), Diagnostic> {
        if self.connection.in_transaction() {
            self.connection.end(true).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Records a new run, or starts the queued run of the same id; returns its number.
    pub fn begin_run(&self, run: &NewRun) -> Result<i64, Diagnostic> {
        let packages = i64::try_from(run.packages).unwrap_or(i64::MAX);
        let concurrency = i64::try_from(run.concurrency).unwrap_or(i64::MAX);
        let owner = Owner::this_process().to_string();
        let id = run.id.as_str();
        let values: [&dyn Bind; 9] =
            [&run.started_ms, &run.selection, &run.head, &run.base, &run.branch, &packages, &concurrency, &owner, &id];
        let transaction = self.transaction(Lock::Numbering)?;
        let queued = self.query_row(
            "UPDATE runs SET started_ms = $1, status = 'running', selection = $2, head = COALESCE($3, head),
                    base = COALESCE($4, base), branch = COALESCE($5, branch),
                    packages = CASE WHEN packages > $6 THEN packages ELSE $6 END, concurrency = $7, owner = $8
             WHERE uuid = $9 AND status = 'queued' RETURNING id",
            &values,
            |row| row.get(0),
        )?;
        let number = match queued {
            Some(number) => number,
            None => self.insert_numbered(
                "INSERT INTO runs (id, started_ms, status, selection, head, base, branch, packages, concurrency, owner, uuid)
                 VALUES (NEXT_RUN, $1, 'running', $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &values,
            )?,
        };
        transaction.commit().map_err(|e| self.fail(e))?;
        Ok(number)
    }

    /// Inserts a run numbered next (`NEXT_RUN` in `sql`): runs are
    /// numbered without gaps, which sequences do not promise, so within a
    /// transaction holding [`Lock::Numbering`].
    fn insert_numbered(&self, sql: &str, values: &[&dyn Bind]) -> Result<i64, Diagnostic> {
        let sql = sql.replace("NEXT_RUN", "(SELECT COALESCE(MAX(id), 0) + 1 FROM runs)");
        let number = self.query_row(&sql, values, |row| row.get(0))?;
        number
            .ok_or_else(|| self.fail(SqlError::Column { index: 0, wanted: "the run's number", found: "no row".into() }))
    }

    /// Records a run a server accepted, with the webhook delivery that asked
    /// for it, if any, in one transaction: a delivery starts one run however
    /// often it is received.
    pub fn queue_run(&self, run: &QueuedRun) -> Result<Queued, Diagnostic> {
        // The lock is taken before the delivery is looked up: a concurrent
        // one of the same delivery waits, then finds it.
        let transaction = self.transaction(Lock::Numbering)?;
        if let Some(delivery) = &run.delivery {
            if let Some(earlier) = self.delivered(&delivery.id)? {
                return Ok(Queued::Duplicate { run: earlier });
            }
            self.execute(
                "INSERT INTO deliveries (id, event, received_ms) VALUES ($1, $2, $3)",
                &[&delivery.id, &delivery.event, &delivery.received_ms],
            )?;
        }
        let id = run.id.as_str();
        let pull_request = run.pull_request.and_then(|n| i64::try_from(n).ok());
        let number = self.insert_numbered(
            "INSERT INTO runs (id, started_ms, status, selection, head, base, branch, packages, concurrency, uuid,
                               repository, trigger, pull_request, request)
             VALUES (NEXT_RUN, $1, 'queued', $2, $3, $4, $5, 0, 0, $6, $7, $8, $9, $10) RETURNING id",
            &[
                &run.received_ms,
                &run.selection,
                &run.head,
                &run.base,
                &run.branch,
                &id,
                &run.repository,
                &run.trigger,
                &pull_request,
                &run.request,
            ],
        )?;
        if let Some(delivery) = &run.delivery {
            self.execute("UPDATE deliveries SET run = $2 WHERE id = $1", &[&delivery.id, &number])?;
        }
        transaction.commit().map_err(|e| self.fail(e))?;
        Ok(Queued::New { run: number })
    }

    /// Records a delivery that starts no run (a ping, a tag); returns
    /// whether it is new. A delivery received before answers as it did.
    pub fn record_delivery(&self, delivery: &Delivery) -> Result<bool, Diagnostic> {
        let inserted = self.execute(
            "INSERT INTO deliveries (id, event, received_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            &[&delivery.id, &delivery.event, &delivery.received_ms],
        )?;
        Ok(inserted == 1)
    }

    /// The run a delivery started, if it was received before: `Some(None)`
    /// when it started none.
    fn delivered(&self, id: &str) -> Result<Option<Option<i64>>, Diagnostic> {
        self.query_row("SELECT run FROM deliveries WHERE id = $1", &[&id], |row| row.get(0))
    }

    /// Says why a run ends as it does (`superseded by …`, a planning
    /// error), while it has not ended: an ended run keeps its story.
    pub fn set_reason(&self, run: i64, reason: &str) -> Result<(), Diagnostic> {
        self.execute("UPDATE runs SET reason = $2 WHERE id = $1 AND status IN ('queued', 'running')", &[&run, &reason])
            .map(drop)
    }

    /// What the server's metrics show: how many runs have each status, and
    /// per stage how many ran and for how long in all.
    pub fn totals(&self) -> Result<Totals, Diagnostic> {
        let runs = self.query_map("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status", &[], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        let stages = self.query_map(
            "SELECT stage, COUNT(*), CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) FROM stages
             WHERE status <> 'skipped' GROUP BY stage ORDER BY stage",
            &[],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        Ok(Totals { runs, stages })
    }

    /// The runs nothing will finish: queued, or running in a process of
    /// this machine that is gone (killed, or the machine restarted), oldest first.
    pub fn orphans(&self) -> Result<Vec<RunRow>, Diagnostic> {
        let rows: Vec<(RunRow, Option<String>)> = self.query_map(
            &format!("SELECT {RUN_COLUMNS}, owner FROM runs WHERE status IN ('queued', 'running') ORDER BY id"),
            &[],
            |row| Ok((run_row(row)?, row.get(15)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter(|(run, owner)| {
                run.status == "queued" || owner.as_deref().and_then(Owner::parse).is_some_and(|owner| owner.is_gone())
            })
            .map(|(run, _)| run)
            .collect())
    }

    /// How each package of a run that has finished ended (`passed`,
    /// `failed`, `skipped`, `cancelled`), in run order; packages still
    /// running or never started are not there.
    pub fn package_outcomes(&self, run: i64) -> Result<Vec<(String, String)>, Diagnostic> {
        self.query_map("SELECT name, status FROM packages WHERE run_id = $1 ORDER BY position", &[&run], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    /// Readies the record of a run resumed with only `rerun` of its
    /// packages: their rows go (they are written again), and the rows of
    /// the packages that stay as they were move before the positions the
    /// resumed plan numbers from 0, keeping their order.
    pub fn prepare_resume(&self, run: i64, rerun: &[String]) -> Result<(), Diagnostic> {
        let transaction = self.transaction(Lock::Rows)?;
        for (table, column) in [("stages", "package"), ("packages", "name")] {
            for package in rerun {
                self.execute(&format!("DELETE FROM {table} WHERE run_id = $1 AND {column} = $2"), &[&run, package])?;
            }
        }
        let range = self.query_row(
            "SELECT MIN(position), MAX(position) FROM
               (SELECT position FROM stages WHERE run_id = $1 UNION ALL SELECT position FROM packages WHERE run_id = $1) AS kept",
            &[&run],
            |row| Ok((row.get::<Option<i64>>(0)?, row.get::<Option<i64>>(1)?)),
        )?;
        if let Some((Some(lowest), Some(highest))) = range {
            // Each position p becomes p - 1 - highest: all below 0. A
            // position is unique as each row moves, so in two steps: first
            // above every old and new one, then to where it goes. One shift
            // for both tables: a package's rows keep sharing its position.
            let above = highest.max(-1) + 1 - lowest;
            for shift in [above, -(above + 1 + highest)] {
                for table in ["stages", "packages"] {
                    self.execute(
                        &format!("UPDATE {table} SET position = position + $2 WHERE run_id = $1"),
                        &[&run, &shift],
                    )?;
                }
            }
        }
        transaction.commit().map_err(|e| self.fail(e))
    }

    /// Whether a run has ended, and, with `stage`, whether that stage of a
    /// package has: what a reader following them asks, often.
    pub fn has_ended(&self, run: i64, stage: Option<(&str, Stage)>) -> Result<bool, Diagnostic> {
        let status: Option<String> =
            self.query_row("SELECT status FROM runs WHERE id = $1", &[&run], |row| row.get(0))?;
        let Some(status) = status else { return Ok(true) };
        if !is_unfinished(&status) {
            return Ok(true);
        }
        let Some((package, stage)) = stage else { return Ok(false) };
        let found = self.query_row(
            "SELECT 1 FROM stages WHERE run_id = $1 AND package = $2 AND stage = $3",
            &[&run, &package, &stage.name()],
            |_| Ok(()),
        )?;
        Ok(found.is_some())
    }

    /// Puts a run back in the queue to be started again, saying why.
    pub fn requeue(&self, run: i64, reason: &str) -> Result<(), Diagnostic> {
        self.execute("UPDATE runs SET status = 'queued', owner = NULL, reason = $2 WHERE id = $1", &[&run, &reason])
            .map(drop)
    }

    /// What a server was asked to run (JSON of its own), for a run it
    /// accepted: kept to start it again after a restart.
    pub fn request(&self, run: i64) -> Result<Option<String>, Diagnostic> {
        self.query_row("SELECT request FROM runs WHERE id = $1", &[&run], |row| row.get(0)).map(Option::flatten)
    }

    /// Records how a stage of a package ended.
    #[allow(clippy::too_many_arguments)]
    pub fn record_stage(
        &self,
        run: i64,
        position: i64,
        package: &str,
        stage: Stage,
        status: &str,
        detail: Option<&str>,
        duration: Duration,
        log: Option<&Path>,
    ) -> Result<(), Diagnostic> {
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let log = log.map(|path| path.display().to_string());
        self.execute(
            "INSERT INTO stages (run_id, position, package, stage, status, detail, duration_ms, log_path)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (run_id, position, stage) DO UPDATE SET package = excluded.package, status = excluded.status,
                 detail = excluded.detail, duration_ms = excluded.duration_ms, log_path = excluded.log_path",
            &[&run, &position, &package, &stage.name(), &status, &detail, &duration_ms, &log],
        )
        .map(drop)
    }

    /// Records how a package ended.
    pub fn record_package(
        &self,
        run: i64,
        position: i64,
        package: &str,
        status: &str,
        detail: &str,
    ) -> Result<(), Diagnostic> {
        self.execute(
            "INSERT INTO packages (run_id, position, name, status, detail) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (run_id, position) DO UPDATE SET name = excluded.name, status = excluded.status,
                 detail = excluded.detail",
            &[&run, &position, &package, &status, &detail],
        )
        .map(drop)
    }

    /// Records how the run ended.
    pub fn finish_run(&self, run: i64, status: &str, duration: Duration) -> Result<(), Diagnostic> {
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        self.execute("UPDATE runs SET status = $2, duration_ms = $3 WHERE id = $1", &[&run, &status, &duration_ms])
            .map(drop)
    }

    /// The latest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, Diagnostic> {
        self.find_runs(&RunFilter { limit, ..RunFilter::default() })
    }

    /// The runs `filter` lets through, newest first.
    pub fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, Diagnostic> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE ($1 IS NULL OR repository = $1) AND ($2 IS NULL OR branch = $2)
               AND ($3 IS NULL OR pull_request = $3) AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6"
        );
        let pull_request = filter.pull_request.and_then(|n| i64::try_from(n).ok());
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.query_map(
            &sql,
            &[&filter.repository, &filter.branch, &pull_request, &filter.status, &filter.before, &limit],
            run_row,
        )
    }

    /// One run and its rows: each stage that ran or was skipped, then packages that never ran a stage.
    pub fn run(&self, id: i64) -> Result<Option<(RunRow, Vec<StageRow>)>, Diagnostic> {
        let run = self.query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"), &[&id], run_row)?;
        let Some(run) = run else { return Ok(None) };
        let mut rows = self.query_map(
            "SELECT package, stage, status, detail, duration_ms, log_path, position FROM stages WHERE run_id = $1
             UNION ALL
             SELECT name, NULL, status, detail, NULL, NULL, position FROM packages p
              WHERE run_id = $1 AND NOT EXISTS
                    (SELECT 1 FROM stages s WHERE s.run_id = p.run_id AND s.position = p.position)
             ORDER BY position",
            &[&id],
            |row| {
                Ok(StageRow {
                    position: row.get(6)?,
                    package: row.get(0)?,
                    stage: row.get(1)?,
                    status: row.get(2)?,
                    detail: row.get::<Option<String>>(3)?.filter(|d| !d.is_empty()),
                    duration_ms: row.get(4)?,
                    log: row.get(5)?,
                })
            },
        )?;
        // Stages in pipeline order within each package.
        rows.sort_by_key(|row| (row.position, row.stage.as_deref().and_then(Stage::from_name)));
        Ok(Some((run, rows)))
    }
}

fn run_row(row: &Row) -> Result<RunRow, SqlError> {
    Ok(RunRow {
        id: row.get(0)?,
        status: row.get(1)?,
        started_ms: row.get(2)?,
        duration_ms: row.get(3)?,
        selection: row.get(4)?,
        head: row.get(5)?,
        base: row.get(6)?,
        branch: row.get(7)?,
        packages: row.get(8)?,
        failed: row.get(9)?,
        uuid: row.get(10)?,
        repository: row.get(11)?,
        trigger: row.get(12)?,
        pull_request: row.get(13)?,
        reason: row.get(14)?,
    })
}

/// The columns [`run_row`] reads, in its order.
const RUN_COLUMNS: &str = "id, status, started_ms, duration_ms, selection, head, base, branch, packages,
    (SELECT COUNT(*) FROM packages p WHERE p.run_id = runs.id AND p.status = 'failed'), uuid,
    repository, trigger, pull_request, reason";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_runs_and_returns_stages_in_pipeline_order() {
        let root = tempfile::tempdir().expect("temp dir");
        let store = RunStore::open(root.path()).expect("store");
        let run = |id: &str| NewRun {
            id: RunId::new(id),
            started_ms: 1000,
            selection: "all".into(),
            head: None,
            base: None,
            branch: None,
            packages: 2,
            concurrency: 2,
        };
        let first = store.begin_run(&run("a")).expect("begin");
        assert!(store.begin_run(&run("a")).is_err(), "a run id is recorded once");
        let second = store.begin_run(&run("b")).expect("begin");
        assert_eq!(second, first + 1);
        let log = Path::new("/logs/a/test.log");
        let ms = Duration::from_millis(5);
        store.record_stage(first, 0, "a", Stage::Notify, "skipped", Some("none"), Duration::ZERO, None).expect("row");
        store.record_stage(first, 0, "a", Stage::Test, "passed", None, ms, Some(log)).expect("row");
        store.record_package(first, 0, "a", "failed", "build failed").expect("row");
        store.record_package(first, 1, "b", "skipped", "dependency `a` failed").expect("row");
        store.finish_run(first, "failed", Duration::from_secs(2)).expect("finish");

        let runs = store.runs(10).expect("list");
        assert_eq!(
            runs.iter().map(|r| (r.id, r.status.as_str())).collect::<Vec<_>>(),
            [(second, "running"), (first, "failed")]
        );
        assert_eq!((runs[1].duration_ms, runs[1].failed, runs[1].uuid.as_deref()), (Some(2000), 1, Some("a")));
        let (run, rows) = store.run(first).expect("read").expect("the run");
        assert_eq!(run.id, first);
        let rows: Vec<(&str, Option<&str>, &str)> =
            rows.iter().map(|r| (r.package.as_str(), r.stage.as_deref(), r.status.as_str())).collect();
        assert_eq!(rows, [("a", Some("test"), "passed"), ("a", Some("notify"), "skipped"), ("b", None, "skipped")]);
        assert!(store.run(99).expect("read").is_none());
        assert!(root.path().join(".loktar/.gitignore").exists());
    }
}
