fn main() -> std::process::ExitCode {
    challenge_loadtest::cli::main()
}
