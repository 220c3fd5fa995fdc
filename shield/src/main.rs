//! `tiercel-shield`: the shield node (the same engine, facing the origin).

// The allocator of tiercel-edge, for the same reason (see edge/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tiercel_edge::cli::main(tiercel_cluster::config::Role::Shield)
}
