//! The memory guard (`pipeline::memory_guard`): parameter counts from
//! configs against the fixture's files, the full-size shot's estimate,
//! a full-size job refused on an "8 GB machine" with both figures named,
//! and the tiny fixture model through the engine on either side of the
//! test-only override of the memory available.

#[path = "../benches/common/gpu_plan.rs"]
#[allow(unused)]
mod plan;

mod memory_guard_common;
use memory_guard_common::{avail, full_shot, full_size};

use genfx::backend::Device;
use genfx::engine::{EngineError, Job, JobObserver, Quality, ShotEngine, ShotRequest, Stage};
use genfx::models::ltx::transformer::TransformerConfig;
use genfx::models::ltx::vae::VaeConfig;
use genfx::models::t5::T5Config;
use genfx::pipeline::engine::LtxEngine;
use genfx::pipeline::memory_guard::{
    self, estimate, human, sizes, Available, HostAvailable, JobShape, Placement, Resident,
    WeightResidence, AVAILABLE_ENV,
};
use genfx::tensor::DType;
use genfx::testing::fixtures_dir;
use genfx::weights::WeightFiles;

fn stored_elements(dir: &str, skip: &[&str]) -> usize {
    let files = WeightFiles::open_dir(&fixtures_dir().join("pipeline/model").join(dir)).unwrap();
    files
        .names()
        .into_iter()
        .filter(|n| !skip.contains(n))
        .map(|n| files.shape(n).unwrap().iter().product::<usize>())
        .sum()
}

#[test]
fn parameter_counts_from_configs_match_the_fixture_files() {
    let root = fixtures_dir().join("pipeline/model");
    let t = TransformerConfig::load(&root.join("transformer/config.json")).unwrap();
    assert_eq!(
        sizes::transformer_params(&t),
        stored_elements("transformer", &[])
    );
    let v = VaeConfig::from_json(
        &std::fs::read_to_string(root.join("vae/config.json")).unwrap(),
        "vae",
    )
    .unwrap();
    assert_eq!(sizes::vae_params(&v), Some(stored_elements("vae", &[])));
    let t5 = T5Config::from_file(&root.join("text_encoder/config.json")).unwrap();
    // the tied embedding is loaded once, whichever name holds it
    let files = WeightFiles::open_dir(&root.join("text_encoder")).unwrap();
    let both = files.contains("shared.weight") && files.contains("encoder.embed_tokens.weight");
    let skip: &[&str] = if both {
        &["encoder.embed_tokens.weight"]
    } else {
        &[]
    };
    assert_eq!(sizes::t5_params(&t5), stored_elements("text_encoder", skip));
}

#[test]
fn the_full_size_models_and_shot_are_sized_from_their_configs() {
    let s = full_size();
    // LTX-Video 2B, T5-XXL's encoder: the published sizes
    assert!(
        (1.85e9..2.0e9).contains(&(s.transformer_params as f64)),
        "{}",
        s.transformer_params
    );
    assert!(
        (4.6e9..4.9e9).contains(&(s.t5_params as f64)),
        "{}",
        s.t5_params
    );
    println!(
        "params: transformer {}, VAE {}, T5 {}",
        s.transformer_params, s.vae_params, s.t5_params
    );
    for (preset, batch) in [("distilled", 1), ("dev", 2)] {
        let job = full_shot(batch);
        for (name, placement) in [
            (
                "CPU f32",
                Placement::Cpu {
                    dtype: DType::F32,
                    weights: WeightResidence::Owned,
                },
            ),
            (
                "CPU bf16 mapped",
                Placement::Cpu {
                    dtype: DType::BF16,
                    weights: WeightResidence::Mapped,
                },
            ),
            (
                "GPU bf16",
                Placement::Gpu {
                    dtype: DType::BF16,
                    t5_on_host: false,
                },
            ),
            (
                "GPU f16 (T5 on the CPU)",
                Placement::Gpu {
                    dtype: DType::F16,
                    t5_on_host: true,
                },
            ),
        ] {
            let e = estimate::estimate(&s, &job, placement, false);
            println!(
                "{preset} {name}: host {} ({}), device {}, T5 on device {}, weights {}",
                human(e.host.bytes),
                e.host.phase,
                e.device
                    .map(|d| format!("{} ({})", human(d.bytes), d.phase))
                    .unwrap_or("-".into()),
                human(e.device_t5),
                human(e.pipeline_weights),
            );
            if let Some(d) = e.device {
                // the weights, and more, but within what the dry run of
                // this shot measures on a 10 GB card (tests/gpu_memory_plan.rs)
                assert!(d.bytes > e.pipeline_weights);
                if batch == 1
                    && placement
                        == (Placement::Gpu {
                            dtype: DType::BF16,
                            t5_on_host: false,
                        })
                {
                    assert!(d.bytes < 9_500_000_000, "{}", d.bytes);
                }
            } else {
                assert!(e.host.bytes > 8_000_000_000, "{}", e.host.bytes);
            }
        }
    }
}

