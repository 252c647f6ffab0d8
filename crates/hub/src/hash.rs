//! Streaming file hashes: SHA-256 (the Hub's LFS object id) and the git blob SHA-1
//! (`sha1("blob {len}\0" + content)`, the Hub's id for files stored in git).

use std::io::Read;
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHashes {
    pub size: u64,
    pub sha256: String,
    pub git_sha1: String,
}

pub fn hash_file(path: &Path) -> Result<FileHashes> {
    let io = |e| Error::io(path, e);
    let size = std::fs::metadata(path).map_err(io)?.len();
    let mut f = std::fs::File::open(path).map_err(io)?;
    let (mut s256, mut s1) = (Sha256::new(), Sha1::new());
    s1.update(format!("blob {size}\0").as_bytes());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
    }
    Ok(FileHashes { size, sha256: hex(&s256.finalize()), git_sha1: hex(&s1.finalize()) })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let p = std::env::temp_dir().join(format!("bit-axon-hub-hash-{}", std::process::id()));
        std::fs::write(&p, b"hello\n").unwrap();
        let h = hash_file(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(h.size, 6);
        assert_eq!(h.sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        // `echo hello | git hash-object --stdin`
        assert_eq!(h.git_sha1, "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}
