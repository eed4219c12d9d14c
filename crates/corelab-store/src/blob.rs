//! The blob store: DICOM instances, documents and exports, as local files or S3 objects.
//!
//! Writing is two-step so that nothing half-written is ever visible and nothing is acknowledged
//! before it is durable: `stage` streams bytes to a temporary file (hashing as it goes) and fsyncs
//! it; `commit` makes it visible under its key (local: rename + directory fsync; S3: the PUT or the
//! multipart completion, which S3 acknowledges only once stored). Only then may a database row
//! refer to the key. Ingest, which writes on a blocking thread, instead places the unflushed file
//! under its content-hash key (`place_blocking`: a link that never replaces a sound object) and
//! flushes it (`sync_placed`) while its rows are written; they commit only after that flush.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::StoreError;

/// S3 settings for `storage.url = "s3://bucket/prefix"`.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: bool,
}

/// What [`BlobStore::place_blocking`] did with a staged blob.
#[derive(Debug)]
pub enum Placed {
    /// Local storage: under its key, not yet flushed ([`BlobStore::sync_placed`]).
    Local,
    /// S3: still staged, for [`BlobStore::commit`].
    Staged(StagedBlob),
}

/// Whether the file at `path` has `size` bytes hashing to `sha256`.
fn holds(path: &Path, size: u64, sha256: &str) -> Result<bool, StoreError> {
    let mut file = std::fs::File::open(path).map_err(|e| io_at(path, e))?;
    if file.metadata().map_err(|e| io_at(path, e))?.len() != size {
        return Ok(false);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| io_at(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()) == sha256)
}

/// A byte stream read from the store.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// Bytes written to a temporary file and fsynced, not yet visible under any key.
#[derive(Debug)]
pub struct StagedBlob {
    path: PathBuf,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

impl StagedBlob {
    /// The temporary file, for callers that need to re-read what they staged (e.g. to parse it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Discards the staged bytes.
    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

/// Where blobs live.
#[derive(Clone, Debug)]
pub enum BlobStore {
    Local(LocalBlobs),
    S3(S3Blobs),
}

#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
    staging: PathBuf,
}

#[derive(Clone, Debug)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    staging: PathBuf,
}

/// Objects above this size go to S3 as multipart uploads, so memory stays bounded.
const S3_SINGLE_PUT_MAX: u64 = 32 * 1024 * 1024;
const S3_PART_SIZE: usize = 8 * 1024 * 1024;
const COPY_CHUNK: usize = 256 * 1024;

