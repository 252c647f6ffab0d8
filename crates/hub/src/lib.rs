//! Model download and upload through the Hugging Face Hub, or any server with its URL layout.
//!
//! - Download ([`download()`]) goes through the `hf-hub` crate (sync API, ureq + rustls): files land
//!   in the standard cache (`$HF_HOME/hub/models--owner--name/{blobs,snapshots,refs}`), with an
//!   indicatif progress bar, and an interrupted file resumes from its `.part` file (HTTP `Range`),
//!   both on retry within a call and on the next call. hf-hub checks nothing after a download, so
//!   every file is checked here against the repository listing (`/api/models/{repo}/revision/{rev}
//!   ?blobs=true`): its size, and its SHA-256 (LFS files) or git blob SHA-1 (other files). A file
//!   that fails is deleted from the cache and reported.
//! - Upload ([`upload()`]) is not in hf-hub; it is implemented here over HTTP (ureq) against the
//!   Hub's documented endpoints: `POST /api/repos/create`, `POST /api/models/{repo}/preupload/{rev}`,
//!   the Git LFS batch API (`POST /{repo}.git/info/lfs/objects/batch`, basic transfer: `PUT` + verify)
//!   and the commit API (`POST /api/models/{repo}/commit/{rev}`, NDJSON).
//!
//! Settings come from the environment ([`HubConfig::from_env`]): `HF_ENDPOINT`, `HF_HOME`
//! (`HF_HUB_CACHE` for the cache alone) and the token (`HF_TOKEN`, else `$HF_HOME/token`).

mod download;
mod hash;
mod upload;

use std::path::PathBuf;

pub use download::{DownloadReport, DownloadedFile, RepoFile, RepoListing, download, repo_listing};
pub use hash::{FileHashes, hash_file};
pub use upload::{UploadOptions, UploadReport, upload};

/// Where and how to reach the Hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Base URL, without a trailing slash (`https://huggingface.co`).
    pub endpoint: String,
    /// The hub cache (`$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    /// Show progress bars.
    pub progress: bool,
    /// Retries of an interrupted file transfer within one call (each resumes where it stopped).
    pub retries: usize,
}

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

impl HubConfig {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any variable lookup (`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN`,
    /// `HUGGING_FACE_HUB_TOKEN`; then `$HF_HOME/token`, as `huggingface-cli login` writes it).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let endpoint = get("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()).trim_end_matches('/').to_string();
        let home = get("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let base = get("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            base.join("huggingface")
        });
        let cache_dir = get("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| home.join("hub"));
        let token = get("HF_TOKEN").or_else(|| get("HUGGING_FACE_HUB_TOKEN")).or_else(|| {
            std::fs::read_to_string(home.join("token")).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        Self { endpoint, cache_dir, token, progress: true, retries: 3 }
    }
}

/// Errors of Hub transfers; each names the repository, file or URL involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request failed (status or transport).
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    /// The server's answer is not what the Hub API returns.
    #[error("{url}: unexpected response: {reason}")]
    Protocol { url: String, reason: String },
    /// hf-hub failed to fetch a file.
    #[error("downloading `{file}` from {repo}: {reason}")]
    Download { repo: String, file: String, reason: String },
    /// A downloaded file does not match the repository listing; it was removed from the cache.
    #[error(
        "`{file}` from {repo} is corrupted: {what} is {found}, expected {expected}; the cached copy was deleted, run the download again"
    )]
    Corrupted { repo: String, file: String, what: String, expected: String, found: String },
    /// Bad arguments (repository id, paths).
    #[error("{0}")]
    Input(String),
}

impl Error {
    fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
    fn http(url: &str, e: ureq::Error) -> Self {
        let reason = match e {
            ureq::Error::Status(code, resp) => {
                let body = resp.into_string().unwrap_or_default();
                format!("HTTP {code}: {}", body.chars().take(300).collect::<String>())
            }
            ureq::Error::Transport(t) => t.to_string(),
        };
        Error::Http { url: url.to_string(), reason }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Checks an `owner/name` (or `name`) repository id.
pub fn check_repo_id(repo: &str) -> Result<()> {
    let ok = !repo.is_empty()
        && repo.split('/').count() <= 2
        && repo.split('/').all(|p| {
            !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if ok { Ok(()) } else { Err(Error::Input(format!("`{repo}` is not a repository id (expected owner/name)"))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn environment() {
        let env =
            HashMap::from([("HF_ENDPOINT", "http://127.0.0.1:9/"), ("HF_HOME", "/tmp/hfhome"), ("HF_TOKEN", "hf_abc")]);
        let c = HubConfig::from_lookup(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert_eq!(c.cache_dir, PathBuf::from("/tmp/hfhome/hub"));
        assert_eq!(c.token.as_deref(), Some("hf_abc"));
        let c = HubConfig::from_lookup(|k| (k == "HOME").then(|| "/home/u".to_string()));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(c.token, None);
    }

    #[test]
    fn repo_ids() {
        assert!(check_repo_id("Qwen/Qwen2.5-3B").is_ok());
        assert!(check_repo_id("gpt2").is_ok());
        for bad in ["", "a/b/c", "a//b", "a b/c", "../x"] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
    }
}
