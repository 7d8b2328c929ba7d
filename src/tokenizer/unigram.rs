//! SentencePiece unigram model: the best segmentation of normalised text
//! into vocabulary pieces (Viterbi), with SentencePiece's handling of
//! unknown characters (one penalised node per character, runs merged) and of
//! byte fallback (unknown characters spelt as `<0xNN>` pieces).

use std::collections::HashMap;

use super::normalizer::Normalizer;
use super::proto::{ModelProto, PieceType};

/// Score below the worst piece given to an unknown character.
const UNKNOWN_PENALTY: f32 = 10.0;

/// Lattice id of a character no piece covers.
const UNKNOWN_NODE: u32 = u32::MAX;

/// Path scores beyond this magnitude are rebased to zero.
const SCORE_RESET_THRESHOLD: f32 = 100_000.0;

/// A byte trie over the piece strings, children kept sorted by byte.
#[derive(Clone, Debug, Default)]
pub(super) struct PieceTrie {
    children: Vec<Vec<(u8, u32)>>,
    ids: Vec<Option<u32>>,
}

impl PieceTrie {
    pub(super) fn new() -> Self {
        Self {
            children: vec![Vec::new()],
            ids: vec![None],
        }
    }

    pub(super) fn insert(&mut self, key: &[u8], id: u32) {
        let mut node = 0usize;
        for &byte in key {
            let slot = self.children[node].binary_search_by_key(&byte, |&(b, _)| b);
            node = match slot {
                Ok(i) => self.children[node][i].1 as usize,
                Err(i) => {
                    let next = self.ids.len();
                    self.children.push(Vec::new());
                    self.ids.push(None);
                    self.children[node].insert(i, (byte, next as u32));
                    next
                }
            };
        }
        self.ids[node] = Some(id);
    }

