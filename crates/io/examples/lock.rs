//! The seeds' advisory-lock program: take a write lock on a file (waiting
//! for it if someone else holds it), hold it until Enter is pressed, release.
//!
//! ```sh
//! cargo run -p memio-io --example lock -- [FILE] [ofd|posix|flock]
//! ```
//!
//! Run it in two terminals on the same file: the second waits at "Trying
//! to get lock..." until the first is released. The seeds used
//! `fcntl(F_SETLKW)`, a POSIX lock (kind `posix`); the default here is an OFD
//! lock, which is not dropped when the process closes another descriptor
//! of the file.

use std::io::BufRead;

use memio_io::lock::{Kind, Locker, Mode, Wait};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "locked_file.txt".to_owned());
    let kind: Kind = args.next().as_deref().unwrap_or("ofd").parse()?;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("open {path}: {e}"))?;
    let locker = Locker::new(&file).kind(kind);

    println!("Trying to get lock...");
    if let Some(holder) = locker.holder(Mode::Exclusive)? {
        let who = holder
            .pid
            .map_or_else(|| "an unknown process".to_owned(), |p| format!("pid {p}"));
        println!(
            "{who} holds a {} {} lock; waiting",
            holder.mode, holder.kind
        );
    }
    let guard = locker.lock(Mode::Exclusive, Wait::Block)?;
    println!("File locked ({kind}). Press Enter to unlock...");
    std::io::stdin().lock().read_line(&mut String::new())?;
    guard.unlock()?;
    println!("File unlocked.");
    Ok(())
}
