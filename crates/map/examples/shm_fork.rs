//! Seed 000, "Inter-process communication using shared memory": a POSIX
//! shared memory object (a file in the `/dev/shm` tmpfs, which is what
//! `shm_open` opens), sized with `ftruncate`, mapped shared; a forked child
//! writes a greeting the parent then reads. (`memio-ipc` wraps
//! `shm_open`/`shm_unlink` themselves; this shows the mapping half.)
//!
//! Run: `cargo run -p memio-map --example shm_fork`
#![allow(unsafe_code, reason = "fork and waitpid, as in the seed")]

use memio_map::MapOptions;

const SHM_SIZE: u64 = 1024;

/// Unlinks the object when main returns, even on error (`shm_unlink`).
struct Unlink(std::path::PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn main() -> std::io::Result<()> {
    // shm_open("/memio-example-<pid>", O_CREAT | O_RDWR, 0666)
    let name = std::path::PathBuf::from(format!("/dev/shm/memio-example-{}", std::process::id()));
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&name)?;
    let _unlink = Unlink(name);
    fd.set_len(SHM_SIZE)?; // ftruncate
    let mut ptr = MapOptions::new().shared().read_write().map(&fd)?;

    // SAFETY: the child writes to the shared mapping and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let ok = ptr.write_at(0, b"Hello from child!\0").is_ok();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(i32::from(!ok)) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child and `status` a valid out-pointer.
    if unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = [0u8; 32];
    ptr.read_at(0, &mut buf)?;
    let text = buf.split(|&b| b == 0).next().unwrap_or_default();
    println!("Received from child: {}", String::from_utf8_lossy(text));
    Ok(())
}
