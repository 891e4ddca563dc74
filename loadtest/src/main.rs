// The generator shares the machine with the server it measures: a cheaper allocator leaves more CPU to it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    challenge_loadtest::cli::main()
}
