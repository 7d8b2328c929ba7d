//! Shots longer than one pass of the model (LTX-Video makes at most 257
//! frames at once): a [`plan`] of overlapping windows, each conditioned on
//! its neighbour's last latent frames, seams cross-faded ([`seam`]), drift
//! held to a reference ([`stats`]), prompts per time range ([`prompts`]),
//! finished windows kept on disk so a shot resumes where it stopped
//! ([`store`]), and the loop that makes them ([`run`]).

pub mod plan;
pub mod prompts;
pub mod run;
pub mod seam;
pub mod stats;
pub mod store;

/// Drift-matching strength when none is asked for: half way to the
/// reference's statistics per window, which holds colour and brightness
/// over a minute without flattening the shot's own changes.
pub const DEFAULT_DRIFT: f32 = 0.5;

/// The key of window `index` of a shot whose key is `shot`: the plan's
/// geometry and drift strength are part of it, so no window is served to
/// another plan.
pub fn window_key(
    shot: &[u8; 32],
    size: plan::WindowSize,
    drift: f32,
    index: usize,
    count: usize,
) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"genfx-window-1");
    h.update(shot);
    for v in [size.length, size.overlap, index, count] {
        h.update((v as u64).to_le_bytes());
    }
    h.update(drift.to_bits().to_le_bytes());
    h.finalize().into()
}

/// The shot key a long shot of two passes per window (at `sizes`) names its
/// windows with: they are not the windows of one pass.
pub fn two_pass_shot(shot: &[u8; 32], sizes: [(usize, usize); 2]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"genfx-two-pass-windows-1");
    h.update(shot);
    for v in sizes.iter().flat_map(|&(w, h)| [w, h]) {
        h.update((v as u64).to_le_bytes());
    }
    h.finalize().into()
}
