//! The browser driver: owns the core [`Connection`], one `WebSocket` per [`SocketId`] (with its
//! closures), the single timer and the page listeners, and runs the drain rule after every input.
//!
//! Every closure handed to the browser holds only a `Weak<Shared>`, so the client can be freed
//! (by `free()` or, with `--weak-refs`, by the garbage collector) while sockets, timers or
//! promises still point at it. Nothing is `Closure::forget`-ed: a socket's closures are dropped
//! with the socket, the timer's with the timer, the page listeners' on `free()`.
//!
//! User code (listeners, `getToken`, promise callbacks) is only ever called with no `RefCell`
//! borrow held, and its exceptions are caught: a listener may call `send()`, `disconnect()` or
//! even `free()` straight back.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CloseEvent, EventTarget, MessageEvent, PageTransitionEvent, WebSocket};

use super::js;
use super::options::TokenSource;
use crate::core::{
    Action, Connection, ConnectionState, Env, Event, Input, Instant, RequestId, SendId, SocketId,
    Transport,
};
use crate::error::{AckError, ClientError};
use crate::events::{dispatch, Registry, Topic};

/// Closures each socket owns (`onopen`, `onmessage`, `onclose`).
const SOCKET_CLOSURES: u32 = 3;

/// Longest close reason a browser accepts, in UTF-8 bytes.
const MAX_CLOSE_REASON: usize = 123;

/// Everything one client owns; closures reach it through `Weak<Shared>`.
pub(crate) struct Shared {
    pub inner: RefCell<Inner>,
    /// `on(name, cb)` listeners.
    pub listeners: RefCell<Registry<Function>>,
    /// `onState(cb)` listeners.
    pub state_listeners: RefCell<Registry<Function>>,
    /// Set while [`pump`] runs: a nested call (from a listener) leaves the draining to it.
    pumping: Cell<bool>,
    /// Live closures this client has handed to the browser (debug hook, see `stats()`).
    closures: Rc<Cell<u32>>,
}

/// A map kept as a short vector: it holds a socket or two and a few pending requests, and each
/// `BTreeMap<K, V>` instantiation would add several KiB of wasm.
struct SmallMap<K, V>(Vec<(K, V)>);

impl<K: PartialEq, V> SmallMap<K, V> {
    fn new() -> Self {
        SmallMap(Vec::new())
    }

    fn insert(&mut self, key: K, value: V) {
        self.remove(&key);
        self.0.push((key, value));
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(i).1)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A pending `request()`'s promise.
struct Pending {
    resolve: Function,
    reject: Function,
}

/// The mutable state behind the `RefCell`.
pub(crate) struct Inner {
    pub conn: Connection,
    token: TokenSource,
    sockets: SmallMap<SocketId, Socket>,
    /// The armed timer and the deadline it is for.
    timer: Option<(Instant, Timeout)>,
    page: Vec<PageListener>,
    pending: SmallMap<SendId, Pending>,
    /// `getToken()` promises not settled yet.
    token_fetches: u32,
    pub debug: bool,
    /// `free()` ran: every method is refused, every late callback ignored.
    pub freed: bool,
}

/// The driver's counters for `stats().debug`.
pub(crate) struct DebugCounts {
    pub closures: u32,
    pub sockets: usize,
    pub page_listeners: usize,
    pub listeners: usize,
    pub state_listeners: usize,
    pub pending_requests: usize,
    pub token_fetches: u32,
    pub timer_armed: bool,
}

impl Shared {
    /// A client in `disconnected`, with the page listeners installed.
    pub fn new(conn: Connection, token: TokenSource, debug: bool) -> Rc<Shared> {
        let shared = Rc::new(Shared {
            inner: RefCell::new(Inner {
                conn,
                token,
                sockets: SmallMap::new(),
                timer: None,
                page: Vec::new(),
                pending: SmallMap::new(),
                token_fetches: 0,
                debug,
                freed: false,
            }),
            listeners: RefCell::default(),
            state_listeners: RefCell::default(),
            pumping: Cell::new(false),
            closures: Rc::new(Cell::new(0)),
        });
        let page = page_listeners(&shared);
        shared.inner.borrow_mut().page = page;
        shared
    }

