//! The `s3` backend: any S3-compatible server through aws-sdk-s3 — path
//! style or virtual hosts, an endpoint URL for servers other than AWS,
//! credentials from named secrets. Each object carries its SHA-256 twice:
//! as `x-amz-checksum-sha256`, which the server verifies on upload, and as
//! `sha256` metadata, which `head` reports. Files above the multipart
//! threshold go up in parts, a few at a time, each with its own checksum.

use std::fs::File;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Diagnostic, ObjectBytes, ObjectInfo, ObjectReader, ReaderSource, sha256_of};
use loktar_settings::S3Settings;

/// Size of each part of a multipart upload.
const PART_SIZE: u64 = 16 << 20;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Metadata key holding an object's SHA-256 (hex).
const SHA256_METADATA: &str = "sha256";

/// What a `HEAD` of an object says.
struct Head {
    size: u64,
    /// The `sha256` metadata Loktar stores with it.
    sha256: Option<String>,
    /// The server's own entity tag.
    etag: Option<String>,
}

/// A store on an S3-compatible server.
#[derive(Debug, Clone)]
pub struct S3Store {
    name: String,
    client: Client,
    bucket: String,
    prefix: String,
    server: String,
    multipart_threshold: u64,
}

impl S3Store {
    /// Connects (lazily) to the store `name`; `secret` reads a named secret.
    pub fn new(
        name: &str,
        settings: &S3Settings,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Store, Diagnostic> {
        let read = |secret_name: &str| {
            secret(secret_name).filter(|value| !value.is_empty()).ok_or_else(|| {
                Diagnostic::new(format!("store `{name}`: secret `{secret_name}` is not set"))
                    .hint(format!("set the environment variable `[secrets.{secret_name}]` names in loktar.toml"))
            })
        };
        let credentials = Credentials::new(
            read(&settings.access_key_secret)?,
            read(&settings.secret_key_secret)?,
            None,
            None,
            "loktar",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.path_style.unwrap_or(settings.endpoint.is_some()))
            // Loktar sends its own SHA-256 with every upload; no extra trailing checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build());
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let server = settings.endpoint.clone().unwrap_or_else(|| format!("AWS S3 ({})", settings.region));
        let prefix = settings.prefix.trim_matches('/');
        Ok(S3Store {
            name: name.to_string(),
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            server,
            multipart_threshold: settings.multipart_threshold_mib.max(5) << 20,
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn info(&self, key: &str, size: u64, sha256: Option<String>) -> ObjectInfo {
        ObjectInfo { key: key.to_string(), size, sha256, url: format!("s3://{}/{}", self.bucket, self.full_key(key)) }
    }

    /// Uploads the content of `file` to `key`: in one request, or in parts above the threshold.
    pub async fn put(&self, key: &str, file: File) -> Result<ObjectInfo, Diagnostic> {
        self.check_bucket().await?;
        let (sha256, size) = sha256_of(&file).await.map_err(|e| self.local(&format!("read `{key}`"), &e))?;
        if size > self.multipart_threshold {
            self.put_in_parts(key, &file, &sha256, size).await?;
        } else {
            // Read through the open file's handle, which a retry can open again.
            let body = ByteStream::read_from()
                .path(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file)))
                .length(aws_sdk_s3::primitives::Length::Exact(size))
                .build()
                .await
                .map_err(|e| self.local("read the file", &std::io::Error::other(e)))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .body(body)
                .checksum_sha256(base64_of_hex(&sha256))
                .metadata(SHA256_METADATA, &sha256)
                .send()
                .await
                .map_err(|e| self.remote(&format!("put `{key}`"), e))?;
        }
        Ok(self.info(key, size, Some(sha256)))
    }

    /// Where the store is, for messages: `bucket `b` on `server``.
    pub(super) fn described_place(&self) -> String {
        format!("bucket `{}` on `{}`", self.bucket, self.server)
    }

    /// Fails clearly when the bucket does not exist (some servers would make
    /// it on the first upload) or the credentials are refused.
    pub(super) async fn check_bucket(&self) -> Result<(), Diagnostic> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Err(Diagnostic::new(format!(
                "store `{}`: bucket `{}` does not exist on `{}`",
                self.name, self.bucket, self.server
            ))
            .hint(format!("create it, or fix `bucket` under `[stores.{}]` in loktar.toml", self.name))),
            Err(error) => Err(self.remote(&format!("look up bucket `{}`", self.bucket), error)),
        }
    }

