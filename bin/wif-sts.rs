fn main() -> std::process::ExitCode {
    wif::tools::sts::main()
}
