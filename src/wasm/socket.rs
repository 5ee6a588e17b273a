//! One browser `WebSocket` and the closures it calls, as one RAII value: the closures hand every
//! [`Transport`] to the callback given at [`Socket::open`], and dropping the `Socket` detaches
//! them and closes the socket (1000). It never sees the pump: the callback is its only way out.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// Every socket and page closure has this one type: each closure type costs its own
/// wasm-bindgen shims, so events arrive as plain values and are cast where they are read.
pub(crate) type EventClosure = Closure<dyn Fn(JsValue)>;

use crate::core::Transport;

/// Closures each socket owns (`onopen`, `onmessage`, `onclose`).
const SOCKET_CLOSURES: u32 = 3;

/// Longest close reason a browser accepts, in UTF-8 bytes.
const MAX_CLOSE_REASON: usize = 123;

/// An open (or opening) socket; see the [module docs](self).
#[must_use = "dropping the socket closes it"]
pub(crate) struct Socket {
    ws: WebSocket,
    _on_open: EventClosure,
    _on_message: EventClosure,
    _on_close: EventClosure,
    /// The client's count of live closures (a debug hook for leak checks).
    closures: Rc<Cell<u32>>,
}

impl Socket {
    /// Opens a socket to `url` with the global `WebSocket`, or with `constructor` (the app's
    /// `WebSocket` option: e.g. the `ws` package in Node, which has the same shape); every
    /// event goes to `on_event`.
    pub(crate) fn open(
        url: &str,
        constructor: Option<&js_sys::Function>,
        on_event: Rc<dyn Fn(Transport)>,
        closures: Rc<Cell<u32>>,
    ) -> Result<Socket, JsValue> {
        let ws: WebSocket = match constructor {
            // Calls go through the object's own properties, so any WebSocket-shaped object works.
            Some(ctor) => {
                js_sys::Reflect::construct(ctor, &js_sys::Array::of1(&url.into()))?.unchecked_into()
            }
            None => WebSocket::new(url)?,
        };
        let on = on_event.clone();
        let on_open = EventClosure::new(move |_: JsValue| on(Transport::Opened));
        let on = on_event.clone();
        let on_message = EventClosure::new(move |e: JsValue| {
            on(
                match e.unchecked_into::<MessageEvent>().data().as_string() {
                    Some(text) => Transport::Frame(text),
                    None => Transport::Binary,
                },
            );
        });
        let on_close = EventClosure::new(move |e: JsValue| {
            let e = e.unchecked_into::<CloseEvent>();
            on_event(Transport::Closed {
                code: e.code(),
                reason: e.reason(),
            });
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        closures.set(closures.get() + SOCKET_CLOSURES);
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            closures,
        })
    }

    /// Sends a text frame; `Err` with the browser's reason.
    pub(crate) fn send(&self, text: &str) -> Result<(), JsValue> {
        self.ws.send_with_str(text)
    }

    /// Closes with `code` and `reason` (cut to what browsers accept), then drops the closures.
    pub(crate) fn close(self, code: u16, reason: &str) {
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        // Browsers accept only 1000 and 3000-4999 from scripts; fall back to a plain close.
        if self
            .ws
            .close_with_code_and_reason(code, reason.get(..end).unwrap_or_default())
            .is_err()
        {
            let _ = self.ws.close();
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let state = self.ws.ready_state();
        if state == WebSocket::CONNECTING || state == WebSocket::OPEN {
            // 1000, as everywhere else: a bare close() would reach the server as 1005.
            let _ = self.ws.close_with_code(1000);
        }
        self.closures
            .set(self.closures.get().saturating_sub(SOCKET_CLOSURES));
    }
}
