//! Sigma schedules of the flow-matching Euler sampler, as diffusers'
//! `FlowMatchEulerDiscreteScheduler.set_timesteps` builds them from the
//! model's `scheduler/config.json`, and the timestep lists the LTX pipelines
//! feed it.
//!
//! Values are computed in f64 and rounded to f32 once; the reference computes
//! in f32 throughout, so schedules agree to a few f32 ulps.

use std::path::Path;

/// Why a scheduler configuration cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ScheduleError {
    #[error("cannot read scheduler config {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("scheduler config: {0}")]
    Invalid(String),
    #[error("scheduler config asks for {0}, which GenFX does not support")]
    Unsupported(String),
    #[error("a schedule needs at least one step")]
    NoSteps,
}

/// How dynamic shifting bends sigmas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeShiftType {
    Exponential,
    Linear,
}

/// The fields of `FlowMatchEulerDiscreteScheduler`'s config that shape the
/// schedule, with the reference's defaults for absent keys. Every argument of
/// the reference's `__init__` is read: these, and `use_karras_sigmas`,
/// `use_exponential_sigmas`, `use_beta_sigmas` and `stochastic_sampling`,
/// which are refused when true (LTX configs never set them), as is
/// `invert_sigmas`. `_class_name` must name this scheduler;
/// `_diffusers_version` says nothing about the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    pub num_train_timesteps: u32,
    pub shift: f64,
    pub use_dynamic_shifting: bool,
    pub base_shift: f64,
    pub max_shift: f64,
    pub base_image_seq_len: f64,
    pub max_image_seq_len: f64,
    pub shift_terminal: Option<f64>,
    pub invert_sigmas: bool,
    pub time_shift_type: TimeShiftType,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            shift: 1.0,
            use_dynamic_shifting: false,
            base_shift: 0.5,
            max_shift: 1.15,
            base_image_seq_len: 256.0,
            max_image_seq_len: 4096.0,
            shift_terminal: None,
            invert_sigmas: false,
            time_shift_type: TimeShiftType::Exponential,
        }
    }
}

