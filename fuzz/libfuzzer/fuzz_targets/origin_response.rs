#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tiercel_fuzz::origin_response::check(data));
