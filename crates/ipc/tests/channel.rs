//! The shared-memory channel between real processes: a model test against
//! a `VecDeque`, peers killed mid-message, stale and foreign objects, and
//! the misuses a hostile caller would try. This binary re-runs itself as
//! the peer process.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Guard, arg, join, role, spawn_peer, unique};
use memio_ipc::Error;
use memio_ipc::channel::{ByteReceiver, ByteSender, Channel, ChannelOptions, Flavor};
use memio_ipc::shm::posix as shm;
use proptest::prelude::*;

/// The message number `i` of a stream: its length and bytes follow from
/// `i`, so both processes know what to expect.
fn message(i: u64, max: usize) -> Vec<u8> {
    let len = usize::try_from(i.wrapping_mul(2_654_435_761) % (max as u64 + 1)).unwrap();
    (0..len as u64).map(|j| (i + j).to_le_bytes()[0]).collect()
}

/// Starts this binary as a peer that talks on its stdout ("ready" lines),
/// for the tests that kill it.
fn spawn_talking(
    test: &str,
    role: &str,
    args: &[(&str, String)],
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env("MEMIO_IPC_TEST_ROLE", role)
        .stdout(Stdio::piped());
    for (k, v) in args {
        cmd.env(format!("MEMIO_IPC_TEST_{k}"), v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// Reads lines until one is `want`.
fn wait_for(out: &mut BufReader<std::process::ChildStdout>, want: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "peer ended before '{want}'"
        );
        if line.trim() == want {
            return;
        }
    }
}

fn say(word: &str) {
    println!("{word}");
}

/// Asserts that `err` is `PeerGone` naming `peer` and came within a
/// second of `start` (the bound the kill tests promise).
#[track_caller]
fn assert_peer_gone_within_a_second(err: &Error, peer: &str, start: Instant) {
    assert!(
        matches!(err, Error::PeerGone { peer: p, .. } if *p == peer),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_stream_between_processes_arrives_whole_and_in_order() {
    const N: u64 = 2000;
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut tx = ch.sender().unwrap();
        for i in 0..N {
            tx.send(&message(i, ch.slot_size())).unwrap();
        }
        return;
    }
    let name = unique("chan");
    let ch = ChannelOptions::new()
        .slots(4)
        .slot_size(100)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.receiver().unwrap();
    let peer = spawn_peer(
        "a_stream_between_processes_arrives_whole_and_in_order",
        "sender",
        &[("NAME", name)],
    );
    for i in 0..N {
        let got = rx.recv().unwrap();
        assert_eq!(got.to_vec(), message(i, 100), "message {i}");
    }
    join(peer);
    // The sender is gone and the ring is empty.
    assert!(matches!(
        rx.recv(),
        Err(Error::PeerGone { peer: "sender", .. })
    ));
}

#[test]
fn a_memfd_channel_is_handed_to_a_child() {
    if role().is_some() {
        let fd: i32 = arg("FD").parse().unwrap();
        // SAFETY: the parent passed this descriptor open, without
        // close-on-exec, and nothing else in this process owns it.
        #[allow(unsafe_code, reason = "taking an inherited descriptor")]
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let ch = ChannelOptions::new().from_fd(fd).unwrap();
        let mut rx = ch.receiver().unwrap();
        let mut tx = ChannelOptions::new()
            .open(&arg("BACK"))
            .unwrap()
            .sender()
            .unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv_into(&mut buf).unwrap();
        tx.send(&buf[..n]).unwrap();
        return;
    }
    let ch = ChannelOptions::new().slot_size(64).memfd("test").unwrap();
    let back = unique("back");
    let back_ch = ChannelOptions::new().slot_size(64).create(&back).unwrap();
    let _g = Guard::PosixShm(back.clone());
    let mut rx = back_ch.receiver().unwrap();
    let fd = ch.inheritable_fd().unwrap();
    let peer = spawn_peer(
        "a_memfd_channel_is_handed_to_a_child",
        "echo",
        &[("FD", fd.as_raw_fd().to_string()), ("BACK", back)],
    );
    drop(fd);
    ch.sender().unwrap().send(b"through a memfd").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"through a memfd");
    join(peer);
}

/// A producer of a `flavor` channel sends one message, loans a second,
/// writes half of it and is killed: the consumer gets the whole message,
/// then `PeerGone` within a second, never the half-written one; a new
/// producer takes the dead one's place.
fn producer_killed_mid_message(test: &str, flavor: Flavor) {
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.send(b"whole").unwrap();
        let mut loan = tx.loan(8).unwrap();
        loan.write_at(0, b"half").unwrap();
        say("loaned");
        std::thread::sleep(Duration::from_secs(60));
        loan.commit();
        return;
    }
    let name = unique("kill-tx");
    let ch = ChannelOptions::new()
        .flavor(flavor)
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.receiver().unwrap();
    let (mut child, mut out) = spawn_talking(test, "sender", &[("NAME", name)]);
    wait_for(&mut out, "loaned");
    kill(&mut child);
    assert_eq!(rx.recv().unwrap().to_vec(), b"whole");
    let start = Instant::now();
    let err = rx.recv().unwrap_err();
    assert_peer_gone_within_a_second(&err, "sender", start);
    assert!(err.to_string().contains("the sender is gone"), "{err}");
    let mut tx = ch.sender().unwrap();
    tx.send(b"next").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"next");
    assert!(rx.try_recv().unwrap().is_none());
}

#[test]
fn a_producer_killed_mid_message_is_reported_and_its_message_never_seen() {
    producer_killed_mid_message(
        "a_producer_killed_mid_message_is_reported_and_its_message_never_seen",
        Flavor::Spsc,
    );
}

#[test]
fn an_mpmc_producer_killed_mid_message_is_reported_and_its_message_never_seen() {
    producer_killed_mid_message(
        "an_mpmc_producer_killed_mid_message_is_reported_and_its_message_never_seen",
        Flavor::Mpmc,
    );
}

/// A consumer of a two-slot `flavor` channel receives "first" and is
/// killed holding it while "second" waits: the producer fills the ring and
/// is told the consumer is gone, and the next consumer gets what the
/// flavour promises.
fn consumer_killed_holding_a_message(test: &str, flavor: Flavor) {
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut rx = ch.receiver().unwrap();
        let held = rx.recv().unwrap();
        say("holding");
        std::thread::sleep(Duration::from_secs(60));
        held.release();
        return;
    }
    let name = unique("kill-rx");
    let ch = ChannelOptions::new()
        .flavor(flavor)
        .slots(2)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.sender().unwrap();
    tx.send(b"first").unwrap();
    let (mut child, mut out) = spawn_talking(test, "receiver", &[("NAME", name)]);
    wait_for(&mut out, "holding");
    tx.send(b"second").unwrap();
    kill(&mut child);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    let err = loop {
        assert!(Instant::now() < deadline, "no PeerGone");
        match tx.send(b"more") {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            Error::PeerGone {
                peer: "receiver",
                ..
            }
        ),
        "{err}"
    );
    let (reused, next): (usize, [&[u8]; 2]) = match flavor {
        // SPSC: the dead receiver never moved `head` past "first", so the
        // next receiver gets it again, then the rest in order.
        Flavor::Spsc => (0, [b"first", b"second"]),
        // MPMC: the held slot is freed (its message is lost with the
        // receiver) and exactly one more message takes it.
        _ => (1, [b"second", b"more"]),
    };
    assert_eq!(sent, reused, "slots reused before the ring was full");
    let mut rx = ch.receiver().unwrap();
    for want in next {
        assert_eq!(rx.recv().unwrap().to_vec(), want);
    }
    assert!(rx.try_recv().unwrap().is_none());
}

#[test]
fn a_consumer_killed_holding_a_message_lets_the_producer_know_when_full() {
    consumer_killed_holding_a_message(
        "a_consumer_killed_holding_a_message_lets_the_producer_know_when_full",
        Flavor::Spsc,
    );
}

