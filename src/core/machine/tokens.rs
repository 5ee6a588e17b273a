//! The token lifecycle of a [`Connection`] (PROTOCOL.md §7): answering token fetches for a
//! connection attempt or an in-band `refresh`, scheduling the refresh before the token expires,
//! and never sending a token the server said has expired.

use std::time::Duration;

use super::{Action, Connection, DisconnectReason, Failure, Instant, LinkError, RequestId, Timer};
use crate::protocol::encode;

/// How long to wait before trying a failed refresh fetch again.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

impl Connection {
    pub(super) fn handle_token(
        &mut self,
        now: Instant,
        request: RequestId,
        result: Result<String, String>,
    ) {
        if self.refresh_request == Some(request) {
            self.refresh_request = None;
            return self.refresh_with(now, result);
        }
        if self.link != (super::Link::AwaitingToken { request }) {
            return; // stale answer
        }
        match result {
            Ok(token) => self.open_socket_with(now, token),
            Err(error) => self.fail(now, Failure::Retryable(LinkError::TokenFetch(error))),
        }
    }

    /// Opens a socket with `token`, unless it is the one the server said has expired: a
    /// provider (or a static token) that can only give that one is final.
    pub(super) fn open_socket_with(&mut self, now: Instant, token: String) {
        if self.expired_token.as_deref() == Some(token.as_str()) {
            let reason = DisconnectReason::AuthRejected {
                code: "expired".into(),
                message: "the token has expired and no fresh one was given".into(),
            };
            return self.fail(now, Failure::Fatal(reason));
        }
        self.token_in_use = Some(token.clone());
        self.open_socket(token);
    }

    /// Arms the refresh for a token with `expires_in_ms` left (none: it does not expire).
    pub(super) fn schedule_refresh(&mut self, now: Instant, expires_in_ms: Option<u64>) {
        self.timers.cancel(Timer::TokenRefresh);
        let Some(life) = expires_in_ms.map(Duration::from_millis) else {
            return;
        };
        let margin = self.config.refresh_margin.min(life / 10);
        self.timers
            .set(Timer::TokenRefresh, now + life.saturating_sub(margin));
    }

    /// The refresh is due: ask the provider for a fresh token. A static token cannot be
    /// refreshed; the server closes with 4002 at expiry and the retry says so.
    pub(super) fn start_refresh(&mut self, _now: Instant) {
        if !self.link.is_live() || self.config.token.is_some() || self.refresh_request.is_some() {
            return;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.refresh_request = Some(request);
        self.actions.push_back(Action::FetchToken { request });
    }

    fn refresh_with(&mut self, now: Instant, result: Result<String, String>) {
        if !self.link.is_live() {
            return;
        }
        match result {
            Ok(token) => {
                self.token_in_use = Some(token.clone());
                self.send_frame(encode::refresh(&token));
            }
            // Try again shortly; if the token expires first, the server's 4002 reconnects.
            Err(_) => self.timers.set(Timer::TokenRefresh, now + REFRESH_RETRY),
        }
    }
}
