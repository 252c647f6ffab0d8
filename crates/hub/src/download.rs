//! Downloading a model repository (or some of its files) through hf-hub, with checks.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;

use crate::hash::hash_file;
use crate::{Error, HubConfig, Result, check_repo_id};

/// One file of the repository listing.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoFile {
    pub path: String,
    pub size: Option<u64>,
    /// SHA-256 of LFS files.
    pub sha256: Option<String>,
    /// Git blob SHA-1 (`blobId`).
    pub git_sha1: Option<String>,
}

/// A repository at one commit.
#[derive(Debug, Clone)]
pub struct RepoListing {
    pub sha: String,
    pub files: Vec<RepoFile>,
}

#[derive(Deserialize)]
struct ApiInfo {
    sha: String,
    siblings: Vec<ApiSibling>,
}

#[derive(Deserialize)]
struct ApiSibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<ApiLfs>,
}

#[derive(Deserialize)]
struct ApiLfs {
    sha256: Option<String>,
    size: Option<u64>,
}

fn api(cfg: &HubConfig) -> Result<hf_hub::api::sync::Api> {
    ApiBuilder::from_cache(Cache::new(cfg.cache_dir.clone()))
        .with_endpoint(cfg.endpoint.clone())
        .with_token(cfg.token.clone())
        .with_progress(cfg.progress)
        .with_retries(cfg.retries)
        .build()
        .map_err(|e| Error::Http { url: cfg.endpoint.clone(), reason: e.to_string() })
}

/// The files of `repo` at `revision`, with sizes and hashes (`GET /api/models/{repo}/revision/{rev}?blobs=true`).
pub fn repo_listing(cfg: &HubConfig, repo: &str, revision: &str) -> Result<RepoListing> {
    check_repo_id(repo)?;
    let api = api(cfg)?;
    let r = api.repo(Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string()));
    let url = format!("{}/api/models/{repo}/revision/{revision}?blobs=true", cfg.endpoint);
    let resp = r.info_request().query("blobs", "true").call().map_err(|e| Error::http(&url, e))?;
    let text = resp.into_string().map_err(|e| Error::Protocol { url: url.clone(), reason: e.to_string() })?;
    let info: ApiInfo =
        serde_json::from_str(&text).map_err(|e| Error::Protocol { url: url.clone(), reason: format!("{e}") })?;
    let files = info
        .siblings
        .into_iter()
        .map(|s| RepoFile {
            path: s.rfilename,
            size: s.lfs.as_ref().and_then(|l| l.size).or(s.size),
            sha256: s.lfs.and_then(|l| l.sha256),
            git_sha1: s.blob_id,
        })
        .collect();
    Ok(RepoListing { sha: info.sha, files })
}

/// One file after [`download`].
#[derive(Debug, Clone)]
pub struct DownloadedFile {
    pub path: String,
    /// Where it is: in the cache's snapshot, or the copy in `local_dir`.
    pub local: PathBuf,
    pub size: u64,
    /// Already in the cache (and verified), so nothing was transferred.
    pub cached: bool,
    /// What the file was checked against: `sha256`, `git-sha1` or `size`.
    pub verified: &'static str,
}

#[derive(Debug, Clone)]
pub struct DownloadReport {
    pub repo: String,
    pub commit: String,
    /// The cache snapshot directory (`.../snapshots/{commit}`), or `local_dir`.
    pub dir: PathBuf,
    pub files: Vec<DownloadedFile>,
}

/// `*` and `?` glob match on the whole path.
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

