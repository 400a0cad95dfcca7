fn main() -> std::process::ExitCode {
    bulkhead::cli::main()
}
