//! Executable pages: `Access`/`Protection` with `PROT_EXEC`, the safe
//! accessors under them, machine code run from a region (x86-64), and the
//! kernel's refusal on a `noexec` mount where one is writable here.
#![allow(
    unsafe_code,
    reason = "calls machine code written into a region, as the exec_code example does"
)]

use std::io;

use memio_map::error::raw_errno;
use memio_map::{Access, MapOptions, Protection, Region};

#[test]
fn read_execute_pages_read_but_refuse_safe_writes() {
    let mut region = Region::anonymous(4096).unwrap();
    region.write_at(0, b"\xc3").unwrap();
    region.protect(.., Protection::ReadExecute).unwrap();
    let mut byte = [0u8];
    region.read_at(0, &mut byte).unwrap();
    assert_eq!(byte, [0xc3]);
    let err = region.write_at(0, b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("ReadExecute"), "{err}");
    assert!(region.check_access(0, 1, Access::ReadOnly).is_ok());
    assert!(region.check_access(0, 1, Access::ReadWrite).is_err());
    // Back to writable: the safe write works again.
    region.protect(.., Protection::ReadWrite).unwrap();
    region.write_at(0, b"x").unwrap();
}

#[test]
fn executable_access_maps_with_prot_exec() {
    let region = MapOptions::new()
        .private()
        .access(Access::ReadExecute)
        .len(4096)
        .map_anonymous()
        .unwrap();
    assert!(region.access().executable());
    assert!(!region.access().writable());
    // The mapping's rights as /proc/self/maps shows them: r-xp.
    let start = format!("{:x}-", region.as_ptr() as usize);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps.lines().find(|l| l.starts_with(&start)).unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("r-xp"), "{line}");
}

#[test]
fn writable_and_executable_pages_are_granted_or_refused_with_the_reason() {
    match MapOptions::new()
        .private()
        .access(Access::ReadWriteExecute)
        .len(4096)
        .map_anonymous()
    {
        Ok(mut region) => {
            assert!(region.access().writable() && region.access().executable());
            region.write_at(0, b"\x90").unwrap();
        }
        Err(err) => {
            // A W^X policy: the message says so and keeps the errno.
            assert!(matches!(raw_errno(&err), Some(libc::EACCES | libc::EPERM)));
            assert!(err.to_string().contains("W^X"), "{err}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn machine_code_written_then_flipped_to_read_execute_runs() {
    // mov eax, 42 ; ret
    const CODE: &[u8] = &[0xb8, 42, 0, 0, 0, 0xc3];
    let mut region = Region::anonymous(4096).unwrap();
    region.write_at(0, CODE).unwrap();
    region.protect(.., Protection::ReadExecute).unwrap();
    // SAFETY: the region's first bytes are the x86-64 code above, a
    // complete function of the C ABI returning an int; its pages are
    // readable and executable now and stay mapped (and unwritten) while
    // `region` lives, which outlasts the call.
    let answer: extern "C" fn() -> i32 = unsafe { std::mem::transmute(region.as_ptr()) };
    assert_eq!(answer(), 42);
}

/// Removes the probe file even when the test fails.
struct Remove(std::path::PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A mount point mounted `noexec` that this user can create files in.
fn writable_noexec_mount() -> Option<std::path::PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, _, opts) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let opts: Vec<&str> = opts.split(',').collect();
        if !opts.contains(&"noexec") || !opts.contains(&"rw") {
            return None;
        }
        let probe = std::path::Path::new(dir).join(format!("memio-exec-{}", std::process::id()));
        std::fs::write(&probe, [0u8; 4096]).ok()?;
        Some(probe)
    })
}

/// Runs the test `name` again in a private mount namespace with a tmpfs
/// mounted `noexec` (needs `unshare(1)` and the right to mount, as root);
/// skips with the reason when that is not possible here.
fn in_noexec_namespace(name: &str) {
    let dir = std::env::temp_dir().join(format!("memio-noexec-{}", std::process::id()));
    if std::fs::create_dir(&dir).is_err() {
        eprintln!("skipped: cannot create {}", dir.display());
        return;
    }
    let _dir = RemoveDir(dir.clone());
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o noexec,rw memio-noexec "$1" || exit 77; shift; exec "$@""#)
        .arg("sh")
        .arg(&dir)
        .arg(&exe)
        .args(["--exact", name, "--nocapture"])
        .env("MEMIO_EXEC_TEST_CHILD", "1")
        .output();
    match out {
        Ok(out)
            if out.status.code() == Some(77)
                || (!out.status.success() && out.stdout.is_empty()) =>
        {
            eprintln!(
                "skipped: no writable noexec mount and none can be made here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "in a noexec namespace: {stdout}{stderr}"
            );
            assert!(stdout.contains("1 passed"), "{stdout}");
            assert!(
                !stderr.contains("skipped"),
                "the child found no noexec mount: {stderr}"
            );
        }
        Err(e) => eprintln!("skipped: cannot run unshare(1): {e}"),
    }
}

/// Removes the mount point directory even when the test fails.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_noexec_mount_refuses_executable_mappings_with_a_clear_error() {
    let Some(path) = writable_noexec_mount() else {
        if std::env::var_os("MEMIO_EXEC_TEST_CHILD").is_none() {
            in_noexec_namespace("a_noexec_mount_refuses_executable_mappings_with_a_clear_error");
        } else {
            eprintln!("skipped: no writable noexec mount on this machine");
        }
        return;
    };
    let _guard = Remove(path.clone());
    let err = MapOptions::new()
        .private()
        .access(Access::ReadExecute)
        .map_path(&path)
        .unwrap_err();
    assert_eq!(raw_errno(&err), Some(libc::EPERM), "{err}");
    assert!(err.to_string().contains("noexec mount"), "{err}");
}
