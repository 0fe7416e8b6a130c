#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wif::fuzzing::emulator_request(data));
