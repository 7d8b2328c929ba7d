//! Every GenFX parameter, described as data: one table drives describe,
//! reading values and the tests.

use crate::effects::EffectKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Shot,
    Picture,
    Files,
}

impl Page {
    pub const ALL: [Page; 3] = [Page::Shot, Page::Picture, Page::Files];

    pub fn name(self) -> &'static str {
        match self {
            Page::Shot => "pageShot",
            Page::Picture => "pagePicture",
            Page::Files => "pageFiles",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Page::Shot => "Shot",
            Page::Picture => "Picture",
            Page::Files => "Files",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextMode {
    MultiLine,
    Directory,
    /// An existing file, picked with the host's file browser. OpenFX has no
    /// "file or folder" mode, so a parameter that takes both is a file path:
    /// the browser then picks a file, and the field still accepts a typed
    /// folder.
    File,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Text {
        mode: TextMode,
        default: &'static str,
    },
    Int {
        default: i32,
        min: i32,
        max: i32,
        display_min: i32,
        display_max: i32,
    },
    Double {
        default: f64,
        min: f64,
        max: f64,
        display_min: f64,
        display_max: f64,
        increment: f64,
    },
    Choice {
        options: &'static [&'static str],
        default: usize,
    },
    /// A push button: no value, only InstanceChanged when pressed.
    Button,
    /// A read-only line of text the plugin writes (what the shot is doing);
    /// never saved, never undone, and changing it asks for no render.
    Status,
    /// A hidden integer the plugin bumps when a shot it started has
    /// finished: it evaluates on change, so the host renders the frames
    /// again (the spec gives a plug-in no other way to invalidate them).
    /// Saved with the project, never an undo step.
    Trigger,
}

impl Kind {
    /// Whether the user sets this parameter (as opposed to the plugin
    /// writing it, or a button).
    pub fn is_setting(self) -> bool {
        !matches!(self, Kind::Button | Kind::Status | Kind::Trigger)
    }
}

/// Which effects show a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uses {
    All,
    ExtendAndFill,
    ExtendOnly,
}

