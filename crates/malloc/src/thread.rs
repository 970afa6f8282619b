//! Which heap a thread holds: a thread-local pointer, set at the thread's
//! first allocation from the pool of heaps that exited threads gave back,
//! and given back by a pthread key destructor when the thread exits. Also
//! start-up (options, the key, fork handlers) and fork safety.
//!
//! The thread-local is a raw pointer in static TLS with no destructor
//! (see `slot`): reading it is a thread-pointer-relative load, in the
//! shared library too, it never registers anything, and it stays readable through every
//! other destructor of the thread. Exit is caught with a pthread key
//! instead (glibc runs key destructors after the thread-local ones and
//! stores the key's value in the thread descriptor, without allocating).
//! A destructor that allocates after the heap went back gets a heap again
//! and sets the key again, which glibc honours by running ours again.
//!
//! # Safety
//!
//! Heaps are carved from mappings that are never unmapped, so a heap
//! pointer stays valid for the life of the process. A heap is held by at
//! most one thread: the pool hands each out once under its lock, and a
//! thread gives its heap back only from its exit destructor, after which
//! its thread-local pointer no longer names it.
#![allow(
    unsafe_code,
    reason = "thread-local heap pointers, pthread keys and fork handlers"
)]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "metadata walks are runs of raw dereferences resting on the one invariant stated above"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "heaps are carved at 64-byte steps from a page-aligned mapping"
)]
#![allow(
    clippy::cast_possible_truncation,
    reason = "pthread keys are small integers"
)]

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering,
};

use crate::heap::{self, Heap};
use crate::lock::SpinLock;
use crate::{large, options, os};

/// The thread-local heap pointer on x86-64 Linux: one slot of static TLS
/// reached with the initial-exec model, as C allocators declare theirs.
/// Rust's `thread_local!` compiles to that in an executable, but inside a
/// shared library (`libmemio_malloc.so`) to the general-dynamic model,
/// where every read is a call to `__tls_get_addr`: two calls per
/// `malloc`/`free` pair. A library loaded at start-up (`LD_PRELOAD`, or
/// linked) gets its static TLS set up with the thread, before any of its
/// code runs; glibc keeps spare static TLS for a library opened later.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod slot {
    use crate::heap::Heap;

    // Eight zeroed bytes of thread-local storage (`.tbss`), hidden: not
    // exported from a shared library, so nothing can interpose them.
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl memio_malloc_v1_heap",
        ".hidden memio_malloc_v1_heap",
        ".type memio_malloc_v1_heap,@object",
        ".size memio_malloc_v1_heap,8",
        "memio_malloc_v1_heap:",
        ".zero 8",
        ".popsection",
    );

    #[inline]
    pub(super) fn get() -> *mut Heap {
        let v: *mut Heap;
        // SAFETY: loads the slot's offset from the thread pointer (the GOT
        // entry the linker fills for the initial-exec model) and reads the
        // calling thread's eight bytes there; static TLS exists for every
        // thread from its start.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + memio_malloc_v1_heap@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, preserves_flags, readonly, pure),
            );
        }
        v
    }

    #[inline]
    pub(super) fn set(h: *mut Heap) {
        // SAFETY: as in `get`, a store to the calling thread's own slot.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + memio_malloc_v1_heap@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {h}",
                t = out(reg) _,
                h = in(reg) h,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// Elsewhere: `thread_local!`.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod slot {
    use core::cell::Cell;
    use core::ptr::null_mut;

    use crate::heap::Heap;

    thread_local! {
        static HEAP: Cell<*mut Heap> = const { Cell::new(null_mut()) };
    }

    #[inline]
    pub(super) fn get() -> *mut Heap {
        HEAP.with(Cell::get)
    }

    #[inline]
    pub(super) fn set(h: *mut Heap) {
        HEAP.with(|c| c.set(h));
    }
}

/// The heap the calling thread holds, or null.
#[inline]
pub(crate) fn current() -> *mut Heap {
    slot::get()
}

/// The calling thread's heap, taking one if it holds none (null only when
/// the system is out of memory).
#[inline]
pub(crate) fn heap() -> *mut Heap {
    let h = current();
    if h.is_null() { take() } else { h }
}

