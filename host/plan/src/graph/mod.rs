//! The dependency graph of the workspace's packages.
//!
//! Node `i` is package `i` of the workspace; an edge `a → b` means "`a`
//! depends on `b`". The graph is checked for cycles when it is built, so
//! everything downstream can rely on a DAG.

pub mod plan;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Dfs;

use loktar_config::Workspace;
use loktar_support::diagnostic::Diagnostic;

/// A dependency between two packages and where it was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The package that depends.
    pub from: usize,
    /// The package it depends on.
    pub to: usize,
}

/// Packages and their dependencies, free of cycles.
#[derive(Debug)]
pub struct DependencyGraph {
    graph: DiGraph<(), ()>,
    /// Packages in dependency order: by level, then in `loktar.json` order.
    order: Vec<usize>,
    /// Each package's level: see [`DependencyGraph::levels`].
    levels: Vec<usize>,
}

impl DependencyGraph {
    /// Builds the graph from each package's `depends_on` (names already
    /// validated) and the edges discovery plugins found.
    pub fn from_workspace(workspace: &Workspace, discovered: &[Edge]) -> Result<Self, Diagnostic> {
        let declared = workspace.declared_dependencies().map(|(from, to)| Edge { from, to });
        Self::build(workspace, declared.chain(discovered.iter().cloned()))
    }

    /// Builds the graph from explicit edges.
    pub fn build(workspace: &Workspace, edges: impl IntoIterator<Item = Edge>) -> Result<Self, Diagnostic> {
        let mut graph = DiGraph::with_capacity(workspace.packages.len(), workspace.packages.len() * 2);
        for _ in &workspace.packages {
            graph.add_node(());
        }
        for Edge { from, to } in edges {
            graph.update_edge(NodeIndex::new(from), NodeIndex::new(to), ());
        }
        let levels = levels(&graph).map_err(|()| cycle_error(workspace, &find_cycle(&graph)))?;
        let mut order: Vec<usize> = (0..graph.node_count()).collect();
        order.sort_by_key(|&package| (levels[package], package));
        Ok(DependencyGraph { graph, order, levels })
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether there are no packages.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The packages `package` depends on directly, in ascending order.
    pub fn dependencies(&self, package: usize) -> impl Iterator<Item = usize> + '_ {
        sorted_dependencies(&self.graph, package).into_iter()
    }

    /// The packages that depend on `package` directly.
    pub fn dependents(&self, package: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors_directed(NodeIndex::new(package), Direction::Incoming).map(NodeIndex::index)
    }

    /// Every edge, as (dependent, dependency).
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        self.graph.raw_edges().iter().map(|e| Edge { from: e.source().index(), to: e.target().index() })
    }

    /// For each package, whether it is one of `packages` or something they
    /// depend on, directly or not.
    pub fn with_dependencies(&self, packages: impl IntoIterator<Item = usize>) -> Vec<bool> {
        let mut reached = vec![false; self.len()];
        let mut walk = Dfs::empty(&self.graph);
        for package in packages {
            walk.move_to(NodeIndex::new(package));
            while let Some(node) = walk.next(&self.graph) {
                reached[node.index()] = true;
            }
        }
        reached
    }

    /// Packages in dependency order, every package after all of its
    /// dependencies: by level, then in `loktar.json` order, as `loktar plan`
    /// lists them.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The level of each package: 0 when it depends on nothing, otherwise one
    /// more than the highest of its dependencies. (A plan's levels count only
    /// the dependencies in the plan: see `Plan::compute`.)
    pub fn levels(&self) -> Vec<usize> {
        self.levels.clone()
    }
}

/// Each node's level (0 when it points to nothing, else one more than the
/// highest node it points to), or `Err` when the graph has a cycle.
fn levels(graph: &DiGraph<(), ()>) -> Result<Vec<usize>, ()> {
    let sorted = petgraph::algo::toposort(graph, None).map_err(drop)?;
    let mut levels = vec![0; graph.node_count()];
    // Edges point at dependencies, so the sort lists dependents first: walk it backwards.
    for node in sorted.iter().rev() {
        levels[node.index()] = graph.neighbors(*node).map(|d| levels[d.index()] + 1).max().unwrap_or(0);
    }
    Ok(levels)
}

