fn main() -> std::process::ExitCode {
    wif::inspect::main()
}
