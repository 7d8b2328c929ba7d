//! Prompts over time. A Prompt whose first line starts with a time and a
//! colon is a list of prompts, each from its time on:
//!
//! ```text
//! 0: a fox trots through fresh snow
//! 5s: the fox stops and looks up at an owl
//! 240: the owl takes off
//! ```
//!
//! A time is a count of frames (`240`, also `240f`) or of seconds (`5s`,
//! `2.5s`, rounded to the nearest frame at the shot's frame rate), counted
//! from the shot's first new frame. Times must start at 0 and increase.
//! Lines without a time continue the prompt above them. Any other prompt
//! (including one with a time on a later line only) is one prompt for the
//! whole shot, unchanged. Each window of a long shot uses the prompt in
//! effect at its middle frame.

/// One prompt and the first new frame it applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedPrompt {
    pub from_frame: usize,
    pub text: String,
}

/// A line's leading time, if it has one: `(number, unit)` and the rest.
fn leading_time(line: &str) -> Option<(&str, &str, &str)> {
    let t = line.trim_start();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if digits == 0 || !t.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let (number, rest) = t.split_at(digits);
    let unit_len = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let (unit, rest) = rest.split_at(unit_len);
    let rest = rest.trim_start().strip_prefix(':')?;
    Some((number, unit, rest.trim()))
}

fn frame_of(number: &str, unit: &str, frame_rate: f64, line: &str) -> Result<usize, String> {
    let bad = |why: &str| {
        format!(
            "prompt line '{}': {why}; write times as frames ('120: …') or seconds ('5s: …')",
            line.trim()
        )
    };
    match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" => {
            let secs: f64 = number.parse().map_err(|_| bad("not a number of seconds"))?;
            Ok((secs * frame_rate).round() as usize)
        }
        "" | "f" => number
            .parse::<usize>()
            .map_err(|_| bad("a frame count is a whole number")),
        other => Err(bad(&format!("unknown unit '{other}'"))),
    }
}

/// The prompts of `prompt` over time; a plain prompt is one entry from
/// frame 0 with the text unchanged. Errors say which line is wrong.
pub fn parse(prompt: &str, frame_rate: f64) -> Result<Vec<TimedPrompt>, String> {
    let first = prompt.lines().find(|l| !l.trim().is_empty());
    if first.and_then(leading_time).is_none() {
        return Ok(vec![TimedPrompt {
            from_frame: 0,
            text: prompt.to_string(),
        }]);
    }
    let mut out: Vec<TimedPrompt> = Vec::new();
    for line in prompt.lines().filter(|l| !l.trim().is_empty()) {
        match leading_time(line) {
            Some((number, unit, text)) => {
                let from_frame = frame_of(number, unit, frame_rate, line)?;
                if let Some(prev) = out.last() {
                    if from_frame <= prev.from_frame {
                        return Err(format!(
                            "prompt line '{}': times must increase (frame {from_frame} comes after frame {})",
                            line.trim(),
                            prev.from_frame
                        ));
                    }
                } else if from_frame != 0 {
                    return Err(format!(
                        "prompt line '{}': the first timed prompt must start at 0",
                        line.trim()
                    ));
                }
                out.push(TimedPrompt {
                    from_frame,
                    text: text.to_string(),
                });
            }
            None => {
                let last = out.last_mut().expect("the first line has a time");
                if !last.text.is_empty() {
                    last.text.push(' ');
                }
                last.text.push_str(line.trim());
            }
        }
    }
    if let Some(empty) = out.iter().find(|p| p.text.is_empty()) {
        return Err(format!(
            "the timed prompt from frame {} is empty; give it some text",
            empty.from_frame
        ));
    }
    Ok(out)
}

/// The prompt in effect at new frame `frame`.
pub fn at(prompts: &[TimedPrompt], frame: usize) -> &str {
    prompts
        .iter()
        .rev()
        .find(|p| p.from_frame <= frame)
        .or(prompts.first())
        .map_or("", |p| p.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_prompt_is_kept_whole() {
        for text in [
            "a fox in snow",
            "a fox\nin snow",
            "wide shot: a fox",
            "",
            "3 foxes run",
        ] {
            let p = parse(text, 24.0).unwrap();
            assert_eq!(
                p,
                vec![TimedPrompt {
                    from_frame: 0,
                    text: text.into()
                }]
            );
        }
    }

    #[test]
    fn times_in_frames_and_seconds() {
        let p = parse("0: a fox\n  runs\n2.5s: an owl\n100f: snow\n", 24.0).unwrap();
        let froms: Vec<usize> = p.iter().map(|p| p.from_frame).collect();
        assert_eq!(froms, [0, 60, 100]);
        assert_eq!(p[0].text, "a fox runs");
        assert_eq!(at(&p, 59), "a fox runs");
        assert_eq!(at(&p, 60), "an owl");
        assert_eq!(at(&p, 5000), "snow");
    }

    #[test]
    fn bad_timed_prompts_are_explained() {
        let err = |t: &str| parse(t, 24.0).unwrap_err();
        assert!(err("1: late").contains("start at 0"));
        assert!(err("0: a\n10: b\n5: c").contains("must increase"));
        assert!(err("0: a\n3m: b").contains("unknown unit 'm'"));
        assert!(err("0: a\n1.5: b").contains("whole number"));
        assert!(err("0:\n10: b").contains("empty"));
    }
}
