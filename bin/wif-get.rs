fn main() -> std::process::ExitCode {
    wif::tools::get::main()
}
