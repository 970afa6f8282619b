//! Loom model of the channel's index protocols: every interleaving (within
//! a preemption bound) of senders and receivers claiming, committing,
//! releasing and recovering slots, and of the byte ring's sender and
//! receiver passing padding at the wrap.
//!
//! Built only with `--cfg loom`, which swaps the protocol's atomics for
//! loom's:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p memio-ipc --release --test channel_loom
//! ```
//!
//! The payload of each slot is a `loom::cell::UnsafeCell`, so loom also
//! reports a data race if a receiver could read a slot a sender is still
//! writing, or a sender overwrite one still being read: that is what the
//! release/acquire pairs of the protocol promise.
#![cfg(loom)]
#![allow(missing_docs, reason = "test binary")]
#![allow(unsafe_code, reason = "payload cells are loom's UnsafeCell")]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use memio_ipc::channel::model::{
    AtomicU64, Ordering, Slots, Step, bytes, claim_recv, claim_send, commit, free, initial,
    recover, spsc,
};

struct Ring {
    tail: AtomicU64,
    head: AtomicU64,
    states: Vec<AtomicU64>,
    payload: Vec<UnsafeCell<u64>>,
}

impl Slots for Ring {
    fn count(&self) -> u64 {
        self.states.len() as u64
    }
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self.states[(pos % self.count()) as usize]
    }
}

impl Ring {
    fn new(n: u64) -> Arc<Self> {
        Arc::new(Self {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            states: (0..n).map(|i| AtomicU64::new(initial(i))).collect(),
            payload: (0..n).map(|_| UnsafeCell::new(0)).collect(),
        })
    }

    fn cell(&self, pos: u64) -> &UnsafeCell<u64> {
        &self.payload[(pos % self.count()) as usize]
    }

    /// Sends `v`, yielding while the ring is full.
    fn send(&self, me: u8, v: u64) {
        loop {
            if let Step::Claimed(pos) = claim_send(&self.tail, self, me) {
                // SAFETY: the claim gives this thread the slot; loom
                // reports a race if the protocol fails to.
                self.cell(pos).with_mut(|p| unsafe { *p = v });
                commit(self, pos);
                return;
            }
            thread::yield_now();
        }
    }

    /// Receives a value, yielding while the ring is empty.
    fn recv(&self, me: u8) -> u64 {
        loop {
            if let Step::Claimed(pos) = claim_recv(&self.head, self, me) {
                // SAFETY: as in `send`, the claim gives the slot to us.
                let v = self.cell(pos).with(|p| unsafe { *p });
                free(self, pos);
                return v;
            }
            thread::yield_now();
        }
    }
}

fn explore(f: impl Fn() + Sync + Send + 'static) {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(f);
}

