//! The `docker_compose` discovery: the services a package's compose file
//! defines and the images they use (as base names: `quay.io/acme/pet_api:3`
//! → `pet_api`). Reads `compose.yaml`, `compose.yml`, `docker-compose.yaml`
//! and `docker-compose.yml` in the package folder.

use loktar_sdk::prelude::*;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

struct DockerCompose;

const ROOT: &str = "/package";
const FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

impl Discovery for DockerCompose {
    fn describe() -> PluginInfo {
        PluginInfo::new("docker_compose", env!("CARGO_PKG_VERSION"), Role::Discovery)
            .with_capabilities(&[Capability::Log])
    }

    fn discover(_package: Package) -> Result<Vec<FoundDependency>, Error> {
        let mut found = Vec::new();
        for file in FILES {
            let path = Path::new(ROOT).join(file);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| Error::new(format!("cannot read `{file}`: {e}")))?;
            for name in compose_names(&text).map_err(|e| Error::new(format!("`{file}`: {e}")))? {
                found.push(FoundDependency { name, source: file.to_string() });
            }
        }
        Ok(found)
    }
}

/// Service names and image base names of a compose file.
fn compose_names(text: &str) -> Result<Vec<String>, String> {
    let documents = YamlLoader::load_from_str(text).map_err(|e| {
        let mark = e.marker();
        format!("line {}, column {}: {} (not valid YAML)", mark.line(), mark.col() + 1, e.info())
    })?;
    let Some(document) = documents.first() else {
        return Ok(Vec::new());
    };
    let services = match &document["services"] {
        Yaml::Hash(services) => services,
        Yaml::BadValue | Yaml::Null => return Ok(Vec::new()),
        _ => return Err("`services` must be a mapping of service names to services".to_string()),
    };
    let mut names = Vec::new();
    for (service, definition) in services {
        let Some(service) = service.as_str() else {
            return Err("service names must be strings".to_string());
        };
        push_unique(&mut names, service.to_ascii_lowercase());
        match &definition["image"] {
            Yaml::String(image) if !image.contains('$') => push_unique(&mut names, image_base_name(image)),
            Yaml::String(_) | Yaml::BadValue | Yaml::Null => {}
            _ => return Err(format!("service `{service}`: `image` must be a string")),
        }
    }
    Ok(names)
}

fn push_unique(names: &mut Vec<String>, name: String) {
    if !name.is_empty() && !names.contains(&name) {
        names.push(name);
    }
}

loktar_sdk::export!(discovery: DockerCompose);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_services_and_images() {
        let text = "services:\n  web:\n    image: quay.io/acme/webfront:3\n  api:\n    build: .\n  db:\n    image: postgres:16\n";
        assert_eq!(
            compose_names(text),
            Ok(vec!["web".into(), "webfront".into(), "api".into(), "db".into(), "postgres".into()])
        );
        assert!(compose_names("services: [a, b]\n").is_err());
        let broken = compose_names("services:\n  web:\n    image: [unclosed\n");
        assert!(broken.as_ref().is_err_and(|e| e.contains("not valid YAML")), "{broken:?}");
    }
}
