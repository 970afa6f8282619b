//! The seeds' extended-attribute program: set `user.comment` on a file and
//! read it back.
//!
//! ```sh
//! cargo run -p memio-io --example xattr -- FILE
//! ```
//!
//! Where the seeds printed `perror`'s text, the errors here say which case
//! it is: the filesystem has no user attributes, the value is too large, and
//! so on.

use memio_io::xattr::{SetMode, Target};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("Usage: {} <file>", args[0]);
        std::process::exit(1);
    }
    let path = std::path::Path::new(&args[1]);
    let name = "user.comment";
    let value = b"This is a test comment";
    let target = Target::Path(path);

    if let Err(e) = target.set(name, value, SetMode::Any) {
        eprintln!("setxattr: {e}");
        std::process::exit(1);
    }
    match target.get(name) {
        Ok(got) => println!(
            "Extended attribute '{name}' value: {}",
            String::from_utf8_lossy(&got)
        ),
        Err(e) => {
            eprintln!("getxattr: {e}");
            std::process::exit(1);
        }
    }
}
