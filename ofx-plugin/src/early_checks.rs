//! Checks made the moment a setting changes (`InstanceChanged`), so that a
//! Model folder that cannot be used is said in the host's message area
//! before any render starts a job for it, not when a frame is first drawn.

use std::path::Path;

use genfx::engine::EngineError;
use genfx::pipeline::model_folder::ModelFolder;
use ofx_sys as sys;

use crate::actions::Ctx;
use crate::ofx::message::{self, MessageKind};
use crate::params;

/// What is wrong with the model `text` names (a folder or a Hugging Face
/// repository name), or `None` when it opens. Worded as a render words the
/// engine's error, so that the render after it does not say it again.
pub fn model_problem(text: &str) -> Option<String> {
    let error = ModelFolder::open(Path::new(text.trim())).err()?;
    let e = EngineError::NoModel(error.to_string());
    Some(format!(
        "GenFX: {e}. Set the Model folder to an LTX-Video model (see the README)."
    ))
}

/// The Model parameter changed: check it now and show what is wrong.
pub fn model_changed(ctx: &Ctx) {
    let time = ctx
        .in_args
        .and_then(|a| a.get_double(sys::kOfxPropTime, 0).ok())
        .filter(|t| t.is_finite())
        .unwrap_or(0.0);
    let text = match ctx
        .effect
        .params()
        .and_then(|set| set.param(params::MODEL)?.get_bytes(time))
    {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            log::warn!("{}: reading the Model parameter: {e}", ctx.def.label());
            return;
        }
    };
    let Some(problem) = model_problem(&text) else {
        log::info!("{}: model {:?} opens", ctx.def.label(), text.trim());
        return;
    };
    log::warn!("{}: {problem}", ctx.def.label());
    if !message::set_persistent(&ctx.effect, MessageKind::Error, &problem) {
        message::show(&ctx.effect, MessageKind::Error, &problem);
    }
    *ctx.instance.shown.lock() = Some(problem);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_that_cannot_be_used_is_explained_and_one_that_can_passes() {
        let tiny = genfx::testing::fixtures_dir().join("pipeline/model");
        assert_eq!(model_problem(tiny.to_str().unwrap()), None);
        let empty = model_problem("  ").unwrap();
        assert!(empty.contains("no model given"), "{empty}");
        let missing = model_problem("/no/such/genfx/model").unwrap();
        assert!(missing.contains("does not exist"), "{missing}");
        assert!(missing.contains("Set the Model folder"), "{missing}");
    }
}
