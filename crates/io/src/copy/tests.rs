#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "test data: small numbers made into bytes"
)]

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use std::path::PathBuf;

use rustix::fs::SeekFrom;

use super::*;
use crate::test_dir::TestDir;

const METHODS: [Method; 5] = Method::ALL;

/// The first hole at or after 0, by `SEEK_HOLE` (the size when none).
fn first_hole(path: &Path) -> u64 {
    let f = File::open(path).unwrap();
    rustix::fs::seek(&f, SeekFrom::Hole(0)).unwrap()
}

#[test]
fn every_engine_copies_odd_sizes_and_files_larger_than_the_window_byte_for_byte() {
    let dir = TestDir::new("copy-sizes");
    let page = memio_map::page_size();
    for len in [1, 7, 4095, 4096, 4097, 3 * page + 13, (1 << 20) + 5] {
        let src = dir.file(&format!("src-{len}"), len);
        for method in METHODS {
            let dst = dir.join(&format!("dst-{len}-{}", method.name()));
            let copied = CopyOptions::new()
                .method(method)
                .window(page)
                .verify(true)
                .copy(&src, &dst)
                .unwrap();
            assert_eq!(copied.bytes, len as u64, "{method:?}");
            assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
            assert_ne!(copied.method, Method::Auto);
        }
    }
}

#[test]
fn an_empty_file_copies_to_an_empty_file() {
    let dir = TestDir::new("copy-empty");
    let src = dir.file("empty", 0);
    for method in METHODS {
        let dst = dir.join(method.name());
        assert_eq!(
            CopyOptions::new()
                .method(method)
                .copy(&src, &dst)
                .unwrap()
                .bytes,
            0
        );
        assert_eq!(std::fs::metadata(&dst).unwrap().len(), 0);
    }
}

#[test]
fn a_copy_replaces_an_existing_file_and_keeps_the_mode() {
    let dir = TestDir::new("copy-replace");
    let src = dir.file("src", 10_000);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o640)).unwrap();
    let dst = dir.file("dst", 99_999);
    copy(&src, &dst).unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
    assert_eq!(std::fs::metadata(&dst).unwrap().mode() & 0o777, 0o640);
    // No temporary file is left beside it.
    assert_eq!(dir.names(), ["dst", "src"]);
}

#[test]
fn a_symlink_destination_is_written_through_and_a_dangling_one_refused() {
    let dir = TestDir::new("copy-symlink");
    let src = dir.file("src", 5_000);
    let target = dir.file("target", 100);
    let link = dir.join("link");
    std::os::unix::fs::symlink("target", &link).unwrap();
    copy(&src, &link).unwrap();
    // As cp: the link stays, the file it leads to gets the bytes.
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink("nowhere", &dangling).unwrap();
    let e = copy(&src, &dangling).unwrap_err();
    assert!(e.to_string().contains("dangling symlink"), "{e}");
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(dir.names(), ["dangling", "link", "src", "target"]);
    // A FIFO (or a device) would be replaced by a regular file, where cp
    // writes into it: refused, whether named or reached through a link.
    let fifo = dir.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    let to_fifo = dir.join("to-fifo");
    std::os::unix::fs::symlink("fifo", &to_fifo).unwrap();
    for dst in [&fifo, &to_fifo] {
        let e = copy(&src, dst).unwrap_err();
        assert!(matches!(e, Error::NotRegular { .. }), "{e}");
    }
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // An open file reached through /proc (as `/dev/stdout` leads there)
    // would be swapped out from under its descriptor: refused.
    let open = dir.file("open", 10);
    let held = File::options().append(true).open(&open).unwrap();
    let via_proc = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&held)
    ));
    let e = copy(&src, &via_proc).unwrap_err();
    assert!(e.to_string().contains("lead through /proc"), "{e}");
    assert_eq!(
        std::fs::metadata(&open).unwrap().ino(),
        held.metadata().unwrap().ino()
    );
    assert_eq!(std::fs::metadata(&open).unwrap().len(), 10);
}

#[test]
fn a_destination_this_process_may_not_write_is_refused() {
    if rustix::process::geteuid().is_root() {
        eprintln!("skipped: root may write any file, so no destination is refused to it");
        return;
    }
    let dir = TestDir::new("copy-readonly");
    let src = dir.file("src", 5_000);
    let dst = dir.file("dst", 100);
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o444)).unwrap();
    let e = copy(&src, &dst).unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), 100);
    assert_eq!(dir.names(), ["dst", "src"]);
}