struct Pool {
    /// Heaps no thread holds.
    free: *mut Heap,
    /// Unused room for new heaps.
    chunk: *mut u8,
    chunk_left: usize,
}

// SAFETY: the pool holds pointers to heaps that only the lock holder
// touches.
unsafe impl Send for Pool {}

static POOL: SpinLock<Pool> = SpinLock::new(Pool {
    free: null_mut(),
    chunk: null_mut(),
    chunk_left: 0,
});
/// Every heap ever made, newest first (never unlinked).
pub(crate) static ALL: AtomicPtr<Heap> = AtomicPtr::new(null_mut());
/// How many heaps exist.
pub(crate) static HEAPS: AtomicUsize = AtomicUsize::new(0);

const HEAP_SIZE: usize = size_of::<Heap>().next_multiple_of(align_of::<Heap>());
const _: () = assert!(align_of::<Heap>() <= os::OS_PAGE);
const CHUNK: usize = 1 << 20;

#[cold]
fn take() -> *mut Heap {
    init();
    let h = {
        let mut pool = POOL.lock();
        if pool.free.is_null() {
            new_heap(&mut pool)
        } else {
            let h = pool.free;
            // SAFETY: pooled heaps are live and only the lock holder reads
            // their links and segments.
            unsafe {
                heap::set_pooled(h, false);
                pool.free = (*h).next_free;
                // The next heap is the head now: no longer counted.
                if !pool.free.is_null() {
                    uncount_pooled(heap::dirty_slices(pool.free));
                }
            }
            h
        }
    };
    if !h.is_null() {
        slot::set(h);
        if HAS_KEY.load(Ordering::Relaxed) {
            // SAFETY: the key was created by `init`; the value is only read
            // back by our destructor.
            unsafe { libc::pthread_setspecific(key(), h.cast()) };
        }
    }
    h
}

fn new_heap(pool: &mut Pool) -> *mut Heap {
    if pool.chunk_left < HEAP_SIZE {
        let Some(mem) = os::map(CHUNK) else {
            return null_mut();
        };
        crate::stats::mapped(CHUNK, &crate::stats::META_BYTES);
        pool.chunk = mem;
        pool.chunk_left = CHUNK;
    }
    let h = pool.chunk.cast::<Heap>();
    // SAFETY: `HEAP_SIZE` bytes of the chunk remain, unused, aligned for a
    // heap (the chunk is page-aligned, `HEAP_SIZE` a multiple of that).
    unsafe {
        pool.chunk = pool.chunk.add(HEAP_SIZE);
        Heap::init(h);
    }
    pool.chunk_left -= HEAP_SIZE;
    let mut head = ALL.load(Ordering::Relaxed);
    loop {
        // SAFETY: `h` is ours until published.
        unsafe { (*h).next_all = head };
        match ALL.compare_exchange_weak(head, h, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(x) => head = x,
        }
    }
    HEAPS.fetch_add(1, Ordering::Relaxed);
    h
}

/// The pthread key destructor: the thread is exiting.
extern "C" fn on_exit(value: *mut c_void) {
    let h = value.cast::<Heap>();
    if slot::get() == h {
        slot::set(null_mut());
    }
    give_back(h);
}

/// Tidies a heap and puts it in the pool. Its empty pages stay mapped
/// for the purge delay, so that a thread started soon after (a program
/// that starts threads in a loop) takes it warm; after the delay the next
/// page-level event of any thread, or `trim`, purges the pool. Before
/// that, a held heap that must take fresh pages takes them from the
/// pooled heaps but the last ([`trade_pool`]). Each
/// class keeps its current page, so that the next thread's blocks of a
/// class land where that class's blocks were (a page retired to its
/// segment would be reused by whichever class comes first, and touched
/// further than before, page after page, thread after thread).
fn give_back(h: *mut Heap) {
    // SAFETY: the exiting thread held `h` and holds it no longer; no one
    // else can until it is in the pool.
    unsafe { heap::collect_all(h, true, false) };
    let mut pool = POOL.lock();
    // The head so far is the head no longer: its slices count now.
    if !pool.free.is_null() {
        // SAFETY: pooled heaps are held by the pool lock's holder: us.
        let dirty = unsafe { heap::dirty_slices(pool.free) };
        POOLED_DIRTY.fetch_add(dirty, Ordering::Relaxed);
    }
    // SAFETY: as above; the pool lock guards `next_free`.
    unsafe {
        heap::set_pooled(h, true);
        (*h).next_free = pool.free;
    }
    pool.free = h;
    mark_pool_dirty();
}

