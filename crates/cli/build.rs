//! Names the build in `memio --version`: the git commit it was built from
//! (when built from a git checkout; "commit unknown" otherwise, as from a
//! source tarball) and the lab's heavy peers its features turned on.

use std::path::Path;
use std::process::Command;

/// The CLI features that build a heavy lab peer, as cargo announces them.
const PEERS: [&str; 6] = ["sqlite", "lmdb", "redb", "jemalloc", "mimalloc", "iceoryx2"];

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let dir = Path::new(&dir);
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"]);
    if commit.is_some() {
        // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it
        // names (a commit), and packed refs.
        let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
        if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(branch);
        }
        for p in watch {
            if let Some(path) = git(
                dir,
                &["rev-parse", "--path-format=absolute", "--git-path", &p],
            ) {
                if Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
        }
    }
    let peers: Vec<&str> = PEERS
        .into_iter()
        .filter(|p| std::env::var_os(format!("CARGO_FEATURE_{}", p.to_uppercase())).is_some())
        .collect();
    let version = format!(
        "{} ({}; lab peers: {})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        commit.map_or_else(|| "commit unknown".to_owned(), |c| format!("commit {c}")),
        if peers.is_empty() {
            "none built".to_owned()
        } else {
            peers.join(", ")
        }
    );
    println!("cargo:rustc-env=MEMIO_VERSION={version}");
}
