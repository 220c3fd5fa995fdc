//! `tiercel-testbed`: not implemented yet; see the testbed issue.
fn main() {
    eprintln!(
        "tiercel-testbed: not implemented yet; start a single edge with `cargo run --release --bin tiercel-edge -- --demo`"
    );
    std::process::exit(2);
}