#[test]
fn an_mpmc_consumer_killed_holding_a_message_frees_its_slot_and_the_producer_is_told_when_full() {
    consumer_killed_holding_a_message(
        "an_mpmc_consumer_killed_holding_a_message_frees_its_slot_and_the_producer_is_told_when_full",
        Flavor::Mpmc,
    );
}

#[test]
fn an_mpmc_slot_a_dead_receiver_held_is_freed_when_a_new_receiver_takes_its_place() {
    const T: &str =
        "an_mpmc_slot_a_dead_receiver_held_is_freed_when_a_new_receiver_takes_its_place";
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut rx = ch.receiver().unwrap();
        let held = rx.recv().unwrap();
        say("holding");
        std::thread::sleep(Duration::from_secs(60));
        held.release();
        return;
    }
    let name = unique("orphan-rx");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(1)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.sender().unwrap();
    tx.send(b"first").unwrap();
    let (mut child, mut out) = spawn_talking(T, "receiver", &[("NAME", name)]);
    wait_for(&mut out, "holding");
    kill(&mut child);
    // The new receiver takes the dead one's lock byte, so the sender can
    // no longer tell that the slot's holder died: the new receiver frees it.
    let mut rx = ch.receiver().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    assert!(tx.send_deadline(b"second", deadline).unwrap(), "slot lost");
    assert_eq!(rx.recv().unwrap().to_vec(), b"second");
}

#[test]
fn a_forgotten_mpmc_message_does_not_take_its_slot_for_ever() {
    let name = unique("forgot");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(1)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.sender().unwrap();
    tx.send(b"a").unwrap();
    let mut rx = ch.receiver().unwrap();
    std::mem::forget(rx.recv().unwrap());
    drop(rx);
    let mut rx = ch.receiver().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    assert!(tx.send_deadline(b"b", deadline).unwrap(), "slot lost");
    assert_eq!(rx.recv().unwrap().to_vec(), b"b");
}

#[test]
fn a_message_after_a_dead_mpmc_senders_loan_arrives_when_a_new_sender_takes_its_place() {
    const T: &str =
        "a_message_after_a_dead_mpmc_senders_loan_arrives_when_a_new_sender_takes_its_place";
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut tx = ch.sender().unwrap();
        let loan = tx.loan(4).unwrap();
        say("loaned");
        std::thread::sleep(Duration::from_secs(60));
        loan.commit();
        return;
    }
    let name = unique("orphan-tx");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.receiver().unwrap();
    let (mut child, mut out) = spawn_talking(T, "sender", &[("NAME", name)]);
    wait_for(&mut out, "loaned");
    kill(&mut child);
    let mut tx = ch.sender().unwrap();
    tx.send(b"request").unwrap();
    let got = rx
        .recv_deadline(Instant::now() + Duration::from_secs(1))
        .unwrap()
        .map(|m| m.to_vec());
    assert_eq!(got.as_deref(), Some(&b"request"[..]));
}

#[test]
fn many_mpmc_senders_killed_mid_loan_are_reported_within_a_second() {
    const T: &str = "many_mpmc_senders_killed_mid_loan_are_reported_within_a_second";
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut txs: Vec<_> = (0..64).map(|_| ch.sender().unwrap()).collect();
        let loans: Vec<_> = txs.iter_mut().map(|t| t.loan(4).unwrap()).collect();
        say("loaned");
        std::thread::sleep(Duration::from_secs(60));
        drop(loans);
        return;
    }
    let name = unique("many-dead");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(64)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.receiver().unwrap();
    let (mut child, mut out) = spawn_talking(T, "senders", &[("NAME", name)]);
    wait_for(&mut out, "loaned");
    kill(&mut child);
    let start = Instant::now();
    let err = rx.recv().map(|m| m.to_vec()).unwrap_err();
    assert_peer_gone_within_a_second(&err, "sender", start);
}

#[test]
fn a_full_mpmc_sender_never_frees_another_live_senders_loan() {
    let name = unique("h2-wrongside");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(2)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.receiver().unwrap(); // receiver index 0
    let mut s0 = ch.sender().unwrap(); // sender index 0
    let mut s1 = ch.sender().unwrap(); // sender index 1 (no receiver 1)
    let mut s2 = ch.sender().unwrap(); // sender index 2
    let mut loan = s1.loan(8).unwrap(); // position 0, WRITING by sender 1
    s0.send(b"BBBBBBBB").unwrap(); // position 1
    // The ring is full: position 0 is on loan to a live sender, position 1
    // waits for the receiver. A third sender must wait and time out.
    let deadline = Instant::now() + Duration::from_millis(300);
    let sent_c = s2.send_deadline(b"CCCCCCCC", deadline).unwrap();
    loan.write_at(0, b"AAAAAAAA").unwrap();
    loan.commit();
    let mut got = Vec::new();
    while let Some(m) = rx.try_recv().unwrap() {
        got.push(String::from_utf8_lossy(&m.to_vec()).into_owned());
    }
    assert!(
        !sent_c,
        "a sender claimed the slot of another sender's live loan; received {got:?}"
    );
    assert_eq!(got, ["AAAAAAAA", "BBBBBBBB"]);
}

#[test]
fn open_with_one_free_descriptor_fails_instead_of_spinning() {
    const T: &str = "open_with_one_free_descriptor_fails_instead_of_spinning";
    if role().is_some() {
        let lim = rustix::process::Rlimit {
            current: Some(64),
            maximum: Some(64),
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).unwrap();
        let mut files = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            files.push(f);
        }
        // FREE descriptors free (1: exactly one).
        for _ in 0..arg("FREE").parse::<usize>().unwrap() {
            files.pop();
        }
        let r = memio_ipc::channel::Channel::open(&arg("NAME"));
        drop(files);
        // Out of descriptors, the open fails; with one to spare it works.
        say(&format!("open returned: {:?}", r.map(|_| ())));
        return;
    }
    let name = unique("h2-emfile");
    let _ch = ChannelOptions::new()
        .slots(2)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    // Control: with two descriptors free the open finishes at once.
    for free in ["2", "1"] {
        let args = [("NAME", name.clone()), ("FREE", free.to_owned())];
        let mut child = spawn_peer(T, "opener", &args);
        let start = Instant::now();
        let done = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "opener failed: {status}");
                break true;
            }
            if start.elapsed() > Duration::from_secs(5) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !done {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Channel::open still running after 5 s with {free} descriptor(s) free (spins)");
        }
    }
}

#[test]
fn an_mpmc_sender_behind_a_live_loan_hears_the_receivers_gone() {
    let name = unique("mpmc-behind-loan");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(2)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let rx = ch.receiver().unwrap();
    let mut a = ch.sender().unwrap();
    let mut b = ch.sender().unwrap();
    let loan = a.loan(1).unwrap(); // position 0, held open
    b.send(b"1").unwrap(); // position 1: the ring is now full
    drop(rx);
    let start = Instant::now();
    let got = b.send_deadline(b"2", start + Duration::from_secs(3));
    assert!(
        matches!(
            got,
            Err(Error::PeerGone {
                peer: "receiver",
                ..
            })
        ),
        "after {:?}: {got:?} (no receiver left)",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    loan.commit();
}

#[test]
fn many_producer_processes_and_consumer_threads_deliver_each_message_once() {
    const PER: u64 = 500;
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let me: u64 = arg("WHO").parse().unwrap();
        let mut tx = ch.sender().unwrap();
        for i in 0..PER {
            tx.send(&(me * PER + i).to_le_bytes()).unwrap();
        }
        return;
    }
    let name = unique("mpmc");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(8)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let test = "many_producer_processes_and_consumer_threads_deliver_each_message_once";
    let mut receivers: Vec<_> = (0..3).map(|_| ch.receiver().unwrap()).collect();
    let peers: Vec<_> = (0..3u64)
        .map(|w| {
            spawn_peer(
                test,
                "sender",
                &[("NAME", name.clone()), ("WHO", w.to_string())],
            )
        })
        .collect();
    let mut seen: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = receivers
            .iter_mut()
            .map(|rx| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 8];
                    while let Ok(n) = rx.recv_into(&mut buf) {
                        assert_eq!(n, 8);
                        got.push(u64::from_le_bytes(buf));
                    }
                    got
                })
            })
            .collect();
        for p in peers {
            join(p);
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    seen.sort_unstable();
    assert_eq!(seen, (0..3 * PER).collect::<Vec<_>>());
}

