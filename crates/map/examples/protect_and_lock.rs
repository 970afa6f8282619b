//! Seeds 001 and 003, "Advanced Memory Techniques" and "Locking Memory":
//! make pages read-only with `mprotect` (a write would now raise SIGSEGV),
//! lock pages with `mlock` and watch `mincore` report them resident, and see
//! what `RLIMIT_MEMLOCK` allows.
//!
//! Run: `cargo run -p memio-map --example protect_and_lock`

use memio_map::{Advice, Protection, Region, page_size, system};

fn resident(region: &Region) -> std::io::Result<String> {
    Ok(region
        .residency(..)?
        .iter()
        .map(|&r| if r { '#' } else { '.' })
        .collect())
}

fn main() -> std::io::Result<()> {
    let page = page_size();
    let mut region = Region::anonymous(16 * page)?;
    println!("fresh:            {}", resident(&region)?);
    region.write_at(3 * page, b"touched")?;
    println!("one page written: {}", resident(&region)?);

    // mprotect(PROT_READ): reads still work, a write through a raw pointer
    // would fault. The region remembers the rights, so its safe calls
    // refuse the write with an error instead of letting it fault.
    region.protect(..8 * page, Protection::Read)?;
    let mut buf = [0u8; 7];
    region.read_at(3 * page, &mut buf)?;
    println!(
        "read-only page still reads {:?}",
        String::from_utf8_lossy(&buf)
    );
    if let Err(e) = region.write_at(3 * page, b"again") {
        println!("writing it is refused: {e}");
    }
    region.protect(..8 * page, Protection::ReadWrite)?;

    // mlock: all pages of the range are faulted in and pinned.
    {
        let _locked = region.lock(8 * page..)?;
        println!("upper half locked:{}", resident(&region)?);
    } // munlock
    region.advise(.., Advice::WillNeed)?;

    match system::memlock_limit() {
        Some(limit) => println!("RLIMIT_MEMLOCK: {limit} bytes"),
        None => println!("RLIMIT_MEMLOCK: unlimited"),
    }
    // Locking more than the limit fails with a message that says why
    // (unless this process has CAP_IPC_LOCK, as root usually does).
    let big = Region::anonymous(64 << 20)?;
    match big.lock(..) {
        Ok(guard) => println!(
            "locked 64 MiB: this process may lock past the limit ({} bytes)",
            guard.len()
        ),
        Err(e) => println!("locking 64 MiB refused: {e}"),
    }
    Ok(())
}
