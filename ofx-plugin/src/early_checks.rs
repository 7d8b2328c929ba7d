//! Checks made the moment a setting changes (`InstanceChanged`), so that a
//! Model or Text encoder that cannot be used is said in the host's message
//! area before any render starts a job for it, not when a frame is first
//! drawn.

use std::path::{Path, PathBuf};

use genfx::engine::EngineError;
use genfx::pipeline::model_folder::ModelFolder;
use genfx::pipeline::text_encoder_location;
use ofx_sys as sys;

use crate::actions::Ctx;
use crate::ofx::message::{self, MessageKind};
use crate::params;

/// What is wrong with the model `model` names (a checkpoint, a folder or a
/// Hugging Face repository name) with the Text encoder setting
/// `text_encoder` (empty: found automatically), or `None` when both open.
/// Found and worded as the engine and a render find and word it
/// (`shot::job::explain`), so the render after it does not say it again.
pub fn model_problem(model: &str, text_encoder: &str) -> Option<String> {
    let setting = Some(text_encoder.trim())
        .filter(|t| !t.is_empty())
        .map(PathBuf::from);
    let folder = ModelFolder::open_with(Path::new(model.trim()), setting.as_deref())
        .map_err(|e| EngineError::NoModel(e.to_string()));
    let found = folder.and_then(|f| {
        text_encoder_location::locate(&f.root, setting.as_deref())
            .map_err(|e| EngineError::NoModel(format!("text encoder: {e}")))
    });
    found.err().map(|e| crate::shot::job::explain(&e).0)
}

/// The Model parameter changed: check it now and show what is wrong.
pub fn model_changed(ctx: &Ctx) {
    let time = ctx
        .in_args
        .and_then(|a| a.get_double(sys::kOfxPropTime, 0).ok())
        .filter(|t| t.is_finite())
        .unwrap_or(0.0);
    let read = |name: &str| {
        ctx.effect
            .params()
            .and_then(|set| set.param(name)?.get_bytes(time))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let (model, text_encoder) = match (read(params::MODEL), read(params::TEXT_ENCODER)) {
        (Ok(m), Ok(t)) => (m, t),
        (Err(e), _) | (_, Err(e)) => {
            log::warn!("{}: reading the Model settings: {e}", ctx.def.label());
            return;
        }
    };
    let Some(problem) = model_problem(&model, &text_encoder) else {
        log::info!("{}: model {:?} opens", ctx.def.label(), model.trim());
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
        assert_eq!(model_problem(tiny.to_str().unwrap(), ""), None);
        let empty = model_problem("  ", "").unwrap();
        assert!(empty.contains("no model given"), "{empty}");
        let missing = model_problem("/no/such/genfx/model", "").unwrap();
        assert!(missing.contains("does not exist"), "{missing}");
        assert!(missing.contains("Set Model to"), "{missing}");
        let te = model_problem(tiny.to_str().unwrap(), "/no/such/t5xxl.safetensors").unwrap();
        assert!(te.contains("Text encoder"), "{te}");
    }
}
