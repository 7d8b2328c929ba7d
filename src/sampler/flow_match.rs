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

/// Where each token of one step goes: from `sigma` to `next`, or nowhere
/// when `update` is 0 (f32 flags, as the device ops take them).
#[derive(Clone, Debug, PartialEq)]
pub struct StepSigmas {
    pub sigma: Vec<f32>,
    pub next: Vec<f32>,
    pub update: Vec<f32>,
}

/// The sigmas of one Euler step for tokens at `token_timesteps`: each token
/// moves from its own sigma to the next lower sigma of the schedule. Tokens
/// whose conditioning keeps them at or below the step's noise level
/// (`t / train >= 1 - strength`) do not move.
pub fn step_sigmas(
    token_timesteps: &[f32],
    condition_mask: Option<&[f32]>,
    at: StepAt<'_>,
) -> StepSigmas {
    let (schedule_sigmas, train) = (at.sigmas, at.train);
    let step_sigma = at.t / train - 1e-6;
    let n = token_timesteps.len();
    let mut out = StepSigmas {
        sigma: Vec::with_capacity(n),
        next: Vec::with_capacity(n),
        update: Vec::with_capacity(n),
    };
    for (tok, &tt) in token_timesteps.iter().enumerate() {
        let frozen = condition_mask.is_some_and(|mask| step_sigma >= 1.0 - mask[tok]);
        let current = tt / train;
        out.sigma.push(current);
        out.next.push(next_sigma(schedule_sigmas, current));
        out.update.push(if frozen { 0.0 } else { 1.0 });
    }
    out
}

/// `latents += (sigma - next) * -velocity` per token (`[tokens, channels]`)
/// for the tokens `update` marks.
pub fn euler_update(latents: &mut [f32], velocity: &[f32], channels: usize, step: &StepSigmas) {
    debug_assert_eq!(latents.len(), velocity.len());
    debug_assert_eq!(latents.len(), step.sigma.len() * channels);
    for tok in 0..step.sigma.len() {
        if step.update[tok] == 0.0 {
            continue;
        }
        let dt = step.sigma[tok] - step.next[tok];
        let range = tok * channels..(tok + 1) * channels;
        for (x, &v) in latents[range.clone()].iter_mut().zip(&velocity[range]) {
            *x += dt * -v;
        }
    }
}

/// One Euler step of `latents` (`[tokens, channels]`) along `velocity`, each
/// token from its own timestep to the next lower sigma of the schedule
/// ([`step_sigmas`], [`euler_update`]).
pub fn euler_step(
    latents: &mut [f32],
    velocity: &[f32],
    channels: usize,
    token_timesteps: &[f32],
    condition_mask: Option<&[f32]>,
    at: StepAt<'_>,
) {
    debug_assert_eq!(latents.len(), token_timesteps.len() * channels);
    let step = step_sigmas(token_timesteps, condition_mask, at);
    euler_update(latents, velocity, channels, &step);
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