/// Checks `local` against the listing entry; the name of the check that passed.
fn verify(repo: &str, f: &RepoFile, local: &Path) -> Result<&'static str> {
    let h = hash_file(local)?;
    let bad = |what: &str, expected: String, found: String| Error::Corrupted {
        repo: repo.into(),
        file: f.path.clone(),
        what: what.into(),
        expected,
        found,
    };
    if let Some(size) = f.size
        && size != h.size
    {
        return Err(bad("size", format!("{size} bytes"), format!("{} bytes", h.size)));
    }
    if let Some(sha) = &f.sha256 {
        if !sha.eq_ignore_ascii_case(&h.sha256) {
            return Err(bad("sha256", sha.clone(), h.sha256));
        }
        return Ok("sha256");
    }
    if let Some(sha1) = &f.git_sha1 {
        if !sha1.eq_ignore_ascii_case(&h.git_sha1) {
            return Err(bad("git blob sha1", sha1.clone(), h.git_sha1));
        }
        return Ok("git-sha1");
    }
    Ok("size")
}

/// Removes a cached file: the snapshot pointer and the blob it points to.
fn evict(pointer: &Path) {
    if let Ok(blob) = std::fs::canonicalize(pointer) {
        let _ = std::fs::remove_file(&blob);
    }
    let _ = std::fs::remove_file(pointer);
}

/// Downloads the files of `repo` at `revision` whose path matches one of `include` (all when
/// empty) into the cache, resuming partial files, then checks each against the listing. With
/// `local_dir` the files are also copied there (a self-contained directory).
pub fn download(
    cfg: &HubConfig,
    repo: &str,
    revision: &str,
    include: &[String],
    local_dir: Option<&Path>,
) -> Result<DownloadReport> {
    let listing = repo_listing(cfg, repo, revision)?;
    // Pin every file to the listed commit, so a push during the download cannot mix versions.
    let hf_repo = Repo::with_revision(repo.to_string(), RepoType::Model, listing.sha.clone());
    let api = api(cfg)?;
    let api_repo = api.repo(hf_repo.clone());
    let cache = Cache::new(cfg.cache_dir.clone()).repo(hf_repo);
    let wanted: Vec<&RepoFile> =
        listing.files.iter().filter(|f| include.is_empty() || include.iter().any(|p| glob(p, &f.path))).collect();
    if wanted.is_empty() {
        return Err(Error::Input(format!("no file of {repo}@{revision} matches {include:?}")));
    }
    let mut files = Vec::new();
    let mut snapshot_dir = None;
    for f in wanted {
        if f.path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Protocol {
                url: cfg.endpoint.clone(),
                reason: format!("unsafe file name `{}`", f.path),
            });
        }
        let mut cached = false;
        let pointer = match cache.get(&f.path) {
            Some(p) if verify(repo, f, &p).is_ok() => {
                cached = true;
                p
            }
            other => {
                if let Some(p) = other {
                    evict(&p);
                }
                api_repo.download(&f.path).map_err(|e| Error::Download {
                    repo: repo.into(),
                    file: f.path.clone(),
                    reason: e.to_string(),
                })?
            }
        };
        let verified = match verify(repo, f, &pointer) {
            Ok(v) => v,
            Err(e) => {
                evict(&pointer);
                return Err(e);
            }
        };
        let size = std::fs::metadata(&pointer).map_err(|e| Error::io(&pointer, e))?.len();
        if snapshot_dir.is_none() {
            snapshot_dir = pointer.ancestors().nth(f.path.split('/').count()).map(Path::to_path_buf);
        }
        let local = match local_dir {
            Some(dir) => {
                let dst = dir.join(&f.path);
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::fs::copy(&pointer, &dst).map_err(|e| Error::io(&dst, e))?;
                dst
            }
            None => pointer,
        };
        files.push(DownloadedFile { path: f.path.clone(), local, size, cached, verified });
    }
    let dir = local_dir.map(Path::to_path_buf).or(snapshot_dir).unwrap_or_else(|| cfg.cache_dir.clone());
    Ok(DownloadReport { repo: repo.into(), commit: listing.sha, dir, files })
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("*.safetensors", "model-00001-of-00002.safetensors"));
        assert!(glob("*.json", "config.json"));
        assert!(!glob("*.json", "model.safetensors"));
        assert!(glob("tokenizer?json", "tokenizer.json"));
        assert!(glob("config.json", "config.json"));
    }
}
