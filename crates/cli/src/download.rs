//! `bit-axon download`: a model repository from the Hugging Face Hub into the local cache (and
//! optionally a directory), resumable, every file checked against the repository listing.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use bit_axon_hub::{HubConfig, download};
use clap::Args;

#[derive(Args)]
pub struct DownloadArgs {
    /// Repository id (owner/name).
    #[arg(default_value = "skyoo2003/bit-axon")]
    repo: String,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Also copy the files into this directory (otherwise they stay in $HF_HOME/hub).
    #[arg(long, short = 'd')]
    local_dir: Option<PathBuf>,
    /// Only files matching these patterns (`*` and `?`), e.g. `--include '*.json'`.
    #[arg(long)]
    include: Vec<String>,
    /// Retries of an interrupted file within this run (each resumes where it stopped).
    #[arg(long, default_value_t = 3)]
    retries: usize,
}

pub fn run(args: DownloadArgs) -> Result<()> {
    let mut cfg = HubConfig::from_env();
    cfg.progress = std::io::stderr().is_terminal();
    cfg.retries = args.retries;
    let r = download(&cfg, &args.repo, &args.revision, &args.include, args.local_dir.as_deref())?;
    for f in &r.files {
        eprintln!(
            "{:<48} {:>14} bytes  {}  checked: {}",
            f.path,
            f.size,
            if f.cached { "cached" } else { "downloaded" },
            f.verified
        );
    }
    eprintln!("{}@{} ({} files)", r.repo, r.commit, r.files.len());
    println!("{}", r.dir.display());
    Ok(())
}
