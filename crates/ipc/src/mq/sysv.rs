//! System V message queues (`msgget`, `msgsnd`, `msgrcv`, `msgctl`).
//!
//! # Safety
//!
//! The libc calls read and write message buffers this module allocates
//! with the `long mtype` header the kernel expects (8-byte aligned, the
//! text right after it), and `msqid_ds` structs owned by the caller for
//! the duration of the call. A queue id is a plain number: the kernel
//! checks it on every call, so a removed queue gives an error, never
//! undefined behaviour.
#![allow(
    unsafe_code,
    reason = "System V message queues are only reachable through libc"
)]

use std::io;

use crate::error::{self, Error, Result};
use crate::ffi;
use crate::key::{Create, DEFAULT_MODE, Key};

/// Where the kernel's largest System V message size lives.
pub const MSGMAX_PATH: &str = "/proc/sys/kernel/msgmax";
/// Where the default byte capacity of a new queue lives.
pub const MSGMNB_PATH: &str = "/proc/sys/kernel/msgmnb";

/// Which message a receive takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// The oldest message of any type (`msgtyp` 0).
    Any,
    /// The oldest message of exactly this type (> 0).
    Exact(i64),
    /// The oldest message of the lowest type that is at most this value
    /// (`msgtyp` -N): a priority queue where smaller types go first.
    AtMost(i64),
}

impl MsgType {
    fn raw(self, object: &str) -> io::Result<libc::c_long> {
        let bad = |t| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("message type {t} for {object} must be at least 1"),
            )
        };
        match self {
            MsgType::Any => Ok(0),
            MsgType::Exact(t) if t >= 1 => Ok(t),
            MsgType::AtMost(t) if t >= 1 => Ok(-t),
            MsgType::Exact(t) | MsgType::AtMost(t) => Err(bad(t)),
        }
    }
}

/// A queue's status (`struct msqid_ds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsqStat {
    /// The key it was created with.
    pub key: Key,
    /// Permission bits.
    pub mode: u32,
    /// Owner user and group ids.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Creator user id.
    pub cuid: u32,
    /// Creator group id.
    pub cgid: u32,
    /// Bytes queued now (`__msg_cbytes`).
    pub bytes: u64,
    /// Messages queued now (`msg_qnum`).
    pub messages: u64,
    /// The most bytes the queue holds (`msg_qbytes`).
    pub max_bytes: u64,
    /// Pid of the last sender.
    pub last_send_pid: i32,
    /// Pid of the last receiver.
    pub last_recv_pid: i32,
    /// Time of the last send, seconds since the epoch (0: never).
    pub send_time: i64,
    /// Time of the last receive.
    pub recv_time: i64,
    /// Time of the last change.
    pub change_time: i64,
}

/// A System V message queue, by id. It lives until removed
/// ([`SysvMq::remove`]) — dropping the handle leaves it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvMq {
    id: i32,
}

/// How to find or create a System V queue: the mode of a new one.
///
/// ```
/// use memio_ipc::mq::sysv::{MsgType, SysvMqOptions};
/// use memio_ipc::{Create, Key};
///
/// let q = SysvMqOptions::new().mode(0o600).open(Key::PRIVATE, Create::Exclusive)?;
/// q.send(1, b"job")?;
/// assert_eq!(q.recv_vec(MsgType::Any)?, (b"job".to_vec(), 1));
/// q.remove()?;
/// # Ok::<(), memio_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SysvMqOptions {
    mode: u32,
}

impl Default for SysvMqOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SysvMqOptions {
    /// Mode 0600.
    #[must_use]
    pub fn new() -> Self {
        Self { mode: DEFAULT_MODE }
    }

    /// Permission bits of a new queue (default 0600).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Finds or creates the queue for `key` ([`Key::PRIVATE`] always
    /// creates).
    ///
    /// # Errors
    /// An OS error naming the key: it exists ([`Create::Exclusive`]), it
    /// does not ([`Create::Open`]), permission denied, too many queues.
    #[doc(alias = "msgget")]
    ///
    /// # References
    /// [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
    pub fn open(&self, key: Key, create: Create) -> io::Result<SysvMq> {
        // SAFETY: msgget takes only integers.
        let get = |key, flags| unsafe { libc::msgget(key, flags) };
        let id = create.sysv_get(key, self.mode, "message queue", None, get)?;
        Ok(SysvMq { id })
    }
}

