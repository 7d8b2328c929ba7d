//! The conditioned pipeline against diffusers' LTXConditionPipeline on the
//! tiny model in tests/fixtures/pipeline (tools/fixtures/pipeline.py), for
//! the four jobs: text only, extend forward, extend backward, fill, and
//! extend forward with spatio-temporal guidance.
//!
//! The transformer, sampler, conditioning and noise are ours; the prompt
//! embeddings and the VAE's conditioning latents are the reference's
//! (recorded), so a mismatch points at the pipeline, not at the components
//! that have parity tests of their own.

use genfx::backend::Device;
use genfx::engine::{EngineError, JobObserver, Stage};
use genfx::models::ltx::LayerSkip;
use genfx::pipeline::adapters::{LtxTransformer, LtxVae, T5Prompts};
use genfx::pipeline::components::{
    EncodedPrompt, PromptEncoder, VelocityInputs, VelocityModel, VideoCodec,
};
use genfx::pipeline::ltx::{Condition, LtxPipeline, RunParams, Sampling, SpatioTemporalGuidance};
use genfx::pipeline::single_file::Checkpoint;
use genfx::sampler::noise::{NoisePurpose, NoiseSource, PhiloxNoise};
use genfx::sampler::schedule::{
    linear_quadratic_timesteps, Schedule, ScheduleSource, SchedulerConfig,
};
use genfx::tensor::DType;
use genfx::testing::fixtures_dir;
use parking_lot::Mutex;
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Final latents agree to this, relative to their largest value. Measured
/// with seed 0: 4e-6 (text only, CFG 3 + rescale 0.7), 7e-7 .. 1.4e-6 for the
/// conditioned jobs; the bound leaves room for other fixture seeds.
const LATENT_TOL: f32 = 5e-5;

fn dir() -> PathBuf {
    fixtures_dir().join("pipeline")
}

struct Case {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Case {
    fn load(name: &str) -> Self {
        let bytes = std::fs::read(dir().join(format!("job_{name}.safetensors"))).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (key, view) in st.tensors() {
            let data: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                safetensors::Dtype::U8 => view.data().iter().map(|&b| f32::from(b)).collect(),
                other => panic!("{key}: unexpected dtype {other:?}"),
            };
            tensors.insert(key, (view.shape().to_vec(), data));
        }
        Self { tensors }
    }

    fn get(&self, key: &str) -> &[f32] {
        &self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .1
    }

    fn shape(&self, key: &str) -> &[usize] {
        &self.tensors[key].0
    }
}

/// Latents, timestep, noise scale and noise handed to the decoder.
type DecodeCall = (Vec<f32>, f32, f32, Vec<f32>);
/// Latents, timesteps and positions of the first transformer call.
type FirstInputs = (Vec<f32>, Vec<f32>, Vec<f32>);

/// The reference's VAE outputs, replayed; decode inputs recorded.
struct RecordedCodec {
    latents: Vec<Vec<f32>>,
    next: Mutex<usize>,
    decoded: Mutex<Option<DecodeCall>>,
}

impl VideoCodec for RecordedCodec {
    fn latent_channels(&self) -> usize {
        8
    }
    fn compression(&self) -> (usize, usize) {
        (32, 8)
    }
    fn timestep_conditioned(&self) -> bool {
        true
    }
    fn encode_condition(
        &self,
        _: &[f32],
        _: usize,
        _: usize,
        _: usize,
        _: &[f32],
    ) -> Result<Vec<f32>, EngineError> {
        let mut n = self.next.lock();
        *n += 1;
        Ok(self.latents[*n - 1].clone())
    }
    fn decode(
        &self,
        latents: &[f32],
        dims: [usize; 4],
        timestep: f32,
        scale: f32,
        noise: &[f32],
    ) -> Result<Vec<f32>, EngineError> {
        *self.decoded.lock() = Some((latents.to_vec(), timestep, scale, noise.to_vec()));
        Ok(vec![
            0.0;
            3 * ((dims[1] - 1) * 8 + 1)
                * dims[2]
                * 32
                * dims[3]
                * 32
        ])
    }
}

