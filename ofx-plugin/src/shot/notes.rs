//! What the user should know about a shot that still rendered: a length
//! that was rounded, a prompt that was cut, a shot that could not be kept on
//! disk. Kept per shot and process-wide, because the instance (or render
//! clone) that shows a frame is often not the one that generated the shot.

use super::ShotKey;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

/// Shots whose notes are remembered; older ones are forgotten first. Notes
/// are short, a few per shot.
const REMEMBERED_SHOTS: usize = 512;

#[derive(Default)]
pub struct ShotNotes {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    notes: HashMap<ShotKey, Vec<String>>,
    order: VecDeque<ShotKey>,
}

impl ShotNotes {
    /// Adds `text` to the shot's notes (once).
    pub fn record(&self, key: ShotKey, text: &str) {
        let mut inner = self.inner.lock();
        if !inner.notes.contains_key(&key) {
            if inner.order.len() == REMEMBERED_SHOTS {
                if let Some(old) = inner.order.pop_front() {
                    inner.notes.remove(&old);
                }
            }
            inner.order.push_back(key);
        }
        let notes = inner.notes.entry(key).or_default();
        if !notes.iter().any(|n| n == text) {
            notes.push(text.to_string());
        }
    }

    /// The shot's notes as one message, `None` when there are none.
    pub fn message(&self, key: ShotKey) -> Option<String> {
        let inner = self.inner.lock();
        let notes = inner.notes.get(&key).filter(|n| !n.is_empty())?;
        Some(format!("GenFX: {}.", notes.join("; ")))
    }
}

/// The process's notes, shared by every instance.
pub fn global() -> &'static ShotNotes {
    static NOTES: std::sync::OnceLock<ShotNotes> = std::sync::OnceLock::new();
    NOTES.get_or_init(ShotNotes::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> ShotKey {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&n.to_le_bytes());
        ShotKey(k)
    }

    #[test]
    fn notes_are_joined_once_per_text() {
        let notes = ShotNotes::default();
        assert_eq!(notes.message(key(1)), None);
        notes.record(key(1), "10 frames is not 8k+1; generating 9 frames");
        notes.record(key(1), "the prompt was cut");
        notes.record(key(1), "the prompt was cut");
        assert_eq!(
            notes.message(key(1)).unwrap(),
            "GenFX: 10 frames is not 8k+1; generating 9 frames; the prompt was cut."
        );
        assert_eq!(notes.message(key(2)), None);
    }

    #[test]
    fn the_oldest_shots_are_forgotten() {
        let notes = ShotNotes::default();
        for n in 0..REMEMBERED_SHOTS as u32 + 10 {
            notes.record(key(n), "note");
        }
        assert_eq!(notes.message(key(0)), None);
        assert_eq!(notes.message(key(9)), None);
        assert!(notes.message(key(10)).is_some());
        assert!(notes.message(key(REMEMBERED_SHOTS as u32 + 9)).is_some());
    }
}
