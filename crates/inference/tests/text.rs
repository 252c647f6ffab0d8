//! Tokenizer loading, special tokens, the chat template, and UTF-8-safe streaming decoding.

use std::path::PathBuf;

use bit_axon_inference::{ChatTemplate, Message, StreamDecoder, TextTokenizer, byte_level_tokenizer_json};

fn byte_tokenizer(name: &str, json: &str) -> (TextTokenizer, PathBuf) {
    let path = std::env::temp_dir().join(format!("bit-axon-tok-{}-{name}.json", std::process::id()));
    std::fs::write(&path, json).unwrap();
    (TextTokenizer::from_file(&path).unwrap(), path)
}

#[test]
fn byte_level_tokenizer_round_trips_and_resolves_specials() {
    let (tok, path) = byte_tokenizer("bytes", &byte_level_tokenizer_json());
    assert_eq!(tok.require("<|endoftext|>").unwrap(), 256);
    assert_eq!(tok.require("<|im_start|>").unwrap(), 257);
    assert_eq!(tok.require("<|im_end|>").unwrap(), 258);
    assert_eq!(tok.stop_ids(), vec![256, 258]);
    let text = "Grüße, 世界! 😀";
    let ids = tok.encode(text).unwrap();
    assert_eq!(ids.len(), text.len(), "one token per byte");
    assert_eq!(tok.decode(&ids), text);
    let chat = tok.encode("<|im_start|>user\nhi<|im_end|>\n").unwrap();
    assert_eq!(chat[0], 257);
    assert_eq!(chat[chat.len() - 2], 258);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn missing_special_token_error_names_token_and_file() {
    let json = byte_level_tokenizer_json().replace("<|im_end|>", "<|im_stop|>");
    let (tok, path) = byte_tokenizer("nospecial", &json);
    let err = tok.require_chat_tokens().unwrap_err().to_string();
    assert!(err.contains("<|im_end|>") && err.contains(&*path.to_string_lossy()), "{err}");
    std::fs::remove_file(path).unwrap();
    let err = TextTokenizer::from_file(std::path::Path::new("/nonexistent/tokenizer.json")).err().unwrap().to_string();
    assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
}

#[test]
fn chat_template_is_the_reference_chatml_format() {
    let t = ChatTemplate::default();
    let s = t.render(
        &[Message::system("Be brief."), Message::user("Hi"), Message::assistant("Hello."), Message::user("Bye")],
        true,
    );
    assert_eq!(
        s,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(t.render(&[Message::user("x")], false), "<|im_start|>user\nx<|im_end|>\n");
}

#[test]
fn streaming_holds_back_split_characters() {
    let (tok, path) = byte_tokenizer("stream", &byte_level_tokenizer_json());
    let text = "héllo wörld 😀 ok ✓";
    let ids = tok.encode(text).unwrap();
    let mut dec = StreamDecoder::new();
    let mut out = String::new();
    let mut held = 0;
    for &id in &ids {
        match dec.push(id, |x| tok.decode(x)) {
            Some(delta) => {
                assert!(!delta.contains('\u{FFFD}'), "emitted a partial character: {delta:?}");
                out.push_str(&delta);
            }
            None => held += 1,
        }
    }
    assert!(held >= 3, "multi-byte characters must be held back ({held})");
    assert_eq!(out, text);
    assert_eq!(dec.flush(|x| tok.decode(x)), None);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn qwen_tokenizer_special_tokens_when_shared_data_present() {
    let Some(root) = std::env::var_os("BIT_AXON_SHARED") else {
        eprintln!("skipped: set BIT_AXON_SHARED=../shared");
        return;
    };
    let path = PathBuf::from(root).join("data/tokenizers/qwen2.5-tokenizer.json");
    let tok = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(tok.require("<|endoftext|>").unwrap(), 151_643);
    assert_eq!(tok.require("<|im_start|>").unwrap(), 151_644);
    assert_eq!(tok.require("<|im_end|>").unwrap(), 151_645);
    let prompt = ChatTemplate::default().render(&[Message::user("Hello, world!")], true);
    let ids = tok.encode(&prompt).unwrap();
    assert_eq!(ids[0], 151_644);
    assert_eq!(tok.inner().decode(&ids, false).unwrap(), prompt);
}
