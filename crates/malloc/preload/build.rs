//! Links `libmemio_malloc.so` with `-z nodelete`: an allocator must stay
//! mapped for the life of the process. A `dlclose` would otherwise unmap
//! the code of the pthread key destructor that every thread holding a
//! heap runs at exit (and the heap's blocks outlive the library anyway).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
