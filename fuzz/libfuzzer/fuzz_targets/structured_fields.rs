#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tiercel_fuzz::structured_fields::check(data));
