//! The denoising step's ops: Euler update, guidance, noise and timestep
//! features. Each calls the sampler's (or the model's) host arithmetic, so
//! a job on the CPU computes exactly what those functions define.

use super::{contiguous_f32, Out};
use crate::backend::{CpuStorage, GuidanceSpec, Operand};
use crate::sampler::flow_match::{self, StepSigmas};
use crate::sampler::noise;
use crate::tensor::TensorError;

fn boxed(v: Vec<f32>) -> Out {
    Ok(Box::new(CpuStorage::F32(v)))
}

pub fn euler_step(
    x: Operand<'_>,
    v: Operand<'_>,
    sigma: Operand<'_>,
    sigma_next: Operand<'_>,
    update: Option<Operand<'_>>,
    channels: usize,
) -> Out {
    let mut out = contiguous_f32("euler_step", &x)?.to_vec();
    let v = contiguous_f32("euler_step", &v)?;
    let sigma = contiguous_f32("euler_step", &sigma)?;
    let tokens = sigma.len();
    if out.len() != v.len() || out.len() != tokens * channels {
        return Err(TensorError::invalid(
            "euler_step",
            format!(
                "{} latents, {} velocities, {tokens} tokens of {channels}",
                out.len(),
                v.len()
            ),
        ));
    }
    let step = StepSigmas {
        sigma: sigma.to_vec(),
        next: contiguous_f32("euler_step", &sigma_next)?.to_vec(),
        update: match update {
            Some(u) => contiguous_f32("euler_step", &u)?.to_vec(),
            None => vec![1.0; tokens],
        },
    };
    if step.next.len() != tokens || step.update.len() != tokens {
        return Err(TensorError::invalid(
            "euler_step",
            "sigma, sigma_next and update differ in length",
        ));
    }
    flow_match::euler_update(&mut out, v, channels, &step);
    boxed(out)
}

pub fn guidance<'a>(
    cond: Operand<'a>,
    uncond: Option<Operand<'a>>,
    perturbed: Option<Operand<'a>>,
    spec: &GuidanceSpec,
) -> Out {
    let cond = contiguous_f32("guidance", &cond)?;
    let same = |o: Operand<'a>| -> crate::tensor::Result<&'a [f32]> {
        let d = contiguous_f32("guidance", &o)?;
        if d.len() != cond.len() {
            return Err(TensorError::invalid(
                "guidance",
                format!("predictions of {} and {} values", cond.len(), d.len()),
            ));
        }
        Ok(d)
    };
    // The order of the host sampler: CFG, then STG, then rescale.
    let mut out = match uncond {
        Some(u) => {
            let mut g = same(u)?.to_vec();
            flow_match::classifier_free(&mut g, cond, spec.cfg);
            g
        }
        None => cond.to_vec(),
    };
    if let Some(p) = perturbed {
        flow_match::spatio_temporal(&mut out, cond, same(p)?, spec.stg);
    }
    if spec.rescale > 0.0 {
        flow_match::rescale(&mut out, cond, spec.rescale);
    }
    boxed(out)
}

pub fn noise_normal(len: usize, seed: u64, stream: u64, start: u64) -> Out {
    let mut out = vec![0.0f32; len];
    noise::fill_normal(seed, stream, start, &mut out);
    boxed(out)
}

pub fn timestep_features(timesteps: Operand<'_>, freqs: Operand<'_>) -> Out {
    let t = contiguous_f32("timestep_features", &timesteps)?;
    let freqs = contiguous_f32("timestep_features", &freqs)?;
    let half = freqs.len();
    let mut out = vec![0.0f32; t.len() * 2 * half];
    if half == 0 {
        return boxed(out);
    }
    for (row, &t) in out.chunks_mut(2 * half).zip(t) {
        for (i, &f) in freqs.iter().enumerate() {
            // The argument in f32 as the reference forms it; its sine and
            // cosine in f64, rounded once.
            let (s, c) = ((t * f) as f64).sin_cos();
            row[i] = c as f32;
            row[half + i] = s as f32;
        }
    }
    boxed(out)
}

#[cfg(test)]
mod tests {
    //! The CPU ops against the host sampler they stand for, bit for bit.

