//! `tiercel-shield`: the shield node.
fn main() {}
