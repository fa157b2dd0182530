//! The `fs` backend: objects are files below a folder, written beside and
//! renamed into place so a reader never sees half an object.

use std::path::{Path, PathBuf};

use super::{Failure, ObjectInfo, sha256_of};

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

    fn failed(&self, what: &str, error: &std::io::Error) -> Failure {
        Failure::new(format!("store `{}`: cannot {what}: {error}", self.name))
    }

    pub(super) async fn put(&self, key: &str, file: &Path) -> Result<ObjectInfo, Failure> {
        let target = self.dir.join(key);
        let source = file.to_path_buf();
        let written = target.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = written.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let partial = written.with_extension(PARTIAL);
            std::fs::copy(&source, &partial)?;
            std::fs::rename(&partial, &written)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|result| result)
        .map_err(|e| self.failed(&format!("put `{key}`"), &e))?;
        self.describe(key, &target).await
    }

    pub(super) async fn get(&self, key: &str, file: &Path) -> Result<ObjectInfo, Failure> {
        let source = self.dir.join(key);
        if let Some(parent) = file.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| self.failed(&format!("get `{key}`"), &e))?;
        }
        tokio::fs::copy(&source, file).await.map_err(|e| self.failed(&format!("get `{key}`"), &e))?;
        self.describe(key, &source).await
    }

    pub(super) async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Failure> {
        let object = self.dir.join(key);
        if !tokio::fs::metadata(&object).await.is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        self.describe(key, &object).await.map(Some)
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Failure> {
        let mut keys = Vec::new();
        let mut pending = vec![self.dir.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(mut entries) = tokio::fs::read_dir(&dir).await else { continue };
            while let Some(entry) = entries.next_entry().await.map_err(|e| self.failed("list", &e))? {
                let path = entry.path();
                if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                    pending.push(path);
                } else if let Ok(relative) = path.strip_prefix(&self.dir) {
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
            found.push(self.describe(&key, &self.dir.join(&key)).await?);
        }
        Ok(found)
    }

    async fn describe(&self, key: &str, path: &Path) -> Result<ObjectInfo, Failure> {
        let (sha256, size) = sha256_of(path).await.map_err(|e| self.failed(&format!("read `{key}`"), &e))?;
        let absolute = std::path::absolute(path).map_err(|e| self.failed(&format!("read `{key}`"), &e))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size,
            sha256: Some(sha256),
            url: format!("file://{}", absolute.display()),
        })
    }
}
