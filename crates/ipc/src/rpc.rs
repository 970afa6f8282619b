//! Request/response over POSIX message queues: one server queue, a reply
//! queue per client, correlation ids and deadlines.
//!
//! ```
//! use std::time::Duration;
//! use memio_ipc::rpc::{Client, Server};
//!
//! let name = format!("/memio-doc-rpc-{}", std::process::id());
//! let mut server = Server::create(&name)?;
//! let mut client = Client::connect(&name)?;
//! std::thread::scope(|s| {
//!     s.spawn(|| server.serve_one(None, &mut |req: &[u8]| Ok(req.to_ascii_uppercase())));
//!     assert_eq!(client.call(b"ping", Duration::from_secs(5)).unwrap(), b"PING");
//! });
//! # Ok::<(), memio_ipc::Error>(())
//! ```
//!
//! # Protocol
//!
//! A client creates its reply queue `<server>.r.<pid>-<n>` (mode 0600,
//! exclusive) and sends requests to the server queue; the server answers on
//! the queue the request names, which must start with the server's name
//! and `.r.` (so a request cannot make the server write into an unrelated
//! queue). Little-endian:
//!
//! | message | bytes |
//! |---|---|
//! | request | `MRQ1`, id u64, deadline u64 (ms since the Unix epoch, 0 none), name length u16, reply queue name, payload |
//! | reply | `MRP1`, id u64, status u8 (0 ok, 1 the handler's error text), payload |
//!
//! The client matches replies to requests by id and drops stale replies
//! (answers to calls that timed out). The server never blocks on a client:
//! it sends replies without waiting, so a client that stopped reading, died
//! or removed its queue costs one dropped reply, and the server goes on
//! serving the others. A request whose deadline passed before the server
//! got to it is dropped unanswered.
//!
//! Queues hold at most 10 messages of 8192 bytes without
//! `CAP_SYS_RESOURCE`: the server queue takes 10, each reply queue 4, of
//! 8192 bytes, lowered to the machine's limits when they are lower. Every
//! queue counts against its owner's `RLIMIT_MSGQUEUE` (819200 bytes by
//! default), which bounds the clients one user can run at once to about
//! twenty; past it, connecting fails with an error that names the limit.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Create;
use crate::error::{Error, Result};
use crate::ffi;
use crate::mq::posix::{MSG_MAX_PATH, MSGSIZE_MAX_PATH, MqOptions, PosixMq};

const REQUEST: &[u8; 4] = b"MRQ1";
const REPLY: &[u8; 4] = b"MRP1";
/// Bytes of a request before its reply queue name.
const REQUEST_HEAD: usize = 4 + 8 + 8 + 2;
/// Bytes of a reply before its payload.
const REPLY_HEAD: usize = 4 + 8 + 1;
/// Reply queues a server keeps open.
const OPEN_REPLIES: usize = 64;

/// Messages a reply queue holds: one call is outstanding at a time, the
/// rest is room for late answers to calls that timed out. Small, because
/// every queue counts against the user's `RLIMIT_MSGQUEUE` (800 KiB by
/// default: a server queue and some twenty clients).
const REPLY_SLOTS: u64 = 4;

/// The queue length and message size used: `slots` (at most 10) and 8192,
/// or the machine's limits if lower.
fn queue_options(slots: u64) -> MqOptions {
    let limit = |path, default: u64| ffi::read_limit(path).unwrap_or(default);
    let capacity = limit(MSG_MAX_PATH, 10).min(slots);
    let size = limit(MSGSIZE_MAX_PATH, 8192).min(8192);
    MqOptions::new()
        .capacity(usize::try_from(capacity).unwrap_or(10))
        .msg_size(usize::try_from(size).unwrap_or(8192))
}

fn describe(name: &str) -> String {
    format!("service '{name}'")
}

fn unix_ms(at: Instant) -> u64 {
    let left = at.saturating_duration_since(Instant::now());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from((now + left).as_millis()).unwrap_or(u64::MAX)
}

fn expired(deadline_ms: u64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    deadline_ms != 0 && u128::from(deadline_ms) < now
}

/// A parsed request.
struct Request<'a> {
    id: u64,
    deadline_ms: u64,
    reply_to: &'a str,
    body: &'a [u8],
}

fn parse_request(msg: &[u8]) -> Option<Request<'_>> {
    let (head, rest) = msg.split_at_checked(REQUEST_HEAD)?;
    if &head[..4] != REQUEST {
        return None;
    }
    let id = u64::from_le_bytes(head[4..12].try_into().ok()?);
    let deadline_ms = u64::from_le_bytes(head[12..20].try_into().ok()?);
    let name_len = usize::from(u16::from_le_bytes(head[20..22].try_into().ok()?));
    let (name, body) = rest.split_at_checked(name_len)?;
    Some(Request {
        id,
        deadline_ms,
        reply_to: std::str::from_utf8(name).ok()?,
        body,
    })
}

