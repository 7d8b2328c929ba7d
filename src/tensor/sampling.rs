//! The denoising step as tensor ops: Euler update, guidance, noise and
//! timestep features, on whatever device the tensors live on.

use super::{DType, Result, Tensor, TensorError};
use crate::backend::{Device, GuidanceSpec};

impl Tensor {
    fn check_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if !self.device.same(&other.device) {
            return Err(TensorError::DeviceMismatch {
                op,
                lhs: self.device.name(),
                rhs: other.device.name(),
            });
        }
        Ok(())
    }

    /// `self` (f32) or an f32 per-token table, contiguous for a sampler op.
    fn f32_contiguous(&self, op: &'static str) -> Result<Tensor> {
        if self.dtype() != DType::F32 {
            return Err(TensorError::DTypeMismatch {
                op,
                expected: DType::F32,
                got: self.dtype(),
            });
        }
        self.contiguous()
    }

    /// One flow-matching Euler step of latents `self` (`[tokens, channels]`,
    /// f32) along `velocity` (same count, any float dtype): each token
    /// moves from `sigma` to `sigma_next` (`[tokens]`), except where
    /// `update` (`[tokens]`, 0 or 1) is 0. See [`crate::backend::Backend::euler_step`].
    pub fn euler_step(
        &self,
        velocity: &Tensor,
        sigma: &Tensor,
        sigma_next: &Tensor,
        update: Option<&Tensor>,
    ) -> Result<Tensor> {
        const OP: &str = "euler_step";
        let (tokens, channels) = match self.dims() {
            [t, c] => (*t, *c),
            dims => {
                return Err(TensorError::invalid(
                    OP,
                    format!("latents must be [tokens, channels], got {dims:?}"),
                ))
            }
        };
        for t in [velocity, sigma, sigma_next].into_iter().chain(update) {
            self.check_device(OP, t)?;
        }
        if velocity.elem_count() != tokens * channels {
            return Err(TensorError::ShapeMismatch {
                op: OP,
                lhs: self.dims().to_vec(),
                rhs: velocity.dims().to_vec(),
            });
        }
        for t in [sigma, sigma_next].into_iter().chain(update) {
            if t.elem_count() != tokens {
                return Err(TensorError::invalid(
                    OP,
                    format!("per-token table of dims {:?} for {tokens} tokens", t.dims()),
                ));
            }
        }
        let x = self.f32_contiguous(OP)?;
        let v = velocity.contiguous()?;
        let (s, n) = (sigma.f32_contiguous(OP)?, sigma_next.f32_contiguous(OP)?);
        let u = update.map(|u| u.f32_contiguous(OP)).transpose()?;
        let out = self.device.backend().euler_step(
            x.operand(),
            v.operand(),
            s.operand(),
            n.operand(),
            u.as_ref().map(|u| u.operand()),
            channels,
        )?;
        Tensor::from_output(out, self.dims(), &self.device)
    }

    /// The guided velocity (f32, `cond`'s dims) from the prompt's prediction
    /// `cond` and, when given, the unconditional and the perturbed ones (same
    /// count and dtype). See [`crate::backend::Backend::guidance`].
    pub fn guidance(
        cond: &Tensor,
        uncond: Option<&Tensor>,
        perturbed: Option<&Tensor>,
        spec: &GuidanceSpec,
    ) -> Result<Tensor> {
        const OP: &str = "guidance";
        for t in uncond.into_iter().chain(perturbed) {
            cond.check_same(OP, t)?;
            if t.elem_count() != cond.elem_count() {
                return Err(TensorError::ShapeMismatch {
                    op: OP,
                    lhs: cond.dims().to_vec(),
                    rhs: t.dims().to_vec(),
                });
            }
        }
        let c = cond.contiguous()?;
        let u = uncond.map(Tensor::contiguous).transpose()?;
        let p = perturbed.map(Tensor::contiguous).transpose()?;
        let out = cond.device.backend().guidance(
            c.operand(),
            u.as_ref().map(|t| t.operand()),
            p.as_ref().map(|t| t.operand()),
            spec,
        )?;
        Tensor::from_output(out, cond.dims(), &cond.device)
    }

    /// Standard normal values of the counter-based generator
    /// (`sampler::noise::normal(seed, stream, start + k)`), made on `device`.
    pub fn noise_normal(
        dims: &[usize],
        seed: u64,
        stream: u64,
        start: u64,
        device: &Device,
    ) -> Result<Tensor> {
        let len = dims.iter().product();
        let out = device.backend().noise_normal(len, seed, stream, start)?;
        Tensor::from_output(out, dims, device)
    }

    /// Sinusoidal features `[n, 2·half]` of timesteps `self` (`[n]`, f32)
    /// at frequencies `freqs` (`[half]`, f32): cosines, then sines.
    pub fn timestep_features(&self, freqs: &Tensor) -> Result<Tensor> {
        const OP: &str = "timestep_features";
        self.check_device(OP, freqs)?;
        if self.rank() != 1 || freqs.rank() != 1 {
            return Err(TensorError::invalid(
                OP,
                format!(
                    "timesteps {:?} and freqs {:?} must be vectors",
                    self.dims(),
                    freqs.dims()
                ),
            ));
        }
        let t = self.f32_contiguous(OP)?;
        let f = freqs.f32_contiguous(OP)?;
        let out = self
            .device
            .backend()
            .timestep_features(t.operand(), f.operand())?;
        Tensor::from_output(out, &[self.dims()[0], 2 * freqs.dims()[0]], &self.device)
    }
}
