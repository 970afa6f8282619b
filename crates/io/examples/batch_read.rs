//! The seeds' exercise (000): a program doing asynchronous I/O on many
//! files at once. Reads every file named (or every file under a directory)
//! through each batch backend — `io_uring`, a thread pool, POSIX AIO, and one
//! read after another — and prints what each took.
//!
//! ```sh
//! cargo run --release -p memio-io --example batch_read -- PATH...
//! ```
//!
//! Memory stays bounded by the batch's buffers (32 × 128 KiB) whatever the
//! number or size of the files; an unreadable file is reported and the
//! others are still read.

use std::path::{Path, PathBuf};

use memio_io::batch::{Backend, Batch, Event};

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                collect(&e.path(), out);
            }
        }
    } else {
        out.push(path.to_owned());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut paths = Vec::new();
    for arg in std::env::args().skip(1) {
        collect(Path::new(&arg), &mut paths);
    }
    if paths.is_empty() {
        return Err("usage: batch_read PATH...".into());
    }
    for backend in Backend::CONCRETE {
        let mut xor = 0u8;
        let report = match Batch::new()
            .max_file(1 << 30)
            .backend(backend)
            .read(&paths, |e| match e {
                Event::Data { bytes, .. } => xor ^= bytes.iter().fold(0, |a, b| a ^ b),
                Event::Failed { error, .. } => eprintln!("{}: {error}", backend.name()),
                _ => {}
            }) {
            Ok(report) => report,
            Err(e) => {
                println!("{:>10}: not available here ({e})", backend.name());
                continue;
            }
        };
        let secs = report.elapsed.as_secs_f64().max(1e-9);
        println!(
            "{:>10}: {} files, {} bytes in {:.3} s ({:.0} files/s, {:.0} MB/s), {} in flight at most, xor {xor:02x}",
            backend.name(),
            report.files,
            report.bytes,
            secs,
            report.files as f64 / secs,
            report.bytes as f64 / secs / 1e6,
            report.peak_in_flight,
        );
    }
    Ok(())
}
