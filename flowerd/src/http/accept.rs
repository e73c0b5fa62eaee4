//! The accept thread: takes connections off the listening socket and gives
//! each its own connection thread, up to [`MAX_CONNECTIONS`] at once and
//! [`MAX_PER_CLIENT`] from one client.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::auth::client_key;
use super::{conn, Shared};

/// Most connections served at once; more are refused (503 over plain HTTP,
/// closed over TLS).
pub(crate) const MAX_CONNECTIONS: usize = 512;

/// Most connections from one client (an IPv4 address or an IPv6 /64) at
/// once: one client cannot take every slot. A browser opens about six.
pub(crate) const MAX_PER_CLIENT: usize = 64;

/// Stack size of connection threads (they parse, queue and write; the
/// deep work happens on the workers).
const CONN_STACK: usize = 512 * 1024;

/// Removes a connection from the live set when its thread ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.lock_live().remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts until the server stops.
pub(crate) fn run(listener: &TcpListener, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let tcp = match incoming {
            Ok(t) => t,
            Err(e) => {
                // Out of file descriptors or memory: wait instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let Ok(peer) = tcp.peer_addr() else { continue };
        if shared.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tracing::warn!(client = %peer, limit = MAX_CONNECTIONS, "HTTP connection refused: too many connections");
            refuse(shared, tcp);
            continue;
        }
        let key = client_key(peer.ip());
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut live = shared.lock_live();
            if live.values().filter(|(_, k)| *k == key).count() >= MAX_PER_CLIENT {
                drop(live);
                tracing::warn!(client = %peer, limit = MAX_PER_CLIENT, "HTTP connection refused: too many connections from this client");
                refuse(shared, tcp);
                continue;
            }
            if let Ok(clone) = tcp.try_clone() {
                live.insert(id, (clone, key));
            }
        }
        shared.active.fetch_add(1, Ordering::Relaxed);
        let guard = Registered {
            shared: shared.clone(),
            id,
        };
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                conn::serve(&guard.shared, tcp, peer);
                drop(guard);
            });
        if let Err(e) = spawned {
            // The closure (and with it the guard and socket) is dropped.
            tracing::warn!(client = %peer, error = %e, "cannot start an HTTP connection thread");
        }
    }
}

/// Tells a client over the limit to come back later (plain HTTP only: a TLS
/// client cannot read a plaintext answer).
fn refuse(shared: &Shared, mut tcp: TcpStream) {
    shared
        .state
        .metrics
        .http_errors
        .fetch_add(1, Ordering::Relaxed);
    if shared.tls.is_none() {
        let _ = tcp.set_write_timeout(Some(Duration::from_millis(100)));
        let body = "{\"error\":\"too many connections\"}\n";
        let _ = write!(
            tcp,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
             Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}
