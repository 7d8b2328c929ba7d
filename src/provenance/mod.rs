//! Provenance of generated frames: the invisible mark every generated
//! frame carries ([`watermark`]) and its channel code, and the studio's
//! prompt policy ([`policy`]), and the record kept beside each cached shot
//! ([`record`]).

mod code;
pub mod policy;
pub mod record;
pub mod test_pictures;
pub mod watermark;

use sha2::{Digest, Sha256};

use crate::engine::{Frame, Job, ShotRequest};

/// A 64-bit identity of a request's shot: what the payload's shot bits
/// come from. It covers the fields that make the shot (not the pixels of
/// the real frames, only how many, so it is cheap for long clips; not where
/// the model is, so one model in two layouts marks a shot alike).
pub fn shot_key(request: &ShotRequest) -> u64 {
    let mut h = Sha256::new();
    let frames = |c: &crate::engine::Clip| c.frames.len() as u64;
    let (kind, a, b) = match &request.job {
        Job::Generate { reference } => (0u8, reference.as_ref().map_or(0, frames), 0),
        Job::ExtendForward { context } => (1, frames(context), 0),
        Job::ExtendBackward { context } => (2, frames(context), 0),
        Job::Fill { before, after } => (3, frames(before), frames(after)),
    };
    h.update(request.prompt.as_bytes());
    h.update([0]);
    h.update(request.negative_prompt.as_bytes());
    h.update([0]);
    h.update(format!("{:?}", request.quality).as_bytes());
    for v in [
        request.seed,
        u64::from(request.width),
        u64::from(request.height),
        u64::from(request.num_frames),
        request.frame_rate.to_bits(),
        u64::from(request.guidance.to_bits()),
        u64::from(request.strength.to_bits()),
        u64::from(kind),
        a,
        b,
    ] {
        h.update(v.to_le_bytes());
    }
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// Marks every frame of a generated shot. Only the engine's new frames
/// come here: real frames that pass through the plugin never do.
pub fn mark_shot(frames: &mut [Frame], request: &ShotRequest) {
    let key = watermark::key_from_env();
    let payload = watermark::payload_for(shot_key(request));
    for f in frames {
        let (w, h) = (f.width as usize, f.height as usize);
        watermark::embed(&mut f.rgb, 3, w, h, key, payload);
    }
}
