//! Accepting connections: clients that connect and then send nothing are dropped.
//!
//! hyper's header timeout needs a timer and starts only after a connection's first bytes,
//! which hyper reads to tell HTTP/1 from HTTP/2, without any limit; and HTTP/2 connections
//! have no idle limit at all. The server speaks HTTP/1.1 only, as the original did (HTTPS
//! offers only `http/1.1` by ALPN). Every accepted stream is wrapped in a [`FirstRead`],
//! whose reads fail if the stream has not shown within the header timeout that it is no
//! HTTP/2 connection (its bytes so far all match the HTTP/2 preface), and which refuses the
//! complete preface; [`configure_http1`] then covers the rest of a request's headers and
//! the wait between requests on a kept-alive connection. With HTTPS the wrapper sits above
//! the TLS layer, so only decrypted request bytes count: a client that completes the
//! handshake, or sends TLS records without data (a key update), and then stays silent is
//! dropped as well.
//!
//! The same wrapper fails writes that cannot go on for the write timeout: a client that
//! stops taking its answers (pipelined requests it never reads, a websocket session whose
//! messages it leaves unread) would otherwise hold its connection, and what the answer
//! holds on to, for ever. Websocket sessions run on the same stream after the upgrade.
//!
//! Each client network ([`crate::per_network`]) may hold a limited number of connections at
//! once ([`ClientLimit`]); one beyond it is closed (a plain one after a short 429 answer,
//! while not too many such answers are under way), so that one client cannot take every
//! connection the process can hold. Many networks together still can: a connection that
//! finds the process near its limit of open files is logged, since at the limit the
//! connections that follow wait unanswered and unlogged (the accept loop retries).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsAcceptor;
use futures_util::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;

use crate::per_network::{PerNetwork, Share};

/// The connections each client network may hold at once.
#[derive(Clone)]
pub(crate) struct ClientLimit {
    shares: PerNetwork,
    /// When a refusal was last logged: at most one warning per [`WARN_EVERY`].
    warned: Arc<Mutex<Option<Instant>>>,
    /// Places for refused connections being answered.
    answering: Arc<Semaphore>,
    /// The process's limit of open files, and the lowest descriptor number of a new
    /// connection that is warned about (nine tenths of the limit; `None` without a limit).
    files: Option<(u64, u64)>,
    /// When the process was last found near its limit of open files (as `warned`).
    warned_files: Arc<Mutex<Option<Instant>>>,
}

/// Shortest time between two warnings about refused connections.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Most refused connections answered at once (each may take [`PARTING`] twice); further
/// ones are closed without an answer.
const MOST_ANSWERED_REFUSALS: usize = 64;

/// A connection beyond its network's share.
pub(crate) struct Refused {
    /// A place among the refusals being answered; `None`: close it without an answer.
    answer: Option<OwnedSemaphorePermit>,
}

impl From<Refused> for io::Error {
    fn from(_: Refused) -> Self {
        io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "too many connections from one client network",
        )
    }
}

impl ClientLimit {
    /// At most `each` connections per client network.
    pub(crate) fn new(each: usize) -> Self {
        let files = open_file_limits()
            .filter(|limits| limits.rlim_cur != libc::RLIM_INFINITY)
            .map(|limits| (limits.rlim_cur, limits.rlim_cur - limits.rlim_cur / 10));
        ClientLimit {
            shares: PerNetwork::new(each),
            warned: Arc::default(),
            answering: Arc::new(Semaphore::new(MOST_ANSWERED_REFUSALS)),
            files,
            warned_files: Arc::default(),
        }
    }

    /// The share of `stream`'s client network that the connection holds while it lasts, or
    /// [`Refused`] if the network holds all of its shares; an error if the stream has no
    /// peer address (the client has gone).
    fn admit(&self, stream: &TcpStream) -> io::Result<Result<Share, Refused>> {
        let address = stream.peer_addr()?.ip();
        self.check_files(stream.as_raw_fd());
        Ok(self.shares.try_take(address).ok_or_else(|| {
            if due(&self.warned) {
                tracing::warn!(
                    "refused a connection from {address}: its network holds {} connections, \
                     the most one client may hold (max_connections_per_client; further \
                     refusals are not logged for a minute)",
                    self.shares.each()
                );
            }
            Refused {
                answer: self.answering.clone().try_acquire_owned().ok(),
            }
        }))
    }

    /// Warns when a new connection's descriptor is `fd`, near the limit of open files: a
    /// new descriptor takes the lowest free number, so all below it are in use.
    fn check_files(&self, fd: RawFd) {
        let Some((limit, warn_at)) = self.files else {
            return;
        };
        if u64::try_from(fd).is_ok_and(|fd| fd >= warn_at) && due(&self.warned_files) {
            tracing::warn!(
                "the server has more than {fd} of the {limit} files it may open in use \
                 (connections, datasets, uploads); at the limit new connections wait \
                 unanswered until others close: raise the limit (ulimit -n, LimitNOFILE= of \
                 systemd) or limit connections in a proxy (not logged again for a minute)"
            );
        }
    }
}

