//! Seeds 001 and 003, "Memory Layout of a Process": where a function, a
//! constant, an initialised static, a zeroed static, a heap allocation, a
//! local variable and an anonymous mapping live, read back from
//! `/proc/self/smaps` with their kind, and the system facts that govern
//! allocation (page size, overcommit, `RLIMIT_MEMLOCK`).
//!
//! Run: `cargo run -p memio-map --example layout`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use memio_map::Region;
use memio_map::layout::Layout;
use memio_map::system::SystemFacts;

static GREETING: &str = "text segment: string literals and constants";
static INITIALISED: AtomicU64 = AtomicU64::new(42);
static ZEROED: AtomicU64 = AtomicU64::new(0);

fn main() -> std::io::Result<()> {
    INITIALISED.fetch_add(1, Ordering::Relaxed);
    ZEROED.fetch_add(1, Ordering::Relaxed);
    let heap = black_box(Box::new([0u8; 64]));
    let local = black_box(7u64);
    let mapping = Region::anonymous(1 << 20)?;

    let layout = Layout::current()?;
    let things: [(&str, usize); 7] = [
        ("fn main", main as fn() -> std::io::Result<()> as usize),
        ("string literal", GREETING.as_ptr() as usize),
        (
            "initialised static",
            std::ptr::addr_of!(INITIALISED) as usize,
        ),
        ("zeroed static", std::ptr::addr_of!(ZEROED) as usize),
        ("Box (heap)", heap.as_ptr() as usize),
        ("local variable", std::ptr::addr_of!(local) as usize),
        ("Region::anonymous", mapping.as_ptr() as usize),
    ];
    for (what, address) in things {
        match layout.find(address) {
            Some(m) => println!(
                "{what:<20} {address:#014x}  {:<10} {} {}",
                m.kind,
                m.perms,
                m.path.as_deref().unwrap_or("[anon]")
            ),
            None => println!("{what:<20} {address:#014x}  not mapped?"),
        }
    }
    println!("(a small bss shares the data segment's last page, so it shows as data)");
    println!();
    for s in layout.summary() {
        println!(
            "{:<10} {:>3} mappings {:>10} bytes, {:>10} resident",
            s.kind, s.mappings, s.size, s.rss
        );
    }
    let facts = SystemFacts::read()?;
    println!();
    println!(
        "page size {} bytes, huge pages {:?}",
        facts.page_size, facts.huge_page_size
    );
    println!(
        "overcommit {}, ratio {} %",
        facts.overcommit.describe(),
        facts.overcommit_ratio
    );
    println!("RLIMIT_MEMLOCK {:?}", facts.memlock_limit);
    Ok(())
}
