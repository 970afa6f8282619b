//! The reader for `sysv_shm_write`: finds the segment by the same `ftok`
//! key, prints the string in it, detaches and removes the segment (the
//! step the seed leaves to `ipcrm`).
//!
//! ```sh
//! cargo run -p memio-ipc --example sysv_shm_read
//! ```

use memio_ipc::shm::sysv::SysvShm;
use memio_ipc::{Create, Key};
use memio_map::Access;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = Key::ftok(env!("CARGO_MANIFEST_DIR"), 65)?;
    let seg = SysvShm::get(key, 0, Create::Open)?;
    let region = seg.attach(Access::ReadOnly)?;
    let mut buf = vec![0u8; region.len()];
    region.read_at(0, &mut buf)?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    println!(
        "Data read from memory: {}",
        String::from_utf8_lossy(&buf[..end]).trim_end()
    );
    let st = seg.stat()?;
    println!(
        "segment {}: {} bytes, mode {:o}, {} attached",
        seg.id(),
        st.size,
        st.mode,
        st.attaches
    );
    drop(region);
    seg.remove()?;
    Ok(())
}
