//! What a run will do, decided before it starts: each package in
//! dependency order with its stages and the packages of the run it waits
//! for, where and why the run happens, and who hears of it. Front ends
//! build it (the `app` layer), the pipeline executes it, and the events of
//! the run refer to its packages.

use std::path::{Path, PathBuf};

use super::scheduler;
use super::stage::{Stage, StagePlan};
use crate::events::RunId;
use loktar_config::Package;
use loktar_runtime::bindings::types::RunContext;

/// A run's plan.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The run's identity, unique across machines, given when it is planned.
    pub id: RunId,
    /// The repository root.
    pub root: PathBuf,
    /// The packages, in dependency order.
    pub packages: Vec<PlannedPackage>,
    /// Where and why the run happens, as plugins see it.
    pub context: RunContext,
    /// Concurrency and fail-fast.
    pub options: scheduler::Options,
    /// The notifier plugins, told when the run starts, as each package ends, and when it ends.
    pub notifiers: Vec<String>,
    /// Packages left out because they are already green (`--rebuild`).
    pub not_rebuilt: Vec<NotRebuilt>,
}

/// One package of a plan.
#[derive(Debug, Clone)]
pub struct PlannedPackage {
    /// The package as `loktar.json` declares it.
    pub package: Package,
    /// Its stages, skipped ones included.
    pub stages: Vec<StagePlan>,
    /// The positions, in the plan, of the packages it waits for.
    pub dependencies: Vec<usize>,
    /// Why it is in the run.
    pub why: Why,
    /// The executors' queue its job goes to.
    pub queue: String,
}

/// Why a package is in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Why {
    /// Its files that changed.
    pub changed_files: Vec<String>,
    /// The changed packages it depends on that brought it in.
    pub because_of: Vec<String>,
}

impl PlannedPackage {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.package.name
    }

    /// The stages it goes through: those its configuration does not skip,
    /// `notify` aside (notifiers hear of every package).
    pub fn planned_stages(&self) -> Vec<Stage> {
        super::stage::planned(&self.stages)
    }
}

/// A package `--rebuild` left out: it is green on `commit`.
pub use loktar_protocol::NotRebuilt;

impl RunPlan {
    /// For each package, the positions of the packages it waits for: the
    /// dependency DAG the scheduler walks.
    pub fn dependencies(&self) -> Vec<Vec<usize>> {
        self.packages.iter().map(|package| package.dependencies.clone()).collect()
    }
}

/// The folder of one package in a run's folder: `<run dir>/<package>`, the
/// name made safe as a file name: `%`, `/`, `\`, NUL and a leading `.` are
/// written `%XX`, so that two names never share a folder (`.x` and `_.x`
/// once did).
pub fn package_folder(run_dir: &Path, package: &str) -> PathBuf {
    let mut safe = String::with_capacity(package.len());
    for (index, c) in package.char_indices() {
        match c {
            '%' | '/' | '\\' | '\0' => safe.push_str(&format!("%{:02X}", c as u32)),
            '.' if index == 0 => safe.push_str("%2E"),
            c => safe.push(c),
        }
    }
    run_dir.join(safe)
}

/// Where the log of one stage of a package goes: `<package folder>/<stage>.log`.
pub fn log_path(run_dir: &Path, package: &str, stage: Stage) -> PathBuf {
    package_folder(run_dir, package).join(format!("{}.log", stage.name()))
}

/// Where a package's builders, registries and stores keep its artifacts:
/// `<package folder>/artifacts`.
pub fn artifacts_folder(run_dir: &Path, package: &str) -> PathBuf {
    package_folder(run_dir, package).join("artifacts")
}

#[cfg(test)]
impl RunPlan {
    /// A plan of packages named `names` at the root, with nothing to do, for tests.
    pub(crate) fn of_names(root: &Path, names: &[&str]) -> RunPlan {
        let package = |name: &&str| PlannedPackage {
            package: Package {
                name: (*name).to_string(),
                dir: String::new(),
                pkg_type: None,
                test_type: None,
                kind: None,
                build_info: loktar_config::BuildInfo::default(),
                depends_on: Vec::new(),
                dependencies_type: Vec::new(),
                exclude_keywords: Vec::new(),
                positions: loktar_config::Positions { entry: 0, dir: 0, dir_written: false, depends_on: Vec::new() },
            },
            stages: Vec::new(),
            dependencies: Vec::new(),
            why: Why::default(),
            queue: loktar_settings::DEFAULT_QUEUE.to_string(),
        };
        RunPlan {
            id: RunId::new("test-run"),
            root: root.to_path_buf(),
            packages: names.iter().map(package).collect(),
            context: RunContext {
                run_id: String::new(),
                commit: String::new(),
                branch: None,
                base: None,
                default_branch: String::new(),
                on_default_branch: false,
                commit_time: None,
                repository_url: None,
                author: None,
                settings: "{}".to_string(),
            },
            options: scheduler::Options { concurrency: 1, fail_fast: false },
            notifiers: Vec::new(),
            not_rebuilt: Vec::new(),
        }
    }
}