#[test]
fn a_small_cpu_job_of_the_full_size_model_fits_16_gb_with_mapped_16_bit_weights() {
    // `bench memory`'s CPU job: T5-XXL computes in f32 from its mapped bf16
    // pages, so its weights count 2 bytes a parameter, not the 4 of a
    // widened copy (which put the estimate at 19.7 GB and refused a job
    // that peaks at 10.7 GB in a 16 GiB cgroup).
    let s = full_size();
    let job = JobShape {
        width: 256,
        height: 160,
        frames: 9,
        batch: 1,
        condition_frames: vec![],
        encodes_prompts: true,
    };
    let placement = Placement::Cpu {
        dtype: DType::F32,
        weights: WeightResidence::Mapped,
    };
    let e = estimate::estimate(&s, &job, placement, false);
    assert_eq!(e.t5_weights, (s.t5_params * 2) as u64);
    assert!(
        e.host.bytes < 16 << 30,
        "{} ({})",
        e.host.bytes,
        e.host.phase
    );
    // Owned weights are widened copies: 4 bytes a parameter.
    let owned = Placement::Cpu {
        dtype: DType::F32,
        weights: WeightResidence::Owned,
    };
    let e = estimate::estimate(&s, &job, owned, false);
    assert_eq!(e.t5_weights, (s.t5_params * 4) as u64);
}

#[test]
fn a_full_size_job_is_refused_on_an_8_gb_machine_naming_both_figures() {
    let eight = HostAvailable {
        bytes: 8_000_000_000,
        source: "test".into(),
    };
    for batch in [1, 2] {
        let job = full_shot(batch);
        let err = memory_guard::check(
            &full_size(),
            &job,
            &Device::cpu(),
            DType::F32,
            Resident::default(),
            &avail(None, &eight),
        )
        .unwrap_err();
        let EngineError::OutOfMemory(text) = &err else {
            panic!("{err:?}")
        };
        println!("{err}");
        let est = estimate::estimate(
            &full_size(),
            &job,
            Placement::Cpu {
                dtype: DType::F32,
                weights: WeightResidence::Mapped,
            },
            false,
        );
        let need = human(est.host.bytes + (512 << 20));
        assert!(
            text.contains(&format!("needs about {need} of memory")),
            "{text}"
        );
        assert!(text.contains("8.0 GB is available (test)"), "{text}");
        assert!(text.contains("768x512, 121 frames"), "{text}");
        for advice in [
            "lower the resolution or the length",
            "GPU",
            "close other applications",
        ] {
            assert!(text.contains(advice), "{text}");
        }
    }
    // a machine with the memory takes the same job
    let big = HostAvailable {
        bytes: 200_000_000_000,
        source: "test".into(),
    };
    memory_guard::check(
        &full_size(),
        &full_shot(2),
        &Device::cpu(),
        DType::F32,
        Resident::default(),
        &avail(None, &big),
    )
    .expect("fits 200 GB");
    // GENFX_MEMORY_GUARD=off: the same refusal is a warning in the log
    let off = Available {
        enforce: false,
        ..avail(None, &eight)
    };
    memory_guard::check(
        &full_size(),
        &full_shot(1),
        &Device::cpu(),
        DType::F32,
        Resident::default(),
        &off,
    )
    .expect("not enforced");
}

struct Quiet;
impl JobObserver for Quiet {
    fn progress(&self, _: Stage, _: u32, _: u32) {}
    fn should_abort(&self) -> bool {
        false
    }
}

fn tiny_request(seed: u64) -> ShotRequest {
    ShotRequest {
        text_encoder: None,
        model: fixtures_dir().join("pipeline/model"),
        prompt: "a red fox runs through the snow".into(),
        negative_prompt: "blurry".into(),
        seed,
        quality: Quality::Steps(2),
        guidance: 1.0,
        width: 64,
        height: 32,
        num_frames: 9,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate { reference: None },
        windows: Default::default(),
    }
}

/// The only test of this binary that sets the override: tests run in
/// threads of one process.
#[test]
fn the_tiny_model_passes_the_guard_and_a_tiny_machine_refuses_it() {
    let engine = LtxEngine::new(Device::cpu());
    std::env::set_var(AVAILABLE_ENV, "8000000000");
    engine
        .generate(&tiny_request(1), &Quiet)
        .expect("the tiny model fits 8 GB");
    std::env::set_var(AVAILABLE_ENV, "100000000");
    let err = engine.generate(&tiny_request(2), &Quiet).unwrap_err();
    std::env::remove_var(AVAILABLE_ENV);
    let EngineError::OutOfMemory(text) = &err else {
        panic!("{err:?}")
    };
    println!("{err}");
    // what the first job left loaded counts as available too
    assert!(
        text.contains(" MB is available (GENFX_MEMORY_AVAILABLE_BYTES)"),
        "{text}"
    );
    assert!(text.contains("needs about 5"), "{text}");
    assert!(text.contains("64x32, 9 frames"), "{text}");
}
