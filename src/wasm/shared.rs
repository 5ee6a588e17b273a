//! [`Shared`]: everything one browser client owns — the shell behind a `RefCell`, the socket,
//! the single timer, the page listeners, the listener registries — and its release on `free()`.
//! Closures reach it only through a `Weak<Shared>`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::js;
use super::page::PageListeners;
use super::pump::{feed, feed_shared};
use super::socket::Socket;
use crate::core::{Connection, Input, Instant, SocketId};
use crate::listeners::Registry;
use crate::shell::Shell;

/// A pending `request()`'s promise callbacks.
pub(crate) struct Pending {
    pub(crate) resolve: Function,
    pub(crate) reject: Function,
}

/// Everything one client owns; closures reach it through `Weak<Shared>`.
pub(crate) struct Shared {
    pub(crate) inner: RefCell<Inner>,
    /// `on(name, cb)` listeners.
    pub(crate) listeners: RefCell<Registry<Function>>,
    /// `onState(cb)` listeners.
    pub(crate) state_listeners: RefCell<Registry<Function>>,
    /// `onAny(cb)` listeners: every server event, with its name and seq.
    pub(crate) any_listeners: RefCell<Registry<Function>>,
    /// Set while the pump runs: a nested call (from a listener) leaves the draining to it.
    pub(super) pumping: Cell<bool>,
    /// Live closures this client has handed to the browser (debug hook, see `stats()`).
    pub(super) closures: Rc<Cell<u32>>,
}

/// The mutable state behind the `RefCell`.
pub(crate) struct Inner {
    pub(crate) shell: Shell<Pending>,
    /// `getToken()`; `None` when the config holds a static token.
    pub(super) provider: Option<Function>,
    /// The app's `WebSocket` constructor, if it gave one.
    pub(super) web_socket: Option<Function>,
    /// The socket the core asked for (one at a time; a stale one is closed before the next).
    pub(super) socket: Option<(SocketId, Socket)>,
    /// The armed timer and the deadline it is for.
    pub(super) timer: Option<(Instant, Timeout)>,
    page: Option<PageListeners>,
    /// `getToken()` promises not settled yet.
    pub(super) token_fetches: u32,
    pub(crate) debug: bool,
    /// `free()` ran: every method is refused, every late callback ignored.
    pub(crate) freed: bool,
}

/// The driver's counters for `stats().debug`.
pub(crate) struct DebugCounts {
    pub(crate) closures: u32,
    pub(crate) sockets: usize,
    pub(crate) page_listeners: usize,
    pub(crate) listeners: usize,
    pub(crate) state_listeners: usize,
    pub(crate) pending_requests: usize,
    pub(crate) token_fetches: u32,
    pub(crate) timer_armed: bool,
}

impl Shared {
    /// A client in `disconnected`, with the page listeners installed.
    pub(crate) fn new(
        conn: Connection,
        provider: Option<Function>,
        web_socket: Option<Function>,
        debug: bool,
        follow_visibility: bool,
    ) -> Rc<Shared> {
        let shared = Rc::new(Shared {
            inner: RefCell::new(Inner {
                shell: Shell::new(conn),
                provider,
                web_socket,
                socket: None,
                timer: None,
                page: None,
                token_fetches: 0,
                debug,
                freed: false,
            }),
            listeners: RefCell::default(),
            state_listeners: RefCell::default(),
            any_listeners: RefCell::default(),
            pumping: Cell::new(false),
            closures: Rc::new(Cell::new(0)),
        });
        let weak = Rc::downgrade(&shared);
        let on_env = Rc::new(move |env| feed(&weak, Input::Env(env)));
        let (page, now) =
            PageListeners::install(on_env, follow_visibility, shared.closures.clone());
        if let Ok(mut inner) = shared.inner.try_borrow_mut() {
            inner.page = Some(page);
        }
        for env in now {
            feed_shared(&shared, Input::Env(env));
        }
        shared
    }

    /// Whether `free()` ran (a running call holds the borrow: not freed, then).
    pub(crate) fn is_freed(&self) -> bool {
        self.inner.try_borrow().is_ok_and(|inner| inner.freed)
    }

    /// Counters for the leak checks.
    pub(crate) fn debug_counts(&self) -> DebugCounts {
        let len = |r: &RefCell<Registry<Function>>| r.try_borrow().map_or(0, |r| r.len());
        let (listeners, state_listeners) = (len(&self.listeners), len(&self.state_listeners));
        let closures = self.closures.get();
        match self.inner.try_borrow() {
            Ok(inner) => DebugCounts {
                closures,
                sockets: usize::from(inner.socket.is_some()),
                page_listeners: inner.page.as_ref().map_or(0, PageListeners::len),
                listeners,
                state_listeners,
                pending_requests: inner.shell.pending_requests(),
                token_fetches: inner.token_fetches,
                timer_armed: inner.timer.is_some(),
            },
            // Only while a call into the client runs, which never asks for these.
            Err(_) => DebugCounts {
                closures,
                sockets: 0,
                page_listeners: 0,
                listeners,
                state_listeners,
                pending_requests: 0,
                token_fetches: 0,
                timer_armed: false,
            },
        }
    }

    /// Releases everything the browser holds for this client: the socket (closed with 1000),
    /// the timer, the page listeners, the listeners; pending requests are rejected with `freed`.
    pub(crate) fn shutdown(&self) {
        let (socket, timer, page, pending) = {
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return;
            };
            if inner.freed {
                return;
            }
            inner.freed = true;
            (
                inner.socket.take(),
                inner.timer.take(),
                inner.page.take(),
                inner.shell.take_pending(),
            )
        };
        drop((socket, timer, page));
        if let Ok(mut l) = self.listeners.try_borrow_mut() {
            *l = Registry::default();
        }
        if let Ok(mut l) = self.state_listeners.try_borrow_mut() {
            *l = Registry::default();
        }
        if let Ok(mut l) = self.any_listeners.try_borrow_mut() {
            *l = Registry::default();
        }
        let err = js::error(
            "freed",
            "the client was freed before the request was acknowledged",
        );
        for p in pending {
            let _ = p.reject.call1(&JsValue::UNDEFINED, &err);
        }
    }
}