impl Uses {
    pub fn includes(self, kind: EffectKind) -> bool {
        match self {
            Uses::All => true,
            Uses::ExtendAndFill => kind != EffectKind::Generate,
            Uses::ExtendOnly => kind == EffectKind::Extend,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    /// Script name; stable, used in saved projects.
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub page: Page,
    pub uses: Uses,
    pub kind: Kind,
}

pub const PROMPT: &str = "prompt";
pub const NEGATIVE_PROMPT: &str = "negativePrompt";
pub const SEED: &str = "seed";
pub const LENGTH: &str = "length";
pub const CONTEXT_FRAMES: &str = "contextFrames";
pub const WINDOW: &str = "windowLength";
pub const WINDOW_OVERLAP: &str = "windowOverlap";
pub const DRIFT: &str = "driftMatching";
pub const STRENGTH: &str = "strength";
pub const DIRECTION: &str = "direction";
pub const QUALITY: &str = "quality";
pub const STEPS: &str = "steps";
pub const GUIDANCE: &str = "guidance";
pub const RESOLUTION: &str = "resolution";
pub const FRAMING: &str = "framing";
pub const COLOUR: &str = "colour";
pub const MODEL: &str = "model";
pub const TEXT_ENCODER: &str = "textEncoder";
pub const CACHE_FOLDER: &str = "cacheFolder";
pub const CACHE_SIZE: &str = "cacheSizeGB";
pub const GENERATE: &str = "generate";
pub const STATUS: &str = "status";
pub const WHEN: &str = "whenToGenerate";
pub const SHOTS_READY: &str = "shotsReady";

pub const QUALITY_OPTIONS: &[&str] = &["Draft", "Standard", "High", "Custom steps"];
pub const DIRECTION_OPTIONS: &[&str] = &["Forward (after the clip)", "Backward (before the clip)"];
pub const FRAMING_OPTIONS: &[&str] = &["Crop to fill", "Pad to fit"];
pub const COLOUR_OPTIONS: &[&str] = &["Auto", "Linear", "sRGB", "Rec.709", "None"];
pub const WHEN_OPTIONS: &[&str] = &["On Generate button", "On first render"];

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: PROMPT,
        label: "Prompt",
        hint: "What the shot shows and how it moves. Long prompts are truncated by the model's tokenizer.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Text { mode: TextMode::MultiLine, default: "" },
    },
    ParamSpec {
        name: NEGATIVE_PROMPT,
        label: "Negative prompt",
        hint: "What the shot should avoid (used by models that sample with guidance).",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Text {
            mode: TextMode::MultiLine,
            default: "worst quality, inconsistent motion, blurry, jittery, distorted",
        },
    },
    ParamSpec {
        name: SEED,
        label: "Seed",
        hint: "Noise seed. The same seed, prompt and inputs give the same shot on any machine.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Int { default: 0, min: 0, max: i32::MAX, display_min: 0, display_max: 100_000 },
    },
    ParamSpec {
        name: LENGTH,
        label: "Length",
        hint: "New frames to generate; real frames are never counted or shown again. \
               Fill uses the gap or transition length instead when there is one. \
               Up to 1441 (60 s at 24 fps): a shot longer than the model makes in one pass \
               is made in overlapping windows, each continuing the one before, and its first \
               frames can be viewed while later windows are made.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Int { default: 97, min: 1, max: 1441, display_min: 9, display_max: 1441 },
    },
    ParamSpec {
        name: WINDOW,
        label: "Window",
        hint: "Frames the model makes in one pass of a shot longer than that (8k+1, 25 to 257). \
               0 chooses the longest the model, resolution and free memory allow.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Int { default: 0, min: 0, max: 257, display_min: 0, display_max: 257 },
    },
    ParamSpec {
        name: WINDOW_OVERLAP,
        label: "Window overlap",
        hint: "Frames two neighbouring windows share and blend across (8k+1 from 9, under half \
               the window). 0 chooses 17, fewer for short windows.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Int { default: 0, min: 0, max: 129, display_min: 0, display_max: 129 },
    },
    ParamSpec {
        name: DRIFT,
        label: "Drift matching",
        hint: "How strongly each window's colour and brightness statistics are pulled to the \
               reference (the real frames of Extend and Fill, the first window of Generate), \
               against drift over a long shot. 0 leaves each window as made.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Double { default: 0.5, min: 0.0, max: 1.0, display_min: 0.0, display_max: 1.0, increment: 0.05 },
    },
    ParamSpec {
        name: CONTEXT_FRAMES,
        label: "Context frames",
        hint: "How many real frames condition the generation: those next to the seam (Extend, Fill), \
               or the first frames of the Reference (Generate; a still gives one). \
               The model takes 8k+1 of them and says so when it uses fewer.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Int { default: 9, min: 1, max: 257, display_min: 1, display_max: 33 },
    },
    ParamSpec {
        name: STRENGTH,
        label: "Strength",
        hint: "How strictly the generated frames follow the real context or Reference frames (1 = exactly).",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Double { default: 1.0, min: 0.0, max: 1.0, display_min: 0.0, display_max: 1.0, increment: 0.05 },
    },
    ParamSpec {
        name: DIRECTION,
        label: "Direction",
        hint: "Continue the clip after its last frame, or lead into it before its first frame.",
        page: Page::Shot,
        uses: Uses::ExtendOnly,
        kind: Kind::Choice { options: DIRECTION_OPTIONS, default: 0 },
    },
    ParamSpec {
        name: GENERATE,
        label: "Generate",
        hint: "Generate the shot for the current settings, in the background. Until then, \
               interactive renders show the real frames next to the seam (Extend, Fill) or a \
               striped placeholder (Generate).",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Button,
    },
    ParamSpec {
        name: STATUS,
        label: "Status",
        hint: "What the shot for the current settings is doing: idle, queued, generating, cached or failed.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Status,
    },
    ParamSpec {
        name: WHEN,
        label: "When to generate",
        hint: "In an interactive host: only when Generate is pressed, or as soon as a frame of a \
               shot that is not cached is rendered. Background renderers (render farms, \
               NatronRenderer, genfx render) always generate on the first render; thumbnails \
               and draft renders never do.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Choice { options: WHEN_OPTIONS, default: 0 },
    },
    ParamSpec {
        name: SHOTS_READY,
        label: "Shots ready",
        hint: "Counts finished shots so the host renders their frames again.",
        page: Page::Shot,
        uses: Uses::All,
        kind: Kind::Trigger,
    },
    ParamSpec {
        name: QUALITY,
        label: "Quality",
        hint: "Sampling effort: the model's own schedules, or an explicit number of steps. Above Draft, dev models also use spatio-temporal guidance (a third, slower pass per step).",
        page: Page::Picture,
        uses: Uses::All,
        kind: Kind::Choice { options: QUALITY_OPTIONS, default: 1 },
    },
    ParamSpec {
        name: STEPS,
        label: "Steps",
        hint: "Denoising steps when Quality is \"Custom steps\".",
        page: Page::Picture,
        uses: Uses::All,
        kind: Kind::Int { default: 30, min: 1, max: 500, display_min: 1, display_max: 100 },
    },
    ParamSpec {
        name: GUIDANCE,
        label: "Guidance",
        hint: "How strongly the prompt steers the shot (classifier-free guidance scale; 1 disables it).",
        page: Page::Picture,
        uses: Uses::All,
        kind: Kind::Double { default: 3.0, min: 1.0, max: 30.0, display_min: 1.0, display_max: 10.0, increment: 0.1 },
    },
    ParamSpec {
        name: RESOLUTION,
        label: "Resolution",
        hint: "Long side of the working picture in pixels (rounded to a multiple of 32); \
               the result is scaled back to the project format.",
        page: Page::Picture,
        uses: Uses::All,
        kind: Kind::Int { default: 768, min: 64, max: 2048, display_min: 256, display_max: 1280 },
    },
    ParamSpec {
        name: FRAMING,
        label: "Framing",
        hint: "How frames that do not match the working aspect fit it: crop the edges or pad with black.",
        page: Page::Picture,
        uses: Uses::All,
        kind: Kind::Choice { options: FRAMING_OPTIONS, default: 0 },
    },
    ParamSpec {
        name: COLOUR,
        label: "Colour",
        hint: "How the host's pixel values are encoded. Auto: linear in Natron and most compositors, \
               display (no conversion) in DaVinci Resolve.",
        page: Page::Picture,
        uses: Uses::All,
        kind: Kind::Choice { options: COLOUR_OPTIONS, default: 0 },
    },
    ParamSpec {
        name: MODEL,
        label: "Model",
        hint: "An LTX-Video checkpoint file (e.g. ltxv-2b-0.9.8-distilled.safetensors, with the T5 \
               text_encoder/ and tokenizer/ folders beside it), or a folder in the diffusers layout: \
               pick its model_index.json, or type the folder.",
        page: Page::Files,
        uses: Uses::All,
        kind: Kind::Text { mode: TextMode::File, default: "" },
    },
    ParamSpec {
        name: TEXT_ENCODER,
        label: "Text encoder",
        hint: "The T5 v1.1 XXL text encoder: one file (ComfyUI's t5xxl_fp16.safetensors or \
               t5xxl_fp8_e4m3fn.safetensors, with a T5 tokenizer.json or tokenizer/spiece.model \
               beside it) or a folder (PixArt-alpha/PixArt-XL-2-1024-MS's text_encoder/, its \
               tokenizer/ beside it). Empty: found beside the model, in ComfyUI's \
               models/text_encoders/, or in the Hugging Face cache.",
        page: Page::Files,
        uses: Uses::All,
        kind: Kind::Text { mode: TextMode::File, default: "" },
    },
    ParamSpec {
        name: CACHE_FOLDER,
        label: "Cache folder",
        hint: "Folder where finished shots are kept so they are not generated again. \
               Empty: the per-user cache folder; \"off\": memory only.",
        page: Page::Files,
        uses: Uses::All,
        kind: Kind::Text { mode: TextMode::Directory, default: "" },
    },
    ParamSpec {
        name: CACHE_SIZE,
        label: "Cache size (GB)",
        hint: "Most the cache folder may hold; the least recently used shots are removed \
               beyond it (only files GenFX wrote). 0: no limit.",
        page: Page::Files,
        uses: Uses::All,
        kind: Kind::Double { default: 20.0, min: 0.0, max: 1.0e6, display_min: 0.0, display_max: 500.0, increment: 1.0 },
    },
];