/// What one turn of the server did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// No request came before the deadline.
    Idle,
    /// A request was answered.
    Answered,
    /// A request was dropped, for the reason given (a client gone, not
    /// reading, a malformed request, a deadline passed).
    Dropped(String),
}

/// What a handler returns: the reply, or an error text sent back to the
/// client as [`Error::Remote`].
pub type Reply = std::result::Result<Vec<u8>, String>;

/// The server end: owns the server queue and removes it on drop.
#[derive(Debug)]
pub struct Server {
    queue: PosixMq,
    name: String,
    replies: HashMap<String, PosixMq>,
    buf: Vec<u8>,
}

impl Server {
    /// Creates the server queue `name` (exclusive, mode 0600).
    ///
    /// # Errors
    /// [`Error::NameInvalid`]; the queue exists; an OS error naming it.
    pub fn create(name: &str) -> Result<Self> {
        let queue = queue_options(10).open(name, Create::Exclusive)?;
        let buf = vec![0; queue.msg_size()];
        Ok(Self {
            queue,
            name: name.to_owned(),
            replies: HashMap::new(),
            buf,
        })
    }

    /// The server queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes one request, waiting until `deadline` (`None`: for ever), runs
    /// `handler` on it and sends the reply without waiting.
    ///
    /// # Errors
    /// Only failures of the server's own queue; anything a client does
    /// wrong is a [`Served::Dropped`].
    pub fn serve_one(
        &mut self,
        deadline: Option<Instant>,
        handler: &mut dyn FnMut(&[u8]) -> Reply,
    ) -> Result<Served> {
        let n = match deadline {
            Some(d) => match self.queue.recv_deadline(&mut self.buf, d)? {
                Some((n, _)) => n,
                None => return Ok(Served::Idle),
            },
            None => self.queue.recv(&mut self.buf)?.0,
        };
        let msg = std::mem::take(&mut self.buf);
        let served = self.answer(&msg[..n], handler);
        self.buf = msg;
        Ok(served)
    }

    fn answer(&mut self, msg: &[u8], handler: &mut dyn FnMut(&[u8]) -> Reply) -> Served {
        let Some(req) = parse_request(msg) else {
            return Served::Dropped("a malformed request".into());
        };
        let prefix = format!("{}.r.", self.name);
        if !req.reply_to.starts_with(&prefix) || req.reply_to.len() == prefix.len() {
            return Served::Dropped(format!(
                "reply queue '{}' is not one of this service's",
                req.reply_to
            ));
        }
        if expired(req.deadline_ms) {
            return Served::Dropped(format!("request {} came after its deadline", req.id));
        }
        let (status, body) = match handler(req.body) {
            Ok(body) => (0u8, body),
            Err(text) => (1u8, text.into_bytes()),
        };
        let mut reply = Vec::with_capacity(REPLY_HEAD + body.len());
        reply.extend_from_slice(REPLY);
        reply.extend_from_slice(&req.id.to_le_bytes());
        reply.push(status);
        reply.extend_from_slice(&body);
        let room = self.queue.msg_size();
        if reply.len() > room {
            reply.truncate(REPLY_HEAD - 1);
            reply.push(1);
            reply.extend_from_slice(
                format!("the reply of {} bytes exceeds {room} bytes", body.len()).as_bytes(),
            );
        }
        self.send_reply(req.reply_to, &reply)
    }

    fn send_reply(&mut self, to: &str, reply: &[u8]) -> Served {
        if !self.replies.contains_key(to) {
            if self.replies.len() >= OPEN_REPLIES {
                self.replies.clear();
            }
            match MqOptions::new()
                .write_only()
                .nonblocking(true)
                .open(to, Create::Open)
            {
                Ok(q) => {
                    self.replies.insert(to.to_owned(), q);
                }
                Err(e) => return Served::Dropped(format!("client gone: {e}")),
            }
        }
        let Some(q) = self.replies.get(to) else {
            return Served::Dropped("no reply queue".into());
        };
        match q.try_send(reply, 0) {
            Ok(true) => Served::Answered,
            Ok(false) => {
                // Full: the client stopped reading (or died).
                self.replies.remove(to);
                Served::Dropped(format!("reply queue '{to}' is full"))
            }
            Err(e) => {
                self.replies.remove(to);
                Served::Dropped(format!("cannot reply: {e}"))
            }
        }
    }

