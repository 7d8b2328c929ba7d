//! The `genfx` command line.

mod args;
mod detect;
mod generate;
mod list;
mod render;

pub use args::Args;

pub const USAGE: &str = "\
usage:
  genfx list BUNDLE [--json] [--host natron|resolve]
      Each plugin's id, label, grouping, contexts, clips and parameters.

  genfx render BUNDLE --plugin ID --context CONTEXT --frames A-B --out DIR
               [--set NAME=VALUE ...] [--source [CLIP=]DIR ...] [--source-first N]
               [--format png|exr] [--host natron|resolve] [--size WxH] [--fps F]
               [--text-encoder PATH]
      Renders frames A..B through the plugin, headless. Input clips read image
      folders (the Nth file in name order is frame N + --source-first, default 0);
      any frame the plugin asks for is answered. PNG output is 16-bit.

  genfx generate --model PATH --prompt TEXT --out DIR [--text-encoder PATH]
               [--negative TEXT] [--seed N]
               [--frames N] [--width W] [--height H] [--fps F] [--steps N | --quality Q]
               [--guidance G] [--strength S] [--format png|exr] [--context N]
               [--extend-forward DIR | --extend-backward DIR | --fill BEFORE_DIR AFTER_DIR]
               [--cache-max-gb N] [--window N] [--overlap N] [--drift S]
      Runs a GenFX job directly on the engine, without an OpenFX host. --model is
      an LTX-Video checkpoint (.safetensors, T5 text_encoder/ and tokenizer/
      beside it), a diffusers model folder or a Hugging Face repository name.
      --frames
      counts new frames only; --context (default 9) is how many real frames
      next to the seam condition an extend or fill. Finished shots are kept in
      GENFX_CACHE_DIR (off: none), at most --cache-max-gb gigabytes
      (default GENFX_CACHE_MAX_GB or 20; 0: no limit), least recently used
      removed first. Frames are written whole or not at all.
      --frames goes up to 1441 (a minute at 24 fps); a shot longer than one
      pass of the model is made in overlapping windows (--window frames, 8k+1
      up to 257, default the longest memory allows; --overlap frames shared,
      8k+1 from 9, default 17; --drift 0..1, default 0.5, pulls each window's
      colour statistics to the first's), each finished window kept in the
      cache folder so a killed run resumes where it stopped. Frames are
      written as their window finishes. A prompt whose first line starts
      '0:' changes over time: lines 'T: text', T in frames or seconds ('5s').

  genfx detect FILE|FOLDER ... [--human] [--key HEX]
      Whether pictures (PNG, EXR, JPEG) and videos (through ffmpeg, when it is on
      the PATH) carry the invisible mark GenFX puts in every generated frame. One
      JSON line per file (file, marked, false_positive_rate, payload, z, frames);
      a folder's pictures are also pooled as one shot (a line with \"shot\").
      --human prints sentences instead. Exit status 0 when every input is
      marked, 1 when some are not.

  --text-encoder PATH: the T5 text encoder, a single file (t5xxl_fp16.safetensors,
      t5xxl_fp8_e4m3fn.safetensors; a T5 tokenizer.json or tokenizer/spiece.model
      beside it) or a folder (text_encoder/ of PixArt-alpha/PixArt-XL-2-1024-MS).
      Default: found beside the model, in ComfyUI's models/text_encoders/ or in
      the Hugging Face cache.

Exit status: 0 on success, 1 when the plugin or engine failed, 2 on bad usage.";

/// Runs the command line; returns the exit status.
pub fn main(argv: Vec<String>) -> i32 {
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("genfx: {e}\n\n{USAGE}");
            return 2;
        }
    };
    let result = match command.as_str() {
        "list" => list::run(args),
        "render" => render::run(args),
        "generate" => generate::run(args),
        "detect" => detect::run(args),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return 0;
        }
        other => Err(Failure::Usage(format!("unknown command '{other}'"))),
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Usage(e)) => {
            eprintln!("genfx: {e}\n\n{USAGE}");
            2
        }
        Err(Failure::Failed(e)) => {
            eprintln!("genfx: error: {e}");
            1
        }
    }
}

/// How a command failed.
pub enum Failure {
    Usage(String),
    Failed(String),
}

impl From<crate::HostError> for Failure {
    fn from(e: crate::HostError) -> Self {
        match e {
            crate::HostError::Usage(m) => Failure::Usage(m),
            other => Failure::Failed(other.to_string()),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}