/// Takes `n` slices off [`POOLED_DIRTY`] (under the pool lock).
fn uncount_pooled(n: usize) {
    let now = POOLED_DIRTY.load(Ordering::Relaxed);
    debug_assert!(now >= n, "pooled dirty slices {now} < {n}");
    POOLED_DIRTY.store(now.saturating_sub(n), Ordering::Relaxed);
}

/// Sets when the pooled heaps are due to be purged, unless it is set.
/// Called under the pool lock, as the purge clears it: a heap is never
/// pooled with free pages and the mark cleared after it was set. (A
/// thread that gives blocks it kept back to pooled heaps sets it without
/// the lock: a purge that ran between its pushes and the mark merely
/// leaves those blocks to the next one.)
pub(crate) fn mark_pool_dirty() {
    let due = os::now_ns()
        .saturating_add(options::PURGE_DELAY_NS.load(Ordering::Relaxed))
        .max(1);
    let _ = POOL_PURGE_AT.compare_exchange(0, due, Ordering::Relaxed, Ordering::Relaxed);
}

/// When the pooled heaps are due to be purged; 0 when none wait.
static POOL_PURGE_AT: AtomicU64 = AtomicU64::new(0);
/// Dirty slices in the pooled heaps but the head, the ones
/// [`trade_pool`] may take (written under the pool lock; read without it
/// as a hint).
static POOLED_DIRTY: AtomicUsize = AtomicUsize::new(0);

/// Whether pooled heaps wait to be purged.
#[inline]
pub(crate) fn pool_dirty() -> bool {
    POOL_PURGE_AT.load(Ordering::Relaxed) != 0
}

/// Purges the pooled heaps when their delay has passed (skipped when the
/// pool is busy, the caller's own `trim_pool` included).
pub(crate) fn purge_pool_when_due(now: u64) {
    let due = POOL_PURGE_AT.load(Ordering::Relaxed);
    if due == 0 || now < due {
        return;
    }
    if let Some(pool) = POOL.try_lock() {
        POOL_PURGE_AT.store(0, Ordering::Relaxed);
        trim_locked(&pool);
    }
}

/// Takes the blocks other threads freed into the pooled heaps (the heaps
/// of exited threads) back onto their pages, so that those count as free
/// again.
pub(crate) fn collect_pool() {
    let pool = POOL.lock();
    let mut h = pool.free;
    while !h.is_null() {
        // SAFETY: a pooled heap is held by the pool lock's holder: us.
        unsafe {
            let before = heap::dirty_slices(h);
            heap::collect_all(h, true, false);
            let after = heap::dirty_slices(h);
            if after > before {
                mark_pool_dirty();
            }
            // The head's slices are not counted.
            if h != pool.free {
                if after > before {
                    POOLED_DIRTY.fetch_add(after - before, Ordering::Relaxed);
                } else {
                    uncount_pooled(before - after);
                }
            }
            h = (*h).next_free;
        }
    }
}

/// Purges up to `slices` dirty slices of the pooled heaps: a held heap
/// took that many fresh slices with no dirty one of its own left to trade
/// for them. A pooled heap waits for a thread to take it; when threads
/// swap roles (a pipeline's producers exit, the next phase's threads take
/// their heaps and other, emptier ones), the free pages of one would stay
/// resident while another grows, and the process's footprint be one per
/// heap instead of one. The heap pooled last is left warm: it is the one
/// the next new thread takes (a program starting threads one after
/// another while another thread grows). Skipped when the pool is busy or
/// has nothing to give.
pub(crate) fn trade_pool(slices: usize) {
    if slices == 0 || POOLED_DIRTY.load(Ordering::Relaxed) == 0 {
        return;
    }
    let Some(pool) = POOL.try_lock() else {
        return;
    };
    if pool.free.is_null() {
        return;
    }
    let mut left = slices;
    // SAFETY: pooled heaps are held by the pool lock's holder: us.
    unsafe {
        let mut h = (*pool.free).next_free;
        while !h.is_null() && left > 0 {
            left = heap::trade(h, null_mut(), 0, left);
            h = (*h).next_free;
        }
    }
    uncount_pooled(slices - left);
}

