fn main() -> std::process::ExitCode {
    wif::emulator::main()
}
