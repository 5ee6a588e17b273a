//! Small JS helpers the browser driver shares: errors with a stable `code`, plain objects, the
//! clock, and describing thrown values.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::core::Instant;

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: the browser's monotonic clock (also present in workers).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;

    /// A promise, for `then` with plain functions (js-sys's `then` takes `Closure`s, which
    /// cannot free themselves when called).
    pub(crate) type Thenable;

    /// `promise.then(on_ok, on_err)`.
    #[wasm_bindgen(method)]
    pub(crate) fn then(this: &Thenable, on_ok: &JsValue, on_err: &JsValue);
}

/// The core's `now`: `performance.now()` rounded up to the millisecond, so a timer that fires on
/// time never looks early to the core.
pub(crate) fn now() -> Instant {
    let ms = performance_now().ceil();
    Instant::from_millis(if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    })
}

/// A JS `Error` with `message` and a stable machine-readable `code` property.
pub(crate) fn error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("SocklineError");
    set(&err, "code", &JsValue::from_str(code));
    err.into()
}

/// Sets `obj[key] = value`, ignoring the (impossible for plain objects) failure.
pub(crate) fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// `obj[key]`, or `undefined` when `obj` is not an object or the getter throws.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    if !obj.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A fresh plain object.
pub(crate) fn object() -> JsValue {
    Object::new().into()
}

/// A number for a JS API (`u64` counters stay exact up to 2^53).
pub(crate) fn num(n: impl Into<f64>) -> JsValue {
    JsValue::from_f64(n.into())
}

/// A `u64` as a JS number (exact up to 2^53, which no counter here reaches).
pub(crate) fn num_u64(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// A readable description of a thrown JS value (an `Error`'s message, a string, or its type).
pub(crate) fn describe(value: &JsValue) -> String {
    if let Some(err) = value.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    if let Some(s) = value.as_string() {
        return s;
    }
    value.js_typeof().as_string().unwrap_or_default() + " thrown"
}

/// `JSON.parse(text)`, or `null` if it does not parse (it always does: the core produced it).
pub(crate) fn parse_json(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap_or(JsValue::NULL)
}

/// 16 bytes from `crypto.getRandomValues` (browsers, workers, Node 19+), or from
/// `Math.random` where there is no Web Crypto (ids only need to be unique).
pub(crate) fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let crypto = get(&js_sys::global(), "crypto").dyn_into::<web_sys::Crypto>();
    let filled = crypto
        .ok()
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes
}
