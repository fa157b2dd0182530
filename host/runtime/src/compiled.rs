//! The compiled-plugin cache, verified before use.
//!
//! A compiled component is native code that wasmtime runs as it is found. A
//! cache folder someone else could write to (a CI cache volume restored from
//! an untrusted build, a test that ran without isolation) would let them run
//! their code inside Loktar, so Loktar keeps its own small cache instead of
//! wasmtime's, and trusts none of it unchecked:
//!
//! - An entry is named by the SHA-256 of the component's bytes and of the
//!   engine's compatibility hash: `<hex>.cwasm` in the cache folder. Another
//!   component, wasmtime version or engine setting is another entry.
//! - An entry's file is `tag || serialized component`, the tag being the
//!   HMAC-SHA256 of the entry's name and the serialized bytes under a key of
//!   the user's, kept outside the cache folder
//!   (`$XDG_DATA_HOME/loktar/cache.key`, else `~/.local/share/loktar/cache.key`).
//!   Without the key, an entry can be neither forged, changed, nor passed off
//!   under another component's name.
//! - Loading opens the entry without following links, refuses anything but a
//!   regular file of the current user, reads it whole into memory, checks the
//!   tag in constant time and only then deserializes those same bytes: nothing
//!   is read again between the check and the use.
//! - Storing writes a temporary file in the same folder and renames it into
//!   place: a Loktar compiling the same plugin at the same time never sees
//!   half an entry, and one cut short by a crash fails its check.
//!
//! An entry that fails its check is warned about, compiled again and
//! overwritten. A cache that cannot be written, or a key that cannot be read
//! or made, costs compile time only: the plugin still runs.

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

/// The length of the key, in bytes.
const KEY_LEN: usize = 32;
/// The length of an entry's tag, in bytes: it starts the entry's file.
const TAG_LEN: usize = 32;
/// What a tag is of, before the entry's name: a tag made for anything else never matches.
const DOMAIN: &[u8] = b"loktar compiled plugin v1\0";

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// A verified cache entry.
    Cache,
    /// The compiler, just now.
    Compiled,
}

/// A cache folder and the key its entries are authenticated with.
pub(super) struct Cache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The component of `bytes` for `engine`: from `cache` when it holds a
/// verified entry, else compiled (and stored in `cache`, if any).
pub(super) fn component(cache: Option<&Cache>, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, Source)> {
    match cache {
        Some(cache) => cache.component(engine, bytes),
        None => Ok((Component::new(engine, bytes)?, Source::Compiled)),
    }
}

impl Cache {
    /// The cache in the (existing, private) folder `dir`, with the user's key,
    /// made on first use; `None`, with a warning, when the key can be neither
    /// read nor made.
    pub(super) fn open(dir: &Path) -> Option<Cache> {
        let Some(key_file) = key_file() else {
            tracing::warn!(
                "not using the plugin cache `{}`: there is no place for its key (neither `XDG_DATA_HOME` nor \
                 `HOME` is set); plugins are compiled on every start",
                dir.display()
            );
            return None;
        };
        Cache::with_key_file(dir, &key_file)
            .inspect_err(|e| {
                tracing::warn!(
                    "not using the plugin cache `{}`: its key `{}` can be neither read nor made: {e}; plugins are \
                     compiled on every start",
                    dir.display(),
                    key_file.display()
                );
            })
            .ok()
    }

    /// The cache in `dir`, with the key in `key_file` (made if missing).
    fn with_key_file(dir: &Path, key_file: &Path) -> io::Result<Cache> {
        Ok(Cache { dir: dir.to_path_buf(), key: read_or_make_key(key_file)? })
    }

    /// The component of `bytes`: its verified entry's, else compiled and stored.
    fn component(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, Source)> {
        let name = entry_name(engine, bytes);
        let path = self.dir.join(&name);
        match self.load(engine, &name, &path) {
            Ok(Some(component)) => return Ok((component, Source::Cache)),
            Ok(None) => {}
            Err(warning) => tracing::warn!("{warning}"),
        }
        let component = Component::new(engine, bytes)?;
        self.store(&name, &path, &component);
        Ok((component, Source::Compiled))
    }

