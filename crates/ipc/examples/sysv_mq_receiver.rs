//! System V message queue receiver: takes the lowest type first
//! (`msgtyp` = -3: "the lowest type up to 3"), so the urgent message comes
//! out first whatever the order it was sent in; removes the queue when it
//! is empty.
//!
//! ```sh
//! cargo run -p memio-ipc --example sysv_mq_receiver
//! ```

use memio_ipc::mq::sysv::{MsgType, SysvMq};
use memio_ipc::{Create, Key};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = Key::ftok(env!("CARGO_MANIFEST_DIR"), b'q')?;
    let q = SysvMq::get(key, Create::Open)?;
    while let Some((msg, mtype)) = q.try_recv_vec(MsgType::AtMost(3))? {
        println!("received type {mtype}: {}", String::from_utf8_lossy(&msg));
    }
    q.remove()?;
    println!("queue removed");
    Ok(())
}
