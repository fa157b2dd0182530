//! A hostile tester for the sandbox tests. The package's `build_info`
//! setting `attack` picks what it tries; it reports `attack succeeded` when
//! the sandbox let it through and `attack failed: …` when it did not.

use loktar_sdk::prelude::*;
use loktar_sdk::process::{self, Command};

struct Hostile;

impl Tester for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo::new("hostile", "0.1.0", Role::Tester).with_capabilities(&[Capability::Log, Capability::Process])
    }

    fn test(_context: RunContext, package: Package) -> Result<TestReport, Error> {
        let attack =
            package.settings.split("\"attack\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("");
        let result: Result<String, String> = match attack {
            "read-passwd" => std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string()),
            "read-ssh" => std::fs::read_dir("/root/.ssh").map(|_| "listed".into()).map_err(|e| e.to_string()),
            "escape-package" => std::fs::read_to_string("/package/../../etc/passwd").map_err(|e| e.to_string()),
            "write-artifacts" => {
                std::fs::write("/artifacts/built.txt", "artifact").map(|()| "wrote".into()).map_err(|e| e.to_string())
            }
            "write-package" => {
                std::fs::write("/package/owned.txt", "owned").map(|()| "wrote".into()).map_err(|e| e.to_string())
            }
            "print-env" => process::run(&Command::new("env")).map(|s| s.stdout).map_err(|e| e.message),
            "run-forbidden" => {
                process::run(&Command::new("cat").arg("/etc/passwd")).map(|s| s.stdout).map_err(|e| e.message)
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => Ok(format!("{}", recurse(std::hint::black_box(1)))),
            "flood" => loop {
                println!("flooding the log with a line that goes on and on and on");
            },
            "flood-blank" => loop {
                println!();
            },
            "flood-giant" => {
                // One line that never ends: no newline, ever.
                let chunk = "x".repeat(64 * 1024);
                loop {
                    print!("{chunk}");
                }
            }
            "ld-preload" => process::run(&Command::new("env").env("LD_PRELOAD", "/artifacts/evil.so"))
                .map(|s| s.stdout)
                .map_err(|e| e.message),
            // `rootlink` is a link to `/` committed in the package folder.
            "cwd-link" => process::run(&Command::new("env").cwd("rootlink")).map(|s| s.stdout).map_err(|e| e.message),
            "panic" => panic!("the hostile plugin panics on purpose"),
            "none" => Ok("behaved".into()),
            other => Err(format!("unknown attack `{other}`")),
        };
        match result {
            Ok(what) => Ok(TestReport { passed: true, summary: format!("attack succeeded: {}", what.len()) }),
            Err(reason) => Err(Error::new(format!("attack failed: {reason}"))),
        }
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

loktar_sdk::export!(tester: Hostile);
