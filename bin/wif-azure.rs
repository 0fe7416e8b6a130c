fn main() -> std::process::ExitCode {
    wif::tools::azure::main()
}
