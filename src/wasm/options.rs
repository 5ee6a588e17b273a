//! The core's [`ConnectionConfig`] from the options `new SocklineClient(options)` was given.
//! The TypeScript driver checks them (js/src/core/options.ts: a missing or mistyped option is an
//! `invalid_options` error naming it) and hands them over as numbers and strings; what is not
//! given keeps the core's default. Never panics: any number is read (a NaN is "not given", an
//! out-of-range one saturates), and a client id the protocol would refuse is an error.

use std::time::Duration;

use crate::core::{ConnectionConfig, StaticToken};
use crate::protocol::is_client_id;

/// How many numbers `sl_call`'s `NEW` reads (little-endian `f64`s at the start of the buffer),
/// in this order: `backoff.initialMs`, `backoff.maxMs`, `backoff.factor`, `backoff.maxRetries`
/// (`Infinity`: never give up), `backoff.jitter` (0 / 1), `pauseWhenHidden` (0 / 1),
/// `hiddenGraceMs`, `heartbeatGraceMs`, `outbox.maxMessages`, `outbox.maxBytes`, `firstSendId`.
pub(crate) const NUMS: usize = 11;

/// The message of an unacceptable client id (the driver checks it first, in the same words).
pub(crate) const BAD_CLIENT_ID: &str = "`clientId` must be 16-64 characters of [A-Za-z0-9_-]";

/// Milliseconds, when given.
fn ms(n: f64) -> Option<Duration> {
    (n >= 0.0).then(|| Duration::from_millis(n as u64))
}

/// A count, when given (saturating at `u64::MAX`).
fn count(n: f64) -> Option<u64> {
    (n >= 0.0).then_some(n as u64)
}

/// A boolean (0 / 1), when given.
fn flag(n: f64) -> Option<bool> {
    (!n.is_nan()).then_some(n != 0.0)
}

/// The config for `url` as client `client_id`, with `token` as a static token (else the
/// driver's `getToken()` is asked) and `seed` for the jitter (it must differ between clients).
pub(crate) fn config(
    n: &[f64; NUMS],
    url: &str,
    client_id: &str,
    token: Option<&str>,
    seed: u64,
) -> Result<ConnectionConfig, &'static str> {
    if !is_client_id(client_id) {
        return Err(BAD_CLIENT_ID);
    }
    let mut config = ConnectionConfig::new(String::from(url));
    config.seed = seed;
    config.client_id = Some(String::from(client_id));
    config.token = token.map(|t| StaticToken::new(String::from(t)));
    let b = &mut config.backoff;
    if let Some(ms) = ms(n[0]) {
        b.initial = ms;
    }
    if let Some(ms) = ms(n[1]) {
        b.max = ms;
    }
    if n[2] >= 1.0 {
        b.factor = n[2];
    }
    if n[3] == f64::INFINITY {
        b.max_retries = None;
    } else if let Some(retries) = count(n[3]) {
        b.max_retries = Some(u32::try_from(retries).unwrap_or(u32::MAX));
    }
    if let Some(jitter) = flag(n[4]) {
        b.jitter = jitter;
    }
    if let Some(pause) = flag(n[5]) {
        config.pause_when_hidden = pause;
    }
    if let Some(ms) = ms(n[6]) {
        config.hidden_grace = ms;
    }
    if let Some(ms) = ms(n[7]) {
        config.heartbeat_grace = ms;
    }
    if let Some(max) = count(n[8]) {
        config.outbox_max_messages = usize::try_from(max).unwrap_or(usize::MAX);
    }
    if let Some(max) = count(n[9]) {
        config.outbox_max_bytes = usize::try_from(max).unwrap_or(usize::MAX);
    }
    if let Some(first) = count(n[10]) {
        config.first_send_id = first.max(1);
    }
    Ok(config)
}
