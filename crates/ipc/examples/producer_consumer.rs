//! Practice exercise 2 of seed 004: a producer and a consumer process
//! sharing a bounded buffer in POSIX shared memory, synchronised by three
//! semaphores that live in a second shared-memory object: "empty slots"
//! and "full slots" (counting) and a mutex (binary) around each slot access.
//! memio's `channel` does the same job without semaphores (compare the two
//! in `memio lab --only ipc`).
//!
//! ```sh
//! cargo run -p memio-ipc --example producer_consumer
//! ```

use std::process::Command;

use memio_ipc::sem::posix::SemRegion;
use memio_ipc::shm::posix as shm;

const SLOTS: usize = 8;
const SLOTS_U32: u32 = 8;
const SLOT: usize = 64;
/// The semaphores of the "-sems" object: "empty", "full" and the mutex.
const EMPTY: usize = 0;
const FULL: usize = 1;
const MUTEX: usize = 2;
const ITEMS: u32 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("consumer") {
        // One object holds the semaphores, the other the slots.
        let sems = SemRegion::open(&format!("{}-sems", args[2]), 3)?;
        let data = shm::open(&args[2])?;
        let (empty, full, mutex) = (
            sems.get(EMPTY).ok_or("no semaphore")?,
            sems.get(FULL).ok_or("no semaphore")?,
            sems.get(MUTEX).ok_or("no semaphore")?,
        );
        let mut sum = 0u64;
        for i in 0..usize::try_from(ITEMS)? {
            full.wait()?;
            mutex.wait()?;
            let mut item = [0u8; 4];
            data.read_at((i % SLOTS) * SLOT, &mut item)?;
            mutex.post()?;
            empty.post()?;
            let v = u32::from_le_bytes(item);
            println!("  consumer: got {v}");
            sum += u64::from(v);
        }
        println!("  consumer: sum {sum}");
        return Ok(());
    }
    let name = format!("/memio-prodcons-{}", std::process::id());
    let sems_name = format!("{name}-sems");
    // SLOTS free slots, no items yet, the mutex free.
    let sems = SemRegion::create(&sems_name, &[SLOTS_U32, 0, 1])?;
    let mut data = shm::create(&name, SLOTS * SLOT)?;
    let (empty, full, mutex) = (
        sems.get(EMPTY).ok_or("no semaphore")?,
        sems.get(FULL).ok_or("no semaphore")?,
        sems.get(MUTEX).ok_or("no semaphore")?,
    );
    let mut consumer = Command::new(std::env::current_exe()?)
        .args(["consumer", &name])
        .spawn()?;
    for i in 0..ITEMS {
        empty.wait()?; // a free slot
        mutex.wait()?; // the buffer is ours
        data.write_at((usize::try_from(i)? % SLOTS) * SLOT, &(i * i).to_le_bytes())?;
        mutex.post()?;
        full.post()?; // one more item
    }
    consumer.wait()?;
    println!(
        "producer: sent {ITEMS} squares, expected sum {}",
        (0..ITEMS).map(|i| u64::from(i * i)).sum::<u64>()
    );
    shm::unlink(&name)?;
    shm::unlink(&sems_name)?;
    Ok(())
}