impl SysvMq {
    /// Finds or creates the queue for `key` with the default options (mode
    /// 0600 when created); see [`SysvMqOptions`].
    ///
    /// # Errors
    /// As [`SysvMqOptions::open`].
    pub fn get(key: Key, create: Create) -> io::Result<Self> {
        SysvMqOptions::new().open(key, create)
    }

    /// A new private queue (`IPC_PRIVATE`), mode 0600.
    ///
    /// # Errors
    /// As [`SysvMq::get`].
    pub fn private() -> io::Result<Self> {
        Self::get(Key::PRIVATE, Create::Exclusive)
    }

    /// The queue with this id (as `ipcs -q` prints it); not checked until
    /// used.
    #[must_use]
    pub const fn from_id(id: i32) -> Self {
        Self { id }
    }

    /// The queue's id.
    #[must_use]
    pub const fn id(self) -> i32 {
        self.id
    }

    fn describe(self) -> String {
        format!("message queue id {}", self.id)
    }

    /// Sends `msg` with type `mtype` (at least 1), waiting for room.
    ///
    /// # Errors
    /// [`Error::TooLarge`] beyond `/proc/sys/kernel/msgmax`; an OS error
    /// naming the queue.
    #[doc(alias = "msgsnd")]
    ///
    /// # References
    /// [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html)
    pub fn send(self, mtype: i64, msg: &[u8]) -> Result<()> {
        self.send_flags(mtype, msg, 0).map(drop)
    }

    /// Sends `msg` if there is room now; `Ok(false)` when the queue is full.
    ///
    /// # Errors
    /// As [`SysvMq::send`].
    pub fn try_send(self, mtype: i64, msg: &[u8]) -> Result<bool> {
        self.send_flags(mtype, msg, libc::IPC_NOWAIT)
    }