    async fn put_in_parts(&self, key: &str, file: &File, sha256: &str, size: u64) -> Result<(), Diagnostic> {
        let full_key = self.full_key(key);
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .metadata(SHA256_METADATA, sha256)
            .send()
            .await
            .map_err(|e| self.remote(&format!("start uploading `{key}`"), e))?;
        let Some(upload_id) = upload.upload_id else {
            return Err(Diagnostic::new(format!("store `{}`: the server gave no upload id for `{key}`", self.name)));
        };
        let uploaded = self.upload_parts(key, &full_key, &upload_id, file, size).await;
        let parts = match uploaded {
            Ok(parts) => parts,
            Err(error) => {
                // Leave no half upload behind on the server.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full_key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(error);
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.remote(&format!("finish uploading `{key}`"), e))?;
        Ok(())
    }

    /// Uploads the parts of `file`, [`PARTS_IN_FLIGHT`] at a time; returns them in order.
    async fn upload_parts(
        &self,
        key: &str,
        full_key: &str,
        upload_id: &str,
        file: &File,
        size: u64,
    ) -> Result<Vec<CompletedPart>, Diagnostic> {
        use futures_util::{StreamExt, TryStreamExt};
        let offsets = (0..size.div_ceil(PART_SIZE)).map(|index| index * PART_SIZE);
        futures_util::stream::iter(offsets.zip(1..))
            .map(|(offset, number)| self.upload_part(key, full_key, upload_id, file, offset, size, number))
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// Uploads part `number`, the bytes of `file` from `offset`, with its own SHA-256.
    #[allow(clippy::too_many_arguments)]
    async fn upload_part(
        &self,
        key: &str,
        full_key: &str,
        upload_id: &str,
        file: &File,
        offset: u64,
        size: u64,
        number: i32,
    ) -> Result<CompletedPart, Diagnostic> {
        let length = PART_SIZE.min(size - offset);
        let chunk = read_chunk(file, offset, length).await.map_err(|e| self.local("read the file", &e))?;
        let checksum = BASE64.encode(Sha256::digest(&chunk));
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk))
            .content_length(i64::try_from(length).unwrap_or(i64::MAX))
            .checksum_sha256(&checksum)
            .send()
            .await
            .map_err(|e| self.remote(&format!("upload part {number} of `{key}`"), e))?;
        Ok(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag).checksum_sha256(checksum).build())
    }

    /// Downloads `key` into `file`, checking its SHA-256 when the object has one.
    pub async fn get(&self, key: &str, file: File) -> Result<ObjectInfo, Diagnostic> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.remote(&format!("get `{key}`"), e))?;
        let expected = output.metadata.as_ref().and_then(|m| m.get(SHA256_METADATA)).cloned();
        let mut writer = tokio::fs::File::from_std(file);
        let mut body = output.body;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(bytes) = body.try_next().await.map_err(|e| self.local("download", &std::io::Error::other(e)))? {
            hasher.update(&bytes);
            size += bytes.len() as u64;
            writer.write_all(&bytes).await.map_err(|e| self.local("write the file", &e))?;
        }
        writer.flush().await.map_err(|e| self.local("write the file", &e))?;
        let actual = format!("{:x}", hasher.finalize());
        if expected.as_ref().is_some_and(|expected| *expected != actual) {
            return Err(Diagnostic::new(format!("store `{}`: `{key}` arrived damaged (SHA-256 mismatch)", self.name)));
        }
        Ok(self.info(key, size, Some(actual)))
    }

    /// The metadata of `key`, or `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Diagnostic> {
        Ok(self.described(key).await?.map(|head| self.info(key, head.size, head.sha256)))
    }

    /// Opens `key` for reading: its size and tag from a `HEAD`, or `None` when there is no such object.
    pub(super) async fn open_reader(&self, key: &str) -> Result<Option<ObjectReader>, Diagnostic> {
        Ok(self.described(key).await?.map(|head| {
            let tag = head.sha256.or_else(|| head.etag.as_ref().map(|tag| tag.trim_matches('"').to_string()));
            ObjectReader {
                size: head.size,
                tag: tag.unwrap_or_default(),
                source: ReaderSource::S3 { store: self.clone(), key: key.to_string(), etag: head.etag },
            }
        }))
    }

    /// What a `HEAD` of `key` says, or `None` when there is no such object.
    async fn described(&self, key: &str) -> Result<Option<Head>, Diagnostic> {
        match self.client.head_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
            Ok(output) => Ok(Some(Head {
                size: output.content_length.and_then(|l| u64::try_from(l).ok()).unwrap_or_default(),
                sha256: output.metadata.as_ref().and_then(|m| m.get(SHA256_METADATA)).cloned(),
                etag: output.e_tag,
            })),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(self.remote(&format!("look up `{key}`"), error)),
        }
    }

    /// The bytes `range` of `key` (all of it without), as the server sends
    /// them — only while the object is still the one tagged `etag`.
    pub(super) async fn read(
        &self,
        key: &str,
        etag: Option<String>,
        range: Option<std::ops::RangeInclusive<u64>>,
    ) -> Result<ObjectBytes, Diagnostic> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .set_if_match(etag)
            .set_range(range.map(|range| format!("bytes={}-{}", range.start(), range.end())))
            .send()
            .await
            .map_err(|e| self.remote(&format!("get `{key}`"), e))?;
        Ok(Box::new(output.body.into_async_read()))
    }

    /// A presigned GET URL for `key`, valid for `expires`.
    pub async fn presign(&self, key: &str, expires: Duration) -> Result<String, Diagnostic> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| Diagnostic::new(format!("store `{}`: cannot sign a URL for `{key}`: {e}", self.name)))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .presigned(config)
            .await
            .map_err(|e| self.remote(&format!("sign a URL for `{key}`"), e))?;
        Ok(request.uri().to_string())
    }

    /// Objects whose keys start with `prefix`, every page of them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Diagnostic> {
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full_key(prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.remote(&format!("list `{prefix}`"), e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else { continue };
                let size = object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or_default();
                found.push(self.info(key, size, None));
            }
            token = page.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn local(&self, what: &str, error: &std::io::Error) -> Diagnostic {
        Diagnostic::new(format!("store `{}`: cannot {what}: {error}", self.name))
    }

    /// A failed request as a sentence: unreachable server, refused credentials, missing bucket.
    fn remote<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        what: &str,
        error: SdkError<E, HttpResponse>,
    ) -> Diagnostic {
        let store = &self.name;
        if matches!(error, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
            return Diagnostic::new(format!(
                "store `{store}`: cannot reach the S3 server at `{}` to {what}",
                self.server
            ))
            .hint(format!("is the server running? check `endpoint` under `[stores.{store}]` in loktar.toml"));
        }
        // Answers to HEAD have no body: the status is all there is.
        let status = error.raw_response().map(|response| response.status().as_u16());
        let code = match (error.code(), status) {
            (Some(code), _) => code.to_string(),
            (None, Some(403)) => "AccessDenied".to_string(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "an error".to_string(),
        };
        let detail = error.message().map(|m| format!(": {m}")).unwrap_or_default();
        let failure = Diagnostic::new(format!("store `{store}`: {what} failed with {code}{detail}"));
        match code.as_str() {
            "NoSuchBucket" => failure.hint(format!(
                "bucket `{}` does not exist on `{}`: create it, or fix `bucket` under `[stores.{store}]` in loktar.toml",
                self.bucket, self.server
            )),
            "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied" | "InvalidAccessKey" => {
                failure.hint(format!("the server refused the credentials: check the secrets `[stores.{store}]` names"))
            }
            _ => failure,
        }
    }
}

/// `length` bytes of `file` from `offset`, read by offset (parts are read side by side).
async fn read_chunk(file: &File, offset: u64, length: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = file.try_clone()?;
    tokio::task::spawn_blocking(move || {
        let mut chunk = vec![0u8; usize::try_from(length).map_err(std::io::Error::other)?];
        file.read_exact_at(&mut chunk, offset)?;
        Ok(chunk)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The base64 form of a hex digest, as `x-amz-checksum-sha256` wants it.
fn base64_of_hex(hex: &str) -> String {
    let bytes: Vec<u8> =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    BASE64.encode(bytes)
}
