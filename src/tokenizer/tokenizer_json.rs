//! `tokenizer.json` as the HF tokenizers library writes it for T5: a Unigram
//! model (pieces and scores), a `Precompiled` normaliser (SentencePiece's
//! charsmap, base64), `WhitespaceSplit` + `Metaspace` pre-tokenisers and the
//! special tokens as added tokens. Encoding reproduces that library's
//! `Tokenizer.encode(text, add_special_tokens=False)` ids, which differ from
//! `sentencepiece`'s on some strings (it splits on whitespace first and
//! normalises per grapheme), so a tokenizer.json gives the ids a user of it
//! gets from transformers.
//!
//! Why not the `tokenizers` crate: by default it builds the onig and esaxx C
//! libraries, and even without them it brings regex engines, rayon and a
//! dozen more crates for one model type; T5 needs the Unigram model and
//! four small pre/post steps, written here on top of the SentencePiece
//! reader's trie and charsmap. Types we do not implement are refused by
//! name rather than approximated.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use serde_json::Value;
use unicode_segmentation::UnicodeSegmentation;

use super::charsmap::CharsMap;
use super::unigram::PieceTrie;
use super::TokenizerError;

/// Score below the worst piece given to an unknown character (as there).
const UNKNOWN_PENALTY: f64 = 10.0;

#[derive(Clone, Debug)]
struct AddedToken {
    content: String,
    id: u32,
    lstrip: bool,
    rstrip: bool,
}