/// Whether a warning last given at `warned` is due again (after [`WARN_EVERY`]); if so,
/// `warned` becomes now.
fn due(warned: &Mutex<Option<Instant>>) -> bool {
    let mut warned = crate::sync::lock(warned);
    let now = Instant::now();
    let due = warned.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
    if due {
        *warned = Some(now);
    }
    due
}

/// The process's soft and hard limits of open files; `None` where they cannot be read.
fn open_file_limits() -> Option<libc::rlimit> {
    let mut limits = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: the call only writes the `rlimit` value passed to it.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limits) } == 0).then_some(limits)
}

/// Raises the soft limit on open files to the hard one, as servers do: every connection,
/// unfinished upload and running task holds files, and the usual soft limit of 1024 is
/// reached long before the machine's. Called before the server starts (its connection
/// limits read the limit then).
pub fn raise_open_file_limit() {
    if let Some(mut limits) = open_file_limits()
        && limits.rlim_cur < limits.rlim_max
    {
        limits.rlim_cur = limits.rlim_max;
        // SAFETY: the call only reads the `rlimit` value passed to it.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limits) };
    }
}

/// Accepts plain TCP connections: turns off Nagle's algorithm and waits at most the given
/// time for the first bytes.
#[derive(Clone)]
pub(crate) struct Plain {
    /// Time for a request's first bytes.
    pub(crate) header: Duration,
    /// Time writes may wait for the client.
    pub(crate) write: Duration,
    /// Connections per client network.
    pub(crate) clients: ClientLimit,
}

impl<S: Send + 'static> Accept<TcpStream, S> for Plain {
    type Stream = FirstRead<TcpStream>;
    type Service = S;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let (header, write) = (self.header, self.write);
        let admission = self.clients.admit(&stream);
        Box::pin(async move {
            let share = match admission? {
                Ok(share) => share,
                Err(refused) => {
                    if refused.answer.is_some() {
                        let body = "Too many connections from this client's address at once; \
                                    close some and try again.";
                        answer_and_close(stream, "429 Too Many Requests", body).await;
                    }
                    return Err(refused.into());
                }
            };
            stream.set_nodelay(true)?;
            Ok((FirstRead::new(stream, header, write, share), service))
        })
    }
}

/// Turns off Nagle's algorithm; the TLS handshake's limit ([`Tls`]) covers a client that
/// sends nothing before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoDelay;

impl<S: Send + 'static> Accept<TcpStream, S> for NoDelay {
    type Stream = TcpStream;
    type Service = S;
    type Future = std::future::Ready<io::Result<(TcpStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(stream.set_nodelay(true).map(|()| (stream, service)))
    }
}

/// Accepts HTTPS connections: at most `limit` for the TLS handshake, then at most `limit`
/// until the first decrypted bytes. Handshakes under way when the server starts to shut
/// down are dropped (a graceful shutdown would wait for them).
#[derive(Clone)]
pub(crate) struct Tls {
    tls: RustlsAcceptor<NoDelay>,
    limit: Duration,
    write: Duration,
    stopping: tokio::sync::watch::Receiver<bool>,
    clients: ClientLimit,
}

impl Tls {
    /// TLS with `config`, dropping connections whose handshake takes longer than `limit`,
    /// or goes on when `stopping` turns true, that stay silent for `limit` after it, or
    /// whose writes wait `write` for the client, and connections beyond their network's
    /// share in `clients`.
    pub(crate) fn new(
        config: axum_server::tls_rustls::RustlsConfig,
        limit: Duration,
        write: Duration,
        stopping: tokio::sync::watch::Receiver<bool>,
        clients: ClientLimit,
    ) -> Self {
        Tls {
            tls: RustlsAcceptor::new(config)
                .handshake_timeout(limit)
                .acceptor(NoDelay),
            limit,
            write,
            stopping,
            clients,
        }
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for Tls {
    type Stream = FirstRead<TlsStream<TcpStream>>;
    type Service = S;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let tls = self.tls.clone();
        let (limit, write) = (self.limit, self.write);
        let mut stopping = self.stopping.clone();
        let admission = self.clients.admit(&stream);
        Box::pin(async move {
            // No plain answer on this port: the client expects a TLS handshake.
            let share = admission??;
            let handshake = async {
                if sends_plain_http(&stream, limit).await? {
                    let body = "This server speaks HTTPS on this port: use an https:// address.";
                    answer_and_close(stream, "400 Bad Request", body).await;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a plain HTTP request on the HTTPS port",
                    ));
                }
                tls.accept(stream, service).await
            };
            let stop = async {
                if stopping.wait_for(|stopping| *stopping).await.is_err() {
                    // No shutdown can come any more.
                    std::future::pending::<()>().await;
                }
            };
            let (stream, service) = tokio::select! {
                done = handshake => done?,
                () = stop => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the server is shutting down",
                    ));
                }
            };
            Ok((FirstRead::new(stream, limit, write, share), service))
        })
    }
}

