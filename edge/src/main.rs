//! `tiercel-edge`: the edge node.

// mimalloc rather than glibc's allocator: a miss makes about 110 allocations, and mimalloc
// serves them in 11 % fewer instructions per request (benches/count-instructions.sh), for a
// peak RSS some 30 MiB higher under 1000 stalled readers (memory_bounds).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tiercel_edge::cli::main(tiercel_cluster::config::Role::Edge)
}
