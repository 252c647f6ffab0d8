//! Reading and checking training files, the chat template's loss mask, and the batch stream.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bit_axon_inference::{ChatTemplate, TextTokenizer, byte_level_tokenizer_json};
use bit_axon_train::config::{DataConfig, DataFormat, OnError};
use bit_axon_train::data::format::{Example, parse_line};
use bit_axon_train::data::loader::{RowStream, StreamSpec};
use bit_axon_train::data::{encode::encode, load_documents};

/// Each call writes its own file: tests run on parallel threads, and one of them reading a
/// `tokenizer.json` another is rewriting saw an empty file (CI, stop 11).
fn tokenizer() -> TextTokenizer {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = write(&format!("tokenizer-{n}.json"), &byte_level_tokenizer_json());
    TextTokenizer::from_file(&p).unwrap()
}

fn data_cfg(on_error: OnError) -> DataConfig {
    DataConfig {
        train: vec![],
        eval: vec![],
        format: DataFormat::Auto,
        max_seq_len: 64,
        pack: true,
        on_error,
        mask_prompt: true,
        system_prompt: None,
    }
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bit-axon-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_lines_are_reported_with_file_and_line() {
    let good = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#;
    let text = [
        good,
        r#"{"messages": [{"role": "user", "content": "hi"}"#, // 2: bad JSON
        r#"{"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}"#, // 3: missing role
        "",                                                   // blank: ignored
        r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}"#, // 5: empty answer
        r#"{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}"#,
        r#"{"prompt": "no known keys"}"#, // 7
    ]
    .join("\n");
    let p = write("bad.jsonl", &text);
    let (tok, tpl) = (tokenizer(), ChatTemplate::default());
    let err = load_documents(std::slice::from_ref(&p), &data_cfg(OnError::Stop), &tok, &tpl).unwrap_err().to_string();
    println!("{err}");
    let f = p.display().to_string();
    assert!(err.contains("4 bad line(s)"), "{err}");
    assert!(err.contains(&format!("{f}:2: invalid JSON")), "{err}");
    assert!(err.contains(&format!("{f}:3: messages[0]: missing `role`")), "{err}");
    assert!(err.contains(&format!("{f}:5: turn 1: empty assistant message")), "{err}");
    assert!(err.contains(&format!("{f}:7: unknown record")), "{err}");
    let docs = load_documents(std::slice::from_ref(&p), &data_cfg(OnError::Skip), &tok, &tpl).unwrap();
    assert_eq!(docs.docs.len(), 2);
    assert_eq!(docs.bad_lines.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3, 5, 7]);
}

#[test]
fn formats_parse_to_the_same_conversation() {
    let chat = parse_line(
        r#"{"messages": [{"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "5"}]}"#,
        DataFormat::Auto,
        None,
    )
    .unwrap();
    let share = parse_line(
        r#"{"conversations": [{"from": "human", "value": "Add 2 and 3"}, {"from": "gpt", "value": "5"}]}"#,
        DataFormat::Auto,
        None,
    )
    .unwrap();
    let alpaca =
        parse_line(r#"{"instruction": "Add 2 and 3", "input": "", "output": "5"}"#, DataFormat::Auto, None).unwrap();
    assert_eq!(chat, share);
    assert_eq!(chat, alpaca);
    let with_input =
        parse_line(r#"{"instruction": "Add", "input": "2 and 3", "output": "5"}"#, DataFormat::Alpaca, None).unwrap();
    match with_input {
        Example::Chat(m) => assert_eq!(m[0].content, "Add\n\n2 and 3"),
        _ => panic!(),
    }
    assert_eq!(parse_line(r#"{"text": "abc"}"#, DataFormat::Auto, None).unwrap(), Example::Text("abc".into()));
    let sys = parse_line(r#"{"instruction": "q", "output": "a"}"#, DataFormat::Auto, Some("Be brief.")).unwrap();
    match sys {
        Example::Chat(m) => assert_eq!((m[0].role.as_str(), m.len()), ("system", 3)),
        _ => panic!(),
    }
}

/// Loss falls exactly on the assistant's content and its closing `<|im_end|>`, once.
#[test]
fn loss_mask_covers_assistant_content_and_one_end_token() {
    let (tok, tpl) = (tokenizer(), ChatTemplate::default());
    let ex = parse_line(
        r#"{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "?"}, {"role": "assistant", "content": "Ok"}]}"#,
        DataFormat::Auto,
        None,
    )
    .unwrap();
    let e = encode(&tok, &tpl, &ex, true).unwrap();
    // The whole sequence decodes to the rendered template (encoding turn by turn loses nothing).
    let Example::Chat(msgs) = &ex else { panic!() };
    assert_eq!(tok.decode_with_special(&e.ids), tpl.render(msgs, false));
    let trained: Vec<u32> = e.ids.iter().zip(&e.train).filter(|(_, t)| **t).map(|(i, _)| *i).collect();
    let end = tok.require("<|im_end|>").unwrap();
    let mut want: Vec<u32> = tok.encode("Yo").unwrap();
    want.push(end);
    want.extend(tok.encode("Ok").unwrap());
    want.push(end);
    assert_eq!(trained, want);
    assert_eq!(e.ids.iter().filter(|&&i| i == end).count(), 5, "one <|im_end|> per turn, none appended");
    let all = encode(&tok, &tpl, &ex, false).unwrap();
    assert!(all.train.iter().all(|&t| t));
}

/// The stream is a pure function of (seed, step): any step's batches are the same whether the
/// stream is read from the start or opened at that step; epochs are reshuffled.
#[test]
fn batch_stream_is_deterministic_and_seekable() {
    let (tok, tpl) = (tokenizer(), ChatTemplate::default());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sft/chatterbot_eval.jsonl");
    let docs = load_documents(&[root], &data_cfg(OnError::Stop), &tok, &tpl).unwrap().docs;
    let spec = StreamSpec { seed: 3, seq_len: 64, batch_size: 3, grad_accum: 2, pad_id: 256, pack: true };
    let docs = std::sync::Arc::new(docs);
    let mut a = RowStream::new(docs.clone(), spec.clone());
    let seq: Vec<_> = (0..40).map(|s| a.step_batches(s)).collect();
    let mut b = RowStream::new(docs.clone(), spec.clone());
    for s in [17u64, 18, 39] {
        let got = b.step_batches(s);
        assert_eq!(got.len(), 2);
        for (x, y) in got.iter().zip(&seq[s as usize]) {
            assert_eq!(x.rows, y.rows);
            assert_eq!(x.step_tokens, y.step_tokens);
        }
    }
    let e0 = a.epoch_rows(0);
    let e1 = a.epoch_rows(1);
    assert_ne!(e0[0].ids, e1[0].ids, "each epoch has its own order");
    let total: usize = seq[5].iter().map(|h| h.tokens()).sum();
    assert_eq!(seq[5][0].step_tokens, total);
}
