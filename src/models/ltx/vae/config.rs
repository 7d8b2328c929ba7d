//! The VAE's `config.json` as diffusers writes it, and the checks that decide
//! whether our implementation covers it.

use serde::Deserialize;

use super::error::{Result, VaeError};

/// Fields of diffusers' `AutoencoderKLLTXVideo` config. Defaults are
/// diffusers' own, so a config that omits a field means the same here.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub latent_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub decoder_block_out_channels: Vec<usize>,
    pub layers_per_block: Vec<usize>,
    pub decoder_layers_per_block: Vec<usize>,
    pub spatio_temporal_scaling: Vec<bool>,
    pub decoder_spatio_temporal_scaling: Vec<bool>,
    pub decoder_inject_noise: Vec<bool>,
    pub downsample_type: Vec<String>,
    pub upsample_residual: Vec<bool>,
    pub upsample_factor: Vec<usize>,
    pub timestep_conditioning: bool,
    pub patch_size: usize,
    pub patch_size_t: usize,
    pub resnet_norm_eps: f64,
    pub scaling_factor: f32,
    pub encoder_causal: bool,
    pub decoder_causal: bool,
    pub spatial_compression_ratio: Option<usize>,
    pub temporal_compression_ratio: Option<usize>,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            latent_channels: 128,
            block_out_channels: vec![128, 256, 512, 512],
            down_block_types: vec!["LTXVideoDownBlock3D".into(); 4],
            decoder_block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: vec![4, 3, 3, 3, 4],
            decoder_layers_per_block: vec![4, 3, 3, 3, 4],
            spatio_temporal_scaling: vec![true, true, true, false],
            decoder_spatio_temporal_scaling: vec![true, true, true, false],
            decoder_inject_noise: vec![false; 5],
            downsample_type: vec!["conv".into(); 4],
            upsample_residual: vec![false; 4],
            upsample_factor: vec![1; 4],
            timestep_conditioning: false,
            patch_size: 4,
            patch_size_t: 1,
            resnet_norm_eps: 1e-6,
            scaling_factor: 1.0,
            encoder_causal: true,
            decoder_causal: false,
            spatial_compression_ratio: None,
            temporal_compression_ratio: None,
        }
    }
}

/// How one encoder down block shrinks its input (LTX 0.9.5 `downsample_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownsampleKind {
    Spatial,
    Temporal,
    Spatiotemporal,
}

impl DownsampleKind {
    /// (time, height, width) stride.
    pub fn stride(self) -> [usize; 3] {
        match self {
            DownsampleKind::Spatial => [1, 2, 2],
            DownsampleKind::Temporal => [2, 1, 1],
            DownsampleKind::Spatiotemporal => [2, 2, 2],
        }
    }
}

/// Per-block plan derived from a validated config.
#[derive(Clone, Debug)]
pub struct EncoderPlan {
    /// (in channels, out channels, resnet layers, downsampling) per block.
    pub blocks: Vec<(usize, usize, usize, Option<DownsampleKind>)>,
    pub mid_channels: usize,
    pub mid_layers: usize,
}

/// One decoder up block: channels (in == out), resnet layers, and the
/// upsampler (residual, factor) when it has one.
#[derive(Clone, Debug)]
pub struct UpBlockPlan {
    pub channels: usize,
    pub layers: usize,
    pub upsampler: Option<(bool, usize)>,
}

#[derive(Clone, Debug)]
pub struct DecoderPlan {
    pub mid_channels: usize,
    pub mid_layers: usize,
    pub up_blocks: Vec<UpBlockPlan>,
    pub out_block_channels: usize,
}

/// An error naming the first zero in `values` (a channel or layer count of
/// zero is never a real VAE and would divide by zero further on).
fn zero_entry(name: &str, values: &[usize]) -> Result<()> {
    match values.iter().position(|&v| v == 0) {
        Some(i) => Err(VaeError::UnsupportedConfig(format!(
            "{name}[{i}] is 0 in {values:?}; every entry must be a positive count (fix the VAE's config.json)"
        ))),
        None => Ok(()),
    }
}