impl SchedulerConfig {
    pub fn from_file(path: &Path) -> Result<Self, ScheduleError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScheduleError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text)
    }

    pub fn from_json(text: &str) -> Result<Self, ScheduleError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ScheduleError::Invalid(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ScheduleError::Invalid("not a JSON object".into()))?;
        if let Some(class) = obj.get("_class_name").and_then(|v| v.as_str()) {
            if class != "FlowMatchEulerDiscreteScheduler" {
                return Err(ScheduleError::Unsupported(format!(
                    "scheduler class {class} (GenFX runs FlowMatchEulerDiscreteScheduler)"
                )));
            }
        }
        for flag in [
            "use_karras_sigmas",
            "use_exponential_sigmas",
            "use_beta_sigmas",
            "stochastic_sampling",
        ] {
            if obj.get(flag).and_then(|v| v.as_bool()) == Some(true) {
                return Err(ScheduleError::Unsupported(flag.into()));
            }
        }
        let d = Self::default();
        let num = |key: &str, default: f64| -> Result<f64, ScheduleError> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| ScheduleError::Invalid(format!("{key} is not a number"))),
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool, ScheduleError> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| ScheduleError::Invalid(format!("{key} is not true/false"))),
            }
        };
        let time_shift_type = match obj.get("time_shift_type") {
            None | Some(serde_json::Value::Null) => TimeShiftType::Exponential,
            Some(v) if v.as_str() == Some("exponential") => TimeShiftType::Exponential,
            Some(v) if v.as_str() == Some("linear") => TimeShiftType::Linear,
            Some(other) => {
                return Err(ScheduleError::Invalid(format!(
                    "time_shift_type '{other}' is neither 'exponential' nor 'linear'"
                )))
            }
        };
        let train = num("num_train_timesteps", f64::from(d.num_train_timesteps))?;
        if !(train >= 1.0 && train.fract() == 0.0 && train <= 1e6) {
            return Err(ScheduleError::Invalid(format!(
                "num_train_timesteps {train} is not a positive whole number"
            )));
        }
        let shift_terminal = match obj.get("shift_terminal") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                let t = v.as_f64().ok_or_else(|| {
                    ScheduleError::Invalid("shift_terminal is not a number".into())
                })?;
                // The reference treats 0 as "off" (a falsy value).
                (t != 0.0).then_some(t)
            }
        };
        let config = Self {
            num_train_timesteps: train as u32,
            shift: num("shift", d.shift)?,
            use_dynamic_shifting: flag("use_dynamic_shifting", d.use_dynamic_shifting)?,
            base_shift: num("base_shift", d.base_shift)?,
            max_shift: num("max_shift", d.max_shift)?,
            base_image_seq_len: num("base_image_seq_len", d.base_image_seq_len)?,
            max_image_seq_len: num("max_image_seq_len", d.max_image_seq_len)?,
            shift_terminal,
            invert_sigmas: flag("invert_sigmas", d.invert_sigmas)?,
            time_shift_type,
        };
        if config.invert_sigmas {
            return Err(ScheduleError::Unsupported("invert_sigmas".into()));
        }
        if config.max_image_seq_len == config.base_image_seq_len && config.use_dynamic_shifting {
            return Err(ScheduleError::Invalid(
                "base_image_seq_len equals max_image_seq_len".into(),
            ));
        }
        Ok(config)
    }

    /// The resolution-dependent shift `mu` for a latent sequence of
    /// `seq_len` tokens (the pipelines' `calculate_shift`).
    pub fn calculate_shift(&self, seq_len: usize) -> f64 {
        let m =
            (self.max_shift - self.base_shift) / (self.max_image_seq_len - self.base_image_seq_len);
        let b = self.base_shift - m * self.base_image_seq_len;
        seq_len as f64 * m + b
    }

    fn time_shift(&self, mu: f64, t: f64) -> f64 {
        match self.time_shift_type {
            TimeShiftType::Exponential => mu.exp() / (mu.exp() + (1.0 / t - 1.0)),
            TimeShiftType::Linear => mu / (mu + (1.0 / t - 1.0)),
        }
    }
}

/// Where a schedule starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleSource {
    /// `n` steps spread linearly from sigma 1 to the config's smallest sigma.
    Steps(usize),
    /// Explicit timesteps (0..num_train_timesteps): the transformer sees them
    /// as given while the sigmas derived from them are shifted.
    Timesteps(Vec<f64>),
    /// Explicit sigmas (0..1), shifted like the default ones.
    Sigmas(Vec<f64>),
}

/// A finished schedule: what the transformer is told at each step and the
/// sigmas the Euler step walks (one more than steps; the last is 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub timesteps: Vec<f32>,
    pub sigmas: Vec<f32>,
}

