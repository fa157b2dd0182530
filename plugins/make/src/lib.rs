//! The `make` tester: `make ci` in the package folder, then `make clean`,
//! always — after a failure or a timeout too. The exit status of `make ci`
//! decides whether the tests passed.

use loktar_sdk::prelude::*;
use loktar_sdk::process::{self, Command};

struct Make;

/// Makefile names GNU make looks for, in its order.
const MAKEFILES: [&str; 3] = ["GNUmakefile", "makefile", "Makefile"];

impl Tester for Make {
    fn describe() -> PluginInfo {
        PluginInfo::new("make", env!("CARGO_PKG_VERSION"), Role::Tester)
            .with_capabilities(&[Capability::Log, Capability::Process])
    }

    fn test(_context: RunContext, package: Package) -> Result<TestReport, Error> {
        let has_makefile = MAKEFILES.iter().any(|name| std::path::Path::new("/package").join(name).is_file());
        if !has_makefile {
            return Err(Error::new(format!("package `{}` has no Makefile", package.name)).with_hint(
                "add a Makefile with a `ci` rule (and a `clean` rule), or set `\"test_type\": \"no-test\"`",
            ));
        }
        let rules = rules()?;
        if !rules.iter().any(|rule| rule == "ci") {
            return Err(Error::new(format!("the Makefile of package `{}` has no `ci` rule", package.name))
                .with_hint("add a `ci:` rule that runs the package's tests"));
        }
        log::info("running `make ci`");
        let ci = process::run(&Command::new("make").arg("ci"));
        // Clean up whatever happened above, so the next run starts fresh.
        if rules.iter().any(|rule| rule == "clean") {
            log::info("running `make clean`");
            match process::run(&Command::new("make").arg("clean")) {
                Ok(status) if status.success() => {}
                Ok(status) => log::warn(&format!("`make clean` failed ({})", describe_exit(&status))),
                Err(error) => log::warn(&format!("`make clean` could not run: {}", error.message)),
            }
        } else {
            log::warn("the Makefile has no `clean` rule; nothing was cleaned");
        }
        let ci = ci?;
        Ok(TestReport {
            passed: ci.success(),
            summary: if ci.success() { "`make ci` passed".into() } else { format!("`make ci` {}", describe_exit(&ci)) },
        })
    }
}

/// The rules the Makefile defines, from make's own database (`make -pq`), so
/// included files and pattern tricks count like make sees them.
fn rules() -> Result<Vec<String>, Error> {
    let database =
        process::run(&Command::new("make").arg("--print-data-base").arg("--question").arg("--no-builtin-rules"))?;
    Ok(database
        .stdout
        .lines()
        .filter(|line| !line.starts_with(['#', '\t', ' ', '.']))
        .filter_map(|line| line.split_once(':').map(|(target, _)| target))
        .filter(|target| !target.is_empty() && !target.contains(['=', '%', '$', ' ']))
        .map(str::to_string)
        .collect())
}

fn describe_exit(status: &process::ExitStatus) -> String {
    match (status.timed_out, status.code) {
        (true, _) => "did not finish in time and was stopped".to_string(),
        (false, Some(code)) => format!("failed with exit code {code}"),
        (false, None) => "was killed by a signal".to_string(),
    }
}

loktar_sdk::export!(tester: Make);
