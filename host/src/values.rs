//! Parameter values from and to text, as on the command line and in listings.

use crate::abi::OfxName;
use crate::abi::*;
use crate::objects::{Param, ParamKind, ParamValue};
use crate::props::Value;
use crate::suites::param::text_value;
use crate::HostError;

fn bad(p: &Param, text: &str, want: &str) -> HostError {
    HostError::Usage(format!(
        "parameter {} ({}) wants {want}, got '{text}'",
        p.name, p.type_name
    ))
}

/// Parses `text` for parameter `p`: numbers (comma-separated for 2D/3D/RGBA),
/// true/false for booleans, an option label or index for choices.
pub fn parse(p: &Param, text: &str) -> Result<ParamValue, HostError> {
    let parts = || text.split(',').map(str::trim);
    match p.kind {
        ParamKind::Integer(n) => {
            let v: Vec<i32> = parts()
                .map(|s| s.parse::<i32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad(p, text, &format!("{n} integer(s)")))?;
            if v.len() != n {
                return Err(bad(p, text, &format!("{n} integer(s)")));
            }
            Ok(ParamValue::Ints(v))
        }
        ParamKind::Double(n) => {
            let v: Vec<f64> = parts()
                .map(|s| s.parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad(p, text, &format!("{n} number(s)")))?;
            if v.len() != n || v.iter().any(|x| !x.is_finite()) {
                return Err(bad(p, text, &format!("{n} finite number(s)")));
            }
            Ok(ParamValue::Doubles(v))
        }
        ParamKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(ParamValue::Ints(vec![1])),
            "0" | "false" | "no" | "off" => Ok(ParamValue::Ints(vec![0])),
            _ => Err(bad(p, text, "true or false")),
        },
        ParamKind::Choice => {
            let options = p
                .props
                .strings(kOfxParamPropChoiceOption.name())
                .unwrap_or_default();
            if let Some(i) = options.iter().position(|o| o.eq_ignore_ascii_case(text)) {
                return Ok(ParamValue::Ints(vec![i as i32]));
            }
            match text.parse::<usize>() {
                Ok(i) if i < options.len() => Ok(ParamValue::Ints(vec![i as i32])),
                _ => Err(bad(p, text, &format!("one of: {}", options.join(", ")))),
            }
        }
        ParamKind::StrChoice | ParamKind::String | ParamKind::Custom => {
            Ok(text_value(text.as_bytes()))
        }
        ParamKind::NoValue => Err(HostError::Usage(format!(
            "parameter {} ({}) has no value to set",
            p.name, p.type_name
        ))),
    }
}

/// A property value as JSON.
pub fn json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let list: Vec<J> = match value {
        Value::Int(v) => v.iter().map(|x| J::from(*x)).collect(),
        Value::Double(v) => v
            .iter()
            .map(|x| serde_json::Number::from_f64(*x).map_or(J::Null, J::Number))
            .collect(),
        Value::Str(v) => v
            .iter()
            .map(|s| J::from(s.to_string_lossy().into_owned()))
            .collect(),
        Value::Pointer(v) => v.iter().map(|x| J::from(*x as u64)).collect(),
    };
    if list.len() == 1 {
        list.into_iter().next().unwrap_or(J::Null)
    } else {
        J::Array(list)
    }
}

/// A property value as short text.
pub fn text(value: &Value) -> String {
    let items: Vec<String> = match value {
        Value::Int(v) => v.iter().map(i32::to_string).collect(),
        Value::Double(v) => v.iter().map(|x| format_double(*x)).collect(),
        Value::Str(v) => v
            .iter()
            .map(|s| format!("{:?}", s.to_string_lossy()))
            .collect(),
        Value::Pointer(v) => v.iter().map(|x| format!("{x:#x}")).collect(),
    };
    items.join(", ")
}

fn format_double(x: f64) -> String {
    if x >= f64::MAX {
        "inf".into()
    } else if x <= -f64::MAX {
        "-inf".into()
    } else {
        format!("{x}")
    }
}
