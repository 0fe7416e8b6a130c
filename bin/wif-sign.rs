fn main() -> std::process::ExitCode {
    wif::sign::main()
}
