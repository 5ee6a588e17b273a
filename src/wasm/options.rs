//! Reading the JS `ClientOptions` object into a [`ConnectionConfig`] and the driver's own
//! settings. Never panics: a missing or mistyped field is a JS `Error` with code `invalid_options`
//! naming the field.

use std::time::Duration;

use js_sys::Function;
use wasm_bindgen::{JsCast, JsValue};

use super::js;
use crate::core::{ConnectionConfig, StaticToken};
use crate::protocol::{client_id_from, is_client_id};

/// The parsed options.
pub(crate) struct Options {
    /// The core's config, with the static `token` in it when one was given.
    pub config: ConnectionConfig,
    /// `getToken()`, called for every connection attempt (a string or a promise of one).
    pub provider: Option<Function>,
    pub debug: bool,
    /// Listen to the page's visibility (else `setVisible` reports it).
    pub follow_visibility: bool,
    /// The `WebSocket` constructor to use instead of the global one.
    pub web_socket: Option<Function>,
}

fn invalid(message: &str) -> JsValue {
    js::error("invalid_options", message)
}

/// `` `path` `` and what it must be, without `format!` (no `core::fmt` in the package).
fn must(path: &str, what: &str) -> JsValue {
    invalid(&(String::from("`") + path + "` must be " + what))
}

/// `undefined` and `null` both mean "not given".
fn given(value: JsValue) -> Option<JsValue> {
    if value.is_undefined() || value.is_null() {
        None
    } else {
        Some(value)
    }
}

fn opt_string(obj: &JsValue, key: &str, path: &str) -> Result<Option<String>, JsValue> {
    match given(js::get(obj, key)) {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(Some)
            .ok_or_else(|| must(path, "a string")),
    }
}

fn opt_bool(obj: &JsValue, key: &str, path: &str) -> Result<Option<bool>, JsValue> {
    match given(js::get(obj, key)) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| must(path, "a boolean")),
    }
}

/// A finite number `>= min`, where `min` is 0 or 1 (its message is a static string: formatting
/// a number would link `core::fmt`, several KiB of wasm).
fn opt_number(obj: &JsValue, key: &str, path: &str, min: u8) -> Result<Option<f64>, JsValue> {
    match given(js::get(obj, key)) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n >= f64::from(min) => Ok(Some(n)),
            _ => Err(must(
                path,
                if min == 0 {
                    "a finite number of at least 0"
                } else {
                    "a finite number of at least 1"
                },
            )),
        },
    }
}

fn opt_ms(obj: &JsValue, key: &str, path: &str) -> Result<Option<Duration>, JsValue> {
    Ok(opt_number(obj, key, path, 0)?.map(|ms| Duration::from_millis(ms as u64)))
}

fn opt_count(obj: &JsValue, key: &str, path: &str) -> Result<Option<u64>, JsValue> {
    match opt_number(obj, key, path, 0)? {
        Some(n) if n.fract() != 0.0 => Err(must(path, "an integer")),
        other => Ok(other.map(|n| n as u64)),
    }
}

fn opt_object(obj: &JsValue, key: &str, path: &str) -> Result<Option<JsValue>, JsValue> {
    match given(js::get(obj, key)) {
        None => Ok(None),
        Some(v) if v.is_object() && !v.is_function() => Ok(Some(v)),
        Some(_) => Err(must(path, "an object")),
    }
}

impl Options {
    /// Parses `new SocklineClient(options)`'s argument.
    pub fn parse(options: &JsValue) -> Result<Options, JsValue> {
        if !options.is_object() || options.is_function() {
            return Err(invalid(
                "options must be an object: { url, token | getToken, … }",
            ));
        }
        let url = opt_string(options, "url", "url")?
            .ok_or_else(|| invalid("`url` is required (e.g. \"wss://example.com/ws\")"))?;
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(invalid("`url` must start with ws:// or wss://"));
        }
        let mut config = ConnectionConfig::new(url);
        // Jitter must differ between clients (that is its point); tests of the core fix it instead.
        config.seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;