impl Schedule {
    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }

    /// `FlowMatchEulerDiscreteScheduler.set_timesteps`: `mu` is required when
    /// the config uses dynamic shifting (see [`SchedulerConfig::calculate_shift`]).
    pub fn build(
        config: &SchedulerConfig,
        source: &ScheduleSource,
        mu: Option<f64>,
    ) -> Result<Self, ScheduleError> {
        let train = f64::from(config.num_train_timesteps);
        let (given_timesteps, raw_sigmas): (Option<Vec<f64>>, Vec<f64>) = match source {
            ScheduleSource::Steps(n) => {
                let n = *n;
                if n == 0 {
                    return Err(ScheduleError::NoSteps);
                }
                // The scheduler's own sigma range: 1 down to 1/train, shifted
                // by the static shift unless shifting is dynamic.
                let static_shift = |s: f64| {
                    if config.use_dynamic_shifting {
                        s
                    } else {
                        config.shift * s / (1.0 + (config.shift - 1.0) * s)
                    }
                };
                let t_max = static_shift(1.0) * train;
                let t_min = static_shift(1.0 / train) * train;
                let ts: Vec<f64> = (0..n)
                    .map(|i| {
                        if n == 1 {
                            t_max
                        } else {
                            t_max + (t_min - t_max) * i as f64 / (n - 1) as f64
                        }
                    })
                    .collect();
                (None, ts.iter().map(|t| t / train).collect())
            }
            ScheduleSource::Timesteps(ts) => {
                if ts.is_empty() {
                    return Err(ScheduleError::NoSteps);
                }
                // The reference stores given timesteps as f32 first.
                let ts: Vec<f64> = ts.iter().map(|&t| f64::from(t as f32)).collect();
                let sig = ts.iter().map(|t| t / train).collect();
                (Some(ts), sig)
            }
            ScheduleSource::Sigmas(s) => {
                if s.is_empty() {
                    return Err(ScheduleError::NoSteps);
                }
                (None, s.iter().map(|&x| f64::from(x as f32)).collect())
            }
        };
        if let Some(bad) = raw_sigmas.iter().find(|s| !s.is_finite()) {
            return Err(ScheduleError::Invalid(format!("non-finite sigma {bad}")));
        }
        let mut sigmas: Vec<f64> = if config.use_dynamic_shifting {
            let mu = mu.ok_or_else(|| {
                ScheduleError::Invalid("dynamic shifting needs the sequence length (mu)".into())
            })?;
            raw_sigmas
                .iter()
                .map(|&s| config.time_shift(mu, s))
                .collect()
        } else {
            raw_sigmas
                .iter()
                .map(|&s| config.shift * s / (1.0 + (config.shift - 1.0) * s))
                .collect()
        };
        if let Some(terminal) = config.shift_terminal {
            let last = sigmas[sigmas.len() - 1];
            let scale = (1.0 - last) / (1.0 - terminal);
            if scale == 0.0 || !scale.is_finite() {
                return Err(ScheduleError::Invalid(format!(
                    "cannot stretch a schedule ending at sigma {last} to terminal {terminal}"
                )));
            }
            for s in &mut sigmas {
                *s = 1.0 - (1.0 - *s) / scale;
            }
        }
        let timesteps: Vec<f32> = match given_timesteps {
            Some(ts) => ts.iter().map(|&t| t as f32).collect(),
            None => sigmas.iter().map(|&s| (s as f32) * train as f32).collect(),
        };
        let mut sigmas: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
        sigmas.push(0.0);
        Ok(Self { timesteps, sigmas })
    }
}

/// The timestep list `LTXConditionPipeline` uses when none is given:
/// `linear_quadratic_schedule(n) * 1000` (LTX-Video's own default).
pub fn linear_quadratic_timesteps(steps: usize, train_timesteps: u32) -> Vec<f64> {
    let threshold = 0.025f64;
    if steps < 2 {
        return vec![f64::from(train_timesteps)];
    }
    let linear_steps = steps / 2;
    let mut schedule: Vec<f64> = (0..linear_steps)
        .map(|i| i as f64 * threshold / linear_steps as f64)
        .collect();
    let step_diff = linear_steps as f64 - threshold * steps as f64;
    let quadratic_steps = (steps - linear_steps) as f64;
    let quad = step_diff / (linear_steps as f64 * quadratic_steps * quadratic_steps);
    let lin =
        threshold / linear_steps as f64 - 2.0 * step_diff / (quadratic_steps * quadratic_steps);
    let constant = quad * (linear_steps * linear_steps) as f64;
    schedule
        .extend((linear_steps..steps).map(|i| quad * (i * i) as f64 + lin * i as f64 + constant));
    // The reference makes an f32 tensor of 1 - x, then scales it in f32.
    schedule
        .iter()
        .map(|x| {
            let sigma = (1.0 - x) as f32;
            f64::from(sigma * train_timesteps as f32)
        })
        .collect()
}

