//! The compiled-plugin cache is verified before use: an entry changed on
//! disk, or made under another key, is refused, compiled again and rewritten.

use std::path::{Path, PathBuf};

use crate::support::{Run, TestRepo};

/// A repository whose one package is tested with `make` (a built-in plugin),
/// and the cache and data folders its runs use.
struct Setup {
    repo: TestRepo,
    cache: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let repo = TestRepo::new();
        repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
        repo.write("a/Makefile", "ci:\n\t@true\n\nclean:\n\t@true\n");
        repo.commit("ENH: a");
        let cache = tempfile::tempdir().expect("temp dir");
        let data = tempfile::tempdir().expect("temp dir");
        Setup { repo, cache, data }
    }

    /// `loktar run --all` with this cache and data folder; it must succeed.
    fn run(&self) -> Run {
        let cache = self.cache.path().to_str().expect("UTF-8 path");
        let data = self.data.path().to_str().expect("UTF-8 path");
        let env = [("LOKTAR_CACHE_DIR", cache), ("XDG_DATA_HOME", data)];
        self.repo.loktar_with_env(&["run", "--all"], &env).expect_code(0)
    }

    /// The cache entries, sorted.
    fn entries(&self) -> Vec<PathBuf> {
        let mut entries: Vec<PathBuf> = crate::support::files_below(self.cache.path())
            .into_iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
            .collect();
        entries.sort();
        entries
    }

    fn key_file(&self) -> PathBuf {
        self.data.path().join("loktar/cache.key")
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().expect("file name").to_string_lossy().into_owned()
}

const CHANGED: &str = "was changed since Loktar wrote it";

#[test]
fn a_changed_cache_entry_is_refused_and_rewritten() {
    let setup = Setup::new();
    let first = setup.run();
    assert!(!first.stderr.contains(CHANGED), "{}", first.stderr);
    let entries = setup.entries();
    assert!(!entries.is_empty(), "no compiled plugin was cached");
    assert!(setup.key_file().is_file(), "no key was made");

    let entry = &entries[0];
    let mut tampered = std::fs::read(entry).expect("read the entry");
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    std::fs::write(entry, &tampered).expect("change the entry");
    let second = setup.run();
    assert!(second.stderr.contains(CHANGED), "no warning:\n{}", second.stderr);
    assert!(second.stderr.contains(&file_name(entry)), "the warning does not name the file:\n{}", second.stderr);
    assert_ne!(std::fs::read(entry).expect("read the entry"), tampered, "the changed entry was kept");

    let third = setup.run();
    assert!(!third.stderr.contains(CHANGED), "the rewritten entry was refused:\n{}", third.stderr);
}

#[test]
fn an_entry_made_under_another_key_is_refused() {
    let setup = Setup::new();
    setup.run();
    let entries = setup.entries();
    assert!(!entries.is_empty(), "no compiled plugin was cached");
    let old_key = std::fs::read(setup.key_file()).expect("read the key");
    std::fs::remove_file(setup.key_file()).expect("remove the key");

    let second = setup.run();
    assert_ne!(std::fs::read(setup.key_file()).expect("read the key"), old_key, "the same key was made again");
    for entry in &entries {
        assert!(second.stderr.contains(&file_name(entry)), "{} was used:\n{}", entry.display(), second.stderr);
    }
    assert!(second.stderr.contains(CHANGED), "{}", second.stderr);

    let times = |entries: &[PathBuf]| -> Vec<std::time::SystemTime> {
        entries.iter().map(|e| std::fs::metadata(e).and_then(|m| m.modified()).expect("modified")).collect()
    };
    let rewritten = times(&entries);
    let third = setup.run();
    assert!(!third.stderr.contains(CHANGED), "{}", third.stderr);
    assert_eq!(times(&entries), rewritten, "entries under the new key were compiled again");
}