impl VaeConfig {
    pub fn from_json(text: &str, path: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| VaeError::ConfigParse {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Spatial and temporal compression this architecture actually performs.
    pub fn compression(&self) -> Result<(usize, usize)> {
        let plan = self.encoder_plan()?;
        let mut spatial = self.patch_size;
        let mut temporal = self.patch_size_t;
        for (_, _, _, kind) in &plan.blocks {
            if let Some(kind) = kind {
                let [st, sh, _] = kind.stride();
                temporal *= st;
                spatial *= sh;
            }
        }
        Ok((spatial, temporal))
    }

    /// The encoder's blocks, or why this config is outside what we implement
    /// (LTX-Video 0.9.5+ encoders: `LTXVideo095DownBlock3D` throughout).
    pub fn encoder_plan(&self) -> Result<EncoderPlan> {
        let unsupported = |m: String| Err(VaeError::UnsupportedConfig(m));
        if self.patch_size == 0 || self.patch_size_t != 1 {
            return unsupported(format!(
                "patch_size {} / patch_size_t {} (LTX-Video uses 4 / 1)",
                self.patch_size, self.patch_size_t
            ));
        }
        let n = self.down_block_types.len();
        if n == 0
            || self
                .down_block_types
                .iter()
                .any(|t| t != "LTXVideo095DownBlock3D")
        {
            return unsupported(format!(
                "down_block_types {:?}: only the 0.9.5+ layout (LTXVideo095DownBlock3D) is implemented",
                self.down_block_types
            ));
        }
        if self.block_out_channels.len() != n + 1
            || self.layers_per_block.len() != n + 1
            || self.spatio_temporal_scaling.len() < n
            || self.downsample_type.len() < n
        {
            return unsupported(format!(
                "{n} down blocks need {} block_out_channels and layers_per_block and {n} scaling flags and downsample types",
                n + 1
            ));
        }
        // Every channel count is a divisor below (space-to-depth volumes,
        // channel ratios): check all of them before any arithmetic.
        zero_entry("block_out_channels", &self.block_out_channels)?;
        let mut blocks = Vec::with_capacity(n);
        for i in 0..n {
            let (cin, cout) = (self.block_out_channels[i], self.block_out_channels[i + 1]);
            let kind = if self.spatio_temporal_scaling[i] {
                let kind = match self.downsample_type[i].as_str() {
                    "spatial" => DownsampleKind::Spatial,
                    "temporal" => DownsampleKind::Temporal,
                    "spatiotemporal" => DownsampleKind::Spatiotemporal,
                    other => {
                        return unsupported(format!(
                            "downsample_type `{other}` (strided-conv downsampling)"
                        ))
                    }
                };
                let volume: usize = kind.stride().iter().product();
                if cout % volume != 0 || (cin * volume) % cout != 0 {
                    return unsupported(format!(
                        "down block {i}: {cin} -> {cout} channels do not divide into a {volume}-voxel space-to-depth"
                    ));
                }
                Some(kind)
            } else {
                if cin != cout {
                    return unsupported(format!(
                        "down block {i} changes channels without downsampling"
                    ));
                }
                None
            };
            blocks.push((cin, cout, self.layers_per_block[i], kind));
        }
        Ok(EncoderPlan {
            blocks,
            mid_channels: self.block_out_channels[n],
            mid_layers: self.layers_per_block[n],
        })
    }

    /// The decoder's blocks (mirroring diffusers' reversed lists), or why
    /// this config is outside what we implement.
    pub fn decoder_plan(&self) -> Result<DecoderPlan> {
        let unsupported = |m: String| Err(VaeError::UnsupportedConfig(m));
        let m = self.decoder_block_out_channels.len();
        if m == 0
            || self.decoder_layers_per_block.len() != m + 1
            || self.decoder_spatio_temporal_scaling.len() < m
            || self.upsample_residual.len() < m
            || self.upsample_factor.len() < m
            || self.decoder_inject_noise.len() < m + 1
        {
            return unsupported(format!(
                "{m} decoder blocks need {} decoder_layers_per_block and inject-noise flags and {m} scaling flags, residual flags and factors",
                m + 1
            ));
        }
        zero_entry(
            "decoder_block_out_channels",
            &self.decoder_block_out_channels,
        )?;
        if self.decoder_inject_noise.iter().any(|&b| b) {
            return unsupported("decoder_inject_noise (0.9.1 layout; 0.9.5+ has none)".into());
        }
        let rev = |v: &[usize]| -> Vec<usize> { v[..m].iter().rev().copied().collect() };
        let channels = rev(&self.decoder_block_out_channels);
        let factors = rev(&self.upsample_factor);
        let residual: Vec<bool> = self.upsample_residual[..m].iter().rev().copied().collect();
        let scaling: Vec<bool> = self.decoder_spatio_temporal_scaling[..m]
            .iter()
            .rev()
            .copied()
            .collect();
        let layers: Vec<usize> = self
            .decoder_layers_per_block
            .iter()
            .rev()
            .copied()
            .collect();

        let mut output = channels[0];
        let mid_channels = output;
        let mut up_blocks = Vec::with_capacity(m);
        for i in 0..m {
            let f = factors[i];
            if f == 0 || output % f != 0 || channels[i] % f != 0 {
                return unsupported(format!(
                    "upsample_factor {f} does not divide the channels of up block {i}"
                ));
            }
            let input = output / f;
            output = channels[i] / f;
            if input != output {
                // diffusers' own up block cannot run this either once the
                // decoder is timestep-conditioned (its conv_in gets the raw
                // timestep); no LTX checkpoint has it.
                return unsupported(format!(
                    "up block {i} changes channels ({input} -> {output})"
                ));
            }
            let upsampler = if scaling[i] {
                let cin = output * f;
                if (cin * 8) % f != 0 || (cin * 8 / f) % 8 != 0 {
                    return unsupported(format!(
                        "up block {i}: {cin} channels cannot depth-to-space by 2x2x2"
                    ));
                }
                if residual[i] && (cin % 8 != 0 || 8 % f != 0) {
                    return unsupported(format!(
                        "up block {i}: residual upsampling needs channels divisible by 8 (got {cin}) and factor dividing 8"
                    ));
                }
                Some((residual[i], f))
            } else {
                None
            };
            up_blocks.push(UpBlockPlan {
                channels: output,
                layers: layers[i + 1],
                upsampler,
            });
        }
        Ok(DecoderPlan {
            mid_channels,
            mid_layers: layers[0],
            up_blocks,
            out_block_channels: output,
        })
    }

    /// Checks the whole config and returns (spatial, temporal) compression.
    pub fn validate(&self) -> Result<(usize, usize)> {
        if self.in_channels == 0 || self.out_channels == 0 || self.latent_channels == 0 {
            return Err(VaeError::UnsupportedConfig(
                "zero in/out/latent channels".into(),
            ));
        }
        let (spatial, temporal) = self.compression()?;
        let plan = self.decoder_plan()?;
        let ups = plan
            .up_blocks
            .iter()
            .filter(|b| b.upsampler.is_some())
            .count();
        let decoder_spatial = self.patch_size << ups;
        let decoder_temporal = self.patch_size_t << ups;
        if (decoder_spatial, decoder_temporal) != (spatial, temporal) {
            return Err(VaeError::UnsupportedConfig(format!(
                "encoder compresses {spatial}x/{temporal}x but decoder expands {decoder_spatial}x/{decoder_temporal}x"
            )));
        }
        for (declared, actual, what) in [
            (self.spatial_compression_ratio, spatial, "spatial"),
            (self.temporal_compression_ratio, temporal, "temporal"),
        ] {
            if let Some(declared) = declared {
                if declared != actual {
                    return Err(VaeError::UnsupportedConfig(format!(
                        "{what}_compression_ratio {declared} disagrees with the blocks ({actual})"
                    )));
                }
            }
        }
        if !self.scaling_factor.is_finite() || self.scaling_factor == 0.0 {
            return Err(VaeError::Statistics(format!(
                "scaling_factor {}",
                self.scaling_factor
            )));
        }
        Ok((spatial, temporal))
    }
}
