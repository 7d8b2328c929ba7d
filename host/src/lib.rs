//! A headless OpenFX host: loads any plugin bundle, describes its effects,
//! sets parameters, feeds input clips from image folders and renders — the
//! test harness of the GenFX plugin and the `genfx` command line.
//!
//! It identifies itself as Natron (or, on request, as DaVinci Resolve) and
//! runs actions in Natron's order. For tests it can misbehave on purpose:
//! see [`objects::Misbehave`].

pub mod abi;
pub mod bundle;
pub mod cli;
pub mod credentials;
pub mod defaults;
pub mod describe;
pub mod files;
pub mod image;
pub mod instance;
pub mod objects;
pub mod props;
pub mod registry;
pub mod source;
pub mod suites;
pub mod values;

pub use bundle::Bundle;
pub use defaults::{HostKind, Project};
pub use image::Picture;
pub use instance::{Instance, InstanceSpec, RenderKind};
pub use objects::{Message, Misbehave, Progress};

use abi::{status_name, OfxStatus};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The plugin binary could not be loaded or is malformed.
    #[error("{0}")]
    Bundle(String),
    /// A plugin action failed; what it said through the message suite follows.
    #[error("{plugin}: {action} failed with {} ({status}){}", status_name(*status), said(messages))]
    Action {
        plugin: String,
        action: String,
        status: OfxStatus,
        messages: Vec<Message>,
    },
    /// The plugin did something the host cannot follow.
    #[error("{0}")]
    Plugin(String),
    /// The request does not fit the plugin (unknown clip, parameter, context).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing pictures.
    #[error("{0}")]
    Image(String),
}

impl HostError {
    /// The OpenFX status when an action failed.
    pub fn status(&self) -> Option<OfxStatus> {
        match self {
            HostError::Action { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The messages the plugin posted about the failure.
    pub fn messages(&self) -> &[Message] {
        match self {
            HostError::Action { messages, .. } => messages,
            _ => &[],
        }
    }
}

fn said(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| format!("\n  plugin says [{}]: {}", m.kind, m.text))
        .collect()
}
