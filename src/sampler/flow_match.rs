//! The flow-matching Euler step with per-token timesteps, and the guidance
//! that combines several velocity predictions into one.
//!
//! Arithmetic follows the reference in f32, operation by operation, so that
//! a step agrees with PyTorch to rounding.

/// The timestep each token is denoised at: the step's timestep, lowered for
/// conditioned tokens to `(1 - strength) * train` (a fully conditioned token
/// sits at 0 and is never moved).
pub fn token_timesteps(
    t: f32,
    condition_mask: Option<&[f32]>,
    tokens: usize,
    train: f32,
) -> Vec<f32> {
    match condition_mask {
        None => vec![t; tokens],
        Some(mask) => mask.iter().map(|&m| t.min((1.0 - m) * train)).collect(),
    }
}

/// The sigma a token at `sigma` moves to: the largest schedule sigma below it
/// (0 when none is).
pub fn next_sigma(schedule_sigmas: &[f32], sigma: f32) -> f32 {
    let limit = sigma - 1e-6;
    schedule_sigmas
        .iter()
        .copied()
        .filter(|&s| s < limit)
        .fold(0.0f32, f32::max)
}

/// Where in the schedule a step is.
#[derive(Clone, Copy, Debug)]
pub struct StepAt<'a> {
    /// The schedule's sigmas, terminal 0 included.
    pub sigmas: &'a [f32],
    /// The step's timestep, as the transformer is told it.
    pub t: f32,
    /// The scheduler's `num_train_timesteps`.
    pub train: f32,
}

/// One Euler step of `latents` (`[tokens, channels]`) along `velocity`, each
/// token from its own timestep to the next lower sigma of the schedule.
/// Tokens whose conditioning keeps them at or below the step's noise level
/// (`t / train >= 1 - strength`) are left as they are.
pub fn euler_step(
    latents: &mut [f32],
    velocity: &[f32],
    channels: usize,
    token_timesteps: &[f32],
    condition_mask: Option<&[f32]>,
    at: StepAt<'_>,
) {
    debug_assert_eq!(latents.len(), velocity.len());
    debug_assert_eq!(latents.len(), token_timesteps.len() * channels);
    let (schedule_sigmas, train) = (at.sigmas, at.train);
    let step_sigma = at.t / train - 1e-6;
    for (tok, &tt) in token_timesteps.iter().enumerate() {
        if let Some(mask) = condition_mask {
            if step_sigma >= 1.0 - mask[tok] {
                continue;
            }
        }
        let current = tt / train;
        let dt = current - next_sigma(schedule_sigmas, current);
        let range = tok * channels..(tok + 1) * channels;
        for (x, &v) in latents[range.clone()].iter_mut().zip(&velocity[range]) {
            *x += dt * -v;
        }
    }
}

/// Classifier-free guidance: `uncond + scale * (cond - uncond)`, in place
/// into `uncond`.
pub fn classifier_free(uncond: &mut [f32], cond: &[f32], scale: f32) {
    for (u, &c) in uncond.iter_mut().zip(cond) {
        *u += scale * (c - *u);
    }
}

/// Spatio-temporal guidance: pushes the guided prediction away from the one
/// made with some layers' self-attention skipped, `guided += scale * (cond - perturbed)`.
pub fn spatio_temporal(guided: &mut [f32], cond: &[f32], perturbed: &[f32], scale: f32) {
    for ((g, &c), &p) in guided.iter_mut().zip(cond).zip(perturbed) {
        *g += scale * (c - p);
    }
}

/// Guidance rescale (Lin et al. 2023, section 3.4): blends the guided
/// prediction with itself rescaled to the text prediction's standard
/// deviation. Standard deviations are unbiased, over the whole sample.
pub fn rescale(guided: &mut [f32], cond: &[f32], factor: f32) {
    if factor == 0.0 || guided.len() < 2 {
        return;
    }
    let std_cond = unbiased_std(cond);
    let std_guided = unbiased_std(guided);
    let ratio = std_cond / std_guided;
    for g in guided.iter_mut() {
        let rescaled = *g * ratio;
        *g = factor * rescaled + (1.0 - factor) * *g;
    }
}

fn unbiased_std(x: &[f32]) -> f32 {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    var.sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_sigma_is_the_largest_lower_one() {
        let s = [1.0, 0.8, 0.5, 0.1, 0.0];
        assert_eq!(next_sigma(&s, 1.0), 0.8);
        assert_eq!(next_sigma(&s, 0.7), 0.5);
        assert_eq!(next_sigma(&s, 0.1), 0.0);
        assert_eq!(next_sigma(&s, 0.0), 0.0);
    }

    #[test]
    fn frozen_tokens_do_not_move_and_free_ones_step_down() {
        let sigmas = [1.0, 0.5, 0.0];
        let mask = [1.0, 0.0];
        let tts = token_timesteps(1000.0, Some(&mask), 2, 1000.0);
        assert_eq!(tts, vec![0.0, 1000.0]);
        let mut x = vec![1.0, 1.0];
        let at = StepAt {
            sigmas: &sigmas,
            t: 1000.0,
            train: 1000.0,
        };
        euler_step(&mut x, &[2.0, 2.0], 1, &tts, Some(&mask), at);
        assert_eq!(x, vec![1.0, 0.0]);
    }

    #[test]
    fn rescale_matches_its_definition() {
        let cond = [1.0f32, -1.0, 2.0, 0.0];
        let mut g = [2.0f32, -2.0, 4.0, 0.0];
        rescale(&mut g, &cond, 1.0);
        for (a, b) in g.iter().zip(&cond) {
            assert!((a - b).abs() < 1e-6);
        }
        let mut h = [2.0f32, -2.0, 4.0, 0.0];
        rescale(&mut h, &cond, 0.5);
        assert!((h[0] - 1.5).abs() < 1e-6);
    }

    #[test]
    fn guidance_combines_predictions() {
        let mut u = [0.0f32, 1.0];
        classifier_free(&mut u, &[1.0, 1.0], 3.0);
        assert_eq!(u, [3.0, 1.0]);
        spatio_temporal(&mut u, &[1.0, 1.0], &[0.0, 2.0], 0.5);
        assert_eq!(u, [3.5, 0.5]);
    }
}
