//! Request/response over POSIX message queues: many clients at once, each
//! reply matched to its request; clients that stop reading, vanish or are
//! killed do not stall the server. This binary re-runs itself as the
//! client process that gets killed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{arg, role, spawn_peer, unique};
use memio_ipc::Error;
use memio_ipc::rpc::{Client, Served, Server};

const LONG: Duration = Duration::from_secs(10);

/// Echoes the request after a tag; fails requests that start with `!`.
fn handler(req: &[u8]) -> Result<Vec<u8>, String> {
    if req == b"huge" {
        return Ok(vec![0; 9000]);
    }
    if req.first() == Some(&b'!') {
        return Err("refused".into());
    }
    let mut out = b"re:".to_vec();
    out.extend_from_slice(req);
    Ok(out)
}

/// The tests take turns: every queue counts against the user's
/// `RLIMIT_MSGQUEUE`, which the tests together would exceed.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets the flag when dropped, so a failing test still stops its server.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `body` while a server answers on a thread; returns what the body
/// returned and how many requests the server answered.
fn with_server<T>(name: &str, body: impl FnOnce() -> T) -> (T, u64) {
    let mut server = Server::create(name).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let serving = s.spawn(|| server.serve(&stop, &mut handler).unwrap());
        let out = {
            let _stop = StopOnDrop(&stop);
            body()
        };
        (out, serving.join().unwrap())
    })
}

#[test]
fn many_clients_at_once_each_get_their_own_replies() {
    let _turn = turn();
    let name = unique("rpc");
    let ((), answered) = with_server(&name, || {
        std::thread::scope(|s| {
            for c in 0..8 {
                let name = &name;
                s.spawn(move || {
                    let mut client = Client::connect(name).unwrap();
                    for i in 0..40 {
                        let req = format!("client {c} call {i}");
                        let reply = client.call(req.as_bytes(), LONG).unwrap();
                        assert_eq!(reply, format!("re:{req}").into_bytes());
                    }
                });
            }
        });
    });
    assert_eq!(answered, 8 * 40);
}

#[test]
fn handler_errors_reach_the_caller_and_limits_are_checked() {
    let _turn = turn();
    let name = unique("rpc-err");
    with_server(&name, || {
        let mut client = Client::connect(&name).unwrap();
        let err = client.call(b"!no", LONG).unwrap_err();
        assert!(matches!(err, Error::Remote { .. }), "{err}");
        assert_eq!(err.to_string(), format!("service '{name}': refused"));
        let big = vec![0u8; client.max_request() + 1];
        assert!(matches!(
            client.call(&big, LONG),
            Err(Error::TooLarge { .. })
        ));
        let most = vec![b'x'; client.max_request()];
        assert_eq!(
            client.call(&most, LONG).map(|r| r.len()).ok(),
            Some(most.len() + 3)
        );
        // A reply too large for a message becomes an error, not silence.
        let err = client.call(b"huge", LONG).map(|r| r.len()).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    });
}

#[test]
fn a_missing_service_and_a_silent_one_are_reported() {
    let _turn = turn();
    let name = unique("rpc-none");
    let err = Client::connect(&name).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("service '{name}': no such service (is the server running?)")
    );
    let _server = Server::create(&name).unwrap();
    let mut client = Client::connect(&name).unwrap();
    let start = Instant::now();
    let err = client
        .call(b"hello", Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, Error::TimedOut { .. }), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn a_client_that_stops_reading_or_vanishes_does_not_stall_the_server() {
    let _turn = turn();
    let name = unique("rpc-gone");
    let mut server = Server::create(&name).unwrap();
    // A client that sends and never reads: its reply queue fills.
    let deaf = Client::connect(&name).unwrap();
    let mut deaf = deaf;
    for _ in 0..9 {
        let _ = deaf.call(b"x", Duration::from_millis(1));
    }
    // A client that sends and is gone (its reply queue removed).
    let mut gone = Client::connect(&name).unwrap();
    let _ = gone.call(b"y", Duration::from_millis(1));
    drop(gone);
    let mut outcomes = Vec::new();
    let soon = || Some(Instant::now() + Duration::from_millis(200));
    // Drain: every turn returns at once, whatever the clients did.
    loop {
        let start = Instant::now();
        let outcome = server.serve_one(soon(), &mut handler).unwrap();
        assert!(start.elapsed() < Duration::from_millis(150) || outcome == Served::Idle);
        if outcome == Served::Idle {
            break;
        }
        outcomes.push(outcome);
    }
    assert_eq!(outcomes.len(), 10, "{outcomes:?}");
    // The deaf client's queue holds 4 replies; the rest and the vanished
    // client's reply were dropped.
    let dropped = outcomes
        .iter()
        .filter(|o| matches!(o, Served::Dropped(_)))
        .count();
    assert!(dropped >= 6, "{outcomes:?}");
    // A live client is still served at once.
    let mut live = Client::connect(&name).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| server.serve_one(soon(), &mut handler).unwrap());
        assert_eq!(live.call(b"z", LONG).unwrap(), b"re:z");
    });
}

#[test]
fn a_killed_client_does_not_stall_the_server() {
    let _turn = turn();
    if role().is_some() {
        let mut client = Client::connect(&arg("NAME")).unwrap();
        // Sends one request, then hangs until killed.
        let _ = client.call(b"from a doomed client", Duration::from_secs(60));
        return;
    }
    let name = unique("rpc-kill");
    let (doomed_pid, answered) = with_server(&name, || {
        let mut doomed = spawn_peer(
            "a_killed_client_does_not_stall_the_server",
            "client",
            &[("NAME", name.clone())],
        );
        let mut client = Client::connect(&name).unwrap();
        assert_eq!(client.call(b"before", LONG).unwrap(), b"re:before");
        std::thread::sleep(Duration::from_millis(100));
        doomed.kill().unwrap();
        doomed.wait().unwrap();
        for i in 0..20 {
            let req = format!("after {i}");
            assert_eq!(
                client.call(req.as_bytes(), LONG).unwrap(),
                format!("re:{req}").into_bytes()
            );
        }
        doomed.id()
    });
    assert!(answered >= 21);
    // The killed client's reply queue is left behind; remove it here.
    let _ = memio_ipc::mq::posix::PosixMq::unlink(&format!("{name}.r.{doomed_pid}-0"));
}
