//! Names the build in `memio --version`: the git commit it was built from
//! (when built from a git checkout; "commit unknown" otherwise, as from a
//! source tarball) and the lab's heavy peers its features turned on.
//!
//! Also builds `libmemio_malloc.so` (the `memio-malloc-preload` package,
//! release profile) for `memio malloc run` to carry inside the binary:
//! with a cargo of its own, in a target folder under `OUT_DIR` (the outer
//! build holds its target folder's lock until this script ends, so
//! building there would wait forever).

use std::hash::Hasher;
use std::path::{Path, PathBuf};
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
    embed_preload(dir);
}

/// Builds the preload library and points `MEMIO_PRELOAD_LIB` at it (and
/// `MEMIO_PRELOAD_HASH` at a hash of its bytes). Outside the workspace
/// (a packaged crate without `crates/malloc`) the file is empty and
/// `memio malloc run` says the library was not built in.
fn embed_preload(dir: &Path) {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = dir.join("../..");
    let manifest = root.join("crates/malloc/preload/Cargo.toml");
    let lib = if manifest.exists() {
        // The heap and the allocator it is built on: rebuild the library
        // when either changes (a folder is watched with all it holds).
        for watched in ["crates/malloc", "crates/alloc", "Cargo.toml", "Cargo.lock"] {
            let path = root.join(watched);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        build_preload(&root, &out)
    } else {
        println!(
            "cargo:warning=crates/malloc/preload not found: `memio malloc run` will not be available"
        );
        let empty = out.join("libmemio_malloc-missing.so");
        std::fs::write(&empty, b"").expect("write a placeholder in OUT_DIR");
        empty
    };
    let bytes = std::fs::read(&lib).expect("read the built libmemio_malloc.so");
    let mut hash = std::hash::DefaultHasher::new();
    hash.write(&bytes);
    println!("cargo:rustc-env=MEMIO_PRELOAD_LIB={}", lib.display());
    println!("cargo:rustc-env=MEMIO_PRELOAD_HASH={:016x}", hash.finish());
}

/// Runs `cargo build --release -p memio-malloc-preload` for the target
/// being built, in `out/preload`; returns the library's path.
fn build_preload(root: &Path, out: &Path) -> PathBuf {
    let target_dir = out.join("preload");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .args(["-p", "memio-malloc-preload"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // A lint wrapper (clippy) checks the outer build only; the inner
        // one must produce a real library.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        // Smaller to carry; the heap's panics abort either way.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    // Share the outer build's job slots instead of adding a machine's worth.
    if let Some(flags) = std::env::var_os("CARGO_MAKEFLAGS") {
        cmd.env("MAKEFLAGS", flags);
    }
    if std::env::var_os("CARGO_NET_OFFLINE").is_some() {
        cmd.arg("--offline");
    }
    let mut release = target_dir.clone();
    if !target.is_empty() && target != host {
        cmd.args(["--target", &target]);
        release.push(&target);
    }
    release.push("release");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build memio-malloc-preload: {e}"));
    assert!(
        status.success(),
        "building memio-malloc-preload (for `memio malloc run`) failed: {status}"
    );
    release.join("libmemio_malloc.so")
}
