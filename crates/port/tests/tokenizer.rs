//! The truncated tokenizer against the full one: text made of kept tokens encodes to the same
//! tokens renumbered, other text still encodes (to smaller pieces) and decodes to the same
//! string, and the chat special tokens keep working. Always on the committed 2048-token Qwen
//! tokenizer; on the real Qwen2.5 tokenizer truncated to 32,000 when `BIT_AXON_SHARED` is set.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bit_axon_port::tokenizer::TokenizerFile;
use bit_axon_port::vocab::{VocabMap, by_frequency, count_corpus, first_n};
use tokenizers::Tokenizer;

fn fixture_tokenizer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qwen2-tiny/tokenizer.json")
}

fn load_truncated(tok: &TokenizerFile, map: &VocabMap, tag: &str) -> Tokenizer {
    let path = std::env::temp_dir().join(format!("bit-axon-port-tok-{}-{tag}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&tok.truncate(map).unwrap()).unwrap()).unwrap();
    let t = Tokenizer::from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    t
}

/// Checks every paragraph of `text`; returns (paragraphs fully kept, paragraphs with dropped tokens).
fn check_paragraphs(full: &Tokenizer, cut: &Tokenizer, map: &VocabMap, text: &str) -> (usize, usize) {
    let old_to_new = map.old_to_new();
    let (mut same, mut split) = (0, 0);
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let ids_full = full.encode(para, false).unwrap().get_ids().to_vec();
        let ids_cut = cut.encode(para, false).unwrap().get_ids().to_vec();
        assert!(ids_cut.iter().all(|&i| (i as usize) < map.len()));
        if ids_full.iter().all(|i| old_to_new.contains_key(i)) {
            let mapped: Vec<u32> = ids_full.iter().map(|i| old_to_new[i]).collect();
            assert_eq!(ids_cut, mapped, "paragraph {para:?}");
            same += 1;
        } else {
            // Pieces of the dropped tokens instead (BPE may also split neighbours differently).
            assert!(ids_cut.len() >= ids_full.len(), "{para:?}");
            split += 1;
        }
        assert_eq!(cut.decode(&ids_cut, false).unwrap(), para, "round trip of {para:?}");
    }
    (same, split)
}

fn check_chat(cut: &Tokenizer, map: &VocabMap) {
    let n = map.len() as u32;
    let ids = cut.encode("<|im_start|>user\nHello there<|im_end|>\n<|endoftext|>", false).unwrap().get_ids().to_vec();
    assert_eq!(ids[0], n - 2, "<|im_start|> is the second-to-last id");
    assert!(ids.contains(&(n - 1)), "<|im_end|> is the last id");
    assert_eq!(*ids.last().unwrap(), n - 3, "<|endoftext|>");
    for (id, s) in [(n - 3, "<|endoftext|>"), (n - 2, "<|im_start|>"), (n - 1, "<|im_end|>")] {
        assert_eq!(cut.id_to_token(id).as_deref(), Some(s));
    }
}

fn merge_closed(tok: &TokenizerFile, map: &VocabMap) {
    let kept: HashSet<u32> = map.new_to_old.iter().copied().collect();
    let mut first: HashMap<String, (&str, &str)> = HashMap::new();
    for (a, b) in &tok.merges {
        first.entry(format!("{a}{b}")).or_insert((a, b));
    }
    for (t, id) in &tok.vocab {
        if kept.contains(id)
            && let Some((a, b)) = first.get(t)
        {
            assert!(kept.contains(&tok.vocab[*a]) && kept.contains(&tok.vocab[*b]), "`{t}` kept without its parts");
        }
    }
    // The byte alphabet is always kept.
    assert!(tok.vocab.iter().filter(|(t, _)| t.chars().count() == 1).all(|(_, id)| kept.contains(id)));
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog.\n\nTo be, or not to be, that is the question:\n\
Whether 'tis nobler in the mind to suffer\n\nNumbers 12345 and symbols #@$ too — ünïcödé ✓ 日本語.\n\n\
    indented code();\n\n";

#[test]
fn fixture_tokenizer_truncated_further() {
    let tok = TokenizerFile::open(&fixture_tokenizer()).unwrap();
    let full = Tokenizer::from_file(fixture_tokenizer()).unwrap();
    let map = first_n(&tok, 600).unwrap();
    assert_eq!(map.len(), 600);
    merge_closed(&tok, &map);
    let cut = load_truncated(&tok, &map, "fixture");
    assert_eq!(cut.get_vocab_size(true), 600);
    check_chat(&cut, &map);
    let (same, split) = check_paragraphs(&full, &cut, &map, TEXT);
    assert!(split > 0, "some paragraph uses dropped tokens");
    let _ = same;
    // Single kept words encode exactly: "the" and " the" are among the first merges.
    let ids = full.encode(" the", false).unwrap().get_ids().to_vec();
    assert_eq!(ids.len(), 1);
    assert_eq!(cut.encode(" the", false).unwrap().get_ids(), &[map.old_to_new()[&ids[0]]]);
}

#[test]
fn frequency_map_keeps_the_corpus_tokens() {
    let tok = TokenizerFile::open(&fixture_tokenizer()).unwrap();
    let corpus = "zzz zzz zzz quantum quantum entanglement\n".repeat(20);
    let counts = count_corpus(&fixture_tokenizer(), &corpus).unwrap();
    let map = by_frequency(&tok, 400, &counts).unwrap();
    assert_eq!(map.len(), 400);
    merge_closed(&tok, &map);
    let kept: HashSet<u32> = map.new_to_old.iter().copied().collect();
    assert!(counts.keys().all(|id| kept.contains(id)), "every corpus token fits in 400 and is kept");
    let full = Tokenizer::from_file(fixture_tokenizer()).unwrap();
    let cut = load_truncated(&tok, &map, "freq");
    let (same, _) = check_paragraphs(&full, &cut, &map, &corpus);
    assert_eq!(same, 1);
    check_chat(&cut, &map);
    // The first-N map of the same size drops some of them.
    let first: HashSet<u32> = first_n(&tok, 400).unwrap().new_to_old.into_iter().collect();
    assert!(counts.keys().any(|id| !first.contains(id)));
}

#[test]
fn qwen25_tokenizer_truncated_to_32k() {
    let Some(root) = std::env::var_os("BIT_AXON_SHARED") else {
        eprintln!("skipped: set BIT_AXON_SHARED=../shared to run on the real Qwen2.5 tokenizer");
        return;
    };
    let root = PathBuf::from(root);
    let path = root.join("data/tokenizers/qwen2.5-tokenizer.json");
    let tok = TokenizerFile::open(&path).unwrap();
    let full = Tokenizer::from_file(&path).unwrap();
    let map = first_n(&tok, 32_000).unwrap();
    // Qwen's ids follow merge order, so the first 31,997 ids are already merge-closed.
    assert_eq!(&map.new_to_old[..31_997], &(0..31_997).collect::<Vec<u32>>()[..]);
    assert_eq!(&map.new_to_old[31_997..], &[151_643, 151_644, 151_645]);
    merge_closed(&tok, &map);
    let cut = load_truncated(&tok, &map, "qwen32k");
    assert_eq!(cut.get_vocab_size(true), 32_000);
    check_chat(&cut, &map);
    let text = std::fs::read_to_string(root.join("data/text/hamlet_gut.txt")).unwrap();
    let text: String = text.chars().take(60_000).collect();
    let (same, split) = check_paragraphs(&full, &cut, &map, &text);
    eprintln!("hamlet: {same} paragraphs encode identically (renumbered), {split} use dropped tokens");
    assert!(same >= 50 && split >= 1, "{same} / {split}");

    // A frequency map over one play, checked on another.
    let counts =
        count_corpus(&path, &std::fs::read_to_string(root.join("data/text/macbeth_gut.txt")).unwrap()).unwrap();
    let map = by_frequency(&tok, 32_000, &counts).unwrap();
    merge_closed(&tok, &map);
    let cut = load_truncated(&tok, &map, "qwen32k-freq");
    check_chat(&cut, &map);
    let (same, _) = check_paragraphs(&full, &cut, &map, &text);
    assert!(same >= 50);
}
