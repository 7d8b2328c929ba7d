//! SentencePiece text normalisation: the precompiled charsmap (NFKC-style
//! rules), whitespace collapsing, the dummy prefix and escaping spaces as
//! U+2581. Works on bytes so that malformed UTF-8 is handled the way
//! SentencePiece handles it (one byte becomes U+FFFD).

use super::charsmap::CharsMap;
use super::proto::NormalizerSpec;

/// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
pub const SPACE_SYMBOL: &str = "\u{2581}";
const REPLACEMENT_CHAR: &[u8] = "\u{fffd}".as_bytes();

#[derive(Clone, Debug)]
pub struct Normalizer {
    charsmap: Option<CharsMap>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
    /// User-defined pieces pass through unnormalised (longest match wins).
    user_defined: Vec<Vec<u8>>,
}

/// Length of the valid UTF-8 character at the start of `input`, with
/// SentencePiece's rules (no overlongs, no surrogates, at most U+10FFFF).
/// `None` when the first byte does not start a valid character.
fn valid_char_len(input: &[u8]) -> Option<usize> {
    let lead = *input.first()?;
    let (len, min, init) = match lead {
        0x00..=0x7f => return Some(1),
        _ if lead & 0xe0 == 0xc0 => (2, 0x80, u32::from(lead & 0x1f)),
        _ if lead & 0xf0 == 0xe0 => (3, 0x800, u32::from(lead & 0x0f)),
        _ if lead & 0xf8 == 0xf0 => (4, 0x10000, u32::from(lead & 0x07)),
        _ => return None,
    };
    let tail = input.get(1..len)?;
    if tail.iter().any(|&b| b & 0xc0 != 0x80) {
        return None;
    }
    let cp = tail
        .iter()
        .fold(init, |cp, &b| (cp << 6) | u32::from(b & 0x3f));
    let valid = cp >= min && (cp < 0xd800 || (0xe000..=0x10ffff).contains(&cp));
    valid.then_some(len)
}

impl Normalizer {
    pub fn new(
        spec: &NormalizerSpec,
        treat_whitespace_as_suffix: bool,
        user_defined: Vec<Vec<u8>>,
    ) -> Result<Self, String> {
        let charsmap = if spec.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::parse(&spec.precompiled_charsmap)?)
        };
        Ok(Self {
            charsmap,
            add_dummy_prefix: spec.add_dummy_prefix,
            remove_extra_whitespaces: spec.remove_extra_whitespaces,
            escape_whitespaces: spec.escape_whitespaces,
            treat_whitespace_as_suffix,
            user_defined,
        })
    }

    /// Normalises the longest rule at the start of `input` (non-empty):
    /// `(replacement, bytes consumed)`.
    fn normalize_prefix<'a>(&'a self, input: &'a [u8]) -> (&'a [u8], usize) {
        let user = self
            .user_defined
            .iter()
            .filter(|p| input.starts_with(p))
            .map(|p| p.len())
            .max();
        if let Some(len) = user {
            return (&input[..len], len);
        }
        if let Some((len, replacement)) =
            self.charsmap.as_ref().and_then(|m| m.longest_match(input))
        {
            return (replacement, len);
        }
        match valid_char_len(input) {
            Some(len) => (&input[..len], len),
            // U+FFFD written literally is valid; anything else malformed
            // consumes one byte and becomes U+FFFD.
            None => (REPLACEMENT_CHAR, 1),
        }
    }

    fn push_space(&self, out: &mut Vec<u8>) {
        if self.escape_whitespaces {
            out.extend_from_slice(SPACE_SYMBOL.as_bytes());
        } else {
            out.push(b' ');
        }
    }

    /// The normalised form of `input`, as SentencePiece's `Normalize`.
    pub fn normalize(&self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() * 3);
        if input.is_empty() {
            return out;
        }
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (piece, consumed) = self.normalize_prefix(input);
                if piece != b" " {
                    break;
                }
                input = &input[consumed..];
            }
        }
        if input.is_empty() {
            return out;
        }
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            self.push_space(&mut out);
        }
        let mut prev_is_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut piece, consumed) = self.normalize_prefix(input);
            if prev_is_space {
                while let Some(rest) = piece.strip_prefix(b" ") {
                    piece = rest;
                }
            }
            if !piece.is_empty() {
                for &byte in piece {
                    if self.escape_whitespaces && byte == b' ' {
                        out.extend_from_slice(SPACE_SYMBOL.as_bytes());
                    } else {
                        out.push(byte);
                    }
                }
                prev_is_space = piece.ends_with(b" ");
            }
            input = &input[consumed..];
            if !self.remove_extra_whitespaces {
                prev_is_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            let space: &[u8] = if self.escape_whitespaces {
                SPACE_SYMBOL.as_bytes()
            } else {
                b" "
            };
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            self.push_space(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_validation_matches_sentencepiece_rules() {
        assert_eq!(valid_char_len(b"a"), Some(1));
        assert_eq!(valid_char_len("é".as_bytes()), Some(2));
        assert_eq!(valid_char_len("😀".as_bytes()), Some(4));
        assert_eq!(valid_char_len(&[0xc0, 0x80]), None); // overlong NUL
        assert_eq!(valid_char_len(&[0xed, 0xa0, 0x80]), None); // surrogate
        assert_eq!(valid_char_len(&[0xe2, 0x96]), None); // truncated
        assert_eq!(valid_char_len(&[0x80]), None);
    }

    #[test]
    fn identity_spec_collapses_and_escapes_spaces() {
        let n = Normalizer::new(&NormalizerSpec::default(), false, Vec::new()).unwrap();
        let out = n.normalize(b"  a   b  ");
        assert_eq!(String::from_utf8(out).unwrap(), "\u{2581}a\u{2581}b");
        assert!(n.normalize(b"    ").is_empty());
        // Malformed bytes become U+FFFD one byte at a time.
        let out = n.normalize(&[b'x', 0xff, 0xfe]);
        assert_eq!(String::from_utf8(out).unwrap(), "\u{2581}x\u{fffd}\u{fffd}");
    }
}