#[test]
fn an_spsc_channel_refuses_a_second_sender_in_any_process() {
    let name = unique("busy");
    let ch = Channel::create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let tx = ch.sender().unwrap();
    let err = ch.sender().unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("channel '{name}' is busy: it already has 1 sender (the most its flavour admits)")
    );
    // Another handle (as another process would open it) is refused too.
    let again = Channel::open(&name).unwrap();
    assert!(matches!(again.sender(), Err(Error::Busy { .. })));
    // A receiver is still free, and a dropped sender frees its place.
    let _rx = again.receiver().unwrap();
    drop(tx);
    again.sender().unwrap();
}

#[test]
fn a_message_larger_than_a_slot_is_refused_and_nothing_is_sent() {
    let name = unique("big");
    let ch = ChannelOptions::new().slot_size(16).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let err = tx.send(&[0u8; 17]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("message of 17 bytes is larger than the 16-byte limit of channel '{name}'")
    );
    let mut loan = tx.loan(4).unwrap();
    assert!(loan.write_at(2, b"abc").is_err(), "past the loan's length");
    drop(loan); // not committed: nothing delivered
    assert!(rx.try_recv().unwrap().is_none());
    tx.send(b"ok").unwrap();
    let mut small = [0u8; 1];
    assert!(matches!(
        rx.recv_into(&mut small),
        Err(Error::BufferTooSmall { .. })
    ));
}

#[test]
fn garbage_and_foreign_objects_are_refused_not_trusted() {
    let name = unique("garbage");
    let _g = Guard::PosixShm(name.clone());
    let mut region = shm::create(&name, 4096).unwrap();
    region.fill(0, 4096, 0xa5).unwrap();
    let err = Channel::open(&name).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("channel '{name}' is not usable")),
        "{err}"
    );
    // Not a channel, so create neither trusts nor removes it.
    let err = Channel::create(&name).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert!(shm::open(&name).is_ok());

    // A real header whose geometry was tampered with.
    let real = unique("tampered");
    let _g2 = Guard::PosixShm(real.clone());
    drop(
        ChannelOptions::new()
            .slots(2)
            .slot_size(64)
            .create(&real)
            .unwrap(),
    );
    let mut region = shm::open(&real).unwrap();
    region.write_at(16, &1000u32.to_ne_bytes()).unwrap();
    let err = Channel::open(&real).unwrap_err();
    assert!(err.to_string().contains("describes"), "{err}");

    let tiny = unique("tiny");
    let _g3 = Guard::PosixShm(tiny.clone());
    drop(shm::create(&tiny, 10).unwrap());
    let err = Channel::open(&tiny).unwrap_err();
    assert!(
        err.to_string().contains("smaller than a channel header"),
        "{err}"
    );
}

#[test]
fn a_stale_channel_left_by_a_dead_process_is_replaced_on_create() {
    if role().is_some() {
        let ch = Channel::create(&arg("NAME")).unwrap();
        let _tx = ch.sender().unwrap();
        // Dies without unlinking.
        std::process::exit(0);
    }
    let name = unique("stale");
    let _g = Guard::PosixShm(name.clone());
    join(spawn_peer(
        "a_stale_channel_left_by_a_dead_process_is_replaced_on_create",
        "creator",
        &[("NAME", name.clone())],
    ));
    assert!(shm::open(&name).is_ok(), "left behind");
    let ch = ChannelOptions::new().slot_size(32).create(&name).unwrap();
    assert_eq!(ch.slot_size(), 32, "a new channel");
    // One that is in use is not stale.
    let err = Channel::create(&name).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
}

/// Writes the object a creator leaves when it dies after sizing a
/// one-slot channel of 8-byte slots and storing its version, before the
/// magic number: what `init` has written by then.
fn half_made(name: &str) {
    const SIZE: usize = 384 + 128;
    let mut region = shm::create(name, SIZE).unwrap();
    region.write_at(8, &2u32.to_ne_bytes()).unwrap();
    region.write_at(32, &(SIZE as u64).to_ne_bytes()).unwrap();
}

#[test]
fn an_object_half_made_by_a_dead_creator_is_removed_on_open_and_on_create() {
    let name = unique("halfmade");
    let _g = Guard::PosixShm(name.clone());
    half_made(&name);
    let err = Channel::open(&name).unwrap_err();
    assert_eq!(err.raw_errno(), None, "{err}");
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name), "{err}");
    assert!(err.to_string().contains("half-made"), "{err}");
    assert!(shm::open(&name).is_err(), "the half-made object is gone");
    // Now it is simply missing.
    let err = Channel::open(&name).unwrap_err();
    assert_eq!(err.raw_errno(), Some(libc::ENOENT), "{err}");

    half_made(&name);
    let ch = ChannelOptions::new().slot_size(32).create(&name).unwrap();
    assert_eq!(ch.slot_size(), 32, "a new channel in its place");
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    tx.send(b"whole").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"whole");
}

#[test]
fn a_half_made_object_someone_holds_or_a_foreign_one_is_never_removed() {
    // Its creator may still be at work: the open waits, then refuses.
    let name = unique("halfheld");
    let _g = Guard::PosixShm(name.clone());
    // A live handle on an object that looks half-made, as a creator's
    // does until it stores the magic number.
    let lock = ChannelOptions::new()
        .slots(1)
        .slot_size(8)
        .create(&name)
        .unwrap();
    shm::open(&name)
        .unwrap()
        .write_at(0, &0u64.to_ne_bytes())
        .unwrap();
    let err = Channel::open(&name).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let err = Channel::create(&name).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert!(shm::open(&name).is_ok(), "kept while held");
    drop(lock);

    // Magic zero but another version: not ours to remove.
    let foreign = unique("foreign");
    let _g2 = Guard::PosixShm(foreign.clone());
    half_made(&foreign);
    shm::open(&foreign)
        .unwrap()
        .write_at(8, &7u32.to_ne_bytes())
        .unwrap();
    let err = Channel::open(&foreign).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let err = Channel::create(&foreign).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert!(shm::open(&foreign).is_ok(), "a foreign object is kept");
}

#[test]
fn a_stale_channel_opened_again_still_delivers_what_was_committed() {
    let name = unique("reopen");
    let _g = Guard::PosixShm(name.clone());
    {
        let ch = ChannelOptions::new()
            .slots(4)
            .slot_size(16)
            .create(&name)
            .unwrap();
        let mut tx = ch.sender().unwrap();
        tx.send(b"one").unwrap();
        tx.send(b"two").unwrap();
        // Every handle goes without unlinking: the channel is stale.
    }
    let ch = Channel::open(&name).unwrap();
    let mut rx = ch.receiver().unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"one");
    assert_eq!(rx.recv().unwrap().to_vec(), b"two");
    let mut tx = ch.sender().unwrap();
    tx.send(b"three").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"three");
}

#[test]
fn of_many_processes_replacing_a_stale_channel_at_once_exactly_one_creates_it() {
    const RACERS: usize = 8;
    for round in 0..20 {
        let name = unique(&format!("race{round}"));
        let _g = Guard::PosixShm(name.clone());
        drop(Channel::create(&name).unwrap());
        let barrier = std::sync::Barrier::new(RACERS);
        let made: Vec<Channel> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..RACERS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        // Each thread's shm_open is an open file description
                        // of its own, so the locks tell them apart as they
                        // would separate processes.
                        match ChannelOptions::new().slot_size(24).create(&name) {
                            Ok(ch) => Some(ch),
                            Err(e) => {
                                assert!(e.to_string().contains("exists"), "{e}");
                                None
                            }
                        }
                    })
                })
                .collect();
            racers
                .into_iter()
                .filter_map(|r| r.join().unwrap())
                .collect()
        });
        assert_eq!(made.len(), 1, "round {round}: one creator");
        // The name leads to the winner's channel.
        let mut tx = Channel::open(&name).unwrap().sender().unwrap();
        tx.send(b"to the winner").unwrap();
        let mut rx = made[0].receiver().unwrap();
        let got = rx
            .recv_deadline(Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            got.map(|m| m.to_vec()).as_deref(),
            Some(&b"to the winner"[..])
        );
    }
}

