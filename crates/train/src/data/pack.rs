//! Packing encoded documents into fixed-length rows, whole documents only (a document longer
//! than a row is cut at the row length; one whose trained tokens are all cut is dropped by the
//! caller). Each token keeps its document index, which the model turns into attention, conv and
//! scan boundaries; padding is a document of its own with no loss.

use super::encode::Encoded;

/// One training row of exactly `len` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ids: Vec<u32>,
    /// Whether token `t` is a trained target (predicted from `t - 1` of the same document).
    pub train: Vec<bool>,
    /// Document index of each token within the row.
    pub seg: Vec<u32>,
    /// Tokens before the padding.
    pub used: usize,
}

impl Row {
    fn new(len: usize) -> Self {
        Self { ids: Vec::with_capacity(len), train: Vec::with_capacity(len), seg: Vec::with_capacity(len), used: 0 }
    }

    fn push_doc(&mut self, doc: &Encoded, seg: u32) {
        self.ids.extend_from_slice(&doc.ids);
        self.train.extend_from_slice(&doc.train);
        self.seg.extend(std::iter::repeat_n(seg, doc.ids.len()));
    }

    fn pad(mut self, len: usize, pad_id: u32) -> Self {
        let seg = self.seg.last().map_or(0, |s| s + 1);
        self.used = self.ids.len();
        let n = len - self.ids.len();
        self.ids.extend(std::iter::repeat_n(pad_id, n));
        self.train.extend(std::iter::repeat_n(false, n));
        self.seg.extend(std::iter::repeat_n(seg, n));
        self
    }

    /// Targets that carry loss: trained tokens whose predecessor is in the same document.
    pub fn targets(&self) -> usize {
        (1..self.ids.len()).filter(|&t| self.train[t] && self.seg[t] == self.seg[t - 1]).count()
    }
}

/// Cuts `doc` to `len` tokens.
pub fn truncate(mut doc: Encoded, len: usize) -> Encoded {
    doc.ids.truncate(len);
    doc.train.truncate(len);
    doc
}

/// Trained targets of a document on its own (its first token has no predecessor).
pub fn doc_targets(doc: &Encoded) -> usize {
    doc.train.iter().skip(1).filter(|&&t| t).count()
}

/// Greedy packing in the given order: a document goes into the current row if it fits, else the
/// row is padded and a new one starts. `pack = false` gives one document per row.
pub fn pack<'a>(docs: impl IntoIterator<Item = &'a Encoded>, len: usize, pad_id: u32, pack: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut cur = Row::new(len);
    let mut seg = 0u32;
    for doc in docs {
        debug_assert!(doc.ids.len() <= len, "documents are truncated before packing");
        if !cur.ids.is_empty() && (!pack || cur.ids.len() + doc.ids.len() > len) {
            rows.push(std::mem::replace(&mut cur, Row::new(len)).pad(len, pad_id));
            seg = 0;
        }
        cur.push_doc(doc, seg);
        seg += 1;
    }
    if !cur.ids.is_empty() {
        rows.push(cur.pad(len, pad_id));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: usize, first: u32) -> Encoded {
        Encoded { ids: (first..first + n as u32).collect(), train: vec![true; n] }
    }

    #[test]
    fn packs_whole_documents_with_boundaries() {
        let docs = [doc(3, 10), doc(4, 20), doc(2, 30), doc(6, 40)];
        let rows = pack(&docs, 8, 0, true);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ids, vec![10, 11, 12, 20, 21, 22, 23, 0]);
        assert_eq!(rows[0].seg, vec![0, 0, 0, 1, 1, 1, 1, 2]);
        assert_eq!(rows[0].train, vec![true, true, true, true, true, true, true, false]);
        // Targets: 2 in the first document, 3 in the second; none across the boundary or pad.
        assert_eq!(rows[0].targets(), 5);
        assert_eq!(rows[0].used, 7);
        // The third document (2 tokens) does not fit; the fourth (6) fills its row exactly.
        assert_eq!(rows[1].ids, vec![30, 31, 40, 41, 42, 43, 44, 45]);
        assert_eq!(rows[1].seg, vec![0, 0, 1, 1, 1, 1, 1, 1]);
        assert_eq!(rows[1].targets(), 1 + 5);
        assert_eq!(pack(&docs, 8, 0, false).len(), 4);
    }
}
