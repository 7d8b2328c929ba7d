//! A studio's prompt policy: deny rules applied to the prompt before any
//! work. It is a filter, not a classifier: it refuses what its rules name
//! and nothing else, so a studio lists the terms, patterns and names it
//! does not want and keeps the list up to date.
//!
//! The policy is a JSON file named by `GENFX_PROMPT_POLICY` (none by
//! default):
//!
//! ```json
//! {
//!   "name": "Example studio policy",
//!   "deny_terms": ["gore"],
//!   "deny_patterns": ["\\bnude\\w*"],
//!   "deny_names": ["Jane Example"],
//!   "contact": "ask legal@studio.example"
//! }
//! ```
//!
//! Terms match whole words, names match as whole words with any spacing
//! and case, patterns are regular expressions (the `regex` crate's syntax)
//! matched without regard to case. A refused prompt fails the job with a
//! message naming the policy file and the rule.

use std::path::{Path, PathBuf};

use regex::{Regex, RegexBuilder};

/// The environment variable naming the policy file.
pub const POLICY_ENV: &str = "GENFX_PROMPT_POLICY";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    deny_terms: Vec<String>,
    #[serde(default)]
    deny_patterns: Vec<String>,
    #[serde(default)]
    deny_names: Vec<String>,
    /// Who to ask, appended to refusals.
    #[serde(default)]
    contact: Option<String>,
}

/// One deny rule, compiled.
#[derive(Debug)]
struct Rule {
    /// How the refusal names it: `deny_terms[2] "gore"`.
    label: String,
    regex: Regex,
}

/// A loaded policy.
#[derive(Debug)]
pub struct Policy {
    path: PathBuf,
    name: String,
    contact: Option<String>,
    rules: Vec<Rule>,
}

fn whole_words(text: &str) -> String {
    let words: Vec<String> = text.split_whitespace().map(regex::escape).collect();
    format!(r"\b{}\b", words.join(r"\s+"))
}

impl Policy {
    /// Reads and compiles the policy at `path`; a broken policy is an error
    /// (jobs must not run unfiltered because of a typo).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("prompt policy {}: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, String> {
        let file: PolicyFile = serde_json::from_str(text)
            .map_err(|e| format!("prompt policy {}: {e}", path.display()))?;
        let build = |label: String, pattern: &str| {
            RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map(|regex| Rule {
                    label: label.clone(),
                    regex,
                })
                .map_err(|e| format!("prompt policy {}: {label}: {e}", path.display()))
        };
        let mut rules = Vec::new();
        for (kind, list, literal) in [
            ("deny_terms", &file.deny_terms, true),
            ("deny_names", &file.deny_names, true),
            ("deny_patterns", &file.deny_patterns, false),
        ] {
            for (i, entry) in list.iter().enumerate() {
                if entry.trim().is_empty() {
                    return Err(format!(
                        "prompt policy {}: {kind}[{i}] is empty",
                        path.display()
                    ));
                }
                let pattern = if literal {
                    whole_words(entry)
                } else {
                    entry.clone()
                };
                rules.push(build(format!("{kind}[{i}] {entry:?}"), &pattern)?);
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            name: file.name.unwrap_or_else(|| "prompt policy".into()),
            contact: file.contact,
            rules,
        })
    }

    /// The policy named by [`POLICY_ENV`], if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var_os(POLICY_ENV) {
            Some(p) if !p.is_empty() => Self::load(Path::new(&p)).map(Some),
            _ => Ok(None),
        }
    }

    /// `Err` with the refusal when a rule matches `prompt`.
    pub fn check(&self, prompt: &str) -> Result<(), String> {
        for rule in &self.rules {
            if let Some(m) = rule.regex.find(prompt) {
                let mut text = format!(
                    "the prompt is refused by the studio's {} ({}): rule {} matches {:?}",
                    self.name,
                    self.path.display(),
                    rule.label,
                    m.as_str()
                );
                if let Some(contact) = &self.contact {
                    text.push_str(&format!("; {contact}"));
                }
                return Err(text);
            }
        }
        Ok(())
    }
}

/// Checks the prompts of a job against the policy `GENFX_PROMPT_POLICY`
/// names (none: everything passes).
pub fn check_prompts(prompts: &[&str]) -> Result<(), String> {
    let Some(policy) = Policy::from_env()? else {
        return Ok(());
    };
    prompts.iter().try_for_each(|p| policy.check(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<Policy, String> {
        Policy::parse(json, Path::new("/studio/policy.json"))
    }

    #[test]
    fn terms_names_and_patterns_refuse_with_the_rule_named() {
        let p = policy(
            r#"{"name": "Test policy", "deny_terms": ["gore"],
                "deny_names": ["Jane  Example"], "deny_patterns": ["\\bnude\\w*"],
                "contact": "ask legal"}"#,
        )
        .unwrap();
        assert!(p.check("a red fox runs through the snow").is_ok());
        // whole words only
        assert!(p.check("a gorgeous sunset").is_ok());
        let e = p.check("GORE everywhere").unwrap_err();
        assert!(e.contains("deny_terms[0] \"gore\""), "{e}");
        assert!(
            e.contains("/studio/policy.json") && e.contains("ask legal"),
            "{e}"
        );
        let e = p.check("a portrait of jane   example smiling").unwrap_err();
        assert!(e.contains("deny_names[0]"), "{e}");
        let e = p.check("Nudes on a beach").unwrap_err();
        assert!(
            e.contains("deny_patterns[0]") && e.contains("\"Nudes\""),
            "{e}"
        );
    }

    #[test]
    fn a_broken_policy_is_an_error_not_a_pass() {
        assert!(policy("{").is_err());
        assert!(policy(r#"{"deny_patterns": ["(unclosed"]}"#)
            .unwrap_err()
            .contains("deny_patterns[0]"));
        assert!(policy(r#"{"deny_terms": [" "]}"#).is_err());
        assert!(policy(r#"{"deny_words": ["x"]}"#).is_err());
        // terms with regex characters are literal
        let p = policy(r#"{"deny_terms": ["c++"]}"#).unwrap();
        assert!(p.check("c").is_ok());
    }
}
