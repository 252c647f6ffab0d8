/// Turns a growing list of token ids into text deltas, holding back bytes of a multi-byte UTF-8
/// character split across tokens until it is complete (a byte-level BPE token may carry half
/// of "é" or of an emoji).
///
/// Decodes a short window `[prefix, ..]` rather than the whole sequence, so each step costs
/// O(window), in the manner of Hugging Face's `DecodeStream`.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns the new text it completes, if any.
    pub fn push(&mut self, id: u32, decode: impl Fn(&[u32]) -> String) -> Option<String> {
        self.ids.push(id);
        let before = decode(&self.ids[self.prefix..self.read]);
        let now = decode(&self.ids[self.prefix..]);
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') && now.is_char_boundary(before.len()) {
            let delta = now[before.len()..].to_string();
            self.prefix = self.read;
            self.read = self.ids.len();
            Some(delta)
        } else {
            None
        }
    }

    /// Text still held back (an incomplete character at the end), decoded lossily.
    pub fn flush(&mut self, decode: impl Fn(&[u32]) -> String) -> Option<String> {
        let before = decode(&self.ids[self.prefix..self.read]);
        let now = decode(&self.ids[self.prefix..]);
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        (now.len() > before.len() && now.is_char_boundary(before.len())).then(|| now[before.len()..].to_string())
    }
}