#[test]
fn an_open_racing_a_create_waits_for_the_creator_and_never_reports_corrupt() {
    // The name exists, empty, before the creator holds it: an open that
    // comes between must wait for the creator, not judge the empty object.
    const ROUNDS: usize = 500;
    for round in 0..ROUNDS {
        let name = unique("openrace");
        let _g = Guard::PosixShm(name.clone());
        std::thread::scope(|s| {
            let openers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let start = Instant::now();
                        while start.elapsed() < Duration::from_secs(2) {
                            match Channel::open(&name) {
                                Ok(ch) => return Some(ch.slots()),
                                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                                Err(e) => panic!("round {round}: {e}"),
                            }
                        }
                        None
                    })
                })
                .collect();
            std::thread::yield_now();
            let ch = ChannelOptions::new()
                .slots(2)
                .slot_size(8)
                .create(&name)
                .unwrap();
            for o in openers {
                assert_eq!(o.join().unwrap(), Some(2), "round {round}");
            }
            drop(ch);
        });
    }
}

#[test]
fn of_threads_replacing_a_stale_channel_in_a_tight_race_exactly_one_creates_it() {
    // A loser write-locks whatever object the name leads to while it looks
    // at it, the winner's new and still empty one included: that must not
    // make the winner fail. Losers that try again and again until someone
    // has won make that moment as likely as it gets.
    const ROUNDS: usize = 3000;
    const RACERS: usize = 3;
    for round in 0..ROUNDS {
        let name = unique("tightrace");
        let _g = Guard::PosixShm(name.clone());
        let options = ChannelOptions::new().slots(2).slot_size(8);
        drop(options.create(&name).unwrap());
        let barrier = std::sync::Barrier::new(RACERS);
        let won = std::sync::atomic::AtomicBool::new(false);
        let made: Vec<Channel> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..RACERS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        for _ in 0..1000 {
                            match options.create(&name) {
                                Ok(ch) => {
                                    won.store(true, std::sync::atomic::Ordering::Relaxed);
                                    return Some(ch);
                                }
                                Err(e) => {
                                    assert!(e.to_string().contains("exists"), "round {round}: {e}");
                                }
                            }
                            if won.load(std::sync::atomic::Ordering::Relaxed) {
                                break;
                            }
                        }
                        None
                    })
                })
                .collect();
            racers
                .into_iter()
                .filter_map(|r| r.join().unwrap())
                .collect()
        });
        assert_eq!(made.len(), 1, "round {round}: one creator");
    }
}

#[test]
fn a_create_without_room_in_dev_shm_is_an_error_not_sigbus() {
    const T: &str = "a_create_without_room_in_dev_shm_is_an_error_not_sigbus";
    /// The exit code of the shell when it cannot mount the small tmpfs.
    const SKIP: i32 = 77;
    if role().is_some() {
        // In a mount namespace of its own, over a 1 MiB /dev/shm.
        let name = unique("noroom");
        let _g = Guard::PosixShm(name.clone());
        let err = ChannelOptions::new()
            .slots(1024)
            .slot_size(4096)
            .create(&name)
            .unwrap_err();
        assert_eq!(err.raw_errno(), Some(libc::ENOSPC), "{err}");
        assert!(err.to_string().contains(&name), "{err}");
        assert!(shm::open(&name).is_err(), "the failed object is removed");
        // What fits still works.
        let ch = ChannelOptions::new()
            .slots(4)
            .slot_size(4096)
            .create(&name)
            .unwrap();
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        tx.send(b"fits").unwrap();
        assert_eq!(rx.recv().unwrap().to_vec(), b"fits");
        return;
    }
    // A small /dev/shm needs a mount namespace: root, and `unshare`.
    let can_unshare = Command::new("unshare")
        .args(["-m", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !can_unshare {
        println!("skipped: `unshare -m` is unavailable here (it needs root)");
        return;
    }
    let status = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs -o size=1m tmpfs /dev/shm || exit 77; \
             exec \"$0\" --exact \"$1\" --nocapture --test-threads=1",
        ])
        .arg(std::env::current_exe().unwrap())
        .arg(T)
        .env("MEMIO_IPC_TEST_ROLE", "creator")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    if status.code() == Some(SKIP) {
        println!("skipped: cannot mount a small tmpfs on /dev/shm");
        return;
    }
    assert!(status.success(), "creator process failed: {status}");
}

#[test]
fn a_memfd_channel_is_sealed_so_a_child_cannot_shrink_it() {
    if role().is_some() {
        let fd: i32 = arg("FD").parse().unwrap();
        // SAFETY: the parent passed this descriptor open, without
        // close-on-exec, and nothing else in this process owns it.
        #[allow(unsafe_code, reason = "taking an inherited descriptor")]
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = std::fs::File::from(fd);
        let size = file.metadata().unwrap().len();
        for len in [0, size / 2, size + 4096] {
            let err = file.set_len(len).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EPERM), "to {len}: {err}");
        }
        let ch = ChannelOptions::new().from_fd(file.into()).unwrap();
        let mut rx = ch.receiver().unwrap();
        assert_eq!(rx.recv().unwrap().to_vec(), b"still whole");
        return;
    }
    let ch = ChannelOptions::new()
        .slots(4)
        .slot_size(64)
        .memfd("sealed")
        .unwrap();
    ch.sender().unwrap().send(b"still whole").unwrap();
    let fd = ch.inheritable_fd().unwrap();
    let peer = spawn_peer(
        "a_memfd_channel_is_sealed_so_a_child_cannot_shrink_it",
        "shrinker",
        &[("FD", fd.as_raw_fd().to_string())],
    );
    drop(fd);
    join(peer);
}

#[test]
fn a_deadline_is_kept_while_spinning() {
    let name = unique("spin-deadline");
    let ch = ChannelOptions::new()
        .slots(2)
        .slot_size(8)
        .spin(20_000_000)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let _tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    let start = Instant::now();
    assert!(
        rx.recv_deadline(start + Duration::from_millis(5))
            .unwrap()
            .is_none()
    );
    let e = start.elapsed();
    // The spin alone takes most of a second here.
    assert!(e < Duration::from_millis(250), "a 5 ms deadline took {e:?}");
}

/// Polls `f` for two seconds; whether it ever returned `PeerGone`.
fn polls_hear_gone<T: std::fmt::Debug>(mut f: impl FnMut() -> Result<Option<T>, Error>) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        match f() {
            Err(Error::PeerGone { .. }) => return true,
            Err(e) => panic!("{e:?}"),
            Ok(Some(v)) => panic!("{v:?} from nowhere"),
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    false
}

#[test]
fn a_receiver_that_polls_hears_that_the_sender_is_gone() {
    // A call that finds nothing by its deadline looks at the peers' locks
    // (at most once per 50 ms): `try_recv` and waits shorter than that
    // look hear PeerGone as a long wait does.
    for flavor in [Flavor::Spsc, Flavor::Mpmc] {
        for short_waits in [false, true] {
            let name = unique("poll-recv");
            let ch = ChannelOptions::new()
                .flavor(flavor)
                .slots(4)
                .slot_size(8)
                .create(&name)
                .unwrap();
            let _g = Guard::PosixShm(name);
            let mut rx = ch.receiver().unwrap();
            drop(ch.sender().unwrap());
            let heard = polls_hear_gone(|| {
                let got = if short_waits {
                    rx.recv_deadline(Instant::now() + Duration::from_millis(20))
                } else {
                    rx.try_recv()
                };
                got.map(|m| m.map(|m| m.to_vec()))
            });
            assert!(
                heard,
                "{flavor:?}, 20 ms waits {short_waits}: nothing but Ok(None) for 2 s with no sender alive"
            );
        }
    }
}