#[derive(Clone, Debug)]
enum NormStep {
    Precompiled(CharsMap),
    /// `Replace` with a literal pattern.
    Replace {
        pattern: String,
        content: String,
    },
    /// `Replace` of runs of two or more spaces (`{"Regex": " {2,}"}`, what
    /// older T5 conversions write).
    ReplaceSpaceRuns {
        content: String,
    },
    Strip {
        left: bool,
        right: bool,
    },
    Prepend(String),
    Lowercase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrependScheme {
    Always,
    First,
    Never,
}

#[derive(Clone, Debug)]
enum PreStep {
    WhitespaceSplit,
    Metaspace {
        replacement: char,
        prepend: PrependScheme,
        split: bool,
    },
}

/// A pre-token: its text and whether it starts at the start of the input
/// segment's original text (what `prepend_scheme: "first"` asks).
struct Word {
    text: String,
    at_start: bool,
}

/// A T5 `tokenizer.json`.
#[derive(Clone, Debug)]
pub struct TokenizerJson {
    added: Vec<AddedToken>,
    normalizer: Vec<NormStep>,
    pre: Vec<PreStep>,
    scores: Vec<f64>,
    token_to_id: HashMap<String, u32>,
    trie: PieceTrie,
    min_score: f64,
    unk_id: u32,
    byte_fallback: bool,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn bool_field(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

impl TokenizerJson {
    /// Reads `tokenizer.json`; refuses other model types and steps it does
    /// not implement, naming them.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, path)
    }

    /// Parses the JSON text; `origin` names it in errors.
    pub fn from_str(text: &str, origin: &Path) -> Result<Self, TokenizerError> {
        let corrupt = |reason: String| TokenizerError::Corrupt {
            path: origin.to_path_buf(),
            reason,
        };
        let unsupported = |reason: String| TokenizerError::Unsupported {
            path: origin.to_path_buf(),
            reason,
        };
        let root: Value =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
        let model = root
            .get("model")
            .ok_or_else(|| corrupt("no \"model\" section (is this a tokenizer.json?)".into()))?;
        let kind = str_field(model, "type").unwrap_or("(untyped)");
        if kind != "Unigram" {
            return Err(unsupported(format!(
                "it is a {kind} tokenizer; T5, the LTX text encoder, needs its SentencePiece \
                 Unigram tokenizer: tokenizer/spiece.model of PixArt-alpha/PixArt-XL-2-1024-MS \
                 (or spiece.model of google/t5-v1_1-xxl), or a T5 tokenizer.json such as \
                 ComfyUI's comfy/text_encoders/t5_tokenizer/tokenizer.json"
            )));
        }
        let vocab = model
            .get("vocab")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt("the Unigram model has no \"vocab\" list".into()))?;
        if vocab.is_empty() {
            return Err(corrupt("the Unigram model's vocabulary is empty".into()));
        }
        let mut scores = Vec::with_capacity(vocab.len());
        let mut token_to_id = HashMap::with_capacity(vocab.len());
        let mut trie = PieceTrie::new();
        let mut min_score = f64::INFINITY;
        for (index, entry) in vocab.iter().enumerate() {
            let pair = entry.as_array().filter(|p| p.len() == 2);
            let (piece, score) = match pair.map(|p| (p[0].as_str(), p[1].as_f64())) {
                Some((Some(piece), Some(score))) => (piece, score),
                _ => {
                    return Err(corrupt(format!(
                        "vocab entry {index} is not [piece, score]"
                    )))
                }
            };
            let id = u32::try_from(index).map_err(|_| corrupt("too many pieces".into()))?;
            // The library maps a piece to its last id and searches every
            // piece, so a repeated string behaves as its last entry.
            token_to_id.insert(piece.to_string(), id);
            trie.insert(piece.as_bytes(), id);
            scores.push(score);
            min_score = min_score.min(score);
        }
        let unk_id = match model.get("unk_id") {
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| (n as usize) < scores.len())
                .ok_or_else(|| corrupt(format!("unk_id {n} is outside the vocabulary")))?,
            _ => {
                return Err(unsupported(
                    "the Unigram model has no unk_id (T5's has one)".into(),
                ))
            }
        };
        let added = match root.get("added_tokens") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|t| parse_added(t).map_err(&unsupported))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(corrupt("\"added_tokens\" is not a list".into())),
        };
        let mut normalizer = Vec::new();
        if let Some(n) = root.get("normalizer").filter(|v| !v.is_null()) {
            parse_normalizer(n, &mut normalizer, origin)?;
        }
        let mut pre = Vec::new();
        if let Some(p) = root.get("pre_tokenizer").filter(|v| !v.is_null()) {
            parse_pre_tokenizer(p, &mut pre).map_err(&unsupported)?;
        }
        Ok(Self {
            added,
            normalizer,
            pre,
            scores,
            token_to_id,
            trie,
            min_score,
            unk_id,
            byte_fallback: bool_field(model, "byte_fallback", false),
        })
    }

    /// The id of `piece` (an added token or a vocabulary piece).
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|t| t.content == piece)
            .map(|t| t.id)
            .or_else(|| self.token_to_id.get(piece).copied())
    }

    pub fn vocab_size(&self) -> usize {
        self.scores.len()
    }

    /// Ids of `text` without special tokens, as the library's
    /// `encode(text, add_special_tokens=False)`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut rest_start = 0;
        for (start, end, id) in self.find_added(text) {
            self.encode_segment(&text[rest_start..start], rest_start == 0, &mut ids);
            ids.push(id);
            rest_start = end;
        }
        self.encode_segment(&text[rest_start..], rest_start == 0, &mut ids);
        ids
    }

    /// Added tokens in `text`, leftmost first and longest at a position, with
    /// their `lstrip`/`rstrip` whitespace: `(start, end, id)`.
    fn find_added(&self, text: &str) -> Vec<(usize, usize, u32)> {
        let mut found = Vec::new();
        if self.added.is_empty() {
            return found;
        }
        let mut pos = 0;
        let mut floor = 0;
        while pos < text.len() {
            let here = &text[pos..];
            let best = self
                .added
                .iter()
                .filter(|t| !t.content.is_empty() && here.starts_with(&t.content))
                .max_by_key(|t| t.content.len());
            match best {
                Some(token) => {
                    let mut start = pos;
                    let mut end = pos + token.content.len();
                    if token.lstrip {
                        let before = text[floor..start].trim_end_matches(char::is_whitespace);
                        start = floor + before.len();
                    }
                    if token.rstrip {
                        let after = text[end..].trim_start_matches(char::is_whitespace);
                        end = text.len() - after.len();
                    }
                    found.push((start, end, token.id));
                    pos = end;
                    floor = end;
                }
                None => pos += here.chars().next().map_or(1, char::len_utf8),
            }
        }
        found
    }

    fn encode_segment(&self, segment: &str, at_start: bool, ids: &mut Vec<u32>) {
        if segment.is_empty() {
            return;
        }
        let normalized = self.normalize(segment);
        for word in self.pre_tokenize(normalized, at_start) {
            self.encode_word(&word.text, ids);
        }
    }

    /// The normaliser steps, in order, on one segment between added tokens.
    pub fn normalize(&self, text: &str) -> String {
        let mut s = text.to_string();
        for step in &self.normalizer {
            s = match step {
                NormStep::Precompiled(map) => precompiled(map, &s),
                NormStep::Replace { pattern, content } => s.replace(pattern.as_str(), content),
                NormStep::ReplaceSpaceRuns { content } => replace_space_runs(&s, content),
                NormStep::Strip { left, right } => {
                    let mut t = s.as_str();
                    if *left {
                        t = t.trim_start();
                    }
                    if *right {
                        t = t.trim_end();
                    }
                    t.to_string()
                }
                NormStep::Prepend(p) if !s.is_empty() => format!("{p}{s}"),
                NormStep::Prepend(_) => s,
                NormStep::Lowercase => s.to_lowercase(),
            };
        }
        s
    }

    fn pre_tokenize(&self, normalized: String, at_start: bool) -> Vec<Word> {
        let mut words = vec![Word {
            text: normalized,
            at_start,
        }];
        for step in &self.pre {
            let mut next = Vec::new();
            for word in words {
                match step {
                    PreStep::WhitespaceSplit => {
                        let text = word.text.as_str();
                        for piece in text.split(char::is_whitespace) {
                            if !piece.is_empty() {
                                // "first" means at offset 0 of the original
                                // text, which a word after whitespace is not.
                                let starts_text = piece.as_ptr() == text.as_ptr();
                                next.push(Word {
                                    text: piece.to_string(),
                                    at_start: word.at_start && starts_text,
                                });
                            }
                        }
                    }
                    PreStep::Metaspace {
                        replacement,
                        prepend,
                        split,
                    } => {
                        let mut text: String = word
                            .text
                            .chars()
                            .map(|c| if c == ' ' { *replacement } else { c })
                            .collect();
                        let wanted = match prepend {
                            PrependScheme::Always => true,
                            PrependScheme::First => word.at_start,
                            PrependScheme::Never => false,
                        };
                        if wanted && !text.starts_with(*replacement) {
                            text.insert(0, *replacement);
                        }
                        if *split {
                            // Each replacement character starts a new piece
                            // (the library's "merged with next").
                            let mut current = String::new();
                            for c in text.chars() {
                                if c == *replacement && !current.is_empty() {
                                    next.push(Word {
                                        text: std::mem::take(&mut current),
                                        at_start: false,
                                    });
                                }
                                current.push(c);
                            }
                            if !current.is_empty() {
                                next.push(Word {
                                    text: current,
                                    at_start: false,
                                });
                            }
                        } else if !text.is_empty() {
                            next.push(Word {
                                text,
                                at_start: false,
                            });
                        }
                    }
                }
            }
            words = next;
        }
        words
    }

    /// The best segmentation of one pre-token (Viterbi over the pieces, f64
    /// scores, an unknown character scored below the worst piece), runs of
    /// unknown characters fused into one piece, each piece then looked up
    /// by its text (byte pieces or `<unk>` when it is not a piece).
    fn encode_word(&self, word: &str, ids: &mut Vec<u32>) {
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f64,
            start: Option<usize>,
        }
        let bytes = word.as_bytes();
        let size = bytes.len();
        if size == 0 {
            return;
        }
        let unk_score = self.min_score - UNKNOWN_PENALTY;
        let mut best = vec![
            Best {
                id: 0,
                score: 0.0,
                start: None,
            };
            size + 1
        ];
        let mut pos = 0;
        while pos < size {
            let here = best[pos].score;
            let char_len = word[pos..].chars().next().map_or(1, char::len_utf8);
            let mut has_single = false;
            self.trie.prefixes(&bytes[pos..], |len, id| {
                let candidate = self.scores[id as usize] + here;
                let target = &mut best[pos + len];
                if target.start.is_none() || candidate > target.score {
                    *target = Best {
                        id,
                        score: candidate,
                        start: Some(pos),
                    };
                }
                has_single |= len == char_len;
            });
            if !has_single {
                let target = &mut best[pos + char_len];
                let candidate = unk_score + here;
                if target.start.is_none() || candidate > target.score {
                    *target = Best {
                        id: self.unk_id,
                        score: candidate,
                        start: Some(pos),
                    };
                }
            }
            pos += char_len;
        }
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        let mut end = size;
        let mut unk_run_end = None;
        while end > 0 {
            let node = best[end];
            // Every end reached has a start: each character gets a piece or
            // an unknown node covering exactly it.
            let start = node.start.unwrap_or(0);
            if node.id == self.unk_id {
                unk_run_end.get_or_insert(end);
            } else {
                if let Some(run_end) = unk_run_end.take() {
                    pieces.push((end, run_end));
                }
                pieces.push((start, end));
            }
            end = start;
        }
        if let Some(run_end) = unk_run_end {
            pieces.push((0, run_end));
        }
        for &(start, end) in pieces.iter().rev() {
            let piece = &word[start..end];
            if let Some(&id) = self.token_to_id.get(piece) {
                ids.push(id);
                continue;
            }
            if self.byte_fallback {
                let bytes: Option<Vec<u32>> = piece
                    .bytes()
                    .map(|b| self.token_to_id.get(&format!("<0x{b:02X}>")).copied())
                    .collect();
                if let Some(bytes) = bytes {
                    ids.extend(bytes);
                    continue;
                }
            }
            ids.push(self.unk_id);
        }
    }
}