#[test]
fn holes_are_kept_by_default_and_filled_with_never() {
    let dir = TestDir::new("copy-sparse");
    let src = dir.join("sparse");
    let size = 8u64 << 20;
    {
        let f = File::create(&src).unwrap();
        f.set_len(size).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"head", 0).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"tail", size - 4).unwrap();
    }
    if first_hole(&src) == size {
        eprintln!("skipped: the temp directory's filesystem does not report holes");
        return;
    }
    for method in METHODS {
        let dst = dir.join(&format!("auto-{}", method.name()));
        let copied = CopyOptions::new().method(method).copy(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
        assert!(first_hole(&dst) < size, "{method:?} filled the hole");
        assert!(
            copied.data_bytes < size / 2,
            "{method:?} moved {}",
            copied.data_bytes
        );
    }
    let dst = dir.join("never");
    CopyOptions::new()
        .method(Method::ReadWrite)
        .sparse(Sparse::Never)
        .copy(&src, &dst)
        .unwrap();
    assert_eq!(first_hole(&dst), size);
    assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
}

#[test]
fn sparse_always_turns_zero_blocks_into_holes() {
    let dir = TestDir::new("copy-always");
    let src = dir.join("zeros");
    let mut data = vec![0u8; 1 << 20];
    data[0] = 1;
    *data.last_mut().unwrap() = 2;
    std::fs::write(&src, &data).unwrap();
    let dst = dir.join("dst");
    CopyOptions::new()
        .sparse(Sparse::Always)
        .copy(&src, &dst)
        .unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), data);
    // Zero blocks at the very end become a trailing hole of the right size.
    let tail = dir.join("tail");
    std::fs::write(&tail, &data[..data.len() - 1]).unwrap();
    let tail_copy = dir.join("tail-copy");
    CopyOptions::new()
        .sparse(Sparse::Always)
        .copy(&tail, &tail_copy)
        .unwrap();
    let mut expect = data.clone();
    expect.pop();
    *expect.last_mut().unwrap() = 0;
    std::fs::write(&tail, &expect).unwrap();
    CopyOptions::new()
        .sparse(Sparse::Always)
        .copy(&tail, &tail_copy)
        .unwrap();
    assert_eq!(std::fs::read(&tail_copy).unwrap(), expect);
    let hole = first_hole(&dst);
    if hole == data.len() as u64 {
        eprintln!("skipped hole check: the filesystem does not report holes");
    } else {
        assert!(hole <= 4096, "first hole at {hole}");
    }
}

#[test]
fn copying_a_file_onto_itself_or_a_hard_link_is_refused() {
    let dir = TestDir::new("copy-self");
    let src = dir.file("a", 1000);
    let link = dir.join("b");
    std::fs::hard_link(&src, &link).unwrap();
    for dst in [&src, &link] {
        let err = copy(&src, dst).unwrap_err();
        assert!(matches!(err, Error::SameFile { .. }), "{err}");
        assert!(err.to_string().contains("are the same file"), "{err}");
    }
    assert_eq!(std::fs::read(&src).unwrap().len(), 1000);
    assert_eq!(dir.names(), ["a", "b"]);
}

#[test]
fn bad_sources_and_destinations_are_named_in_the_error() {
    let dir = TestDir::new("copy-bad");
    let missing = dir.join("missing");
    let err = copy(&missing, &dir.join("x")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
    let err = copy(dir.path(), &dir.join("x")).unwrap_err();
    assert!(matches!(err, Error::NotRegular { .. }), "{err}");
    let src = dir.file("src", 10);
    let err = copy(&src, dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotRegular { .. }), "{err}");
    let err = copy(&src, &dir.join("no/such/dir/x")).unwrap_err();
    assert!(err.to_string().contains("no/such/dir/x"), "{err}");
    assert_eq!(dir.names(), ["src"]);
}

