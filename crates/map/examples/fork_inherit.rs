//! Seed 002, "mmap files are inherited by child": map a file shared, fork,
//! and let the child and then the parent print it through the same mapping.
//!
//! Run: `cargo run -p memio-map --example fork_inherit [PATH]`
#![allow(unsafe_code, reason = "fork and waitpid, as in the seed")]

use memio_map::MapOptions;

fn print(who: &str, region: &memio_map::Region) -> std::io::Result<()> {
    let mut text = vec![0u8; region.len()];
    region.read_at(0, &mut text)?;
    println!(
        "{who} access memory mapped file:\n{}",
        String::from_utf8_lossy(&text)
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let path = std::env::args_os().nth(1).map_or_else(
        || {
            let p = std::env::temp_dir().join("memio-example-f1.txt");
            std::fs::write(&p, "line one\nline two\n").map(|()| p)
        },
        |p| Ok(p.into()),
    )?;
    let region = MapOptions::new().shared().read_only().map_path(&path)?;

    // SAFETY: the child only reads the mapping, prints and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let ok = print("Child", &region).is_ok();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(i32::from(!ok)) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child and `status` a valid out-pointer.
    if unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    print("Parent", &region)
}
