//! The probe listener (`--health-addr`): `GET /health` on a port of its own, served by its own
//! OS thread on a single-threaded runtime, for probes kept off the public port (bind it to an
//! internal address). Like the main port's `/health`, which the accept thread answers itself
//! (`listener`), it waits for nothing but the OS scheduler while a reconnect wave keeps the main
//! runtime's workers busy. The answer is the same body as the main port's `/health`. The thread
//! stops when the server shuts down or is dropped.

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::{http, AppState, Mode};

/// Binds `addr` now (so a taken port is an error of `start`) and serves `/health` on a new
/// thread; returns the bound address and the thread.
pub(crate) fn spawn(addr: SocketAddr, state: AppState) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut mode = state.mode.clone();
    let thread = std::thread::Builder::new()
        .name("sockline-probe".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!(error = %e, "probe listener failed");
                        return;
                    }
                };
                let app = Router::new()
                    .route("/health", get(http::health))
                    .with_state(state);
                // Shutting down, or the server dropped (its mode sender gone): stop.
                let stop = async move {
                    let _ = mode.wait_for(|m| *m != Mode::Running).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "probe listener failed");
                }
            });
        })?;
    Ok((local, thread))
}
