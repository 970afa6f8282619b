//! Every primitive between two real processes: this test binary re-runs
//! itself as the peer.

mod common;

use std::time::{Duration, Instant};

use common::{Guard, arg, join, role, spawn_peer, unique};
use memio_ipc::Create;
use memio_ipc::mq::posix::{MqOptions, PosixMq};
use memio_ipc::mq::sysv::{MsgType, SysvMq};
use memio_ipc::sem::posix::{NamedSem, SemRegion};
use memio_ipc::sem::sysv::{SemOp, SemSet};
use memio_ipc::shm::memfd::{Memfd, MemfdOptions, Seals};
use memio_ipc::shm::posix as shm;
use memio_ipc::shm::sysv::SysvShm;
use memio_map::Access;

#[test]
fn posix_queue_carries_messages_between_processes_highest_priority_first() {
    if role().is_some() {
        let q = MqOptions::new()
            .write_only()
            .open(&arg("NAME"), Create::Open)
            .unwrap();
        for (msg, prio) in [(&b"low"[..], 1), (b"high", 7), (b"mid", 4)] {
            q.send(msg, prio).unwrap();
        }
        return;
    }
    let name = unique("mq");
    let q = MqOptions::new()
        .capacity(4)
        .msg_size(64)
        .open(&name, Create::Exclusive)
        .unwrap();
    let _g = Guard::PosixMq(name.clone());
    join(spawn_peer(
        "posix_queue_carries_messages_between_processes_highest_priority_first",
        "sender",
        &[("NAME", name)],
    ));
    let got: Vec<(Vec<u8>, u32)> = (0..3).map(|_| q.recv_vec().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            (b"high".to_vec(), 7),
            (b"mid".to_vec(), 4),
            (b"low".to_vec(), 1)
        ]
    );
    assert_eq!(q.attr().unwrap().current, 0);
}

#[test]
fn sysv_queue_selects_by_type_between_processes() {
    if role().is_some() {
        let q = SysvMq::from_id(arg("ID").parse().unwrap());
        for (t, m) in [(3, &b"three"[..]), (1, b"one"), (2, b"two"), (5, b"five")] {
            q.send(t, m).unwrap();
        }
        return;
    }
    let q = SysvMq::private().unwrap();
    let _g = Guard::SysvMq(q);
    join(spawn_peer(
        "sysv_queue_selects_by_type_between_processes",
        "sender",
        &[("ID", q.id().to_string())],
    ));
    assert_eq!(q.stat().unwrap().messages, 4);
    assert_eq!(q.recv_vec(MsgType::Exact(2)).unwrap(), (b"two".to_vec(), 2));
    // Lowest type <= 4: type 1 although type 3 is older.
    assert_eq!(
        q.recv_vec(MsgType::AtMost(4)).unwrap(),
        (b"one".to_vec(), 1)
    );
    assert_eq!(q.recv_vec(MsgType::Any).unwrap(), (b"three".to_vec(), 3));
    assert_eq!(q.try_recv_vec(MsgType::AtMost(4)).unwrap(), None);
    assert_eq!(
        q.try_recv_vec(MsgType::Exact(5)).unwrap(),
        Some((b"five".to_vec(), 5))
    );
    let st = q.stat().unwrap();
    assert_eq!((st.messages, st.mode), (0, 0o600));
}

#[test]
fn posix_shared_memory_written_by_child_is_read_by_parent() {
    if role().is_some() {
        let mut region = shm::open(&arg("NAME")).unwrap();
        region.write_at(0, b"Hello from child!\0").unwrap();
        return;
    }
    let name = unique("shm");
    let region = shm::create(&name, 1024).unwrap();
    let _g = Guard::PosixShm(name.clone());
    join(spawn_peer(
        "posix_shared_memory_written_by_child_is_read_by_parent",
        "writer",
        &[("NAME", name)],
    ));
    let mut buf = [0u8; 18];
    region.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"Hello from child!\0");
}

