//! A small argument reader: positionals, `--flag`, `--key value` (repeatable).

use std::collections::BTreeMap;

/// Options that take no value.
const FLAGS: &[&str] = &["json", "human"];
/// Options that take two values.
const PAIRS: &[&str] = &["fill"];

#[derive(Debug, Default)]
pub struct Args {
    pub positional: Vec<String>,
    options: BTreeMap<String, Vec<String>>,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Self, String> {
        let mut args = Args::default();
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            let Some(key) = a.strip_prefix("--") else {
                args.positional.push(a.clone());
                continue;
            };
            let (key, inline) = match key.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (key.to_string(), None),
            };
            let values = args.options.entry(key.clone()).or_default();
            if FLAGS.contains(&key.as_str()) {
                values.push(String::new());
                continue;
            }
            let count = if PAIRS.contains(&key.as_str()) { 2 } else { 1 };
            let mut taken = 0;
            if let Some(v) = inline {
                values.push(v);
                taken = 1;
            }
            while taken < count {
                let v = it.next().ok_or(format!("--{key} needs a value"))?;
                values.push(v.clone());
                taken += 1;
            }
        }
        Ok(args)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.options.contains_key(key)
    }

    pub fn all(&self, key: &str) -> &[String] {
        self.options.get(key).map_or(&[], |v| v.as_slice())
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.all(key).last().map(String::as_str)
    }

    pub fn parsed<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.one(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: cannot read '{v}'")),
        }
    }

    /// Options not in `known`, to refuse typos.
    pub fn check(&self, known: &[&str]) -> Result<(), String> {
        match self.options.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Args {
        Args::parse(&s.split(' ').map(String::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn options_flags_pairs() {
        let a = parse("B --set a=1 --set b=2 --json --fill x y --frames=1-3");
        assert_eq!(a.positional, ["B"]);
        assert_eq!(a.all("set"), ["a=1", "b=2"]);
        assert!(a.flag("json"));
        assert_eq!(a.all("fill"), ["x", "y"]);
        assert_eq!(a.one("frames"), Some("1-3"));
        assert!(a.check(&["set"]).is_err());
    }
}
