//! The memory guard: before a job loads or generates anything, the memory
//! it needs on the host and on the device (estimated from the model
//! configs and the job's shape: [`estimate`]) is compared with what is
//! available (`MemAvailable` and the process's memory cgroups: [`host`];
//! the device's free memory). A job that would not fit is refused with an
//! [`EngineError::OutOfMemory`] naming both figures and what to change,
//! instead of the kernel's OOM killer taking the host application (and the
//! user's unsaved work) down, or a GPU job failing after minutes.

pub mod estimate;
pub mod host;
pub mod sizes;

pub use estimate::{Estimate, JobShape, ModelSizes, Peak, Placement, WeightResidence};

use super::model_folder::ModelFolder;
use std::path::Path;

use crate::backend::Device;
use crate::engine::EngineError;
use crate::models::ltx::transformer::TransformerConfig;
use crate::models::ltx::vae::VaeConfig;
use crate::models::t5::T5Config;
use crate::tensor::DType;

/// **Test-only**: bytes of host memory to take as available instead of
/// what `/proc/meminfo` and the cgroups say, so that tests can play a
/// machine smaller than the one they run on. Not for users: a figure
/// larger than the machine's own defeats the guard.
pub const AVAILABLE_ENV: &str = "GENFX_MEMORY_AVAILABLE_BYTES";

/// `off` turns the guard into a warning in the log: for a machine whose
/// swap or compressed memory the estimate cannot see, at the user's risk.
pub const GUARD_ENV: &str = "GENFX_MEMORY_GUARD";

/// Memory the host application and the rest of the process keep growing
/// into while a job runs, beyond the job's own estimate (counted in the
/// figure a refusal names).
const HOST_HEADROOM: u64 = 512 << 20;

/// Device memory the estimate does not see: cuBLAS workspaces, the
/// allocator's rounding and fragmentation.
const DEVICE_HEADROOM: u64 = 384 << 20;

/// Host memory the process may use and where that figure comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAvailable {
    pub bytes: u64,
    pub source: String,
}

/// The host's figure: [`AVAILABLE_ENV`] when set (tests), else the probe;
/// `None` where neither `/proc/meminfo` nor a cgroup can be read (not
/// Linux), and the host side is then not checked.
pub fn host_available() -> Option<HostAvailable> {
    if let Ok(text) = std::env::var(AVAILABLE_ENV) {
        if let Ok(bytes) = text.trim().parse() {
            return Some(HostAvailable {
                bytes,
                source: AVAILABLE_ENV.to_string(),
            });
        }
        log::warn!("{AVAILABLE_ENV}={text:?} is not a number of bytes; ignored");
    }
    let probe = host::probe_system();
    let bytes = probe.available()?;
    let source = match &probe.cgroup {
        Some((_, dir)) if probe.cgroup_binds() => {
            format!("the memory limit of cgroup {}", dir.display())
        }
        _ => "MemAvailable".to_string(),
    };
    Some(HostAvailable { bytes, source })
}

/// Bytes for people: GB with one decimal, MB below one GB.
pub fn human(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

impl ModelSizes {
    /// The sizes of the models in `folder` (a diffusers folder or a
    /// single-file checkpoint, whose configs are in its metadata) with the
    /// T5 encoder at `t5_weights` (a folder with `config.json` or one file,
    /// whose config its tensor shapes give), from configs only; the stored
    /// dtype's size from the transformer's files (their bytes per
    /// parameter), bf16 when that is unclear.
    pub fn from_folder(folder: &ModelFolder, t5_weights: &Path) -> Result<Self, EngineError> {
        let no_model =
            |what: &str, e: &dyn std::fmt::Display| EngineError::NoModel(format!("{what}: {e}"));
        let (transformer, vae) = match &folder.checkpoint {
            Some(c) => (c.transformer.clone(), c.vae.clone()),
            None => {
                let transformer = TransformerConfig::load(&folder.transformer_config)
                    .map_err(|e| no_model("transformer", &e))?;
                let vae_text = std::fs::read_to_string(&folder.vae_config)
                    .map_err(|e| no_model(&folder.vae_config.display().to_string(), &e))?;
                let vae = VaeConfig::from_json(&vae_text, &folder.vae_config.display().to_string())
                    .map_err(|e| no_model("VAE", &e))?;
                (transformer, vae)
            }
        };
        let t5 = if t5_weights.is_dir() {
            T5Config::from_file(&t5_weights.join("config.json"))
                .map_err(|e| no_model("text encoder", &e))?
        } else {
            let files = crate::weights::WeightFiles::open_file(t5_weights)
                .map_err(|e| no_model("text encoder", &e))?;
            let layout = crate::models::t5::single_file::t5_layout(&files, t5_weights)
                .map_err(|e| no_model("text encoder", &e))?;
            crate::models::t5::single_file::infer_config(&files, &layout, t5_weights)
                .map_err(|e| no_model("text encoder", &e))?
        };
        let params = sizes::transformer_params(&transformer) as u64;
        let file_bytes: u64 = folder
            .transformer_weights
            .files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let stored = match Some(file_bytes) {
            Some(b) if params > 0 && b / params >= 3 => DType::F32,
            _ => DType::BF16,
        };
        Self::from_configs(transformer, vae, t5, stored).map_err(EngineError::NoModel)
    }
}

/// What the engine has in memory already when the job starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resident {
    /// The transformer and VAE are loaded (an earlier job's).
    pub pipeline: bool,
    /// The text encoder has already moved to the CPU (a GPU without room).
    pub t5_on_host: bool,
}