#[test]
fn sysv_shared_memory_is_one_segment_for_two_processes() {
    if role().is_some() {
        let seg = SysvShm::from_id(arg("ID").parse().unwrap());
        let mut region = seg.attach(Access::ReadWrite).unwrap();
        region.write_at(100, b"segment").unwrap();
        return;
    }
    let seg = SysvShm::private(4096).unwrap();
    let _g = Guard::SysvShm(seg);
    let region = seg.attach(Access::ReadWrite).unwrap();
    assert_eq!(seg.stat().unwrap().attaches, 1);
    join(spawn_peer(
        "sysv_shared_memory_is_one_segment_for_two_processes",
        "writer",
        &[("ID", seg.id().to_string())],
    ));
    let mut buf = [0u8; 7];
    region.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"segment");
    let st = seg.stat().unwrap();
    assert_eq!((st.size, st.mode, st.attaches), (4096, 0o600, 1));
    drop(region);
    assert_eq!(seg.stat().unwrap().attaches, 0);
}

#[test]
fn memfd_is_shared_with_a_child_through_stdin() {
    if role().is_some() {
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
        let memfd = Memfd::from_fd(fd).unwrap();
        let mut region = memfd.map().unwrap();
        region.write_at(0, b"via memfd").unwrap();
        return;
    }
    let memfd = MemfdOptions::new()
        .size(4096)
        .sealable(true)
        .create("memio-test")
        .unwrap();
    memfd
        .seal(Seals::SHRINK | Seals::GROW | Seals::SEAL)
        .unwrap();
    assert!(memfd.seals().unwrap().contains(Seals::GROW));
    let region = memfd.map().unwrap();
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new(exe)
        .args([
            "--exact",
            "memfd_is_shared_with_a_child_through_stdin",
            "--nocapture",
        ])
        .env("MEMIO_IPC_TEST_ROLE", "writer")
        .stdin(std::process::Stdio::from(memfd.as_fd_owned()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    join(child);
    let mut buf = [0u8; 9];
    region.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"via memfd");
}

trait OwnedClone {
    fn as_fd_owned(&self) -> std::os::fd::OwnedFd;
}

impl OwnedClone for Memfd {
    fn as_fd_owned(&self) -> std::os::fd::OwnedFd {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned().unwrap()
    }
}

#[test]
fn named_semaphore_hands_off_between_processes() {
    if role().is_some() {
        let turn = NamedSem::open(&arg("TURN")).unwrap();
        let done = NamedSem::open(&arg("DONE")).unwrap();
        turn.wait().unwrap();
        done.post().unwrap();
        return;
    }
    let (turn_name, done_name) = (unique("turn"), unique("done"));
    let turn = NamedSem::create(&turn_name, 0).unwrap();
    let _g1 = Guard::NamedSem(turn_name.clone());
    let done = NamedSem::create(&done_name, 0).unwrap();
    let _g2 = Guard::NamedSem(done_name.clone());
    let child = spawn_peer(
        "named_semaphore_hands_off_between_processes",
        "peer",
        &[("TURN", turn_name), ("DONE", done_name)],
    );
    assert!(
        !done.try_wait().unwrap(),
        "the peer cannot finish before its turn"
    );
    turn.post().unwrap();
    done.wait().unwrap();
    join(child);
    assert_eq!((turn.value().unwrap(), done.value().unwrap()), (0, 0));
}

#[test]
fn unnamed_semaphores_in_shared_memory_ping_pong_between_processes() {
    if role().is_some() {
        let sems = SemRegion::open(&arg("NAME"), 2).unwrap();
        let counter = shm::open(&arg("COUNTER")).unwrap();
        let (request, reply) = (sems.get(0).unwrap(), sems.get(1).unwrap());
        for _ in 0..100 {
            request.wait().unwrap();
            let n = counter.atomic_u32(0).unwrap();
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            reply.post().unwrap();
        }
        return;
    }
    let (name, counter_name) = (unique("semshm"), unique("semshm-n"));
    let sems = SemRegion::create(&name, &[0, 0]).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let counter = shm::create(&counter_name, 4096).unwrap();
    let _gc = Guard::PosixShm(counter_name.clone());
    let (request, reply) = (sems.get(0).unwrap(), sems.get(1).unwrap());
    let child = spawn_peer(
        "unnamed_semaphores_in_shared_memory_ping_pong_between_processes",
        "peer",
        &[("NAME", name), ("COUNTER", counter_name)],
    );
    for i in 1..=100 {
        request.post().unwrap();
        // A deadline, so a wake-up that never crosses processes fails the
        // test instead of hanging it.
        assert!(
            reply
                .wait_deadline(Instant::now() + Duration::from_secs(20))
                .unwrap(),
            "no reply from the peer"
        );
        assert_eq!(
            counter
                .atomic_u32(0)
                .unwrap()
                .load(std::sync::atomic::Ordering::SeqCst),
            i
        );
    }
    join(child);
}

/// Two processes wait on one semaphore in shared memory; one is killed
/// (SIGKILL) while it waits. The other is still woken by a post, and the
/// semaphore keeps counting for everyone else: a dead waiter takes no unit
/// with it and blocks no one.
#[test]
fn a_waiter_killed_on_a_shared_semaphore_leaves_it_working_for_the_rest() {
    if role().is_some() {
        let sems = SemRegion::open(&arg("NAME"), 2).unwrap();
        let (gate, ready) = (sems.get(0).unwrap(), sems.get(1).unwrap());
        ready.post().unwrap();
        gate.wait().unwrap();
        return;
    }
    let name = unique("semkill");
    let sems = SemRegion::create(&name, &[0, 0]).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let (gate, ready) = (sems.get(0).unwrap(), sems.get(1).unwrap());
    let test = "a_waiter_killed_on_a_shared_semaphore_leaves_it_working_for_the_rest";
    let mut victim = spawn_peer(test, "waiter", &[("NAME", name.clone())]);
    let survivor = spawn_peer(test, "waiter", &[("NAME", name)]);
    for _ in 0..2 {
        assert!(
            ready
                .wait_deadline(Instant::now() + Duration::from_secs(120))
                .unwrap(),
            "a waiter never started"
        );
    }
    // Both are about to block in sem_wait, or already do.
    std::thread::sleep(Duration::from_millis(100));
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    assert_eq!(gate.value().unwrap(), 0);
    gate.post().unwrap();
    join(survivor);
    assert_eq!(gate.value().unwrap(), 0, "the survivor took the unit");
    gate.post().unwrap();
    assert!(
        gate.wait_deadline(Instant::now() + Duration::from_secs(20))
            .unwrap(),
        "the semaphore still counts"
    );
}

#[test]
fn sysv_semaphore_held_with_undo_is_released_when_the_holder_is_killed() {
    if role().is_some() {
        let set = SemSet::from_id(arg("ID").parse().unwrap());
        set.op(&[SemOp::wait(0).undo()]).unwrap();
        // Hold it until killed.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let set = SemSet::private(1).unwrap();
    let _g = Guard::SemSet(set);
    set.set_value(0, 1).unwrap();
    let mut child = spawn_peer(
        "sysv_semaphore_held_with_undo_is_released_when_the_holder_is_killed",
        "holder",
        &[("ID", set.id().to_string())],
    );
    // Wait until the holder has it (the deadline only stops a broken peer
    // from hanging the run).
    assert!(
        set.op_deadline(
            &[SemOp::wait_zero(0)],
            Instant::now() + Duration::from_secs(120)
        )
        .unwrap(),
        "the holder never took the semaphore"
    );
    assert!(!set.try_op(&[SemOp::wait(0)]).unwrap(), "held by the child");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The kernel undid the dead holder's -1: we can take it now.
    set.op(&[SemOp::wait(0)]).unwrap();
    assert_eq!(set.get_value(0).unwrap(), 0);
}

#[test]
fn sysv_semop_changes_several_semaphores_atomically() {
    let set = SemSet::private(3).unwrap();
    let _g = Guard::SemSet(set);
    set.set_values(&[1, 0, 5]).unwrap();
    // Needs one of #1, which is 0: nothing may change.
    assert!(
        !set.try_op(&[SemOp::wait(0), SemOp::wait(1), SemOp::post(2)])
            .unwrap()
    );
    assert_eq!(set.values().unwrap(), vec![1, 0, 5]);
    set.op(&[
        SemOp::wait(0),
        SemOp::post(1),
        SemOp {
            index: 2,
            delta: -5,
            undo: false,
        },
    ])
    .unwrap();
    assert_eq!(set.values().unwrap(), vec![0, 1, 0]);
    assert_eq!(set.stat().unwrap().count, 3);
    assert!(
        set.set_values(&[1])
            .unwrap_err()
            .to_string()
            .contains("3 semaphores, 1 values")
    );
}

#[test]
fn posix_queue_full_and_empty_without_blocking() {
    let name = unique("full");
    let q = MqOptions::new()
        .capacity(2)
        .msg_size(16)
        .open(&name, Create::Exclusive)
        .unwrap();
    let _g = Guard::PosixMq(name.clone());
    let mut buf = [0u8; 16];
    assert_eq!(q.try_recv(&mut buf).unwrap(), None);
    assert!(q.try_send(b"a", 0).unwrap());
    assert!(q.try_send(b"b", 0).unwrap());
    assert!(!q.try_send(b"c", 0).unwrap(), "full");
    // A non-blocking handle reports the same through send/recv errors.
    let nb = MqOptions::new()
        .nonblocking(true)
        .open(&name, Create::Open)
        .unwrap();
    assert!(nb.attr().unwrap().nonblocking);
    let err = nb.send(b"c", 0).unwrap_err().to_string();
    assert!(err.contains(&format!("message queue '{name}'")), "{err}");
    assert_eq!(q.try_recv(&mut buf).unwrap(), Some((1, 0)));
    assert_eq!(q.attr().unwrap().current, 1);
}

#[test]
fn sysv_queue_full_and_empty_without_blocking() {
    let q = SysvMq::private().unwrap();
    let _g = Guard::SysvMq(q);
    assert_eq!(q.try_recv_vec(MsgType::Any).unwrap(), None);
    let max = q.stat().unwrap().max_bytes;
    let chunk = vec![7u8; 4096];
    let mut sent = 0u64;
    while q.try_send(1, &chunk).unwrap() {
        sent += 4096;
        assert!(sent <= max, "the queue took more than msg_qbytes");
    }
    assert_eq!(q.stat().unwrap().bytes, sent);
}

#[test]
fn deadlines_expire() {
    let name = unique("deadline");
    let q = MqOptions::new()
        .capacity(1)
        .msg_size(8)
        .open(&name, Create::Exclusive)
        .unwrap();
    let _g = Guard::PosixMq(name.clone());
    let soon = || Instant::now() + Duration::from_millis(20);
    let mut buf = [0u8; 8];
    assert_eq!(q.recv_deadline(&mut buf, soon()).unwrap(), None);
    assert!(q.send_deadline(b"x", 0, soon()).unwrap());
    assert!(!q.send_deadline(b"y", 0, soon()).unwrap());

    let sem_name = unique("sem-deadline");
    let sem = NamedSem::create(&sem_name, 0).unwrap();
    let _g2 = Guard::NamedSem(sem_name);
    assert!(!sem.wait_deadline(soon()).unwrap());
    sem.post().unwrap();
    assert!(sem.wait_deadline(soon()).unwrap());

    let set = SemSet::private(1).unwrap();
    let _g3 = Guard::SemSet(set);
    assert!(!set.op_deadline(&[SemOp::wait(0)], soon()).unwrap());
}

#[test]
fn invalid_names_and_oversize_messages_say_why() {
    let err = PosixMq::create("jobs").unwrap_err().to_string();
    assert_eq!(err, "invalid name 'jobs': must start with '/'");
    assert!(
        shm::create("/a/b", 10)
            .unwrap_err()
            .to_string()
            .contains("must not contain a '/'")
    );
    assert!(
        NamedSem::create("/", 0)
            .unwrap_err()
            .to_string()
            .contains("at least one character")
    );

    let name = unique("big");
    let q = MqOptions::new()
        .capacity(1)
        .msg_size(8)
        .open(&name, Create::Exclusive)
        .unwrap();
    let _g = Guard::PosixMq(name.clone());
    let err = q.send(&[0; 9], 0).unwrap_err();
    assert!(matches!(
        err,
        memio_ipc::Error::TooLarge { len: 9, max: 8, .. }
    ));
    assert_eq!(
        err.to_string(),
        format!("message of 9 bytes is larger than the 8-byte limit of message queue '{name}'")
    );
    assert!(matches!(
        q.recv(&mut [0; 4]).unwrap_err(),
        memio_ipc::Error::BufferTooSmall { .. }
    ));

    let sq = SysvMq::private().unwrap();
    let _g2 = Guard::SysvMq(sq);
    let msgmax: usize = std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let err = sq.send(1, &vec![0; msgmax + 1]).unwrap_err().to_string();
    assert!(err.contains("/proc/sys/kernel/msgmax"), "{err}");
    assert!(
        sq.send(0, b"x")
            .unwrap_err()
            .to_string()
            .contains("at least 1")
    );
    sq.send(1, b"ten bytes!").unwrap();
    let err = sq.recv(&mut [0; 4], MsgType::Any).unwrap_err();
    assert!(
        matches!(err, memio_ipc::Error::BufferTooSmall { len: 4, needed, .. } if needed == msgmax),
        "{err}"
    );
    assert_eq!(
        sq.stat().unwrap().messages,
        1,
        "a message too long for the buffer stays queued"
    );
}

#[test]
fn queue_attributes_beyond_the_system_limits_name_the_limit() {
    let msg_max: usize = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let size_max: usize = std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The largest queue an unprivileged process may make works.
    let name = unique("limit");
    let q = MqOptions::new()
        .capacity(msg_max.min(10))
        .msg_size(size_max.min(8192))
        .open(&name, Create::Exclusive);
    let _g = Guard::PosixMq(name.clone());
    q.unwrap();
    let has_cap_sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0);
    if has_cap_sys_resource {
        eprintln!(
            "skipped the over-limit half: this process has CAP_SYS_RESOURCE, the kernel allows more"
        );
        return;
    }
    let name = unique("limit");
    let _g = Guard::PosixMq(name.clone());
    let err = MqOptions::new()
        .capacity(msg_max + 1)
        .open(&name, Create::Exclusive)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot create message queue '{name}' with max messages {}: the system limit is {msg_max} (/proc/sys/fs/mqueue/msg_max)",
            msg_max + 1
        )
    );
    let err = MqOptions::new()
        .msg_size(size_max + 1)
        .open(&name, Create::Exclusive)
        .unwrap_err();
    assert!(err.to_string().contains(&format!(
        "the system limit is {size_max} (/proc/sys/fs/mqueue/msgsize_max)"
    )));
}

