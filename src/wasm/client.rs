//! [`SocklineClient`]: the JavaScript API (`new SocklineClient({ url, token })`, `connect()`,
//! `on()`, `send()`, …), a thin layer that checks JS arguments and forwards to the driver.

use std::rc::Rc;
use std::time::Duration;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::js;
use super::options::Options;
use super::pump;
use super::shared::{Pending, Shared};
use crate::core::{Connection, Env, Input, Payload, SendId};
use crate::error::SendError;
use crate::listeners::{ListenerId, Topic};
use crate::protocol::ResumePoint;

/// Which listener registry an unsubscriber removes from.
#[derive(Clone, Copy)]
enum Registry {
    Events,
    State,
    Any,
}

/// A reconnecting WebSocket client for the browser.
///
/// ```js
/// import init, { SocklineClient } from 'sockline';
/// await init();
/// const client = new SocklineClient({ url: 'wss://example.com/ws', getToken: fetchToken });
/// const off = client.on('new_notification', (n) => console.log(n.title));
/// client.onState(({ state, nextRetryMs }) => render(state, nextRetryMs));
/// client.connect();
/// ```
#[wasm_bindgen]
pub struct SocklineClient {
    shared: Rc<Shared>,
}

fn freed() -> JsValue {
    js::error("freed", "the client was freed")
}

fn invalid(message: &str) -> JsValue {
    js::error("invalid_argument", message)
}

fn send_error(e: &SendError) -> JsValue {
    js::error(e.code(), &e.message())
}

/// `JSON.stringify(data)` as a payload; `undefined` (or anything `JSON.stringify` skips, such as
/// a function) becomes `null`.
fn to_payload(data: &JsValue) -> Result<Payload, JsValue> {
    if data.is_undefined() {
        return Ok(Payload::null());
    }
    let text = js_sys::JSON::stringify(data).map_err(|e| {
        js::error(
            "bad_payload",
            &(String::from("data is not JSON-serializable: ") + &js::describe(&e)),
        )
    })?;
    match text.as_string() {
        None => Ok(Payload::null()),
        // Only a lone surrogate can make `JSON.stringify`'s output unacceptable: the server
        // could not read it either.
        Some(text) => Payload::from_json(text)
            .map_err(|_| js::error("bad_payload", "data is not JSON-serializable")),
    }
}

fn name_arg(name: &JsValue) -> Result<String, JsValue> {
    name.as_string()
        .ok_or_else(|| invalid("the event name must be a string"))
}

fn function_arg(listener: JsValue) -> Result<Function, JsValue> {
    listener
        .dyn_into::<Function>()
        .map_err(|_| invalid("the listener must be a function"))
}

