//! Output formats: plans and graphs as text for people, JSON for tools, DOT
//! for Graphviz and SVG drawn without any tool; run summaries and records.

pub mod dot;
pub mod graph;
pub mod plan;
pub mod run;
pub mod svg;

use crate::config::Workspace;
use crate::graph::DependencyGraph;
use crate::graph::plan::Plan;

/// How to print a plan or a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// JSON with a stable, documented shape.
    Json,
    /// Graphviz DOT.
    Dot,
    /// An SVG picture, drawn by Loktar itself.
    Svg,
}

/// Why a node is drawn the way it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its own files or entry changed.
    Changed,
    /// It is affected through a dependency.
    Dependent,
    /// Not affected (whole-graph views).
    Unaffected,
}

/// One package to draw.
#[derive(Debug, Clone)]
pub struct Node {
    /// Index of the package in the workspace.
    pub package: usize,
    /// Its level (column).
    pub level: usize,
    /// Its colour.
    pub state: State,
}

/// Packages and dependency edges to draw: the whole graph or the plan.
#[derive(Debug)]
pub struct View<'a> {
    /// The workspace the indices refer to.
    pub workspace: &'a Workspace,
    /// Nodes sorted by level, then workspace order.
    pub nodes: Vec<Node>,
    /// Edges as (dependent, dependency), indices into `nodes`, sorted.
    pub edges: Vec<(usize, usize)>,
    /// For each node, the nodes it depends on.
    dependencies: Vec<Vec<usize>>,
}

impl<'a> View<'a> {
    /// Every package and every dependency.
    pub fn whole(workspace: &'a Workspace, graph: &DependencyGraph) -> Self {
        let levels = graph.levels();
        let mut nodes: Vec<Node> = (0..graph.len())
            .map(|package| Node { package, level: levels[package], state: State::Unaffected })
            .collect();
        nodes.sort_by_key(|n| (n.level, n.package));
        Self::with_edges(workspace, graph, nodes)
    }

    /// The packages of the plan and the dependencies between them.
    pub fn of_plan(workspace: &'a Workspace, graph: &DependencyGraph, plan: &Plan) -> Self {
        let nodes = plan
            .steps
            .iter()
            .map(|step| Node {
                package: step.package,
                level: step.level,
                state: if step.seed.is_some() { State::Changed } else { State::Dependent },
            })
            .collect();
        Self::with_edges(workspace, graph, nodes)
    }

    fn with_edges(workspace: &'a Workspace, graph: &DependencyGraph, nodes: Vec<Node>) -> Self {
        let mut index = vec![None; graph.len()];
        for (i, node) in nodes.iter().enumerate() {
            index[node.package] = Some(i);
        }
        let mut edges: Vec<(usize, usize)> =
            graph.edges().filter_map(|edge| Some((index[edge.from]?, index[edge.to]?))).collect();
        edges.sort_unstable();
        let mut dependencies = vec![Vec::new(); nodes.len()];
        for &(from, to) in &edges {
            dependencies[from].push(to);
        }
        View { workspace, nodes, edges, dependencies }
    }

    /// The nodes a node depends on.
    pub fn dependencies(&self, node: usize) -> &[usize] {
        &self.dependencies[node]
    }

    /// The name of a node's package.
    pub fn name(&self, node: usize) -> &str {
        &self.workspace.packages[self.nodes[node].package].name
    }
}

/// Pads `text` to `width` characters.
fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(len)))
}
