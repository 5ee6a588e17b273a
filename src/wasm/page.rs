//! The page listeners, as RAII listeners removed on drop (the shape of `gloo-events`'
//! `EventListener`, in a few lines: gloo-events' options and thread-local cost ~1 KiB of wasm
//! that the browser package does not need): `visibilitychange` →
//! `Env(Hidden | Visible)`, `online`/`offline` → `Env(Online | Offline)`, and
//! `pagehide`/`pageshow` → `Env(Offline | Online)` so a page entering the back-forward cache
//! closes its socket (an open socket makes a page ineligible) and reconnects when restored.
//! Like the socket, it only knows the callback it was given.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{EventTarget, PageTransitionEvent, VisibilityState};

use super::js;
use super::socket::EventClosure;
use crate::core::Env;

/// One `addEventListener`, removed (and its closure freed) on drop.
#[must_use = "dropping the listener removes it"]
struct EventListener {
    target: EventTarget,
    kind: &'static str,
    closure: EventClosure,
}

impl EventListener {
    fn new(target: &EventTarget, kind: &'static str, on: impl Fn(JsValue) + 'static) -> Self {
        let closure = EventClosure::new(on);
        let _ = target.add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref());
        EventListener {
            target: target.clone(),
            kind,
            closure,
        }
    }
}

impl Drop for EventListener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.closure.as_ref().unchecked_ref());
    }
}

/// The installed listeners; dropping this removes them.
pub(crate) struct PageListeners {
    listeners: Vec<EventListener>,
    closures: Rc<Cell<u32>>,
}

impl PageListeners {
    /// Installs the listeners (none outside a window, e.g. in a worker) and returns them with
    /// the page's state right now (`Hidden`, `Offline`) for the caller to feed.
    /// Without `follow_visibility` the page's visibility is not listened to (the app, or the
    /// tab group's leader, reports it with `setVisible`).
    pub(crate) fn install(
        on_env: Rc<dyn Fn(Env)>,
        follow_visibility: bool,
        closures: Rc<Cell<u32>>,
    ) -> (Self, Vec<Env>) {
        let mut listeners = Vec::new();
        let mut now = Vec::new();
        if let Some(window) = web_sys::window() {
            if let Some(document) = window.document().filter(|_| follow_visibility) {
                let (on, doc) = (on_env.clone(), document.clone());
                listeners.push(EventListener::new(
                    &document,
                    "visibilitychange",
                    move |_| {
                        on(if doc.visibility_state() == VisibilityState::Hidden {
                            Env::Hidden
                        } else {
                            Env::Visible
                        });
                    },
                ));
                if document.visibility_state() == VisibilityState::Hidden {
                    now.push(Env::Hidden);
                }
            }
            for (kind, env) in [
                ("online", Env::Online),
                ("offline", Env::Offline),
                ("pagehide", Env::Offline),
            ] {
                let on = on_env.clone();
                listeners.push(EventListener::new(&window, kind, move |_| on(env)));
            }
            let (on, win) = (on_env, window.clone());
            listeners.push(EventListener::new(&window, "pageshow", move |e| {
                let restored = e
                    .dyn_ref::<PageTransitionEvent>()
                    .is_some_and(PageTransitionEvent::persisted);
                if restored && navigator_online(&win) {
                    on(Env::Online);
                }
            }));
            if !navigator_online(&window) {
                now.push(Env::Offline);
            }
        }
        closures.set(closures.get() + listeners.len() as u32);
        (
            PageListeners {
                listeners,
                closures,
            },
            now,
        )
    }

    /// How many listeners are installed.
    pub(crate) fn len(&self) -> usize {
        self.listeners.len()
    }
}

impl Drop for PageListeners {
    fn drop(&mut self) {
        let n = self.listeners.len() as u32;
        self.closures.set(self.closures.get().saturating_sub(n));
    }
}

fn navigator_online(window: &web_sys::Window) -> bool {
    js::get(&js::get(window, "navigator"), "onLine")
        .as_bool()
        .unwrap_or(true)
}
