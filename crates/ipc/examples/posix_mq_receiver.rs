//! POSIX message queue receiver: opens (or creates) `/memio-jobs`, prints
//! messages highest priority first until it receives "quit" or nothing
//! arrives for 10 seconds, then removes the queue.
//!
//! ```sh
//! cargo run -p memio-ipc --example posix_mq_receiver
//! ```

use std::time::{Duration, Instant};

use memio_ipc::Create;
use memio_ipc::mq::posix::{MqOptions, PosixMq};

const QUEUE: &str = "/memio-jobs";

fn main() -> Result<(), memio_ipc::Error> {
    let q = MqOptions::new()
        .capacity(10)
        .msg_size(256)
        .read_only()
        .open(QUEUE, Create::OpenOrCreate)?;
    let mut buf = vec![0u8; q.msg_size()];
    loop {
        let Some((n, priority)) =
            q.recv_deadline(&mut buf, Instant::now() + Duration::from_secs(10))?
        else {
            println!("nothing for 10 s, giving up");
            break;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        println!("received {text:?} (priority {priority})");
        if text == "quit" {
            break;
        }
    }
    PosixMq::unlink(QUEUE)?;
    Ok(())
}
