//! Inter-process communication on Linux: FIFOs, POSIX and System V message
//! queues, POSIX and System V semaphores, and shared memory returned as
//! mapped regions.
//!
//! | need | use |
//! |---|---|
//! | bytes between parent and child | `std::io::pipe` (see [`fifo`]) |
//! | bytes between unrelated processes | [`fifo`] |
//! | discrete messages with priorities, pollable | [`mq::posix::PosixMq`] |
//! | messages selected by type, found by key | [`mq::sysv::SysvMq`] |
//! | a counter shared by name | [`sem::posix::NamedSem`] |
//! | semaphores inside shared memory | [`sem::posix::SemRegion`] (owns the memory), [`sem::posix::SharedSem`] |
//! | several counters changed atomically, undone on crash | [`sem::sysv::SemSet`] |
//! | named shared memory, as a [`memio_map::Region`] | [`shm::posix::ShmOptions`] |
//! | nameless shared memory handed to a child, sealable | [`shm::memfd::MemfdOptions`] |
//! | System V segments, attached as a `Region` | [`shm::sysv::SysvShmOptions`] |
//! | messages between processes without copying through the kernel | [`channel`] |
//! | request/response between processes | [`rpc`] |
//! | what exists on the machine (`ipcs`) | [`list`] |
//!
//! Every object is made the same way, as [`memio_map::MapOptions`] makes a
//! `Region`: an options builder (`new()`, the object's settings, `mode()`)
//! whose last call opens or creates it — `open(name_or_key, Create)` for
//! objects found by name or key ([`mq::posix::MqOptions`],
//! [`mq::sysv::SysvMqOptions`], [`shm::posix::ShmOptions`],
//! [`shm::sysv::SysvShmOptions`], [`sem::posix::NamedSemOptions`],
//! [`sem::sysv::SemSetOptions`]), `create(..)` for those only ever created
//! ([`shm::memfd::MemfdOptions`], [`fifo::FifoOptions`]). Short forms such
//! as [`mq::posix::PosixMq::create`] use the default options.
//!
//! Secure defaults throughout: new objects get mode 0600 unless the caller
//! widens it ([`DEFAULT_MODE`]); creating is exclusive unless
//! [`Create::OpenOrCreate`] is asked for; handles close on drop; names are
//! removed only by an explicit `unlink` or `remove`.
//!
//! ```
//! use memio_ipc::mq::posix::MqOptions;
//! use memio_ipc::Create;
//!
//! let name = format!("/memio-doc-{}", std::process::id());
//! let q = MqOptions::new().capacity(4).msg_size(64).open(&name, Create::Exclusive)?;
//! q.send(b"low", 1)?;
//! q.send(b"high", 9)?;
//! let mut buf = [0u8; 64];
//! let (n, priority) = q.recv(&mut buf)?;
//! assert_eq!((&buf[..n], priority), (&b"high"[..], 9));
//! memio_ipc::mq::posix::PosixMq::unlink(&name)?;
//! # Ok::<(), memio_ipc::Error>(())
//! ```

pub mod channel;
mod error;
mod ffi;
pub mod fifo;
mod key;
pub mod list;
pub mod mq;
mod name;
pub mod rpc;
pub mod sem;
pub mod shm;

pub use error::{Error, OsError, Result, raw_errno};
pub use key::{Create, DEFAULT_MODE, Key};
pub use name::{NAME_MAX, validate, validate_semaphore};
