//! Writes a truncated tokenizer (first N merge-closed ids + the chat special tokens):
//! `cargo run -p bit-axon-port --example truncate_tokenizer -- SRC/tokenizer.json N OUT/tokenizer.json`
//! (used to make `tests/fixtures/qwen2-tiny/tokenizer.json` from the Qwen2.5 tokenizer).

use std::path::PathBuf;

use bit_axon_port::tokenizer::TokenizerFile;
use bit_axon_port::vocab::first_n;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, n, out] = args.as_slice() else {
        return Err("usage: truncate_tokenizer SRC_TOKENIZER_JSON N OUT_TOKENIZER_JSON".into());
    };
    let tok = TokenizerFile::open(&PathBuf::from(src))?;
    let map = first_n(&tok, n.parse()?)?;
    let json = tok.truncate(&map)?;
    std::fs::write(out, serde_json::to_string(&json)?)?;
    eprintln!("{} tokens, {} merges -> {out}", map.len(), json["model"]["merges"].as_array().map_or(0, Vec::len));
    Ok(())
}