#[wasm_bindgen]
impl SocklineClient {
    /// Creates a client in `disconnected`; nothing happens until `connect()`.
    /// Throws an `Error` with code `invalid_options` when an option is missing or mistyped.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "ClientOptions")] options: JsValue,
    ) -> Result<SocklineClient, JsValue> {
        let options = Options::parse(&options)?;
        let conn = Connection::new(options.config, js::now());
        let shared = Shared::new(
            conn,
            options.provider,
            options.web_socket,
            options.debug,
            options.follow_visibility,
        );
        Ok(SocklineClient { shared })
    }

    /// Starts connecting (from `disconnected`, whatever the reason), with the backoff reset.
    pub fn connect(&self) -> Result<(), JsValue> {
        pump::command(&self.shared, |conn, now| conn.connect(now)).ok_or_else(freed)
    }

    /// Connects again now with the backoff reset, whatever the state (a live socket is closed
    /// and replaced); queued sends and pending requests are kept and go out on the new socket.
    pub fn reconnect(&self) -> Result<(), JsValue> {
        pump::command(&self.shared, |conn, now| conn.reconnect(now)).ok_or_else(freed)
    }

    /// Closes the socket and stays `disconnected` until the next `connect()`: neither the page
    /// becoming visible nor the network coming back undoes it.
    pub fn disconnect(&self) {
        let _ = pump::command(&self.shared, |conn, now| conn.disconnect(now));
    }

    /// Joins `room` now if connected, else on the next session; it is re-joined after every
    /// new session.
    pub fn join(&self, room: &str) -> Result<(), JsValue> {
        if room.is_empty() {
            return Err(invalid("the room name must not be empty"));
        }
        pump::command(&self.shared, |conn, now| conn.join(now, room)).ok_or_else(freed)
    }

    /// Leaves `room` and removes it from the room set.
    pub fn leave(&self, room: &str) -> Result<(), JsValue> {
        pump::command(&self.shared, |conn, now| conn.leave(now, room)).ok_or_else(freed)
    }

    /// Adds a listener for a server event (or `error`, `resumed`, `resume_failed`); returns the
    /// function that removes it. A listener that throws is reported as an `error` event.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, name: JsValue, listener: JsValue) -> Result<Function, JsValue> {
        let name = name_arg(&name)?;
        let listener = function_arg(listener)?;
        if self.shared.is_freed() {
            return Err(freed());
        }
        let id = self
            .shared
            .listeners
            .borrow_mut()
            .add(Topic::Named(name), listener);
        Ok(self.unsubscriber(id, Registry::Events))
    }

    /// Adds a listener for state changes; it gets `{ state, attempt, reason, nextRetryMs }`.
    /// Returns the function that removes it.
    #[wasm_bindgen(
        js_name = onState,
        unchecked_return_type = "() => void"
    )]
    pub fn on_state(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(change: StateChange) => void")] listener: JsValue,
    ) -> Result<Function, JsValue> {
        let listener = function_arg(listener)?;
        if self.shared.is_freed() {
            return Err(freed());
        }
        let id = self
            .shared
            .state_listeners
            .borrow_mut()
            .add(Topic::Any, listener);
        Ok(self.unsubscriber(id, Registry::State))
    }

    /// An `unsubscribe()` function: it holds only a weak reference and frees itself when called.
    fn unsubscriber(&self, id: ListenerId, which: Registry) -> Function {
        let weak = Rc::downgrade(&self.shared);
        Closure::<dyn FnMut()>::once_into_js(move || {
            if let Some(shared) = weak.upgrade() {
                let registry = match which {
                    Registry::Events => &shared.listeners,
                    Registry::State => &shared.state_listeners,
                    Registry::Any => &shared.any_listeners,
                };
                if let Ok(mut r) = registry.try_borrow_mut() {
                    r.remove(id);
                }
            }
        })
        .unchecked_into()
    }

    /// Queues an event for the server (sent at once when connected, kept and resent until
    /// acknowledged); returns its id. Throws `outbox_full`, `too_large`, `empty_event_name` or
    /// `bad_payload`.
    #[wasm_bindgen(skip_typescript)]
    pub fn send(&self, name: JsValue, data: JsValue) -> Result<f64, JsValue> {
        let name = name_arg(&name)?;
        let data = to_payload(&data)?;
        match pump::command(&self.shared, |conn, now| conn.send(now, &name, &data)) {
            None => Err(freed()),
            Some(Ok(id)) => Ok(id.0 as f64),
            Some(Err(e)) => Err(send_error(&e)),
        }
    }

    /// Sends an event and resolves with the server's ack data (rejects with the server's error
    /// code, or `timeout` after `timeoutMs`, default 10 s).
    #[wasm_bindgen(skip_typescript)]
    pub fn request(&self, name: JsValue, data: JsValue, options: JsValue) -> Promise {
        match self.try_request(name, data, options) {
            Ok(promise) => promise,
            Err(e) => Promise::reject(&e),
        }
    }

    fn try_request(
        &self,
        name: JsValue,
        data: JsValue,
        options: JsValue,
    ) -> Result<Promise, JsValue> {
        let name = name_arg(&name)?;
        let data = to_payload(&data)?;
        let timeout = match js::get(&options, "timeoutMs").as_f64() {
            Some(ms) if ms.is_finite() && ms >= 0.0 => Some(Duration::from_millis(ms as u64)),
            Some(_) => return Err(invalid("`timeoutMs` must be a non-negative number")),
            None => None,
        };
        let mut callbacks = None;
        let promise = Promise::new(&mut |resolve, reject| callbacks = Some((resolve, reject)));
        let (resolve, reject) = callbacks.ok_or_else(|| invalid("Promise executor did not run"))?;
        let pending = Pending { resolve, reject };
        let queued = pump::with_shell(&self.shared, |shell, now| {
            shell.request(now, &name, &data, timeout, pending)
        });
        match queued {
            None => Err(freed()),
            Some(Ok(_)) => Ok(promise),
            Some(Err((e, _))) => Err(send_error(&e)),
        }
    }

    /// The state's name: `disconnected`, `connecting`, `authenticating`, `connected` or
    /// `reconnecting`.
    #[wasm_bindgen(getter, unchecked_return_type = "ConnectionState")]
    pub fn state(&self) -> String {
        match self.shared.inner.try_borrow() {
            Ok(inner) => String::from(inner.shell.conn().state().name()),
            Err(_) => String::from("disconnected"),
        }
    }

    /// Adds a listener for every server event: `listener(name, data, seq)` (`seq` is `null`
    /// for a volatile event). Returns the function that removes it.
    #[wasm_bindgen(
        js_name = onAny,
        unchecked_return_type = "() => void"
    )]
    pub fn on_any(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "(name: string, data: unknown, seq: number | null) => void"
        )]
        listener: JsValue,
    ) -> Result<Function, JsValue> {
        let listener = function_arg(listener)?;
        if self.shared.is_freed() {
            return Err(freed());
        }
        let id = self
            .shared
            .any_listeners
            .borrow_mut()
            .add(Topic::Any, listener);
        Ok(self.unsubscriber(id, Registry::Any))
    }

    /// Restores a send an earlier life of this client (same `clientId`) made and did not see
    /// acked, under its original id; it goes out before newer sends, and, with `owner`, only
    /// in a session of that user (another user's session drops it with an `ack` error
    /// `other_user`). Throws `invalid_id`, `outbox_full`, `empty_event_name`, `bad_payload`.
    #[wasm_bindgen(js_name = restoreSend)]
    pub fn restore_send(
        &self,
        id: f64,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "unknown")] data: JsValue,
        owner: Option<String>,
    ) -> Result<(), JsValue> {
        if !(id.is_finite() && id >= 1.0 && id.fract() == 0.0) {
            return Err(invalid("`id` must be a positive integer"));
        }
        let data = to_payload(&data)?;
        match pump::command(&self.shared, |conn, now| {
            conn.restore_send(now, SendId(id as u64), name, &data, owner.as_deref())
        }) {
            None => Err(freed()),
            Some(result) => result.map_err(|e| send_error(&e)),
        }
    }

    /// Makes the next connection ask to resume `session` from `seq` (a point an earlier life
    /// of this client, or another tab of it, reached). Ignored once a session exists.
    #[wasm_bindgen(js_name = resumeFrom)]
    pub fn resume_from(&self, session: String, seq: f64) -> Result<(), JsValue> {
        if !(seq.is_finite() && seq >= 0.0 && seq.fract() == 0.0) {
            return Err(invalid("`seq` must be a non-negative integer"));
        }
        let point = ResumePoint {
            session,
            seq: seq as u64,
        };
        pump::command(&self.shared, |conn, _| conn.resume_from(point)).ok_or_else(freed)
    }

    /// Reports the page's visibility (when `followPageVisibility` is false, e.g. for a group
    /// of tabs that pauses only when all of them are hidden).
    #[wasm_bindgen(js_name = setVisible)]
    pub fn set_visible(&self, visible: bool) -> Result<(), JsValue> {
        let env = if visible { Env::Visible } else { Env::Hidden };
        pump::command(&self.shared, |conn, now| {
            conn.handle_input(now, Input::Env(env))
        })
        .ok_or_else(freed)
    }

    /// The user the last `authenticated` named (`null` before one).
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> Option<String> {
        let inner = self.shared.inner.try_borrow().ok()?;
        inner.shell.conn().user().map(str::to_owned)
    }

    /// `{ session, seq }`: where the next session would resume (`null` before a session).
    #[wasm_bindgen(js_name = resumePoint, unchecked_return_type = "{ session: string; seq: number } | null")]
    pub fn resume_point(&self) -> JsValue {
        let Ok(inner) = self.shared.inner.try_borrow() else {
            return JsValue::NULL;
        };
        match inner.shell.conn().resume_point() {
            None => JsValue::NULL,
            Some(point) => {
                let out = js::object();
                js::set(&out, "session", &JsValue::from_str(&point.session));
                js::set(&out, "seq", &js::num_u64(point.seq));
                out
            }
        }
    }

    /// The id the next `send()` will take.
    #[wasm_bindgen(getter, js_name = nextSendId)]
    pub fn next_send_id(&self) -> f64 {
        match self.shared.inner.try_borrow() {
            Ok(inner) => inner.shell.conn().next_send_id().0 as f64,
            Err(_) => 0.0,
        }
    }

    /// The client id sent in `auth` (the `clientId` option, or one drawn at construction):
    /// keep it with unacked sends to resend them exactly once after a reload.
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> String {
        match self.shared.inner.try_borrow() {
            Ok(inner) => inner
                .shell
                .conn()
                .config()
                .client_id
                .clone()
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Counters (`framesIn`, `reconnects`, `lastRttMs`, …) and, under `debug`, what the driver
    /// holds (closures, sockets, listeners) for leak checks.
    #[wasm_bindgen(unchecked_return_type = "ClientStats")]
    pub fn stats(&self) -> JsValue {
        let out = js::object();
        let Ok(inner) = self.shared.inner.try_borrow() else {
            return out;
        };
        let s = inner.shell.conn().stats();
        drop(inner);
        js::set(&out, "state", &JsValue::from_str(s.state));
        js::set(
            &out,
            "timeInStateMs",
            &js::num_u64(s.time_in_state.as_millis() as u64),
        );
        js::set(&out, "attempt", &js::num(s.attempt));
        js::set(&out, "reconnects", &js::num_u64(s.reconnects));
        let rtt = s
            .last_rtt
            .map(|d| js::num_u64(d.as_millis() as u64))
            .unwrap_or(JsValue::NULL);
        js::set(&out, "lastRttMs", &rtt);
        js::set(&out, "outboxDepth", &js::num_u64(s.outbox_depth as u64));
        js::set(&out, "outboxBytes", &js::num_u64(s.outbox_bytes as u64));
        js::set(&out, "framesIn", &js::num_u64(s.frames_in));
        js::set(&out, "framesOut", &js::num_u64(s.frames_out));
        js::set(
            &out,
            "duplicatesDropped",
            &js::num_u64(s.duplicates_dropped),
        );
        js::set(&out, "rooms", &js::num_u64(s.rooms as u64));
        let d = self.shared.debug_counts();
        let debug = js::object();
        js::set(&debug, "closures", &js::num(d.closures));
        js::set(&debug, "sockets", &js::num_u64(d.sockets as u64));
        js::set(
            &debug,
            "pageListeners",
            &js::num_u64(d.page_listeners as u64),
        );
        js::set(&debug, "listeners", &js::num_u64(d.listeners as u64));
        js::set(
            &debug,
            "stateListeners",
            &js::num_u64(d.state_listeners as u64),
        );
        js::set(
            &debug,
            "pendingRequests",
            &js::num_u64(d.pending_requests as u64),
        );
        js::set(&debug, "tokenFetches", &js::num(d.token_fetches));
        js::set(&debug, "timerArmed", &JsValue::from_bool(d.timer_armed));
        js::set(&out, "debug", &debug);
        out
    }
}

impl Drop for SocklineClient {
    /// `free()` (or, with `--weak-refs`, garbage collection) closes the socket, cancels the timer,
    /// removes the page listeners and rejects pending requests.
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}
