//! `host`: the challenge platform server and its operator commands. All logic lives in the library.

// Per-event allocations (request buffers, event strings) are a large part of the server's CPU; mimalloc serves
// them from thread-local pages where glibc malloc kept consolidating.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    challenge_host::cli::main()
}