#[test]
fn try_send_on_a_full_ring_hears_that_the_receiver_is_gone() {
    let name = unique("poll-send");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(1)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name);
    let mut tx = ch.sender().unwrap();
    drop(ch.receiver().unwrap());
    tx.send(b"0").unwrap();
    assert!(
        polls_hear_gone(|| tx.try_send(b"1").map(|ok| ok.then_some(()))),
        "try_send returned false for 2 s with no receiver alive"
    );
}

#[test]
fn byte_try_recv_in_a_loop_hears_that_the_sender_is_gone() {
    let name = unique("poll-bytes");
    let ch = ChannelOptions::new().byte_ring(256).create(&name).unwrap();
    let _g = Guard::PosixShm(name);
    let mut rx = ch.byte_receiver().unwrap();
    drop(ch.byte_sender().unwrap());
    assert!(
        polls_hear_gone(|| rx.try_recv().map(|r| r.map(|r| r.to_vec()))),
        "byte try_recv returned Ok(None) for 2 s with no sender alive"
    );
}

#[test]
fn deadlines_return_without_a_message_or_room() {
    let name = unique("deadline");
    let ch = ChannelOptions::new()
        .slots(1)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let start = Instant::now();
    assert!(
        rx.recv_deadline(start + Duration::from_millis(30))
            .unwrap()
            .is_none()
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(tx.try_send(b"1").unwrap());
    assert!(
        !tx.send_deadline(b"2", Instant::now() + Duration::from_millis(30))
            .unwrap()
    );
}

/// Offsets of the layout table: `tail`, `head`, and the state word and
/// length of slot `i` of a ring of 8-byte slots (a 128-byte stride).
const TAIL: usize = 128;
const HEAD: usize = 256;
fn state_at(i: usize) -> usize {
    384 + i * 128
}
fn len_at(i: usize) -> usize {
    state_at(i) + 8
}

/// A `FULL` or `FREE` state word for position `pos`, as the protocol
/// writes it.
fn word(pos: u64, kind: u64) -> u64 {
    (pos << 8) | kind
}

#[test]
fn indices_near_the_end_of_u64_written_by_another_process_never_panic() {
    // SPSC: a head at u64::MAX over a slot that says FULL(u64::MAX), and a
    // tail there too. Wrong data is acceptable; a panic (overflow in a
    // release or in a new sender's resume) is not.
    let name = unique("overflow-spsc");
    let ch = ChannelOptions::new()
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.receiver().unwrap();
    let mut region = shm::open(&name).unwrap();
    region.write_at(HEAD, &u64::MAX.to_ne_bytes()).unwrap();
    region.write_at(TAIL, &u64::MAX.to_ne_bytes()).unwrap();
    region
        .write_at(state_at(3), &word(u64::MAX, 2).to_ne_bytes())
        .unwrap();
    region.write_at(len_at(3), &1u32.to_ne_bytes()).unwrap();
    // Delivered, nothing, or reported: never a panic.
    match rx.try_recv() {
        Ok(Some(msg)) => msg.release(),
        Ok(None) | Err(Error::Corrupt { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let mut tx = ch.sender().unwrap();
    let _ = tx.try_send(b"x");
    let _ = rx.try_recv().map(|m| m.map(|m| m.to_vec()));

    // MPMC: the same at the claims' compare-and-swaps and the release.
    let name = unique("overflow-mpmc");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g2 = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut region = shm::open(&name).unwrap();
    region.write_at(HEAD, &u64::MAX.to_ne_bytes()).unwrap();
    region.write_at(TAIL, &u64::MAX.to_ne_bytes()).unwrap();
    region
        .write_at(state_at(3), &word(u64::MAX, 0).to_ne_bytes())
        .unwrap();
    let _ = tx.try_send(b"y");
    if let Ok(Some(msg)) = rx.try_recv() {
        msg.release();
    }
    let _ = tx.try_send(b"z");
}

#[test]
fn spsc_indices_moved_by_another_process_are_reported_not_waited_on() {
    let name = unique("moved");
    let ch = ChannelOptions::new()
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    for i in 0..6u8 {
        tx.send(&[i]).unwrap();
        assert_eq!(rx.recv().unwrap().to_vec(), [i]);
    }
    let mut region = shm::open(&name).unwrap();
    // `head` set back to 0 with `tail` at 6: position 0 will never be
    // committed again, so a blocking receive would wait for ever with the
    // sender alive.
    region.write_at(HEAD, &0u64.to_ne_bytes()).unwrap();
    let start = Instant::now();
    let got = rx
        .recv_deadline(start + Duration::from_secs(2))
        .map(|m| m.map(|r| r.to_vec()));
    assert!(matches!(got, Err(Error::Corrupt { .. })), "{got:?}");
    assert!(start.elapsed() < Duration::from_secs(1));
    // The sender, `n` past that head, would wait for ever too.
    while matches!(tx.try_send(b"s"), Ok(true)) {}
    let start = Instant::now();
    let sent = tx.send_deadline(b"s", start + Duration::from_secs(2));
    assert!(matches!(sent, Err(Error::Corrupt { .. })), "{sent:?}");
    assert!(start.elapsed() < Duration::from_secs(1));
    // `head` far past `tail`: nothing there will ever be committed.
    region.write_at(HEAD, &1000u64.to_ne_bytes()).unwrap();
    let got = rx
        .recv_deadline(Instant::now() + Duration::from_secs(2))
        .map(|m| m.map(|r| r.to_vec()));
    assert!(matches!(got, Err(Error::Corrupt { .. })), "{got:?}");
}

#[test]
fn spsc_indices_forged_near_the_end_of_u64_are_reported_not_waited_on() {
    let name = unique("nearmax");
    let ch = ChannelOptions::new()
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut region = shm::open(&name).unwrap();
    region
        .write_at(HEAD, &(u64::MAX - 1).to_ne_bytes())
        .unwrap();
    region
        .write_at(TAIL, &(u64::MAX - 1).to_ne_bytes())
        .unwrap();
    let (mut tx, _rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let start = Instant::now();
    let mut sent = 0;
    let err = loop {
        match tx.send_deadline(b"1", start + Duration::from_secs(2)) {
            Ok(true) => sent += 1,
            Ok(false) => panic!("waited {:?} after {sent} sends", start.elapsed()),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(sent <= 1, "{sent}");
}

#[test]
fn forged_spsc_indices_past_56_bits_never_redeliver_a_received_message() {
    let name = unique("h2-alias");
    let ch = ChannelOptions::new()
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    tx.send(b"old").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"old");
    let mut region = shm::open(&name).unwrap();
    let p = 1u64 << 56;
    region.write_at(HEAD, &p.to_ne_bytes()).unwrap();
    region.write_at(TAIL, &p.to_ne_bytes()).unwrap();
    // head == tail: the ring is empty. Nothing may be delivered.
    let got = rx.try_recv().map(|m| m.map(|m| m.to_vec()));
    assert!(
        !matches!(got, Ok(Some(_))),
        "an empty ring delivered {got:?} (the message of position 0 again)"
    );
}

#[test]
fn a_byte_record_longer_than_what_was_committed_is_corrupt_not_delivered() {
    const RING: usize = 384 + 64;
    let name = unique("h2-bytelen");
    let ch = ChannelOptions::new().byte_ring(1024).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.byte_sender().unwrap();
    let mut rx = ch.byte_receiver().unwrap();
    tx.send(b"AAAAAAAA").unwrap(); // positions 0..16
    let mut loan = tx.loan(100).unwrap(); // positions 16..124, uncommitted
    loan.write_at(0, b"uncommitted!").unwrap();
    let mut region = shm::open(&name).unwrap();
    let forged = 200u64 + (1u64 << 32); // DATA record of 200 bytes
    region.write_at(RING, &forged.to_ne_bytes()).unwrap();
    let got = rx.try_recv().map(|r| r.map(|r| r.to_vec()));
    let leaked = matches!(&got, Ok(Some(v)) if v.windows(12).any(|w| w == b"uncommitted!"));
    assert!(
        !matches!(got, Ok(Some(_))),
        "delivered a {}-byte record over uncommitted bytes (loan bytes seen: {leaked})",
        got.as_ref().map_or(0, |g| g.as_ref().map_or(0, Vec::len))
    );
    loan.commit();
}

/// Runs `f` on a thread; whether it returned within `limit` (a thread
/// that did not is left spinning).
fn returns_within(limit: Duration, f: impl FnOnce() + Send + 'static) -> bool {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done_tx.send(());
    });
    done_rx.recv_timeout(limit).is_ok()
}

#[test]
fn a_forged_mpmc_hint_far_behind_its_slots_does_not_hang_try_send_or_try_recv() {
    // Every slot says FREE (or FULL) at a lap near 2^40, `tail` and `head`
    // say 0: catching the hints up one position at a time would take 2^40
    // turns, and a sound ring never lags by more than n plus one claim per
    // endpoint, so the attempt stops there.
    let name = unique("forged-lag");
    let ch = ChannelOptions::new()
        .flavor(Flavor::Mpmc)
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    let mut region = shm::open(&name).unwrap();
    let lap = 1u64 << 40;
    for i in 0..4 {
        region
            .write_at(state_at(i), &((lap + i as u64) << 8).to_ne_bytes())
            .unwrap();
    }
    region.write_at(TAIL, &0u64.to_ne_bytes()).unwrap();
    region.write_at(HEAD, &0u64.to_ne_bytes()).unwrap();
    let sent = returns_within(Duration::from_secs(2), move || {
        let _ = tx.try_send(b"x");
    });
    let received = returns_within(Duration::from_secs(2), move || {
        let _ = rx.try_recv().map(|m| m.map(|m| m.to_vec()));
    });
    assert!(
        sent && received,
        "returned within 2 s: try_send {sent}, try_recv {received}"
    );
}

#[test]
fn a_commit_forged_over_a_loan_does_not_make_a_relay_copy_overlap() {
    // Run apart: a violated `copy_nonoverlapping` precondition aborts the
    // whole process in a debug build.
    if role().is_none() {
        join(spawn_peer(
            "a_commit_forged_over_a_loan_does_not_make_a_relay_copy_overlap",
            "forger",
            &[],
        ));
        return;
    }
    let name = unique("forged");
    let ch = ChannelOptions::new()
        .slots(4)
        .slot_size(8)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
    let mut loan = tx.loan(8).unwrap();
    loan.write_at(0, b"loanloan").unwrap();
    // Another process marks the loaned slot committed: the receiver takes
    // the very bytes the loan is writing.
    let mut region = shm::open(&name).unwrap();
    region.write_at(len_at(0), &8u32.to_ne_bytes()).unwrap();
    region
        .write_at(state_at(0), &word(0, 2).to_ne_bytes())
        .unwrap();
    let msg = rx.try_recv().unwrap().expect("the forged commit");
    loan.copy_from(&msg).unwrap();
    assert_eq!(msg.to_vec(), b"loanloan");
}

#[derive(Debug, Clone)]
enum Op {
    Send(Vec<u8>),
    Recv,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..=24).prop_map(Op::Send),
        Just(Op::Recv),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The ring behaves as a bounded `VecDeque`: a send succeeds exactly
    /// when there is room, a receive returns the oldest message.
    #[test]
    fn the_ring_behaves_like_a_bounded_queue(ops in proptest::collection::vec(op(), 1..80), slots in 1usize..5) {
        let name = unique("model");
        let ch = ChannelOptions::new().slots(slots).slot_size(24).spin(0).create(&name).unwrap();
        let _g = Guard::PosixShm(name.clone());
        let (mut tx, mut rx) = (ch.sender().unwrap(), ch.receiver().unwrap());
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Send(m) => {
                    let sent = tx.try_send(&m).unwrap();
                    prop_assert_eq!(sent, model.len() < slots);
                    if sent {
                        model.push_back(m);
                    }
                }
                Op::Recv => {
                    let got = rx.try_recv().unwrap().map(|r| r.to_vec());
                    prop_assert_eq!(got, model.pop_front());
                }
            }
        }
    }
}

#[test]
fn a_message_is_relayed_slot_to_slot_and_a_short_loan_is_refused() {
    let (a, b) = (unique("relay-a"), unique("relay-b"));
    let opts = ChannelOptions::new().slots(2).slot_size(32);
    let (ca, cb) = (opts.create(&a).unwrap(), opts.create(&b).unwrap());
    let _g = (Guard::PosixShm(a), Guard::PosixShm(b));
    let (mut tx_a, mut rx_a) = (ca.sender().unwrap(), ca.receiver().unwrap());
    let (mut tx_b, mut rx_b) = (cb.sender().unwrap(), cb.receiver().unwrap());
    tx_a.send(b"relay me").unwrap();
    let msg = rx_a.recv().unwrap();
    let mut short = tx_b.loan(3).unwrap();
    assert!(matches!(short.copy_from(&msg), Err(Error::TooLarge { .. })));
    drop(short);
    let mut loan = tx_b.loan(msg.len()).unwrap();
    loan.copy_from(&msg).unwrap();
    loan.commit();
    msg.release();
    assert_eq!(rx_b.recv().unwrap().to_vec(), b"relay me");
}

// ---- The byte ring: variable-length records ----

/// Where the documented layout rule puts records: `tail` and `head` in
/// bytes; a record that would straddle the end follows a padding record,
/// published first on its own, which the receiver skips.
struct RingModel {
    cap: u64,
    tail: u64,
    head: u64,
    /// Records in the ring: their room, and the message (`None`: padding).
    sizes: VecDeque<(u64, Option<Vec<u8>>)>,
}

impl RingModel {
    fn size(len: usize) -> u64 {
        8 + (len as u64).next_multiple_of(8)
    }

    /// Whether a record of `len` bytes fits now; takes its room if so. The
    /// padding before it is taken as soon as it has room, even when the
    /// record itself must wait.
    fn push(&mut self, msg: &[u8]) -> bool {
        let need = Self::size(msg.len());
        loop {
            let room = self.cap - (self.tail - self.head);
            let pad = self.cap - self.tail % self.cap;
            if need <= pad {
                if need > room {
                    return false;
                }
                self.tail += need;
                self.sizes.push_back((need, Some(msg.to_vec())));
                return true;
            }
            if room < pad {
                return false;
            }
            self.tail += pad;
            self.sizes.push_back((pad, None));
        }
    }

    /// The next message, passing (and giving back) padding on the way.
    fn pop(&mut self) -> Option<Vec<u8>> {
        loop {
            let (taken, msg) = self.sizes.pop_front()?;
            self.head += taken;
            if msg.is_some() {
                return msg;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Records of random lengths, wrapping round the ring many times, come
    /// out whole and in order, and a send succeeds exactly when the
    /// documented layout has room for it.
    #[test]
    fn the_byte_ring_behaves_like_a_queue_of_records(
        ops in proptest::collection::vec(prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..=120).prop_map(Op::Send),
            2 => Just(Op::Recv),
        ], 1..200),
        cap in 1usize..5,
    ) {
        let cap = cap * 64;
        let name = unique("bytes-model");
        let ch = ChannelOptions::new().byte_ring(cap).spin(0).create(&name).unwrap();
        let _g = Guard::PosixShm(name.clone());
        prop_assert_eq!(ch.flavor(), Flavor::Bytes);
        let (mut tx, mut rx) = (ch.byte_sender().unwrap(), ch.byte_receiver().unwrap());
        let mut model = RingModel { cap: cap as u64, tail: 0, head: 0, sizes: VecDeque::new() };
        for op in ops {
            match op {
                Op::Send(m) if m.len() > tx.max_record() => {
                    let err = tx.try_send(&m).unwrap_err();
                    prop_assert!(matches!(err, Error::TooLarge { .. }), "{}", err);
                }
                Op::Send(m) => {
                    let sent = tx.try_send(&m).unwrap();
                    prop_assert_eq!(sent, model.push(&m));
                }
                Op::Recv => {
                    let got = rx.try_recv().unwrap().map(|r| r.to_vec());
                    prop_assert_eq!(got, model.pop());
                }
            }
        }
        while let Some(want) = model.pop() {
            let got = rx.try_recv().unwrap().map(|r| r.to_vec());
            prop_assert_eq!(got, Some(want));
        }
        prop_assert!(rx.try_recv().unwrap().is_none());
    }
}

#[test]
fn a_record_that_needs_the_whole_ring_after_padding_gets_through() {
    let name = unique("bytes-wrap");
    let ch = ChannelOptions::new()
        .byte_ring(64)
        .spin(0)
        .create(&name)
        .unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.byte_sender().unwrap(), ch.byte_receiver().unwrap());
    tx.send(&[1; 24]).unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), vec![1; 24]);
    // The ring is empty with its offset at 32: the largest record (56
    // bytes, 64 with its header) fits only at offset 0, once the padding
    // over 32..64 is published and passed. Padding and record together
    // are more than the ring, so waiting for both at once never ends.
    let receiver = std::thread::spawn(move || rx.recv().unwrap().to_vec());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut loan = tx
        .loan_deadline(56, deadline)
        .unwrap()
        .expect("room for the largest record within 10 s");
    loan.write_at(0, &[2; 56]).unwrap();
    loan.commit();
    assert_eq!(receiver.join().unwrap(), vec![2; 56]);
}