/// The library's `Precompiled` normaliser: per extended grapheme cluster,
/// the cluster's rule when it is shorter than 6 bytes and has one, else
/// each character's rule or the character itself.
fn precompiled(map: &CharsMap, text: &str) -> String {
    let rule = |chunk: &str| {
        map.first_match(chunk.as_bytes())
            .and_then(|r| std::str::from_utf8(r).ok())
    };
    let mut out = String::with_capacity(text.len());
    for grapheme in text.graphemes(true) {
        if grapheme.len() < 6 {
            if let Some(norm) = rule(grapheme) {
                out.push_str(norm);
                continue;
            }
        }
        for (i, c) in grapheme.char_indices() {
            match rule(&grapheme[i..i + c.len_utf8()]) {
                Some(norm) => out.push_str(norm),
                None => out.push(c),
            }
        }
    }
    out
}

fn replace_space_runs(text: &str, content: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = 0;
    let flush = |out: &mut String, run: usize| match run {
        0 => {}
        1 => out.push(' '),
        _ => out.push_str(content),
    };
    for c in text.chars() {
        if c == ' ' {
            run += 1;
        } else {
            flush(&mut out, run);
            run = 0;
            out.push(c);
        }
    }
    flush(&mut out, run);
    out
}

fn parse_added(token: &Value) -> Result<AddedToken, String> {
    let content = str_field(token, "content")
        .ok_or("an added token has no content")?
        .to_string();
    let id = token
        .get("id")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("added token {content:?} has no valid id"))?;
    if bool_field(token, "single_word", false) {
        return Err(format!(
            "added token {content:?} is single_word, which GenFX does not implement (T5's are not)"
        ));
    }
    if bool_field(token, "normalized", false) && !bool_field(token, "special", false) {
        return Err(format!(
            "added token {content:?} is matched after normalisation, which GenFX does not \
             implement (T5's special tokens are matched in the raw text)"
        ));
    }
    Ok(AddedToken {
        content,
        id,
        lstrip: bool_field(token, "lstrip", false),
        rstrip: bool_field(token, "rstrip", false),
    })
}