/// Records the first transformer call.
struct FirstCall {
    inner: LtxTransformer,
    first: Mutex<Option<FirstInputs>>,
}

impl VelocityModel for FirstCall {
    fn channels(&self) -> usize {
        self.inner.channels()
    }
    fn text_dim(&self) -> usize {
        self.inner.text_dim()
    }
    fn velocity(&self, x: &VelocityInputs<'_>) -> Result<Vec<f32>, EngineError> {
        let mut first = self.first.lock();
        if first.is_none() {
            *first = Some((
                x.hidden_states.to_vec(),
                x.timestep.to_vec(),
                x.coords.to_vec(),
            ));
        }
        self.inner.velocity(x)
    }
}

struct Quiet;
impl JobObserver for Quiet {
    fn progress(&self, _: Stage, _: u32, _: u32) {}
    fn should_abort(&self) -> bool {
        false
    }
}

fn prompt(case: &Case, row: usize) -> EncodedPrompt {
    let shape = case.shape("prompt_embeds");
    let (tokens, dim) = (shape[1], shape[2]);
    EncodedPrompt {
        embeds: case.get("prompt_embeds")[row * tokens * dim..(row + 1) * tokens * dim].to_vec(),
        mask: case.get("prompt_attention_mask")[row * tokens..(row + 1) * tokens].to_vec(),
        tokens,
        dim,
        truncated: false,
    }
}

fn check(what: &str, ours: &[f32], reference: &[f32], tol: f32) {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(1.0f32, |m, r| m.max(r.abs()));
    let err = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("{what}: max abs err {err:.3e} (scale {scale:.3})");
    assert!(
        err <= tol * scale,
        "{what}: max abs err {err} > {tol} x {scale}"
    );
}

fn noise_purpose(key: &str) -> NoisePurpose {
    let mut parts = key.split('.').skip(1);
    let (purpose, index) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<u32>().unwrap(),
    );
    match purpose {
        "initial" => NoisePurpose::InitialLatents,
        "encode" => NoisePurpose::ConditionEncode(index),
        "prefix" => NoisePurpose::ConditionPrefix(index),
        "step" => NoisePurpose::ConditionStep(index),
        "decode" => NoisePurpose::Decode,
        other => panic!("unknown noise {other}"),
    }
}

/// Decoded frames (values in [0, 1]) agree to this when every component is
/// ours. Measured with seed 0: 2.4e-6 .. 6.1e-6 over the four jobs.
const FRAME_TOL: f32 = 1e-4;

fn run_job(name: &str) {
    run_job_with(name, false, Layout::Folder);
}

/// Where the transformer and VAE are read from: the diffusers folder, or the
/// single-file checkpoint tools/fixtures/single_file.py wrote from the same
/// weights (so the same reference outputs apply).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Folder,
    SingleFile,
    /// The folder's transformer and VAE, with T5 read from one safetensors
    /// file (as ComfyUI keeps it) that carries its config in its metadata.
    SingleFileT5,
    /// As `SingleFileT5`, with the tokenizer as the tokenizers library's
    /// tokenizer.json (tools/fixtures/tokenizer_json.py) instead of
    /// spiece.model.
    TokenizerJson,
}

/// The fixture's T5 written as one file with its config in the metadata
/// (the tiny T5's relative-attention distance, 16, is not one its shapes
/// can tell), and its tokenizer beside it.
fn single_file_t5(
    tokenizer_json: bool,
) -> genfx::pipeline::text_encoder_location::TextEncoderLocation {
    let out = std::env::temp_dir().join(format!(
        "genfx-parity-t5file-{}-{tokenizer_json}",
        std::process::id()
    ));
    let file = genfx::testing::t5_as_single_file(&dir().join("model"), &out).unwrap();
    if tokenizer_json {
        std::fs::remove_file(out.join("tokenizer/spiece.model")).unwrap();
        std::fs::copy(
            fixtures_dir().join("tokenizer_json/pipeline/tokenizer.json"),
            out.join("tokenizer.json"),
        )
        .unwrap();
    }
    let located = genfx::pipeline::text_encoder_location::locate(&out, Some(&file)).unwrap();
    assert_eq!(located.weights, file);
    assert_eq!(
        located.tokenizer.extension().unwrap() == "json",
        tokenizer_json,
        "{}",
        located.tokenizer.display()
    );
    located
}