#[test]
fn a_fifo_source_is_refused_without_blocking() {
    let dir = TestDir::new("copy-fifo");
    let fifo = dir.fifo("fifo");
    let err = copy(&fifo, &dir.join("x")).unwrap_err();
    assert!(matches!(err, Error::NotRegular { .. }), "{err}");
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallFs(TestDir);

impl SmallFs {
    fn mount(size: &str) -> Option<Self> {
        let dir = TestDir::new("smallfs");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_filesystem_leaves_no_partial_file_under_the_final_name() {
    let Some(fs) = SmallFs::mount("256k") else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let dir = TestDir::new("copy-full");
    let src = dir.file("big", 1 << 20);
    let old = fs.0.join("kept");
    std::fs::write(&old, b"old contents").unwrap();
    for method in METHODS {
        let err = CopyOptions::new()
            .method(method)
            .copy(&src, &fs.0.join("new"))
            .unwrap_err();
        assert!(err.to_string().contains("new"), "{method:?}: {err}");
        let err = CopyOptions::new()
            .method(method)
            .copy(&src, &old)
            .unwrap_err();
        assert!(err.to_string().contains("kept"), "{method:?}: {err}");
        assert_eq!(fs.0.names(), ["kept"], "{method:?}");
        assert_eq!(std::fs::read(&old).unwrap(), b"old contents");
    }
    // Read-only: nothing can be created, the old file stays.
    let small = dir.file("small", 100);
    let ro = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs.0.path())
        .status()
        .is_ok_and(|s| s.success());
    if ro {
        let err = copy(&small, &old).unwrap_err();
        assert!(err.to_string().contains("kept"), "{err}");
        assert_eq!(fs.0.names(), ["kept"]);
        assert_eq!(std::fs::read(&old).unwrap(), b"old contents");
    } else {
        eprintln!("skipped the read-only half: cannot remount the tmpfs read-only");
    }
}

#[test]
fn a_tree_copies_files_dirs_and_links_and_reports_what_it_cannot() {
    let dir = TestDir::new("copy-tree");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    let mut expect = Vec::new();
    for (i, name) in ["one", "a/two", "a/b/three", "a/b/four"].iter().enumerate() {
        let data: Vec<u8> = (0..=i * 5000).map(|j| (j % 7) as u8).collect();
        std::fs::write(src.join(name), &data).unwrap();
        expect.push((name, data));
    }
    std::os::unix::fs::symlink("one", src.join("link")).unwrap();
    dir.fifo("src/a/fifo");
    std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let dst = dir.join("dst");
    let done = copy_tree(&src, &dst, &CopyOptions::new(), &|_| {}).unwrap();
    assert_eq!((done.files, done.dirs, done.symlinks), (4, 3, 1));
    assert_eq!(done.failures.len(), 1, "{:?}", done.failures);
    assert!(done.failures[0].to_string().contains("fifo"));
    for (name, data) in &expect {
        assert_eq!(&std::fs::read(dst.join(name)).unwrap(), data, "{name}");
    }
    assert_eq!(
        std::fs::read_link(dst.join("link")).unwrap(),
        Path::new("one")
    );
    assert_eq!(
        std::fs::metadata(dst.join("a")).unwrap().mode() & 0o777,
        0o750
    );
    assert_eq!(dir.names(), ["dst", "src"]);
    // Again into the existing tree: merged, files replaced.
    std::fs::write(src.join("one"), b"changed").unwrap();
    let again = copy_tree(&src, &dst, &CopyOptions::new(), &|_| {}).unwrap();
    assert_eq!(again.files, 4);
    assert_eq!(std::fs::read(dst.join("one")).unwrap(), b"changed");
    // Into itself: refused.
    let err = copy_tree(&src, &src.join("a/inside"), &CopyOptions::new(), &|_| {}).unwrap_err();
    assert!(matches!(err, Error::IntoItself { .. }), "{err}");
}

#[test]
fn a_tree_merged_into_a_directory_that_resolves_inside_the_source_is_refused() {
    let dir = TestDir::new("copy-tree-link-into");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), b"x").unwrap();
    // An existing destination (a merge) that is the source's own
    // subdirectory under another name: each level made would be walked
    // again, nesting sub/sub/sub/… until the path is too long.
    std::os::unix::fs::symlink(src.join("sub"), dir.join("link")).unwrap();
    let err = copy_tree(&src, &dir.join("link"), &CopyOptions::new(), &|_| {}).unwrap_err();
    assert!(matches!(err, Error::IntoItself { .. }), "{err}");
    assert!(!src.join("sub/sub").exists());
    // The source itself as the destination.
    let err = copy_tree(&src, &src, &CopyOptions::new(), &|_| {}).unwrap_err();
    assert!(matches!(err, Error::IntoItself { .. }), "{err}");
}

#[test]
fn a_tree_merged_where_the_destination_has_a_link_for_a_folder_does_not_write_through_it() {
    let dir = TestDir::new("copy-tree-link-in-dest");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), b"x").unwrap();
    std::fs::write(src.join("top"), b"y").unwrap();
    let dst = dir.join("dst");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    // Where the source has a folder, the destination has a link to one.
    std::os::unix::fs::symlink(&elsewhere, dst.join("sub")).unwrap();
    let done = copy_tree(&src, &dst, &CopyOptions::new(), &|_| {}).unwrap();
    assert_eq!(done.failures.len(), 1, "{:?}", done.failures);
    let err = done.failures[0].to_string();
    assert!(err.contains("sub"), "{err}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
    assert!(
        std::fs::symlink_metadata(dst.join("sub"))
            .unwrap()
            .is_symlink()
    );
    // The rest of the tree is copied.
    assert_eq!(std::fs::read(dst.join("top")).unwrap(), b"y");
}

