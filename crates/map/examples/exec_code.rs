//! Seeds 001 ("`mprotect()` changes access permissions (read, write,
//! execute)") and 002 (`PROT_EXEC`, the third bit of `mmap`'s `prot`):
//! machine code written into an anonymous mapping, the pages flipped from
//! read+write to read+execute (never both writable and executable: W^X),
//! then called. On other architectures it only shows the rights.
//!
//! Making pages executable is safe; calling into them is `unsafe`, because
//! nothing can check that the bytes are a valid function for this CPU.
//!
//! Run: `cargo run -p memio-map --example exec_code`
#![allow(
    unsafe_code,
    reason = "calls the machine code it wrote into the region"
)]

use memio_map::{Protection, Region, page_size};

/// `lea eax, [rdi + rsi] ; ret`: `int add(int a, int b)` in the System V
/// x86-64 calling convention.
const ADD: &[u8] = &[0x8d, 0x04, 0x37, 0xc3];

/// The rights of the mapping at `addr` as `/proc/self/maps` shows them.
fn rights(addr: *const u8) -> String {
    let start = format!("{:x}-", addr as usize);
    std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            let line = maps.lines().find(|l| l.starts_with(&start))?;
            Some(line.split_whitespace().nth(1)?.to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn main() -> std::io::Result<()> {
    let mut code = Region::anonymous(page_size())?;
    code.write_at(0, ADD)?;
    println!(
        "wrote {} bytes of code at {:p}: {}",
        ADD.len(),
        code.as_ptr(),
        rights(code.as_ptr())
    );

    // mprotect(code, len, PROT_READ | PROT_EXEC): runnable, no longer writable.
    if let Err(err) = code.protect(.., Protection::ReadExecute) {
        // A W^X policy or a noexec mount: the message says which.
        eprintln!("exec_code: {err}");
        std::process::exit(1);
    }
    println!("flipped to read+execute: {}", rights(code.as_ptr()));
    match code.write_at(0, b"\x90") {
        Err(err) => println!("a safe write now fails instead of faulting: {err}"),
        Ok(()) => unreachable!("read+execute pages took a write"),
    }

    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the region starts with the complete x86-64 function `ADD`
        // (C ABI, two ints in, an int out); its page is readable and
        // executable now, and `code` keeps it mapped and unwritten past the
        // call.
        let add: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(code.as_ptr()) };
        let sum = add(40, 2);
        println!("called the code: add(40, 2) = {sum}");
        assert_eq!(sum, 42);
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("not x86-64: the code bytes are for x86-64, so they are not called");
    Ok(())
}
