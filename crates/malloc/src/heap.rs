//! Segments, pages and per-thread heaps: the small-block allocator.
//!
//! A **segment** is a 4 MiB mapping aligned to 4 MiB, cut into 64 slices
//! of 64 KiB. Slice 0 holds the segment's header (its owner, which slices
//! are taken, and one page descriptor per slice); so the header of any
//! block is found by masking the block's address, with no lookup table.
//! A **page** is a run of slices holding blocks of one size class: one
//! slice for classes up to 8 KiB, eight blocks' worth up to 64 KiB, and a
//! single block past that; `realloc` grows such a one-block page into the
//! free slices after it, when there are enough, instead of moving its
//! block (see [`grow_in_place`]). A **heap** belongs
//! to one thread at a time and owns its segments; for each class it keeps
//! the page it allocates from, the other pages with room, and the full
//! ones.
//!
//! Each page shards its free blocks three ways, as mimalloc does:
//!
//! - `free`: what allocation pops, with no atomic operation and no lock;
//! - `local_free`: where the owner thread's frees go; it becomes `free`
//!   when `free` runs dry, which bounds how long the allocation fast path
//!   goes without a look at the slow path's work;
//! - `thread_free`: an atomic stack other threads push their frees onto
//!   (one compare-exchange, no lock, and a flag on the owner heap); the
//!   owner takes it whole when it runs out of blocks in the page, or
//!   sweeps every page for it a few slow-path allocations after the flag
//!   went up (see [`sweep`]).
//!
//! A thread that frees a small block of another heap's page first keeps it
//! (up to 16 of a class, blocks up to 1 KiB, of classes it has allocated
//! since it took its heap, and not of a heap waiting in the pool) and hands
//! it out again before fresh blocks of its own (see [`borrow`]), as glibc's
//! tcache does with any chunk. Kept blocks go back to their pages when the
//! program frees them again, when more than 16 of a class pile up (the
//! thread frees the class faster than it allocates it), when the thread
//! exits or trims, and at its next slow-path allocation after another
//! thread's `trim`. A thread that goes idle keeps what it kept, and the
//! pages those blocks sit in stay, as glibc's `malloc_trim` leaves other
//! threads' tcache chunks.
//!
//! A page starts with nothing on its lists and a bump index: blocks are
//! threaded onto `free` about 4 KiB at a time as they are first needed, so
//! a page's untouched tail never becomes resident. A page whose last block
//! comes back is retired (unless it is the class's current page): its
//! slices go back to the segment, marked dirty, and are purged
//! (`MADV_DONTNEED`) once they have stayed unused for the purge delay
//! (which stretches when a purge proves early: see `options`): at the first
//! page-level event past the heap's deadline, the free slices freed a delay
//! ago or more are purged (and a segment with no page and no slice freed
//! since is unmapped unless it is the heap's last), and those freed since
//! (by a program freeing and reusing pages right now) wait for a later
//! deadline, a delay past their own free or up to a quarter of a delay more
//! (deadlines come a quarter of a delay apart at least, so purges are
//! batched). Until then both are reused without a page fault: a new page
//! goes where it takes the fewest slices that are not dirty, in the
//! shortest free run that holds it (best fit), and when it must take fresh
//! ones, as many dirty slices it could not use are purged at once, so that
//! a heap whose free slices are too scattered for the pages it needs trades
//! them for what it touches instead of growing. What a heap lacks of its
//! own to trade, the heaps of exited threads waiting in the pool give, but
//! the one pooled last, which the next new thread takes (see
//! `thread::trade_pool`).
//!
//! # Safety
//!
//! Headers, descriptors and blocks are reached through raw pointers
//! computed from block addresses. The rules that make it sound:
//!
//! - a heap's non-atomic fields and its pages' non-atomic fields are read
//!   and written only by the thread that holds the heap (the thread whose
//!   thread-local heap pointer it is, or the holder of the pool lock for a
//!   heap in the pool);
//! - another thread touches a page only through `thread_free`, and only
//!   while the block it pushes is still counted in `used`, so the page
//!   cannot be retired, nor its segment unmapped, under it; it reads the
//!   owner heap from the segment before the push, and sets the heap's
//!   atomic `remote_freed` after it (heaps are never unmapped);
//! - a free block's first word is the free-list link; a block handed out is
//!   the caller's until it is freed.
//!
//! # Wrong pointers
//!
//! [`validate`] tells a block's start from any other address of a segment
//! before the block is freed: the page must be live, the offset inside it a
//! multiple of the block size (one multiplication: `div_magic` holds the
//! page's `2^64 / block_size` rounded up, so `offset * div_magic < div_magic`
//! exactly when the block size divides the offset, for offsets below
//! 2^32) and below the page's capacity. A free block also carries a key in
//! its second word (its address mixed with [`FREE_KEY`], as glibc's tcache
//! key): written when it is freed, cleared when it is handed out, so a
//! second free of it sees the key. Blocks of the 8-byte class have no
//! second word and no key.
#![allow(
    unsafe_code,
    reason = "the heap's own metadata and blocks, through raw pointers"
)]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "metadata walks are runs of raw dereferences resting on the one invariant stated above"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "blocks and headers are at least 8-aligned (class sizes are multiples of 8, headers start mappings)"
)]
#![allow(
    clippy::cast_possible_truncation,
    reason = "block counts, sizes and slice indices are bounded by the 4 MiB segment"
)]
#![allow(
    clippy::declare_interior_mutable_const,
    reason = "the empty page is a template copied into place, never shared"
)]

use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::class::{CLASSES, class_of, size_of_class};
use crate::os::{self, OS_PAGE, SEGMENT_SIZE};
use crate::{large, options, stats, thread};

/// Slices are 64 KiB.
pub(crate) const SLICE_SHIFT: u32 = 16;
const SLICE_SIZE: usize = 1 << SLICE_SHIFT;
const SLICES: usize = SEGMENT_SIZE / SLICE_SIZE;

/// Marks a segment header (the first word of the 4 MiB unit).
pub(crate) const KIND_SEGMENT: usize = 0x6d65_6d69_6f53_4547;

/// A free block: its first word links to the next; blocks of 16 bytes or
/// more hold [`free_key`] in the second.
#[repr(C)]
pub(crate) struct Block {
    next: *mut Block,
}

/// Mixed with a free block's address into its second word.
const FREE_KEY: usize = 0x9e37_79b9_7f4a_7c15;

/// The key a free block at `b` carries.
#[inline]
fn free_key(b: *const u8) -> usize {
    b as usize ^ FREE_KEY
}

/// Writes block `b`'s second word: its key when `freed`, else 0.
///
/// # Safety
///
/// `b` is a block of at least 16 bytes that the caller may write.
#[inline]
unsafe fn set_key(b: *mut u8, freed: bool) {
    let v = if freed { free_key(b) } else { 0 };
    // SAFETY: the block has a second word, 8-aligned (blocks are).
    unsafe { b.cast::<usize>().add(1).write(v) };
}

/// `ceil(2^64 / size)`: for `x < 2^32`, `size` divides `x` exactly when
/// `x * magic` (wrapping) is below `magic` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019).
const fn div_magic(size: usize) -> u64 {
    u64::MAX / size as u64 + 1
}
/// The page is on its class's full list.
const FULL: u8 = 1;

