//! The file-locked counter: N processes each add 1 to a number stored in one
//! file, M times, under an exclusive lock; the total comes out exact.
//!
//! ```sh
//! cargo run -p memio-io --example counter -- [PROCESSES] [TIMES] [ofd|posix|flock]
//! ```
//!
//! The program re-executes itself as the workers. Without the lock the
//! read-modify-write cycles of different processes interleave and updates
//! are lost; pass `none` as the kind to see it happen.

use std::os::unix::fs::FileExt;
use std::process::Command;

use memio_io::lock::{Kind, Locker, Mode, Wait};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        return worker(&args[2], &args[3], &args[4]);
    }
    let procs: u64 = args.get(1).map_or(Ok(4), |s| s.parse())?;
    let times: u64 = args.get(2).map_or(Ok(1000), |s| s.parse())?;
    let kind = args.get(3).cloned().unwrap_or_else(|| "ofd".to_owned());
    let path = std::env::temp_dir().join(format!("memio-counter-{}", std::process::id()));
    std::fs::write(&path, b"")?;

    let started = std::time::Instant::now();
    let exe = std::env::current_exe()?;
    let workers = (0..procs)
        .map(|_| {
            Command::new(&exe)
                .arg("--worker")
                .arg(&path)
                .arg(&kind)
                .arg(times.to_string())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut w in workers {
        let status = w.wait()?;
        if !status.success() {
            return Err(format!("a worker failed: {status}").into());
        }
    }
    let text = std::fs::read_to_string(&path)?;
    std::fs::remove_file(&path)?;
    let total: u64 = text.trim().parse().unwrap_or(0);
    let expected = procs * times;
    println!(
        "{procs} processes x {times} increments with {kind} locks: total {total} (expected {expected}) in {:.2?}",
        started.elapsed()
    );
    if total != expected {
        return Err(format!("lost {} updates", expected - total).into());
    }
    Ok(())
}

fn worker(path: &str, kind: &str, times: &str) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::fs::File::options().read(true).write(true).open(path)?;
    let kind: Option<Kind> = if kind == "none" {
        None
    } else {
        Some(kind.parse()?)
    };
    for _ in 0..times.parse::<u64>()? {
        let _guard = match kind {
            Some(k) => Some(
                Locker::new(&file)
                    .kind(k)
                    .lock(Mode::Exclusive, Wait::Block)?,
            ),
            None => None,
        };
        let mut buf = [0u8; 20];
        let n = file.read_at(&mut buf, 0)?;
        let value: u64 = std::str::from_utf8(&buf[..n])?.trim().parse().unwrap_or(0);
        file.write_all_at(format!("{:>20}", value + 1).as_bytes(), 0)?;
    }
    Ok(())
}
