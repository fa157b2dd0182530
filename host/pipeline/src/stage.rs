//! The stages every package goes through, in order, and which provider
//! (plugin) each one uses for a package.

use loktar_config::Package;

pub use loktar_protocol::Stage;

/// The storage used for a package that builds something but names no `storage_type`.
pub const DEFAULT_STORAGE: &str = "fs";

/// What one stage will do for one package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagePlan {
    /// The stage.
    pub stage: Stage,
    /// The providers it calls; empty when the package does not configure the stage.
    pub providers: Vec<String>,
}

/// The stages of `plans` a package goes through: those its configuration
/// does not skip, `notify` aside (notifiers hear of every package).
pub fn planned(plans: &[StagePlan]) -> Vec<Stage> {
    plans.iter().filter(|plan| !plan.is_skipped() && plan.stage != Stage::Notify).map(|plan| plan.stage).collect()
}

impl StagePlan {
    /// Whether the stage does nothing for this package.
    pub fn is_skipped(&self) -> bool {
        self.providers.is_empty()
    }
}

/// The stages of `package` up to `last`, each with its providers. A package
/// that builds something is stored, by default with [`DEFAULT_STORAGE`].
pub fn stages_of(package: &Package, last: Stage, notifiers: &[String]) -> Vec<StagePlan> {
    Stage::ALL
        .into_iter()
        .filter(|stage| *stage <= last)
        .map(|stage| {
            let providers = match stage {
                Stage::Test => package.test_type.iter().cloned().collect(),
                Stage::Build => package.pkg_type.iter().cloned().collect(),
                Stage::Publish => package.build_info.registry_type.iter().cloned().collect(),
                Stage::Store => match (&package.build_info.storage_type, &package.pkg_type) {
                    (Some(storage), _) => vec![storage.clone()],
                    (None, Some(_)) => vec![DEFAULT_STORAGE.to_string()],
                    (None, None) => Vec::new(),
                },
                Stage::Notify => notifiers.to_vec(),
            };
            StagePlan { stage, providers }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_takes_its_provider_from_its_field_up_to_the_last_stage() {
        let mut package = loktar_config::Package {
            name: "pet_api".into(),
            dir: "pet_api".into(),
            pkg_type: Some("docker".into()),
            test_type: Some("make".into()),
            kind: None,
            build_info: loktar_config::BuildInfo { registry_type: Some("quay".into()), ..Default::default() },
            depends_on: Vec::new(),
            dependencies_type: Vec::new(),
            exclude_keywords: Vec::new(),
            positions: loktar_config::Positions { entry: 0, dir: 0, dir_written: false, depends_on: Vec::new() },
        };
        let plans = stages_of(&package, Stage::Notify, &["slack".to_string()]);
        let providers: Vec<(&str, Vec<String>)> = plans.iter().map(|p| (p.stage.name(), p.providers.clone())).collect();
        assert_eq!(
            providers,
            [
                ("test", vec!["make".to_string()]),
                ("build", vec!["docker".to_string()]),
                ("publish", vec!["quay".to_string()]),
                ("store", vec!["fs".to_string()]),
                ("notify", vec!["slack".to_string()]),
            ]
        );
        package.pkg_type = None;
        let plans = stages_of(&package, Stage::Notify, &[]);
        assert!(plans[1].is_skipped() && plans[3].is_skipped(), "nothing built, nothing stored: {plans:?}");
        package.test_type = None;
        package.pkg_type = Some("docker".into());
        let plans = stages_of(&package, Stage::Build, &[]);
        assert_eq!(plans.len(), 2);
        assert!(plans[0].is_skipped() && !plans[1].is_skipped());
    }
}
