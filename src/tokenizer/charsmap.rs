//! SentencePiece's precompiled normalisation map (`precompiled_charsmap`).
//!
//! Layout: a little-endian u32 giving the byte size of a darts-clone double
//! array, the array itself (u32 units), then NUL-terminated replacement
//! strings. A prefix of the input that reaches a leaf of the trie is replaced
//! by the string at the leaf's value offset. The lookup below walks the units
//! the same way darts-clone's `commonPrefixSearch` does, so any map the
//! SentencePiece trainer writes is read exactly as SentencePiece reads it.

/// SentencePiece only looks at this many matches per prefix search.
const MAX_TRIE_RESULTS: usize = 32;

#[derive(Clone, Debug)]
pub struct CharsMap {
    units: Vec<u32>,
    replacements: Vec<u8>,
}

/// One double-array unit, decoded as darts-clone does.
#[derive(Clone, Copy)]
struct Unit(u32);

impl Unit {
    fn has_leaf(self) -> bool {
        (self.0 >> 8) & 1 == 1
    }
    fn value(self) -> u32 {
        self.0 & ((1 << 31) - 1)
    }
    /// The label keeps bit 31 so that value units never match an input byte.
    fn label(self) -> u32 {
        self.0 & ((1 << 31) | 0xff)
    }
    fn offset(self) -> usize {
        ((self.0 >> 10) << ((self.0 & (1 << 9)) >> 6)) as usize
    }
}

impl CharsMap {
    /// Splits the blob into trie and replacement strings; `Err` says why it
    /// is broken.
    pub fn parse(blob: &[u8]) -> Result<Self, String> {
        if blob.len() <= 4 {
            return Err("precompiled charsmap is shorter than its header".into());
        }
        let trie_size = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let body = &blob[4..];
        if trie_size >= body.len() || trie_size % 4 != 0 {
            return Err(format!(
                "precompiled charsmap trie size {trie_size} does not fit its {} byte blob",
                blob.len()
            ));
        }
        let units = body[..trie_size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<_>>();
        if units.is_empty() {
            return Err("precompiled charsmap has an empty trie".into());
        }
        Ok(Self {
            units,
            replacements: body[trie_size..].to_vec(),
        })
    }

    fn unit(&self, pos: usize) -> Option<Unit> {
        self.units.get(pos).copied().map(Unit)
    }

    /// The longest rule matching a prefix of `input`: `(bytes consumed,
    /// replacement)`. A corrupt map can only make a rule not match.
    pub fn longest_match(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        let mut node = self.unit(0)?.offset();
        let mut found = 0usize;
        let mut best: Option<(usize, u32)> = None;
        for (i, &byte) in input.iter().enumerate() {
            node ^= usize::from(byte);
            let unit = self.unit(node)?;
            if unit.label() != u32::from(byte) {
                break;
            }
            node ^= unit.offset();
            if unit.has_leaf() {
                if found < MAX_TRIE_RESULTS {
                    best = Some((i + 1, self.unit(node)?.value()));
                }
                found += 1;
            }
        }
        let (len, value) = best?;
        let start = value as usize;
        let tail = self.replacements.get(start..)?;
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        Some((len, &tail[..end]))
    }
}

impl CharsMap {
    /// The rule of the *shortest* prefix of `input` that has one, the
    /// lookup the HF tokenizers library's `Precompiled` normaliser makes
    /// per grapheme (its `transform`: the first result of a common-prefix
    /// search, which stops at a NUL byte). The caller replaces the whole
    /// chunk by it.
    pub fn first_match(&self, input: &[u8]) -> Option<&[u8]> {
        let mut node = self.unit(0)?.offset();
        for &byte in input {
            if byte == 0 {
                return None;
            }
            node ^= usize::from(byte);
            let unit = self.unit(node)?;
            if unit.label() != u32::from(byte) {
                return None;
            }
            node ^= unit.offset();
            if unit.has_leaf() {
                let start = self.unit(node)?.value() as usize;
                let tail = self.replacements.get(start..)?;
                let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
                return Some(&tail[..end]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_headers_are_errors() {
        assert!(CharsMap::parse(&[]).is_err());
        assert!(CharsMap::parse(&[8, 0, 0, 0]).is_err());
        assert!(CharsMap::parse(&[200, 0, 0, 0, 1, 2, 3, 4]).is_err());
        assert!(CharsMap::parse(&[3, 0, 0, 0, 1, 2, 3, 4]).is_err());
    }

    #[test]
    fn garbage_trie_never_panics() {
        let mut blob = vec![8, 0, 0, 0];
        blob.extend_from_slice(&[0xff; 8]);
        blob.extend_from_slice(b"x\0");
        let map = CharsMap::parse(&blob).unwrap();
        for first in 0..=255u8 {
            let _ = map.longest_match(&[first, b'a', 0xff, 0]);
        }
    }
}
