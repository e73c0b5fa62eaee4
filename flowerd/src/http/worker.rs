//! The HTTP worker threads: take a complete request from the queue, answer
//! it, hand the response back to its connection thread.
//!
//! Workers never touch a socket, so a slow client cannot hold one; their
//! number (`http.workers`) bounds how many queries run at once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::respond::{ApiError, Response};
use super::wire::Request;
use super::{now_ms, routes, AppState};

/// A request waiting for a worker, and where its answer goes.
pub(crate) struct Job {
    /// The request.
    pub(crate) req: Request,
    /// The connection thread waiting for the answer.
    pub(crate) reply: Sender<Response>,
}

/// Answers jobs until `stop` is set and the queue is empty, or every sender
/// is gone.
pub(crate) fn run(state: &AppState, jobs: &Receiver<Job>, stop: &AtomicBool) {
    loop {
        let job = match jobs.recv_timeout(Duration::from_millis(200)) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let started = Instant::now();
        // A bug in one handler must not take a worker down with it.
        let resp = catch_unwind(AssertUnwindSafe(|| {
            routes::handle(state, &job.req, now_ms())
        }))
        .unwrap_or_else(|_| {
            tracing::error!(
                method = job.req.head.method,
                path = job.req.head.target.split('?').next().unwrap_or(""),
                "HTTP handler panicked"
            );
            ApiError::Internal.into_response()
        });
        tracing::debug!(
            client = %job.req.peer,
            method = job.req.head.method,
            target = job.req.head.target,
            status = resp.status,
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "HTTP request"
        );
        // The connection may have given up (shutdown): nothing to do then.
        let _ = job.reply.send(resp);
    }
}
