//! The denoising loop: flow-matching Euler with per-token timesteps,
//! classifier-free and spatio-temporal guidance and rescale, written once in
//! tensor ops and run on the transformer's device, whichever it is.
//!
//! Everything a step needs is put on the device before the first step: the
//! latents, the conditioned tokens' initial values, and per step and token
//! the timestep, the sigma it moves from and to and whether it moves (made
//! on the host with the sampler's own functions, so that they are exactly
//! the reference's numbers, and uploaded once). Inside a step nothing is
//! copied between host and device: the transformer reads the latents where
//! they are, guidance and the Euler update run as device ops, and the noise
//! of hard-conditioned tokens comes from the device's generator.
//!
//! The host waits for the device only to report progress and to check for
//! an abort truthfully: with one step queued behind the one running, it
//! waits for the older one, so the device never runs dry and an abort
//! stops the job within one step.

use std::collections::VecDeque;

use super::components::{Pass, VelocityJob, VelocityModel, VelocitySession};
use super::ltx::Sampling;
use crate::backend::{Device, GuidanceSpec, QueueMark};
use crate::engine::{EngineError, JobObserver, Stage};
use crate::sampler::flow_match::{step_sigmas, token_timesteps, StepAt};
use crate::sampler::noise::{NoisePurpose, NoiseSource};
use crate::tensor::{Tensor, TensorError};

fn failed(e: TensorError) -> EngineError {
    match e {
        TensorError::OutOfMemory { .. } => EngineError::OutOfMemory(format!(
            "denoising: {e}; try a smaller resolution or length, or close other GPU work"
        )),
        e => EngineError::Failed(format!("denoising: {e}")),
    }
}

/// Per step and token (`[steps, tokens]` each, f32): the timestep the
/// transformer is told, the sigma the token moves from and to, and 1 where
/// it moves at all.
struct StepTables {
    timesteps: Tensor,
    sigma: Tensor,
    next: Tensor,
    /// `None` when every token moves at every step (no conditioning).
    update: Option<Tensor>,
}

impl StepTables {
    fn build(
        sampling: &Sampling,
        mask: Option<&[f32]>,
        tokens: usize,
        device: &Device,
    ) -> Result<Self, TensorError> {
        let s = &sampling.schedule;
        let steps = s.timesteps.len();
        let mut timesteps = Vec::with_capacity(steps * tokens);
        let (mut sigma, mut next, mut update) = (
            Vec::with_capacity(steps * tokens),
            Vec::with_capacity(steps * tokens),
            Vec::with_capacity(steps * tokens),
        );
        for &t in &s.timesteps {
            let tts = token_timesteps(t, mask, tokens, sampling.train_timesteps);
            let at = StepAt {
                sigmas: &s.sigmas,
                t,
                train: sampling.train_timesteps,
            };
            let step = step_sigmas(&tts, mask, at);
            timesteps.extend(tts);
            sigma.extend(step.sigma);
            next.extend(step.next);
            update.extend(step.update);
        }
        let dims = [steps, tokens];
        Ok(Self {
            timesteps: Tensor::from_vec(timesteps, &dims, device)?,
            sigma: Tensor::from_vec(sigma, &dims, device)?,
            next: Tensor::from_vec(next, &dims, device)?,
            update: mask
                .map(|_| Tensor::from_vec(update, &dims, device))
                .transpose()?,
        })
    }

    /// Row `step` of `table` as `[tokens]` (a view).
    fn row(table: &Tensor, step: usize) -> Result<Tensor, TensorError> {
        let tokens = table.dim(1)?;
        table.narrow(0, step, 1)?.reshape(&[tokens])
    }
}

/// Tokens conditioned with full strength get fresh noise around their
/// initial values every step (`image_cond_noise_scale`), as
/// LTXConditionPipeline adds it.
struct HardTokens {
    init: Tensor,
    /// `[tokens, 1]`: 1 for a hard-conditioned token, else 0; and 1 - that.
    take: Tensor,
    keep: Tensor,
    scale: f32,
}