#[test]
fn a_record_stream_between_processes_arrives_whole_and_in_order() {
    const COUNT: u64 = 20_000;
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut tx = ch.byte_sender().unwrap();
        for i in 0..COUNT {
            let m = message(i, 300);
            let mut loan = tx.loan(m.len()).unwrap();
            loan.write_at(0, &m).unwrap();
            loan.commit();
        }
        return;
    }
    let name = unique("bytes-stream");
    let ch = ChannelOptions::new().byte_ring(1024).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.byte_receiver().unwrap();
    let peer = spawn_peer(
        "a_record_stream_between_processes_arrives_whole_and_in_order",
        "sender",
        &[("NAME", name)],
    );
    for i in 0..COUNT {
        let rec = rx.recv().unwrap();
        assert_eq!(rec.to_vec(), message(i, 300), "record {i}");
        rec.release();
    }
    join(peer);
    let err = rx.recv().unwrap_err();
    assert!(
        matches!(err, Error::PeerGone { peer: "sender", .. }),
        "{err}"
    );
}

#[test]
fn a_producer_killed_mid_record_is_reported_and_its_record_never_seen() {
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut tx = ch.byte_sender().unwrap();
        tx.send(b"whole record").unwrap();
        let mut loan = tx.loan(100).unwrap();
        loan.write_at(0, b"half").unwrap();
        say("loaned");
        std::thread::sleep(Duration::from_secs(60));
        loan.commit();
        return;
    }
    let name = unique("bytes-kill-tx");
    let ch = ChannelOptions::new().byte_ring(256).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut rx = ch.byte_receiver().unwrap();
    let (mut child, mut out) = spawn_talking(
        "a_producer_killed_mid_record_is_reported_and_its_record_never_seen",
        "sender",
        &[("NAME", name)],
    );
    wait_for(&mut out, "loaned");
    kill(&mut child);
    assert_eq!(rx.recv().unwrap().to_vec(), b"whole record");
    let start = Instant::now();
    let err = rx.recv().unwrap_err();
    assert_peer_gone_within_a_second(&err, "sender", start);
    let after = rx.try_recv().map(|r| r.map(|r| r.to_vec()));
    assert!(
        matches!(after, Ok(None) | Err(Error::PeerGone { .. })),
        "{after:?}: a partial record was delivered"
    );
}

