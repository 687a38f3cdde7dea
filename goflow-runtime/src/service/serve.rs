//! The listener that `start*()` serves: HTTP/1.1 by hyper, with the limits that only the
//! owner of the listener can set, which a [`router`](super::FlowService::router) nested in
//! another application leaves to that application:
//!
//! - a header timeout (hyper's `header_read_timeout`): a request's head must arrive within it,
//!   counted from when the connection opens or has sent its previous answer, so a silent or
//!   trickling client, and an idle keep-alive connection, is closed after it;
//! - an idle timeout: a connection that reads and writes nothing while none of its requests is
//!   being handled (a client that stops reading its answer) is closed;
//! - a connection limit: a semaphore permit per connection, taken before it is accepted, so
//!   that past the limit new connections wait in the listen backlog;
//! - JSON on the error answers that hyper writes itself, before any request reaches the router
//!   (`400` for a request that is not HTTP, `414` for a URL over 64 KiB, `431` for a head too
//!   large): hyper writes them without a body, and the connection rewrites them into the
//!   service's `{"error": {"code", "message"}}` as they go out.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The limits of the connections a listener serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Serves `router` on `listener` until `stop` is cancelled; then accepts nothing more, lets
/// each connection finish the request it is handling (closing it after its answer), and
/// returns when every connection is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                // Answers are written whole; Nagle would only delay them.
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(
                    stream,
                    router.clone(),
                    limits,
                    stop.clone(),
                    permit,
                ));
            }
            // The peer gave up before it was accepted: nothing to do.
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                // Out of file descriptors, say: wait for some to be freed, as axum does.
                tracing::warn!(%error, "accepting a connection failed; retrying in 1 s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection, within the limits, until it closes.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Guarded {
        stream,
        activity: Arc::clone(&activity),
        rewritten: None,
    });
    let handled = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let handling = Handling::begin(&handled);
        let answer = router.clone().oneshot(request.map(Body::new));
        async move {
            let answer: Result<_, Infallible> = answer.await;
            drop(handling);
            answer
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            () = activity.idle_for(limits.idle_timeout) => {
                tracing::debug!(timeout = ?limits.idle_timeout, "closing an idle connection");
                break;
            }
            () = stop.cancelled(), if !stopping => {
                // Closed at once if idle, else after the answer it is working on.
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When a connection last read or wrote a byte, and how many of its requests are being
/// handled.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte read or written.
    last: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Returns once the connection has moved no byte for `limit` while none of its requests
    /// was being handled.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let due = self.last() + limit;
            if Instant::now() < due {
                tokio::time::sleep_until(due.into()).await;
            } else if self.handling.load(Ordering::Relaxed) == 0 {
                return;
            } else {
                // A handler is at work (a `?wait`, say): its end counts as activity.
                tokio::time::sleep(limit).await;
            }
        }
    }
}

/// A request being handled, from its head's arrival to its answer's.
struct Handling(Arc<Activity>);

impl Handling {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.handling.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.touch();
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's socket, which records its activity and rewrites hyper's own error
/// answers into JSON ones.
///
/// It does not do vectored writes, so hyper hands it each answer's head in one buffer
/// (hyper flattens what it writes for such an I/O).
struct Guarded {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// A rewritten answer, and how much of it has been written.
    rewritten: Option<(Vec<u8>, usize)>,
}

impl Guarded {
    /// Writes what is left of a rewritten answer.
    fn poll_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.rewritten {
            if *written == answer.len() {
                self.rewritten = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = ready!(Pin::new(&mut this.stream).poll_read(cx, buf));
        if buf.filled().len() > before {
            this.activity.touch();
        }
        Poll::Ready(read)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_rewritten(cx))?;
        if let Some(answer) = json_error_answer(buf) {
            // Taken whole: what the socket does not take now is written on the next write,
            // flush or shutdown.
            this.rewritten = Some((answer, 0));
            if let Poll::Ready(Err(error)) = this.poll_rewritten(cx) {
                return Poll::Ready(Err(error));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let written = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        if written > 0 {
            this.activity.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewritten(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewritten(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// When `written` is one of the answers hyper writes by itself for a request it could not
/// parse (a `400`, `414` or `431` head with an empty body and no content type, which no answer
/// of the router is), the same answer with the service's JSON error as its body.
fn json_error_answer(written: &[u8]) -> Option<Vec<u8>> {
    let head = written.strip_suffix(b"\r\n\r\n")?;
    let head = std::str::from_utf8(head).ok()?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let (code, message) = match status {
        "400" => (
            "bad_request",
            "the request is not valid HTTP/1.1: its method, URL, version or a header could \
             not be parsed",
        ),
        "414" => ("uri_too_long", "the URL is longer than 65,534 bytes"),
        "431" => (
            "headers_too_large",
            "the request's head (its line and headers) is too large, or has too many headers",
        ),
        _ => return None,
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut rewritten = format!("{status_line}\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-type") || line.is_empty() {
            // An answer with a content type (or a body) is not one of hyper's own.
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            if line[name.len() + 1..].trim() != "0" {
                return None;
            }
            continue;
        }
        if !name.eq_ignore_ascii_case("connection") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    rewritten.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(rewritten.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::json_error_answer;

    #[test]
    fn hypers_own_error_answers_get_a_json_body() {
        let answer = json_error_answer(
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 00:00:00 GMT\r\n\r\n",
        )
        .expect("rewritten");
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("\r\ndate: Wed"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "uri_too_long");
        for (status, code) in [
            ("400 Bad Request", "bad_request"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            let answer = String::from_utf8(json_error_answer(head.as_bytes()).unwrap()).unwrap();
            assert!(answer.contains(code), "{answer}");
        }
    }

    #[test]
    fn other_answers_are_left_alone() {
        for written in [
            // The router's own errors have a body and a content type.
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"{\"error\": 1}",
        ] {
            assert!(json_error_answer(written).is_none(), "{:?}", String::from_utf8_lossy(written));
        }
    }
}