impl BlobStore {
    /// Opens the store named by `url`: `file://PATH` (or a bare path) or `s3://bucket/prefix`.
    /// `staging_dir` is a local directory for temporary files (S3 only; local staging sits beside
    /// the blobs so the final rename stays on one file system).
    pub fn open(url: &str, s3: &S3Settings, staging_dir: &Path) -> Result<BlobStore, StoreError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = match rest.split_once('/') {
                Some((b, p)) => (b, p.trim_matches('/')),
                None => (rest, ""),
            };
            if bucket.is_empty() {
                return Err(StoreError::Config(format!(
                    "storage.url: {url:?} names no bucket; accepted: s3://BUCKET[/PREFIX]"
                )));
            }
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(e) = &s3.endpoint {
                b = b.with_endpoint(e);
                // A custom endpoint (MinIO, Ceph, moto) is addressed by path, not by virtual host.
                b = b.with_virtual_hosted_style_request(false);
            }
            b = b.with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".into()));
            if let Some(k) = &s3.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = &s3.secret_access_key {
                b = b.with_secret_access_key(k);
            }
            if s3.allow_http {
                b = b.with_allow_http(true);
            }
            let store = b.build().map_err(|e| StoreError::Config(format!("storage: cannot configure S3: {e}")))?;
            std::fs::create_dir_all(staging_dir).map_err(|e| io_at(staging_dir, e))?;
            Ok(BlobStore::S3(S3Blobs {
                store: Arc::new(store),
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                staging: staging_dir.to_path_buf(),
            }))
        } else {
            let path = url.strip_prefix("file://").unwrap_or(url);
            if path.is_empty() || url.contains("://") && !url.starts_with("file://") {
                return Err(StoreError::Config(format!(
                    "storage.url: unsupported value {url:?}; accepted: file://PATH or s3://BUCKET[/PREFIX]"
                )));
            }
            let root = PathBuf::from(path);
            let staging = root.join(".staging");
            std::fs::create_dir_all(&staging).map_err(|e| io_at(&staging, e))?;
            Ok(BlobStore::Local(LocalBlobs { root, staging }))
        }
    }

    /// A short description for logs and `config show`.
    pub fn describe(&self) -> String {
        match self {
            BlobStore::Local(l) => format!("local files under {}", l.root.display()),
            BlobStore::S3(s) => format!("S3 bucket {} prefix {:?}", s.bucket, s.prefix),
        }
    }

    fn staging(&self) -> &Path {
        match self {
            BlobStore::Local(l) => &l.staging,
            BlobStore::S3(s) => &s.staging,
        }
    }

    /// Removes staged files older than `older_than` left by a crashed process. Their content was
    /// never acknowledged, so nothing is lost.
    pub async fn clean_staging(&self, older_than: Duration) -> Result<usize, StoreError> {
        let dir = self.staging().to_path_buf();
        let mut removed = 0;
        let mut rd = tokio::fs::read_dir(&dir).await.map_err(|e| io_at(&dir, e))?;
        let now = SystemTime::now();
        while let Some(entry) = rd.next_entry().await.map_err(|e| io_at(&dir, e))? {
            let meta = match entry.metadata().await {
                Ok(m) => m,
                Err(_) => continue,
            };
            let old =
                meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age >= older_than);
            if meta.is_file() && old && tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Streams `reader` into a new staged file, hashing it, and fsyncs it.
    /// Fails with `TooLarge` (and leaves nothing behind) when more than `max_bytes` arrive.
    pub async fn stage<R: AsyncRead + Unpin>(&self, mut reader: R, max_bytes: u64) -> Result<StagedBlob, StoreError> {
        let path = self.staging().join(format!("{}.part", uuid::Uuid::new_v4()));
        let result = async {
            let mut file = tokio::fs::File::create(&path).await.map_err(|e| io_at(&path, e))?;
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            let mut buf = vec![0u8; COPY_CHUNK];
            loop {
                let n = reader.read(&mut buf).await.map_err(StoreError::Read)?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > max_bytes {
                    return Err(StoreError::TooLarge { limit: max_bytes });
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).await.map_err(|e| io_at(&path, e))?;
            }
            file.sync_all().await.map_err(|e| io_at(&path, e))?;
            Ok(StagedBlob { path: path.clone(), size, sha256: hex::encode(hasher.finalize()) })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        result
    }

    /// A fresh path in the staging area, for writers that produce a blob with blocking IO (the
    /// de-identification engine). Hand the finished file to [`BlobStore::adopt_staged`].
    pub fn new_staging_path(&self) -> PathBuf {
        self.staging().join(format!("{}.part", uuid::Uuid::new_v4()))
    }

    /// Wraps a file the caller wrote at a path from [`BlobStore::new_staging_path`]; it need not be
    /// flushed if it goes through [`BlobStore::place_blocking`].
    pub fn adopt_staged(&self, path: PathBuf, size: u64, sha256: String) -> StagedBlob {
        StagedBlob { path, size, sha256 }
    }

    /// Stages bytes already in memory (small objects: exports, reports).
    pub async fn stage_bytes(&self, bytes: &[u8]) -> Result<StagedBlob, StoreError> {
        self.stage(bytes, u64::MAX).await
    }

    /// For callers already on a blocking thread, with a staged file they wrote but did not flush:
    /// on local storage, puts it under `key` now and leaves flushing to [`BlobStore::sync_placed`],
    /// which must succeed before any row refers to `key`. That way one flush covers the data and
    /// the new name, and a batch of blobs can be flushed while their rows are written.
    ///
    /// Keys are content hashes, so an object already under `key` is kept when its bytes hash to the
    /// key (the staged copy is dropped) and replaced only when they do not (a file a crash left
    /// half-written, which no row can refer to). An object that was referred to is never replaced,
    /// so a flushed object never gives way to an unflushed one.
    ///
    /// On S3 nothing happens here: the staged blob comes back for [`BlobStore::commit`].
    pub fn place_blocking(&self, staged: StagedBlob, key: &str) -> Result<Placed, StoreError> {
        let BlobStore::Local(l) = self else { return Ok(Placed::Staged(staged)) };
        validate_key(key)?;
        let dest = l.root.join(key);
        let parent = dest.parent().unwrap_or(&l.root);
        // A link, not a rename: it never replaces what is there. The key's folder is made only
        // when the link finds it missing, so most instances cost one system call here.
        let mut linked = std::fs::hard_link(&staged.path, &dest);
        if matches!(&linked, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            std::fs::create_dir_all(parent).map_err(|e| io_at(parent, e))?;
            linked = std::fs::hard_link(&staged.path, &dest);
        }
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Repairs are rare (after a crash); one at a time, so that two of them cannot
                // swap out an object a row already refers to.
                static REPAIR: std::sync::Mutex<()> = std::sync::Mutex::new(());
                let _one = REPAIR.lock().unwrap_or_else(|p| p.into_inner());
                if !holds(&dest, staged.size, &staged.sha256)? {
                    tracing::warn!(key, "replacing an object whose bytes do not match its key (left by a crash)");
                    std::fs::rename(&staged.path, &dest).map_err(|e| io_at(&dest, e))?;
                    return Ok(Placed::Local);
                }
            }
            Err(e) => return Err(io_at(&dest, e)),
        }
        let _ = std::fs::remove_file(&staged.path);
        Ok(Placed::Local)
    }

    /// Flushes an object [`BlobStore::place_blocking`] put under `key` (its bytes, then its
    /// folder's entry). A no-op on S3, whose objects are durable once committed.
    pub fn sync_placed(&self, key: &str) -> Result<(), StoreError> {
        let BlobStore::Local(l) = self else { return Ok(()) };
        validate_key(key)?;
        let dest = l.root.join(key);
        std::fs::File::open(&dest).and_then(|f| f.sync_data()).map_err(|e| io_at(&dest, e))?;
        let parent = dest.parent().unwrap_or(&l.root);
        std::fs::File::open(parent).and_then(|f| f.sync_all()).map_err(|e| io_at(parent, e))
    }

    /// Settles an object whose flush may not have finished before the process stopped: if it is
    /// there with the expected size and SHA-256 it is flushed and `true` returned; `false` when it
    /// is missing or torn. On S3 objects are durable once committed: always `true`.
    pub fn settle_placed(&self, key: &str, size: u64, sha256: &str) -> Result<bool, StoreError> {
        let BlobStore::Local(l) = self else { return Ok(true) };
        validate_key(key)?;
        let dest = l.root.join(key);
        if !dest.exists() || !holds(&dest, size, sha256)? {
            return Ok(false);
        }
        self.sync_placed(key)?;
        Ok(true)
    }

    /// Makes a staged blob durable and visible under `key`. An existing object under the same
    /// key is replaced (keys are content hashes or fresh ids, so a replacement is the same bytes).
    pub async fn commit(&self, staged: StagedBlob, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        match self {
            BlobStore::Local(l) => {
                let (root, dest) = (l.root.clone(), l.root.join(key));
                tokio::task::spawn_blocking(move || rename_into_place(&root, &staged.path, &dest))
                    .await
                    .map_err(|e| StoreError::Read(std::io::Error::other(e)))?
            }
            BlobStore::S3(s) => {
                let location = s.location(key);
                let res = if staged.size <= S3_SINGLE_PUT_MAX {
                    let data = tokio::fs::read(&staged.path).await.map_err(|e| io_at(&staged.path, e))?;
                    s.store.put(&location, PutPayload::from(data)).await.map(|_| ())
                } else {
                    let upload = s.store.put_multipart(&location).await?;
                    let mut writer = WriteMultipart::new_with_chunk_size(upload, S3_PART_SIZE);
                    let mut file = tokio::fs::File::open(&staged.path).await.map_err(|e| io_at(&staged.path, e))?;
                    let mut buf = vec![0u8; S3_PART_SIZE];
                    loop {
                        let n = file.read(&mut buf).await.map_err(|e| io_at(&staged.path, e))?;
                        if n == 0 {
                            break;
                        }
                        writer.wait_for_capacity(4).await?;
                        writer.write(&buf[..n]);
                    }
                    writer.finish().await.map(|_| ())
                };
                res?;
                let _ = tokio::fs::remove_file(&staged.path).await;
                Ok(())
            }
        }
    }

    /// Streams the blob under `key`, or `NotFound`.
    pub async fn get(&self, key: &str) -> Result<BlobStream, StoreError> {
        validate_key(key)?;
        match self {
            BlobStore::Local(l) => {
                let path = l.root.join(key);
                let file = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::BlobNotFound(key.to_string()));
                    }
                    Err(e) => return Err(io_at(&path, e)),
                };
                let stream = tokio_util_stream(file);
                Ok(Box::pin(stream))
            }
            BlobStore::S3(s) => {
                let res = s.store.get(&s.location(key)).await.map_err(|e| match e {
                    object_store::Error::NotFound { .. } => StoreError::BlobNotFound(key.to_string()),
                    other => StoreError::ObjectStore(other),
                })?;
                Ok(Box::pin(res.into_stream().map_err(StoreError::ObjectStore)))
            }
        }
    }

    /// Reads a whole blob into memory. For small blobs only (headers, documents in tests).
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let mut stream = self.get(key).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// The size of the blob under `key`, or `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        validate_key(key)?;
        match self {
            BlobStore::Local(l) => match tokio::fs::metadata(l.root.join(key)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_at(&l.root.join(key), e)),
            },
            BlobStore::S3(s) => match s.store.head(&s.location(key)).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(StoreError::ObjectStore(e)),
            },
        }
    }

    /// Checks that the store answers, for `/readyz`.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            BlobStore::Local(l) => {
                let meta = tokio::fs::metadata(&l.staging).await.map_err(|e| io_at(&l.staging, e))?;
                if meta.permissions().readonly() {
                    return Err(StoreError::Config(format!("{} is read-only", l.staging.display())));
                }
                Ok(())
            }
            BlobStore::S3(s) => match s.store.head(&s.location(".readyz")).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(StoreError::ObjectStore(e)),
            },
        }
    }
}

