//! Browser tests of the wasm driver and its JS API, in headless Chromium against the reference
//! server. Run through `make test-browser`: scripts/browser-harness.mjs starts the server and
//! passes its control URL at compile time in `SOCKLINE_HARNESS`.
#![cfg(target_arch = "wasm32")]

use js_sys::{Function, Promise, Reflect};
use sockline::wasm::SocklineClient;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
export async function http(method, url, body) {
  const r = await fetch(url, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${text}`);
  return JSON.parse(text);
}
export function setHidden(hidden) {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
  document.dispatchEvent(new Event('visibilitychange'));
}
export function fire(name) { window.dispatchEvent(new Event(name)); }
export function recorder() {
  const calls = [];
  const f = (x) => { calls.push(x); };
  f.calls = calls;
  return f;
}
export function tokenProvider(url) { return async () => (await http('GET', url)).token; }
export function thrower() { return () => { throw new Error('boom'); }; }
export function count(rec) { return rec.calls.length; }
export function last(rec) { return rec.calls[rec.calls.length - 1]; }
export function nth(rec, i) { return rec.calls[i]; }
export function isPlainObject(x) { return x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype; }
export function bigint() { return { n: 10n }; }
"#)]
extern "C" {
    fn sleep(ms: u32) -> Promise;
    fn http(method: &str, url: &str, body: Option<String>) -> Promise;
    #[wasm_bindgen(js_name = setHidden)]
    fn set_hidden(hidden: bool);
    fn fire(name: &str);
    fn recorder() -> Function;
    fn thrower() -> Function;
    #[wasm_bindgen(js_name = tokenProvider)]
    fn token_provider(url: &str) -> Function;
    fn count(rec: &Function) -> u32;
    fn last(rec: &Function) -> JsValue;
    fn nth(rec: &Function, i: u32) -> JsValue;
    #[wasm_bindgen(js_name = isPlainObject)]
    fn is_plain_object(x: &JsValue) -> bool;
    fn bigint() -> JsValue;
}

fn harness() -> &'static str {
    match option_env!("SOCKLINE_HARNESS") {
        Some(url) => url,
        None => {
            panic!("SOCKLINE_HARNESS is not set: run the browser tests with `make test-browser`")
        }
    }
}

async fn call(method: &str, path: &str, body: Option<String>) -> JsValue {
    let url = String::from(harness()) + path;
    JsFuture::from(http(method, &url, body))
        .await
        .unwrap_or_else(|e| panic!("{method} {path} failed: {e:?}"))
}

async fn pause(ms: u32) {
    let _ = JsFuture::from(sleep(ms)).await;
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn get_str(v: &JsValue, key: &str) -> String {
    get(v, key).as_string().unwrap_or_default()
}

fn get_num(v: &JsValue, key: &str) -> f64 {
    get(v, key).as_f64().unwrap_or(f64::NAN)
}

async fn ws_url() -> String {
    get_str(&call("GET", "/config", None).await, "ws")
}

async fn token(user: &str) -> String {
    get_str(
        &call("GET", &format!("/token?user={user}"), None).await,
        "token",
    )
}

/// Polls `done` every 20 ms for up to `ms`.
async fn wait_until(what: &str, ms: u32, mut done: impl FnMut() -> bool) {
    let mut waited = 0;
    while !done() {
        assert!(waited < ms, "timed out after {ms} ms waiting for {what}");
        pause(20).await;
        waited += 20;
    }
}

async fn wait_state(client: &SocklineClient, state: &str, ms: u32) {
    let what = format!("state {state}");
    wait_until(&what, ms, || client.state() == state).await;
}

/// A client for `user` with a fixed token and `extra` JSON options merged in.
async fn client_for(user: &str, extra: &str) -> SocklineClient {
    let options = format!(
        r#"{{"url":"{}","token":"{}"{}}}"#,
        ws_url().await,
        token(user).await,
        extra
    );
    let options = js_sys::JSON::parse(&options).expect("options json");
    SocklineClient::new(options).expect("client")
}

async fn notify(body: String) -> f64 {
    get_num(&call("POST", "/notify", Some(body)).await, "delivered")
}

fn on(client: &SocklineClient, name: &str, f: &Function) -> Function {
    client
        .on(JsValue::from_str(name), f.clone().into())
        .expect("on")
}

fn code_of(err: &JsValue) -> String {
    get_str(err, "code")
}

#[wasm_bindgen_test]
async fn connects_authenticates_and_delivers_a_notification_as_a_plain_object() {
    let client = client_for("bw-notify", "").await;
    let notes = recorder();
    let states = recorder();
    on(&client, "new_notification", &notes);
    client.on_state(states.clone().into()).expect("onState");
    assert_eq!(client.state(), "disconnected");
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;
    let seen: Vec<String> = (0..count(&states))
        .map(|i| get_str(&nth(&states, i), "state"))
        .collect();
    assert_eq!(seen, ["connecting", "authenticating", "connected"]);

    let delivered = notify(
        r#"{"user":"bw-notify","event":"new_notification","data":{"id":"n1","title":"Hello","body":"b"}}"#
            .into(),
    )
    .await;
    assert_eq!(delivered, 1.0);
    wait_until("the notification", 3_000, || count(&notes) == 1).await;
    let note = last(&notes);
    assert!(is_plain_object(&note));
    assert_eq!(get_str(&note, "title"), "Hello");
    assert_eq!(get_str(&note, "id"), "n1");
}

#[wasm_bindgen_test]
async fn server_killed_reconnects_after_restart_and_rejoins_rooms() {
    // getToken: the token is fetched again for every attempt.
    let options = format!(
        r#"{{"url":"{}","backoff":{{"initialMs":100,"maxMs":300,"maxRetries":100}}}}"#,
        ws_url().await
    );
    let options = js_sys::JSON::parse(&options).expect("options json");
    let get_token = token_provider(&(String::from(harness()) + "/token?user=bw-restart"));
    Reflect::set(&options, &"getToken".into(), &get_token).expect("set");
    let client = SocklineClient::new(options).expect("client");
    let messages = recorder();
    on(&client, "new_message", &messages);
    client.join("chat:bw-restart").expect("join");
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;

    let states = recorder();
    client.on_state(states.clone().into()).expect("onState");
    let before = get(&client.stats(), "debug");
    call("POST", "/kill", None).await;
    wait_state(&client, "reconnecting", 5_000).await;
    // `reconnecting` says why, as every transition does.
    let lost = nth(&states, 0);
    assert_eq!(get_str(&lost, "state"), "reconnecting");
    assert_eq!(get_str(&lost, "reason"), "socket_closed");
    assert!(
        get_str(&lost, "message").contains("1006"),
        "{}",
        get_str(&lost, "message")
    );
    pause(400).await; // a few failed retries while the server is down
    assert_ne!(client.state(), "connected");
    call("POST", "/start", None).await;
    wait_state(&client, "connected", 10_000).await;

    // The room was re-joined on the new session: a room notification reaches the client.
    let body = r#"{"room":"chat:bw-restart","event":"new_message","data":{"chat_id":"bw-restart","from":"srv","text":"hi","id":"m1"}}"#;
    let mut delivered = 0.0;
    for _ in 0..50 {
        delivered = notify(body.into()).await;
        if delivered >= 1.0 {
            break;
        }
        pause(50).await;
    }
    assert!(delivered >= 1.0, "room chat:bw-restart was not re-joined");
    wait_until("the room message", 3_000, || count(&messages) >= 1).await;
    assert_eq!(get_str(&last(&messages), "text"), "hi");
    assert_eq!(get_num(&client.stats(), "reconnects"), 1.0);
    // The sockets the server dropped were released with their closures.
    let after = get(&client.stats(), "debug");
    assert_eq!(get_num(&after, "sockets"), 1.0);
    assert_eq!(get_num(&after, "closures"), get_num(&before, "closures"));
    assert_eq!(get_num(&after, "tokenFetches"), 0.0);
}

#[wasm_bindgen_test]
async fn hidden_pauses_and_visible_reconnects_at_once() {
    // debug: every transition is logged with a `[sockline]` prefix (exercised, not asserted).
    let client = client_for("bw-hidden", r#","debug":true"#).await;
    let states = recorder();
    client.on_state(states.clone().into()).expect("onState");
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;

    set_hidden(true);
    assert_eq!(client.state(), "disconnected");
    assert_eq!(get_str(&last(&states), "reason"), "paused");

    set_hidden(false);
    // At once: no backoff, the attempt starts inside the event handler.
    assert_eq!(client.state(), "connecting");
    wait_state(&client, "connected", 5_000).await;
}

#[wasm_bindgen_test]
async fn offline_waits_without_spending_retries_and_online_connects_at_once() {
    let client = client_for("bw-offline", r#","backoff":{"initialMs":50,"maxMs":50}"#).await;
    let states = recorder();
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;
    client.on_state(states.clone().into()).expect("onState");

    fire("offline");
    assert_eq!(client.state(), "reconnecting");
    let change = last(&states);
    assert!(get(&change, "nextRetryMs").is_null());
    assert_eq!(get_num(&change, "attempt"), 0.0);
    // Far longer than the backoff: still waiting, nothing attempted, no retry spent.
    pause(600).await;
    assert_eq!(client.state(), "reconnecting");
    assert_eq!(count(&states), 1);
    assert_eq!(get_num(&client.stats(), "attempt"), 0.0);

    fire("online");
    assert_eq!(client.state(), "connecting");
    wait_state(&client, "connected", 5_000).await;
}

#[wasm_bindgen_test]
async fn disconnect_is_not_undone_by_visible_or_online() {
    let client = client_for("bw-stop", "").await;
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;
    client.disconnect();
    assert_eq!(client.state(), "disconnected");
    set_hidden(true);
    set_hidden(false);
    fire("offline");
    fire("online");
    fire("pageshow");
    pause(300).await;
    assert_eq!(client.state(), "disconnected");
    assert_eq!(get_num(&get(&client.stats(), "debug"), "sockets"), 0.0);
}

#[wasm_bindgen_test]
async fn a_throwing_listener_neither_stops_other_listeners_nor_the_client() {
    let client = std::rc::Rc::new(client_for("bw-throw", "").await);
    let errors = recorder();
    let notes = recorder();
    on(&client, "error", &errors);
    on(&client, "new_notification", &thrower());
    on(&client, "new_notification", &notes);
    // A listener that calls straight back into the client.
    let weak = std::rc::Rc::downgrade(&client);
    let echo: Function = Closure::<dyn Fn(JsValue)>::new(move |n: JsValue| {
        if let Some(client) = weak.upgrade() {
            let data = js_sys::Object::new();
            Reflect::set(&data, &"id".into(), &get(&n, "id")).expect("set");
            client
                .send("mark_notification_read".into(), data.into())
                .expect("send from a listener");
        }
    })
    .into_js_value()
    .unchecked_into();
    on(&client, "new_notification", &echo);
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;

    let body = |id: &str| {
        format!(
            r#"{{"user":"bw-throw","event":"new_notification","data":{{"id":"{id}","title":"t"}}}}"#
        )
    };
    notify(body("a")).await;
    notify(body("b")).await;
    wait_until("both notifications", 3_000, || count(&notes) == 2).await;
    wait_until("two listener errors", 3_000, || count(&errors) == 2).await;
    let err = last(&errors);
    assert!(err.is_instance_of::<js_sys::Error>());
    assert_eq!(code_of(&err), "listener_threw");
    assert_eq!(client.state(), "connected");

    // The client still works: a request round-trips (both notifications were marked read).
    let options = js_sys::JSON::parse(r#"{"timeoutMs":3000}"#).expect("json");
    let reply = JsFuture::from(client.request(
        "get_unread_count".into(),
        js_sys::Object::new().into(),
        options,
    ))
    .await
    .expect("request");
    assert_eq!(get_num(&reply, "count"), 0.0);
}

#[wasm_bindgen_test]
async fn fifty_reconnect_cycles_leave_no_growth() {
    let client = client_for("bw-cycles", "").await;
    let notes = recorder();
    let off = on(&client, "new_notification", &notes);
    let off_state = client.on_state(recorder().into()).expect("onState");
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;
    let before = get(&client.stats(), "debug");
    let n = |d: &JsValue, k: &str| get_num(d, k);
    assert_eq!(n(&before, "sockets"), 1.0);
    assert_eq!(n(&before, "pageListeners"), 5.0);

    for i in 0..50 {
        match i % 3 {
            0 => {
                fire("offline");
                fire("online");
            }
            1 => {
                set_hidden(true);
                set_hidden(false);
            }
            _ => {
                client.disconnect();
                client.connect().expect("connect");
            }
        }
        wait_state(&client, "connected", 5_000).await;
    }
    // Let the closed sockets' late events (if any) arrive.
    pause(200).await;
    let after = get(&client.stats(), "debug");
    for key in [
        "closures",
        "sockets",
        "pageListeners",
        "listeners",
        "stateListeners",
        "pendingRequests",
        "tokenFetches",
    ] {
        assert_eq!(
            n(&after, key),
            n(&before, key),
            "debug.{key} grew over 50 cycles"
        );
    }
    // Unsubscribing removes exactly the listeners; free() releases everything.
    off.call0(&JsValue::UNDEFINED).expect("off");
    off_state.call0(&JsValue::UNDEFINED).expect("off");
    let d = get(&client.stats(), "debug");
    assert_eq!(n(&d, "listeners"), 0.0);
    assert_eq!(n(&d, "stateListeners"), 0.0);
    drop(client); // what JS `free()` does
}

#[wasm_bindgen_test]
fn bad_input_is_a_js_error_with_a_code_never_a_panic() {
    let bad = [
        "42",
        "null",
        r#"{"token":"t"}"#,
        r#"{"url":5,"token":"t"}"#,
        r#"{"url":"http://x","token":"t"}"#,
        r#"{"url":"ws://x"}"#,
        r#"{"url":"ws://x","token":"t","backoff":{"initialMs":"1"}}"#,
        r#"{"url":"ws://x","token":"t","backoff":{"maxRetries":1.5}}"#,
        r#"{"url":"ws://x","token":"t","outbox":3}"#,
        r#"{"url":"ws://x","token":"t","debug":"yes"}"#,
        r#"{"url":"ws://x","getToken":"not a function"}"#,
    ];
    for options in bad {
        let err = SocklineClient::new(js_sys::JSON::parse(options).expect("json"))
            .err()
            .unwrap_or_else(|| panic!("{options} was accepted"));
        assert!(err.is_instance_of::<js_sys::Error>(), "{options}");
        assert_eq!(code_of(&err), "invalid_options", "{options}");
    }
    let ok = js_sys::JSON::parse(r#"{"url":"ws://127.0.0.1:9/ws","token":"t"}"#).expect("json");
    let client = SocklineClient::new(ok).expect("client");
    let err = client
        .on(JsValue::from_f64(5.0), recorder().into())
        .expect_err("bad name");
    assert_eq!(code_of(&err), "invalid_argument");
    let err = client
        .on("x".into(), JsValue::from_f64(5.0))
        .expect_err("bad listener");
    assert_eq!(code_of(&err), "invalid_argument");
    let err = client.send("x".into(), bigint()).expect_err("bigint");
    assert_eq!(code_of(&err), "bad_payload");
    let err = client
        .send("".into(), JsValue::NULL)
        .expect_err("empty name");
    assert_eq!(code_of(&err), "empty_event_name");
    assert_eq!(client.state(), "disconnected");
}

#[wasm_bindgen_test]
async fn a_binary_frame_is_a_binary_frame_error_and_the_client_stays_connected() {
    let url = get_str(&call("GET", "/config", None).await, "scripted");
    let options = js_sys::JSON::parse(&format!(r#"{{"url":"{url}","token":"t"}}"#)).unwrap();
    let client = SocklineClient::new(options).expect("client");
    let errors = recorder();
    on(&client, "error", &errors);
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;
    wait_until("the binary frame error", 3_000, || count(&errors) == 1).await;
    assert_eq!(code_of(&last(&errors)), "binary_frame");
    pause(100).await;
    assert_eq!(client.state(), "connected");
    assert_eq!(count(&errors), 1);
    drop(client);
}

#[wasm_bindgen_test]
async fn a_failed_plain_send_is_an_error_event_and_an_ack_event() {
    let client = client_for("bw-failed-send", "").await;
    let errors = recorder();
    let acks = recorder();
    on(&client, "error", &errors);
    on(&client, "ack", &acks);
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;
    let ok = client
        .send(JsValue::from_str("get_unread_count"), JsValue::UNDEFINED)
        .expect("send");
    let bad = client
        .send(JsValue::from_str("no_such_event"), JsValue::UNDEFINED)
        .expect("send");
    wait_until("both acks", 3_000, || count(&acks) == 2).await;
    let first = nth(&acks, 0);
    assert_eq!(get_num(&first, "id"), ok);
    assert_eq!(get(&first, "ok").as_bool(), Some(true));
    assert_eq!(get_num(&get(&first, "data"), "count"), 0.0);
    let second = nth(&acks, 1);
    assert_eq!(get_num(&second, "id"), bad);
    assert_eq!(get(&second, "ok").as_bool(), Some(false));
    assert_eq!(code_of(&get(&second, "error")), "unknown_event");
    assert_eq!(count(&errors), 1);
    assert_eq!(code_of(&last(&errors)), "unknown_event");
    assert_eq!(get_num(&last(&errors), "id"), bad);
    drop(client);
}

#[wasm_bindgen_test]
async fn reconnect_replaces_a_live_socket_now_and_max_retries_infinity_is_accepted() {
    let options = format!(
        r#"{{"url":"{}","token":"{}","backoff":{{"maxRetries":1}}}}"#,
        ws_url().await,
        token("bw-reconnect").await
    );
    let options = js_sys::JSON::parse(&options).expect("options json");
    // `Infinity` is not JSON: set it on the parsed object.
    let backoff = get(&options, "backoff");
    Reflect::set(&backoff, &"maxRetries".into(), &f64::INFINITY.into()).unwrap();
    let client = SocklineClient::new(options).expect("Infinity is a valid maxRetries");
    let states = recorder();
    client.on_state(states.clone().into()).expect("onState");
    client.connect().expect("connect");
    wait_state(&client, "connected", 5_000).await;
    let before = count(&states);
    client.reconnect().expect("reconnect");
    let first = nth(&states, before);
    assert_eq!(get_str(&first, "state"), "connecting");
    assert_eq!(get_str(&first, "reason"), "reconnect");
    wait_state(&client, "connected", 5_000).await;
    assert_eq!(get_num(&client.stats(), "reconnects"), 1.0);
    drop(client);
}
