//! Reading training files: chat (`messages`), ShareGPT (`conversations`), Alpaca
//! (`instruction`/`input`/`output`) and plain-text records, each line checked, every problem
//! reported as `file:line: what is wrong`.

use std::fmt;
use std::path::{Path, PathBuf};

use bit_axon_inference::Message;
use serde_json::Value;

use crate::config::DataFormat;

/// One training document: a conversation, or plain text trained on every token.
#[derive(Debug, Clone, PartialEq)]
pub enum Example {
    Chat(Vec<Message>),
    Text(String),
}

/// A bad input line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Examples and the problems found, in file order.
#[derive(Debug, Default)]
pub struct Parsed {
    pub examples: Vec<Example>,
    pub errors: Vec<LineError>,
}

/// Reads one file. `.txt` files are plain text split at blank lines; anything else is JSONL.
pub fn read_file(path: &Path, format: DataFormat, system_prompt: Option<&str>) -> std::io::Result<Parsed> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Parsed::default();
    if path.extension().is_some_and(|e| e == "txt") {
        for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
            out.examples.push(Example::Text(para.to_string()));
        }
        return Ok(out);
    }
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, format, system_prompt) {
            Ok(ex) => out.examples.push(ex),
            Err(message) => out.errors.push(LineError { file: path.to_path_buf(), line: i + 1, message }),
        }
    }
    Ok(out)
}

/// Parses one JSONL record.
pub fn parse_line(line: &str, format: DataFormat, system_prompt: Option<&str>) -> Result<Example, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON ({e})"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let format = match format {
        DataFormat::Auto => detect(obj)?,
        f => f,
    };
    let mut messages = match format {
        DataFormat::Chat => chat(obj.get("messages").ok_or("missing `messages`")?)?,
        DataFormat::Sharegpt => sharegpt(obj)?,
        DataFormat::Alpaca => alpaca(obj)?,
        DataFormat::Text => {
            let t = string_field(obj, "text")?;
            if t.trim().is_empty() {
                return Err("`text` is empty".into());
            }
            return Ok(Example::Text(t));
        }
        DataFormat::Auto => unreachable!(),
    };
    if let Some(sys) = system_prompt
        && messages.first().is_none_or(|m| m.role != "system")
    {
        messages.insert(0, Message::system(sys));
    }
    check_conversation(&messages)?;
    Ok(Example::Chat(messages))
}

fn detect(obj: &serde_json::Map<String, Value>) -> Result<DataFormat, String> {
    Ok(if obj.contains_key("messages") {
        DataFormat::Chat
    } else if obj.contains_key("conversations") {
        DataFormat::Sharegpt
    } else if obj.contains_key("instruction") {
        DataFormat::Alpaca
    } else if obj.contains_key("text") {
        DataFormat::Text
    } else {
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        return Err(format!(
            "unknown record: expected `messages`, `conversations`, `instruction` or `text`, found keys {keys:?}"
        ));
    })
}

fn string_field(obj: &serde_json::Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("`{key}` must be a string, found {}", kind(other))),
        None => Err(format!("missing `{key}`")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn chat(v: &Value) -> Result<Vec<Message>, String> {
    let arr = v.as_array().ok_or_else(|| format!("`messages` must be an array, found {}", kind(v)))?;
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let o = m.as_object().ok_or_else(|| format!("messages[{i}] must be an object"))?;
            let role = string_field(o, "role").map_err(|e| format!("messages[{i}]: {e}"))?;
            let content = string_field(o, "content").map_err(|e| format!("messages[{i}]: {e}"))?;
            Ok(Message::new(&role, &content))
        })
        .collect()
}

fn sharegpt(obj: &serde_json::Map<String, Value>) -> Result<Vec<Message>, String> {
    let v = obj.get("conversations").ok_or("missing `conversations`")?;
    let arr = v.as_array().ok_or_else(|| format!("`conversations` must be an array, found {}", kind(v)))?;
    let mut out = Vec::new();
    if let Some(Value::String(s)) = obj.get("system_prompt")
        && !s.trim().is_empty()
    {
        out.push(Message::system(s));
    }
    for (i, m) in arr.iter().enumerate() {
        let o = m.as_object().ok_or_else(|| format!("conversations[{i}] must be an object"))?;
        let from = string_field(o, "from").map_err(|e| format!("conversations[{i}]: {e}"))?;
        let value = string_field(o, "value").map_err(|e| format!("conversations[{i}]: {e}"))?;
        let role = match from.as_str() {
            "human" | "user" => "user",
            "gpt" | "assistant" => "assistant",
            "system" => "system",
            other => return Err(format!("conversations[{i}]: unknown speaker `{other}` (human, gpt, system)")),
        };
        out.push(Message::new(role, &value));
    }
    Ok(out)
}

fn alpaca(obj: &serde_json::Map<String, Value>) -> Result<Vec<Message>, String> {
    let instruction = string_field(obj, "instruction")?;
    let input = match obj.get("input") {
        None | Some(Value::Null) => String::new(),
        Some(_) => string_field(obj, "input")?,
    };
    let output = string_field(obj, "output")?;
    let user = if input.trim().is_empty() { instruction } else { format!("{instruction}\n\n{input}") };
    Ok(vec![Message::user(&user), Message::assistant(&output)])
}

/// Roles known, at least one assistant turn, no empty assistant turn.
fn check_conversation(messages: &[Message]) -> Result<(), String> {
    if messages.is_empty() {
        return Err("empty conversation".into());
    }
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
            return Err(format!("turn {i}: unknown role `{}` (system, user, assistant)", m.role));
        }
        if m.role == "assistant" && m.content.trim().is_empty() {
            return Err(format!("turn {i}: empty assistant message"));
        }
    }
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err("no assistant turn to learn from".into());
    }
    Ok(())
}