    use crate::backend::{Device, GuidanceSpec};
    use crate::sampler::flow_match::{
        classifier_free, euler_step, rescale, spatio_temporal, step_sigmas, token_timesteps, StepAt,
    };
    use crate::sampler::noise::fill_normal;
    use crate::tensor::Tensor;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut out = vec![0.0; n];
        fill_normal(seed, 1, 0, &mut out);
        out
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn tensor(v: &[f32], dims: &[usize]) -> Tensor {
        Tensor::from_slice(v, dims, &Device::cpu()).unwrap()
    }

    #[test]
    fn euler_step_is_the_host_step() {
        let (tokens, channels) = (11, 3);
        let sigmas = [1.0, 0.9, 0.6, 0.25, 0.0];
        // Frozen, partly conditioned and free tokens.
        let mask: Vec<f32> = (0..tokens).map(|t| [1.0, 0.5, 0.0][t % 3]).collect();
        for (t, mask) in [(900.0, Some(&mask[..])), (600.0, None)] {
            let x = values(tokens * channels, 2);
            let v = values(tokens * channels, 3);
            let tts = token_timesteps(t, mask, tokens, 1000.0);
            let at = StepAt {
                sigmas: &sigmas,
                t,
                train: 1000.0,
            };
            let mut want = x.clone();
            euler_step(&mut want, &v, channels, &tts, mask, at);
            let step = step_sigmas(&tts, mask, at);
            let update = mask.map(|_| tensor(&step.update, &[tokens]));
            let got = tensor(&x, &[tokens, channels])
                .euler_step(
                    &tensor(&v, &[1, tokens, channels]),
                    &tensor(&step.sigma, &[tokens]),
                    &tensor(&step.next, &[tokens]),
                    update.as_ref(),
                )
                .unwrap()
                .to_vec_f32()
                .unwrap();
            assert_eq!(bits(&got), bits(&want), "t = {t}");
            if mask.is_some() {
                assert_eq!(got[..channels], x[..channels], "a frozen token moved");
            }
        }
    }

    #[test]
    fn guidance_is_the_host_guidance() {
        let n = 40;
        let (u, c, p) = (values(n, 4), values(n, 5), values(n, 6));
        let spec = GuidanceSpec {
            cfg: 3.0,
            stg: 1.0,
            rescale: 0.7,
        };
        let t = |v: &[f32]| tensor(v, &[1, n]);
        let run = |uncond: Option<&Tensor>, perturbed: Option<&Tensor>, spec: &GuidanceSpec| {
            Tensor::guidance(&t(&c), uncond, perturbed, spec)
                .unwrap()
                .to_vec_f32()
                .unwrap()
        };

        // CFG, STG and rescale, in the host loop's order.
        let mut want = u.clone();
        classifier_free(&mut want, &c, spec.cfg);
        spatio_temporal(&mut want, &c, &p, spec.stg);
        rescale(&mut want, &c, spec.rescale);
        assert_eq!(bits(&run(Some(&t(&u)), Some(&t(&p)), &spec)), bits(&want));

        // CFG alone, no rescale.
        let mut want = u.clone();
        classifier_free(&mut want, &c, spec.cfg);
        let cfg_only = GuidanceSpec {
            rescale: 0.0,
            ..spec
        };
        assert_eq!(bits(&run(Some(&t(&u)), None, &cfg_only)), bits(&want));

        // STG alone (a guidance scale of 1 runs no negative pass).
        let mut want = c.clone();
        spatio_temporal(&mut want, &c, &p, spec.stg);
        rescale(&mut want, &c, spec.rescale);
        assert_eq!(bits(&run(None, Some(&t(&p)), &spec)), bits(&want));
    }

    #[test]
    fn noise_is_the_host_generator() {
        let got = Tensor::noise_normal(&[3, 7], 9, 4, 5, &Device::cpu())
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let mut want = vec![0.0; 21];
        fill_normal(9, 4, 5, &mut want);
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn timestep_features_are_cosines_then_sines_of_the_f32_argument() {
        let t = [0.0f32, 1.0, 500.0, 999.0];
        let freqs = [1.0f32, 0.1, 0.0013];
        let got = tensor(&t, &[4])
            .timestep_features(&tensor(&freqs, &[3]))
            .unwrap();
        assert_eq!(got.dims(), [4, 6]);
        let got = got.to_vec_f32().unwrap();
        for (r, &t) in t.iter().enumerate() {
            for (k, &f) in freqs.iter().enumerate() {
                let a = f64::from(t * f);
                assert_eq!(got[r * 6 + k], a.cos() as f32);
                assert_eq!(got[r * 6 + 3 + k], a.sin() as f32);
            }
        }
    }
}
