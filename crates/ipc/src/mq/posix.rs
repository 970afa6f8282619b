//! POSIX message queues (`mq_open` and friends).
//!
//! # Safety
//!
//! The libc calls take pointers to buffers and attribute structs owned by
//! the caller for the duration of the call, and an mq descriptor this
//! module owns. On Linux an `mqd_t` is a file descriptor: it lives in an
//! [`OwnedFd`], which closes it on drop (glibc's `mq_close` is `close`).
#![allow(
    unsafe_code,
    reason = "POSIX message queues are only reachable through libc"
)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::error::{self, Error, Result};
use crate::ffi;
use crate::key::{Create, DEFAULT_MODE};
use crate::name::{self, Kind};

/// Where the kernel's largest queue length lives.
pub const MSG_MAX_PATH: &str = "/proc/sys/fs/mqueue/msg_max";
/// Where the kernel's largest message size lives.
pub const MSGSIZE_MAX_PATH: &str = "/proc/sys/fs/mqueue/msgsize_max";
/// Where the default queue length (used when none is asked for) lives.
pub const MSG_DEFAULT_PATH: &str = "/proc/sys/fs/mqueue/msg_default";
/// Where the default message size lives.
pub const MSGSIZE_DEFAULT_PATH: &str = "/proc/sys/fs/mqueue/msgsize_default";

/// A queue's attributes (`struct mq_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqAttr {
    /// How many messages the queue holds at most (`mq_maxmsg`).
    pub capacity: usize,
    /// The largest message in bytes (`mq_msgsize`).
    pub msg_size: usize,
    /// How many messages are queued now (`mq_curmsgs`).
    pub current: usize,
    /// Whether this handle's calls return at once instead of blocking.
    pub nonblocking: bool,
}

/// How to open or create a queue: the attributes, the mode and the access.
///
/// ```no_run
/// use memio_ipc::mq::posix::MqOptions;
/// use memio_ipc::Create;
///
/// let q = MqOptions::new().capacity(10).msg_size(256).open("/jobs", Create::Exclusive)?;
/// q.send(b"hello", 1)?;
/// # Ok::<(), memio_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MqOptions {
    capacity: Option<usize>,
    msg_size: Option<usize>,
    mode: u32,
    read: bool,
    write: bool,
    nonblocking: bool,
}

impl Default for MqOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MqOptions {
    /// Read and write access, mode 0600, the kernel's default attributes.
    #[must_use]
    pub fn new() -> Self {
        Self {
            capacity: None,
            msg_size: None,
            mode: DEFAULT_MODE,
            read: true,
            write: true,
            nonblocking: false,
        }
    }

