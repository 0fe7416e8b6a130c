fn main() -> std::process::ExitCode {
    wif::get::main()
}
