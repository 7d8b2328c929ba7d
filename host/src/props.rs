//! Typed property sets: what every OpenFX object (host, effect, clip, image,
//! parameter, action arguments) is described by.

use crate::registry::Registry;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::Arc;

/// The values of one property. The type is fixed when the property is made.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(Vec<i32>),
    Double(Vec<f64>),
    Str(Vec<CString>),
    Pointer(Vec<usize>),
}

impl Value {
    pub fn len(&self) -> usize {
        match self {
            Value::Int(v) => v.len(),
            Value::Double(v) => v.len(),
            Value::Str(v) => v.len(),
            Value::Pointer(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Str(_) => "string",
            Value::Pointer(_) => "pointer",
        }
    }

    pub fn strs(items: &[&str]) -> Value {
        Value::Str(items.iter().map(|s| cstring(s)).collect())
    }

    pub fn str(item: &str) -> Value {
        Value::strs(&[item])
    }
}

/// A C string from Rust text; an interior NUL cuts the text there.
pub fn cstring(text: &str) -> CString {
    let bytes = text.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

#[derive(Clone, Debug)]
struct Property {
    value: Value,
    /// What `propReset` restores.
    default: Value,
}

/// Why a property access failed; mapped to an OpenFX status at the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropError {
    Unknown,
    BadIndex,
    WrongType,
}

/// A named set of typed properties. Shared with the plugin by address.
#[derive(Debug)]
pub struct PropertySet {
    /// What the set describes, for messages ("host", "clip Source", ...).
    pub what: String,
    props: Mutex<BTreeMap<String, Property>>,
}

pub static PROPERTY_SETS: Registry<PropertySet> = Registry::new();

impl PropertySet {
    pub fn new(what: impl Into<String>) -> Arc<Self> {
        let set = Arc::new(Self {
            what: what.into(),
            props: Mutex::new(BTreeMap::new()),
        });
        PROPERTY_SETS.add(&set);
        set
    }

    /// A new set holding a copy of `other`'s properties.
    pub fn copy_of(what: impl Into<String>, other: &PropertySet) -> Arc<Self> {
        let set = Self::new(what);
        *set.props.lock() = other.props.lock().clone();
        set
    }

    /// The handle handed to the plugin.
    pub fn handle(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Defines (or redefines) `name` with `value` as its value and default.
    pub fn define(&self, name: &str, value: Value) {
        self.props.lock().insert(
            name.to_string(),
            Property {
                default: value.clone(),
                value,
            },
        );
    }

    /// Removes `name`, so the plugin finds it missing (hostile tests).
    pub fn remove(&self, name: &str) {
        self.props.lock().remove(name);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.props.lock().contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.props.lock().keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Value> {
        self.props.lock().get(name).map(|p| p.value.clone())
    }

    /// Replaces the whole value of an existing property, keeping its type.
    pub fn set(&self, name: &str, value: Value) -> Result<(), PropError> {
        let mut props = self.props.lock();
        let prop = props.get_mut(name).ok_or(PropError::Unknown)?;
        if std::mem::discriminant(&prop.value) != std::mem::discriminant(&value) {
            return Err(PropError::WrongType);
        }
        prop.value = value;
        Ok(())
    }

    /// Sets one element; `index == len` appends (variable-dimension props).
    pub fn set_at(&self, name: &str, index: usize, value: Value) -> Result<(), PropError> {
        let mut props = self.props.lock();
        let prop = props.get_mut(name).ok_or(PropError::Unknown)?;
        fn put<T: Clone>(v: &mut Vec<T>, i: usize, x: &[T]) -> Result<(), PropError> {
            let x = x.first().ok_or(PropError::BadIndex)?.clone();
            match i.cmp(&v.len()) {
                std::cmp::Ordering::Less => v[i] = x,
                std::cmp::Ordering::Equal => v.push(x),
                std::cmp::Ordering::Greater => return Err(PropError::BadIndex),
            }
            Ok(())
        }
        match (&mut prop.value, &value) {
            (Value::Int(v), Value::Int(x)) => put(v, index, x),
            (Value::Double(v), Value::Double(x)) => put(v, index, x),
            (Value::Str(v), Value::Str(x)) => put(v, index, x),
            (Value::Pointer(v), Value::Pointer(x)) => put(v, index, x),
            _ => Err(PropError::WrongType),
        }
    }

    /// Runs `f` on the stored value of `name` without copying it, so string
    /// pointers handed to the plugin point into the set itself.
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&Value) -> R) -> Result<R, PropError> {
        let props = self.props.lock();
        let prop = props.get(name).ok_or(PropError::Unknown)?;
        Ok(f(&prop.value))
    }

    pub fn reset(&self, name: &str) -> Result<(), PropError> {
        let mut props = self.props.lock();
        let prop = props.get_mut(name).ok_or(PropError::Unknown)?;
        prop.value = prop.default.clone();
        Ok(())
    }

    pub fn dimension(&self, name: &str) -> Result<usize, PropError> {
        self.with(name, Value::len)
    }

    // Typed readers for the host's own use.

    pub fn int(&self, name: &str, index: usize) -> Option<i32> {
        match self.get(name)? {
            Value::Int(v) => v.get(index).copied(),
            _ => None,
        }
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i32>> {
        match self.get(name)? {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }

    pub fn double(&self, name: &str, index: usize) -> Option<f64> {
        match self.get(name)? {
            Value::Double(v) => v.get(index).copied(),
            _ => None,
        }
    }

    pub fn doubles(&self, name: &str) -> Option<Vec<f64>> {
        match self.get(name)? {
            Value::Double(v) => Some(v),
            _ => None,
        }
    }

    pub fn string(&self, name: &str, index: usize) -> Option<String> {
        match self.get(name)? {
            Value::Str(v) => v.get(index).map(|s| s.to_string_lossy().into_owned()),
            _ => None,
        }
    }

    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        match self.get(name)? {
            Value::Str(v) => Some(v.iter().map(|s| s.to_string_lossy().into_owned()).collect()),
            _ => None,
        }
    }

    pub fn pointer(&self, name: &str, index: usize) -> Option<usize> {
        match self.get(name)? {
            Value::Pointer(v) => v.get(index).copied(),
            _ => None,
        }
    }

    /// Sets or defines `name`, for the host's own writes.
    pub fn put(&self, name: &str, value: Value) {
        let mut props = self.props.lock();
        match props.get_mut(name) {
            Some(prop) => prop.value = value,
            None => {
                props.insert(
                    name.to_string(),
                    Property {
                        default: value.clone(),
                        value,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_access_and_errors() {
        let set = PropertySet::new("test");
        set.define("a", Value::Int(vec![1, 2]));
        assert_eq!(set.int("a", 1), Some(2));
        assert_eq!(
            set.set_at("a", 0, Value::Double(vec![1.0])),
            Err(PropError::WrongType)
        );
        assert_eq!(
            set.set_at("a", 3, Value::Int(vec![9])),
            Err(PropError::BadIndex)
        );
        set.set_at("a", 2, Value::Int(vec![9])).unwrap();
        assert_eq!(set.dimension("a"), Ok(3));
        set.reset("a").unwrap();
        assert_eq!(set.ints("a"), Some(vec![1, 2]));
        assert_eq!(set.dimension("missing"), Err(PropError::Unknown));
        assert!(PROPERTY_SETS.get(set.handle()).is_some());
    }
}
