//! The Status line of each instance (idle / queued / generating 37 % /
//! cached / failed: reason) and the trigger that makes the host render a
//! finished shot's frames again.
//!
//! Both are parameters the plugin writes. The spec forbids writing
//! parameters during a render, and a Generate job runs outside any action,
//! so every write goes through one reporter thread: renders and jobs post
//! what they know, the thread writes it (in order, only when the text
//! changed) while the instance is alive. The spec has no call for a plug-in
//! to invalidate frames; setting a parameter whose
//! `kOfxParamPropEvaluateOnChange` is 1 is the way it leaves, so the
//! trigger is such a parameter (hidden, not saved) and the status line is
//! not one (it changes with every percent).

use super::cache::{self, Peek};
use super::ShotKey;
use crate::instance::Instance;
use crate::params;
use genfx::engine::EngineError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock};

pub const IDLE: &str = "idle";
pub const QUEUED: &str = "queued";
pub const CACHED: &str = "cached";

/// Where a job that has not finished is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Queued,
    /// Overall fraction done, 0..=1, and the window being made (index,
    /// count) of a shot made in windows.
    Generating(f64, Option<(u32, u32)>),
}

fn phases() -> &'static Mutex<HashMap<ShotKey, Phase>> {
    static PHASES: OnceLock<Mutex<HashMap<ShotKey, Phase>>> = OnceLock::new();
    PHASES.get_or_init(Default::default)
}

/// A Generate job for `key` was asked for and has not started.
pub fn queued(key: ShotKey) {
    phases().lock().entry(key).or_insert(Phase::Queued);
}

/// The job for `key` has done `fraction` of its work, in window `window`
/// (index, count) of a shot made in windows.
pub fn generating(key: ShotKey, fraction: f64, window: Option<(u32, u32)>) {
    phases()
        .lock()
        .insert(key, Phase::Generating(fraction.clamp(0.0, 1.0), window));
}

/// The job for `key` ended (done, failed or aborted).
pub fn ended(key: ShotKey) {
    phases().lock().remove(&key);
}

/// The status text of a shot, from the cache and the running jobs.
pub fn text(key: ShotKey) -> String {
    let phase = phases().lock().get(&key).copied();
    match (cache::global().peek(key), phase) {
        (Peek::Done(_), _) => CACHED.into(),
        (_, Some(Phase::Queued)) => QUEUED.into(),
        (_, Some(Phase::Generating(f, window))) => generating_text(f, window),
        (Peek::Running, None) => QUEUED.into(),
        (Peek::Failed(EngineError::Aborted), None) | (Peek::Absent, None) => IDLE.into(),
        (Peek::Failed(e), None) => failed_text(&e.to_string()),
    }
}

/// "generating 37 %", with "(window 3 of 24)" for a shot made in windows.
pub fn generating_text(fraction: f64, window: Option<(u32, u32)>) -> String {
    let percent = (fraction.clamp(0.0, 1.0) * 100.0).floor() as u32;
    match window {
        Some((index, count)) => {
            format!("generating {percent} % (window {} of {count})", index + 1)
        }
        None => format!("generating {percent} %"),
    }
}

pub fn failed_text(reason: &str) -> String {
    // One line: the status is a label.
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("failed: {reason}")
}

enum Post {
    Status(Arc<Instance>, String),
    /// Renders the instance's frames again.
    Ready(Arc<Instance>),
}

fn reporter() -> &'static Mutex<Option<Sender<Post>>> {
    static REPORTER: Mutex<Option<Sender<Post>>> = Mutex::new(None);
    &REPORTER
}

fn send(post: Post) {
    let mut reporter = reporter().lock();
    if reporter.is_none() {
        let (tx, rx) = channel::<Post>();
        let spawned = std::thread::Builder::new()
            .name("genfx-status".into())
            .spawn(move || {
                for post in rx {
                    // A panic here must not end the thread for every later
                    // instance; each write stands alone.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(post)));
                }
            });
        match spawned {
            Ok(_) => *reporter = Some(tx),
            Err(e) => {
                log::warn!("no status thread ({e}); status lines stay as they are");
                return;
            }
        }
    }
    if let Some(tx) = reporter.as_ref() {
        let _ = tx.send(post);
    }
}

fn write(post: Post) {
    match post {
        Post::Status(instance, text) => {
            let mut last = instance.status.lock();
            if *last == text {
                return;
            }
            let written = instance.with_effect(|effect| {
                effect
                    .params()
                    .and_then(|p| p.param(params::STATUS))
                    .and_then(|p| p.set_string(&text))
            });
            match written {
                Some(Ok(())) => *last = text,
                Some(Err(e)) => log::debug!("status line not written: {e}"),
                None => {}
            }
        }
        Post::Ready(instance) => {
            let bumped = instance.with_effect(|effect| {
                let p = effect.params()?.param(params::SHOTS_READY)?;
                let n = p.get_int(0.0)?;
                p.set_int(n.wrapping_add(1) & i32::MAX)
            });
            if let Some(Err(e)) = bumped {
                log::debug!("host not asked to render again: {e}");
            }
        }
    }
}

/// Shows `text` on the instance's status line (soon, from the reporter
/// thread).
pub fn post(instance: &Arc<Instance>, text: String) {
    send(Post::Status(instance.clone(), text));
}

/// Shows the state of `key` on the instance's status line.
pub fn post_shot(instance: &Arc<Instance>, key: ShotKey) {
    post(instance, text(key));
}

/// Asks the host to render the instance's frames again.
pub fn post_ready(instance: &Arc<Instance>) {
    send(Post::Ready(instance.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_follow_the_shot() {
        let key = ShotKey([0xa5; 16]);
        assert_eq!(text(key), IDLE);
        queued(key);
        assert_eq!(text(key), QUEUED);
        generating(key, 0.376, None);
        assert_eq!(text(key), "generating 37 %");
        generating(key, 0.5, Some((2, 24)));
        assert_eq!(text(key), "generating 50 % (window 3 of 24)");
        ended(key);
        assert_eq!(text(key), IDLE);
        assert_eq!(failed_text("no model\n  here"), "failed: no model here");
    }
}