impl HardTokens {
    fn new(
        init: &Tensor,
        mask: &[f32],
        scale: f32,
        device: &Device,
    ) -> Result<Option<Self>, TensorError> {
        let take: Vec<f32> = mask
            .iter()
            .map(|&m| if m > 1.0 - 1e-6 { 1.0 } else { 0.0 })
            .collect();
        if scale <= 0.0 || !take.contains(&1.0) {
            return Ok(None);
        }
        let keep: Vec<f32> = take.iter().map(|t| 1.0 - t).collect();
        let tokens = mask.len();
        Ok(Some(Self {
            init: init.clone(),
            take: Tensor::from_vec(take, &[tokens, 1], device)?,
            keep: Tensor::from_vec(keep, &[tokens, 1], device)?,
            scale,
        }))
    }

    /// `latents` with the hard tokens set to `init + scale · noise · (t/1000)²`.
    /// The blend by 0/1 weights is exact: `a · 1 + b · 0 = a`.
    fn renoise(&self, latents: &Tensor, noise: &Tensor, t: f32) -> Result<Tensor, TensorError> {
        let tt = t / 1000.0;
        let noised = self.init.add(
            &noise
                .reshape(latents.dims())?
                .scale(self.scale)?
                .scale(tt * tt)?,
        )?;
        noised.mul(&self.take)?.add(&latents.mul(&self.keep)?)
    }
}

/// Steps queued on the device and not yet known to have run.
struct InFlight {
    marks: VecDeque<Box<dyn QueueMark>>,
    queued: u32,
}

impl InFlight {
    /// A step has been queued; returns how many steps have run. At most one
    /// step waits behind the running one: then the host waits for the
    /// running one, while the device has the next to go on with.
    fn queued(&mut self, device: &Device) -> Result<u32, TensorError> {
        self.queued += 1;
        match device.backend().queue_mark()? {
            // The device computed the step as it was called.
            None => self.marks.clear(),
            Some(mark) => {
                self.marks.push_back(mark);
                if self.marks.len() > 1 {
                    if let Some(oldest) = self.marks.pop_front() {
                        oldest.wait()?;
                    }
                }
            }
        }
        Ok(self.queued - self.marks.len() as u32)
    }

    /// Waits for every queued step; returns how many have run.
    fn drain(&mut self) -> Result<u32, TensorError> {
        while let Some(mark) = self.marks.pop_front() {
            mark.wait()?;
        }
        Ok(self.queued)
    }
}

/// One denoising run.
pub(super) struct Denoise<'a> {
    pub sampling: &'a Sampling,
    pub channels: usize,
    /// Per-token conditioning strength, when anything is conditioned.
    pub mask: Option<&'a [f32]>,
    pub noise: &'a dyn NoiseSource,
    pub job: VelocityJob<'a>,
}

