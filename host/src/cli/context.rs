//! What every command needs: the repository, its validated workspace and
//! dependency graph, and — for commands about a change — the plan.

use std::path::{Path, PathBuf};

use super::RangeArgs;
use crate::affected::{self, Detection};
use crate::config::{MANIFEST, Providers, Workspace};
use crate::diagnostic::Diagnostics;
use crate::graph::DependencyGraph;
use crate::graph::plan::Plan;
use crate::render::plan::Report;
use crate::scm::{self, ChangeSet, Git, Selection};

/// A loaded repository.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) workspace: Workspace,
    pub(crate) graph: DependencyGraph,
    pub(crate) providers: Providers,
    git: Git,
}

/// The plan for a change, with what it was computed from.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) changes: ChangeSet,
    pub(crate) detection: Detection,
    pub(crate) plan: Plan,
}

impl Context {
    /// Finds the repository from `repo` (or the current folder) and loads it.
    pub(crate) fn load(repo: Option<&Path>, providers: Providers) -> Result<Context, Diagnostics> {
        let start = repo.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let root = scm::find_root(&start)?;
        let shown_as = shown_path(&root.join(MANIFEST));
        let workspace = Workspace::load(&root, &shown_as, &providers)?;
        let graph = DependencyGraph::from_workspace(&workspace)?;
        tracing::debug!(packages = workspace.packages.len(), root = %root.display(), "workspace loaded");
        Ok(Context {
            git: Git::new(&root),
            workspace,
            graph,
            providers,
        })
    }

    /// Computes the plan for the selected changes.
    pub(crate) fn plan(&self, range: &RangeArgs) -> Result<Planned, Diagnostics> {
        let selection = Selection {
            base: range.base.clone(),
            head: Some(range.head.clone()),
            default_branch: range.default_branch.clone(),
            worktree: range.worktree,
        };
        let changes = scm::changes(&self.git, &selection)?;
        tracing::debug!(
            files = changes.files.len(),
            commits = changes.commits.len(),
            "changes read"
        );
        let mut detection =
            affected::detect(&self.workspace, &self.providers, &self.git, &changes)?;
        let seeds = std::mem::take(&mut detection.seeds);
        let plan = if detection.nobuild.is_some() {
            Plan::default()
        } else {
            Plan::compute(&self.graph, seeds)
        };
        Ok(Planned {
            changes,
            detection,
            plan,
        })
    }
}

impl Planned {
    /// The printable report.
    pub(crate) fn report<'a>(&'a self, context: &'a Context) -> Report<'a> {
        Report {
            workspace: &context.workspace,
            changes: &self.changes,
            detection: &self.detection,
            plan: &self.plan,
        }
    }
}

/// A path as the user should see it: relative to the current folder when inside it.
fn shown_path(path: &Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|cwd| {
        let cwd = cwd.canonicalize().ok()?;
        let path = path.parent()?.canonicalize().ok()?.join(path.file_name()?);
        path.strip_prefix(&cwd).ok().map(Path::to_path_buf)
    });
    relative
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
