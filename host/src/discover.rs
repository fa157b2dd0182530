//! Dependencies found by discovery plugins (`dependencies_type`): names a
//! plugin finds in a package's files that match another package become
//! edges of the dependency graph, beside those written in `depends_on`.

use crate::config::Workspace;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::graph::Edge;
use crate::runtime::{CallEnv, Mounts, PluginSession};

/// A dependency a plugin found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The edge it adds.
    pub edge: Edge,
    /// The plugin that found it.
    pub plugin: String,
    /// The file it was found in, relative to the package folder.
    pub source: String,
}

/// The edges of what was found.
pub fn found_edges(found: &[Discovered]) -> Vec<Edge> {
    found.iter().map(|discovered| discovered.edge.clone()).collect()
}

/// Whether any package asks for discovery, so the plugin host is needed at all.
pub fn needed(workspace: &Workspace) -> bool {
    workspace.packages.iter().any(|p| !p.dependencies_type.is_empty())
}

/// What the discovery plugins found, and where they failed.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The dependencies found.
    pub found: Vec<Discovered>,
    /// Each plugin that failed on a package, naming both.
    pub problems: Vec<Diagnostic>,
}

impl Discovery {
    /// The dependencies, or every problem.
    pub fn into_result(self) -> Result<Vec<Discovered>, Diagnostics> {
        if self.problems.is_empty() { Ok(self.found) } else { Err(Diagnostics(self.problems)) }
    }
}

/// Runs every package's discovery plugins and keeps the names that are packages.
pub async fn discover(workspace: &Workspace, plugins: &PluginSession) -> Discovery {
    let by_normalized: std::collections::HashMap<String, usize> =
        workspace.packages.iter().enumerate().map(|(i, p)| (normalize(&p.name), i)).collect();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (from, package) in workspace.packages.iter().enumerate() {
        let env = CallEnv::with_mounts(Mounts {
            root: workspace.root.clone(),
            package: package.dir.clone(),
            artifacts: None,
        });
        for plugin in &package.dependencies_type {
            match plugins.discover(plugin, package, &env).await {
                Ok(outcome) => {
                    for dependency in outcome.value {
                        let Some(&to) = by_normalized.get(&normalize(&dependency.name)) else {
                            continue;
                        };
                        if to != from {
                            found.push(Discovered {
                                edge: Edge { from, to },
                                plugin: plugin.clone(),
                                source: dependency.source,
                            });
                        }
                    }
                }
                Err(error) => problems
                    .push(error.problem.context(format!("package `{}`: dependency discovery failed", package.name))),
            }
        }
    }
    Discovery { found, problems }
}

/// Names compare the way Python distributions do (PEP 503): case and runs of `-`, `_`, `.` do not matter.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
        } else {
            if separator && !out.is_empty() {
                out.push('-');
            }
            separator = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_like_pep_503() {
        assert_eq!(normalize("Awesome_Lib"), normalize("awesome-lib"));
        assert_eq!(normalize("a.b__c"), "a-b-c");
        assert_ne!(normalize("ab"), normalize("a-b"));
    }
}