#[test]
fn a_tree_merged_into_existing_folders_keeps_their_modes_and_gives_new_ones_the_sources() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("copy-tree-merge-modes");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("old")).unwrap();
    std::fs::create_dir_all(src.join("new")).unwrap();
    std::fs::write(src.join("old/f"), b"x").unwrap();
    std::fs::write(src.join("new/g"), b"y").unwrap();
    for d in [&src, &src.join("old"), &src.join("new")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    // The destination already has `old`, private to its owner, and is
    // itself private: a merge must not open either to everyone.
    let dst = dir.join("dst");
    std::fs::create_dir_all(dst.join("old")).unwrap();
    for d in [&dst, &dst.join("old")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let done = copy_tree(&src, &dst, &CopyOptions::new(), &|_| {}).unwrap();
    assert!(done.failures.is_empty(), "{:?}", done.failures);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dst), 0o700);
    assert_eq!(mode(&dst.join("old")), 0o700);
    assert_eq!(mode(&dst.join("new")), 0o777);
    assert_eq!(std::fs::read(dst.join("old/f")).unwrap(), b"x");
    assert_eq!(std::fs::read(dst.join("new/g")).unwrap(), b"y");
}

#[test]
fn a_tree_copied_over_a_file_fails_first_and_leaves_no_hidden_copy() {
    let dir = TestDir::new("copy-tree-over-file");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("a/f"), vec![7u8; 100_000]).unwrap();
    let dst = dir.file("plain", 10);
    let err = copy_tree(&src, &dst, &CopyOptions::new(), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("plain"), "{err}");
    assert_eq!(dir.names(), ["plain", "src"]);
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), 10);
}

#[test]
fn a_copy_owned_by_another_user_drops_the_set_id_bits() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to give the source another owner");
        return;
    }
    let dir = TestDir::new("copy-setuid");
    let src = dir.file("prog", 100);
    std::os::unix::fs::chown(&src, Some(54_321), Some(54_321)).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o6755)).unwrap();
    // The copy belongs to root: keeping set-user-ID would make a program
    // that ran as its owner run as root.
    let dst = dir.join("copy");
    copy(&src, &dst).unwrap();
    assert_eq!(std::fs::metadata(&dst).unwrap().mode() & 0o7777, 0o755);
    // The copier's own file keeps them: owner and group are unchanged.
    let own = dir.file("own", 100);
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o6755)).unwrap();
    copy(&own, &dir.join("own-copy")).unwrap();
    assert_eq!(
        std::fs::metadata(dir.join("own-copy")).unwrap().mode() & 0o7777,
        0o6755
    );
}

