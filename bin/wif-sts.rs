fn main() -> std::process::ExitCode {
    wif::sts::main()
}
