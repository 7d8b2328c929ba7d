//! Helpers shared by tests (unit, integration and other crates' tests).

use std::path::PathBuf;

/// Root of the reference fixtures: `$GENFX_FIXTURES` when set (fixtures made
/// with another seed), otherwise `<workspace>/tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("GENFX_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("fixtures"),
    }
}

/// Largest absolute difference between two equally long slices, and the
/// largest absolute value of `reference` (the scale errors are judged by).
pub fn max_abs_err(actual: &[f32], reference: &[f32]) -> (f32, f32) {
    let err = actual
        .iter()
        .zip(reference)
        .map(|(a, r)| (a - r).abs())
        .fold(
            0.0f32,
            |m, e| if e.is_nan() { f32::INFINITY } else { m.max(e) },
        );
    let scale = reference.iter().fold(0.0f32, |m, r| m.max(r.abs()));
    let err = if actual.len() != reference.len() {
        f32::INFINITY
    } else {
        err
    };
    (err, scale)
}

/// Asserts `max|actual - reference| <= tol * max(1, max|reference|)`.
#[track_caller]
pub fn assert_close(what: &str, actual: &[f32], reference: &[f32], tol: f32) {
    let (err, scale) = max_abs_err(actual, reference);
    let bound = tol * scale.max(1.0);
    assert!(
        err <= bound,
        "{what}: max abs err {err:e} > {bound:e} (tol {tol:e}, scale {scale:e}, len {} vs {})",
        actual.len(),
        reference.len()
    );
}

/// The T5 encoder of model folder `model` written into `out` as one
/// safetensors file (as ComfyUI keeps T5) carrying its `config.json` in the
/// metadata under `config`, with the tokenizer folder beside it. Returns
/// the file.
pub fn t5_as_single_file(
    model: &std::path::Path,
    out: &std::path::Path,
) -> Result<PathBuf, String> {
    use safetensors::tensor::{SafeTensors, TensorView};
    let err = |e: &dyn std::fmt::Display| e.to_string();
    std::fs::create_dir_all(out.join("tokenizer")).map_err(|e| err(&e))?;
    let bytes = std::fs::read(model.join("text_encoder/model.safetensors")).map_err(|e| err(&e))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| err(&e))?;
    let views = tensors
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            TensorView::new(v.dtype(), v.shape().to_vec(), v.data())
                .map(|view| (name, view))
                .map_err(|e| err(&e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config =
        std::fs::read_to_string(model.join("text_encoder/config.json")).map_err(|e| err(&e))?;
    let meta = std::collections::HashMap::from([("config".to_string(), config)]);
    let file = out.join("t5-tiny.safetensors");
    safetensors::serialize_to_file(views, Some(meta), &file).map_err(|e| err(&e))?;
    for name in ["spiece.model", "tokenizer_config.json"] {
        let from = model.join("tokenizer").join(name);
        if from.is_file() {
            std::fs::copy(&from, out.join("tokenizer").join(name)).map_err(|e| err(&e))?;
        }
    }
    Ok(file)
}
