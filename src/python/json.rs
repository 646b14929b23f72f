//! Python values to JSON text, with serde_json doing the writing.
//!
//! `Serialize` is implemented for a borrowed Python object, so `response.json()` walks the
//! dicts and lists once, in Rust, and never builds an intermediate string in Python. What
//! JSON cannot hold is refused with the exception Python's own `json` module would raise:
//! `TypeError` for an unsupported type, `ValueError` for NaN, infinities and cycles.

use std::cell::RefCell;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::python::type_name::type_name;

/// Deeper nesting than this is taken for a cycle.
const MAX_DEPTH: usize = 255;

struct Value<'a, 'py> {
    object: &'a Bound<'py, PyAny>,
    depth: usize,
    failure: &'a RefCell<Option<PyErr>>,
}

impl Value<'_, '_> {
    fn fail<E: serde::ser::Error>(&self, error: PyErr) -> E {
        self.failure.borrow_mut().get_or_insert(error);
        E::custom("python error")
    }

    fn child<'a, 'py>(&'a self, object: &'a Bound<'py, PyAny>) -> Value<'a, 'py> {
        Value {
            object,
            depth: self.depth + 1,
            failure: self.failure,
        }
    }
}

impl Serialize for Value<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let object = self.object;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(PyValueError::new_err(
                "JSON data is nested too deeply (or is circular)",
            )));
        }
        if let Ok(text) = object.cast::<PyString>() {
            return match text.to_cow() {
                Ok(text) => serializer.serialize_str(&text),
                Err(error) => Err(self.fail(error)),
            };
        }
        if object.is_none() {
            return serializer.serialize_unit();
        }
        if let Ok(flag) = object.cast::<PyBool>() {
            return serializer.serialize_bool(flag.is_true());
        }
        if object.is_instance_of::<PyInt>() {
            if let Ok(number) = object.extract::<i64>() {
                return serializer.serialize_i64(number);
            }
            if let Ok(number) = object.extract::<u64>() {
                return serializer.serialize_u64(number);
            }
            return Err(self.fail(PyValueError::new_err(
                "integer too large for JSON (beyond 64 bits)",
            )));
        }
        if let Ok(number) = object.cast::<PyFloat>() {
            let value = number.value();
            if !value.is_finite() {
                return Err(self.fail(PyValueError::new_err(format!("{value} is not valid JSON"))));
            }
            return serializer.serialize_f64(value);
        }
        if let Ok(dict) = object.cast::<PyDict>() {
            let mut map = serializer.serialize_map(Some(dict.len()))?;
            for (key, value) in dict.iter() {
                let key = match json_key(&key) {
                    Ok(key) => key,
                    Err(error) => return Err(self.fail(error)),
                };
                map.serialize_entry(&key, &self.child(&value))?;
            }
            return map.end();
        }
        if let Ok(list) = object.cast::<PyList>() {
            let mut seq = serializer.serialize_seq(Some(list.len()))?;
            for item in list.iter() {
                seq.serialize_element(&self.child(&item))?;
            }
            return seq.end();
        }
        if let Ok(tuple) = object.cast::<PyTuple>() {
            let mut seq = serializer.serialize_seq(Some(tuple.len()))?;
            for item in tuple.iter() {
                seq.serialize_element(&self.child(&item))?;
            }
            return seq.end();
        }
        let type_name = type_name(object);
        Err(self.fail(PyTypeError::new_err(format!(
            "Object of type {type_name} is not JSON serializable"
        ))))
    }
}

/// JSON keys are strings; like Python's `json`, ints, floats, bools and None become strings.
fn json_key(key: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = key.cast::<PyString>() {
        return Ok(text.to_cow()?.into_owned());
    }
    if key.is_none() {
        return Ok("null".to_owned());
    }
    if let Ok(flag) = key.cast::<PyBool>() {
        return Ok(if flag.is_true() { "true" } else { "false" }.to_owned());
    }
    if key.is_instance_of::<PyInt>() || key.is_instance_of::<PyFloat>() {
        return Ok(key.str()?.to_cow()?.into_owned());
    }
    let type_name = type_name(key);
    Err(PyTypeError::new_err(format!(
        "keys must be str, int, float, bool or None, not {type_name}"
    )))
}

/// Serialises `object` as compact UTF-8 JSON.
pub fn to_json(object: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let failure = RefCell::new(None);
    let value = Value {
        object,
        depth: 0,
        failure: &failure,
    };
    let mut out = Vec::with_capacity(128);
    match serde_json::to_writer(&mut out, &value) {
        Ok(()) => Ok(out),
        Err(error) => Err(failure
            .into_inner()
            .unwrap_or_else(|| PyValueError::new_err(error.to_string()))),
    }
}
