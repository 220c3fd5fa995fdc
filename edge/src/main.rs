//! `tiercel-edge`: the edge node.
fn main() {}
