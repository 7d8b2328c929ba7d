//! The LTX-Video transformer against diffusers' `LTXVideoTransformer3DModel`
//! (fixtures from `tools/fixtures/transformer.py`, any seed).
//!
//! Tolerance: max abs error ≤ 1e-4 · max(1, max |reference|). Both sides
//! compute in f32; what differs is summation order (gemm blocking vs MKL,
//! blocked online softmax vs one-pass softmax) and last-ulp differences of
//! exp/tanh/sin/cos, each ~1e-7 relative, grown by a few layers of
//! normalisation and matmuls to ~1e-6..1e-5. 1e-4 leaves an order of
//! magnitude of headroom while still catching any real mistake (a wrong
//! constant, a swapped shift/scale, a missed mask moves outputs by >1e-2).
//! RoPE tables are compared at 1e-6: both sides build them in f64 and round
//! once (the fixture patches the reference's f32 rope, see design.md §5).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use genfx::backend::Device;
use genfx::models::ltx::transformer::{
    LayerSkip, LtxVideoTransformer3DModel, SkipMode, TransformerInputs,
};
use genfx::tensor::{DType, Tensor};
use genfx::testing::{assert_close, fixtures_dir, max_abs_err};
use genfx::weights::{WeightError, WeightFiles};

const TOL: f32 = 1e-4;

fn dir() -> PathBuf {
    fixtures_dir().join("transformer")
}

struct Cases {
    files: WeightFiles,
}

impl Cases {
    fn open() -> Self {
        let files = WeightFiles::open_file(&dir().join("cases.safetensors"))
            .expect("transformer fixtures (regenerate with tools/make_fixtures.py)");
        Self { files }
    }

    fn names(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .files
            .names()
            .iter()
            .filter_map(|n| n.split_once('.').map(|(c, _)| c.to_string()))
            .collect();
        names.into_iter().collect()
    }

    fn get(&self, case: &str, name: &str) -> Tensor {
        let full = format!("{case}.{name}");
        let dims = self
            .files
            .shape(&full)
            .unwrap_or_else(|| panic!("{full} missing"))
            .to_vec();
        self.files
            .load(&full, &dims, DType::F32, &Device::cpu())
            .unwrap()
    }
}

fn model() -> LtxVideoTransformer3DModel {
    LtxVideoTransformer3DModel::load(&dir(), DType::F32, &Device::cpu()).unwrap()
}

fn check(what: &str, actual: &Tensor, reference: &Tensor, tol: f32) {
    assert_eq!(actual.dims(), reference.dims(), "{what}: dims");
    let (a, r) = (
        actual.to_vec_f32().unwrap(),
        reference.to_vec_f32().unwrap(),
    );
    let (err, scale) = max_abs_err(&a, &r);
    // Shown with --nocapture: the measured margin under the tolerance.
    println!("{what}: max abs err {err:.2e} (scale {scale:.2})");
    assert_close(what, &a, &r, tol);
}

struct CaseInputs {
    hidden_states: Tensor,
    encoder_hidden_states: Tensor,
    encoder_attention_mask: Tensor,
    timestep: Tensor,
    video_coords: Tensor,
}

impl CaseInputs {
    fn load(cases: &Cases, case: &str) -> Self {
        Self {
            hidden_states: cases.get(case, "hidden_states"),
            encoder_hidden_states: cases.get(case, "encoder_hidden_states"),
            encoder_attention_mask: cases.get(case, "encoder_attention_mask"),
            timestep: cases.get(case, "timestep"),
            video_coords: cases.get(case, "video_coords"),
        }
    }

    fn inputs(&self) -> TransformerInputs<'_> {
        TransformerInputs {
            hidden_states: &self.hidden_states,
            encoder_hidden_states: &self.encoder_hidden_states,
            encoder_attention_mask: Some(&self.encoder_attention_mask),
            timestep: &self.timestep,
            video_coords: &self.video_coords,
        }
    }
}

#[test]
fn fixture_covers_the_required_cases() {
    let names = Cases::open().names();
    for case in [
        "single",
        "batch2_padded",
        "per_token_timesteps",
        "conditioning_tokens",
    ] {
        assert!(
            names.iter().any(|n| n == case),
            "case {case} missing: {names:?}"
        );
    }
}

