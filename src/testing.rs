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