fn parse_normalizer(
    n: &Value,
    steps: &mut Vec<NormStep>,
    origin: &Path,
) -> Result<(), TokenizerError> {
    let unsupported = |reason: String| TokenizerError::Unsupported {
        path: origin.to_path_buf(),
        reason,
    };
    let corrupt = |reason: String| TokenizerError::Corrupt {
        path: origin.to_path_buf(),
        reason,
    };
    match str_field(n, "type").unwrap_or("(untyped)") {
        "Sequence" => {
            for inner in n
                .get("normalizers")
                .and_then(Value::as_array)
                .ok_or_else(|| corrupt("a Sequence normalizer without \"normalizers\"".into()))?
            {
                parse_normalizer(inner, steps, origin)?;
            }
        }
        "Precompiled" => {
            let blob =
                match n.get("precompiled_charsmap") {
                    Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| corrupt(format!("precompiled_charsmap is not base64: {e}")))?,
                    // The library accepts a missing map as "no rules".
                    _ => Vec::new(),
                };
            if !blob.is_empty() {
                steps.push(NormStep::Precompiled(
                    CharsMap::parse(&blob).map_err(corrupt)?,
                ));
            }
        }
        "Replace" => {
            let content = str_field(n, "content").unwrap_or_default().to_string();
            let pattern = n.get("pattern");
            if let Some(literal) = pattern
                .and_then(|p| p.get("String"))
                .and_then(Value::as_str)
            {
                steps.push(NormStep::Replace {
                    pattern: literal.to_string(),
                    content,
                });
            } else if pattern.and_then(|p| p.get("Regex")).and_then(Value::as_str) == Some(" {2,}")
            {
                steps.push(NormStep::ReplaceSpaceRuns { content });
            } else {
                return Err(unsupported(format!(
                    "a Replace normalizer with pattern {} (GenFX implements literal patterns and \
                     \" {{2,}}\")",
                    pattern.map_or("(none)".to_string(), Value::to_string)
                )));
            }
        }
        "Strip" => steps.push(NormStep::Strip {
            left: bool_field(n, "strip_left", true),
            right: bool_field(n, "strip_right", true),
        }),
        "Prepend" => steps.push(NormStep::Prepend(
            str_field(n, "prepend").unwrap_or_default().to_string(),
        )),
        "Lowercase" => steps.push(NormStep::Lowercase),
        other => {
            return Err(unsupported(format!(
                "its normalizer {other} is not one GenFX implements (T5's tokenizer.json uses \
                 Precompiled)"
            )))
        }
    }
    Ok(())
}