/// The first-pass timestep list of the timestep-distilled LTX-Video models
/// (0.9.6/0.9.7/0.9.8 distilled), as their model cards run them.
pub const DISTILLED_TIMESTEPS: [f64; 8] = [1000.0, 993.0, 987.0, 981.0, 975.0, 909.0, 725.0, 0.03];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_field_is_read() {
        // A field that were ignored would accept a value of the wrong type.
        for key in [
            "num_train_timesteps",
            "shift",
            "use_dynamic_shifting",
            "base_shift",
            "max_shift",
            "base_image_seq_len",
            "max_image_seq_len",
            "invert_sigmas",
            "shift_terminal",
            "time_shift_type",
        ] {
            let text = format!("{{\"{key}\": [1]}}");
            assert!(
                SchedulerConfig::from_json(&text).is_err(),
                "{key} is not read"
            );
        }
        for flag in [
            "use_karras_sigmas",
            "use_exponential_sigmas",
            "use_beta_sigmas",
            "stochastic_sampling",
            "invert_sigmas",
        ] {
            let text = format!("{{\"{flag}\": true}}");
            assert!(matches!(
                SchedulerConfig::from_json(&text),
                Err(ScheduleError::Unsupported(_))
            ));
        }
        let c = SchedulerConfig::from_json(
            r#"{"shift": 2.5, "use_dynamic_shifting": true, "base_shift": 0.9, "max_shift": 2.0,
                "base_image_seq_len": 1000, "max_image_seq_len": 5000, "shift_terminal": 0.1,
                "time_shift_type": "linear", "num_train_timesteps": 500}"#,
        )
        .unwrap();
        assert_eq!(
            (c.shift, c.base_shift, c.max_shift, c.num_train_timesteps),
            (2.5, 0.9, 2.0, 500)
        );
        assert_eq!(
            (c.base_image_seq_len, c.max_image_seq_len),
            (1000.0, 5000.0)
        );
        assert_eq!(c.shift_terminal, Some(0.1));
        assert!(c.use_dynamic_shifting && c.time_shift_type == TimeShiftType::Linear);
    }

    #[test]
    fn parses_reference_defaults_and_ltx_keys() {
        let c = SchedulerConfig::from_json(
            r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0,
                "shift_terminal": 0.1, "use_dynamic_shifting": false,
                "base_image_seq_len": 1024, "max_image_seq_len": 4096,
                "base_shift": 0.95, "max_shift": 2.05, "use_karras_sigmas": false}"#,
        )
        .unwrap();
        assert_eq!(c.shift_terminal, Some(0.1));
        assert_eq!(c.base_image_seq_len, 1024.0);
        assert_eq!(c.num_train_timesteps, 1000);
        assert!((c.calculate_shift(1024) - 0.95).abs() < 1e-12);
        assert!((c.calculate_shift(4096) - 2.05).abs() < 1e-12);
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        for bad in [
            r#"{"_class_name": "DDIMScheduler"}"#,
            r#"{"use_karras_sigmas": true}"#,
            r#"{"stochastic_sampling": true}"#,
            r#"{"invert_sigmas": true}"#,
            r#"{"shift": "big"}"#,
            r#"{"time_shift_type": "cubic"}"#,
            r#"[1, 2]"#,
            "not json",
        ] {
            assert!(SchedulerConfig::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn terminal_stretch_ends_on_the_terminal_sigma() {
        let c = SchedulerConfig {
            shift_terminal: Some(0.1),
            ..Default::default()
        };
        let s = Schedule::build(
            &c,
            &ScheduleSource::Timesteps(linear_quadratic_timesteps(10, 1000)),
            None,
        )
        .unwrap();
        assert_eq!(s.sigmas.len(), 11);
        assert!((s.sigmas[9] - 0.1).abs() < 1e-6);
        assert_eq!(s.sigmas[10], 0.0);
        // Given timesteps reach the transformer unshifted.
        assert_eq!(s.timesteps[0], 1000.0);
        assert!(s.sigmas.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn dynamic_shifting_needs_mu() {
        let c = SchedulerConfig {
            use_dynamic_shifting: true,
            ..Default::default()
        };
        assert!(Schedule::build(&c, &ScheduleSource::Steps(4), None).is_err());
        let s =
            Schedule::build(&c, &ScheduleSource::Steps(4), Some(c.calculate_shift(512))).unwrap();
        assert_eq!(s.steps(), 4);
        assert!(Schedule::build(&c, &ScheduleSource::Steps(0), Some(1.0)).is_err());
    }
}
