//! The distilled two-pass recipe against diffusers on the tiny pipeline
//! model (tools/fixtures/upsampler.py): LTXConditionPipeline at 64×32 with
//! the distilled timesteps (latents out), LTXLatentUpsamplePipeline with
//! AdaIN, then LTXConditionPipeline at 128×64 from the upsampled latents
//! with timesteps [1000, 909, 725, 421, 0] and denoise_strength 0.999.
//! Everything is ours (tokenizer, T5, transformer, upsampler, VAE, Philox
//! noise); each stage is checked, then the whole [`TwoPass`] run.

mod upsampler_common;

use std::sync::Arc;

use genfx::backend::Device;
use genfx::engine::{JobObserver, Stage};
use genfx::pipeline::adapters::{LtxTransformer, LtxVae, T5Prompts};
use genfx::pipeline::components::PromptEncoder;
use genfx::pipeline::ltx::{LtxPipeline, RunParams, Sampling, StartLatents};
use genfx::pipeline::two_pass::{refine_sampling, TwoPass, REFINE_SHOT, SETTINGS};
use genfx::pipeline::upsample::{upsample_latents, DeviceUpscaler};
use genfx::sampler::noise::{NoisePurpose, NoiseSource, PhiloxNoise};
use genfx::sampler::schedule::{Schedule, ScheduleSource, SchedulerConfig};
use genfx::tensor::DType;
use genfx::testing::{assert_close, fixtures_dir, max_abs_err};
use upsampler_common::{cases, dir, tensor};

/// Latents relative to max(1, max|reference|): the pipeline parity tests'
/// bound for latents made with all-ours components (4 × 5e-5).
const LATENT_TOL: f32 = 2e-4;
/// Decoded frames in [0, 1]: the pipeline parity tests' bound.
const FRAME_TOL: f32 = 1e-4;

struct Quiet;
impl JobObserver for Quiet {
    fn progress(&self, _: Stage, _: u32, _: u32) {}
    fn should_abort(&self) -> bool {
        false
    }
}

fn timesteps(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect()
}

fn report(what: &str, ours: &[f32], reference: &[f32], tol: f32) {
    let (err, scale) = max_abs_err(ours, reference);
    println!("{what}: max abs err {err:.2e} (scale {scale:.2})");
    assert_close(what, ours, reference, tol);
}