#[test]
fn embeddings_rope_and_projections_match() {
    let cases = Cases::open();
    let model = model();
    for case in cases.names() {
        let inputs = CaseInputs::load(&cases, &case);
        let p = model.prepare(&inputs.inputs()).unwrap();
        check(
            &format!("{case} rope cos"),
            &p.rope_cos,
            &cases.get(&case, "rope_cos"),
            1e-6,
        );
        check(
            &format!("{case} rope sin"),
            &p.rope_sin,
            &cases.get(&case, "rope_sin"),
            1e-6,
        );
        check(
            &format!("{case} temb"),
            &p.temb,
            &cases.get(&case, "temb"),
            TOL,
        );
        check(
            &format!("{case} embedded timestep"),
            &p.embedded_timestep,
            &cases.get(&case, "embedded_timestep"),
            TOL,
        );
        check(
            &format!("{case} caption"),
            &p.encoder_hidden_states,
            &cases.get(&case, "caption"),
            TOL,
        );
        check(
            &format!("{case} proj_in"),
            &p.hidden_states,
            &cases.get(&case, "block_input"),
            TOL,
        );
    }
}

#[test]
fn every_block_matches_from_reference_inputs() {
    let cases = Cases::open();
    let model = model();
    assert!(model.transformer_blocks.len() >= 2);
    for case in cases.names() {
        let inputs = CaseInputs::load(&cases, &case);
        let p = model.prepare(&inputs.inputs()).unwrap();
        let ctx = p.block_context();
        for (i, block) in model.transformer_blocks.iter().enumerate() {
            // Each block from the reference's own input, so an error in one
            // block is reported there and not blamed on the next.
            let input = if i == 0 {
                cases.get(&case, "block_input")
            } else {
                cases.get(&case, &format!("block{}", i - 1))
            };
            let out = block.forward(&input, &ctx).unwrap();
            check(
                &format!("{case} block {i}"),
                &out,
                &cases.get(&case, &format!("block{i}")),
                TOL,
            );
        }
    }
}

#[test]
fn whole_model_matches() {
    let cases = Cases::open();
    let model = model();
    for case in cases.names() {
        let inputs = CaseInputs::load(&cases, &case);
        let out = model.forward(&inputs.inputs()).unwrap();
        check(
            &format!("{case} output"),
            &out,
            &cases.get(&case, "output"),
            TOL,
        );
    }
}

