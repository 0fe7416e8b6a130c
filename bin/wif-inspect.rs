fn main() -> std::process::ExitCode {
    wif::tools::inspect::main()
}