/// Trims the heaps in the pool; returns bytes purged.
pub(crate) fn trim_pool() -> usize {
    let pool = POOL.lock();
    POOL_PURGE_AT.store(0, Ordering::Relaxed);
    trim_locked(&pool)
}

fn trim_locked(pool: &Pool) -> usize {
    let mut h = pool.free;
    let mut bytes = 0;
    while !h.is_null() {
        // SAFETY: a pooled heap is held by the pool lock's holder: us.
        unsafe {
            heap::collect_all(h, false, true);
            bytes += heap::purge(h);
            h = (*h).next_free;
        }
    }
    POOLED_DIRTY.store(0, Ordering::Relaxed);
    bytes
}

const UNINIT: u8 = 0;
/// Set up but for the fork handlers, which the thread `REGISTERER` is
/// registering: it alone may allocate meanwhile (`pthread_atfork` may).
const REGISTERING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static INIT: SpinLock<()> = SpinLock::new(());
static REGISTERER: AtomicI32 = AtomicI32::new(0);
static KEY: AtomicUsize = AtomicUsize::new(0);
/// Whether the key exists (without one, which only a process that used up
/// every pthread key sees, exiting threads keep their heaps).
static HAS_KEY: AtomicBool = AtomicBool::new(false);

fn key() -> libc::pthread_key_t {
    KEY.load(Ordering::Relaxed) as libc::pthread_key_t
}

/// Start-up, once per process: options, the exit key, fork handlers.
#[inline]
pub(crate) fn init() {
    if STATE.load(Ordering::Acquire) != READY {
        init_slow();
    }
}

#[cold]
fn init_slow() {
    let me = rustix::thread::gettid().as_raw_nonzero().get();
    if STATE.load(Ordering::Acquire) == REGISTERING && REGISTERER.load(Ordering::Relaxed) == me {
        // An allocation made by `pthread_atfork` below.
        return;
    }
    // Every other thread waits here until the fork handlers are in place:
    // one that went on and took the pool's lock while they were not could
    // be copied holding it into the child of a fork, whose first
    // allocation would then wait forever.
    let _g = INIT.lock();
    if STATE.load(Ordering::Acquire) == READY {
        return;
    }
    options::read_environment();
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: `k` is a valid out-pointer and `on_exit` has the signature
    // pthread destructors have.
    if unsafe { libc::pthread_key_create(&raw mut k, Some(on_exit)) } == 0 {
        KEY.store(k as usize, Ordering::Relaxed);
        HAS_KEY.store(true, Ordering::Relaxed);
    }
    // An allocation this thread makes while registering the fork handlers
    // proceeds (see above); other threads wait until they are in place.
    REGISTERER.store(me, Ordering::Relaxed);
    STATE.store(REGISTERING, Ordering::Release);
    // SAFETY: the handlers are `extern "C" fn()` that only take and
    // release spin locks.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
    STATE.store(READY, Ordering::Release);
}

/// Takes every global lock, so the child of a fork finds them in a state
/// it can use (each released once, by `after_fork`, in both processes).
extern "C" fn before_fork() {
    POOL.acquire();
    large::CACHE.acquire();
}

extern "C" fn after_fork() {
    large::CACHE.release();
    POOL.release();
}

/// Asks every heap to purge at its holder's next page-level event.
pub(crate) fn ask_all_to_purge() {
    let mut h = ALL.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are never unmapped; `purge_now` is atomic and
        // `next_all` was written before the heap was published.
        let heap = unsafe { &*h };
        heap.purge_now.store(true, Ordering::Relaxed);
        h = heap.next_all;
    }
}
