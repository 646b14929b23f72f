//! The name of a Python object's type, for error messages ("... not {type_name}").

use pyo3::prelude::*;
use pyo3::types::PyTypeMethods;

/// `type(object).__name__`, or an empty string if even that fails.
pub fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_default()
}