    fn send_flags(self, mtype: i64, msg: &[u8], flags: i32) -> Result<bool> {
        if mtype < 1 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message type {mtype} for {} must be at least 1",
                    self.describe()
                ),
            )));
        }
        if let Some(max) = ffi::read_limit(MSGMAX_PATH).and_then(|m| usize::try_from(m).ok()) {
            if msg.len() > max {
                return Err(Error::TooLarge {
                    object: format!("{} ({MSGMAX_PATH})", self.describe()),
                    len: msg.len(),
                    max,
                });
            }
        }
        let mut buf = MsgBuf::new(msg.len());
        buf.set_type(mtype);
        buf.text_mut().copy_from_slice(msg);
        // SAFETY: `buf` holds an 8-byte-aligned `long` type followed by at
        // least `msg.len()` bytes of text, valid across the call.
        let r = ffi::retry(|| unsafe { libc::msgsnd(self.id, buf.as_ptr(), msg.len(), flags) });
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(false),
            Err(e) => Err(Error::Io(error::os("send to", &self.describe(), e))),
        }
    }

    /// Receives the message `which` selects into `buf`, waiting for one;
    /// returns its length and type.
    ///
    /// # Errors
    /// A message longer than `buf` fails with `E2BIG` (it stays queued);
    /// otherwise an OS error naming the queue (removed: `EIDRM`).
    #[doc(alias = "msgrcv")]
    ///
    /// # References
    /// [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html)
    pub fn recv(self, buf: &mut [u8], which: MsgType) -> Result<(usize, i64)> {
        self.recv_flags(buf, which, 0)?.ok_or_else(|| {
            Error::Io(error::os(
                "receive from",
                &self.describe(),
                io::Error::from_raw_os_error(libc::ENOMSG),
            ))
        })
    }

    /// Receives a matching message if one waits; `Ok(None)` otherwise.
    ///
    /// # Errors
    /// As [`SysvMq::recv`].
    pub fn try_recv(self, buf: &mut [u8], which: MsgType) -> Result<Option<(usize, i64)>> {
        self.recv_flags(buf, which, libc::IPC_NOWAIT)
    }

    fn recv_flags(
        self,
        buf: &mut [u8],
        which: MsgType,
        flags: i32,
    ) -> Result<Option<(usize, i64)>> {
        let mtype = which.raw(&self.describe())?;
        let mut msg = MsgBuf::new(buf.len());
        // SAFETY: `msg` has room for the type and `buf.len()` bytes of text.
        let r = ffi::retry(|| unsafe {
            libc::msgrcv(self.id, msg.as_mut_ptr(), buf.len(), mtype, flags)
        });
        match r {
            Ok(n) => {
                let n = usize::try_from(n).unwrap_or(0);
                buf[..n].copy_from_slice(&msg.text_mut()[..n]);
                Ok(Some((n, msg.mtype())))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOMSG) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => Err(Error::BufferTooSmall {
                object: self.describe(),
                len: buf.len(),
                needed: msgmax(),
            }),
            Err(e) => Err(Error::Io(error::os("receive from", &self.describe(), e))),
        }
    }

    /// Receives into a new vector as large as the system's biggest message.
    ///
    /// # Errors
    /// As [`SysvMq::recv`].
    pub fn recv_vec(self, which: MsgType) -> Result<(Vec<u8>, i64)> {
        let mut buf = vec![0; msgmax()];
        let (n, t) = self.recv(&mut buf, which)?;
        buf.truncate(n);
        Ok((buf, t))
    }

    /// [`SysvMq::recv_vec`] without waiting; `Ok(None)` when no message
    /// matches.
    ///
    /// # Errors
    /// As [`SysvMq::recv`].
    pub fn try_recv_vec(self, which: MsgType) -> Result<Option<(Vec<u8>, i64)>> {
        let mut buf = vec![0; msgmax()];
        Ok(self.try_recv(&mut buf, which)?.map(|(n, t)| {
            buf.truncate(n);
            (buf, t)
        }))
    }

    /// The queue's status.
    ///
    /// # Errors
    /// An OS error naming the queue.
    #[doc(alias = "msgctl")]
    #[doc(alias = "IPC_STAT")]
    ///
    /// # References
    /// [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
    pub fn stat(self) -> io::Result<MsqStat> {
        // SAFETY: msqid_ds is plain data; all-zero is a valid value.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a valid out-pointer for IPC_STAT.
        ffi::retry(|| unsafe { libc::msgctl(self.id, libc::IPC_STAT, &raw mut ds) })
            .map_err(|e| error::os("read the status of", &self.describe(), e))?;
        Ok(MsqStat {
            key: Key::from_raw(ds.msg_perm.__key),
            mode: u32::from(ds.msg_perm.mode) & 0o777,
            uid: ds.msg_perm.uid,
            gid: ds.msg_perm.gid,
            cuid: ds.msg_perm.cuid,
            cgid: ds.msg_perm.cgid,
            bytes: ds.__msg_cbytes,
            messages: ds.msg_qnum,
            max_bytes: ds.msg_qbytes,
            last_send_pid: ds.msg_lspid,
            last_recv_pid: ds.msg_lrpid,
            send_time: ds.msg_stime,
            recv_time: ds.msg_rtime,
            change_time: ds.msg_ctime,
        })
    }

    /// Removes the queue now; blocked senders and receivers fail with
    /// `EIDRM`.
    ///
    /// # Errors
    /// An OS error naming the queue.
    #[doc(alias = "IPC_RMID")]
    ///
    /// # References
    /// [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
    pub fn remove(self) -> io::Result<()> {
        // SAFETY: IPC_RMID takes no buffer.
        ffi::retry(|| unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })
            .map_err(|e| error::os("remove", &self.describe(), e))?;
        Ok(())
    }
}

/// The system's largest System V message (`/proc/sys/kernel/msgmax`).
fn msgmax() -> usize {
    ffi::read_limit(MSGMAX_PATH)
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(8192)
}

/// A `struct msgbuf`: a `long` type, then the text, 8-byte aligned.
struct MsgBuf {
    words: Vec<i64>,
    len: usize,
}

impl MsgBuf {
    fn new(len: usize) -> Self {
        Self {
            words: vec![0; 1 + len.div_ceil(8)],
            len,
        }
    }

    fn set_type(&mut self, mtype: i64) {
        self.words[0] = mtype;
    }

    fn mtype(&self) -> i64 {
        self.words[0]
    }

    fn text_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        let bytes: &mut [u8] = bytes_of_mut(&mut self.words[1..]);
        &mut bytes[..len]
    }

    fn as_ptr(&self) -> *const libc::c_void {
        self.words.as_ptr().cast()
    }

    fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.words.as_mut_ptr().cast()
    }
}

fn bytes_of_mut(words: &mut [i64]) -> &mut [u8] {
    let len = std::mem::size_of_val(words);
    // SAFETY: any bit pattern is a valid u8 and i64; the slice covers
    // exactly the words' memory and borrows them mutably for its life.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}
