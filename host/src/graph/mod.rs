//! The dependency graph of the workspace's packages.
//!
//! Node `i` is package `i` of the workspace; an edge `a → b` means "`a`
//! depends on `b`". The graph is checked for cycles when it is built, so
//! everything downstream can rely on a DAG.

pub mod plan;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::config::Workspace;
use crate::diagnostic::Diagnostic;

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
    /// Packages in dependency order: every package after all of its dependencies.
    order: Vec<usize>,
    /// Each package's dependencies in ascending order, one package after the
    /// other: package `i`'s are `dependencies[starts[i]..starts[i + 1]]`.
    /// A plan visits them for every package, and a slice is quicker to walk
    /// than petgraph's lists, linked through the edges.
    dependencies: Vec<u32>,
    starts: Vec<u32>,
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
        let order = dependency_order(&graph).map_err(|cycle| cycle_error(workspace, &cycle))?;
        let mut dependencies = Vec::with_capacity(graph.edge_count());
        let mut starts = Vec::with_capacity(graph.node_count() + 1);
        starts.push(0);
        for package in graph.node_indices() {
            let first = dependencies.len();
            dependencies.extend(graph.neighbors(package).map(|dependency| dependency.index() as u32));
            dependencies[first..].sort_unstable();
            starts.push(dependencies.len() as u32);
        }
        Ok(DependencyGraph { graph, order, dependencies, starts })
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
        self.dependency_slice(package).iter().map(|&dependency| dependency as usize)
    }

    /// [`DependencyGraph::dependencies`] as the graph keeps them, for
    /// callers that store package indices as `u32` too.
    pub fn dependency_slice(&self, package: usize) -> &[u32] {
        match (self.starts.get(package), self.starts.get(package + 1)) {
            (Some(&start), Some(&end)) => &self.dependencies[start as usize..end as usize],
            _ => &[],
        }
    }

    /// The packages that depend on `package` directly.
    pub fn dependents(&self, package: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors_directed(NodeIndex::new(package), Direction::Incoming).map(NodeIndex::index)
    }

    /// Every edge, as (dependent, dependency).
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        self.graph.raw_edges().iter().map(|e| Edge { from: e.source().index(), to: e.target().index() })
    }

    /// Packages in dependency order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The level of each package: 0 when it depends on nothing, otherwise one
    /// more than the highest of its dependencies. (A plan's levels count only
    /// the dependencies in the plan: see `Plan::compute`.)
    pub fn levels(&self) -> Vec<usize> {
        let mut levels = vec![0; self.len()];
        for &package in &self.order {
            levels[package] = self.dependencies(package).map(|d| levels[d] + 1).max().unwrap_or(0);
        }
        levels
    }
}

/// Orders the nodes so that every node comes after the nodes it points to
/// (Kahn's algorithm), or returns a cycle (its nodes, the first repeated at the end).
fn dependency_order(graph: &DiGraph<(), ()>) -> Result<Vec<usize>, Vec<usize>> {
    let count = graph.node_count();
    let mut waiting_on: Vec<usize> = (0..count).map(|n| graph.neighbors(NodeIndex::new(n)).count()).collect();
    // Sized for every node up front: growing it step by step would copy it
    // into fresh memory again and again.
    let mut order = Vec::with_capacity(count);
    order.extend((0..count).filter(|&n| waiting_on[n] == 0));
    let mut next = 0;
    while let Some(&node) = order.get(next) {
        next += 1;
        for dependent in graph.neighbors_directed(NodeIndex::new(node), Direction::Incoming) {
            let dependent = dependent.index();
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                order.push(dependent);
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }
    // Every node left waits on another node left: walking dependencies from
    // any of them must come back to a node already seen.
    let start = (0..count).find(|&n| waiting_on[n] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut seen_at = vec![None; count];
    seen_at[start] = Some(0);
    loop {
        let current = path[path.len() - 1];
        let Some(next) = successors(graph, current).into_iter().find(|&d| waiting_on[d] > 0) else {
            return Err(path);
        };
        if let Some(at) = seen_at[next] {
            let mut cycle = path.split_off(at);
            cycle.push(next);
            return Err(cycle);
        }
        seen_at[next] = Some(path.len());
        path.push(next);
    }
}

/// The nodes `node` points to, in declaration order so the reported cycle is stable.
fn successors(graph: &DiGraph<(), ()>, node: usize) -> Vec<usize> {
    let mut next: Vec<usize> = graph.neighbors(NodeIndex::new(node)).map(NodeIndex::index).collect();
    next.sort_unstable();
    next
}

fn cycle_error(workspace: &Workspace, cycle: &[usize]) -> Diagnostic {
    let names: Vec<String> = cycle.iter().map(|&i| format!("`{}`", workspace.packages[i].name)).collect();
    let first = &workspace.packages[cycle[0]];
    let second = &workspace.packages[cycle[1]].name;
    let mut diagnostic = Diagnostic::new(format!("dependency cycle: {}", names.join(" → "))).hint(
        "each arrow reads \"depends on\"; a package cannot depend on itself, even through others: remove one of these dependencies",
    );
    let declared = first.depends_on.iter().position(|d| d == second);
    if let Some(&offset) = declared.and_then(|i| first.positions.depends_on.get(i)) {
        diagnostic = diagnostic.at(workspace.manifest.location(offset));
    }
    diagnostic
}