/// Whether a new connection on the HTTPS port starts with plain HTTP (a request line
/// begins with a capital letter, a TLS handshake with the byte 0x16); waits `limit` for its
/// first byte.
async fn sends_plain_http(stream: &TcpStream, limit: Duration) -> io::Result<bool> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(limit, stream.peek(&mut first)).await {
        Ok(Ok(0)) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(Ok(_)) => Ok(first[0].is_ascii_uppercase()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// How long a connection that will not be served may take to send its request's head
/// before its answer, and then to take the answer and close.
const PARTING: Duration = Duration::from_secs(1);

/// Most bytes of a request's head read before an answer that refuses it.
const MOST_HEAD_BYTES: usize = 64 << 10;

/// Answers a connection that will not be served, with `status` (code and reason) and a
/// plain-text `body`, and closes it, within twice [`PARTING`]. For a plain-HTTP client on the
/// HTTPS port (a TLS alert would reach it as garbage: curl reports "Received HTTP/0.9 when
/// not allowed") and a connection beyond its network's share.
///
/// The answer waits for the request's head: a client still sending it when the answer
/// arrives takes the answer for garbage (hyper reports an unexpected message). After the
/// answer, what the client still sends (a body) is read and dropped until it closes: a
/// socket closed with unread data resets the connection, and the client may lose the answer.
async fn answer_and_close(mut stream: TcpStream, status: &str, body: &str) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    let _ = tokio::time::timeout(PARTING, async {
        while head.len() < MOST_HEAD_BYTES {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                break;
            }
            // Only where the new bytes can end the head (its blank line may straddle reads).
            let from = head.len().saturating_sub(3);
            head.extend_from_slice(&chunk[..read]);
            if head[from..].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        io::Result::Ok(())
    })
    .await;
    let _ = tokio::time::timeout(PARTING, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut chunk).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// What an HTTP/2 connection sends first.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose reads fail with [`io::ErrorKind::TimedOut`] while it has delivered nothing
/// but a beginning of the HTTP/2 preface (also nothing at all) after a time limit from its
/// creation, and with [`io::ErrorKind::Unsupported`] once it has sent the whole preface.
/// After its first byte that differs from the preface its reads are the plain stream's. Its
/// writes fail with [`io::ErrorKind::TimedOut`] once they have waited for a second limit
/// without the client taking a byte.
#[derive(Debug)]
pub(crate) struct FirstRead<S> {
    inner: S,
    /// How long writes may wait for the client.
    write_limit: Duration,
    /// Pending while the stream may still be an HTTP/2 one; `None` after that.
    deadline: Option<Pin<Box<Sleep>>>,
    /// How many bytes of the preface the stream has sent so far.
    preface: usize,
    /// Running while writes wait for the client; `None` while they go on.
    stalled: Option<Pin<Box<Sleep>>>,
    /// The connection's place among its client network's, given back when it ends.
    _share: Share,
}

impl<S> FirstRead<S> {
    /// Wraps `inner`, which must show within `limit` that it is no HTTP/2 connection, and
    /// whose writes may wait at most `write_limit` for the client, holding `share` while it
    /// lasts.
    fn new(inner: S, limit: Duration, write_limit: Duration, share: Share) -> Self {
        FirstRead {
            inner,
            write_limit,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            preface: 0,
            stalled: None,
            _share: share,
        }
    }

    /// Passes on a write's outcome, failing it if it has waited for the client longer than
    /// the limit.
    fn limit_stall<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if write.is_ready() {
            self.stalled = None;
            return write;
        }
        let limit = self.write_limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no data of its answer in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Follows the preface through newly read `bytes`; ends the deadline at the first byte
    /// that differs. Fails on the complete preface.
    fn watch(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &byte in bytes {
            if HTTP2_PREFACE.get(self.preface) != Some(&byte) {
                self.deadline = None;
                return Ok(());
            }
            self.preface += 1;
        }
        if self.preface == HTTP2_PREFACE.len() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "HTTP/2 is not served; use HTTP/1.1",
            ));
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstRead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(deadline) = this.deadline.as_mut() else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                Poll::Ready(this.watch(&buf.filled()[before..]))
            }
            // The end of the stream, or an error: hyper closes the connection.
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection sent no request in time",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstRead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let write = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.limit_stall(cx, write)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let write = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.limit_stall(cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flush = Pin::new(&mut self.inner).poll_flush(cx);
        self.limit_stall(cx, flush)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shutdown = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.limit_stall(cx, shutdown)
    }
}

/// Sets up HTTP/1 the way clients need it:
/// - closes connections that take longer than `limit` to send a request's headers once
///   their first bytes have come (also a keep-alive connection between requests): without
///   a timer, hyper waits for them forever, and each holds a file descriptor;
/// - answers a client that closes its sending side after its request (`nc -N`, `socat`,
///   scripted health checks), where hyper would drop the connection unanswered.
pub(crate) fn configure_http1(builder: &mut AutoBuilder<TokioExecutor>, limit: Duration) {
    builder
        .http1()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limit);
}