    /// Whether `free()` ran.
    pub fn is_freed(&self) -> bool {
        self.inner.borrow().freed
    }

    /// Counters for the leak checks.
    pub fn debug_counts(&self) -> DebugCounts {
        let inner = self.inner.borrow();
        DebugCounts {
            closures: self.closures.get(),
            sockets: inner.sockets.len(),
            page_listeners: inner.page.len(),
            listeners: self.listeners.borrow().len(),
            state_listeners: self.state_listeners.borrow().len(),
            pending_requests: inner.pending.len(),
            token_fetches: inner.token_fetches,
            timer_armed: inner.timer.is_some(),
        }
    }

    /// Registers a request's promise callbacks under its send id.
    pub fn add_pending(&self, id: SendId, resolve: Function, reject: Function) {
        self.inner
            .borrow_mut()
            .pending
            .insert(id, Pending { resolve, reject });
    }

    /// Releases everything the browser holds for this client: sockets (closed with 1000), the
    /// timer, the page listeners, the listeners; pending requests are rejected with `freed`.
    pub fn shutdown(&self) {
        let (sockets, timer, page, pending) = {
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return;
            };
            if inner.freed {
                return;
            }
            inner.freed = true;
            (
                std::mem::replace(&mut inner.sockets, SmallMap::new()),
                inner.timer.take(),
                std::mem::take(&mut inner.page),
                std::mem::replace(&mut inner.pending, SmallMap::new()),
            )
        };
        drop((sockets, timer, page));
        if let Ok(mut l) = self.listeners.try_borrow_mut() {
            *l = Registry::default();
        }
        if let Ok(mut l) = self.state_listeners.try_borrow_mut() {
            *l = Registry::default();
        }
        let err = js::error(
            "freed",
            "the client was freed before the request was acknowledged",
        );
        for (_, p) in pending.0 {
            let _ = p.reject.call1(&JsValue::UNDEFINED, &err);
        }
    }
}

// ---- sockets --------------------------------------------------------------------------------

/// One `WebSocket` and the closures it calls; dropping it detaches them and closes the socket.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn Fn()>,
    _on_message: Closure<dyn Fn(MessageEvent)>,
    _on_close: Closure<dyn Fn(CloseEvent)>,
    closures: Rc<Cell<u32>>,
}

impl Socket {
    fn open(shared: &Rc<Shared>, id: SocketId, url: &str) -> Result<Socket, JsValue> {
        let ws = WebSocket::new(url)?;
        let weak = Rc::downgrade(shared);
        let on_open = Closure::<dyn Fn()>::new(move || {
            feed(&weak, Input::Transport(id, Transport::Opened));
        });
        let weak = Rc::downgrade(shared);
        let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |e: MessageEvent| {
            // The protocol is text frames only; a binary frame is not ours to read.
            if let Some(text) = e.data().as_string() {
                feed(&weak, Input::Transport(id, Transport::Frame(text)));
            }
        });
        let weak = Rc::downgrade(shared);
        let on_close = Closure::<dyn Fn(CloseEvent)>::new(move |e: CloseEvent| {
            let Some(shared) = weak.upgrade() else { return };
            // The browser is done with this socket: drop it (and these closures; wasm-bindgen
            // keeps a closure alive until its running call returns) before telling the core.
            let gone = shared
                .inner
                .try_borrow_mut()
                .ok()
                .and_then(|mut inner| inner.sockets.remove(&id));
            drop(gone);
            let closed = Transport::Closed {
                code: e.code(),
                reason: e.reason(),
            };
            feed_shared(&shared, Input::Transport(id, closed));
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        shared.closures.set(shared.closures.get() + SOCKET_CLOSURES);
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            closures: shared.closures.clone(),
        })
    }

    fn close(&self, code: u16, reason: &str) {
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

// ---- page listeners -------------------------------------------------------------------------

/// One `addEventListener` on the window or document, removed on drop.
struct PageListener {
    target: EventTarget,
    kind: &'static str,
    closure: Closure<dyn Fn(web_sys::Event)>,
    closures: Rc<Cell<u32>>,
}

impl Drop for PageListener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.closure.as_ref().unchecked_ref());
        self.closures.set(self.closures.get().saturating_sub(1));
    }
}