#[test]
fn a_byte_ring_consumer_killed_holding_a_record_lets_the_producer_know_when_full() {
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut rx = ch.byte_receiver().unwrap();
        let held = rx.recv().unwrap();
        say("holding");
        std::thread::sleep(Duration::from_secs(60));
        held.release();
        return;
    }
    let name = unique("bytes-kill-rx");
    // Room for two records of 100 bytes (108 each with their headers).
    let ch = ChannelOptions::new().byte_ring(256).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.byte_sender().unwrap();
    tx.send(&[1; 100]).unwrap();
    let (mut child, mut out) = spawn_talking(
        "a_byte_ring_consumer_killed_holding_a_record_lets_the_producer_know_when_full",
        "receiver",
        &[("NAME", name)],
    );
    wait_for(&mut out, "holding");
    tx.send(&[2; 100]).unwrap();
    kill(&mut child);
    let start = Instant::now();
    let err = tx.send(&[3; 100]).unwrap_err();
    assert_peer_gone_within_a_second(&err, "receiver", start);
    // The dead receiver never released the first record: the next
    // receiver gets it, then the second.
    let mut rx = ch.byte_receiver().unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), [1; 100]);
    assert_eq!(rx.recv().unwrap().to_vec(), [2; 100]);
    assert!(rx.try_recv().unwrap().is_none());
}

#[test]
fn a_record_larger_than_the_ring_is_refused_and_the_flavours_do_not_mix() {
    let name = unique("bytes-misuse");
    let ch = ChannelOptions::new().byte_ring(100).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mut tx = ch.byte_sender().unwrap();
    assert_eq!(tx.max_record(), 128 - 8);
    let err = tx.loan(121).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                len: 121,
                max: 120,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&name), "{err}");
    let err = ch.sender().unwrap_err();
    assert!(err.to_string().contains("byte ring"), "{err}");
    assert!(matches!(ch.byte_sender(), Err(Error::Busy { .. })));
    // An uncommitted loan sends nothing; the largest record fits.
    {
        let mut loan = tx.loan(5).unwrap();
        loan.write_at(0, b"never").unwrap();
    }
    tx.send(&[7; 120]).unwrap();
    let other = Channel::open(&name).unwrap();
    let mut rx = other.byte_receiver().unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), vec![7; 120]);
    assert!(rx.try_recv().unwrap().is_none());
    let slots = ChannelOptions::new().memfd("slots").unwrap();
    assert!(slots.byte_receiver().is_err());
}

#[test]
fn a_byte_ring_with_garbage_indices_is_reported_not_trusted() {
    let name = unique("bytes-garbage");
    let ch = ChannelOptions::new().byte_ring(64).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.byte_sender().unwrap(), ch.byte_receiver().unwrap());
    let mut region = shm::open(&name).unwrap();
    // A tail far past the head: the receiver finds no record header there.
    region.write_at(TAIL, &5000u64.to_ne_bytes()).unwrap();
    let err = rx.try_recv().unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    // A head past the tail: reported, not taken for a full ring.
    region.write_at(TAIL, &0u64.to_ne_bytes()).unwrap();
    region.write_at(HEAD, &10_000u64.to_ne_bytes()).unwrap();
    let err = tx.try_send(b"x").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

/// A byte ring of 64 bytes with `head` and `tail` as another process
/// wrote them, and both of its endpoints.
fn byte_ring_with_indices(
    tag: &str,
    head: u64,
    tail: u64,
) -> (String, Guard, ByteSender, ByteReceiver) {
    let name = unique(tag);
    let ch = ChannelOptions::new().byte_ring(64).create(&name).unwrap();
    let guard = Guard::PosixShm(name.clone());
    let (tx, rx) = (ch.byte_sender().unwrap(), ch.byte_receiver().unwrap());
    let mut region = shm::open(&name).unwrap();
    region.write_at(HEAD, &head.to_ne_bytes()).unwrap();
    region.write_at(TAIL, &tail.to_ne_bytes()).unwrap();
    (name, guard, tx, rx)
}