    /// How many messages a new queue holds (at most
    /// `/proc/sys/fs/mqueue/msg_max`, 10 without `CAP_SYS_RESOURCE`).
    #[must_use]
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n);
        self
    }

    /// The largest message of a new queue in bytes (at most
    /// `/proc/sys/fs/mqueue/msgsize_max`, 8192 without `CAP_SYS_RESOURCE`).
    #[must_use]
    pub fn msg_size(mut self, bytes: usize) -> Self {
        self.msg_size = Some(bytes);
        self
    }

    /// Permission bits of a new queue (default 0600; the umask applies).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Open for receiving only.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read = true;
        self.write = false;
        self
    }

    /// Open for sending only.
    #[must_use]
    pub fn write_only(mut self) -> Self {
        self.read = false;
        self.write = true;
        self
    }

    /// Make every call on the handle return at once instead of blocking
    /// (`O_NONBLOCK`).
    #[must_use]
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }

    /// Opens or creates the queue `name` (`/name`).
    ///
    /// # Errors
    /// [`Error::NameInvalid`] for a bad name; [`Error::Limit`] when the
    /// kernel refuses the capacity or message size, naming the limit and
    /// its value; otherwise an OS error naming the queue.
    #[doc(alias = "mq_open")]
    ///
    /// # References
    /// [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html)
    pub fn open(&self, name: &str, create: Create) -> Result<PosixMq> {
        let cname = name::check(name, Kind::Plain)?;
        let object = describe(name);
        for (value, what) in [
            (self.capacity, "max messages"),
            (self.msg_size, "message size"),
        ] {
            if value == Some(0) {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "cannot {} {object} with {what} 0: use at least 1",
                        create.verb()
                    ),
                )));
            }
        }
        let access = match (self.read, self.write) {
            (true, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
            _ => libc::O_RDWR,
        };
        let mut flags = access | libc::O_CLOEXEC | create.oflags();
        if self.nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        let has_attr = self.capacity.is_some() || self.msg_size.is_some();
        // SAFETY: mq_attr is plain data; all-zero is a valid value.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = to_long(self.capacity.unwrap_or_else(|| {
            ffi::read_limit(MSG_DEFAULT_PATH)
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(10)
        }));
        attr.mq_msgsize = to_long(self.msg_size.unwrap_or_else(|| {
            ffi::read_limit(MSGSIZE_DEFAULT_PATH)
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(8192)
        }));
        let attr_ptr: *mut libc::mq_attr = if has_attr {
            &raw mut attr
        } else {
            std::ptr::null_mut()
        };
        let mode = libc::mode_t::from(self.mode & 0o7777);
        // SAFETY: `cname` is NUL-terminated and lives across the call; the
        // variadic mode and attribute pointer are what O_CREAT expects
        // (ignored without it); `attr` outlives the call.
        let fd = ffi::retry(|| unsafe { libc::mq_open(cname.as_ptr(), flags, mode, attr_ptr) });
        let fd = match fd {
            Ok(fd) => fd,
            Err(err) => return Err(self.open_error(name, create, err)),
        };
        // SAFETY: mq_open returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut q = PosixMq {
            fd,
            name: name.to_owned(),
            msg_size: 0,
        };
        q.msg_size = q.attr()?.msg_size;
        Ok(q)
    }

    /// Turns an `mq_open` failure into an error that says what to do.
    fn open_error(&self, name: &str, create: Create, err: io::Error) -> Error {
        let object = describe(name);
        if err.raw_os_error() == Some(libc::EINVAL) && create != Create::Open {
            let checks = [
                (self.capacity, "max messages", MSG_MAX_PATH),
                (self.msg_size, "message size", MSGSIZE_MAX_PATH),
            ];
            for (value, what, path) in checks {
                if let (Some(v), Some(limit)) = (value, ffi::read_limit(path)) {
                    if v as u64 > limit {
                        return Error::Limit {
                            object,
                            what,
                            requested: v as u64,
                            limit,
                            path,
                        };
                    }
                }
            }
        }
        if err.raw_os_error() == Some(libc::EMFILE) {
            return Error::Io(error::os(
                create.verb(),
                &format_args!("{object} (RLIMIT_MSGQUEUE, the per-user queue memory, is used up)"),
                err,
            ));
        }
        Error::Io(error::os(create.verb(), &object, err))
    }
}

fn to_long(n: usize) -> libc::c_long {
    libc::c_long::try_from(n).unwrap_or(libc::c_long::MAX)
}

fn describe(name: &str) -> String {
    format!("message queue '{name}'")
}

/// An open POSIX message queue: a file descriptor, closed on drop.
///
/// Messages carry a priority (0 to 32767 on Linux); a receive takes the
/// oldest message of the highest priority. The handle can be polled
/// ([`AsFd`]): readable when a message waits, writable when there is room.
#[derive(Debug)]
pub struct PosixMq {
    fd: OwnedFd,
    name: String,
    msg_size: usize,
}

/// Largest priority Linux accepts (`MQ_PRIO_MAX - 1`).
pub const MAX_PRIORITY: u32 = 32767;

impl PosixMq {
    /// Creates the queue `name` with the default options; fails when it
    /// exists.
    ///
    /// # Errors
    /// See [`MqOptions::open`].
    pub fn create(name: &str) -> Result<Self> {
        MqOptions::new().open(name, Create::Exclusive)
    }