#[test]
fn two_passes_match_diffusers() {
    let cases = cases();
    let c = &cases.doc["two_pass"];
    assert_eq!(
        c["refine_shot"].as_u64().unwrap(),
        u64::from(REFINE_SHOT),
        "the fixture's refinement noise is the engine's"
    );
    assert_eq!(
        c["adain_factor"].as_f64().unwrap() as f32,
        SETTINGS.adain_factor
    );
    let seed = c["seed"].as_u64().unwrap();
    let first_noise = PhiloxNoise::new(seed, 0);
    let refine_noise = PhiloxNoise::new(seed, REFINE_SHOT);
    for (noise, pass) in [(&first_noise, "first"), (&refine_noise, "second")] {
        let (_, head) = tensor(&cases.files, &format!("two_pass.{pass}.noise.initial"));
        report(
            &format!("{pass} pass initial noise"),
            &noise.draw(NoisePurpose::InitialLatents, head.len()),
            &head,
            1e-6,
        );
    }

    let model = fixtures_dir().join("pipeline").join("model");
    let device = Device::cpu();
    let pipeline = LtxPipeline {
        transformer: Arc::new(
            LtxTransformer::load(&model.join("transformer"), &device, DType::F32).unwrap(),
        ),
        vae: Arc::new(LtxVae::load(&model.join("vae")).unwrap()),
    };
    let prompts = T5Prompts::load(&model, &device, 256).unwrap();
    let positive = prompts.encode(c["prompt"].as_str().unwrap(), 256).unwrap();
    let upscaler = DeviceUpscaler::load(
        &dir()
            .join("two_pass")
            .join("model")
            .join("latent_upsampler"),
        &device,
        DType::F32,
    )
    .unwrap();

    let config =
        SchedulerConfig::from_file(&model.join("scheduler/scheduler_config.json")).unwrap();
    let f = |k: &str| c[k].as_f64().unwrap() as f32;
    let first = Sampling {
        schedule: Schedule::build(
            &config,
            &ScheduleSource::Timesteps(timesteps(&c["first_timesteps"])),
            None,
        )
        .unwrap(),
        train_timesteps: 1000.0,
        guidance_scale: 1.0,
        guidance_rescale: 0.0,
        stg: None,
        image_cond_noise_scale: 0.0,
        decode_timestep: f("decode_timestep"),
        decode_noise_scale: f("decode_noise_scale"),
    };
    let refine = refine_sampling(&first, &config, None).unwrap();
    // diffusers ran one more step than we do: its last, at timestep 0,
    // moves nothing (see `refine_sampling`); the results below agree.
    assert_eq!(
        refine.0.schedule.steps() + 1,
        timesteps(&c["second_timesteps"]).len() - c["skipped_steps"].as_u64().unwrap() as usize
    );
    let (w, h) = (
        c["width"].as_u64().unwrap() as usize,
        c["height"].as_u64().unwrap() as usize,
    );
    let params = |width, height, sampling: &Sampling| RunParams {
        width,
        height,
        num_frames: c["num_frames"].as_u64().unwrap() as usize,
        frame_rate: c["frame_rate"].as_f64().unwrap(),
        conditions: vec![],
        sampling: sampling.clone(),
    };

    // Stage by stage, each from the reference's input.
    let low = pipeline
        .denoise(
            &positive,
            None,
            &params(w, h, &first),
            &first_noise,
            None,
            &Quiet,
        )
        .unwrap();
    let (_, first_ref) = tensor(&cases.files, "two_pass.first.latents");
    report("first pass latents", &low.latents, &first_ref, LATENT_TOL);

    let stats = pipeline.vae.latent_statistics().unwrap();
    let (up, up_dims) =
        upsample_latents(&upscaler, &stats, &first_ref, low.latent_dims, SETTINGS).unwrap();
    let (_, up_ref) = tensor(&cases.files, "two_pass.upsampled");
    report("upsampled latents", &up, &up_ref, LATENT_TOL);
    assert_eq!(up_dims, [8, 2, 2, 4]);

    let second = params(2 * w, 2 * h, &refine.0);
    let start = StartLatents {
        latents: up_ref.clone(),
        sigma: refine.1,
    };
    let high = pipeline
        .denoise(
            &positive,
            None,
            &second,
            &refine_noise,
            Some(&start),
            &Quiet,
        )
        .unwrap();
    let (_, decode_ref) = tensor(&cases.files, "two_pass.second.decode.latents");
    // The reference mixes decode noise in before the VAE; compare the same.
    let decode_noise = refine_noise.draw(NoisePurpose::Decode, high.latents.len());
    let s = f("decode_noise_scale");
    let per = high.latents.len() / 8;
    let ours_decode: Vec<f32> = high
        .latents
        .iter()
        .zip(&decode_noise)
        .enumerate()
        .map(|(i, (&z, &n))| {
            let ch = i / per;
            let raw = z * stats.std[ch] / stats.scaling_factor + stats.mean[ch];
            (1.0 - s) * raw + s * n
        })
        .collect();
    report(
        "refined latents at the decoder",
        &ours_decode,
        &decode_ref,
        LATENT_TOL,
    );

    // The whole recipe, end to end, at the refinement pass's size (so the
    // final resize is the identity, as in diffusers' run).
    let run = TwoPass {
        pipeline: &pipeline,
        upscaler: &upscaler,
        settings: SETTINGS,
        first: first.clone(),
        refine: refine.clone(),
        sizes: [(w, h), (2 * w, 2 * h)],
    };
    let out = run
        .run(
            &positive,
            None,
            &params(2 * w, 2 * h, &refine.0),
            &first_noise,
            &refine_noise,
            &Quiet,
        )
        .unwrap();
    let (dims, frames_ref) = tensor(&cases.files, "two_pass.frames");
    let kept: Vec<usize> = c["kept_frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap() as usize)
        .collect();
    let (plane, total) = (4 * w * h, c["num_frames"].as_u64().unwrap() as usize);
    assert_eq!(dims, vec![kept.len(), 2 * h, 2 * w, 3]);
    let mut ours = Vec::new();
    for &k in &kept {
        for p in 0..plane {
            for ch in 0..3 {
                ours.push(out.video[ch * total * plane + k * plane + p]);
            }
        }
    }
    report("two-pass frames", &ours, &frames_ref, FRAME_TOL);
}