        let token = opt_string(options, "token", "token")?;
        let provider = match given(js::get(options, "getToken")) {
            None => None,
            Some(f) => Some(f.dyn_into::<Function>().map_err(|_| {
                invalid("`getToken` must be a function returning a Promise<string>")
            })?),
        };
        match (token, &provider) {
            (_, Some(_)) => {}
            (Some(t), None) => config.token = Some(StaticToken::new(t)),
            (None, None) => return Err(invalid("one of `token` or `getToken` is required")),
        }

        if let Some(backoff) = opt_object(options, "backoff", "backoff")? {
            if let Some(ms) = opt_ms(&backoff, "initialMs", "backoff.initialMs")? {
                config.backoff.initial = ms;
            }
            if let Some(ms) = opt_ms(&backoff, "maxMs", "backoff.maxMs")? {
                config.backoff.max = ms;
            }
            if let Some(f) = opt_number(&backoff, "factor", "backoff.factor", 1)? {
                config.backoff.factor = f;
            }
            // `Infinity`: never give up (as socket.io does by default).
            if js::get(&backoff, "maxRetries").as_f64() == Some(f64::INFINITY) {
                config.backoff.max_retries = None;
            } else if let Some(n) = opt_count(&backoff, "maxRetries", "backoff.maxRetries")? {
                config.backoff.max_retries = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
            if let Some(j) = opt_bool(&backoff, "jitter", "backoff.jitter")? {
                config.backoff.jitter = j;
            }
        }
        if let Some(p) = opt_bool(options, "pauseWhenHidden", "pauseWhenHidden")? {
            config.pause_when_hidden = p;
        }
        if let Some(ms) = opt_ms(options, "hiddenGraceMs", "hiddenGraceMs")? {
            config.hidden_grace = ms;
        }
        if let Some(ms) = opt_ms(options, "heartbeatGraceMs", "heartbeatGraceMs")? {
            config.heartbeat_grace = ms;
        }
        if let Some(outbox) = opt_object(options, "outbox", "outbox")? {
            if let Some(n) = opt_count(&outbox, "maxMessages", "outbox.maxMessages")? {
                config.outbox_max_messages = usize::try_from(n).unwrap_or(usize::MAX);
            }
            if let Some(n) = opt_count(&outbox, "maxBytes", "outbox.maxBytes")? {
                config.outbox_max_bytes = usize::try_from(n).unwrap_or(usize::MAX);
            }
        }
        config.client_id = Some(match opt_string(options, "clientId", "clientId")? {
            Some(id) if is_client_id(&id) => id,
            Some(_) => {
                return Err(invalid(
                    "`clientId` must be 16-64 characters of [A-Za-z0-9_-]",
                ))
            }
            None => client_id_from(js::random_bytes()),
        });
        if let Some(n) = opt_count(options, "firstSendId", "firstSendId")? {
            config.first_send_id = n.max(1);
        }
        let follow_visibility =
            opt_bool(options, "followPageVisibility", "followPageVisibility")?.unwrap_or(true);
        let web_socket = match given(js::get(options, "WebSocket")) {
            Some(f) => Some(f.dyn_into::<Function>().map_err(|_| {
                invalid("`WebSocket` must be a WebSocket constructor (e.g. `import WebSocket from 'ws'`)")
            })?),
            None if js::get(&js_sys::global(), "WebSocket").is_undefined() => {
                return Err(invalid(
                    "there is no global WebSocket here (Node < 22?): pass `WebSocket` in the options, e.g. the `ws` package",
                ))
            }
            None => None,
        };
        let debug = opt_bool(options, "debug", "debug")?.unwrap_or(false);
        Ok(Options {
            web_socket,
            config,
            provider,
            debug,
            follow_visibility,
        })
    }
}
