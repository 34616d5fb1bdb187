use std::env;

/// Rebuild the programs when the bpf-linker binary changes: cargo does not know it links them.
fn main() {
    let path = env::var_os("PATH").unwrap_or_default();
    for dir in env::split_paths(&path) {
        let candidate = dir.join("bpf-linker");
        if candidate.is_file() {
            println!("cargo:rerun-if-changed={}", candidate.display());
            return;
        }
    }
}
