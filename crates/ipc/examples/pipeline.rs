//! Practice exercise 4 of seed 004: a multi-process application that uses
//! several IPC mechanisms to communicate and synchronise. Three processes:
//!
//! - the controller (this program) tells the producer what to do through a
//!   **pipe** (the producer's stdin), and counts finished jobs on a named
//!   **semaphore**;
//! - the producer writes each job's payload into a slot of the zero-copy
//!   shared-memory **channel** and announces the job on a POSIX **message
//!   queue**;
//! - the worker takes a job from the queue, its payload from the channel,
//!   checks it, and posts the semaphore.
//!
//! ```sh
//! cargo run -p memio-ipc --example pipeline
//! ```

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memio_ipc::Create;
use memio_ipc::channel::{Channel, ChannelOptions};
use memio_ipc::mq::posix::{MqOptions, PosixMq};
use memio_ipc::sem::posix::NamedSem;

const JOBS: u32 = 20;
const PAYLOAD: usize = 16 * 1024;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The payload of job `i`: its bytes follow from `i`.
fn payload(i: u32) -> Vec<u8> {
    (0..PAYLOAD)
        .map(|j| (i as usize * 31 + j).to_le_bytes()[0])
        .collect()
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

/// The producer: commands on stdin, payloads on the channel, job
/// descriptions on the queue.
fn producer(base: &str) -> Res {
    let mut data = Channel::open(&format!("{base}-data"))?.sender()?;
    let jobs = MqOptions::new()
        .write_only()
        .open(&format!("{base}-jobs"), Create::Open)?;
    let mut next = 0u32;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["make", n] => {
                for _ in 0..n.parse::<u32>()? {
                    let bytes = payload(next);
                    let mut loan = data.loan(bytes.len())?;
                    loan.write_at(0, &bytes)?;
                    loan.commit();
                    let job = format!("job {next} {} {}", bytes.len(), checksum(&bytes));
                    jobs.send(job.as_bytes(), 0)?;
                    next += 1;
                }
            }
            ["quit"] => break,
            other => eprintln!("  producer: unknown command {other:?}"),
        }
    }
    jobs.send(b"stop", 0)?;
    println!("  producer: made {next} jobs");
    Ok(())
}

/// The worker: a job from the queue, its payload from the channel, a post
/// on the semaphore.
fn worker(base: &str) -> Res {
    let mut data = Channel::open(&format!("{base}-data"))?.receiver()?;
    let jobs = MqOptions::new()
        .read_only()
        .open(&format!("{base}-jobs"), Create::Open)?;
    let done = NamedSem::open(&format!("{base}-done"))?;
    let mut handled = 0;
    loop {
        let (job, _) = jobs.recv_vec()?;
        let job = String::from_utf8(job)?;
        let words: Vec<&str> = job.split_whitespace().collect();
        let ["job", id, len, sum] = words.as_slice() else {
            break;
        };
        let msg = data.recv()?;
        let bytes = msg.to_vec();
        msg.release();
        if bytes.len() != len.parse::<usize>()? || checksum(&bytes) != sum.parse::<u64>()? {
            return Err(format!("job {id}: payload does not match its description").into());
        }
        handled += 1;
        done.post()?;
    }
    println!("  worker: checked {handled} payloads");
    Ok(())
}

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("producer"), Some(base)) => return producer(base),
        (Some("worker"), Some(base)) => return worker(base),
        _ => {}
    }
    let base = format!("/memio-pipeline-{}", std::process::id());
    let (data, jobs, done) = (
        format!("{base}-data"),
        format!("{base}-jobs"),
        format!("{base}-done"),
    );
    let _channel = ChannelOptions::new()
        .slots(4)
        .slot_size(PAYLOAD)
        .create(&data)?;
    let _queue = MqOptions::new()
        .capacity(8)
        .msg_size(128)
        .open(&jobs, Create::Exclusive)?;
    let finished = NamedSem::create(&done, 0)?;
    let result = run(&base, &finished);
    Channel::unlink(&data)?;
    PosixMq::unlink(&jobs)?;
    NamedSem::unlink(&done)?;
    result
}

fn run(base: &str, finished: &NamedSem) -> Res {
    let exe = std::env::current_exe()?;
    let mut worker = Command::new(&exe).args(["worker", base]).spawn()?;
    let mut producer = Command::new(&exe)
        .args(["producer", base])
        .stdin(Stdio::piped())
        .spawn()?;
    let mut control = producer.stdin.take().ok_or("no pipe to the producer")?;
    writeln!(control, "make {JOBS}")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 1..=JOBS {
        if !finished.wait_deadline(deadline)? {
            return Err(format!("only {} of {JOBS} jobs finished", n - 1).into());
        }
    }
    println!("controller: {JOBS} jobs counted on the semaphore");
    writeln!(control, "quit")?;
    drop(control);
    for (who, child) in [("producer", &mut producer), ("worker", &mut worker)] {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("the {who} failed: {status}").into());
        }
    }
    Ok(())
}