#[test]
fn objects_are_private_and_created_exclusively_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique("mode");
    let _r = shm::create(&name, 4096).unwrap();
    let _g = Guard::PosixShm(name.clone());
    let mode = std::fs::metadata(format!("/dev/shm{name}"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let err = shm::create(&name, 4096).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("failed to create shared memory '{name}': file exists")
    );
    // Open-or-create must be asked for.
    memio_ipc::shm::posix::ShmOptions::new()
        .size(4096)
        .open(&name, Create::OpenOrCreate)
        .unwrap();
    let err = shm::open(&unique("missing")).unwrap_err().to_string();
    assert!(err.contains("no such file or directory"), "{err}");
}

#[test]
fn posix_queue_fd_polls_readable_when_a_message_waits() {
    use rustix::event::{PollFd, PollFlags, poll};
    let name = unique("poll");
    let q = MqOptions::new()
        .capacity(1)
        .msg_size(8)
        .open(&name, Create::Exclusive)
        .unwrap();
    let _g = Guard::PosixMq(name.clone());
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut fds = [PollFd::new(&q, PollFlags::IN | PollFlags::OUT)];
    poll(&mut fds, Some(&zero)).unwrap();
    assert_eq!(
        fds[0].revents() & (PollFlags::IN | PollFlags::OUT),
        PollFlags::OUT,
        "empty: writable only"
    );
    q.send(b"x", 0).unwrap();
    let mut fds = [PollFd::new(&q, PollFlags::IN | PollFlags::OUT)];
    poll(&mut fds, Some(&zero)).unwrap();
    assert_eq!(
        fds[0].revents() & (PollFlags::IN | PollFlags::OUT),
        PollFlags::IN,
        "full: readable only"
    );
}
