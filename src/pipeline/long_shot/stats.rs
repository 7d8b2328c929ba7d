//! Drift control: each window's latents are matched, channel by channel,
//! to a reference's statistics (AdaIN), the remedy the ComfyUI LTX-Video
//! looping sampler applies against colour and brightness drift over long
//! chains.
//!
//! For channel `c` with mean `μx` and standard deviation `σx` over the
//! window's new latent frames, and the reference's `μref`, `σref`:
//!
//! `x' = x + s·((x − μx)/σx·σref + μref − x)`
//!
//! where `s` in [0, 1] is the strength: 0 leaves the window as made, 1
//! gives it exactly the reference's mean and spread.

/// Per-channel mean and standard deviation of a `[C, f, h, w]` latent grid
/// over some of its latent frames.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Below this a channel is flat: dividing by its spread would blow noise up.
const FLAT: f64 = 1e-6;

impl ChannelStats {
    /// The statistics of latent frames `frames` of `latents`, laid out
    /// `[channels, latent_frames, plane]`. Sums are in f64 so that a long
    /// window's mean does not depend on summation rounding.
    pub fn of(
        latents: &[f32],
        channels: usize,
        latent_frames: usize,
        frames: std::ops::Range<usize>,
    ) -> Self {
        let plane = latents.len() / (channels * latent_frames).max(1);
        let mut mean = Vec::with_capacity(channels);
        let mut std = Vec::with_capacity(channels);
        for c in 0..channels {
            let from = (c * latent_frames + frames.start) * plane;
            let to = (c * latent_frames + frames.end) * plane;
            let values = &latents[from..to];
            let n = values.len().max(1) as f64;
            let m = values.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = values.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
            mean.push(m as f32);
            std.push(var.sqrt() as f32);
        }
        Self { mean, std }
    }

    /// The flat form stored with a window: means then deviations.
    pub fn to_vec(&self) -> Vec<f32> {
        self.mean.iter().chain(&self.std).copied().collect()
    }

    pub fn from_slice(values: &[f32]) -> Self {
        let c = values.len() / 2;
        Self {
            mean: values[..c].to_vec(),
            std: values[c..2 * c].to_vec(),
        }
    }
}

/// Pulls latent frames `frames` of `latents` (`[C, latent_frames, plane]`)
/// towards `reference` with strength `s` (the formula in the module notes).
/// The statistics are those of the frames being adjusted; flat channels are
/// only shifted.
pub fn match_to(
    latents: &mut [f32],
    channels: usize,
    latent_frames: usize,
    frames: std::ops::Range<usize>,
    reference: &ChannelStats,
    s: f32,
) {
    if s == 0.0 || frames.is_empty() {
        return;
    }
    let own = ChannelStats::of(latents, channels, latent_frames, frames.clone());
    let plane = latents.len() / (channels * latent_frames).max(1);
    for c in 0..channels {
        let (mx, sx) = (own.mean[c], own.std[c]);
        let (mr, sr) = (reference.mean[c], reference.std[c]);
        let scale = if (sx as f64) > FLAT { sr / sx } else { 1.0 };
        let from = (c * latent_frames + frames.start) * plane;
        let to = (c * latent_frames + frames.end) * plane;
        for x in &mut latents[from..to] {
            let matched = (*x - mx) * scale + mr;
            *x += s * (matched - *x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Vec<f32> {
        // 2 channels, 3 latent frames, 4 values a plane.
        (0..24).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.0).collect()
    }

    #[test]
    fn full_strength_gives_the_reference_statistics() {
        let mut x = grid();
        let reference = ChannelStats {
            mean: vec![0.5, -2.0],
            std: vec![2.0, 0.25],
        };
        match_to(&mut x, 2, 3, 1..3, &reference, 1.0);
        let got = ChannelStats::of(&x, 2, 3, 1..3);
        for c in 0..2 {
            assert!((got.mean[c] - reference.mean[c]).abs() < 1e-5);
            assert!((got.std[c] - reference.std[c]).abs() < 1e-5);
        }
        // Frames outside the range are untouched.
        assert_eq!(x[..4], grid()[..4]);
        assert_eq!(x[12..16], grid()[12..16]);
    }

    #[test]
    fn strength_interpolates_and_zero_leaves_the_window() {
        let reference = ChannelStats {
            mean: vec![3.0, 3.0],
            std: vec![1.0, 1.0],
        };
        let mut none = grid();
        match_to(&mut none, 2, 3, 0..3, &reference, 0.0);
        assert_eq!(none, grid());
        let mut full = grid();
        match_to(&mut full, 2, 3, 0..3, &reference, 1.0);
        let mut half = grid();
        match_to(&mut half, 2, 3, 0..3, &reference, 0.5);
        for ((h, f), x) in half.iter().zip(&full).zip(grid()) {
            assert!((h - (x + 0.5 * (f - x))).abs() < 1e-5);
        }
    }

    #[test]
    fn stats_round_trip_through_their_stored_form() {
        let s = ChannelStats::of(&grid(), 2, 3, 0..3);
        assert_eq!(ChannelStats::from_slice(&s.to_vec()), s);
    }
}
