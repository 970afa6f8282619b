//! `memio mq serve` and `memio mq call` over the built binary: the
//! client/server exercise from a shell, with the exit codes of each
//! outcome.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn memio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Calls until the server answers (it may still be starting).
fn call_when_up(name: &str, request: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut args = vec!["mq", "call", name];
        args.extend_from_slice(request);
        let out = memio(&args);
        if !stderr(&out).contains("no such service") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_key_value_service_answers_calls_from_other_processes() {
    let name = format!("/memio-cli-rpc-{}", std::process::id());
    let mut server = Command::new(env!("CARGO_BIN_EXE_memio"))
        .args(["-q", "mq", "serve", &name, "--idle", "20s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = call_when_up(&name, &["set", "colour", "deep", "blue"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "ok\n"),
        "{}",
        stderr(&out)
    );
    let out = memio(&["mq", "call", &name, "get", "colour"]);
    assert_eq!(stdout(&out), "deep blue\n");
    let out = memio(&["mq", "call", &name, "get", "shape", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing key is a negative result"
    );
    assert_eq!(
        stderr(&out),
        format!("memio: service '{name}': no key 'shape'\n")
    );
    let out = memio(&["mq", "call", &name, "--json", "echo", "hi"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reply"], "hi");
    assert!(v["micros"].as_f64().unwrap() > 0.0);
    let out = memio(&["mq", "call", &name, "shutdown"]);
    assert_eq!(stdout(&out), "stopping\n");
    assert!(server.wait().unwrap().success());
    // The server removed its queue when it stopped.
    let out = memio(&["mq", "call", &name, "ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such service"), "{}", stderr(&out));
}

#[test]
fn bad_names_and_a_taken_name_are_errors() {
    let out = memio(&["mq", "serve", "no-slash"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("memio: "), "{}", stderr(&out));
    let out = memio(&["mq", "call", "/a/b", "ping"]);
    assert_eq!(out.status.code(), Some(2));
}