fn checkpoint() -> Checkpoint {
    Checkpoint::open(&fixtures_dir().join("single_file/ltxv-tiny.safetensors")).unwrap()
}

fn run_job_with(name: &str, real_components: bool, layout: Layout) {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("jobs.json")).unwrap()).unwrap();
    let job = meta["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap();
    let case = Case::load(name);
    let seed = meta["seed"].as_u64().unwrap();
    let noise = PhiloxNoise::new(seed, meta["shot"].as_u64().unwrap() as u32);

    // The Python Philox that fed the reference is ours.
    for (key, (_, head)) in case.tensors.iter().filter(|(k, _)| k.starts_with("noise.")) {
        let ours = noise.draw(noise_purpose(key), head.len());
        check(key, &ours, head, 1e-6);
    }

    let model = dir().join("model");
    let transformer = FirstCall {
        inner: match layout {
            Layout::SingleFile => {
                LtxTransformer::load_checkpoint(&checkpoint(), &Device::cpu(), DType::F32)
            }
            Layout::Folder | Layout::SingleFileT5 | Layout::TokenizerJson => {
                LtxTransformer::load(&model.join("transformer"), &Device::cpu(), DType::F32)
            }
        }
        .unwrap(),
        first: Mutex::new(None),
    };
    let transformer = Arc::new(transformer);
    let conditions_json = job["conditions"].as_array().unwrap();
    let (width, height) = (
        meta["width"].as_u64().unwrap() as usize,
        meta["height"].as_u64().unwrap() as usize,
    );
    let mut conditions = Vec::new();
    let mut recorded = Vec::new();
    for (k, c) in conditions_json.iter().enumerate() {
        let clip = c[0].as_str().unwrap();
        let frames = c[1].as_u64().unwrap() as usize;
        let input = case.get(&format!("input.{clip}"));
        // [F, H, W, 3] 8-bit levels to [3, F, H, W] in [-1, 1].
        let plane = frames * height * width;
        let mut pixels = vec![0.0f32; 3 * plane];
        for p in 0..plane {
            for ch in 0..3 {
                pixels[ch * plane + p] = input[p * 3 + ch] / 255.0 * 2.0 - 1.0;
            }
        }
        conditions.push(Condition {
            pixels,
            frames,
            frame_index: c[2].as_u64().unwrap() as usize,
            strength: c[3].as_f64().unwrap() as f32,
        });
        recorded.push(case.get(&format!("condition.{k}.latents")).to_vec());
    }
    let codec = Arc::new(RecordedCodec {
        latents: recorded,
        next: Mutex::new(0),
        decoded: Mutex::new(None),
    });
    let sched_path = model.join("scheduler/scheduler_config.json");
    let config = SchedulerConfig::from_file(&sched_path).unwrap();
    let source = match job.get("timesteps") {
        Some(ts) => ScheduleSource::Timesteps(
            ts.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_f64().unwrap())
                .collect(),
        ),
        None => ScheduleSource::Timesteps(linear_quadratic_timesteps(
            job["steps"].as_u64().unwrap() as usize,
            1000,
        )),
    };
    let schedule = Schedule::build(&config, &source, None).unwrap();
    let f = |k: &str| job[k].as_f64().unwrap() as f32;
    let params = RunParams {
        width,
        height,
        num_frames: job["num_frames"].as_u64().unwrap() as usize,
        frame_rate: meta["frame_rate"].as_f64().unwrap(),
        conditions,
        sampling: Sampling {
            schedule,
            train_timesteps: 1000.0,
            guidance_scale: f("guidance_scale"),
            guidance_rescale: f("guidance_rescale"),
            image_cond_noise_scale: f("image_cond_noise_scale"),
            decode_timestep: f("decode_timestep"),
            decode_noise_scale: f("decode_noise_scale"),
            stg: job.get("stg").map(|stg| SpatioTemporalGuidance {
                scale: stg["scale"].as_f64().unwrap() as f32,
                skip: LayerSkip {
                    mode: stg["mode"].as_str().unwrap().parse().unwrap(),
                    blocks: stg["blocks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b.as_u64().unwrap() as usize)
                        .collect(),
                },
            }),
        },
    };
    let guided = f("guidance_scale") > 1.0;
    if real_components {
        // Our tokenizer, T5 and VAE too: the decoded frames must match.
        let prompts = match layout {
            Layout::SingleFileT5 | Layout::TokenizerJson => T5Prompts::from_location(
                &single_file_t5(layout == Layout::TokenizerJson),
                &Device::cpu(),
                DType::F32,
                256,
            ),
            Layout::Folder | Layout::SingleFile => T5Prompts::load(&model, &Device::cpu(), 256),
        }
        .unwrap();
        let pos = prompts
            .encode(meta["prompt"].as_str().unwrap(), 256)
            .unwrap();
        let neg = prompts
            .encode(meta["negative_prompt"].as_str().unwrap(), 256)
            .unwrap();
        let row = if guided { 1 } else { 0 };
        let ref_mask = &case.get("prompt_attention_mask")[row * 256..(row + 1) * 256];
        check(&format!("{name}: prompt mask"), &pos.mask, ref_mask, 0.0);
        check(
            &format!("{name}: prompt embeddings"),
            &pos.embeds,
            &prompt(&case, row).embeds,
            1e-4,
        );
        let pipeline = LtxPipeline {
            transformer: transformer.clone(),
            vae: Arc::new(
                match layout {
                    Layout::Folder | Layout::SingleFileT5 | Layout::TokenizerJson => {
                        LtxVae::load(&model.join("vae"))
                    }
                    Layout::SingleFile => {
                        LtxVae::load_checkpoint(&checkpoint(), &Device::cpu(), DType::F32)
                    }
                }
                .unwrap(),
            ),
        };
        let out = pipeline
            .run(&pos, guided.then_some(&neg), &params, &noise, &Quiet)
            .unwrap();
        let all_ours = format!("{name}: final latents (all ours)");
        check(
            &all_ours,
            &out.packed_latents,
            case.get("final.packed_latents"),
            4.0 * LATENT_TOL,
        );
        let kept: Vec<usize> = case
            .get("output.frame_indices")
            .iter()
            .map(|&i| i as usize)
            .collect();
        let plane = width * height;
        let frames = params.num_frames;
        let mut ours = Vec::new();
        for &k in &kept {
            for p in 0..plane {
                for ch in 0..3 {
                    ours.push(out.video[ch * frames * plane + k * plane + p]);
                }
            }
        }
        check(
            &format!("{name}: decoded frames"),
            &ours,
            case.get("output.frames"),
            FRAME_TOL,
        );
        return;
    }
    let pipeline = LtxPipeline {
        transformer: transformer.clone(),
        vae: codec.clone(),
    };
    let (pos, neg) = if guided {
        (prompt(&case, 1), Some(prompt(&case, 0)))
    } else {
        (prompt(&case, 0), None)
    };
    let out = pipeline
        .run(&pos, neg.as_ref(), &params, &noise, &Quiet)
        .unwrap();

    let (hidden, timestep, coords) = transformer.first.lock().clone().unwrap();
    check(
        &format!("{name}: step 0 coords"),
        &coords,
        case.get("video_coords"),
        1e-6,
    );
    // Without conditions the reference passes one timestep per sample.
    let ref_t = case.get("step0.timestep");
    let per_sample = timestep.len() / ref_t.len().clamp(1, 2);
    let expanded: Vec<f32> =
        if ref_t.len() * per_sample == timestep.len() && case.shape("step0.timestep")[1] == 1 {
            ref_t
                .iter()
                .flat_map(|&t| std::iter::repeat(t).take(per_sample))
                .collect()
        } else {
            ref_t.to_vec()
        };
    check(
        &format!("{name}: step 0 timesteps"),
        &timestep,
        &expanded,
        1e-6,
    );
    check(
        &format!("{name}: step 0 latents"),
        &hidden,
        case.get("step0.hidden_states"),
        1e-6,
    );
    check(
        &format!("{name}: final latents"),
        &out.packed_latents,
        case.get("final.packed_latents"),
        LATENT_TOL,
    );

    // What reaches the decoder: denormalised latents with decode noise mixed in.
    let (latents, t, scale, decode_noise) = codec.decoded.lock().clone().unwrap();
    assert_eq!(t, f("decode_timestep"));
    assert_eq!(case.get("decode.timestep"), &[t]);
    let vae = SafeTensors::deserialize(
        &std::fs::read(model.join("vae/diffusion_pytorch_model.safetensors")).unwrap(),
    )
    .unwrap()
    .tensors()
    .into_iter()
    .filter(|(k, _)| k == "latents_mean" || k == "latents_std")
    .map(|(k, v)| {
        (
            k,
            v.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<f32>>(),
        )
    })
    .collect::<HashMap<_, _>>();
    let (mean, std) = (&vae["latents_mean"], &vae["latents_std"]);
    let per_channel = latents.len() / mean.len();
    let mixed: Vec<f32> = latents
        .iter()
        .zip(&decode_noise)
        .enumerate()
        .map(|(i, (&z, &n))| {
            let c = i / per_channel;
            let raw = z * std[c] / 1.0 + mean[c];
            (1.0 - scale) * raw + scale * n
        })
        .collect();
    check(
        &format!("{name}: decoder input"),
        &mixed,
        case.get("decode.latents"),
        LATENT_TOL,
    );
}

