//! What a change touches, from git to a plan: the changed files and commits
//! of a range or pull request ([`scm`]), the dependency graph and the plan
//! drawn from it ([`graph`]), the packages a change affects ([`affected`]),
//! and whether a package needs rebuilding at all ([`rebuild`]).

pub mod affected;
pub mod graph;
pub mod rebuild;
pub mod scm;
