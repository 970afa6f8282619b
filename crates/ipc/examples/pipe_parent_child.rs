//! Seed 004, "Using a pipe for parent-child communication": the parent
//! writes a string into a pipe, the child reads it and prints it.
//!
//! Rust has no safe `fork`; the child is this program started again with
//! the pipe's read end as its stdin, which is what `fork` + `exec` does.
//! `Stdio::piped()` makes the pipe (`pipe(2)`) and keeps the write end
//! here; with Rust 1.87+ `std::io::pipe()` gives both ends to pass around
//! yourself (see the `memio_ipc::fifo` docs).
//!
//! ```sh
//! cargo run -p memio-ipc --example pipe_parent_child
//! ```

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("child") {
        // Child: the read end is stdin; read until the parent closes it.
        let mut buffer = Vec::new();
        std::io::stdin().read_to_end(&mut buffer)?;
        let text = String::from_utf8_lossy(&buffer);
        println!("Child received: {}", text.trim_end_matches('\0'));
        return Ok(());
    }
    let mut child = Command::new(std::env::current_exe()?)
        .arg("child")
        .stdin(Stdio::piped()) // the child gets the read end
        .spawn()?;
    let mut writer = child.stdin.take().expect("stdin was piped"); // we keep the write end
    writer.write_all(b"Hello from parent!\0")?;
    drop(writer); // close the write end: the child sees end of file
    let status = child.wait()?; // wait(NULL)
    assert!(status.success(), "child failed: {status}");
    Ok(())
}