#[test]
fn text_only_matches_the_reference() {
    run_job("text");
}

#[test]
fn extend_forward_matches_the_reference() {
    run_job("extend_forward");
}

#[test]
fn extend_backward_matches_the_reference() {
    run_job("extend_backward");
}

#[test]
fn fill_matches_the_reference() {
    run_job("fill");
}

/// CFG, spatio-temporal guidance and rescale together, against the
/// reference pipeline with LTX-Video's STG folded into its guidance (see
/// tools/fixtures/pipeline.py).
#[test]
fn spatio_temporal_guidance_matches_the_reference() {
    run_job("extend_forward_stg");
}

/// Every job of the fixture, end to end with our tokenizer, T5 and VAE,
/// with the models read from `layout`.
fn run_all_jobs(layout: Layout) {
    for job in [
        "text",
        "extend_forward",
        "extend_backward",
        "fill",
        "extend_forward_stg",
    ] {
        run_job_with(job, true, layout);
    }
}

#[test]
fn all_jobs_end_to_end_with_our_tokenizer_t5_and_vae() {
    run_all_jobs(Layout::Folder);
}

/// The same five jobs with the transformer and VAE read from the
/// single-file checkpoint: the reference's outputs, to the same tolerances.
#[test]
fn all_jobs_end_to_end_from_the_single_file_checkpoint() {
    run_all_jobs(Layout::SingleFile);
}

/// The five jobs with T5 read from one file (its config in the metadata):
/// the reference's outputs, to the same tolerances.
#[test]
fn all_jobs_end_to_end_with_a_single_file_t5() {
    run_all_jobs(Layout::SingleFileT5);
}

/// The five jobs with T5 from one file and the tokenizer as tokenizer.json.
#[test]
fn all_jobs_end_to_end_with_a_tokenizer_json() {
    run_all_jobs(Layout::TokenizerJson);
}