    /// Calls `found(length, id)` for every piece that is a prefix of `text`,
    /// shortest first.
    pub(super) fn prefixes(&self, text: &[u8], mut found: impl FnMut(usize, u32)) {
        let mut node = 0usize;
        for (i, &byte) in text.iter().enumerate() {
            let children = &self.children[node];
            match children.binary_search_by_key(&byte, |&(b, _)| b) {
                Ok(slot) => node = children[slot].1 as usize,
                Err(_) => return,
            }
            if let Some(id) = self.ids[node] {
                found(i + 1, id);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct BestPath {
    id: u32,
    score: f32,
    /// Byte offset where the last piece of the best path ending here starts.
    start: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct UnigramModel {
    pub(super) normalizer: Normalizer,
    trie: PieceTrie,
    kinds: Vec<PieceType>,
    scores: Vec<f32>,
    /// Normal, user-defined and unused pieces.
    by_piece: HashMap<String, u32>,
    /// Unknown, control and byte pieces; SentencePiece keeps them apart, so
    /// one string may appear in both maps.
    reserved: HashMap<String, u32>,
    /// Absent only in byte-fallback models, which never emit it.
    unk_id: Option<u32>,
    /// Id of `<0xNN>` for every byte, when the model has byte fallback.
    byte_ids: Option<Box<[u32; 256]>>,
    min_score: f32,
}

/// SentencePiece's guess of a character's length from its lead byte alone.
fn one_char_len(lead: u8) -> usize {
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][usize::from(lead >> 4)]
}

fn byte_of_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl UnigramModel {
    /// Checks the model the way SentencePiece's loader does; `Err` says what
    /// is wrong.
    pub fn new(model: &ModelProto) -> Result<Self, String> {
        if model.trainer.model_type != 1 {
            return Err(format!(
                "model type {} is not unigram (the only type T5 uses)",
                model.trainer.model_type
            ));
        }
        if model.pieces.is_empty() {
            return Err("the model has no pieces".into());
        }
        let byte_fallback = model.trainer.byte_fallback;
        let mut trie = PieceTrie::new();
        let mut by_piece = HashMap::new();
        let mut reserved = HashMap::new();
        let mut unk_id = None;
        let mut byte_ids = [u32::MAX; 256];
        let mut user_defined = Vec::new();
        let mut min_score = f32::MAX;
        for (index, piece) in model.pieces.iter().enumerate() {
            let id = u32::try_from(index).map_err(|_| "too many pieces".to_string())?;
            if piece.piece.is_empty() {
                return Err(format!("piece {id} is empty"));
            }
            if !piece.score.is_finite() {
                return Err(format!("piece {:?} has score {}", piece.piece, piece.score));
            }
            // SentencePiece skips an unused piece that is a lone NUL and
            // rejects NUL anywhere else.
            if piece.piece == "\0" && piece.kind == PieceType::Unused {
                continue;
            }
            if piece.piece.contains('\0') {
                return Err(format!("piece {id} contains NUL"));
            }
            let normal = matches!(
                piece.kind,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            );
            let map = if normal { &mut by_piece } else { &mut reserved };
            if map.insert(piece.piece.clone(), id).is_some() {
                return Err(format!("piece {:?} is defined twice", piece.piece));
            }
            match piece.kind {
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused => {
                    trie.insert(piece.piece.as_bytes(), id)
                }
                PieceType::Unknown if unk_id.is_some() => {
                    return Err("the unknown piece is defined twice".into())
                }
                PieceType::Unknown => unk_id = Some(id),
                PieceType::Byte => {
                    if !byte_fallback {
                        return Err(format!(
                            "byte piece {:?} found although byte_fallback is off",
                            piece.piece
                        ));
                    }
                    let byte = byte_of_piece(&piece.piece)
                        .ok_or_else(|| format!("byte piece {:?} is invalid", piece.piece))?;
                    byte_ids[usize::from(byte)] = id;
                }
                PieceType::Control => {}
            }
            if piece.kind == PieceType::UserDefined {
                user_defined.push(piece.piece.as_bytes().to_vec());
            }
            if piece.kind == PieceType::Normal {
                min_score = min_score.min(piece.score);
            }
        }
        if unk_id.is_none() && !byte_fallback {
            return Err("the model defines no unknown piece".into());
        }
        let byte_ids = if byte_fallback {
            if byte_ids.contains(&u32::MAX) {
                return Err("byte_fallback is on but not all 256 byte pieces exist".into());
            }
            Some(Box::new(byte_ids))
        } else {
            None
        };
        let normalizer = Normalizer::new(
            &model.normalizer,
            model.trainer.treat_whitespace_as_suffix,
            user_defined,
        )?;
        Ok(Self {
            normalizer,
            trie,
            kinds: model.pieces.iter().map(|p| p.kind).collect(),
            scores: model.pieces.iter().map(|p| p.score).collect(),
            by_piece,
            reserved,
            unk_id,
            byte_ids,
            min_score,
        })
    }

    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.reserved
            .get(piece)
            .or_else(|| self.by_piece.get(piece))
            .copied()
    }

    pub fn vocab_size(&self) -> usize {
        self.kinds.len()
    }

    /// Viterbi over the lattice of pieces: `(start, end, id)` per piece of
    /// the best segmentation of `normalized`.
    fn best_segmentation(&self, normalized: &[u8]) -> Vec<(usize, usize, u32)> {
        let size = normalized.len();
        let unk_score = self.min_score - UNKNOWN_PENALTY;
        let empty = BestPath {
            id: 0,
            score: 0.0,
            start: None,
        };
        let mut best = vec![empty; size + 1];
        let mut start = 0usize;
        // Furthest end position written so far.
        let mut frontier = 0usize;
        while start < size {
            let mut here = best[start].score;
            // Long inputs rebase the scores so that f32 keeps its precision;
            // SentencePiece does this at the same threshold, which decides
            // near-ties the same way.
            if !(-SCORE_RESET_THRESHOLD..=SCORE_RESET_THRESHOLD).contains(&here) {
                let offset = here;
                for (i, node) in best.iter_mut().enumerate().take(frontier + 1).skip(start) {
                    if i == start || node.start.is_some() {
                        node.score -= offset;
                    }
                }
                here = 0.0;
            }
            let char_len = one_char_len(normalized[start]).min(size - start);
            let mut has_single_char_piece = false;
            self.trie.prefixes(&normalized[start..], |len, id| {
                let kind = self.kinds[id as usize];
                if kind == PieceType::Unused {
                    return;
                }
                let target = &mut best[start + len];
                frontier = frontier.max(start + len);
                // User-defined pieces get a bonus that grows with length so
                // that they always win.
                let score = if kind == PieceType::UserDefined {
                    (0.1 * (len as f64 - 1.0)) as f32
                } else {
                    self.scores[id as usize]
                };
                let candidate = score + here;
                let better =
                    (target.start.is_none() || candidate > target.score).then_some(candidate);
                if let Some(score) = better {
                    *target = BestPath {
                        id,
                        score,
                        start: Some(start),
                    };
                }
                if len == char_len {
                    has_single_char_piece = true;
                }
            });
            if !has_single_char_piece {
                frontier = frontier.max(start + char_len);
                let target = &mut best[start + char_len];
                let candidate = unk_score + here;
                if target.start.is_none() || candidate > target.score {
                    *target = BestPath {
                        id: UNKNOWN_NODE,
                        score: candidate,
                        start: Some(start),
                    };
                }
            }
            start += char_len;
        }
        let mut pieces = Vec::new();
        let mut end = size;
        while end > 0 {
            let node = best[end];
            // Every reachable end has a start: each character either matches
            // a piece or gets an unknown node covering exactly it.
            let begin = node.start.unwrap_or(0);
            pieces.push((begin, end, node.id));
            end = begin;
        }
        pieces.reverse();
        pieces
    }

    /// Normalises `text` and returns its piece ids, as SentencePiece's
    /// `EncodeAsIds` (no BOS/EOS).
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        let normalized = self.normalizer.normalize(text);
        let mut ids = Vec::new();
        let mut prev_unknown = false;
        for (begin, end, id) in self.best_segmentation(&normalized) {
            let unknown = id == UNKNOWN_NODE;
            match (&self.byte_ids, self.unk_id) {
                (Some(byte_ids), _) if unknown => ids.extend(
                    normalized[begin..end]
                        .iter()
                        .map(|&b| byte_ids[usize::from(b)]),
                ),
                // A run of unknown characters is one unknown piece.
                (None, Some(unk_id)) if unknown => {
                    if !prev_unknown {
                        ids.push(unk_id)
                    }
                }
                _ => ids.push(id),
            }
            prev_unknown = unknown;
        }
        ids
    }
}
