//! `tiercel-edge`: the edge node.
fn main() -> std::process::ExitCode {
    tiercel_edge::cli::main(tiercel_cluster::config::Role::Edge)
}
