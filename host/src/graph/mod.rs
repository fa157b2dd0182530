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
}

impl DependencyGraph {
    /// Builds the graph from each package's `depends_on` (names already validated).
    pub fn from_workspace(workspace: &Workspace) -> Result<Self, Diagnostic> {
        let edges = workspace
            .packages
            .iter()
            .enumerate()
            .flat_map(|(from, package)| {
                package
                    .depends_on
                    .iter()
                    .filter_map(move |name| workspace.index_of(name).map(|to| Edge { from, to }))
            });
        Self::build(workspace, edges)
    }

    /// Builds the graph from explicit edges.
    pub fn build(
        workspace: &Workspace,
        edges: impl IntoIterator<Item = Edge>,
    ) -> Result<Self, Diagnostic> {
        let mut graph =
            DiGraph::with_capacity(workspace.packages.len(), workspace.packages.len() * 2);
        for _ in &workspace.packages {
            graph.add_node(());
        }
        for Edge { from, to } in edges {
            graph.update_edge(NodeIndex::new(from), NodeIndex::new(to), ());
        }
        let order = dependency_order(&graph).map_err(|cycle| cycle_error(workspace, &cycle))?;
        Ok(DependencyGraph { graph, order })
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether there are no packages.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The packages `package` depends on directly.
    pub fn dependencies(&self, package: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(package), Direction::Outgoing)
            .map(NodeIndex::index)
    }

    /// The packages that depend on `package` directly.
    pub fn dependents(&self, package: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(package), Direction::Incoming)
            .map(NodeIndex::index)
    }

    /// Every edge, as (dependent, dependency).
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        self.graph.raw_edges().iter().map(|e| Edge {
            from: e.source().index(),
            to: e.target().index(),
        })
    }

    /// Packages in dependency order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The level of each package among those `included`: 0 when none of its
    /// included dependencies exists, otherwise one more than the highest of them.
    /// Packages not included get `None`.
    pub fn levels(&self, included: &[bool]) -> Vec<Option<usize>> {
        let mut levels = vec![None; self.len()];
        for &package in &self.order {
            if !included[package] {
                continue;
            }
            let level = self
                .dependencies(package)
                .filter_map(|d| levels[d])
                .max()
                .map_or(0, |l: usize| l + 1);
            levels[package] = Some(level);
        }
        levels
    }
}

/// Orders the nodes so that every node comes after the nodes it points to,
/// or returns a cycle (as a list of nodes, the first repeated at the end).
fn dependency_order(graph: &DiGraph<(), ()>) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; graph.node_count()];
    let mut order = Vec::with_capacity(graph.node_count());
    // An explicit stack keeps deep dependency chains off the call stack.
    let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
    for start in 0..graph.node_count() {
        if marks[start] != Mark::New {
            continue;
        }
        marks[start] = Mark::Open;
        stack.push((start, successors(graph, start)));
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) => match marks[next] {
                    Mark::New => {
                        marks[next] = Mark::Open;
                        stack.push((next, successors(graph, next)));
                    }
                    Mark::Open => {
                        let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(next);
                        return Err(cycle);
                    }
                    Mark::Done => {}
                },
                None => {
                    marks[node] = Mark::Done;
                    order.push(node);
                    stack.pop();
                }
            }
        }
    }
    Ok(order)
}

fn successors(graph: &DiGraph<(), ()>, node: usize) -> Vec<usize> {
    let mut next: Vec<usize> = graph
        .neighbors(NodeIndex::new(node))
        .map(NodeIndex::index)
        .collect();
    // Visit in declaration order so the reported cycle is stable.
    next.sort_unstable_by(|a, b| b.cmp(a));
    next
}

fn cycle_error(workspace: &Workspace, cycle: &[usize]) -> Diagnostic {
    let names: Vec<String> = cycle
        .iter()
        .map(|&i| format!("`{}`", workspace.packages[i].name))
        .collect();
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
