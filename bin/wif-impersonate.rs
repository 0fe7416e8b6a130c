fn main() -> std::process::ExitCode {
    wif::iam::main()
}