fn listen(
    shared: &Rc<Shared>,
    target: &EventTarget,
    kind: &'static str,
    on: impl Fn(&Weak<Shared>, web_sys::Event) + 'static,
) -> Option<PageListener> {
    let weak = Rc::downgrade(shared);
    let closure = Closure::<dyn Fn(web_sys::Event)>::new(move |e| on(&weak, e));
    target
        .add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref())
        .ok()?;
    shared.closures.set(shared.closures.get() + 1);
    Some(PageListener {
        target: target.clone(),
        kind,
        closure,
        closures: shared.closures.clone(),
    })
}

/// `visibilitychange` → `Env(Hidden | Visible)`, `online`/`offline` → `Env(Online | Offline)`,
/// `pagehide`/`pageshow` → `Env(Offline | Online)` so a page entering the back-forward cache
/// closes its socket (an open socket makes a page ineligible) and reconnects when restored.
/// Outside a window (a worker) there is nothing to listen to.
fn page_listeners(shared: &Rc<Shared>) -> Vec<PageListener> {
    let Some(window) = web_sys::window() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(document) = window.document() {
        let doc = document.clone();
        out.extend(listen(
            shared,
            &document,
            "visibilitychange",
            move |w, _| {
                let env = if doc.visibility_state() == web_sys::VisibilityState::Hidden {
                    Env::Hidden
                } else {
                    Env::Visible
                };
                feed(w, Input::Env(env));
            },
        ));
        if document.visibility_state() == web_sys::VisibilityState::Hidden {
            feed_shared(shared, Input::Env(Env::Hidden));
        }
    }
    out.extend(listen(shared, &window, "online", |w, _| {
        feed(w, Input::Env(Env::Online))
    }));
    out.extend(listen(shared, &window, "offline", |w, _| {
        feed(w, Input::Env(Env::Offline))
    }));
    out.extend(listen(shared, &window, "pagehide", |w, _| {
        feed(w, Input::Env(Env::Offline))
    }));
    let win = window.clone();
    out.extend(listen(shared, &window, "pageshow", move |w, e| {
        let restored = e
            .dyn_ref::<PageTransitionEvent>()
            .is_some_and(PageTransitionEvent::persisted);
        if restored && navigator_online(&win) {
            feed(w, Input::Env(Env::Online));
        }
    }));
    if !navigator_online(&window) {
        feed_shared(shared, Input::Env(Env::Offline));
    }
    out
}

fn navigator_online(window: &web_sys::Window) -> bool {
    js::get(&js::get(window, "navigator"), "onLine")
        .as_bool()
        .unwrap_or(true)
}

// ---- the loop -------------------------------------------------------------------------------

/// Feeds `input` at `now` and runs the drain rule, if the client is still alive.
pub(crate) fn feed(weak: &Weak<Shared>, input: Input) {
    if let Some(shared) = weak.upgrade() {
        feed_shared(&shared, input);
    }
}

/// Feeds `input` at `now` and runs the drain rule.
pub(crate) fn feed_shared(shared: &Rc<Shared>, input: Input) {
    {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.freed {
            return;
        }
        inner.conn.handle_input(js::now(), input);
    }
    pump(shared);
}

/// Runs a command against the core (borrow held only for `f`), then the drain rule.
/// Returns `None` after `free()`.
pub(crate) fn command<T>(
    shared: &Rc<Shared>,
    f: impl FnOnce(&mut Connection, Instant) -> T,
) -> Option<T> {
    let out = {
        let mut inner = shared.inner.try_borrow_mut().ok()?;
        if inner.freed {
            return None;
        }
        f(&mut inner.conn, js::now())
    };
    pump(shared);
    Some(out)
}

