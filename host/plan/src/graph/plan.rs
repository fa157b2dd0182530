//! The plan: the changed packages plus everything that depends on them, in
//! dependency order, each with the reason it is there.

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
    /// Where [`Plan::because_of`] finds this step's dependencies in the plan.
    because_of: std::ops::Range<u32>,
    /// The first dependency that reached this package: follow it for the shortest chain to a change.
    pub via: Option<usize>,
}

/// The affected packages, in dependency order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Steps sorted by level, then by package order in `loktar.json`.
    pub steps: Vec<Step>,
    /// For each package index, its position in `steps` (`UNSET` when not in the plan).
    position: Vec<u32>,
    /// Every step's [`Plan::because_of`], one after the other: a list of
    /// its own for each of thousands of steps would cost more to make than
    /// the rest of the plan.
    because_of: Vec<u32>,
}

/// "None" in the plan's per-package tables of `u32`: a workspace has fewer packages.
const UNSET: u32 = u32::MAX;

/// The packages with a level (not `UNSET`), by level and then in workspace
/// order: a counting sort, as levels are few.
fn by_level(level: &[u32]) -> Vec<u32> {
    let levels = level.iter().filter(|&&l| l != UNSET).max().map_or(0, |&highest| highest as usize + 1);
    // Where each level starts in the order, once counted.
    let mut next = vec![0; levels + 1];
    for &l in level.iter().filter(|&&l| l != UNSET) {
        next[l as usize + 1] += 1;
    }
    for l in 1..next.len() {
        next[l] += next[l - 1];
    }
    let mut order = vec![0; next[levels]];
    for (package, &l) in level.iter().enumerate().filter(|&(_, &l)| l != UNSET) {
        order[next[l as usize]] = package as u32;
        next[l as usize] += 1;
    }
    order
}

impl Plan {
    /// Computes the plan from the packages that changed directly (`seeds[i]`
    /// for package `i`).
    ///
    /// One pass over the packages in dependency order: each package's
    /// dependencies are settled before it, so its distance from a change, its
    /// level and the dependencies that pulled it in follow from theirs.
    pub fn compute(graph: &DependencyGraph, mut seeds: Vec<Option<Box<Seed>>>) -> Plan {
        let count = graph.len();
        // How many dependency steps a package is from a change that reaches
        // dependents (`UNSET` if none reaches it), its level if it is in the
        // plan, and its dependency on the shortest such chain.
        let mut distance = vec![UNSET; count];
        let mut level = vec![UNSET; count];
        let mut via = vec![UNSET; count];
        for &package in graph.order() {
            let seed = seeds[package].as_deref();
            let mut nearest = match seed {
                Some(seed) if seed.held_back.is_none() => 0,
                _ => UNSET,
            };
            let mut highest_dependency = None;
            for dependency in graph.dependencies(package) {
                if level[dependency] != UNSET {
                    highest_dependency = highest_dependency.max(Some(level[dependency]));
                }
                let through = distance[dependency].saturating_add(1);
                // Ties go to the dependency listed first in loktar.json, so the chain is stable.
                if through < nearest || (through == nearest && through != UNSET && (dependency as u32) < via[package]) {
                    nearest = through;
                    via[package] = dependency as u32;
                }
            }
            distance[package] = nearest;
            if seed.is_some() || nearest != UNSET {
                level[package] = highest_dependency.map_or(0, |l| l + 1);
            }
        }
        let order = by_level(&level);
        let mut position = vec![UNSET; count];
        let mut because_of = Vec::new();
        let steps: Vec<Step> = order
            .into_iter()
            .enumerate()
            .map(|(index, package)| {
                let package = package as usize;
                position[package] = index as u32;
                let seed = seeds[package].take();
                // Only dependencies whose change reaches dependents pull a
                // package in; they stay in ascending order.
                let first = because_of.len() as u32;
                because_of.extend(graph.dependencies(package).filter(|&d| distance[d] != UNSET).map(|d| d as u32));
                let via = (seed.is_none() && via[package] != UNSET).then_some(via[package] as usize);
                let reasons = first..because_of.len() as u32;
                Step { package, level: level[package] as usize, seed, because_of: reasons, via }
            })
            .collect();
        Plan { steps, position, because_of }
    }

