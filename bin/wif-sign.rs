fn main() -> std::process::ExitCode {
    wif::tools::sign::main()
}