impl Denoise<'_> {
    /// Denoises `latents` (`[tokens, channels]`, host) on `model`'s device;
    /// returns them after the last step, on the host.
    pub fn run(
        &self,
        model: &dyn VelocityModel,
        latents: &[f32],
        observer: &dyn JobObserver,
    ) -> Result<Vec<f32>, EngineError> {
        let device = model.device();
        let session = model.session(&self.job)?;
        let latents = self.steps(session.as_ref(), &device, latents, observer)?;
        if observer.should_abort() {
            return Err(EngineError::Aborted);
        }
        let out = latents.to_vec_f32().map_err(failed)?;
        // A NaN would run through the decoder into frames of garbage that
        // the cache then keeps. Checked once here rather than per step (a
        // check reads the data back): a non-finite velocity anywhere makes
        // the moving tokens' latents non-finite from then on.
        if let Some(at) = out.iter().position(|x| !x.is_finite()) {
            return Err(EngineError::Failed(format!(
                "denoising produced a non-finite value ({} at element {at} of {}): \
                 a GPU fault or an overflow in 16-bit arithmetic; {}=cpu renders \
                 the shot on the CPU instead",
                out[at],
                out.len(),
                super::engine::DEVICE_ENV
            )));
        }
        Ok(out)
    }

    fn steps(
        &self,
        session: &dyn VelocitySession,
        device: &Device,
        latents: &[f32],
        observer: &dyn JobObserver,
    ) -> Result<Tensor, EngineError> {
        let s = self.sampling;
        let c = self.channels;
        let tokens = latents.len() / c;
        let guided = self.job.negative.is_some();
        let perturbed = s.stg.as_ref().filter(|stg| stg.scale != 0.0);
        let spec = GuidanceSpec {
            cfg: s.guidance_scale,
            stg: perturbed.map_or(0.0, |p| p.scale),
            rescale: s.guidance_rescale,
        };

        let tables = StepTables::build(s, self.mask, tokens, device).map_err(failed)?;
        let mut latents = Tensor::from_slice(latents, &[tokens, c], device).map_err(failed)?;
        let hard = match self.mask {
            Some(mask) => {
                HardTokens::new(&latents, mask, s.image_cond_noise_scale, device).map_err(failed)?
            }
            None => None,
        };
        let steps = s.schedule.steps() as u32;
        let mut in_flight = InFlight {
            marks: VecDeque::new(),
            queued: 0,
        };
        let mut reported = 0;
        let mut report = |done: u32| {
            if done > reported {
                reported = done;
                observer.progress(Stage::Denoising, done, steps);
            }
        };
        for (i, &t) in s.schedule.timesteps.iter().enumerate() {
            if observer.should_abort() {
                return Err(EngineError::Aborted);
            }
            if let Some(hard) = &hard {
                let noise = self
                    .noise
                    .draw_on(NoisePurpose::ConditionStep(i as u32), tokens * c, device)
                    .map_err(failed)?;
                latents = hard.renoise(&latents, &noise, t).map_err(failed)?;
            }
            let tts = StepTables::row(&tables.timesteps, i).map_err(failed)?;
            let velocity = self.velocity(session, &latents, &tts, guided, perturbed, &spec)?;
            let row = |table: &Tensor| StepTables::row(table, i);
            let update = tables
                .update
                .as_ref()
                .map(row)
                .transpose()
                .map_err(failed)?;
            latents = latents
                .euler_step(
                    &velocity,
                    &row(&tables.sigma).map_err(failed)?,
                    &row(&tables.next).map_err(failed)?,
                    update.as_ref(),
                )
                .map_err(failed)?;
            report(in_flight.queued(device).map_err(failed)?);
        }
        report(in_flight.drain().map_err(failed)?);
        Ok(latents)
    }

    /// The guided velocity of one step (`[tokens, channels]`-sized).
    fn velocity(
        &self,
        session: &dyn VelocitySession,
        latents: &Tensor,
        tts: &Tensor,
        guided: bool,
        perturbed: Option<&super::ltx::SpatioTemporalGuidance>,
        spec: &GuidanceSpec,
    ) -> Result<Tensor, EngineError> {
        let pass = if guided { Pass::Guided } else { Pass::Positive };
        let v = self.predict(session, latents, tts, pass)?;
        if !guided && perturbed.is_none() {
            // Nothing to combine (and so nothing to rescale).
            return Ok(v);
        }
        let (uncond, cond) = if guided {
            (
                Some(v.narrow(0, 0, 1).map_err(failed)?),
                v.narrow(0, 1, 1).map_err(failed)?,
            )
        } else {
            (None, v)
        };
        // LTX-Video batches the perturbed pass with the others; alone it
        // computes the same numbers and needs no per-sample masks.
        let weakened = perturbed
            .map(|stg| self.predict(session, latents, tts, Pass::Perturbed(&stg.skip)))
            .transpose()?;
        Tensor::guidance(&cond, uncond.as_ref(), weakened.as_ref(), spec).map_err(failed)
    }

    /// One transformer pass, checked for the shape it must return.
    fn predict(
        &self,
        session: &dyn VelocitySession,
        latents: &Tensor,
        tts: &Tensor,
        pass: Pass<'_>,
    ) -> Result<Tensor, EngineError> {
        let v = session.velocity(latents, tts, pass)?;
        let expected = [pass.batch(), self.job.tokens, self.channels];
        if v.dims() != expected {
            return Err(EngineError::Failed(format!(
                "transformer gave {:?}, expected {expected:?}",
                v.dims()
            )));
        }
        Ok(v)
    }
}
