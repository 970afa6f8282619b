//! POSIX message queue sender (seed 004, "POSIX message queues"): creates
//! `/memio-jobs` (or opens it if the receiver made it first) and sends a
//! few messages with different priorities. Run `posix_mq_receiver` in
//! another terminal, before or after.
//!
//! ```sh
//! cargo run -p memio-ipc --example posix_mq_sender
//! cargo run -p memio-ipc --example posix_mq_receiver
//! ```

use memio_ipc::Create;
use memio_ipc::mq::posix::MqOptions;

const QUEUE: &str = "/memio-jobs";

fn main() -> Result<(), memio_ipc::Error> {
    // Within the unprivileged limits: 10 messages of at most 8192 bytes.
    let q = MqOptions::new()
        .capacity(10)
        .msg_size(256)
        .write_only()
        .open(QUEUE, Create::OpenOrCreate)?;
    for (text, priority) in [
        ("routine job", 1),
        ("urgent job", 20),
        ("normal job", 5),
        ("quit", 0),
    ] {
        q.send(text.as_bytes(), priority)?;
        println!("sent {text:?} with priority {priority}");
    }
    Ok(())
}
