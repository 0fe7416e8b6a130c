fn main() -> std::process::ExitCode {
    wif::azure::main()
}
