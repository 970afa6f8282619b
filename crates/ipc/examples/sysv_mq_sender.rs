//! System V message queue sender (seed 004, "System V IPC: message
//! queues"): finds the queue by an `ftok` key and sends messages of
//! several types. Run `sysv_mq_receiver` afterwards.
//!
//! ```sh
//! cargo run -p memio-ipc --example sysv_mq_sender
//! cargo run -p memio-ipc --example sysv_mq_receiver
//! ```

use memio_ipc::mq::sysv::SysvMq;
use memio_ipc::{Create, Key};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = Key::ftok(env!("CARGO_MANIFEST_DIR"), b'q')?;
    let q = SysvMq::get(key, Create::OpenOrCreate)?; // mode 0600
    for (mtype, text) in [
        (3, "low-priority report"),
        (1, "urgent alert"),
        (2, "status update"),
    ] {
        q.send(mtype, text.as_bytes())?;
        println!("sent type {mtype}: {text}");
    }
    let st = q.stat()?;
    println!(
        "queue {} (key {key}): {} messages, {} bytes",
        q.id(),
        st.messages,
        st.bytes
    );
    Ok(())
}
