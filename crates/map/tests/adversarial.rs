//! Hostile uses of the safe mapping API: objects whose size `fstat` does
//! not give, ranges past what the kernel backs, widths that do not match.
//! Each test checks that the misuse gets an error naming the object instead
//! of a mapping whose pages raise `SIGBUS`.

use std::path::{Path, PathBuf};
use std::process::Command;

use memio_map::{MapOptions, Region};

/// A loop device over a scratch file, detached and removed on drop.
struct LoopDevice {
    device: PathBuf,
    file: PathBuf,
}

impl LoopDevice {
    /// A loop device over a new file of `contents`, or `None` (with the
    /// reason printed) where this machine cannot make one.
    fn new(tag: &str, contents: &[u8]) -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: attaching a loop device needs root");
            return None;
        }
        let file = std::env::temp_dir().join(format!(
            "memio-map-adversarial-{}-{tag}",
            std::process::id()
        ));
        std::fs::write(&file, contents).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let device = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                Some(Self { device, file })
            }
            Ok(out) => {
                eprintln!(
                    "skipped: losetup failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                std::fs::remove_file(&file).unwrap();
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run losetup: {e}");
                std::fs::remove_file(&file).unwrap();
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.device
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// `fstat` says 0 bytes for a block device: without asking the device
/// (`BLKGETSIZE64`) a length past its end mapped fine and the first touch
/// past the end raised `SIGBUS`, and no length at all was refused.
#[test]
fn a_block_device_is_mapped_at_its_own_size_and_no_further() {
    let contents: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let Some(dev) = LoopDevice::new("blk", &contents) else {
        return;
    };
    let region = MapOptions::new().map_path(dev.path()).unwrap();
    assert_eq!(region.len(), contents.len());
    let mut tail = [0u8; 16];
    region.read_at(contents.len() - 16, &mut tail).unwrap();
    assert_eq!(tail, contents[contents.len() - 16..]);

    let e = MapOptions::new()
        .len(contents.len() + 4096)
        .map_path(dev.path())
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let msg = e.to_string();
    assert!(msg.contains(&dev.path().display().to_string()), "{msg}");
    assert!(msg.contains("reach past its end (65536 bytes)"), "{msg}");

    let e = MapOptions::new()
        .offset(contents.len() as u64)
        .map_path(dev.path())
        .unwrap_err();
    assert!(e.to_string().contains("not below its size"), "{e}");
}

/// Character devices still have no size: mapping one needs a length.
#[test]
fn a_character_device_without_a_length_is_refused() {
    let e = MapOptions::new().map_path("/dev/zero").unwrap_err();
    assert!(
        e.to_string().contains("it has no size; give a length"),
        "{e}"
    );
    let region = MapOptions::new()
        .private()
        .len(4096)
        .map_path("/dev/zero")
        .unwrap();
    let mut b = [1u8; 8];
    region.read_at(100, &mut b).unwrap();
    assert_eq!(b, [0; 8]);
}

/// Two threads, one storing through a 4-byte view while another takes an
/// 8-byte view of the same words: the second view is refused, and copies
/// across the words run at 4 bytes, so no mixed-size race is reachable.
#[test]
fn a_second_atomic_width_is_refused_while_the_first_is_in_use() {
    let region = Region::anonymous_shared(4096).unwrap();
    let word = region.atomic_u32(0).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..1000 {
                word.store(i, std::sync::atomic::Ordering::Relaxed);
            }
        });
        s.spawn(|| {
            let e = region.atomic_u64(0).unwrap_err();
            assert!(e.to_string().contains("4-byte atomic views"), "{e}");
            let e = region.as_load_only_u64s().unwrap_err();
            assert!(e.to_string().contains("4-byte atomic views"), "{e}");
        });
    });
    assert_eq!(region.atomic_width(), Some(4));
}

/// Two mappings of one file in one process are the same bytes: a 4-byte
/// view through one and an 8-byte view (or copy) through the other would
/// race at mixed sizes, so the mappings share one width.
#[test]
fn two_mappings_of_one_file_share_one_atomic_width() {
    let path = std::env::temp_dir().join(format!(
        "memio-map-adversarial-{}-twice",
        std::process::id()
    ));
    std::fs::write(&path, [0u8; 4096]).unwrap();
    let rw = MapOptions::new().read_write();
    let first = rw.map_path(&path).unwrap();
    let mut second = rw.map_path(&path).unwrap();
    let flag = first.atomic_u32(8).unwrap();
    let e = second.atomic_u64(8).unwrap_err();
    assert!(e.to_string().contains("it has 4-byte atomic views"), "{e}");
    assert_eq!(second.atomic_width(), Some(4));
    flag.store(0x0102_0304, std::sync::atomic::Ordering::Relaxed);
    let mut word = [0u8; 4];
    second.read_at(8, &mut word).unwrap();
    assert_eq!(u32::from_ne_bytes(word), 0x0102_0304);
    second.write_at(9, &[9]).unwrap();
    assert_eq!(
        flag.load(std::sync::atomic::Ordering::Relaxed) & 0xFF00,
        0x0900
    );
    // A mapping of another file is not affected.
    second.release_atomic_width();
    drop(first);
    assert!(second.atomic_u64(8).is_ok(), "free once the first is gone");
    std::fs::remove_file(&path).unwrap();
}