/// The drain rule: perform every action, deliver every event (borrow released), repeat until
/// both queues are empty, then re-arm the timer. Re-entrant calls (from listeners) return at
/// once and leave the work to the running loop.
pub(crate) fn pump(shared: &Rc<Shared>) {
    if shared.pumping.replace(true) {
        return;
    }
    loop {
        let (events, token_requests) = {
            let Ok(mut inner) = shared.inner.try_borrow_mut() else {
                break;
            };
            if inner.freed {
                break;
            }
            let token_requests = perform_actions(shared, &mut inner);
            let events: Vec<Event> = std::iter::from_fn(|| inner.conn.poll_event()).collect();
            (events, token_requests)
        };
        if events.is_empty() && token_requests.is_empty() {
            break;
        }
        for request in token_requests {
            fetch_token(shared, request);
        }
        for event in events {
            if shared.is_freed() {
                break;
            }
            deliver(shared, event);
        }
    }
    if let Ok(mut inner) = shared.inner.try_borrow_mut() {
        if !inner.freed {
            rearm(shared, &mut inner);
        }
    }
    shared.pumping.set(false);
}

/// Performs every queued action; returns the token fetches that need user code (`getToken`).
fn perform_actions(shared: &Rc<Shared>, inner: &mut Inner) -> Vec<RequestId> {
    let mut token_requests = Vec::new();
    while let Some(action) = inner.conn.poll_action() {
        match action {
            Action::OpenSocket { socket, url } => match Socket::open(shared, socket, &url) {
                Ok(ws) => {
                    inner.sockets.insert(socket, ws);
                }
                Err(e) => {
                    let error = Transport::Error(js::describe(&e));
                    inner
                        .conn
                        .handle_input(js::now(), Input::Transport(socket, error));
                }
            },
            Action::SendFrame { socket, text } => {
                let sent = match inner.sockets.get(&socket) {
                    Some(ws) => ws.ws.send_with_str(&text).map_err(|e| js::describe(&e)),
                    None => Err(String::from("socket is gone")),
                };
                if let Err(error) = sent {
                    inner
                        .conn
                        .handle_input(js::now(), Input::Transport(socket, Transport::Error(error)));
                }
            }
            Action::CloseSocket {
                socket,
                code,
                reason,
            } => {
                if let Some(ws) = inner.sockets.remove(&socket) {
                    ws.close(code, &reason);
                }
            }
            Action::FetchToken { request } => match &inner.token {
                TokenSource::Static(token) => {
                    let token = token.clone();
                    inner
                        .conn
                        .handle_input(js::now(), Input::TokenFetched(request, Ok(token)));
                }
                TokenSource::Provider(_) => token_requests.push(request),
            },
        }
    }
    token_requests
}