/// A page descriptor, in its segment's header.
///
/// Its first cache line holds what the owner writes on its allocations
/// and frees; the second what other threads' frees touch: `thread_free`,
/// and the class and size they read. (Sharing one line, each free from
/// another thread took the line from the owner's core, and the owner's
/// next allocation took it back: a producer/consumer pair ran 7 % slower.)
#[repr(C, align(128))]
pub(crate) struct Page {
    free: *mut Block,
    local_free: *mut Block,
    next: *mut Page,
    prev: *mut Page,
    start: *mut u8,
    /// [`div_magic`] of `block_size`.
    div_magic: u64,
    /// Blocks handed out and not yet back on `free`/`local_free` (a block
    /// on `thread_free` still counts).
    used: u32,
    /// Blocks threaded onto the lists so far.
    bump: u32,
    capacity: u32,
    flags: u8,
    slices: u8,
    thread_free: AtomicPtr<Block>,
    block_size: u32,
    class: u16,
}

const _: () = assert!(core::mem::offset_of!(Page, thread_free) == 64);

impl Page {
    const EMPTY: Self = Self {
        free: null_mut(),
        local_free: null_mut(),
        next: null_mut(),
        prev: null_mut(),
        start: null_mut(),
        div_magic: 0,
        used: 0,
        bump: 0,
        capacity: 0,
        flags: 0,
        slices: 0,
        thread_free: AtomicPtr::new(null_mut()),
        block_size: 0,
        class: 0,
    };
}

/// A segment's header, at its start.
#[repr(C)]
pub(crate) struct Segment {
    kind: usize,
    heap: *mut Heap,
    next: *mut Segment,
    /// The heap's list of its segments whose longest free run is `run`
    /// slices long (see [`reopen`]).
    open_next: *mut Segment,
    open_prev: *mut Segment,
    /// The longest run of free slices; 0 when none is free (and the
    /// segment is on no list).
    run: u8,
    /// One bit per slice in use (bit 0, the header, always).
    taken: u64,
    /// Free slices whose memory has not been purged yet.
    dirty: u64,
    /// For each dirty slice, when its page was freed: a heap's deadline
    /// spares the slices freed within the delay.
    freed_at: [u64; SLICES],
    /// For each slice, the slice where its page starts.
    slice_page: [u8; SLICES],
    pages: [Page; SLICES],
}

const _: () = assert!(size_of::<Segment>() <= SLICE_SIZE);
const _: () = assert!(SLICES == 64);

/// A doubly linked list of pages.
#[derive(Clone, Copy)]
struct List {
    first: *mut Page,
    last: *mut Page,
}

impl List {
    const EMPTY: Self = Self {
        first: null_mut(),
        last: null_mut(),
    };

    /// # Safety
    ///
    /// `p` is a live descriptor on no list.
    unsafe fn push_back(&mut self, p: *mut Page) {
        // SAFETY: `p` and `self.last` are live descriptors of this heap.
        unsafe {
            (*p).next = null_mut();
            (*p).prev = self.last;
            if self.last.is_null() {
                self.first = p;
            } else {
                (*self.last).next = p;
            }
        }
        self.last = p;
    }

    /// # Safety
    ///
    /// `p` is on this list.
    unsafe fn remove(&mut self, p: *mut Page) {
        // SAFETY: `p` and its neighbours are live descriptors on this list.
        unsafe {
            let (prev, next) = ((*p).prev, (*p).next);
            if prev.is_null() {
                self.first = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                (*next).prev = prev;
            }
            (*p).next = null_mut();
            (*p).prev = null_mut();
        }
    }
}

/// A thread's heap.
#[repr(C)]
pub(crate) struct Heap {
    /// The page each class allocates from; `empty` when it has none.
    current: [*mut Page; CLASSES],
    avail: [List; CLASSES],
    full: [List; CLASSES],
    /// Blocks of each class handed out by this heap and not collected
    /// back (written by the holder only; read by `stats`).
    pub(crate) in_use: [AtomicUsize; CLASSES],
    segments: *mut Segment,
    /// Per length, the segments whose longest run of free slices is that
    /// long: `place` looks for room of `n` slices in those of `n` or more.
    /// A heap of thousands of segments full but for a slice or two walked
    /// them all at every new page.
    open: [*mut Segment; SLICES],
    /// At least as many as the dirty slices of the heap's segments (a
    /// page taking dirty slices leaves it high; a walk over every segment
    /// sets it right): with none, a trade has nothing to look for, and
    /// the walk that found nothing cost a heap of thousands of segments
    /// as much as the allocation it was for, many times over.
    dirty_bound: usize,
    /// When the dirty slices of this heap's segments are due to be purged;
    /// 0 when none are waiting.
    purge_at: u64,
    /// Set by `trim` in another thread: purge at the next page event.
    pub(crate) purge_now: AtomicBool,
    /// Per class, blocks of other heaps' pages that this thread freed and
    /// keeps to hand out again (see [`borrow`]), and how many.
    foreign: [*mut Block; CLASSES],
    foreign_len: [u16; CLASSES],
    /// One bit per class the holder has allocated (through the slow path)
    /// since it took the heap: the classes [`borrow`] keeps blocks of.
    allocates: [u64; CLASSES.div_ceil(64)],
    /// Whether the heap waits in the pool for a thread (read by other
    /// threads' frees, which keep no block of a pooled heap: `trim` gives
    /// its pages back).
    pub(crate) pooled: AtomicBool,
    /// Set by other threads' frees into this heap's pages; one of the
    /// holder's slow-path allocations in 32 then takes them back from
    /// every page, a quarter of a purge delay after the last such sweep at
    /// the soonest (see [`housekeep`]).
    remote_freed: AtomicBool,
    /// When the holder may sweep again.
    sweep_at: u64,
    /// Slow-path allocations while something waits (see [`housekeep`]).
    ticks: u32,
    /// Every heap ever made, for `stats` (never unlinked).
    pub(crate) next_all: *mut Heap,
    /// The pool of heaps waiting for a thread.
    pub(crate) next_free: *mut Heap,
    empty: Page,
}

impl Heap {
    /// Sets up a heap in zeroed memory at `h`.
    ///
    /// # Safety
    ///
    /// `h` points at `size_of::<Heap>()` writable bytes nobody else uses.
    pub(crate) unsafe fn init(h: *mut Heap) {
        // SAFETY: the caller gives us the memory.
        unsafe {
            ptr::write(
                h,
                Heap {
                    current: [null_mut(); CLASSES],
                    avail: [List::EMPTY; CLASSES],
                    full: [List::EMPTY; CLASSES],
                    in_use: [const { AtomicUsize::new(0) }; CLASSES],
                    segments: null_mut(),
                    open: [null_mut(); SLICES],
                    dirty_bound: 0,
                    purge_at: 0,
                    purge_now: AtomicBool::new(false),
                    foreign: [null_mut(); CLASSES],
                    foreign_len: [0; CLASSES],
                    allocates: [0; CLASSES.div_ceil(64)],
                    pooled: AtomicBool::new(false),
                    remote_freed: AtomicBool::new(false),
                    sweep_at: 0,
                    ticks: 0,
                    next_all: null_mut(),
                    next_free: null_mut(),
                    empty: Page::EMPTY,
                },
            );
        }
        // SAFETY: `h` was just written.
        let heap = unsafe { &mut *h };
        let empty = &raw mut heap.empty;
        heap.current = [empty; CLASSES];
    }
}

