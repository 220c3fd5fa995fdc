//! `tiercel-shield`: the shield node (the same engine, facing the origin).
fn main() -> std::process::ExitCode {
    tiercel_edge::cli::main(tiercel_cluster::config::Role::Shield)
}