/// One cycle of a graph that has some, as its nodes with the first repeated
/// at the end: from the lowest node on a cycle, following the lowest node it
/// points to on the same cycle. (`tarjan_scc` finds the nodes on cycles, not
/// a path through them.)
fn find_cycle(graph: &DiGraph<(), ()>) -> Vec<usize> {
    let mut component = vec![None; graph.node_count()];
    for (id, nodes) in petgraph::algo::tarjan_scc(graph).into_iter().enumerate() {
        let on_cycle = nodes.len() > 1 || nodes.iter().any(|&node| graph.contains_edge(node, node));
        if on_cycle {
            nodes.iter().for_each(|node| component[node.index()] = Some(id));
        }
    }
    let Some(start) = component.iter().position(Option::is_some) else { return Vec::new() };
    let mut path = vec![start];
    loop {
        let current = path[path.len() - 1];
        let same_cycle = |next: &usize| component[*next] == component[start];
        // Every node on a cycle points to another node of its cycle.
        let Some(next) = sorted_dependencies(graph, current).into_iter().find(same_cycle) else { return path };
        if let Some(at) = path.iter().position(|&seen| seen == next) {
            let mut cycle = path.split_off(at);
            cycle.push(next);
            return cycle;
        }
        path.push(next);
    }
}

/// The nodes `node` points to, in ascending order (petgraph lists them
/// newest edge first), so plans and reported cycles do not depend on the
/// order the edges were found in.
fn sorted_dependencies(graph: &DiGraph<(), ()>, node: usize) -> Vec<usize> {
    let mut next: Vec<usize> = graph.neighbors(NodeIndex::new(node)).map(NodeIndex::index).collect();
    next.sort_unstable();
    next
}

fn cycle_error(workspace: &Workspace, cycle: &[usize]) -> Diagnostic {
    let names: Vec<String> = cycle.iter().map(|&i| format!("`{}`", workspace.packages[i].name)).collect();
    let mut diagnostic = Diagnostic::new(format!("dependency cycle: {}", names.join(" → "))).hint(
        "each arrow reads \"depends on\"; a package cannot depend on itself, even through others: remove one of these dependencies",
    );
    if let [first, second, ..] = cycle {
        let (first, second) = (&workspace.packages[*first], &workspace.packages[*second].name);
        let declared = first.depends_on.iter().position(|d| d == second);
        if let Some(&offset) = declared.and_then(|i| first.positions.depends_on.get(i)) {
            diagnostic = diagnostic.at(workspace.manifest.location(offset));
        }
    }
    diagnostic
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use loktar_config::{Providers, SourceFile, parse};

    /// Packages `p0`, `p1`, … with `edges` as (dependent, dependency), in declaration order.
    fn build(count: usize, edges: &[(usize, usize)]) -> Result<DependencyGraph, Diagnostic> {
        let entries: Vec<String> = (0..count).map(|i| format!("{{\"pkg_name\": \"p{i}\"}}")).collect();
        let source = SourceFile::new("loktar.json", format!("{{\"packages\": [{}]}}", entries.join(",")));
        let packages = parse(&source, &Providers::builtin()).expect("valid");
        let workspace = Workspace::new(PathBuf::from("."), source, packages);
        DependencyGraph::build(&workspace, edges.iter().map(|&(from, to)| Edge { from, to }))
    }

    #[test]
    fn orders_by_level_then_as_declared() {
        // p1 and p2 depend on p0, p3 on p2 and p1; p4 on nothing.
        let graph = build(5, &[(1, 0), (2, 0), (3, 2), (3, 1)]).expect("no cycle");
        assert_eq!(graph.order(), [0, 4, 1, 2, 3]);
        assert_eq!(graph.with_dependencies([3]), [true, true, true, true, false]);
        assert_eq!(graph.with_dependencies([1, 4]), [true, true, false, false, true]);
        assert_eq!(graph.dependencies(3).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(graph.levels(), [0, 1, 1, 2, 0]);
    }

    #[test]
    fn reports_the_cycle_of_the_first_package_on_one() {
        // p0 depends on p3, which is in the loop p3 → p1 → p2 → p3; p4 loops on itself.
        let cycle = |edges: &[(usize, usize)]| build(5, edges).expect_err("a cycle").message;
        assert_eq!(cycle(&[(0, 3), (3, 1), (1, 2), (2, 3), (4, 4)]), "dependency cycle: `p1` → `p2` → `p3` → `p1`");
        // p1 is on two loops: the one through its lowest dependency is shown.
        assert_eq!(cycle(&[(1, 3), (3, 1), (1, 2), (2, 1)]), "dependency cycle: `p1` → `p2` → `p1`");
        assert_eq!(cycle(&[(4, 4)]), "dependency cycle: `p4` → `p4`");
    }
}
