//! [`Payload`] ↔ `serde_json`, for the native face: the core keeps payloads as JSON text and
//! never links `serde_json`; native code decodes them here.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::core::Payload;

impl Payload {
    /// Wraps raw JSON text (already valid: `serde_json` checked it).
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Payload::from_valid(String::from(Box::<str>::from(raw)))
    }

    /// Encodes `value`.
    pub fn from_value(value: &Value) -> Self {
        // `Value`'s `Display` is its compact JSON encoding and cannot fail.
        Payload::from_valid(value.to_string())
    }

    /// Decodes the payload as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.json())
    }

    /// Decodes the payload as a `Value` (`Null` if it nests deeper than serde_json allows).
    pub fn to_value(&self) -> Value {
        self.decode().unwrap_or(Value::Null)
    }
}