    /// Opens the existing queue `name` for reading and writing.
    ///
    /// # Errors
    /// See [`MqOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        MqOptions::new().open(name, Create::Open)
    }

    /// Removes the name `name`; the queue itself goes when its last handle
    /// closes.
    ///
    /// # Errors
    /// [`Error::NameInvalid`], or an OS error naming the queue (not found,
    /// permission denied).
    #[doc(alias = "mq_unlink")]
    ///
    /// # References
    /// [mq_unlink(3)](https://man7.org/linux/man-pages/man3/mq_unlink.3.html)
    pub fn unlink(name: &str) -> Result<()> {
        let cname = name::check(name, Kind::Plain)?;
        // SAFETY: `cname` is NUL-terminated and lives across the call.
        ffi::retry(|| unsafe { libc::mq_unlink(cname.as_ptr()) })
            .map_err(|e| error::os("remove", &describe(name), e))?;
        Ok(())
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest message this queue takes, in bytes.
    #[must_use]
    pub fn msg_size(&self) -> usize {
        self.msg_size
    }

    /// The queue's attributes now.
    ///
    /// # Errors
    /// An OS error naming the queue.
    #[doc(alias = "mq_getattr")]
    ///
    /// # References
    /// [mq_getattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
    pub fn attr(&self) -> io::Result<MqAttr> {
        // SAFETY: mq_attr is plain data; all-zero is a valid value.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open for the life of `self`; `attr` is
        // a valid out-pointer.
        ffi::retry(|| unsafe { libc::mq_getattr(self.fd.as_raw_fd(), &raw mut attr) })
            .map_err(|e| error::os("read the attributes of", &describe(&self.name), e))?;
        Ok(MqAttr {
            capacity: usize::try_from(attr.mq_maxmsg).unwrap_or(0),
            msg_size: usize::try_from(attr.mq_msgsize).unwrap_or(0),
            current: usize::try_from(attr.mq_curmsgs).unwrap_or(0),
            nonblocking: attr.mq_flags & libc::c_long::from(libc::O_NONBLOCK) != 0,
        })
    }

    /// Makes the handle's calls non-blocking (or blocking again).
    ///
    /// # Errors
    /// An OS error naming the queue.
    #[doc(alias = "mq_setattr")]
    ///
    /// # References
    /// [mq_setattr(3)](https://man7.org/linux/man-pages/man3/mq_setattr.3.html)
    pub fn set_nonblocking(&self, yes: bool) -> io::Result<()> {
        // SAFETY: mq_attr is plain data; all-zero is a valid value.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_flags = if yes {
            libc::c_long::from(libc::O_NONBLOCK)
        } else {
            0
        };
        // SAFETY: the descriptor is open; `attr` is valid; the old
        // attributes are not wanted (null).
        ffi::retry(|| unsafe {
            libc::mq_setattr(self.fd.as_raw_fd(), &raw const attr, std::ptr::null_mut())
        })
        .map_err(|e| error::os("set the flags of", &describe(&self.name), e))?;
        Ok(())
    }

    fn check_len(&self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.msg_size {
            return Err(Error::TooLarge {
                object: describe(&self.name),
                len: msg.len(),
                max: self.msg_size,
            });
        }
        Ok(())
    }

    /// Sends with `timeout` as the deadline (`None`: block).
    fn send_at(&self, msg: &[u8], priority: u32, at: Option<&libc::timespec>) -> Result<bool> {
        self.check_len(msg)?;
        if priority > MAX_PRIORITY {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "priority {priority} for {} is above {MAX_PRIORITY}",
                    describe(&self.name)
                ),
            )));
        }
        let at = at.map_or(std::ptr::null(), std::ptr::from_ref);
        // SAFETY: the descriptor is open; `msg` is valid for its length;
        // `at` is null or points to a timespec that outlives the call.
        let r = ffi::retry(|| unsafe {
            libc::mq_timedsend(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                priority,
                at,
            )
        });
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_would_block(&e) => Ok(false),
            Err(e) => Err(Error::Io(error::os("send to", &describe(&self.name), e))),
        }
    }

    /// Sends `msg` with `priority` (0 to 32767, higher first), waiting for
    /// room when the queue is full.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when `msg` exceeds the message size; an OS error
    /// naming the queue (for instance `EAGAIN` if the handle is
    /// non-blocking and the queue is full).
    #[doc(alias = "mq_send")]
    ///
    /// # References
    /// [mq_send(3)](https://man7.org/linux/man-pages/man3/mq_send.3.html)
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        if self.send_at(msg, priority, None)? {
            Ok(())
        } else {
            Err(Error::Io(error::os(
                "send to",
                &describe(&self.name),
                io::Error::from_raw_os_error(libc::EAGAIN),
            )))
        }
    }

    /// Sends `msg` if there is room now; `Ok(false)` when the queue is full.
    ///
    /// # Errors
    /// As [`PosixMq::send`].
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<bool> {
        let past = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        self.send_at(msg, priority, Some(&past))
    }

    /// Sends `msg`, waiting for room until `deadline`; `Ok(false)` when the
    /// deadline passed first.
    ///
    /// # Errors
    /// As [`PosixMq::send`].
    #[doc(alias = "mq_timedsend")]
    pub fn send_deadline(&self, msg: &[u8], priority: u32, deadline: Instant) -> Result<bool> {
        let at = ffi::realtime_deadline(deadline);
        self.send_at(msg, priority, Some(&at))
    }

    fn recv_at(&self, buf: &mut [u8], at: Option<&libc::timespec>) -> Result<Option<(usize, u32)>> {
        if buf.len() < self.msg_size {
            return Err(Error::BufferTooSmall {
                object: describe(&self.name),
                len: buf.len(),
                needed: self.msg_size,
            });
        }
        let at = at.map_or(std::ptr::null(), std::ptr::from_ref);
        let mut priority = 0u32;
        // SAFETY: the descriptor is open; `buf` is writable for its length;
        // `priority` is a valid out-pointer; `at` is null or valid.
        let r = ffi::retry(|| unsafe {
            libc::mq_timedreceive(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &raw mut priority,
                at,
            )
        });
        match r {
            Ok(n) => Ok(Some((usize::try_from(n).unwrap_or(0), priority))),
            Err(e) if is_would_block(&e) => Ok(None),
            Err(e) => Err(Error::Io(error::os(
                "receive from",
                &describe(&self.name),
                e,
            ))),
        }
    }

    /// Receives the oldest message of the highest priority into `buf`
    /// (at least [`PosixMq::msg_size`] bytes), waiting for one; returns its
    /// length and priority.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], or an OS error naming the queue.
    #[doc(alias = "mq_receive")]
    ///
    /// # References
    /// [mq_receive(3)](https://man7.org/linux/man-pages/man3/mq_receive.3.html)
    pub fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv_at(buf, None)?.ok_or_else(|| {
            Error::Io(error::os(
                "receive from",
                &describe(&self.name),
                io::Error::from_raw_os_error(libc::EAGAIN),
            ))
        })
    }

    /// Receives a message if one waits; `Ok(None)` when the queue is empty.
    ///
    /// # Errors
    /// As [`PosixMq::recv`].
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<Option<(usize, u32)>> {
        let past = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        self.recv_at(buf, Some(&past))
    }

    /// Receives a message, waiting until `deadline`; `Ok(None)` when the
    /// deadline passed first.
    ///
    /// # Errors
    /// As [`PosixMq::recv`].
    #[doc(alias = "mq_timedreceive")]
    pub fn recv_deadline(&self, buf: &mut [u8], deadline: Instant) -> Result<Option<(usize, u32)>> {
        let at = ffi::realtime_deadline(deadline);
        self.recv_at(buf, Some(&at))
    }

    /// Receives into a new vector of the right size: the message and its
    /// priority.
    ///
    /// # Errors
    /// As [`PosixMq::recv`].
    pub fn recv_vec(&self) -> Result<(Vec<u8>, u32)> {
        let mut buf = vec![0; self.msg_size];
        let (n, p) = self.recv(&mut buf)?;
        buf.truncate(n);
        Ok((buf, p))
    }
}

fn is_would_block(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ETIMEDOUT | libc::EAGAIN))
}

impl AsFd for PosixMq {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PosixMq {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
