//! The commit-status contexts Loktar's runs post on GitHub, so that branch
//! protection can require them: written by the `github` notifier, read back
//! by `--rebuild` to find packages already green.

use crate::Stage;

/// The context of the status a run that affects nothing posts.
pub const NOTHING_AFFECTED: &str = "loktar";

/// `<package> - test`: the package's tests.
pub fn test_context(package: &str) -> String {
    format!("{package} - test")
}

/// `<package> - artifact`: its build, publish and store stages together.
pub fn artifact_context(package: &str) -> String {
    format!("{package} - artifact")
}

/// `<package> - Not rebuilt`: left out by `--rebuild` as already green.
pub fn not_rebuilt_context(package: &str) -> String {
    format!("{package} - Not rebuilt")
}

/// The contexts a run of a package that goes through `planned` settles.
pub fn contexts_settled(package: &str, planned: &[Stage]) -> Vec<String> {
    let mut contexts = Vec::new();
    if planned.contains(&Stage::Test) {
        contexts.push(test_context(package));
    }
    if planned.contains(&Stage::Build) {
        contexts.push(artifact_context(package));
    }
    contexts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_name_the_package() {
        assert_eq!(contexts_settled("pet_api", &[Stage::Test, Stage::Build]), ["pet_api - test", "pet_api - artifact"]);
        assert_eq!(contexts_settled("lib", &[Stage::Build, Stage::Publish]), ["lib - artifact"]);
        assert!(contexts_settled("docs", &[]).is_empty());
        assert_eq!(not_rebuilt_context("lib"), "lib - Not rebuilt");
    }
}
