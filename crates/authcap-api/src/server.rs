//! The listener: accepts connections up to a cap, gives each one time limits, and on shutdown
//! lets the requests in flight finish.
//!
//! Every connection holds a descriptor and some memory, so neither may be held by a client for
//! free: a connection that does not send a complete request head within
//! [`ConnectionLimits::header_read_timeout`] — a new one that sends nothing or dribbles its
//! headers, or a kept-alive one sitting idle between requests — is closed. At most
//! [`ConnectionLimits::connections_max`] connections are served at once; further ones wait in
//! the kernel's backlog until one closes, so the connections already open keep being served,
//! and descriptors stay free for the database.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

/// Descriptors kept for everything but client connections: the database (SQLite's writer and
/// readers, or the PostgreSQL pool), the listener, logs.
const DESCRIPTORS_RESERVED: u64 = 128;

/// The largest buffer a connection reads into: a request head and a body chunk at a time.
const READ_BUFFER_BYTES_MAX: usize = 96 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// How many connections are served at once.
    pub connections_max: usize,
    /// How long a connection may take to send a request head, idle time included.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            connections_max: default_connections_max(),
            header_read_timeout: Duration::from_secs(15),
        }
    }
}

/// As many connections as the descriptor limit allows once the reserve is kept, at most
/// 10,000. The soft limit is raised to the hard one first, as servers do.
pub fn default_connections_max() -> usize {
    let limit = raise_descriptor_limit();
    let usable = limit.saturating_sub(DESCRIPTORS_RESERVED).max(16);
    usize::try_from(usable.min(10_000)).unwrap_or(10_000)
}

#[cfg(unix)]
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> u64 {
    1024
}

/// Hands memory freed since the last call back to the system. glibc's allocator keeps freed
/// memory in its per-thread arenas, so after a burst of connections the process would stay at
/// its peak size; trimming brings it back near its idle size.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Limits the allocator to a few arenas: with one per thread (the default), memory freed on
/// one thread is not reused by another, and a burst leaves every arena at its peak.
pub fn bound_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of the allocator, before the threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (each connection closes after its current response).
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections_max = limits.connections_max.max(1);
    let slots = Arc::new(Semaphore::new(connections_max));
    let (stopping, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors (or a connection reset before accept): wait for some to
                // free up instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Handlers see who is calling (limits on failed authentication are per client).
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move { router.call(request).await }
        });
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true)
                .max_buf_size(READ_BUFFER_BYTES_MAX);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|stopping| *stopping) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a slot until it is done.
    let total = u32::try_from(connections_max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(total).await;
    Ok(())
}
