/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.to_string(), content: content.to_string() }
    }
    pub fn system(content: &str) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: &str) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: &str) -> Self {
        Self::new("assistant", content)
    }
}

/// The reference implementation's Qwen/ChatML format:
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`
/// as the generation prompt. No default system prompt is inserted.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    pub start: String,
    pub end: String,
}

impl Default for ChatTemplate {
    fn default() -> Self {
        Self { start: "<|im_start|>".into(), end: "<|im_end|>".into() }
    }
}

impl ChatTemplate {
    /// Renders `messages`, followed by the assistant prompt when `generation_prompt` is set.
    pub fn render(&self, messages: &[Message], generation_prompt: bool) -> String {
        let mut out = String::new();
        for m in messages {
            out.push_str(&self.turn(m));
        }
        if generation_prompt {
            out.push_str(&self.generation_prompt());
        }
        out
    }

    /// One message: `<|im_start|>{role}\n{content}<|im_end|>\n`.
    pub fn turn(&self, m: &Message) -> String {
        format!("{}{}\n{}{}\n", self.start, m.role, m.content, self.end)
    }

    /// `<|im_start|>assistant\n`.
    pub fn generation_prompt(&self) -> String {
        format!("{}assistant\n", self.start)
    }
}
