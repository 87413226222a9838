//! Fuzzes the CGI response parser with arbitrary guest stdout: it must never panic, and a
//! response it accepts must be one hyper can send (a final status, valid header values,
//! no framing headers, and a body that is a suffix of the output).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wasmgate::testing::parse_output;

fuzz_target!(|data: &[u8]| {
    let out = Bytes::copy_from_slice(data);
    if let Ok(response) = parse_output(out.clone()) {
        assert!((200..600).contains(&response.status.as_u16()));
        assert!(out.ends_with(&response.body));
        for name in ["content-length", "transfer-encoding", "connection"] {
            assert!(!response.headers.contains_key(name));
        }
    }
});