/// Re-arms the single timer to the core's next deadline, if it moved.
fn rearm(shared: &Rc<Shared>, inner: &mut Inner) {
    let Some(at) = inner.conn.poll_timeout() else {
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
    let provider = match &shared.inner.borrow().token {
        TokenSource::Provider(f) => f.clone(),
        TokenSource::Static(_) => return,
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
    shared.inner.borrow_mut().token_fetches += 1;
    let weak = Rc::downgrade(shared);
    wasm_bindgen_futures::spawn_local(async move {
        let settled = JsFuture::from(promise).await;
        let Some(shared) = weak.upgrade() else { return };
        if let Ok(mut inner) = shared.inner.try_borrow_mut() {
            inner.token_fetches = inner.token_fetches.saturating_sub(1);
        }
        let result = match settled {
            Ok(v) => v
                .as_string()
                .ok_or_else(|| String::from("getToken did not resolve to a string")),
            Err(e) => Err(String::from("getToken rejected: ") + &js::describe(&e)),
        };
        feed_shared(&shared, Input::TokenFetched(request, result));
    });
}

// ---- delivering events to user code ---------------------------------------------------------

/// Hands one core event to the application (no borrow held while user code runs).
fn deliver(shared: &Rc<Shared>, event: Event) {
    match event {
        Event::StateChanged { from, to } => {
            let info = state_info(&to, js::now());
            if shared.inner.borrow().debug {
                web_sys::console::log_3(
                    &JsValue::from_str("[sockline]"),
                    &JsValue::from_str(&(String::from(from.name()) + " -> " + to.name())),
                    &info,
                );
            }
            dispatch(&shared.state_listeners, "state", |f| {
                call(shared, f, &info, "state");
            });
        }
        Event::Message { event, data, .. } => {
            // Decode the payload once, and only if someone listens.
            let mut value = None;
            dispatch(&shared.listeners, &event, |f| {
                let value = value.get_or_insert_with(|| js::parse_json(data.json()));
                call(shared, f, value, &event);
            });
        }
        Event::Ack { id, result } => {
            let pending = shared.inner.borrow_mut().pending.remove(&id);
            match (pending, result) {
                (Some(p), Ok(data)) => {
                    let value = data
                        .map(|d| js::parse_json(d.json()))
                        .unwrap_or(JsValue::UNDEFINED);
                    let _ = p.resolve.call1(&JsValue::UNDEFINED, &value);
                }
                (Some(p), Err(e)) => {
                    let _ = p.reject.call1(&JsValue::UNDEFINED, &ack_error(id, &e));
                }
                (None, Ok(_)) => {}
                (None, Err(e)) => emit_error(shared, &ack_error(id, &e)),
            }
        }
        Event::Error(e) => emit_error(shared, &client_error(&e)),
        Event::Resumed { missed } => {
            let info = js::object();
            js::set(&info, "missed", &js::num_u64(missed));
            dispatch(&shared.listeners, "resumed", |f| {
                call(shared, f, &info, "resumed")
            });
        }
        Event::ResumeFailed => {
            dispatch(&shared.listeners, "resume_failed", |f| {
                call(shared, f, &JsValue::UNDEFINED, "resume_failed")
            });
        }
    }
}

/// `{ state, attempt, reason, nextRetryMs }` (plus `message` when the reason has details).
pub(crate) fn state_info(state: &ConnectionState, now: Instant) -> JsValue {
    let info = js::object();
    js::set(&info, "state", &JsValue::from_str(state.name()));
    js::set(&info, "attempt", &js::num(state.attempt()));
    let (reason, message) = match state {
        ConnectionState::Disconnected { reason } => (
            JsValue::from_str(reason.code()),
            JsValue::from_str(&reason.to_string()),
        ),
        _ => (JsValue::NULL, JsValue::UNDEFINED),
    };
    js::set(&info, "reason", &reason);
    if !message.is_undefined() {
        js::set(&info, "message", &message);
    }
    let next = match state {
        ConnectionState::Reconnecting {
            next_at: Some(at), ..
        } => js::num_u64(at.as_millis().saturating_sub(now.as_millis())),
        _ => JsValue::NULL,
    };
    js::set(&info, "nextRetryMs", &next);
    info
}

/// Calls a user listener; an exception becomes an `error` event (or, thrown by an `error`
/// listener itself, a console error), never a panic or a stuck client.
fn call(shared: &Rc<Shared>, f: &Function, arg: &JsValue, name: &str) {
    if let Err(thrown) = f.call1(&JsValue::UNDEFINED, arg) {
        let message = String::from("a `") + name + "` listener threw: " + &js::describe(&thrown);
        let err = js::error("listener_threw", &message);
        js::set(&err, "cause", &thrown);
        if name == "error" {
            web_sys::console::error_2(&JsValue::from_str("[sockline]"), &err);
        } else {
            emit_error(shared, &err);
        }
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
    js::error(e.code(), &e.to_string())
}

fn ack_error(id: SendId, e: &AckError) -> JsValue {
    let err = js::error(e.code(), &e.to_string());
    js::set(&err, "id", &js::num_u64(id.0));
    err
}

/// Adds a listener for `name` and returns the id to remove it with.
pub(crate) fn add_listener(
    shared: &Shared,
    name: String,
    f: Function,
) -> crate::events::ListenerId {
    shared.listeners.borrow_mut().add(Topic::Named(name), f)
}