/// Asserts that `got` is [`Error::Corrupt`] naming the channel `name`.
fn assert_corrupt<T: std::fmt::Debug>(got: Result<T, Error>, name: &str) {
    match got {
        Err(e @ Error::Corrupt { .. }) => assert!(e.to_string().contains(name), "{e}"),
        other => panic!("not reported as corrupt: {other:?}"),
    }
}

#[test]
fn byte_ring_indices_that_are_not_multiples_of_8_are_reported_not_used() {
    // A header is an 8-byte atomic word at the ring offset of an index:
    // at offset 4 it would be misaligned. Empty, then holding 8 bytes.
    for (head, tail) in [(4, 4), (4, 12), (0, 12)] {
        let (name, _g, mut tx, mut rx) = byte_ring_with_indices("bytes-misaligned", head, tail);
        assert_corrupt(tx.try_send(b"x"), &name);
        assert_corrupt(rx.try_recv().map(|r| r.map(|r| r.to_vec())), &name);
    }
}

#[test]
fn byte_ring_indices_near_the_end_of_u64_are_reported_not_overflowed() {
    // Positions within a ring's length of u64::MAX: the next record (at
    // ring offset 56, after padding) would carry `tail` past it. No sender
    // ever gets there: it would have sent 2^64 bytes.
    for at in [u64::MAX - 7, u64::MAX - 63] {
        let (name, _g, mut tx, mut rx) = byte_ring_with_indices("bytes-near-max", at, at);
        assert_corrupt(tx.try_send(b"x"), &name);
        assert_corrupt(rx.try_recv().map(|r| r.map(|r| r.to_vec())), &name);
    }
    // A full ring whose last record ends there.
    let (name, _g, mut tx, mut rx) =
        byte_ring_with_indices("bytes-near-max", u64::MAX - 71, u64::MAX - 7);
    assert_corrupt(tx.try_send(b"x"), &name);
    assert_corrupt(rx.try_recv().map(|r| r.map(|r| r.to_vec())), &name);
}

#[test]
fn byte_ring_indices_no_endpoint_writes_are_reported_not_waited_on() {
    // A head past the tail, and a tail more than the ring past the head:
    // the room or the record waited for would never come, with both
    // endpoints alive.
    for (head, tail) in [(10_000, 0), (0, 1_000)] {
        let (name, _g, mut tx, mut rx) = byte_ring_with_indices("bytes-moved", head, tail);
        let start = Instant::now();
        let loan = tx
            .loan_deadline(1, start + Duration::from_secs(2))
            .map(|l| l.is_some());
        assert_corrupt(loan, &name);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_corrupt(tx.loan(1).map(|l| l.len()), &name);
        let start = Instant::now();
        let got = rx
            .recv_deadline(start + Duration::from_secs(2))
            .map(|r| r.map(|r| r.to_vec()));
        assert_corrupt(got, &name);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_corrupt(rx.recv().map(|r| r.to_vec()), &name);
    }
}

#[test]
fn byte_ring_indices_moved_while_an_endpoint_waits_end_the_wait() {
    let name = unique("bytes-moved-waiting");
    let ch = ChannelOptions::new().byte_ring(64).create(&name).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (mut tx, mut rx) = (ch.byte_sender().unwrap(), ch.byte_receiver().unwrap());
    let mut region = shm::open(&name).unwrap();
    // The receiver waits on an empty ring, the sender on a full one; both
    // would wait out their deadlines (for ever, without one).
    let receiver = std::thread::spawn(move || {
        let start = Instant::now();
        let got = rx
            .recv_deadline(start + Duration::from_secs(5))
            .map(|r| r.map(|r| r.to_vec()));
        (got, start.elapsed(), rx)
    });
    std::thread::sleep(Duration::from_millis(100));
    region.write_at(HEAD, &10_000u64.to_ne_bytes()).unwrap();
    let (got, took, _rx) = receiver.join().unwrap();
    assert_corrupt(got, &name);
    assert!(took < Duration::from_secs(1), "{took:?}");
    region.write_at(HEAD, &0u64.to_ne_bytes()).unwrap();
    region.write_at(TAIL, &0u64.to_ne_bytes()).unwrap();
    tx.send(&[1; 56]).unwrap();
    let sender = std::thread::spawn(move || {
        let start = Instant::now();
        let loan = tx
            .loan_deadline(1, start + Duration::from_secs(5))
            .map(|l| l.is_some());
        (loan, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    region.write_at(HEAD, &4u64.to_ne_bytes()).unwrap();
    let (loan, took) = sender.join().unwrap();
    assert_corrupt(loan, &name);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// One step of a sender's script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `send`: waits for room.
    Send(Vec<u8>),
    /// `try_send` until it succeeds.
    TrySend(Vec<u8>),
    /// A loan written and dropped without a commit: never delivered.
    Abandon(usize),
}

/// A small deterministic generator, so that both processes derive the
/// same script from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The sender's script for `seed`: 60 steps, messages of 0–24 bytes.
fn script(seed: u64) -> Vec<Step> {
    let mut rng = Rng(seed | 1);
    (0..60)
        .map(|i| {
            let len = usize::try_from(rng.below(25)).unwrap();
            let msg: Vec<u8> = (0..len).map(|j| (i * 7 + j).to_le_bytes()[0]).collect();
            match rng.below(4) {
                0 => Step::TrySend(msg),
                1 => Step::Abandon(len),
                _ => Step::Send(msg),
            }
        })
        .collect()
}

#[test]
fn the_ring_matches_a_queue_model_across_processes() {
    if role().is_some() {
        let ch = Channel::open(&arg("NAME")).unwrap();
        let mut tx = ch.sender().unwrap();
        for step in script(arg("SEED").parse().unwrap()) {
            match step {
                Step::Send(m) => tx.send(&m).unwrap(),
                // Once, then waiting: a bare retry loop would spin for
                // ever if the receiver died.
                Step::TrySend(m) => {
                    if !tx.try_send(&m).unwrap() {
                        tx.send(&m).unwrap();
                    }
                }
                Step::Abandon(len) => {
                    let mut loan = tx.loan(len).unwrap();
                    loan.write_at(0, &vec![0xee; len]).unwrap();
                }
            }
        }
        return;
    }
    proptest!(ProptestConfig::with_cases(12), |(seed in any::<u64>(), slots in 1usize..5, mpmc in any::<bool>())| {
        let name = unique("model-xp");
        let flavor = if mpmc { Flavor::Mpmc } else { Flavor::Spsc };
        let ch = ChannelOptions::new().flavor(flavor).slots(slots).slot_size(24).create(&name).unwrap();
        let _g = Guard::PosixShm(name.clone());
        let mut rx = ch.receiver().unwrap();
        let peer = spawn_peer(
            "the_ring_matches_a_queue_model_across_processes",
            "sender",
            &[("NAME", name), ("SEED", seed.to_string())],
        );
        // The model: the committed messages, in order.
        let mut model: VecDeque<Vec<u8>> = script(seed)
            .into_iter()
            .filter_map(|s| match s {
                Step::Send(m) | Step::TrySend(m) => Some(m),
                Step::Abandon(_) => None,
            })
            .collect();
        let mut rng = Rng(seed.rotate_left(17) | 1);
        while let Some(want) = model.front() {
            let got = match rng.below(3) {
                0 => rx.try_recv().unwrap().map(|m| m.to_vec()),
                1 => rx
                    .recv_deadline(Instant::now() + Duration::from_millis(2))
                    .unwrap()
                    .map(|m| m.to_vec()),
                _ => Some(rx.recv().unwrap().to_vec()),
            };
            if let Some(got) = got {
                assert_eq!(&got, want, "seed {seed}");
                model.pop_front();
            }
        }
        join(peer);
        // Nothing more: no abandoned loan, no duplicate, and the sender is
        // gone.
        let gone = matches!(rx.recv(), Err(Error::PeerGone { peer: "sender", .. }));
        assert!(gone, "seed {seed}: the ring must be empty and the sender gone");
    });
}