    /// The component of the entry `name` at `path`: `None` when there is
    /// none, a warning when it cannot be used.
    fn load(&self, engine: &Engine, name: &str, path: &Path) -> Result<Option<Component>, String> {
        let changed = |why: &str| {
            format!(
                "the compiled plugin `{}` was changed since Loktar wrote it ({why}); compiling it again",
                path.display()
            )
        };
        let entry = match read_entry(path) {
            Ok(entry) => entry,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(changed("it is a link"));
            }
            Err(e) => return Err(changed(&e.to_string())),
        };
        let serialized = self.verified(name, &entry).ok_or_else(|| changed("its content does not match its tag"))?;
        match deserialize(engine, serialized) {
            Ok(component) => Ok(Some(component)),
            Err(e) => Err(format!("the compiled plugin `{}` cannot be used ({e}); compiling it again", path.display())),
        }
    }

    /// The serialized component in `entry` (the file of entry `name`), if its tag is right.
    fn verified<'a>(&self, name: &str, entry: &'a [u8]) -> Option<&'a [u8]> {
        let (tag, serialized) = entry.split_at_checked(TAG_LEN)?;
        let mut mac = self.mac(name);
        mac.update(serialized);
        mac.verify_slice(tag).ok()?;
        Some(serialized)
    }

    /// The MAC of entry `name`, ready for its serialized component.
    fn mac(&self, name: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(DOMAIN);
        mac.update(name.as_bytes());
        mac.update(b"\0");
        mac
    }

    /// Stores `component` as entry `name` at `path`; a failure is a warning.
    fn store(&self, name: &str, path: &Path, component: &Component) {
        let written = component.serialize().map_err(|e| e.to_string()).and_then(|serialized| {
            let mut mac = self.mac(name);
            mac.update(&serialized);
            let tag = mac.finalize().into_bytes();
            self.write_entry(name, path, &[&tag, &serialized]).map_err(|e| e.to_string())
        });
        if let Err(e) = written {
            tracing::warn!("cannot store the compiled plugin `{}` in the cache: {e}", path.display());
        }
    }

    /// Writes `parts` to a new file in the cache folder and renames it to `path`.
    fn write_entry(&self, name: &str, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join(format!(".{name}.{}.{unique}.tmp", std::process::id()));
        let written = write_new(&temp, parts).and_then(|()| std::fs::rename(&temp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
}

/// Turns a verified entry back into a component.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, serialized: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires bytes that its own `serialize` made, unchanged:
    // Loktar tagged them with the user's key when it serialized them, and the
    // tag was checked on these very bytes, in memory, just before.
    unsafe { Component::deserialize(engine, serialized) }
}

/// The file name of the entry for `bytes` compiled by `engine`.
fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut compatibility = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compatibility);
    let digest = Sha256::new().chain_update(compatibility.finish().to_le_bytes()).chain_update(bytes).finalize();
    format!("{digest:x}.cwasm")
}

/// The user's cache key file: `$XDG_DATA_HOME/loktar/cache.key`, else `~/.local/share/loktar/cache.key`.
fn key_file() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local").join("share")))?;
    Some(data.join("loktar").join("cache.key"))
}

/// The key in `file`, made first if there is none.
fn read_or_make_key(file: &Path) -> io::Result<[u8; KEY_LEN]> {
    match read_key(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_key(file)?;
            read_key(file)
        }
        read => read,
    }
}

/// The key in `file`, which must be a file of the user's that only they can read or write.
fn read_key(file: &Path) -> io::Result<[u8; KEY_LEN]> {
    let (opened, metadata) = open_own_file(file)?;
    if metadata.mode() & 0o077 != 0 {
        return Err(io::Error::other("others than you can read or change it (`chmod 600` it)"));
    }
    let mut key = Vec::with_capacity(KEY_LEN);
    opened.take(KEY_LEN as u64 + 1).read_to_end(&mut key)?;
    <[u8; KEY_LEN]>::try_from(key.as_slice())
        .map_err(|_| io::Error::other(format!("it is not {KEY_LEN} bytes long (remove it to make a new one)")))
}