fn parse_pre_tokenizer(p: &Value, steps: &mut Vec<PreStep>) -> Result<(), String> {
    match str_field(p, "type").unwrap_or("(untyped)") {
        "Sequence" => {
            for inner in p
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or("a Sequence pre-tokenizer without \"pretokenizers\"")?
            {
                parse_pre_tokenizer(inner, steps)?;
            }
        }
        "WhitespaceSplit" => steps.push(PreStep::WhitespaceSplit),
        "Metaspace" => {
            let replacement = str_field(p, "replacement").unwrap_or("\u{2581}");
            let mut chars = replacement.chars();
            let (Some(replacement), None) = (chars.next(), chars.next()) else {
                return Err(format!(
                    "Metaspace replacement {replacement:?} is not one character"
                ));
            };
            let prepend = match (str_field(p, "prepend_scheme"), p.get("add_prefix_space")) {
                (Some("always"), _) => PrependScheme::Always,
                (Some("first"), _) => PrependScheme::First,
                (Some("never"), _) => PrependScheme::Never,
                (Some(other), _) => return Err(format!("Metaspace prepend_scheme {other:?}")),
                (None, Some(Value::Bool(false))) => PrependScheme::Never,
                (None, _) => PrependScheme::Always,
            };
            steps.push(PreStep::Metaspace {
                replacement,
                prepend,
                split: bool_field(p, "split", true),
            });
        }
        other => {
            return Err(format!(
                "its pre-tokenizer {other} is not one GenFX implements (T5's tokenizer.json uses \
                 WhitespaceSplit and Metaspace)"
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_runs_collapse_to_the_content() {
        assert_eq!(replace_space_runs("a  b   c d", " "), "a b c d");
        assert_eq!(replace_space_runs("   ", "_"), "_");
    }

    #[test]
    fn other_model_types_are_refused_by_name() {
        let err = TokenizerJson::from_str(
            r#"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#,
            Path::new("x/tokenizer.json"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("BPE tokenizer"), "{err}");
    }
}
