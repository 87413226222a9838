//! export: a CSV export generated on the fly, `?rows=N` rows (default 500,000, about
//! 12 MB, within the gateway's default output cap; at most 10,000,000, about 230 MB). It never holds more than one 64 KiB buffer: a streaming
//! gateway sends each buffer as it fills, and a client that reads slowly slows the
//! export down rather than the gateway's memory filling up.

use std::io::{BufWriter, Write};

const DEFAULT_ROWS: u64 = 500_000;
const MAX_ROWS: u64 = 10_000_000;
const BUFFER_BYTES: usize = 64 * 1024;
const REGIONS: [&str; 4] = ["north", "east", "south", "west"];

fn main() {
    let rows = query_number("rows").map_or(DEFAULT_ROWS, |n| n.min(MAX_ROWS));
    let head = "Content-Type: text/csv; charset=utf-8\n\
                Content-Disposition: attachment; filename=\"export.csv\"\n\n";
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, std::io::stdout().lock());
    // A write fails only once the client has gone: stop then.
    let _ = write_rows(&mut out, head, rows).and_then(|()| out.flush());
}

fn write_rows(out: &mut impl Write, head: &str, rows: u64) -> std::io::Result<()> {
    out.write_all(head.as_bytes())?;
    writeln!(out, "id,region,quantity,amount")?;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for id in 1..=rows {
        seed = next(seed);
        let region = REGIONS[(seed % 4) as usize];
        let quantity = seed >> 8 & 0xff;
        let cents = seed >> 16 & 0xf_ffff;
        writeln!(out, "{id},{region},{quantity},{}.{:02}", cents / 100, cents % 100)?;
    }
    Ok(())
}

/// xorshift64: the same rows for the same `rows`, with no dependency.
fn next(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A number from the query string, `name=N`.
fn query_number(name: &str) -> Option<u64> {
    let query = std::env::var("QUERY_STRING").ok()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}
