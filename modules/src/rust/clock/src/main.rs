//! clock: server-sent events, one a second. `?n=N` sets how many (default 10, at most 60);
//! each is the time in UTC. Every event is flushed as it is written, so a streaming
//! gateway delivers it at once: open it with `curl -N` or an `EventSource`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DEFAULT_EVENTS: u32 = 10;
const MAX_EVENTS: u32 = 60;
const SECONDS_PER_DAY: u64 = 86_400;

fn main() {
    let events = query_number("n").map_or(DEFAULT_EVENTS, |n| n.min(MAX_EVENTS));
    let mut out = std::io::stdout().lock();
    let head = "Content-Type: text/event-stream\nCache-Control: no-cache\n\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    for id in 1..=events {
        let event = format!("id: {id}\nevent: tick\ndata: {}\n\n", utc_now());
        // A write fails only once the client has gone: stop then.
        if out.write_all(event.as_bytes()).and_then(|()| out.flush()).is_err() {
            return;
        }
        if id < events {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// A number from the query string, `name=N`.
fn query_number(name: &str) -> Option<u32> {
    let query = std::env::var("QUERY_STRING").ok()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((secs / SECONDS_PER_DAY) as i64);
    let rest = secs % SECONDS_PER_DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
