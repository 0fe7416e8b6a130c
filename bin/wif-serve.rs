fn main() -> std::process::ExitCode {
    wif::serve::main()
}
