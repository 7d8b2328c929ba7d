//! Layer skipping for spatio-temporal guidance (STG): a second forward pass
//! with some blocks weakened, whose prediction the sampler pushes away from.
//! The modes are LTX-Video's `SkipLayerStrategy` values that change an LTX
//! block (its `Residual` mode touches only attention modules with a residual
//! connection, which LTX blocks do not have, so it is not offered).

use std::fmt;
use std::str::FromStr;

/// How a skipped block is weakened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipMode {
    /// Self-attention returns its values: each token attends only to itself
    /// (`attention_values`, the mode LTX-Video's published recipes use).
    AttentionValues,
    /// Self-attention's input goes straight to its output projection
    /// (`attention_skip`).
    AttentionSkip,
    /// The whole block is the identity (`transformer_block`).
    TransformerBlock,
}

impl SkipMode {
    pub const ALL: [SkipMode; 3] = [
        SkipMode::AttentionValues,
        SkipMode::AttentionSkip,
        SkipMode::TransformerBlock,
    ];

    /// The name LTX-Video's configs use (`stg_mode`).
    pub fn name(self) -> &'static str {
        match self {
            SkipMode::AttentionValues => "attention_values",
            SkipMode::AttentionSkip => "attention_skip",
            SkipMode::TransformerBlock => "transformer_block",
        }
    }
}

impl fmt::Display for SkipMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SkipMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|m| m.name()).collect();
                format!("unknown skip mode {s:?}; known: {}", known.join(", "))
            })
    }
}

/// Which blocks a forward pass weakens, and how.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LayerSkip {
    pub mode: SkipMode,
    /// Indices into `transformer_blocks`.
    pub blocks: Vec<usize>,
}

impl LayerSkip {
    /// The mode for block `index`, when it is skipped.
    pub fn mode_for(&self, index: usize) -> Option<SkipMode> {
        self.blocks.contains(&index).then_some(self.mode)
    }

    /// Fails when a block index is past the model's last block: a recipe
    /// for a bigger model must not silently do nothing.
    pub fn check(&self, num_layers: usize) -> Result<(), String> {
        match self.blocks.iter().find(|&&b| b >= num_layers) {
            Some(b) => Err(format!(
                "skip block {b} does not exist: the transformer has {num_layers} blocks"
            )),
            None if self.blocks.is_empty() => Err("no blocks to skip".into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for m in SkipMode::ALL {
            assert_eq!(m.name().parse::<SkipMode>().unwrap(), m);
        }
        let err = "residual".parse::<SkipMode>().unwrap_err();
        assert!(err.contains("attention_values"), "{err}");
    }

    #[test]
    fn blocks_past_the_model_are_refused() {
        let skip = LayerSkip {
            mode: SkipMode::AttentionValues,
            blocks: vec![1, 19],
        };
        assert_eq!(skip.mode_for(19), Some(SkipMode::AttentionValues));
        assert_eq!(skip.mode_for(2), None);
        assert!(skip.check(28).is_ok());
        assert!(skip.check(2).unwrap_err().contains("19"));
        let none = LayerSkip {
            mode: SkipMode::TransformerBlock,
            blocks: vec![],
        };
        assert!(none.check(28).is_err());
    }
}
