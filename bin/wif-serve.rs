fn main() -> std::process::ExitCode {
    wif::tools::serve::main()
}