/// The parameters one effect shows, in table order.
pub fn for_effect(kind: EffectKind) -> impl Iterator<Item = &'static ParamSpec> {
    PARAMS.iter().filter(move |p| p.uses.includes(kind))
}

pub fn spec(name: &str) -> Option<&'static ParamSpec> {
    PARAMS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_not_page_names() {
        let mut seen = HashSet::new();
        for p in PARAMS {
            assert!(seen.insert(p.name), "duplicate {}", p.name);
            assert!(
                !p.label.is_empty() && !p.hint.is_empty(),
                "{} needs a label and hint",
                p.name
            );
            assert!(p.name.is_ascii() && !p.name.contains(' '));
        }
        for page in Page::ALL {
            assert!(!seen.contains(page.name()));
        }
    }

    #[test]
    fn numeric_defaults_lie_in_display_ranges_inside_ranges() {
        for p in PARAMS {
            match p.kind {
                Kind::Int {
                    default,
                    min,
                    max,
                    display_min,
                    display_max,
                } => {
                    assert!(
                        min <= display_min && display_min < display_max && display_max <= max,
                        "{}",
                        p.name
                    );
                    assert!(
                        display_min <= default && default <= display_max,
                        "{}",
                        p.name
                    );
                }
                Kind::Double {
                    default,
                    min,
                    max,
                    display_min,
                    display_max,
                    increment,
                } => {
                    assert!(
                        min <= display_min && display_min < display_max && display_max <= max,
                        "{}",
                        p.name
                    );
                    assert!(
                        display_min <= default && default <= display_max,
                        "{}",
                        p.name
                    );
                    assert!(increment > 0.0);
                }
                Kind::Choice { options, default } => assert!(default < options.len(), "{}", p.name),
                Kind::Text { .. } | Kind::Button | Kind::Status | Kind::Trigger => {}
            }
        }
    }

    #[test]
    fn each_effect_shows_what_the_design_lists() {
        let names = |k| for_effect(k).map(|p| p.name).collect::<HashSet<_>>();
        let common = [
            PROMPT,
            NEGATIVE_PROMPT,
            SEED,
            MODEL,
            TEXT_ENCODER,
            QUALITY,
            STEPS,
            GUIDANCE,
            RESOLUTION,
            LENGTH,
            COLOUR,
            FRAMING,
            CACHE_FOLDER,
            GENERATE,
            STATUS,
            WHEN,
            SHOTS_READY,
        ];
        for kind in [EffectKind::Generate, EffectKind::Extend, EffectKind::Fill] {
            let got = names(kind);
            for n in common {
                assert!(got.contains(n), "{kind:?} lacks {n}");
            }
        }
        assert!(names(EffectKind::Generate).contains(CONTEXT_FRAMES));
        assert!(
            names(EffectKind::Fill).contains(STRENGTH)
                && !names(EffectKind::Fill).contains(DIRECTION)
        );
        assert!(names(EffectKind::Extend).contains(DIRECTION));
        assert_eq!(
            COLOUR_OPTIONS,
            ["Auto", "Linear", "sRGB", "Rec.709", "None"]
        );
    }
}
