//! A third-party tester: passes when `shout.txt` in the package says `LOKTAR`.

use loktar_sdk::prelude::*;

struct Shout;

impl Tester for Shout {
    fn describe() -> PluginInfo {
        PluginInfo::new("shout", "2.3.4", Role::Tester).with_capabilities(&[Capability::Log])
    }

    fn test(_context: RunContext, package: Package) -> Result<TestReport, Error> {
        let text = std::fs::read_to_string("/package/shout.txt")
            .map_err(|e| Error::new(format!("package `{}` has no readable shout.txt: {e}", package.name)))?;
        log::info(&format!("shout.txt says {}", text.trim()));
        let passed = text.contains("LOKTAR");
        Ok(TestReport { passed, summary: if passed { "loud enough".into() } else { "too quiet".into() } })
    }
}

loktar_sdk::export!(tester: Shout);
