//! The browser driver's loop: feeding inputs, running commands, and the pump that drains the
//! shell, performs the actions, hands the outputs to `deliver` and re-arms the timer.
//!
//! Every closure handed to the browser holds only a `Weak<Shared>`, so the client can be freed
//! (by `free()` or, with `--weak-refs`, by the garbage collector) while sockets, timers or
//! promises still point at it. User code (listeners, `getToken`, promise callbacks) runs with
//! no `RefCell` borrow held, and its exceptions are caught: a listener may call `send()`,
//! `disconnect()` or even `free()` straight back.

use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::deliver::deliver;
use super::js;
use super::shared::{Inner, Pending, Shared};
use super::socket::Socket;
use crate::core::{Action, Connection, Input, Instant, RequestId, SocketId, Transport};
use crate::shell::{Batch, Shell};

/// Feeds `input` now and runs the drain rule, if the client is still alive.
pub(crate) fn feed(weak: &Weak<Shared>, input: Input) {
    if let Some(shared) = weak.upgrade() {
        feed_shared(&shared, input);
    }
}

/// Feeds `input` now and runs the drain rule.
pub(crate) fn feed_shared(shared: &Rc<Shared>, input: Input) {
    // `None`: freed, or the core is borrowed by a running call that will drain it.
    let _ = command(shared, |conn, now| conn.handle_input(now, input));
}

/// Runs a command against the shell (borrow held only for `f`), then the drain rule.
/// Returns `None` after `free()`.
pub(crate) fn with_shell<T>(
    shared: &Rc<Shared>,
    f: impl FnOnce(&mut Shell<Pending>, Instant) -> T,
) -> Option<T> {
    let out = {
        let mut inner = shared.inner.try_borrow_mut().ok()?;
        if inner.freed {
            return None;
        }
        f(&mut inner.shell, js::now())
    };
    pump(shared);
    Some(out)
}

/// Runs a command against the core, then the drain rule. Returns `None` after `free()`.
pub(crate) fn command<T>(
    shared: &Rc<Shared>,
    f: impl FnOnce(&mut Connection, Instant) -> T,
) -> Option<T> {
    with_shell(shared, |shell, now| f(shell.conn_mut(), now))
}

/// The drain rule: drain the shell, perform every action, deliver every output (borrow
/// released), repeat until nothing is left, then re-arm the timer. Re-entrant calls (from
/// listeners) return at once and leave the work to the running loop.
pub(crate) fn pump(shared: &Rc<Shared>) {
    if shared.pumping.replace(true) {
        return;
    }
    let mut batch = Batch::default();
    loop {
        let token_requests = {
            let Ok(mut inner) = shared.inner.try_borrow_mut() else {
                break;
            };
            if inner.freed {
                break;
            }
            inner.shell.drain(js::now(), &mut batch);
            if batch.is_empty() {
                rearm(shared, &mut inner, batch.deadline);
                break;
            }
            perform(shared, &mut inner, &mut batch.actions)
        };
        for request in token_requests {
            fetch_token(shared, request);
        }
        for output in batch.outputs.drain(..) {
            if shared.is_freed() {
                break;
            }
            deliver(shared, output);
        }
    }
    shared.pumping.set(false);
}

/// Performs the actions; returns the token fetches that need user code (`getToken`).
fn perform(shared: &Rc<Shared>, inner: &mut Inner, actions: &mut Vec<Action>) -> Vec<RequestId> {
    let mut token_requests = Vec::new();
    for action in actions.drain(..) {
        match action {
            Action::OpenSocket { socket, url } => {
                let weak = Rc::downgrade(shared);
                let on_event = Rc::new(move |t| on_socket(&weak, socket, t));
                let ctor = inner.web_socket.as_ref();
                match Socket::open(&url, ctor, on_event, shared.closures.clone()) {
                    Ok(ws) => inner.socket = Some((socket, ws)),
                    Err(e) => {
                        let error = Transport::Error(js::describe(&e));
                        let conn = inner.shell.conn_mut();
                        conn.handle_input(js::now(), Input::Transport(socket, error));
                    }
                }
            }
            Action::SendFrame { socket, text } => {
                let sent = match &inner.socket {
                    Some((id, ws)) if *id == socket => ws.send(&text).map_err(|e| js::describe(&e)),
                    _ => Err(String::from("socket is gone")),
                };
                if let Err(error) = sent {
                    let conn = inner.shell.conn_mut();
                    conn.handle_input(js::now(), Input::Transport(socket, Transport::Error(error)));
                }
            }
            Action::CloseSocket {
                socket,
                code,
                reason,
            } => {
                if inner.socket.as_ref().is_some_and(|(id, _)| *id == socket) {
                    if let Some((_, ws)) = inner.socket.take() {
                        ws.close(code, &reason);
                    }
                }
            }
            Action::FetchToken { request } => token_requests.push(request),
        }
    }
    token_requests
}

