//! `bit-axon upload`: a checkpoint directory to a Hugging Face Hub model repository, as one commit
//! (large files through Git LFS). Needs a token (HF_TOKEN or `huggingface-cli login`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use bit_axon_hub::{HubConfig, UploadOptions, upload};
use clap::Args;

#[derive(Args)]
pub struct UploadArgs {
    /// Directory to upload (every file, recursively; hidden and *.tmp files are skipped).
    model_path: PathBuf,
    /// Target repository id (owner/name).
    #[arg(long, short = 'r')]
    repo_id: String,
    /// Branch to commit to.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Commit message.
    #[arg(long, short = 'm', default_value = "Upload Bit-Axon checkpoint")]
    commit_message: String,
    /// Create the repository as private when it does not exist.
    #[arg(long)]
    private: bool,
    /// Fail instead of creating a missing repository.
    #[arg(long)]
    no_create: bool,
}

pub fn run(args: UploadArgs) -> Result<()> {
    let mut cfg = HubConfig::from_env();
    cfg.progress = std::io::stderr().is_terminal();
    let mut opts = UploadOptions::new(&args.repo_id);
    opts.revision = args.revision;
    opts.commit_message = args.commit_message;
    opts.private = args.private;
    opts.create = !args.no_create;
    let r = upload(&cfg, &args.model_path, &opts)?;
    for (path, size, mode, sent) in &r.files {
        eprintln!("{path:<48} {size:>14} bytes  {mode:<7} {}", if *sent { "sent" } else { "already on the server" });
    }
    println!("{}", r.commit_url.or(r.commit).unwrap_or_else(|| "committed".into()));
    Ok(())
}
