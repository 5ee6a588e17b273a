//! The `json` check: the client's JSON scanner (`protocol::json`) agrees with `serde_json` on
//! any text — which texts are one JSON value, what an object's members are (each raw slice
//! reads as the value serde reads for that key), and what strings, integers, booleans and
//! `null` read as — and a payload it takes still fits in a frame serde reads.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::protocol::json as scanner;

/// Runs the check on one input.
pub fn json(data: &[u8]) {
    let text = super::text(data);
    let text = text.as_ref();
    let ours = scanner::validate_at(text, 0);
    let theirs = serde_json::from_str::<Value>(text);
    match &theirs {
        Ok(_) => assert_eq!(ours, Ok(()), "refused {text:?}; serde_json read it"),
        Err(e) if super::out_of_range(&e.to_string()) => {}
        Err(e) => assert!(ours.is_err(), "accepted {text:?}; serde_json: {e}"),
    }
    members(text, ours.is_ok(), theirs.ok());
    scalars(text);
    // A payload the core takes (one level inside its frame) is one the server can read inside
    // that frame: not nested too deep.
    if scanner::validate_at(text, 1).is_ok() {
        let framed = format!("[{text}]");
        if let Err(e) = serde_json::from_str::<Value>(&framed) {
            assert!(
                super::out_of_range(&e.to_string()),
                "payload {text:?} taken, but serde_json refuses it in a frame: {e}"
            );
        }
    }
}

/// `object_members` splits exactly the objects serde reads, into the members serde reads.
fn members(text: &str, valid: bool, value: Option<Value>) {
    let split = scanner::object_members(text);
    let Some(value) = value else {
        // serde refused it: either it is not JSON (then neither is it an object we split), or
        // a number is beyond f64, which only the scanner takes.
        if !valid {
            assert!(split.is_err(), "split {text:?}, which is not JSON");
        }
        return;
    };
    let Value::Object(map) = value else {
        assert!(split.is_err(), "split {text:?}, which is not an object");
        return;
    };
    let members = match split {
        Ok(members) => members,
        Err(e) => panic!("did not split {text:?} ({e}); serde_json read {map:?}"),
    };
    // serde keeps the last of a repeated key; the scanner keeps them all, in order.
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, raw) in &members {
        assert_eq!(
            raw.trim(),
            *raw,
            "member {key:?} of {text:?} has whitespace around it"
        );
        let inside = (raw.as_ptr() as usize).checked_sub(text.as_ptr() as usize);
        assert!(
            inside.and_then(|at| text.get(at..at + raw.len())) == Some(*raw),
            "member {key:?} is not a slice of {text:?}"
        );
        last.insert(key.as_ref(), raw);
    }
    assert_eq!(
        last.len(),
        map.len(),
        "{text:?}: keys {:?} vs serde's {:?}",
        last.keys().collect::<Vec<_>>(),
        map.keys().collect::<Vec<_>>()
    );
    for (key, raw) in last {
        let Some(expected) = map.get(key) else {
            panic!("{text:?}: key {key:?} unknown to serde_json");
        };
        match serde_json::from_str::<Value>(raw) {
            Ok(v) => assert_eq!(&v, expected, "{text:?}: member {key:?} = {raw:?}"),
            Err(e) => panic!("{text:?}: member {key:?} = {raw:?} does not read alone: {e}"),
        }
    }
}

/// Strings, integers, booleans and `null` read as serde reads them; strings write back as
/// serde writes them.
fn scalars(text: &str) {
    let string = scanner::parse_string(text);
    match serde_json::from_str::<String>(text) {
        Ok(s) => {
            assert_eq!(string.as_ref(), Ok(&s), "string {text:?}");
            let mut written = String::new();
            scanner::write_string(&mut written, &s);
            assert_eq!(
                Some(written),
                serde_json::to_string(&s).ok(),
                "{s:?} written differently"
            );
        }
        Err(e) => assert!(
            string.is_err(),
            "read {text:?} as {string:?}; serde_json: {e}"
        ),
    }
    assert_eq!(
        scanner::parse_u64(text).ok(),
        serde_json::from_str::<u64>(text).ok(),
        "u64 {text:?}"
    );
    assert_eq!(
        scanner::parse_bool(text).ok(),
        serde_json::from_str::<bool>(text).ok(),
        "bool {text:?}"
    );
    assert_eq!(
        scanner::is_null(text),
        serde_json::from_str::<()>(text).is_ok(),
        "null {text:?}"
    );
    if let Ok(n) = scanner::parse_u64(text) {
        let mut written = String::new();
        scanner::write_u64(&mut written, n);
        assert_eq!(written, n.to_string());
    }
}
