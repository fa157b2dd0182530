//! A tester that does nothing: the benchmark's measure of a plugin call's overhead.

use loktar_sdk::prelude::*;

struct Noop;

impl Tester for Noop {
    fn describe() -> PluginInfo {
        PluginInfo::new("noop", "0.1.0", Role::Tester)
    }

    fn test(_context: RunContext, _package: Package) -> Result<TestReport, Error> {
        Ok(TestReport { passed: true, summary: String::new() })
    }
}

loktar_sdk::export!(tester: Noop);