#[test]
fn spsc_delivers_in_order_through_a_wrapping_ring() {
    explore(|| {
        let ring = Ring::new(2);
        let tx = Arc::clone(&ring);
        let t = thread::spawn(move || {
            for v in 1..=3 {
                tx.send(0, v);
            }
        });
        let got: Vec<u64> = (0..3).map(|_| ring.recv(0)).collect();
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

#[test]
fn two_senders_racing_for_positions_deliver_each_value_once() {
    explore(|| {
        // Two slots: the senders race for positions (and help each other's
        // tail hint) but never wait for room, which keeps the model small.
        let ring = Ring::new(2);
        let senders: Vec<_> = (0..2u8)
            .map(|me| {
                let r = Arc::clone(&ring);
                thread::spawn(move || r.send(me, 10 + u64::from(me)))
            })
            .collect();
        let mut got = [ring.recv(0), ring.recv(0)];
        for s in senders {
            s.join().unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, [10, 11]);
    });
}

#[test]
fn two_receivers_take_each_value_once() {
    explore(|| {
        let ring = Ring::new(2);
        let r = Arc::clone(&ring);
        let other = thread::spawn(move || r.recv(1));
        ring.send(0, 10);
        ring.send(0, 11);
        let mine = ring.recv(0);
        let mut got = [mine, other.join().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [10, 11]);
    });
}

#[test]
fn a_dead_writers_slot_is_recovered_once_and_never_delivered() {
    explore(|| {
        let ring = Ring::new(2);
        // Sender 5 claims position 0 and dies before committing.
        assert_eq!(claim_send(&ring.tail, &*ring, 5), Step::Claimed(0));
        let r = Arc::clone(&ring);
        let live = thread::spawn(move || r.send(6, 42));
        let Step::Wait(Some(stuck)) = claim_recv(&ring.head, &*ring, 0) else {
            panic!("position 0 is held by the dead sender");
        };
        // Two receivers race to recover the dead slot: exactly one wins,
        // and the live message arrives exactly once.
        let r = Arc::clone(&ring);
        let helper = thread::spawn(move || recover(&*r, stuck));
        let won = recover(&*ring, stuck);
        let got = ring.recv(0);
        live.join().unwrap();
        assert!(won ^ helper.join().unwrap(), "recovered exactly once");
        assert_eq!(got, 42);
        assert_eq!(ring.head.load(Ordering::Relaxed), 2);
    });
}

impl Ring {
    /// The SPSC rule's sender: sends `values` in order, yielding while the
    /// ring is full.
    fn spsc_send(&self, values: &[u64]) {
        let mut next = spsc::resume(&self.tail, self);
        let mut seen = 0;
        for &v in values {
            loop {
                if let Step::Claimed(pos) = spsc::claim_send(next, &mut seen, &self.head, self) {
                    // SAFETY: the rule gives the sender this slot; loom
                    // reports a race if it fails to.
                    self.cell(pos).with_mut(|p| unsafe { *p = v });
                    spsc::commit(&self.tail, self, pos);
                    next = pos + 1;
                    break;
                }
                // A waiting sender never finds a sound ring inconsistent.
                assert!(spsc::consistent(&self.tail, &self.head, self));
                thread::yield_now();
            }
        }
    }

    /// The SPSC rule's receiver: one value, yielding while the ring is
    /// empty.
    fn spsc_recv(&self) -> u64 {
        loop {
            if let Step::Claimed(pos) = spsc::claim_recv(&self.head, self) {
                // SAFETY: as in `spsc_send`.
                let v = self.cell(pos).with(|p| unsafe { *p });
                spsc::release(&self.head, pos);
                return v;
            }
            // Nor does a waiting receiver.
            assert!(spsc::consistent(&self.tail, &self.head, self));
            thread::yield_now();
        }
    }
}

#[test]
fn spsc_rule_delivers_in_order_through_a_wrapping_ring() {
    explore(|| {
        let ring = Ring::new(2);
        let tx = Arc::clone(&ring);
        let t = thread::spawn(move || tx.spsc_send(&[1, 2, 3, 4]));
        let got: Vec<u64> = (0..4).map(|_| ring.spsc_recv()).collect();
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
    });
}

#[test]
fn spsc_rule_a_new_sender_resumes_after_the_last_commit() {
    explore(|| {
        // The first sender commits 1 and 2, then hands over (as a dead
        // sender's lock passes to the next); the second resumes from the
        // ring itself while the receiver drains it.
        let ring = Ring::new(2);
        let tx = Arc::clone(&ring);
        let t = thread::spawn(move || {
            tx.spsc_send(&[1, 2]);
            tx.spsc_send(&[3]);
        });
        let got: Vec<u64> = (0..3).map(|_| ring.spsc_recv()).collect();
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

/// The byte ring on plain memory: header words and payload words, one
/// `UnsafeCell` per 8 bytes, so loom reports a race if the receiver could
/// read a word the sender is still writing, or the sender overwrite one
/// still being read.
struct ByteModel {
    tail: AtomicU64,
    head: AtomicU64,
    headers: Vec<AtomicU64>,
    payload: Vec<UnsafeCell<u64>>,
}

impl bytes::ByteRing for ByteModel {
    fn capacity(&self) -> usize {
        self.headers.len() * 8
    }
    fn record_word(&self, at: usize) -> &AtomicU64 {
        &self.headers[at / 8]
    }
}

impl ByteModel {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            headers: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
            payload: (0..capacity / 8).map(|_| UnsafeCell::new(0)).collect(),
        })
    }

    /// The payload words of the record whose header is at `pos`.
    fn words(&self, pos: u64, len: usize) -> std::ops::Range<usize> {
        use bytes::ByteRing as _;
        let first = self.ring_at(pos) / 8 + 1;
        first..first + len.div_ceil(8)
    }

    /// Sends a record of `len` bytes whose words all hold `v`.
    fn send(&self, len: usize, v: u64) {
        loop {
            if let Ok(Step::Claimed(pos)) = bytes::claim_send(&self.tail, &self.head, self, len) {
                for w in self.words(pos, len) {
                    // SAFETY: the claim gives these words to the sender;
                    // loom reports a race if the rule fails to.
                    self.payload[w].with_mut(|p| unsafe { *p = v });
                }
                bytes::commit(&self.tail, self, pos, len);
                return;
            }
            thread::yield_now();
        }
    }

    /// Receives a record: its length and the value its words hold.
    fn recv(&self) -> (usize, u64) {
        loop {
            if let Ok(Step::Claimed(pos)) = bytes::claim_recv(&self.head, &self.tail, self) {
                use bytes::ByteRing as _;
                let word = self.record_word(self.ring_at(pos)).load(Ordering::Relaxed);
                assert_eq!(
                    bytes::kind_of(word),
                    u64::from(bytes::DATA),
                    "a data record"
                );
                let len = bytes::len_of(word);
                let values: Vec<u64> = self
                    .words(pos, len)
                    // SAFETY: as in `send`, the claim gives us the words.
                    .map(|w| self.payload[w].with(|p| unsafe { *p }))
                    .collect();
                assert!(values.iter().all(|&x| x == values[0]), "{values:?}");
                bytes::release(&self.head, pos, len);
                return (len, values[0]);
            }
            thread::yield_now();
        }
    }
}

#[test]
fn byte_ring_delivers_records_in_order_across_padding_at_the_wrap() {
    explore(|| {
        // 32 bytes: records of 16, 24 and 16 bytes (8, 16, 8 of payload).
        // The second does not fit before the end and follows a padding
        // record; the third pads again. Every record waits for room.
        let ring = ByteModel::new(32);
        let tx = Arc::clone(&ring);
        let t = thread::spawn(move || {
            for (len, v) in [(8, 1), (16, 2), (8, 3)] {
                tx.send(len, v);
            }
        });
        let got: Vec<(usize, u64)> = (0..3).map(|_| ring.recv()).collect();
        t.join().unwrap();
        assert_eq!(got, [(8, 1), (16, 2), (8, 3)]);
    });
}