/// Spatio-temporal guidance's weakened pass against diffusers' layer-skip
/// hooks, in every mode (`skips.json` lists the runs). The fixture checks
/// that each run differs from the plain output, so these cannot pass by
/// skipping nothing.
#[test]
fn layer_skip_matches_the_reference_hooks() {
    let cases = Cases::open();
    let skips = WeightFiles::open_file(&dir().join("skips.safetensors")).unwrap();
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir().join("skips.json")).unwrap()).unwrap();
    let model = model();
    let mut modes = BTreeSet::new();
    for run in &runs {
        let case = run["case"].as_str().unwrap();
        let mode: SkipMode = run["mode"].as_str().unwrap().parse().unwrap();
        let blocks = run["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as usize)
            .collect();
        let skip = LayerSkip { mode, blocks };
        let inputs = CaseInputs::load(&cases, case);
        let out = model
            .forward_skipping(&inputs.inputs(), Some(&skip))
            .unwrap();
        let name = format!("{case}.{mode}");
        let dims = skips.shape(&name).unwrap().to_vec();
        let reference = skips
            .load(&name, &dims, DType::F32, &Device::cpu())
            .unwrap();
        check(&format!("{name} {:?}", skip.blocks), &out, &reference, TOL);
        modes.insert(mode.name());
    }
    let all: BTreeSet<_> = SkipMode::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(modes, all, "every skip mode has a reference run");

    let inputs = CaseInputs::load(&cases, "single");
    let past_the_end = LayerSkip {
        mode: SkipMode::AttentionValues,
        blocks: vec![model.transformer_blocks.len()],
    };
    let err = model
        .forward_skipping(&inputs.inputs(), Some(&past_the_end))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn padding_and_per_token_timesteps_change_the_output() {
    // Guards against a test that cannot fail: dropping the mask or the
    // per-token timesteps must move the output well past the tolerance.
    let cases = Cases::open();
    let model = model();
    let inputs = CaseInputs::load(&cases, "batch2_padded");
    let reference = cases.get("batch2_padded", "output").to_vec_f32().unwrap();
    let unmasked = TransformerInputs {
        encoder_attention_mask: None,
        ..inputs.inputs()
    };
    let out = model.forward(&unmasked).unwrap().to_vec_f32().unwrap();
    let (err, _) = max_abs_err(&out, &reference);
    assert!(err > 1e-2, "mask had no effect ({err})");

    let inputs = CaseInputs::load(&cases, "per_token_timesteps");
    let t = inputs.timestep.to_vec_f32().unwrap();
    let mean = t.iter().sum::<f32>() / t.len() as f32;
    let flat =
        Tensor::from_vec(vec![mean; t.len()], inputs.timestep.dims(), &Device::cpu()).unwrap();
    let out = model
        .forward(&TransformerInputs {
            timestep: &flat,
            ..inputs.inputs()
        })
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let reference = cases
        .get("per_token_timesteps", "output")
        .to_vec_f32()
        .unwrap();
    let (err, _) = max_abs_err(&out, &reference);
    assert!(err > 1e-2, "per-token timesteps had no effect ({err})");
}

#[test]
fn bad_inputs_are_errors() {
    let cases = Cases::open();
    let model = model();
    let inputs = CaseInputs::load(&cases, "single");
    let wrong = Tensor::zeros(&[1, 5, 3], DType::F32, &Device::cpu()).unwrap();
    for bad in [
        TransformerInputs {
            hidden_states: &wrong,
            ..inputs.inputs()
        },
        TransformerInputs {
            encoder_hidden_states: &wrong,
            ..inputs.inputs()
        },
        TransformerInputs {
            video_coords: &wrong,
            ..inputs.inputs()
        },
        TransformerInputs {
            timestep: &wrong,
            ..inputs.inputs()
        },
        TransformerInputs {
            encoder_attention_mask: Some(&wrong),
            ..inputs.inputs()
        },
    ] {
        assert!(model.forward(&bad).is_err());
    }
}

/// A copy of the fixture model folder to break in one way.
fn model_copy(tag: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("genfx-transformer-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(dir()).unwrap().flatten() {
        let name = entry.file_name();
        if name != "cases.safetensors" {
            std::fs::copy(entry.path(), out.join(name)).unwrap();
        }
    }
    out
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(config.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> WeightError {
    match LtxVideoTransformer3DModel::load(dir, DType::F32, &Device::cpu()) {
        Ok(_) => panic!("broken model folder {dir:?} loaded"),
        Err(e) => e,
    }
}

#[test]
fn broken_model_folders_are_typed_errors() {
    let d = model_copy("arch");
    edit_config(&d, |c| {
        c.insert("_class_name".into(), "AutoencoderKLLTXVideo".into());
    });
    assert!(
        matches!(load_err(&d), WeightError::WrongArchitecture { found, .. } if found == "AutoencoderKLLTXVideo")
    );

    let d = model_copy("unknown");
    edit_config(&d, |c| {
        c.insert("num_experts".into(), 4.into());
    });
    assert!(
        matches!(load_err(&d), WeightError::Config { reason, .. } if reason.contains("num_experts"))
    );

    let d = model_copy("missing-field");
    edit_config(&d, |c| {
        c.remove("caption_channels");
    });
    assert!(
        matches!(load_err(&d), WeightError::Config { reason, .. } if reason.contains("caption_channels"))
    );

    // More layers than the weights hold: the first absent tensor is named.
    let d = model_copy("deeper");
    edit_config(&d, |c| {
        c.insert("num_layers".into(), 3.into());
    });
    assert!(
        matches!(load_err(&d), WeightError::MissingTensor { name, .. } if name.starts_with("transformer_blocks.2."))
    );

    // Fewer layers: the leftover block's tensors are reported.
    let d = model_copy("shallower");
    edit_config(&d, |c| {
        c.insert("num_layers".into(), 1.into());
    });
    assert!(
        matches!(load_err(&d), WeightError::UnexpectedTensors { examples, .. } if examples[0].starts_with("transformer_blocks.1."))
    );

    // Other widths: a wrong shape, naming tensor and file.
    let d = model_copy("wider");
    edit_config(&d, |c| {
        c.insert("caption_channels".into(), 25.into());
    });
    assert!(
        matches!(load_err(&d), WeightError::WrongShape { name, .. } if name == "caption_projection.linear_1.weight")
    );

    // A shard gone.
    let d = model_copy("shard");
    let shard = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-00001-of-00003.safetensors"))
        .expect("fixture weights are sharded");
    std::fs::remove_file(&shard).unwrap();
    assert!(matches!(load_err(&d), WeightError::MissingShard { shard: s, .. } if s == shard));

    // A shard cut short.
    let d = model_copy("truncated");
    let shard = d.join(shard.file_name().unwrap());
    std::fs::copy(dir().join(shard.file_name().unwrap()), &shard).unwrap();
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load_err(&d), WeightError::Corrupt { path, .. } if path == shard));
}
