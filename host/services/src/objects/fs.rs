//! The `fs` backend: objects are files below a folder, written beside and
//! renamed into place so a reader never sees half an object. Keys are
//! resolved through the folder's handle ([`loktar_support::beneath`]): a link put in
//! the store's folder (it may sit inside a repository) leads nowhere.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Diagnostic, ObjectBytes, ObjectInfo, ObjectReader, ReaderSource, sha256_of};
use loktar_support::beneath::{BeneathError, Folder};

/// A store in a folder.
#[derive(Debug, Clone)]
pub struct FsStore {
    name: String,
    dir: PathBuf,
}

/// Suffix of an object being written.
const PARTIAL: &str = "loktar-partial";

impl FsStore {
    /// The store `name` in `dir`.
    pub fn new(name: &str, dir: &Path) -> FsStore {
        FsStore { name: name.to_string(), dir: dir.to_path_buf() }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) -> Diagnostic {
        Diagnostic::new(format!("store `{}`: cannot {what}: {error}", self.name))
    }

    /// Whether the folder exists and can be written, or can be made (its
    /// nearest existing parent can be written); says which folder.
    pub(super) fn check(&self) -> Result<String, Diagnostic> {
        let existing = self.dir.ancestors().find(|folder| folder.exists()).unwrap_or(Path::new("/"));
        let writable = existing.is_dir() && rustix::fs::access(existing, rustix::fs::Access::WRITE_OK).is_ok();
        if !writable {
            let what = if existing == self.dir { "write to" } else { "make" };
            return Err(Diagnostic::new(format!(
                "store `{}`: cannot {what} the folder `{}` (`{}` is not a folder Loktar may write to)",
                self.name,
                self.dir.display(),
                existing.display()
            ))
            .hint(format!("fix `dir` under `[stores.{}]` in loktar.toml, or the folder's permissions", self.name)));
        }
        Ok(if existing == self.dir {
            format!("folder `{}`", self.dir.display())
        } else {
            format!("folder `{}` (made at the first artifact)", self.dir.display())
        })
    }

    /// The store's folder, made if needed.
    fn folder(&self) -> Result<Folder, Diagnostic> {
        Folder::create(&self.dir).map_err(|e| self.failed(&format!("open `{}`", self.dir.display()), &e))
    }

    pub(super) async fn put(&self, key: &str, mut source: File) -> Result<ObjectInfo, Diagnostic> {
        let folder = self.folder()?;
        let target = PathBuf::from(key);
        let partial = target.with_extension(PARTIAL);
        let written = tokio::task::spawn_blocking(move || {
            let copied = folder
                .create_file(&partial)
                .map_err(|e| e.to_string())
                .and_then(|mut file| std::io::copy(&mut source, &mut file).map_err(|e| e.to_string()))
                .and_then(|_| folder.rename(&partial, &target).map_err(|e| e.to_string()));
            if copied.is_err() {
                let _ = folder.remove_file(&partial);
            }
            copied
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|result| result);
        written.map_err(|e| self.failed(&format!("put `{key}`"), &e))?;
        self.describe(key).await
    }

    pub(super) async fn get(&self, key: &str, target: File) -> Result<ObjectInfo, Diagnostic> {
        use tokio::io::AsyncWriteExt;
        let failed = |e: &dyn std::fmt::Display| self.failed(&format!("get `{key}`"), e);
        let source = self.folder()?.open_file(Path::new(key)).map_err(|e| failed(&e))?;
        // Hashing reads by offset: the copy below still starts at the beginning.
        let info = self.describe_file(key, &source).await?;
        let mut reader = tokio::fs::File::from_std(source);
        let mut writer = tokio::fs::File::from_std(target);
        tokio::io::copy(&mut reader, &mut writer).await.map_err(|e| failed(&e))?;
        writer.flush().await.map_err(|e| failed(&e))?;
        Ok(info)
    }

    pub(super) async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Diagnostic> {
        // Anything but a plain file under that key is no object.
        let Ok(file) = self.folder()?.open_file(Path::new(key)) else {
            return Ok(None);
        };
        self.describe_file(key, &file).await.map(Some)
    }

    pub(super) async fn open_reader(&self, key: &str) -> Result<Option<ObjectReader>, Diagnostic> {
        let (dir, relative) = (self.dir.clone(), PathBuf::from(key));
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<Option<File>> {
            // Reading makes nothing: a store never written to has no object.
            let folder = match Folder::open(&dir) {
                Ok(folder) => folder,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error),
            };
            match folder.open_file(&relative) {
                Ok(file) => Ok(Some(file)),
                // Anything but a plain file under that key is no object.
                Err(BeneathError::Io { source, .. }) if source.kind() != std::io::ErrorKind::NotFound => Err(source),
                Err(_) => Ok(None),
            }
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|opened| opened);
        let failed = |e: &std::io::Error| self.failed(&format!("read `{key}`"), e);
        let Some(file) = opened.map_err(|e| failed(&e))? else { return Ok(None) };
        let metadata = file.metadata().map_err(|e| failed(&e))?;
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_nanos());
        let tag = format!("{:x}-{modified:x}", metadata.len());
        Ok(Some(ObjectReader { size: metadata.len(), tag, source: ReaderSource::Fs(file) }))
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Diagnostic> {
        let mut keys = Vec::new();
        let mut pending = vec![self.dir.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(mut entries) = tokio::fs::read_dir(&dir).await else { continue };
            while let Some(entry) = entries.next_entry().await.map_err(|e| self.failed("list", &e))? {
                let path = entry.path();
                // Not following links: a link is neither a folder nor an object.
                let Ok(kind) = entry.file_type().await else { continue };
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file()
                    && let Ok(relative) = path.strip_prefix(&self.dir)
                {
                    let key = relative.to_string_lossy().into_owned();
                    if key.starts_with(prefix) && !key.ends_with(PARTIAL) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            found.push(self.describe(&key).await?);
        }
        Ok(found)
    }

    /// The info of the object at `key`.
    async fn describe(&self, key: &str) -> Result<ObjectInfo, Diagnostic> {
        let file = self.folder()?.open_file(Path::new(key)).map_err(|e| self.failed(&format!("read `{key}`"), &e))?;
        self.describe_file(key, &file).await
    }

    async fn describe_file(&self, key: &str, file: &File) -> Result<ObjectInfo, Diagnostic> {
        let (sha256, size) = sha256_of(file).await.map_err(|e| self.failed(&format!("read `{key}`"), &e))?;
        let absolute =
            std::path::absolute(self.dir.join(key)).map_err(|e| self.failed(&format!("read `{key}`"), &e))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size,
            sha256: Some(sha256),
            url: format!("file://{}", absolute.display()),
        })
    }
}

/// The bytes `range` of an open file (all of it without).
pub(super) async fn read(file: File, range: Option<std::ops::RangeInclusive<u64>>) -> Result<ObjectBytes, Diagnostic> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::from_std(file);
    let Some(range) = range else { return Ok(Box::new(file)) };
    let (start, end) = range.into_inner();
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| Diagnostic::new(format!("cannot read the object: {e}")))?;
    Ok(Box::new(file.take(end.saturating_sub(start) + 1)))
}