#[test]
fn a_source_truncated_during_the_copy_is_an_error_not_a_crash() {
    let dir = TestDir::new("copy-truncated");
    let page = memio_map::page_size();
    // The engines that move the bytes in more than one call here
    // (copy_file_range and sendfile take the whole file in one).
    for method in [Method::Mmap, Method::ReadWrite] {
        let src = dir.file("src", 3 << 20);
        let dst = dir.join("dst");
        let mut truncated = false;
        // After the first bytes land, another writer cuts the source to
        // nothing: the mmap engine's next window lies wholly past the end
        // of the file, where touching the mapping would raise SIGBUS.
        let err = CopyOptions::new()
            .method(method)
            .sparse(Sparse::Never)
            .window(page)
            .copy_with_progress(&src, &dst, &mut |_| {
                if !truncated {
                    truncated = true;
                    File::options()
                        .write(true)
                        .open(&src)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                }
            });
        let err = err.unwrap_err();
        assert!(err.to_string().contains("src"), "{method:?}: {err}");
        assert_eq!(dir.names(), ["src"], "{method:?}");
    }
    // Another thread cuts the source while a window is mapped and being
    // written: the pwrite that meets the end sees EFAULT, the process
    // lives.
    let src = dir.file("src", 8 << 20);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = File::options().write(true).open(&src).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.set_len(0).unwrap();
                f.set_len(8 << 20).unwrap();
            }
        });
        for _ in 0..200 {
            let _ = CopyOptions::new()
                .method(Method::Mmap)
                .sparse(Sparse::Never)
                .copy(&src, &dir.join("dst"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// Hidden temporaries (`.NAME.memio-PID-N~`) left in `dir`.
fn leftovers(dir: &TestDir) -> Vec<String> {
    dir.names()
        .into_iter()
        .filter(|n| n.contains(".memio-"))
        .collect()
}

#[test]
fn remove_temporaries_clears_interrupted_copies_and_never_the_final_name() {
    // It removes every copy's temporaries in the process, so it runs in a
    // child of its own, away from the other tests' copies.
    let Some(case) = crate::test_dir::alone(
        "copy::tests::remove_temporaries_clears_interrupted_copies_and_never_the_final_name",
        &["file", "tree", "replace"],
    ) else {
        return;
    };
    let dir = TestDir::new("interrupted");
    let src = dir.file("src", 3 << 20);
    let dst = dir.join("dst");
    let options = CopyOptions::new().method(Method::ReadWrite);
    let removed = std::sync::atomic::AtomicUsize::new(0);
    let interrupted = std::sync::atomic::AtomicBool::new(false);
    // Once only, though several workers hear progress at once.
    let interrupt = |_: u64| {
        if !interrupted.swap(true, std::sync::atomic::Ordering::Relaxed) {
            removed.store(remove_temporaries(), std::sync::atomic::Ordering::Relaxed);
        }
    };
    match case {
        "file" => {
            let copied = options.copy_with_progress(&src, &dst, &mut { interrupt });
            assert!(copied.is_err(), "the copy lost its temporary file");
            assert!(!dst.exists(), "nothing under the final name");
        }
        "replace" => {
            std::fs::write(&dst, b"old").unwrap();
            assert!(
                options
                    .copy_with_progress(&src, &dst, &mut { interrupt })
                    .is_err()
            );
            assert_eq!(std::fs::read(&dst).unwrap(), b"old", "the old file stays");
        }
        _ => {
            let tree = dir.join("tree");
            std::fs::create_dir_all(tree.join("sub")).unwrap();
            for i in 0..20 {
                std::fs::copy(&src, tree.join(format!("sub/f{i}"))).unwrap();
            }
            let copied = copy_tree(&tree, &dst, &options, &interrupt);
            assert!(copied.is_err(), "the tree lost its temporary root");
            assert!(!dst.exists(), "no tree under the final name");
        }
    }
    assert_eq!(removed.into_inner(), 1, "one temporary was in flight");
    assert_eq!(leftovers(&dir), Vec::<String>::new());
}

#[test]
fn remove_temporaries_clears_a_tree_its_workers_still_fill() {
    // The workers go on creating files in the hidden tree while it is
    // removed; none of those may survive it.
    let Some(_) = crate::test_dir::alone(
        "copy::tests::remove_temporaries_clears_a_tree_its_workers_still_fill",
        &["many"],
    ) else {
        return;
    };
    let dir = TestDir::new("interrupted-tree");
    let tree = dir.join("tree");
    for d in 0..8 {
        let sub = tree.join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..400 {
            std::fs::write(sub.join(format!("f{f}")), b"x").unwrap();
        }
    }
    let dst = dir.join("dst");
    let removed = std::sync::atomic::AtomicUsize::new(0);
    let interrupted = std::sync::atomic::AtomicBool::new(false);
    // Once only, though several workers hear progress at once.
    let interrupt = |_: u64| {
        if !interrupted.swap(true, std::sync::atomic::Ordering::Relaxed) {
            removed.store(remove_temporaries(), std::sync::atomic::Ordering::Relaxed);
        }
    };
    let options = CopyOptions::new().method(Method::ReadWrite);
    assert!(copy_tree(&tree, &dst, &options, &interrupt).is_err());
    assert!(!dst.exists(), "no tree under the final name");
    assert_eq!(removed.into_inner(), 1, "one temporary was in flight");
    assert_eq!(leftovers(&dir), Vec::<String>::new());
}

#[test]
fn a_link_in_a_shared_sticky_folder_is_followed_as_the_kernel_would() {
    use super::follows;
    let tmp = (0o41777, 0);
    // Another user's link in /tmp: not followed, even by root, while
    // fs.protected_symlinks is on.
    assert!(!follows(true, 0, 1234, tmp));
    assert!(!follows(true, 1000, 1234, tmp));
    // One's own link, a link of the folder's owner, a folder that is not
    // sticky or not writable by all, or the setting off: followed.
    assert!(follows(true, 1234, 1234, tmp));
    assert!(follows(true, 1000, 0, tmp));
    assert!(follows(true, 0, 1234, (0o40777, 0)));
    assert!(follows(true, 0, 1234, (0o41755, 0)));
    assert!(follows(false, 0, 1234, tmp));
}
