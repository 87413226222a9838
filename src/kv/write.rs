//! What a store is asked to change, and the arithmetic both backends share: a write is
//! applied whole or not at all, counts its keys and values against the store's quota, and
//! an increment reads and writes a counter as its decimal text.

use super::error::KvError;

/// One change to one store, applied whole or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    /// Sets each key to its value; no key appears twice (the session keeps the last).
    Set(Vec<(Vec<u8>, Vec<u8>)>),
    /// Removes each key that exists.
    Delete(Vec<Vec<u8>>),
    /// Adds the delta to the counter at the key (absent: from 0).
    Increment(Vec<u8>, i64),
}

/// What a write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Done,
    /// An increment's new value.
    Counter(i64),
}

/// One page of a store's keys, and where the next page starts, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyPage {
    pub keys: Vec<Vec<u8>>,
    pub next: Option<u64>,
}

/// The bytes one entry counts against its store's quota.
pub(crate) fn entry_bytes(key: &[u8], value_len: usize) -> u64 {
    (key.len() + value_len) as u64
}

/// The counter a stored value holds: its text as a decimal i64, nothing else.
pub(crate) fn parse_counter(value: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(value)
        .ok()
        .filter(|text| !text.starts_with('+'))
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(KvError::NotANumber)
}

/// `current` plus `delta`, or [`KvError::NotANumber`] when it overflows.
pub(crate) fn add(current: i64, delta: i64) -> Result<i64, KvError> {
    current.checked_add(delta).ok_or(KvError::NotANumber)
}

/// Whether a store that held `before` bytes may hold `after`: a write that grows it must
/// stay within `quota`; one that shrinks it is always allowed.
pub(crate) fn within_quota(before: u64, after: u64, quota: u64) -> Result<(), KvError> {
    if after > before && after > quota {
        Err(KvError::Quota)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_plain_decimal_text() {
        assert_eq!(parse_counter(b"42"), Ok(42));
        assert_eq!(parse_counter(b"-7"), Ok(-7));
        assert_eq!(parse_counter(b"+7"), Err(KvError::NotANumber));
        assert_eq!(parse_counter(b" 7"), Err(KvError::NotANumber));
        assert_eq!(parse_counter(b"7.0"), Err(KvError::NotANumber));
        assert_eq!(parse_counter(b""), Err(KvError::NotANumber));
        assert_eq!(parse_counter(b"\xff"), Err(KvError::NotANumber));
        assert_eq!(add(i64::MAX, 1), Err(KvError::NotANumber));
    }

    #[test]
    fn only_growth_is_held_to_the_quota() {
        assert_eq!(within_quota(10, 20, 20), Ok(()));
        assert_eq!(within_quota(10, 21, 20), Err(KvError::Quota));
        assert_eq!(within_quota(30, 25, 20), Ok(()));
    }
}
