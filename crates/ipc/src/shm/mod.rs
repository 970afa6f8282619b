//! Shared memory as [`memio_map::Region`]s: POSIX named objects
//! ([`posix`], `shm_open`), memfd ([`memfd`]: nameless, sealable, handed to
//! children as an fd), and System V segments ([`sysv`], `shmget`/`shmat`).
//!
//! Every kind is made the same way, with an options builder whose last
//! call opens or creates the object: [`posix::ShmOptions`],
//! [`memfd::MemfdOptions`], [`sysv::SysvShmOptions`].
//!
//! Every one returns the memory as a `Region`, so sync, advise, protect,
//! lock and residency work the same on all of them. Shared memory may
//! change under the process at any time: read and write it with
//! [`Region::read_at`](memio_map::Region::read_at)/
//! [`Region::write_at`](memio_map::Region::write_at), atomics
//! ([`Region::atomic_u32`](memio_map::Region::atomic_u32)) or raw pointers
//! — never hold a slice of it.

pub mod memfd;
pub mod posix;
pub mod sysv;
