//! Named pipes for unrelated processes (seed 004, "Pipes and FIFOs"): a
//! FIFO is created in the file system, a writer process opens it by path
//! and sends lines, this process reads them, and the FIFO is removed.
//!
//! ```sh
//! cargo run -p memio-ipc --example fifo
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::Command;

use memio_ipc::fifo::{self, End};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("writer") {
        // An unrelated process: all it knows is the path.
        let mut w = fifo::open(&args[2], End::Write)?;
        for i in 1..=3 {
            writeln!(w, "line {i} from writer pid {}", std::process::id())?;
        }
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("memio-fifo-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("fifo");
    fifo::create(&path)?; // mode 0600
    let mut writer = Command::new(std::env::current_exe()?)
        .arg("writer")
        .arg(&path)
        .spawn()?;
    // Blocks until the writer opens its end.
    let reader = BufReader::new(fifo::open(&path, End::Read)?);
    for line in reader.lines() {
        println!("reader got: {}", line?);
    }
    writer.wait()?;
    fifo::remove(&path)?;
    std::fs::remove_dir(&dir)?;
    Ok(())
}