/// A socket's event: a closed socket is dropped first (wasm-bindgen keeps a closure alive until
/// its running call returns), then the core hears it.
fn on_socket(weak: &Weak<Shared>, socket: SocketId, transport: Transport) {
    let Some(shared) = weak.upgrade() else { return };
    if matches!(transport, Transport::Closed { .. }) {
        let gone = shared.inner.try_borrow_mut().ok().and_then(|mut inner| {
            inner
                .socket
                .take_if(|(id, _)| *id == socket)
                .map(|(_, ws)| ws)
        });
        drop(gone);
    }
    feed_shared(&shared, Input::Transport(socket, transport));
}

/// Re-arms the single timer to `deadline`, if it moved.
fn rearm(shared: &Rc<Shared>, inner: &mut Inner, deadline: Option<Instant>) {
    let Some(at) = deadline else {
        if inner.timer.take().is_some() {
            shared.closures.set(shared.closures.get().saturating_sub(1));
        }
        return;
    };
    if inner.timer.as_ref().is_some_and(|(armed, _)| *armed == at) {
        return;
    }
    let delay = at.as_millis().saturating_sub(js::now().as_millis());
    // setTimeout takes a signed 32-bit delay; a longer one would fire at once.
    let delay = u32::try_from(delay.min(i32::MAX as u64)).unwrap_or(0);
    let weak = Rc::downgrade(shared);
    let timeout = Timeout::new(delay, move || {
        let Some(shared) = weak.upgrade() else { return };
        let fired = shared
            .inner
            .try_borrow_mut()
            .ok()
            .and_then(|mut inner| inner.timer.take());
        if fired.is_some() {
            shared.closures.set(shared.closures.get().saturating_sub(1));
        }
        drop(fired);
        feed_shared(&shared, Input::Timeout);
    });
    if inner.timer.replace((at, timeout)).is_none() {
        shared.closures.set(shared.closures.get() + 1);
    }
}

/// Calls `getToken()` (no borrow held) and feeds its answer, now or when its promise settles.
fn fetch_token(shared: &Rc<Shared>, request: RequestId) {
    let provider = shared
        .inner
        .try_borrow()
        .ok()
        .and_then(|i| i.provider.clone());
    let Some(provider) = provider else {
        // Unreachable with parsed options (a static token or `getToken`), but never hang.
        let error = String::from("no token configured");
        return feed_shared(shared, Input::TokenFetched(request, Err(error)));
    };
    let returned = match provider.call0(&JsValue::UNDEFINED) {
        Ok(value) => value,
        Err(e) => {
            let error = String::from("getToken threw: ") + &js::describe(&e);
            return feed_shared(shared, Input::TokenFetched(request, Err(error)));
        }
    };
    if let Some(token) = returned.as_string() {
        return feed_shared(shared, Input::TokenFetched(request, Ok(token)));
    }
    let promise = Promise::resolve(&returned);
    if let Ok(mut inner) = shared.inner.try_borrow_mut() {
        inner.token_fetches += 1;
    }
    // Exactly one of the two runs; each frees itself when called, and the other is freed with
    // the promise (`--weak-refs`). Both hold only a weak reference to the client.
    let (weak_ok, weak_err) = (Rc::downgrade(shared), Rc::downgrade(shared));
    let on_ok = Closure::<dyn FnMut(JsValue)>::once_into_js(move |token: JsValue| {
        let result = token
            .as_string()
            .ok_or_else(|| String::from("getToken did not resolve to a string"));
        token_settled(&weak_ok, request, result);
    });
    let on_err = Closure::<dyn FnMut(JsValue)>::once_into_js(move |e: JsValue| {
        let error = String::from("getToken rejected: ") + &js::describe(&e);
        token_settled(&weak_err, request, Err(error));
    });
    promise
        .unchecked_ref::<js::Thenable>()
        .then(&on_ok, &on_err);
}

/// A `getToken()` promise settled: the core hears it (if the client still exists).
fn token_settled(weak: &Weak<Shared>, request: RequestId, result: Result<String, String>) {
    let Some(shared) = weak.upgrade() else { return };
    if let Ok(mut inner) = shared.inner.try_borrow_mut() {
        inner.token_fetches = inner.token_fetches.saturating_sub(1);
    }
    feed_shared(&shared, Input::TokenFetched(request, result));
}
