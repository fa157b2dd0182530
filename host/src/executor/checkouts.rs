//! The runs' commits an executor has checked out, shared by its jobs.
//!
//! As the jobs of a run in one process share its checkout, an executor's
//! jobs of one run share one — checked out once, its `loktar.json` read
//! once, its plugins set up once — instead of a checkout per job. Two runs
//! never share one, even of the same commit: each starts from a clean
//! tree. Up to `keep` stay checked out after their last job, for the
//! run's next; the least recently used beyond that is removed once no job
//! uses it. Two jobs that need one at the same time wait for one checkout.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::OnceCell;

use crate::app::context::{plugin_session, workspace};
use crate::config::{Package, Workspace};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::events::RunId;
use crate::mirrors::{Checkout, Mirrors};
use crate::pipeline::handed::Work;
use crate::runtime::PluginSession;
use crate::settings::Settings;

/// A commit checked out, with what its jobs share.
pub(super) struct Prepared {
    checkout: Checkout,
    workspace: Workspace,
    /// Its plugins, under this machine's policy (the repository's own granted as it allows).
    pub(super) plugins: Arc<PluginSession>,
}

impl Prepared {
    /// The repository's root.
    pub(super) fn root(&self) -> PathBuf {
        self.checkout.dir().to_path_buf()
    }

    /// The package called `name`, as this commit's `loktar.json` declares it.
    pub(super) fn package(&self, name: &str) -> Option<Package> {
        self.workspace.package(name).cloned()
    }
}

/// Which run (its id), of which commit of which repository.
type Key = (String, String, String);

/// One commit, being checked out or checked out.
struct Entry {
    key: Key,
    cell: Arc<OnceCell<Arc<Prepared>>>,
    used: Instant,
}

/// The commits checked out under one folder.
pub(super) struct Checkouts {
    settings: Settings,
    /// The folder relative folders of the configuration were read against.
    base: PathBuf,
    mirrors: Mirrors,
    /// Where checkouts go, and `fs` stores named relative to a repository.
    work_dir: PathBuf,
    /// How many to keep once no job uses them.
    keep: usize,
    entries: Mutex<Vec<Entry>>,
}

impl Checkouts {
    /// None yet: checkouts of `mirrors` below `work_dir`, keeping `keep`
    /// unused ones; `settings` read with `base` as the folder of relative paths.
    pub(super) fn new(
        settings: Settings,
        base: PathBuf,
        mirrors: Mirrors,
        work_dir: PathBuf,
        keep: usize,
    ) -> Checkouts {
        Checkouts { settings, base, mirrors, work_dir, keep: keep.max(1), entries: Mutex::default() }
    }

    /// The commit of `work` for the run `run`, checked out (once) and set up.
    pub(super) async fn get(self: &Arc<Self>, run: &RunId, work: &Work) -> Result<Arc<Prepared>, Diagnostic> {
        let key: Key = (run.to_string(), work.source.repository.clone(), work.source.commit.clone());
        let (cell, evicted) = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let cell = match entries.iter_mut().find(|entry| entry.key == key) {
                Some(entry) => {
                    entry.used = Instant::now();
                    entry.cell.clone()
                }
                None => {
                    let cell = Arc::new(OnceCell::new());
                    entries.push(Entry { key: key.clone(), cell: cell.clone(), used: Instant::now() });
                    cell
                }
            };
            (cell, evict(&mut entries, self.keep, &key))
        };
        // Not on the job's way: removing a work tree may wait for its mirror.
        drop(tokio::task::spawn_blocking(move || drop(evicted)));
        let checkouts = self.clone();
        let work = work.clone();
        let prepared = cell
            .get_or_try_init(|| async move {
                // Git and the file system: never on the runtime's workers.
                tokio::task::spawn_blocking(move || checkouts.prepare(&work).map(Arc::new))
                    .await
                    .unwrap_or_else(|e| Err(Diagnostic::new(format!("internal error: the checkout failed: {e}"))))
            })
            .await
            .cloned();
        if prepared.is_err() {
            // Tried again by the next job that needs it.
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.retain(|entry| entry.key != key || entry.cell.initialized());
        }
        prepared
    }

    /// Lets every checkout go: each is removed once no job uses it. Blocking.
    pub(super) fn clear(&self) {
        let entries = std::mem::take(&mut *self.entries.lock().unwrap_or_else(PoisonError::into_inner));
        drop(entries);
    }

    /// Checks `work`'s commit out and sets it up. Blocking.
    fn prepare(&self, work: &Work) -> Result<Prepared, Diagnostic> {
        let source = &work.source;
        let repository = &source.repository;
        // A commit the mirror has needs no network (nor credentials, which may have expired).
        if !self.mirrors.has_commit(repository, &source.commit) {
            let (token, reference) = (source.token.as_deref(), source.reference.as_deref());
            self.mirrors.fetch(repository, &source.clone_url, token, &source.commit, reference)?;
        }
        let folder = self.work_dir.join("checkouts").join(uuid::Uuid::now_v7().simple().to_string());
        let checkout = self.mirrors.checkout(repository, &source.commit, &folder)?;
        let root = checkout.dir().to_path_buf();
        let mut settings = self.settings.clone();
        settings.github.repository = Some(repository.clone());
        // `fs` stores named relative to where the configuration was read: this executor's, per repository.
        let stores = self.work_dir.join("stores").join(repository.replace('/', "+"));
        settings.rebase_store_folders(&self.base, &stores);
        let manifest = Workspace::read_source(&root, crate::config::MANIFEST).map_err(Diagnostics::into_first)?;
        let (workspace, _) = workspace(&root, &mut settings, manifest).map_err(Diagnostics::into_first)?;
        let plugins = Arc::new(plugin_session(settings)?);
        Ok(Prepared { checkout, workspace, plugins })
    }
}

/// Takes out of `entries` the least recently used checkouts no job uses
/// beyond `keep` (never `wanted`'s): for the caller to drop, off the runtime.
fn evict(entries: &mut Vec<Entry>, keep: usize, wanted: &Key) -> Vec<Entry> {
    let mut evicted = Vec::new();
    while entries.len() > keep {
        let unused = entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.key != *wanted)
            .filter(|(_, entry)| entry.cell.get().is_some_and(|prepared| Arc::strong_count(prepared) == 1))
            .min_by_key(|(_, entry)| entry.used)
            .map(|(at, _)| at);
        match unused {
            Some(at) => evicted.push(entries.remove(at)),
            // Every one is in use: kept until a later call.
            None => break,
        }
    }
    evicted
}

/// Drops `value` on a blocking thread: removing a work tree runs git.
pub(super) async fn drop_blocking<T: Send + 'static>(value: T) {
    let _ = tokio::task::spawn_blocking(move || drop(value)).await;
}