    /// The dependencies in the plan that pulled `step` in, in ascending order.
    pub fn because_of(&self, step: &Step) -> &[u32] {
        self.because_of.get(step.because_of.start as usize..step.because_of.end as usize).unwrap_or_default()
    }

    /// The step of a package, if it is in the plan.
    pub fn step(&self, package: usize) -> Option<&Step> {
        self.position.get(package).filter(|&&i| i != UNSET).map(|&i| &self.steps[i as usize])
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::graph::Edge;
    use loktar_config::{Providers, SourceFile, Workspace, parse};

    /// Packages `p0`, `p1`, … with `edges` as (dependent, dependency), in declaration order.
    fn graph(count: usize, edges: &[(usize, usize)]) -> DependencyGraph {
        let entries: Vec<String> = (0..count).map(|i| format!("{{\"pkg_name\": \"p{i}\"}}")).collect();
        let source = SourceFile::new("loktar.json", format!("{{\"packages\": [{}]}}", entries.join(",")));
        let packages = parse(&source, &Providers::builtin()).expect("valid");
        let workspace = Workspace::new(PathBuf::from("."), source, packages);
        DependencyGraph::build(&workspace, edges.iter().map(|&(from, to)| Edge { from, to })).expect("no cycle")
    }

    fn plan(graph: &DependencyGraph, changed: &[usize], held_back: &[usize]) -> Plan {
        let seeds = (0..graph.len())
            .map(|i| {
                (changed.contains(&i) || held_back.contains(&i)).then(|| {
                    let held_back = held_back.contains(&i).then(|| vec!["DOC".to_string()]);
                    Box::new(Seed { files: vec![format!("p{i}/x")], manifest: None, held_back })
                })
            })
            .collect();
        Plan::compute(graph, seeds)
    }

    fn levels(plan: &Plan) -> Vec<Vec<usize>> {
        plan.levels().iter().map(|level| level.iter().map(|step| step.package).collect()).collect()
    }

    #[test]
    fn dependents_follow_by_level_along_the_shortest_chain() {
        // p3 depends on p1 and p2, both on p0; p4 on p3 and p0; p5 on nothing.
        let graph = graph(6, &[(1, 0), (2, 0), (3, 1), (3, 2), (4, 3), (4, 0)]);
        let plan = plan(&graph, &[0], &[]);
        assert_eq!(levels(&plan), [vec![0], vec![1, 2], vec![3], vec![4]]);
        let step = |p: usize| plan.step(p).expect("in the plan");
        assert_eq!(plan.because_of(step(3)), [1, 2]);
        // Two chains of the same length: the one through the package listed first.
        assert_eq!(plan.chain(3), [0, 1, 3]);
        // The direct dependency on the change is the shortest chain, whatever the level.
        assert_eq!(plan.chain(4), [0, 4]);
        assert_eq!(step(4).level, 3);
        assert!(!plan.contains(5));
        assert_eq!(step(0).via, None);
        // The tie goes the same way whichever dependency was declared first.
        let swapped = self::graph(6, &[(1, 0), (2, 0), (3, 2), (3, 1), (4, 3), (4, 0)]);
        assert_eq!(self::plan(&swapped, &[0], &[]).chain(3), [0, 1, 3]);
    }

    #[test]
    fn packages_are_ordered_by_level_then_in_workspace_order() {
        assert_eq!(by_level(&[2, UNSET, 0, 2, 1, 0]), [2, 5, 4, 0, 3]);
        assert!(by_level(&[UNSET, UNSET]).is_empty());
        assert!(by_level(&[]).is_empty());
    }

    #[test]
    fn a_held_back_change_reaches_no_dependent_unless_another_change_reaches_it() {
        // p1 depends on p0; p0 depends on p2.
        let graph = graph(3, &[(1, 0), (0, 2)]);
        let alone = plan(&graph, &[], &[0]);
        assert_eq!(levels(&alone), [vec![0]]);
        assert!(alone.because_of(alone.step(0).expect("changed")).is_empty());

        let reached = plan(&graph, &[2], &[0]);
        assert_eq!(levels(&reached), [vec![2], vec![0], vec![1]]);
        assert_eq!(reached.because_of(reached.step(0).expect("changed")), [2]);
        assert_eq!(reached.chain(1), [0, 1]);
    }
}