/// The segment whose header covers `p`, a block or large-block pointer
/// (never a header itself, so `p - 1` is in the same unit).
#[inline]
pub(crate) fn unit_of(p: *const u8) -> usize {
    (p as usize - 1) & !(SEGMENT_SIZE - 1)
}

/// The page descriptor of block `p` in segment `seg`.
///
/// # Safety
///
/// `seg` is a live segment and `p` lies in one of its pages.
#[inline]
unsafe fn page_of(seg: *mut Segment, p: *mut u8) -> *mut Page {
    let slice = (p as usize - seg as usize) >> SLICE_SHIFT;
    // SAFETY: `slice < SLICES` since `p` is in the segment; the descriptor
    // array is part of the live header.
    unsafe {
        let start = *(&raw const (*seg).slice_page).cast::<u8>().add(slice);
        (&raw mut (*seg).pages).cast::<Page>().add(start as usize)
    }
}

/// Allocates a block of `class` from `heap`.
///
/// # Safety
///
/// The calling thread holds `heap`.
#[inline]
pub(crate) unsafe fn alloc(heap: *mut Heap, class: usize) -> *mut u8 {
    // SAFETY: the thread holds the heap, so its pages' lists are ours.
    unsafe {
        let page = *(&raw const (*heap).current).cast::<*mut Page>().add(class);
        let b = (*page).free;
        if !b.is_null() {
            (*page).free = (*b).next;
            if class != 0 {
                set_key(b.cast(), false);
            }
            (*page).used += 1;
            count(heap, class, 1);
            return b.cast();
        }
        alloc_slow(heap, class)
    }
}

