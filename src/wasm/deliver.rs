//! Delivering the shell's outputs to JavaScript: state listeners, event listeners (payloads
//! parsed once with `JSON.parse`), request promises, `ack` / `error` / `resumed` /
//! `resume_failed` events. Runs with no borrow held; every user callback's exception is caught.

use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::js;
use super::shared::{Pending, Shared};
use crate::core::{Payload, SendId};
use crate::error::{AckError, ClientError};
use crate::listeners::dispatch;
use crate::shell::{Output, StateView};

/// Hands one output to the application.
pub(crate) fn deliver(shared: &Rc<Shared>, output: Output<Pending>) {
    match output {
        Output::State(view) => {
            let info = state_info(&view);
            if shared.inner.try_borrow().is_ok_and(|inner| inner.debug) {
                let change = String::from(view.from.name()) + " -> " + view.to.name();
                web_sys::console::log_3(
                    &JsValue::from_str("[sockline]"),
                    &JsValue::from_str(&change),
                    &info,
                );
            }
            dispatch(&shared.state_listeners, "state", |f| {
                call(shared, f, &info, "state");
            });
        }
        Output::Message { event, data, seq } => {
            // Decode the payload once, and only if someone listens.
            let mut value = None;
            dispatch(&shared.listeners, &event, |f| {
                let value = value.get_or_insert_with(|| js::parse_json(data.json()));
                call(shared, f, value, &event);
            });
            dispatch(&shared.any_listeners, "", |f| {
                let value = value.get_or_insert_with(|| js::parse_json(data.json()));
                let seq = seq.map_or(JsValue::NULL, js::num_u64);
                let name = JsValue::from_str(&event);
                if let Err(thrown) = f.call3(&JsValue::UNDEFINED, &name, value, &seq) {
                    report_thrown(shared, "onAny", &thrown);
                }
            });
        }
        Output::Settle {
            id,
            resolver,
            result,
        } => match result {
            Ok(data) => {
                let _ = resolver
                    .resolve
                    .call1(&JsValue::UNDEFINED, &json_or_undefined(data));
            }
            Err(e) => {
                let _ = resolver
                    .reject
                    .call1(&JsValue::UNDEFINED, &ack_error(Some(id), &e));
            }
        },
        Output::Ack { id, result } => {
            let info = js::object();
            js::set(&info, "id", &js::num_u64(id.0));
            js::set(&info, "ok", &JsValue::from_bool(result.is_ok()));
            match result {
                Ok(data) => js::set(&info, "data", &json_or_undefined(data)),
                Err(e) => js::set(&info, "error", &ack_error(Some(id), &e)),
            }
            dispatch(&shared.listeners, "ack", |f| call(shared, f, &info, "ack"));
        }
        Output::Error(e) => emit_error(shared, &client_error(&e)),
        Output::Resumed { missed } => {
            let info = js::object();
            js::set(&info, "missed", &js::num_u64(missed));
            dispatch(&shared.listeners, "resumed", |f| {
                call(shared, f, &info, "resumed")
            });
        }
        Output::ResumeFailed => {
            dispatch(&shared.listeners, "resume_failed", |f| {
                call(shared, f, &JsValue::UNDEFINED, "resume_failed")
            });
        }
    }
}

fn json_or_undefined(data: Option<Payload>) -> JsValue {
    data.map(|d| js::parse_json(d.json()))
        .unwrap_or(JsValue::UNDEFINED)
}

/// `{ state, attempt, reason, message, nextRetryMs }`: `reason` is the cause's code for every
/// transition (why it connects, reconnects or stopped), `message` its explanation.
pub(crate) fn state_info(view: &StateView) -> JsValue {
    let info = js::object();
    js::set(&info, "state", &JsValue::from_str(view.to.name()));
    js::set(&info, "attempt", &js::num(view.attempt()));
    js::set(&info, "reason", &JsValue::from_str(view.cause.code()));
    js::set(&info, "message", &JsValue::from_str(&view.cause.message()));
    let next = view
        .retry_in
        .map(|d| js::num_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
        .unwrap_or(JsValue::NULL);
    js::set(&info, "nextRetryMs", &next);
    info
}

/// Calls a user listener; an exception becomes an `error` event (or, thrown by an `error`
/// listener itself, a console error), never a panic or a stuck client.
fn call(shared: &Rc<Shared>, f: &Function, arg: &JsValue, name: &str) {
    if let Err(thrown) = f.call1(&JsValue::UNDEFINED, arg) {
        report_thrown(shared, name, &thrown);
    }
}

fn report_thrown(shared: &Rc<Shared>, name: &str, thrown: &JsValue) {
    let message = String::from("a `") + name + "` listener threw: " + &js::describe(thrown);
    let err = js::error("listener_threw", &message);
    js::set(&err, "cause", thrown);
    if name == "error" {
        web_sys::console::error_2(&JsValue::from_str("[sockline]"), &err);
    } else {
        emit_error(shared, &err);
    }
}

/// Dispatches an `error` event; with no `error` listener it goes to the console instead of
/// vanishing.
fn emit_error(shared: &Rc<Shared>, err: &JsValue) {
    let mut heard = false;
    dispatch(&shared.listeners, "error", |f| {
        heard = true;
        call(shared, f, err, "error");
    });
    if !heard {
        web_sys::console::warn_2(&JsValue::from_str("[sockline]"), err);
    }
}

fn client_error(e: &ClientError) -> JsValue {
    let err = js::error(e.code(), &e.message());
    if let ClientError::SendFailed { id, .. } = e {
        js::set(&err, "id", &js::num_u64(id.0));
    }
    err
}

fn ack_error(id: Option<SendId>, e: &AckError) -> JsValue {
    let err = js::error(e.code(), &e.message());
    if let Some(id) = id {
        js::set(&err, "id", &js::num_u64(id.0));
    }
    err
}
