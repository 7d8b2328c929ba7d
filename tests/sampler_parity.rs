//! The sampler against diffusers' FlowMatchEulerDiscreteScheduler, from
//! `tests/fixtures/pipeline/schedules.json` (made by tools/fixtures/pipeline.py).

use genfx::sampler::flow_match::{euler_step, token_timesteps, StepAt};
use genfx::sampler::schedule::{Schedule, ScheduleSource, SchedulerConfig};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    std::env::var_os("GENFX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join("pipeline")
}

fn load() -> Value {
    let path = fixtures().join("schedules.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("schedules.json parses")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn close(a: f32, b: f64, tol: f64) -> bool {
    (f64::from(a) - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn schedules_match_the_reference_scheduler() {
    let doc = load();
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() > 20);
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let config = SchedulerConfig::from_json(&case["config"].to_string()).expect(name);
        let source = match case["source"]["kind"].as_str() {
            Some("steps") => {
                ScheduleSource::Steps(case["source"]["steps"].as_u64().unwrap() as usize)
            }
            Some("lq_timesteps") => {
                ScheduleSource::Timesteps(genfx::sampler::schedule::linear_quadratic_timesteps(
                    case["source"]["steps"].as_u64().unwrap() as usize,
                    config.num_train_timesteps,
                ))
            }
            Some("distilled") => {
                ScheduleSource::Timesteps(genfx::sampler::schedule::DISTILLED_TIMESTEPS.to_vec())
            }
            Some("sigmas") => ScheduleSource::Sigmas(floats(&case["source"]["values"])),
            other => panic!("{name}: unknown source {other:?}"),
        };
        let mu = case["mu"].as_f64();
        if let Some(mu) = mu {
            let seq = case["seq_len"].as_u64().unwrap() as usize;
            assert!(
                (config.calculate_shift(seq) - mu).abs() < 1e-9,
                "{name}: mu"
            );
        }
        let expected_sigmas = floats(&case["sigmas"]);
        let built = Schedule::build(&config, &source, mu);
        if expected_sigmas.iter().any(|s| s.is_nan()) {
            // The reference divides by zero here (a one-step schedule
            // stretched to a terminal); we refuse instead.
            assert!(built.is_err(), "{name}: should be refused");
            continue;
        }
        let built = built.unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected_ts = floats(&case["timesteps"]);
        assert_eq!(built.timesteps.len(), expected_ts.len(), "{name}");
        assert_eq!(built.sigmas.len(), expected_sigmas.len(), "{name}");
        for (i, (a, b)) in built.timesteps.iter().zip(&expected_ts).enumerate() {
            assert!(close(*a, *b, 2e-6), "{name}: timestep {i}: {a} vs {b}");
        }
        for (i, (a, b)) in built.sigmas.iter().zip(&expected_sigmas).enumerate() {
            assert!(close(*a, *b, 2e-6), "{name}: sigma {i}: {a} vs {b}");
        }
        checked += 1;
    }
    assert!(checked > 20);
}

#[test]
fn per_token_steps_match_the_reference() {
    let doc = load();
    let pt = &doc["per_token"];
    let config = SchedulerConfig::from_json(&pt["config"].to_string()).unwrap();
    let schedule = Schedule::build(
        &config,
        &ScheduleSource::Timesteps(floats(&pt["timesteps"])),
        None,
    )
    .unwrap();
    let expected_sigmas = floats(&pt["sigmas"]);
    for (a, b) in schedule.sigmas.iter().zip(&expected_sigmas) {
        assert!(close(*a, *b, 2e-6));
    }
    let channels = pt["channels"].as_u64().unwrap() as usize;
    let tokens = pt["tokens"].as_u64().unwrap() as usize;
    let f32s = |v: &Value| floats(v).iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let steps = pt["steps"].as_array().unwrap();
    assert_eq!(steps.len(), schedule.steps());
    for step in steps {
        let i = step["step"].as_u64().unwrap() as usize;
        let t = schedule.timesteps[i];
        let mask = f32s(&step["mask"]);
        let tts = token_timesteps(t, Some(&mask), tokens, 1000.0);
        assert_eq!(tts, f32s(&step["token_timesteps"]), "step {i}");
        let mut x = f32s(&step["sample"]);
        let v = f32s(&step["velocity"]);
        let at = StepAt {
            sigmas: &schedule.sigmas,
            t,
            train: 1000.0,
        };
        euler_step(&mut x, &v, channels, &tts, Some(&mask), at);
        for (k, (a, b)) in x.iter().zip(f32s(&step["expected"])).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "step {i} value {k}: {a} vs {b}"
            );
        }
    }
}