/// Adds `n` (two's complement) to the heap's count of `class` blocks.
///
/// # Safety
///
/// The calling thread holds `heap` (the only writer of the counter).
#[inline]
unsafe fn count(heap: *mut Heap, class: usize, n: usize) {
    // SAFETY: the counters are part of the live heap.
    let c = unsafe { &*(&raw const (*heap).in_use).cast::<AtomicUsize>().add(class) };
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Frees block `p` of segment `seg`, from a thread holding `heap` (null
/// when the thread holds none).
///
/// # Safety
///
/// `p` is a live block of `seg`, and the thread holds `heap` if non-null.
#[inline]
pub(crate) unsafe fn free(heap: *mut Heap, seg: *mut Segment, p: *mut u8) {
    // SAFETY: `p` is a live block of the live segment `seg`.
    unsafe {
        let page = page_of(seg, p);
        let b = p.cast::<Block>();
        if (*page).class != 0 {
            set_key(p, true);
        }
        if (*seg).heap == heap {
            (*b).next = (*page).local_free;
            (*page).local_free = b;
            (*page).used -= 1;
            count(heap, (*page).class as usize, 1usize.wrapping_neg());
            if (*page).used == 0 || (*page).flags & FULL != 0 {
                free_slow(heap, page);
            }
        } else if !borrow(heap, seg, page, b) {
            push_remote(seg, page, b);
        }
    }
}

/// Blocks of up to this size that a thread frees into another heap's page
/// it keeps to hand out again, at most [`FOREIGN_CAP`] of each class.
const FOREIGN_MAX: u32 = 1024;
const FOREIGN_CAP: u16 = 16;

/// Keeps block `b` of `page` of segment `seg`, another heap's, which the
/// thread holding `heap` frees, to hand out again from `heap` (as glibc's
/// tcache keeps any chunk a thread frees); false when `heap` keeps enough
/// of its class already, has not allocated the class since it took the
/// heap, or holds none, or when the owner waits in the pool (whose pages
/// `trim` must be able to give back, and which the next thread takes
/// whole). The block stays counted in its page's `used`,
/// so the page (and its segment) stays while the block is kept or handed
/// out again; when the block is freed at last, by any thread, it goes
/// back to its page as any other block does. Without this, a block freed
/// on a thread other than its maker's waits on its page until the maker
/// needs that page again or sweeps (see [`sweep`]): a thread that
/// allocates while it frees others' blocks (a server's workers, a table
/// its threads replace blocks of) takes fresh memory while as much waits
/// in pages it cannot use.
///
/// The kept block leaves this heap's count of its class, as a block of
/// the heap's own would; the owner's count keeps it until its page takes
/// it back. The sum over heaps, which `stats` reports, stays exact.
///
/// # Safety
///
/// The thread holds `heap` (when non-null); `b` is a block of `page`, a
/// live page of `seg`, another heap's, that the program has just freed.
#[inline]
unsafe fn borrow(heap: *mut Heap, seg: *mut Segment, page: *mut Page, b: *mut Block) -> bool {
    if heap.is_null() {
        return false;
    }
    // SAFETY: the thread holds `heap`; the page is live (`b` counts in it)
    // and so is its segment; heaps are never unmapped.
    unsafe {
        let class = (*page).class as usize;
        let len = &raw mut (*heap).foreign_len[class];
        // Only for classes the thread allocates itself: a thread that only
        // frees (a consumer) would keep blocks nobody asks it for, and the
        // pages they hold.
        if (*page).block_size > FOREIGN_MAX
            || (*heap).allocates[class / 64] & (1 << (class % 64)) == 0
            || (*(*seg).heap).pooled.load(Ordering::Relaxed)
        {
            return false;
        }
        if *len >= FOREIGN_CAP {
            // Kept blocks of the class pile up faster than the thread
            // hands them out: it frees the class more than it allocates
            // it. They go back, and the class is kept again once the
            // thread next allocates it through the slow path.
            return_class(heap, class);
            (*heap).allocates[class / 64] &= !(1 << (class % 64));
            return false;
        }
        let list = &raw mut (*heap).foreign[class];
        (*b).next = *list;
        *list = b;
        *len += 1;
        count(heap, class, 1usize.wrapping_neg());
        true
    }
}

/// Pushes block `b` onto `page`'s thread-free stack, for its owner to
/// collect, and tells the owner heap that a free waits. The block stays
/// counted in `used` until the owner collects it, so the page and its
/// segment outlive the push; the owner is read before it (once the block
/// is on the stack, the owner may collect it and retire the page), and
/// heaps are never unmapped, so telling it after is sound.
///
/// # Safety
///
/// `b` is a block of the live `page` of `seg` that nobody else holds.
#[inline]
unsafe fn push_remote(seg: *mut Segment, page: *mut Page, b: *mut Block) {
    // SAFETY: the page and segment are live while `b` counts in the
    // page's `used`; `b` is ours; the owner heap is never unmapped.
    unsafe {
        let owner = (*seg).heap;
        let tf = &(*page).thread_free;
        let mut top = tf.load(Ordering::Relaxed);
        loop {
            (*b).next = top;
            // SeqCst (no dearer than Release on x86-64, where a locked
            // compare-exchange is a full barrier), with the load of the
            // flag after it: a sweep that clears the flag and then finds
            // this stack empty is seen to have cleared it, and the flag
            // goes up again (see `sweep`).
            match tf.compare_exchange_weak(top, b, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(t) => top = t,
            }
        }
        let flag = &(*owner).remote_freed;
        if !flag.load(Ordering::SeqCst) {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// Hands out a block [`borrow`] kept, if `heap` keeps one of `class`.
///
/// # Safety
///
/// The thread holds `heap`.
#[inline]
unsafe fn take_borrowed(heap: *mut Heap, class: usize) -> *mut u8 {
    // SAFETY: the thread holds `heap`; its kept blocks are its own.
    unsafe {
        let list = &raw mut (*heap).foreign[class];
        let b = *list;
        if b.is_null() {
            return null_mut();
        }
        *list = (*b).next;
        (*heap).foreign_len[class] -= 1;
        if class != 0 {
            set_key(b.cast(), false);
        }
        count(heap, class, 1);
        b.cast()
    }
}

/// Marks `heap` as waiting in the pool (`pooled`) or taken by a thread,
/// which starts with no class marked as one it allocates.
///
/// # Safety
///
/// The caller holds the pool lock, and `heap` is going into the pool or
/// leaving it.
pub(crate) unsafe fn set_pooled(heap: *mut Heap, pooled: bool) {
    // SAFETY: the pool lock's holder holds a heap entering or leaving it.
    unsafe {
        (*heap).pooled.store(pooled, Ordering::Relaxed);
        (*heap).allocates = [0; CLASSES.div_ceil(64)];
    }
}

/// Gives every block [`borrow`] kept back to its page.
///
/// # Safety
///
/// The thread holds `heap`.
unsafe fn return_borrowed(heap: *mut Heap) {
    for class in 0..CLASSES {
        // SAFETY: the caller's promise.
        unsafe { return_class(heap, class) };
    }
}

/// Gives the blocks of `class` that [`borrow`] kept back to their pages.
/// Those of a heap that went to the pool since mark the pool for a purge,
/// which collects them.
///
/// # Safety
///
/// The thread holds `heap`.
#[cold]
#[inline(never)]
unsafe fn return_class(heap: *mut Heap, class: usize) {
    // SAFETY: the thread holds `heap`; each kept block is a free block of
    // a live page of another heap (it counts in that page's `used`), and
    // heaps are never unmapped.
    unsafe {
        let mut b = (*heap).foreign[class];
        let mut to_pool = false;
        while !b.is_null() {
            let next = (*b).next;
            let seg = unit_of(b.cast()) as *mut Segment;
            to_pool |= (*(*seg).heap).pooled.load(Ordering::Relaxed);
            push_remote(seg, page_of(seg, b.cast()), b);
            count(heap, class, 1);
            b = next;
        }
        (*heap).foreign[class] = null_mut();
        (*heap).foreign_len[class] = 0;
        if to_pool {
            thread::mark_pool_dirty();
        }
    }
}

/// The segment of block `p` when it is a small block.
///
/// # Safety
///
/// `p` is a live block of this allocator.
#[inline]
pub(crate) unsafe fn segment_of(p: *mut u8) -> Option<*mut Segment> {
    let seg = unit_of(p) as *mut Segment;
    // SAFETY: every block's unit starts with a segment or large header,
    // whose first word is its kind.
    (unsafe { (*seg).kind } == KIND_SEGMENT).then_some(seg)
}

/// The usable size of block `p` of segment `seg`.
///
/// # Safety
///
/// `p` is a live block of `seg`.
pub(crate) unsafe fn block_size(seg: *mut Segment, p: *mut u8) -> usize {
    // SAFETY: the descriptor of a live block's page is live.
    unsafe { (*page_of(seg, p)).block_size as usize }
}

/// Grows block `p` of `seg`, the one block of its page, to the class of
/// `size` bytes where it lies, when the slices after its page are free:
/// a buffer grown by `realloc` then keeps its place, neither copied nor
/// leaving its old page behind, and touches only the bytes it gains.
/// Returns whether it grew; blocks of pages holding several, of another
/// thread's heap, or with no free slices after them stay as they are.
///
/// # Safety
///
/// `p` is a live block of `seg`, the thread holds `heap` (when non-null),
/// and `size` is at most [`MAX_CLASS_SIZE`](crate::class::MAX_CLASS_SIZE).
pub(crate) unsafe fn grow_in_place(
    heap: *mut Heap,
    seg: *mut Segment,
    p: *mut u8,
    size: usize,
) -> bool {
    // SAFETY: the thread holds `heap`, which owns `seg` (checked first),
    // so the segment's header and the page's descriptor are ours; the page
    // holds one block, the caller's, so no other thread pushes to it.
    unsafe {
        if heap.is_null() || (*seg).heap != heap {
            return false;
        }
        let page = page_of(seg, p);
        let old_class = (*page).class as usize;
        if (*page).capacity != 1 || (*page).start != p || size_of_class(old_class) <= SLICE_SIZE {
            return false;
        }
        let class = class_of(size);
        if class <= old_class {
            return false;
        }
        let (n, m) = ((*page).slices as usize, page_slices(class));
        let first = (p as usize - seg as usize) >> SLICE_SHIFT;
        if first + m > SLICES {
            return false;
        }
        // The slices it gains (none, between classes of one slice count:
        // then `first + n` may be 64). `m - n` is below 8 (512 KiB in
        // 64 KiB slices), and `first + n < first + m <= 64` when it gains.
        let add = if m > n {
            ((1u64 << (m - n)) - 1) << (first + n)
        } else {
            0
        };
        if (*seg).taken & add != 0 {
            return false;
        }
        let fresh = (add & !(*seg).dirty).count_ones() as usize;
        (*seg).taken |= add;
        (*seg).dirty &= !add;
        reopen(heap, seg);
        for s in first + n..first + m {
            (*seg).slice_page[s] = first as u8;
        }
        unlist(heap, page);
        let block = size_of_class(class);
        (*page).class = class as u16;
        (*page).block_size = block as u32;
        (*page).div_magic = div_magic(block);
        (*page).slices = m as u8;
        (*page).flags |= FULL;
        (*heap).full[class].push_back(page);
        count(heap, old_class, 1usize.wrapping_neg());
        count(heap, class, 1);
        // As a new page taking fresh slices would: see `place`.
        take_fresh(heap, seg, add, fresh);
        true
    }
}

/// Why an address of a segment is no block to free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrong {
    /// No live page holds it, or it lies past what the page holds.
    NoBlock,
    /// It lies inside the block that starts at this address.
    Inside(*mut u8),
    /// The block is free already.
    Freed,
}

/// Checks that `p` is the start of a block of a live page of `seg` that
/// is not free already; returns the block size of its page (`Err` with it
/// too when the page is live).
///
/// Reads the page's descriptor, which its owner changes only while the
/// page is created, retired or grown (its one block, by `realloc`, which
/// no other thread may be freeing meanwhile): the answer is exact for a block that is
/// live or freed while its page stays, and a best guess for an address
/// the program made up while the page changes.
///
/// # Safety
///
/// `seg` is a segment of this heap, mapped for the duration of the call,
/// and `p` lies in it, past its first byte.
pub(crate) unsafe fn validate(seg: *mut Segment, p: *mut u8) -> Result<usize, (Wrong, usize)> {
    // SAFETY: the header of a mapped segment; `page_of` reads the slice
    // map, whose entries always name a descriptor of this segment.
    let (start, size, magic, capacity) = unsafe {
        let page = page_of(seg, p);
        (
            (*page).start,
            (*page).block_size as usize,
            (*page).div_magic,
            (*page).capacity as usize,
        )
    };
    if size == 0 {
        return Err((Wrong::NoBlock, 0));
    }
    let off = (p as usize).wrapping_sub(start as usize);
    if off >= capacity * size {
        return Err((Wrong::NoBlock, size));
    }
    if (off as u64).wrapping_mul(magic) >= magic {
        // SAFETY: `off / size < capacity`: a block of the page.
        let block = unsafe { start.add(off / size * size) };
        return Err((Wrong::Inside(block), size));
    }
    // SAFETY: `p` is a block of the page, of `size >= 16` bytes when read.
    if size >= 16 && unsafe { p.cast::<usize>().add(1).read() } == free_key(p) {
        return Err((Wrong::Freed, size));
    }
    Ok(size)
}

/// The owner's free of the last block of a page, or of a block of a full
/// page.
#[cold]
unsafe fn free_slow(heap: *mut Heap, page: *mut Page) {
    // SAFETY: the thread holds `heap`, which owns `page`.
    unsafe {
        let class = (*page).class as usize;
        let h = &mut *heap;
        if (*page).flags & FULL != 0 {
            h.full[class].remove(page);
            (*page).flags &= !FULL;
            h.avail[class].push_back(page);
        }
        if (*page).used == 0 && h.current[class] != page {
            retire(heap, page);
        }
    }
}

/// Moves the page's other-thread frees to its `free` list; returns how many.
///
/// # Safety
///
/// The thread holds the page's heap.
unsafe fn collect(heap: *mut Heap, page: *mut Page) -> u32 {
    // SAFETY: the page belongs to the held heap; the taken stack is ours.
    unsafe {
        if (*page).thread_free.load(Ordering::Relaxed).is_null() {
            return 0;
        }
        let mut b = (*page).thread_free.swap(null_mut(), Ordering::Acquire);
        let mut n = 0u32;
        while !b.is_null() {
            let next = (*b).next;
            (*b).next = (*page).free;
            (*page).free = b;
            b = next;
            n += 1;
        }
        (*page).used -= n;
        count(heap, (*page).class as usize, (n as usize).wrapping_neg());
        n
    }
}

/// Gives `page` something on `free`, if it can: its local frees, other
/// threads' frees, or fresh blocks from its untouched tail.
unsafe fn refill(heap: *mut Heap, page: *mut Page) -> bool {
    // SAFETY: the page belongs to the held heap.
    unsafe {
        if !(*page).free.is_null() {
            return true;
        }
        if !(*page).local_free.is_null() {
            (*page).free = (*page).local_free;
            (*page).local_free = null_mut();
            return true;
        }
        if collect(heap, page) > 0 {
            return true;
        }
        let left = (*page).capacity - (*page).bump;
        if left == 0 {
            return false;
        }
        // About one OS page worth of blocks at a time.
        let size = (*page).block_size as usize;
        let n = left.min((OS_PAGE / size).max(1) as u32);
        let first = (*page).start.add((*page).bump as usize * size);
        let mut b = first;
        for _ in 1..n {
            let next = b.add(size);
            (*b.cast::<Block>()).next = next.cast();
            b = next;
        }
        (*b.cast::<Block>()).next = null_mut();
        (*page).free = first.cast();
        (*page).bump += n;
        true
    }
}

/// Pops a block from a page that `refill` just filled.
unsafe fn pop(heap: *mut Heap, page: *mut Page, class: usize) -> *mut u8 {
    // SAFETY: `refill` returned true, so `free` is a block.
    unsafe {
        let b = (*page).free;
        (*page).free = (*b).next;
        if class != 0 {
            set_key(b.cast(), false);
        }
        (*page).used += 1;
        count(heap, class, 1);
        b.cast()
    }
}

#[cold]
unsafe fn alloc_slow(heap: *mut Heap, class: usize) -> *mut u8 {
    // SAFETY: the thread holds the heap and all its pages.
    unsafe {
        if (*heap).purge_now.load(Ordering::Relaxed) {
            // `trim` in another thread: a thread that allocates from pages
            // it has may see no page event for long.
            page_event(heap);
        }
        if (*heap).purge_at != 0 || (*heap).remote_freed.load(Ordering::Relaxed) {
            housekeep(heap);
        }
        let h = &mut *heap;
        h.allocates[class / 64] |= 1 << (class % 64);
        let empty = &raw mut h.empty;
        let page = h.current[class];
        // Memory in use already before fresh blocks: the page's own frees
        // first, then blocks of other heaps this thread freed.
        if !h.foreign[class].is_null()
            && (page == empty
                || ((*page).local_free.is_null()
                    && (*page).thread_free.load(Ordering::Relaxed).is_null()))
        {
            return take_borrowed(heap, class);
        }
        if page != empty {
            if refill(heap, page) {
                return pop(heap, page, class);
            }
            h.avail[class].remove(page);
            (*page).flags |= FULL;
            h.full[class].push_back(page);
            h.current[class] = empty;
        }
        // Other pages with room.
        while !h.avail[class].first.is_null() {
            let p = h.avail[class].first;
            if refill(heap, p) {
                h.current[class] = p;
                return pop(heap, p, class);
            }
            h.avail[class].remove(p);
            (*p).flags |= FULL;
            h.full[class].push_back(p);
        }
        // Full pages that other threads have freed into: none when no
        // free came since the last sweep, which took back every page's (a
        // heap of thousands of full pages walked them all at every new
        // page it made).
        let mut p = if h.remote_freed.load(Ordering::Relaxed) {
            h.full[class].first
        } else {
            null_mut()
        };
        while !p.is_null() {
            let next = (*p).next;
            if collect(heap, p) > 0 {
                h.full[class].remove(p);
                (*p).flags &= !FULL;
                h.avail[class].push_back(p);
                h.current[class] = p;
                return pop(heap, p, class);
            }
            p = next;
        }
        let p = new_page(heap, class);
        if p.is_null() {
            return null_mut();
        }
        h.avail[class].push_back(p);
        h.current[class] = p;
        if refill(heap, p) {
            pop(heap, p, class)
        } else {
            null_mut()
        }
    }
}

/// How many slices a page of `class` spans: one up to 8 KiB blocks; then
/// enough for eight blocks up to 64 KiB blocks; past that, one block to a
/// page. A page's freed blocks stay resident until the whole page is empty,
/// so pages of big blocks are kept to one block: freed, it goes back to
/// the segment, whose slices then serve any class (blocks of a rare class
/// do not pin a page of their own), and the slack after the block is never
/// touched.
fn page_slices(class: usize) -> usize {
    let size = size_of_class(class);
    if size <= 8 << 10 {
        1
    } else if size <= SLICE_SIZE {
        (size * 8).div_ceil(SLICE_SIZE)
    } else {
        size.div_ceil(SLICE_SIZE)
    }
}

/// The lowest `n` bits set (`n` up to 64): the mask of `n` slices.
fn ones(n: usize) -> u64 {
    if n == 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// The runs of set bits of `bits`, lowest first, as (first bit, length):
/// free or dirty slices of a segment, one run at a time.
fn runs(mut bits: u64) -> impl Iterator<Item = (usize, usize)> {
    core::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let i = bits.trailing_zeros();
        // The shift brings zeros in, so a run up to bit 63 ends there.
        let len = (!(bits >> i)).trailing_zeros();
        bits &= if i + len == 64 {
            0
        } else {
            u64::MAX << (i + len)
        };
        Some((i as usize, len as usize))
    })
}

/// Where a page of `n` slices goes: among the free runs of the heap's
/// segments, the place that needs the fewest slices that are not dirty
/// (dirty slices are resident already, so reusing them keeps the heap's
/// footprint where it is), in the shortest free run that holds it (best
/// fit, which leaves long runs whole for big pages); `None` when no
/// segment has room. When the place chosen still takes fresh slices while
/// dirty ones it cannot use lie elsewhere (runs too short, split by
/// pages), as many of those are purged, so that the heap trades resident
/// memory it cannot use for what it touches instead of growing.
///
/// # Safety
///
/// The thread holds `heap`.
unsafe fn place(heap: *mut Heap, n: usize) -> Option<(*mut Segment, usize)> {
    let want = ones(n);
    // (segment, slice, fresh slices, free run length)
    let mut best: Option<(*mut Segment, usize, u32, usize)> = None;
    // SAFETY: the thread holds the heap and its segments.
    unsafe {
        for bucket in n..SLICES {
            let mut seg = (*heap).open[bucket];
            while !seg.is_null() {
                let dirty = (*seg).dirty;
                for (i, len) in runs(!(*seg).taken) {
                    if len >= n {
                        // Within the run, the first place with the fewest
                        // fresh slices (any place, when none is dirty). The
                        // count slides with the place: the slice it leaves
                        // and the one it takes.
                        let last = if (dirty >> i) & ((1u64 << len.min(63)) - 1) == 0 {
                            i
                        } else {
                            i + len - n
                        };
                        let is_fresh = |s: usize| u32::from((dirty >> s) & 1 == 0);
                        let mut fresh = (!(dirty >> i) & want).count_ones();
                        let mut j = i;
                        loop {
                            if best.is_none_or(|(_, _, f, l)| (fresh, len) < (f, l)) {
                                best = Some((seg, j, fresh, len));
                                if fresh == 0 && len == n {
                                    return Some((seg, j));
                                }
                            }
                            // No later place in the run does better.
                            if fresh == 0 || j == last {
                                break;
                            }
                            fresh = fresh - is_fresh(j) + is_fresh(j + n);
                            j += 1;
                        }
                    }
                }
                seg = (*seg).open_next;
            }
        }
        let (seg, i, fresh, _) = best?;
        take_fresh(heap, seg, want << i, fresh as usize);
        Some((seg, i))
    }
}

/// Notes that the heap takes `fresh` slices it never touched, the run
/// `keep` of `seg` among them, and purges as many dirty slices elsewhere
/// in trade (see [`place`]); nothing when `fresh` is 0.
///
/// # Safety
///
/// The thread holds `heap`, which owns `seg`.
unsafe fn take_fresh(heap: *mut Heap, seg: *mut Segment, keep: u64, fresh: usize) {
    if fresh > 0 {
        options::took_fresh();
        // SAFETY: the caller's promise.
        thread::trade_pool(unsafe { trade(heap, seg, keep, fresh) });
    }
}

/// Takes `page` off its class's lists, and out of the class's current
/// page when it is that.
///
/// # Safety
///
/// The thread holds `heap`, which owns `page`, a page on one of the lists
/// of its class.
unsafe fn unlist(heap: *mut Heap, page: *mut Page) {
    // SAFETY: the caller's promise: the heap's lists are ours.
    unsafe {
        let class = (*page).class as usize;
        let h = &mut *heap;
        if (*page).flags & FULL != 0 {
            h.full[class].remove(page);
        } else {
            h.avail[class].remove(page);
        }
        if h.current[class] == page {
            h.current[class] = &raw mut h.empty;
        }
    }
}

/// Purges up to `slices` dirty slices of the heap's segments outside
/// `keep` (a run of `seg` about to be taken), highest first in each
/// segment (pages are placed lowest first, so those wait longest);
/// returns how many of `slices` it found no dirty slice for.
///
/// # Safety
///
/// The thread holds `heap`.
pub(crate) unsafe fn trade(
    heap: *mut Heap,
    keep_seg: *mut Segment,
    keep: u64,
    mut slices: usize,
) -> usize {
    // SAFETY: the thread holds the heap and its segments; dirty slices
    // hold no page.
    unsafe {
        if (*heap).dirty_bound == 0 {
            return slices;
        }
        let mut left = 0;
        // All segments, newest first: walked by their longest free run,
        // the nearly full ones first, trades purged the slices pages were
        // about to take again (18 % more faults in a churn of 4-64 KiB
        // blocks).
        let mut seg = (*heap).segments;
        while !seg.is_null() && slices > 0 {
            let mut d = (*seg).dirty & !(if seg == keep_seg { keep } else { 0 });
            while d != 0 && slices > 0 {
                // The run of dirty slices that ends highest, cut to what
                // is asked: one call for the run. Slice 0 is never dirty,
                // so a run is at most 63 slices.
                let top = 63 - d.leading_zeros() as usize;
                debug_assert!(d & 1 == 0, "the header slice is never free");
                let mut low = top;
                while low > 0 && top - low + 1 < slices && d & (1u64 << (low - 1)) != 0 {
                    low -= 1;
                }
                let n = top - low + 1;
                let mask = ((1u64 << n) - 1) << low;
                os::purge(seg.cast::<u8>().add(low * SLICE_SIZE), n * SLICE_SIZE);
                (*seg).dirty &= !mask;
                d &= !mask;
                slices -= n;
                (*heap).dirty_bound = (*heap).dirty_bound.saturating_sub(n);
            }
            left += (*seg).dirty.count_ones() as usize;
            seg = (*seg).next;
        }
        if seg.is_null() {
            // Every segment seen: what is left is the count.
            (*heap).dirty_bound = left;
        }
    }
    slices
}

/// How many dirty slices the heap's segments hold; sets the heap's
/// `dirty_bound` to that count, having walked them all.
///
/// # Safety
///
/// The thread holds `heap`.
pub(crate) unsafe fn dirty_slices(heap: *mut Heap) -> usize {
    let mut n = 0;
    // SAFETY: the holder's segments.
    unsafe {
        let mut seg = (*heap).segments;
        while !seg.is_null() {
            n += (*seg).dirty.count_ones() as usize;
            seg = (*seg).next;
        }
        (*heap).dirty_bound = n;
    }
    n
}

/// Takes slices for a page of `class` in one of the heap's segments, or a
/// new one; runs due purges first.
unsafe fn new_page(heap: *mut Heap, class: usize) -> *mut Page {
    // SAFETY: the thread holds the heap and its segments.
    unsafe {
        page_event(heap);
        let n = page_slices(class);
        let (seg, i) = if let Some(at) = place(heap, n) {
            at
        } else {
            let seg = new_segment(heap);
            if seg.is_null() {
                return null_mut();
            }
            // A fresh segment's slices are fresh: trade as `place` does.
            take_fresh(heap, seg, 0, n);
            (seg, 1)
        };
        let mask = ones(n) << i;
        (*seg).taken |= mask;
        (*seg).dirty &= !mask;
        reopen(heap, seg);
        for s in i..i + n {
            (*seg).slice_page[s] = i as u8;
        }
        let size = size_of_class(class);
        let page = (&raw mut (*seg).pages).cast::<Page>().add(i);
        ptr::write(
            page,
            Page {
                start: seg.cast::<u8>().add(i * SLICE_SIZE),
                capacity: ((n * SLICE_SIZE) / size) as u32,
                block_size: size as u32,
                div_magic: div_magic(size),
                class: class as u16,
                slices: n as u8,
                ..Page::EMPTY
            },
        );
        page
    }
}

unsafe fn new_segment(heap: *mut Heap) -> *mut Segment {
    let Some(mem) = os::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE, 0, os::Commit::Lazy) else {
        return null_mut();
    };
    // SAFETY: the fresh segment's mapping, ours.
    unsafe { os::ask_huge_pages(mem, SEGMENT_SIZE) };
    let seg = mem.cast::<Segment>();
    // SAFETY: a fresh zeroed mapping of a whole segment, ours alone; zero
    // is a valid bit pattern for every header field but `kind`, `heap`,
    // `next` and `taken`, written here.
    unsafe {
        (*seg).kind = KIND_SEGMENT;
        (*seg).heap = heap;
        (*seg).taken = 1;
        (*seg).next = (*heap).segments;
        (*heap).segments = seg;
        reopen(heap, seg);
    }
    os::mark_unit(mem, true);
    stats::mapped(SEGMENT_SIZE, &stats::SEGMENT_BYTES);
    seg
}

/// Files `seg` in its heap's list for the longest run of free slices its
/// `taken` leaves (in none when no slice is free).
///
/// # Safety
///
/// The thread holds `heap`, which owns `seg`.
unsafe fn reopen(heap: *mut Heap, seg: *mut Segment) {
    // SAFETY: the holder's heap and segments.
    unsafe {
        // Slice 0 is never free, so a run is at most 63 slices.
        let run = runs(!(*seg).taken).map(|(_, len)| len).max().unwrap_or(0) as u8;
        if run == (*seg).run {
            return;
        }
        unfile(heap, seg);
        if run != 0 {
            let h = &mut *heap;
            let first = h.open[run as usize];
            (*seg).open_next = first;
            if !first.is_null() {
                (*first).open_prev = seg;
            }
            h.open[run as usize] = seg;
        }
        (*seg).run = run;
    }
}

/// Takes `seg` off its heap's list of segments by longest free run (it is
/// on none afterwards, its `run` 0).
///
/// # Safety
///
/// The thread holds `heap`, which owns `seg`.
unsafe fn unfile(heap: *mut Heap, seg: *mut Segment) {
    // SAFETY: the holder's heap and segments.
    unsafe {
        let old = (*seg).run;
        if old != 0 {
            let (prev, next) = ((*seg).open_prev, (*seg).open_next);
            if prev.is_null() {
                (*heap).open[old as usize] = next;
            } else {
                (*prev).open_next = next;
            }
            if !next.is_null() {
                (*next).open_prev = prev;
            }
        }
        (*seg).open_prev = null_mut();
        (*seg).open_next = null_mut();
        (*seg).run = 0;
    }
}

/// Gives a page with no block in use back to its segment.
unsafe fn retire(heap: *mut Heap, page: *mut Page) {
    // SAFETY: the thread holds the heap owning the page; nothing in the
    // page is in use.
    unsafe {
        unlist(heap, page);
        let seg = unit_of((*page).start) as *mut Segment;
        let first = ((*page).start as usize - seg as usize) >> SLICE_SHIFT;
        let n = (*page).slices as usize;
        let mask = ones(n) << first;
        ptr::write(page, Page::EMPTY);
        (*seg).taken &= !mask;
        (*seg).dirty |= mask;
        reopen(heap, seg);
        (*heap).dirty_bound += n;
        let now = os::now_ns();
        (&mut (*seg).freed_at)[first..first + n].fill(now);
        // Due a delay from now: the heap's deadline comes no later (it may
        // have been set under a longer delay, since halved).
        let due = now.saturating_add(options::purge_delay_ns()).max(1);
        let h = &mut *heap;
        if h.purge_at == 0 || h.purge_at > due {
            h.purge_at = due;
        }
        page_event(heap);
    }
}

/// Unmaps an empty segment.
unsafe fn release_segment(heap: *mut Heap, seg: *mut Segment) {
    // SAFETY: the heap owns `seg`, which holds no page.
    unsafe {
        let mut link = &raw mut (*heap).segments;
        while *link != seg {
            link = &raw mut (**link).next;
        }
        *link = (*seg).next;
        unfile(heap, seg);
        os::mark_unit(seg.cast(), false);
        os::unmap(seg.cast(), SEGMENT_SIZE);
    }
    stats::unmapped_from(SEGMENT_SIZE, &stats::SEGMENT_BYTES);
}

/// Page-level housekeeping: purges dirty slices and expired large
/// mappings when due.
unsafe fn page_event(heap: *mut Heap) {
    // SAFETY: the thread holds the heap.
    unsafe {
        let h = &mut *heap;
        let asked = h.purge_now.swap(false, Ordering::Relaxed);
        if asked {
            // `trim` in another thread: the pages this heap keeps blocks
            // of may go back too.
            return_borrowed(heap);
        }
        if h.purge_at == 0 && !asked && !large::has_cached() && !thread::pool_dirty() {
            return;
        }
        let now = os::now_ns();
        let mut bytes = 0;
        if asked {
            bytes = purge(heap);
        } else if h.purge_at != 0 && now >= h.purge_at {
            bytes = purge_cold(heap, now);
        }
        bytes += large::expire(now, false);
        if bytes > 0 && !asked {
            options::gave_back(now);
        }
        thread::purge_pool_when_due(now);
    }
}

/// Purges every dirty free slice of the heap's segments and unmaps the
/// empty segments but one; returns bytes given back.
///
/// # Safety
///
/// The thread holds `heap`.
pub(crate) unsafe fn purge(heap: *mut Heap) -> usize {
    // SAFETY: the caller's promise.
    unsafe { purge_segments(heap, None) }
}

/// At the heap's purge deadline: purges the dirty slices freed a delay
/// ago or more, and unmaps the segments left with no page and no slice
/// freed since, but the heap's last; the slices freed since (by a program
/// freeing and reusing pages right now) wait for a deadline a delay past
/// their own free. Returns bytes given back.
///
/// # Safety
///
/// The thread holds `heap`.
unsafe fn purge_cold(heap: *mut Heap, now: u64) -> usize {
    // SAFETY: the caller's promise.
    unsafe { purge_segments(heap, Some((now, options::purge_delay_ns()))) }
}

/// Purges the dirty slices of the heap's segments (with `cold`, `(now,
/// delay)`, those freed a delay ago or more; the heap's deadline then
/// moves to when the next of the others will have been, and a quarter of
/// a delay away at least, so that a program freeing pages all the time
/// has its heap looked over and purged in batches, a few times a delay,
/// not at every page it frees), and unmaps the segments that hold no page
/// and no dirty slice spared, but the heap's last; returns bytes given
/// back.
///
/// # Safety
///
/// The thread holds `heap`.
unsafe fn purge_segments(heap: *mut Heap, cold: Option<(u64, u64)>) -> usize {
    let mut bytes = 0;
    let mut next_at = 0u64;
    let mut left = 0;
    // SAFETY: the thread holds the heap and its segments; dirty slices
    // hold no page.
    unsafe {
        let mut seg = (*heap).segments;
        while !seg.is_null() {
            let next = (*seg).next;
            let mut old = (*seg).dirty;
            if let Some((now, delay)) = cold {
                let mut d = old;
                while d != 0 {
                    let i = d.trailing_zeros() as usize;
                    d &= d - 1;
                    let due = (*seg).freed_at[i].saturating_add(delay);
                    if due > now {
                        old &= !(1 << i);
                        next_at = if next_at == 0 { due } else { next_at.min(due) };
                    }
                }
            }
            // A segment that stayed empty for the delay goes back whole,
            // unless it is the heap's last.
            if (*seg).taken == 1
                && old == (*seg).dirty
                && ((*heap).segments != seg || !next.is_null())
            {
                bytes += SEGMENT_SIZE;
                release_segment(heap, seg);
                seg = next;
                continue;
            }
            for (i, run) in runs(old) {
                os::purge(seg.cast::<u8>().add(i * SLICE_SIZE), run * SLICE_SIZE);
                bytes += run * SLICE_SIZE;
            }
            (*seg).dirty &= !old;
            left += (*seg).dirty.count_ones() as usize;
            seg = next;
        }
        (*heap).dirty_bound = left;
        if let Some((now, delay)) = cold
            && next_at != 0
        {
            next_at = next_at.max(now.saturating_add(delay / 4));
        }
        (*heap).purge_at = next_at;
    }
    bytes
}

/// Collects every page's other-thread frees and retires the pages left
/// empty (`keep_current` keeps each class's current page); with
/// `release`, unmaps every segment left empty, even the heap's last.
///
/// # Safety
///
/// The thread holds `heap`.
pub(crate) unsafe fn collect_all(heap: *mut Heap, keep_current: bool, release: bool) {
    // SAFETY: the thread holds the heap and all its pages.
    unsafe {
        return_borrowed(heap);
        collect_pages(heap, keep_current);
        // Empty segments go, even the last one.
        let mut seg = if release {
            (*heap).segments
        } else {
            null_mut()
        };
        while !seg.is_null() {
            let next = (*seg).next;
            if (*seg).taken == 1 {
                release_segment(heap, seg);
            }
            seg = next;
        }
    }
}

/// At one slow-path allocation in 32 while dirty slices wait for their
/// purge or other threads' frees wait on the heap's pages: sweeps when
/// frees wait and the last sweep is old enough (see [`sweep`], which runs
/// a page event after), else runs a page event when the purge is due.
/// Only page events (a page made or emptied) purged before, and nothing
/// swept: a thread that allocates from the pages it has, making and
/// emptying none, saw none, and what it freed, or what other threads
/// emptied, stayed resident for as long as it went on so.
///
/// # Safety
///
/// The thread holds `heap`.
#[cold]
#[inline(never)]
unsafe fn housekeep(heap: *mut Heap) {
    // SAFETY: the thread holds the heap and all its pages.
    unsafe {
        let h = &mut *heap;
        h.ticks = h.ticks.wrapping_add(1);
        if h.ticks % 32 != 0 {
            return;
        }
        let now = os::now_ns();
        if h.remote_freed.load(Ordering::Relaxed) && now >= h.sweep_at {
            sweep(heap, now);
        } else if h.purge_at != 0 && now >= h.purge_at {
            page_event(heap);
        }
    }
}

/// Takes back other threads' frees into every page of the heap, which
/// they said wait: a page emptied so is retired, and its slices purged
/// when due, as if its owner had freed its blocks. Without it, a page
/// waits for its owner to need its class again: a thread that builds a
/// table and hands it to threads that free it kept the table's pages
/// resident for as long as it allocated other sizes only. Sweeps come a
/// quarter of a purge delay apart at least, and a walk of the heap's
/// pages is followed by a hundred times its length without one (the
/// page event after it is not counted).
///
/// # Safety
///
/// The thread holds `heap`.
unsafe fn sweep(heap: *mut Heap, now: u64) {
    // SAFETY: the thread holds the heap and all its pages.
    unsafe {
        // Frees from now on tell the heap again. Without the fence, the
        // clearing could wait in this CPU's store buffer while the walk
        // reads a stack as empty and the thread pushing onto it reads the
        // flag as still up: that free would wait, flag down, until the
        // next (see `push_remote`).
        (*heap).remote_freed.store(false, Ordering::Relaxed);
        core::sync::atomic::fence(Ordering::SeqCst);
        collect_pages(heap, true);
        let done = os::now_ns();
        (*heap).sweep_at = done
            .saturating_add(options::purge_delay_ns() / 4)
            .max(done.saturating_add(done.saturating_sub(now).saturating_mul(100)));
        page_event(heap);
    }
}

/// Collects every page's other-thread frees and retires the pages left
/// empty (`keep_current` keeps each class's current page).
///
/// # Safety
///
/// The thread holds `heap`.
unsafe fn collect_pages(heap: *mut Heap, keep_current: bool) {
    // SAFETY: the thread holds the heap and all its pages.
    unsafe {
        for class in 0..CLASSES {
            if !keep_current {
                (*heap).current[class] = &raw mut (*heap).empty;
            }
            for full in [true, false] {
                let mut p = if full {
                    (*heap).full[class].first
                } else {
                    (*heap).avail[class].first
                };
                while !p.is_null() {
                    let next = (*p).next;
                    collect(heap, p);
                    if (*p).flags & FULL != 0 && (*p).used < (*p).capacity {
                        (*heap).full[class].remove(p);
                        (*p).flags &= !FULL;
                        (*heap).avail[class].push_back(p);
                    }
                    if (*p).used == 0 && (*heap).current[class] != p {
                        retire(heap, p);
                    }
                    p = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_are_found_lowest_first_up_to_the_top_bit() {
        let all: Vec<_> = runs(0).collect();
        assert!(all.is_empty());
        assert_eq!(runs(u64::MAX).collect::<Vec<_>>(), [(0, 64)]);
        assert_eq!(runs(!1).collect::<Vec<_>>(), [(1, 63)]);
        assert_eq!(
            runs(0b1011_0110 | 3 << 62).collect::<Vec<_>>(),
            [(1, 2), (4, 2), (7, 1), (62, 2)]
        );
        assert_eq!(runs(1 << 63).collect::<Vec<_>>(), [(63, 1)]);
    }
}