/// What a job is checked against.
#[derive(Clone, Debug)]
pub struct Available {
    /// The device's free memory (`None`: not known, not checked).
    pub device_free: Option<u64>,
    /// The host's (`None`: not known, not checked).
    pub host: Option<HostAvailable>,
    /// Refuse a job that does not fit (else only log it).
    pub enforce: bool,
}

/// Whether refusals are enforced: unless [`GUARD_ENV`] is `off`.
pub fn enforced() -> bool {
    !std::env::var(GUARD_ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"))
}

/// Checks a job on `device` in `dtype` against the memory `available`,
/// and returns the estimate it was checked with.
pub fn check(
    sizes: &ModelSizes,
    job: &JobShape,
    device: &Device,
    dtype: DType,
    resident: Resident,
    available: &Available,
) -> Result<Estimate, EngineError> {
    let (device_free, host) = (available.device_free, available.host.as_ref());
    let placement = if device.is_cpu() {
        Placement::Cpu {
            dtype,
            weights: WeightResidence::Mapped,
        }
    } else {
        let (t5_device, _) = crate::models::t5::placement(device, dtype);
        Placement::Gpu {
            dtype,
            t5_on_host: resident.t5_on_host || t5_device.is_cpu(),
        }
    };
    let mut est = estimate::estimate(sizes, job, placement, resident.pipeline);
    // what this process holds already counts as available to it
    let own_device = if resident.pipeline && !device.is_cpu() {
        est.pipeline_weights
    } else {
        0
    };
    let own_host = if resident.pipeline && device.is_cpu() {
        est.pipeline_weights
    } else {
        0
    };
    // T5 that cannot fit the card alone runs on the CPU instead
    // (`T5Prompts::embed` falls back when the card runs out): count it
    // there. The engine tries the card whenever its estimate fits, so no
    // headroom is kept here.
    let t5_phase = estimate::t5_device_bytes(sizes, dtype);
    if let (
        Placement::Gpu {
            dtype,
            t5_on_host: false,
        },
        Some(free),
    ) = (placement, device_free)
    {
        if job.encodes_prompts && t5_phase > free + own_device {
            est = estimate::estimate(
                sizes,
                job,
                Placement::Gpu {
                    dtype,
                    t5_on_host: true,
                },
                resident.pipeline,
            );
        }
    }
    let shot = format!("{}x{}, {} frames", job.width, job.height, job.frames);
    let enforce = |refusal: String| -> Result<(), EngineError> {
        if !available.enforce {
            log::warn!("{refusal} ({GUARD_ENV}=off: trying anyway)");
            Ok(())
        } else {
            Err(EngineError::OutOfMemory(refusal))
        }
    };
    if let (Some(device_need), Some(free)) = (est.device, device_free) {
        let room = free + own_device;
        let need = device_need.bytes + DEVICE_HEADROOM;
        if need > room {
            let cpu = estimate::estimate(
                sizes,
                job,
                Placement::Cpu {
                    dtype: Device::cpu().compute_dtype(),
                    weights: WeightResidence::Mapped,
                },
                false,
            );
            // a card too small for the weights gains nothing from a
            // smaller shot
            let change = if est.pipeline_weights + DEVICE_HEADROOM > room {
                format!(
                    "the transformer and VAE alone take {} there: close other GPU work",
                    human(est.pipeline_weights)
                )
            } else {
                "lower the resolution or the length, close other GPU work".to_string()
            };
            enforce(format!(
                "this shot ({shot}) needs about {} of GPU memory on {} (at its peak, {}) \
                 and {} is free there; {change}, or set {}=cpu to run on the CPU (about {} \
                 of memory there)",
                human(need),
                device.name(),
                device_need.phase,
                human(room),
                super::engine::DEVICE_ENV,
                human(cpu.host.bytes + HOST_HEADROOM),
            ))?;
        }
    }
    if let Some(host) = host {
        let room = host.bytes + own_host;
        let need = est.host.bytes + HOST_HEADROOM;
        if need > room {
            let advice = if device.is_cpu() {
                "lower the resolution or the length, run it on a GPU, or close other applications"
            } else {
                "lower the resolution or the length, or close other applications"
            };
            enforce(format!(
                "this shot ({shot}) needs about {} of memory (RAM) on this computer (at its \
                 peak, {}) and {} is available ({}); {advice}",
                human(need),
                est.host.phase,
                human(room),
                host.source,
            ))?;
        }
    }
    Ok(est)
}
