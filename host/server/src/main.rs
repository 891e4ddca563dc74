//! `host`: the challenge platform server and its operator commands. All logic lives in the library.

fn main() -> std::process::ExitCode {
    challenge_host::cli::main()
}
