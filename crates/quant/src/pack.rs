//! Nibble packing: 8 four-bit codes per `u32`, code `j` of a word in bits `4j..4j+3` (LSB first),
//! the layout of MLX's `mx.quantize(.., bits=4)`. A row of `n` codes (`n % 8 == 0`) becomes `n/8` words.

/// Packs codes (each `< 16`) into words; `codes.len()` must be a multiple of 8.
pub fn pack4(codes: &[u8]) -> Vec<u32> {
    assert!(codes.len() % 8 == 0, "pack4: {} codes is not a multiple of 8", codes.len());
    codes
        .chunks_exact(8)
        .map(|c| c.iter().enumerate().fold(0u32, |w, (j, &q)| w | (u32::from(q & 0xF) << (4 * j))))
        .collect()
}

/// Inverse of [`pack4`].
pub fn unpack4(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|&w| (0..8).map(move |j| ((w >> (4 * j)) & 0xF) as u8)).collect()
}