    /// Serves until `stop` is set, looking at it every 100 ms; returns how
    /// many requests were answered.
    ///
    /// # Errors
    /// See [`Server::serve_one`].
    pub fn serve(
        &mut self,
        stop: &AtomicBool,
        handler: &mut dyn FnMut(&[u8]) -> Reply,
    ) -> Result<u64> {
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) {
            let slice = Instant::now() + Duration::from_millis(100);
            if self.serve_one(Some(slice), handler)? == Served::Answered {
                answered += 1;
            }
        }
        Ok(answered)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = PosixMq::unlink(&self.name);
    }
}

/// A client: a connection to a server queue and its own reply queue,
/// removed on drop.
#[derive(Debug)]
pub struct Client {
    server: PosixMq,
    server_name: String,
    reply: PosixMq,
    reply_name: String,
    next_id: u64,
    buf: Vec<u8>,
}

impl Client {
    /// Opens the server queue `server` and creates this client's reply
    /// queue.
    ///
    /// # Errors
    /// [`Error::NameInvalid`]; no such service; an OS error naming the
    /// queue.
    pub fn connect(server: &str) -> Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let queue = MqOptions::new()
            .write_only()
            .open(server, Create::Open)
            .map_err(|e| match e.raw_errno() {
                Some(libc::ENOENT) => Error::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{}: no such service (is the server running?)",
                        describe(server)
                    ),
                )),
                _ => e,
            })?;
        let reply_name = format!(
            "{server}.r.{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let reply = queue_options(REPLY_SLOTS).open(&reply_name, Create::Exclusive)?;
        let buf = vec![0; reply.msg_size()];
        Ok(Self {
            server: queue,
            server_name: server.to_owned(),
            reply,
            reply_name,
            next_id: 1,
            buf,
        })
    }

    /// The largest request body this client can send.
    #[must_use]
    pub fn max_request(&self) -> usize {
        self.server
            .msg_size()
            .saturating_sub(REQUEST_HEAD + self.reply_name.len())
    }

    /// Sends `body` and waits for its reply, at most `timeout` in all.
    ///
    /// # Errors
    /// [`Error::TooLarge`]; [`Error::TimedOut`] when the server queue stays
    /// full or no reply comes in time; [`Error::Remote`] when the handler
    /// answered with an error; an OS error.
    pub fn call(&mut self, body: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let object = describe(&self.server_name);
        if body.len() > self.max_request() {
            return Err(Error::TooLarge {
                object,
                len: body.len(),
                max: self.max_request(),
            });
        }
        let start = Instant::now();
        let deadline = start + timeout;
        let id = self.next_id;
        self.next_id += 1;
        let name_len = u16::try_from(self.reply_name.len()).unwrap_or(u16::MAX);
        let mut msg = Vec::with_capacity(REQUEST_HEAD + self.reply_name.len() + body.len());
        msg.extend_from_slice(REQUEST);
        msg.extend_from_slice(&id.to_le_bytes());
        msg.extend_from_slice(&unix_ms(deadline).to_le_bytes());
        msg.extend_from_slice(&name_len.to_le_bytes());
        msg.extend_from_slice(self.reply_name.as_bytes());
        msg.extend_from_slice(body);
        let timed_out = || Error::TimedOut {
            object: object.clone(),
            waited: start.elapsed(),
        };
        if !self.server.send_deadline(&msg, 0, deadline)? {
            return Err(timed_out());
        }
        loop {
            let Some((n, _)) = self.reply.recv_deadline(&mut self.buf, deadline)? else {
                return Err(timed_out());
            };
            let reply = &self.buf[..n];
            if n < REPLY_HEAD || &reply[..4] != REPLY {
                continue;
            }
            if reply[4..12] != id.to_le_bytes() {
                // The answer to an earlier call that timed out.
                continue;
            }
            let payload = reply[REPLY_HEAD..].to_vec();
            return match reply[12] {
                0 => Ok(payload),
                _ => Err(Error::Remote {
                    object,
                    message: String::from_utf8_lossy(&payload).into_owned(),
                }),
            };
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = PosixMq::unlink(&self.reply_name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_back_and_bad_ones_are_refused() {
        let mut msg = REQUEST.to_vec();
        msg.extend_from_slice(&7u64.to_le_bytes());
        msg.extend_from_slice(&0u64.to_le_bytes());
        msg.extend_from_slice(&3u16.to_le_bytes());
        msg.extend_from_slice(b"/q.body");
        let req = parse_request(&msg).unwrap();
        assert_eq!((req.id, req.reply_to, req.body), (7, "/q.", &b"body"[..]));
        assert!(parse_request(&msg[..10]).is_none());
        let mut long = msg.clone();
        long[20] = 200; // the name runs past the end
        assert!(parse_request(&long).is_none());
        assert!(parse_request(b"XXXXxxxxxxxxxxxxxxxxxxxxxx").is_none());
    }
}
