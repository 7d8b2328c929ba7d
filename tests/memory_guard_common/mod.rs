//! What the memory guard's tests share: the full-size models' sizes from
//! their published configs (benches/common/gpu_plan.rs, included by each
//! test as `plan`), the full-size shot, and "available" set by the test.

#![allow(dead_code)]

use genfx::models::ltx::vae::VaeConfig;
use genfx::pipeline::memory_guard::{Available, HostAvailable, JobShape, ModelSizes};
use genfx::tensor::DType;

use crate::plan;

pub fn avail(device_free: Option<u64>, host: &HostAvailable) -> Available {
    Available {
        device_free,
        host: Some(host.clone()),
        enforce: true,
    }
}

/// The LTX-Video 2B transformer, the 0.9.5 VAE and T5-XXL, stored in bf16.
pub fn full_size() -> ModelSizes {
    ModelSizes::from_configs(
        serde_json::from_str(plan::LTX_2B_TRANSFORMER).unwrap(),
        VaeConfig::from_json(plan::LTX_095_VAE, "0.9.5 VAE").unwrap(),
        serde_json::from_str(plan::T5_XXL).unwrap(),
        DType::BF16,
    )
    .unwrap()
}

/// The 768×512, 121-frame shot with `batch` predictions per step.
pub fn full_shot(batch: usize) -> JobShape {
    JobShape {
        width: plan::WIDTH,
        height: plan::HEIGHT,
        frames: plan::FRAMES,
        batch,
        condition_frames: vec![],
        encodes_prompts: true,
    }
}
