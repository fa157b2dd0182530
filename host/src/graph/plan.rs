//! The plan: the changed packages plus everything that depends on them, in
//! dependency order, each with the reason it is there.

use std::collections::VecDeque;

use super::DependencyGraph;

/// How a package's entry in `loktar.json` differs from the base revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestChange {
    /// The entry is new.
    Added,
    /// The entry changed.
    Modified,
    /// The base `loktar.json` could not be read, so every entry counts as changed.
    Uncomparable,
}

/// Why one package is directly affected by the change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// Files of the package that changed.
    pub files: Vec<String>,
    /// How its `loktar.json` entry changed, if it did.
    pub manifest: Option<ManifestChange>,
    /// When set, the change does not reach dependents: every commit touching
    /// the package carried only these exclusion keywords.
    pub held_back: Option<Vec<String>>,
}

/// One reason a package is in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Its own files or entry changed.
    Changed,
    /// A package it depends on is in the plan.
    Dependency(usize),
}

/// One package in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index of the package in the workspace.
    pub package: usize,
    /// 0 for packages with no dependency in the plan, else one more than the highest.
    pub level: usize,
    /// What changed in the package itself, if anything (boxed: most steps
    /// of a large plan are dependents, with no seed).
    pub seed: Option<Box<Seed>>,
    /// Dependencies in the plan that pulled this package in.
    pub because_of: Vec<usize>,
    /// The first dependency that reached this package: follow it for the shortest chain to a change.
    pub via: Option<usize>,
}

/// The affected packages, in dependency order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Steps sorted by level, then by package order in `loktar.json`.
    pub steps: Vec<Step>,
    /// For each package index, its position in `steps`.
    position: Vec<Option<usize>>,
}

impl Plan {
    /// Computes the plan from the packages that changed directly (`seeds[i]`
    /// for package `i`).
    pub fn compute(graph: &DependencyGraph, seeds: Vec<Option<Box<Seed>>>) -> Plan {
        let mut included = vec![false; graph.len()];
        let mut via: Vec<Option<usize>> = vec![None; graph.len()];
        let mut queue = VecDeque::new();
        for (package, seed) in seeds.iter().enumerate() {
            if let Some(seed) = seed {
                included[package] = true;
                if seed.held_back.is_none() {
                    queue.push_back(package);
                }
            }
        }
        // Breadth first, so `via` always points along a shortest chain.
        let mut propagated = vec![false; graph.len()];
        while let Some(package) = queue.pop_front() {
            if std::mem::replace(&mut propagated[package], true) {
                continue;
            }
            for dependent in graph.dependents(package) {
                if !included[dependent] {
                    included[dependent] = true;
                    via[dependent] = Some(package);
                }
                if !propagated[dependent] {
                    queue.push_back(dependent);
                }
            }
        }
        let levels = graph.levels(&included);
        let mut seeds = seeds;
        // Order by level, then workspace order, before building the steps:
        // sorting small keys is cheaper than moving whole steps around.
        let mut order: Vec<(usize, usize)> =
            (0..graph.len()).filter(|&p| included[p]).map(|p| (levels[p].unwrap_or(0), p)).collect();
        order.sort_unstable();
        let steps: Vec<Step> = order
            .into_iter()
            .map(|(level, package)| {
                let seed = seeds[package].take();
                // Only dependencies whose change propagates pull a package in.
                let because_of =
                    graph.dependencies(package).filter(|&d| included[d] && propagated[d]).collect::<Vec<_>>();
                let mut because_of = because_of;
                because_of.sort_unstable();
                Step { package, level, seed, because_of, via: via[package] }
            })
            .collect();
        let mut position = vec![None; graph.len()];
        for (i, step) in steps.iter().enumerate() {
            position[step.package] = Some(i);
        }
        Plan { steps, position }
    }

    /// The step of a package, if it is in the plan.
    pub fn step(&self, package: usize) -> Option<&Step> {
        self.position.get(package).copied().flatten().map(|i| &self.steps[i])
    }

    /// Whether the package is in the plan.
    pub fn contains(&self, package: usize) -> bool {
        self.step(package).is_some()
    }

    /// The chain from a changed package to `package`: `[changed, …, package]`.
    pub fn chain(&self, package: usize) -> Vec<usize> {
        let mut chain = vec![package];
        let mut current = package;
        while let Some(next) = self.step(current).and_then(|s| if s.seed.is_some() { None } else { s.via }) {
            chain.push(next);
            current = next;
        }
        chain.reverse();
        chain
    }

    /// The steps grouped by level.
    pub fn levels(&self) -> Vec<&[Step]> {
        self.steps.chunk_by(|a, b| a.level == b.level).collect()
    }
}