impl S3Blobs {
    fn location(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{}", self.prefix, key))
        }
    }
}

/// Keys are relative paths of safe segments: no `..`, no leading `/`, no empty segments.
fn validate_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && !seg.starts_with(".staging")
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if ok { Ok(()) } else { Err(StoreError::BadKey(key.to_string())) }
}

fn tokio_util_stream(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, StoreError>> + Send {
    futures_util::stream::try_unfold((file, vec![0u8; COPY_CHUNK]), |(mut file, mut buf)| async move {
        let n = file.read(&mut buf).await.map_err(StoreError::Read)?;
        if n == 0 {
            Ok(None)
        } else {
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            Ok(Some((chunk, (file, buf))))
        }
    })
}

/// Moves a flushed staged file to `dest` (creating its folder) and flushes the folder, since the
/// rename is durable only once the directory entry is.
fn rename_into_place(root: &Path, from: &Path, dest: &Path) -> Result<(), StoreError> {
    let parent = dest.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(|e| io_at(parent, e))?;
    std::fs::rename(from, dest).map_err(|e| io_at(dest, e))?;
    std::fs::File::open(parent).and_then(|f| f.sync_all()).map_err(|e| io_at(parent, e))
}

fn io_at(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io { path: path.display().to_string(), source: e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_safe_relative_paths() {
        for good in ["documents/0a1b", "instances/ab/abcdef.dcm", "x"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "../x", "a//b", "a/../b", ".staging/x", "a b", "a/./b"] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn staged_blob_is_invisible_until_committed_and_then_intact() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().to_str().unwrap(), &S3Settings::default(), dir.path()).unwrap();
        let staged = store.stage_bytes(b"hello corelab").await.unwrap();
        assert_eq!(staged.size, 13);
        assert_eq!(staged.sha256, hex::encode(Sha256::digest(b"hello corelab")));
        assert_eq!(store.size("docs/a").await.unwrap(), None);
        store.commit(staged, "docs/a").await.unwrap();
        assert_eq!(store.get_bytes("docs/a").await.unwrap(), b"hello corelab");
        assert!(matches!(store.get("docs/b").await, Err(StoreError::BlobNotFound(_))));
    }

    #[tokio::test]
    async fn an_oversized_stage_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().to_str().unwrap(), &S3Settings::default(), dir.path()).unwrap();
        let err = store.stage(&[0u8; 100][..], 10).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { limit: 10 }));
        let left: Vec<_> = std::fs::read_dir(dir.path().join(".staging")).unwrap().collect();
        assert!(left.is_empty());
    }

    #[test]
    fn placing_keeps_a_sound_object_and_replaces_only_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().to_str().unwrap(), &S3Settings::default(), dir.path()).unwrap();
        let stage = |bytes: &[u8]| {
            let path = store.new_staging_path();
            std::fs::write(&path, bytes).unwrap();
            store.adopt_staged(path, bytes.len() as u64, hex::encode(Sha256::digest(bytes)))
        };
        let staging_is_empty = || std::fs::read_dir(dir.path().join(".staging")).unwrap().next().is_none();
        let key = "instances/ab/abcd.dcm";
        let dest = dir.path().join(key);

        // First placement: the object appears under its key; the staged file is gone.
        assert!(matches!(store.place_blocking(stage(b"the bytes"), key).unwrap(), Placed::Local));
        assert_eq!(std::fs::read(&dest).unwrap(), b"the bytes");
        assert!(staging_is_empty());
        store.sync_placed(key).unwrap();

        // The same bytes again: the object stays as it was (same file), the copy is dropped.
        let before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dest).unwrap());
        assert!(matches!(store.place_blocking(stage(b"the bytes"), key).unwrap(), Placed::Local));
        assert_eq!(std::fs::read(&dest).unwrap(), b"the bytes");
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dest).unwrap()), before);
        assert!(staging_is_empty());

        // What a crash may leave: bytes of the right length that do not hash to the key.
        std::fs::write(&dest, b"the bytez").unwrap();
        assert!(matches!(store.place_blocking(stage(b"the bytes"), key).unwrap(), Placed::Local));
        assert_eq!(std::fs::read(&dest).unwrap(), b"the bytes");
        assert!(staging_is_empty());

        // Another key in a folder that now exists, and one in a folder still missing.
        for other in ["instances/ab/other.dcm", "instances/cd/more/other.dcm"] {
            assert!(matches!(store.place_blocking(stage(b"other bytes"), other).unwrap(), Placed::Local));
            assert_eq!(std::fs::read(dir.path().join(other)).unwrap(), b"other bytes");
            store.sync_placed(other).unwrap();
        }
        assert!(staging_is_empty());

        // Flushing names what is missing.
        let err = store.sync_placed("instances/ab/missing.dcm").unwrap_err().to_string();
        assert!(err.contains("missing.dcm"), "{err}");
    }
}
