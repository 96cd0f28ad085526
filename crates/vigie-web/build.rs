//! Rebuilds the crate when the wallboard's build output changes: the files are embedded at
//! compile time, and a file added to `assets/` is otherwise not noticed.

fn main() {
    println!("cargo:rerun-if-changed=assets");
}
