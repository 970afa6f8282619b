//! Semaphore hand-off (seed 004, "POSIX semaphores" and "System V
//! semaphores"): two processes take turns through a pair of named POSIX
//! semaphores, then a System V set shows `SEM_UNDO` giving back the unit a
//! killed holder took.
//!
//! ```sh
//! cargo run -p memio-ipc --example sem_handoff
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use memio_ipc::sem::posix::NamedSem;
use memio_ipc::sem::sysv::{SemOp, SemSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("ping") => {
            let (mine, theirs) = (NamedSem::open(&args[2])?, NamedSem::open(&args[3])?);
            for round in 1..=3 {
                mine.wait()?;
                println!("  child: my turn ({round})");
                theirs.post()?;
            }
            return Ok(());
        }
        Some("holder") => {
            let set = SemSet::from_id(args[2].parse()?);
            set.op(&[SemOp::wait(0).undo()])?;
            println!("  holder: took the lock, now waiting to be killed");
            std::thread::sleep(Duration::from_secs(3600));
            return Ok(());
        }
        _ => {}
    }

    // Named POSIX semaphores: strict alternation between two processes.
    let pid = std::process::id();
    let (a, b) = (
        format!("/memio-handoff-{pid}-a"),
        format!("/memio-handoff-{pid}-b"),
    );
    let child_turn = NamedSem::create(&a, 0)?;
    let my_turn = NamedSem::create(&b, 0)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["ping", &a, &b])
        .spawn()?;
    for round in 1..=3 {
        child_turn.post()?;
        my_turn.wait()?;
        println!("parent: my turn ({round})");
    }
    child.wait()?;
    NamedSem::unlink(&a)?;
    NamedSem::unlink(&b)?;

    // System V: a holder killed with SIGKILL gives its unit back.
    let set = SemSet::private(1)?;
    set.set_value(0, 1)?;
    let mut holder = Command::new(std::env::current_exe()?)
        .args(["holder", &set.id().to_string()])
        .spawn()?;
    set.op_deadline(
        &[SemOp::wait_zero(0)],
        Instant::now() + Duration::from_secs(30),
    )?;
    println!("parent: lock value {} while held", set.get_value(0)?);
    holder.kill()?;
    holder.wait()?;
    println!(
        "parent: lock value {} after SIGKILL (SEM_UNDO)",
        set.get_value(0)?
    );
    set.remove()?;
    Ok(())
}
