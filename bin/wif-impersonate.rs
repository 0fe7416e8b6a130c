fn main() -> std::process::ExitCode {
    wif::tools::impersonate::main()
}