/// Makes a random key in `file` (and its folder, for the user alone). A key
/// made at the same time by another Loktar stands: the new one is written
/// aside, then linked into place only if `file` is still missing, so no one
/// ever reads half a key.
fn make_key(file: &Path) -> io::Result<()> {
    let folder = file.parent().ok_or_else(|| io::Error::other("the key file has no folder"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)?;
    let mut key = [0u8; KEY_LEN];
    File::open("/dev/urandom")?.read_exact(&mut key)?;
    let temp = folder.join(format!(".cache.key.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let linked = write_new(&temp, &[&key]).and_then(|()| std::fs::hard_link(&temp, file));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        linked => linked,
    }
}

/// The whole content of the cache entry at `path`.
fn read_entry(path: &Path) -> io::Result<Vec<u8>> {
    let (mut file, metadata) = open_own_file(path)?;
    let mut entry = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut entry)?;
    Ok(entry)
}

/// Opens `path` for reading, without following a link or waiting on a
/// pipe, if it is a regular file of the current user.
fn open_own_file(path: &Path) -> io::Result<(File, Metadata)> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.uid() != rustix::process::geteuid().as_raw() {
        return Err(io::Error::other("it is not a regular file of yours"));
    }
    Ok((file, metadata))
}

/// Writes `parts` to a new file at `path`, readable by the user alone.
fn write_new(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: a header and nothing else.
    const EMPTY: &[u8] = b"\0asm\x0d\x00\x01\x00";
    /// Another component: the empty one with a custom section.
    const OTHER: &[u8] = b"\0asm\x0d\x00\x01\x00\x00\x04\x01xyz";

    struct Fixture {
        dir: tempfile::TempDir,
        engine: Engine,
        cache: Cache,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::create_dir(dir.path().join("cache")).expect("mkdir");
            let cache =
                Cache::with_key_file(&dir.path().join("cache"), &dir.path().join("data/cache.key")).expect("cache");
            let engine = Engine::new(wasmtime::Config::new().wasm_component_model(true)).expect("engine");
            Fixture { dir, engine, cache }
        }

        fn load(&self, bytes: &[u8]) -> Source {
            self.cache.component(&self.engine, bytes).expect("component").1
        }

        fn entry(&self, bytes: &[u8]) -> PathBuf {
            self.dir.path().join("cache").join(entry_name(&self.engine, bytes))
        }
    }

    #[test]
    fn a_stored_component_is_loaded_from_the_cache_without_compiling() {
        let fixture = Fixture::new();
        assert_eq!(fixture.load(EMPTY), Source::Compiled);
        let entry = fixture.entry(EMPTY);
        assert!(entry.is_file(), "no entry at {}", entry.display());
        assert!(entry.extension().is_some_and(|ext| ext == "cwasm"));
        assert_eq!(std::fs::metadata(&entry).expect("entry").mode() & 0o777, 0o600);
        assert_eq!(fixture.load(EMPTY), Source::Cache);
        assert_eq!(fixture.load(OTHER), Source::Compiled, "another component is another entry");
        let names: Vec<_> = std::fs::read_dir(fixture.dir.path().join("cache")).expect("list").collect();
        assert_eq!(names.len(), 2, "temporary files were left: {names:?}");
    }

    /// Flips the bits `mask` of the byte at `at(length)` of the file `entry`; returns its new bytes.
    fn flip(entry: &Path, at: impl FnOnce(usize) -> usize, mask: u8) -> Vec<u8> {
        let mut bytes = std::fs::read(entry).expect("read");
        let at = at(bytes.len());
        bytes[at] ^= mask;
        std::fs::write(entry, &bytes).expect("write");
        bytes
    }

    #[test]
    fn a_changed_byte_is_rejected_and_the_entry_rewritten() {
        let fixture = Fixture::new();
        fixture.load(EMPTY);
        let entry = fixture.entry(EMPTY);
        let bytes = flip(&entry, |length| length / 2, 1);
        assert_eq!(fixture.load(EMPTY), Source::Compiled);
        assert_ne!(std::fs::read(&entry).expect("read"), bytes, "the changed entry was kept");
        assert_eq!(fixture.load(EMPTY), Source::Cache);
    }

    #[test]
    fn a_changed_tag_is_rejected() {
        let fixture = Fixture::new();
        fixture.load(EMPTY);
        flip(&fixture.entry(EMPTY), |_| 0, 0x80);
        assert_eq!(fixture.load(EMPTY), Source::Compiled);
    }

    #[test]
    fn a_truncated_entry_is_rejected() {
        let fixture = Fixture::new();
        fixture.load(EMPTY);
        let entry = fixture.entry(EMPTY);
        let bytes = std::fs::read(&entry).expect("read");
        for length in [bytes.len() - 1, TAG_LEN, TAG_LEN - 1, 0] {
            std::fs::write(&entry, &bytes[..length]).expect("write");
            assert_eq!(fixture.load(EMPTY), Source::Compiled, "{length} bytes were accepted");
        }
    }

    #[test]
    fn a_link_is_not_followed() {
        let fixture = Fixture::new();
        fixture.load(EMPTY);
        let entry = fixture.entry(EMPTY);
        let elsewhere = fixture.dir.path().join("elsewhere.cwasm");
        std::fs::rename(&entry, &elsewhere).expect("move the entry");
        std::os::unix::fs::symlink(&elsewhere, &entry).expect("symlink");
        assert_eq!(fixture.load(EMPTY), Source::Compiled, "a valid entry behind a link was used");
        let replaced = std::fs::symlink_metadata(&entry).expect("entry");
        assert!(replaced.is_file(), "the link was not replaced by an entry");
        assert_eq!(fixture.load(EMPTY), Source::Cache);
    }

    #[test]
    fn an_entry_under_another_components_name_is_rejected() {
        let fixture = Fixture::new();
        fixture.load(EMPTY);
        fixture.load(OTHER);
        std::fs::copy(fixture.entry(EMPTY), fixture.entry(OTHER)).expect("copy");
        assert_eq!(fixture.load(OTHER), Source::Compiled);
    }

    #[test]
    fn an_entry_made_with_another_key_is_rejected() {
        let fixture = Fixture::new();
        fixture.load(EMPTY);
        let other_key = fixture.dir.path().join("other/cache.key");
        let other = Cache::with_key_file(&fixture.dir.path().join("cache"), &other_key).expect("cache");
        assert_ne!(other.key, fixture.cache.key);
        assert_eq!(other.component(&fixture.engine, EMPTY).expect("component").1, Source::Compiled);
        assert_eq!(fixture.load(EMPTY), Source::Compiled, "the other key's entry was accepted");
    }

    #[test]
    fn the_key_is_made_once_for_the_user_alone() {
        let fixture = Fixture::new();
        let key_file = fixture.dir.path().join("data/cache.key");
        let mode = |path: &Path| std::fs::metadata(path).expect("metadata").mode() & 0o777;
        assert_eq!(mode(&key_file), 0o600);
        assert_eq!(mode(&fixture.dir.path().join("data")), 0o700);
        assert_eq!(read_or_make_key(&key_file).expect("key"), fixture.cache.key, "the key was made again");
        let names: Vec<_> = std::fs::read_dir(fixture.dir.path().join("data")).expect("list").collect();
        assert_eq!(names.len(), 1, "temporary files were left: {names:?}");
    }

    #[test]
    fn a_key_others_can_read_or_a_short_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let fixture = Fixture::new();
        let key_file = fixture.dir.path().join("data/cache.key");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(read_or_make_key(&key_file).is_err(), "a key others can read was used");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&key_file, b"short").expect("write");
        assert!(read_or_make_key(&key_file).is_err(), "a short key was used");
    }

    #[test]
    fn without_a_cache_every_load_compiles() {
        let fixture = Fixture::new();
        for _ in 0..2 {
            let (_, source) = component(None, &fixture.engine, EMPTY).expect("component");
            assert_eq!(source, Source::Compiled);
        }
    }
}
