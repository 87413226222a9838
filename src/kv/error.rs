//! What a key-value call can fail with, as the guest sees it: one enum, with the negative
//! code the `wasmgate` host functions return, the `wasi:keyvalue` error a component gets,
//! and the `result` label of `wasmgate_kv_operations_total`. Every failure is a value for
//! the guest; none is a trap, and none reaches the gateway.

/// Why a key-value call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("no such key")]
    NotFound,
    #[error("the store is not in the module's kv_stores")]
    Denied,
    #[error("the key or value is over its limit")]
    TooLarge,
    #[error("the store did not answer in time")]
    Unavailable,
    #[error("not a store name or handle")]
    Invalid,
    #[error("the store is over max_store_bytes")]
    Quota,
    #[error("the value is not a decimal i64, or the sum overflows")]
    NotANumber,
}

impl KvError {
    /// The code a `wasmgate` host function returns (../shared/DESIGN.md "Key-value stores").
    pub fn code(self) -> i32 {
        match self {
            KvError::NotFound => -1,
            KvError::Denied => -2,
            KvError::TooLarge => -3,
            KvError::Unavailable => -4,
            KvError::Invalid => -5,
            KvError::Quota => -6,
            KvError::NotANumber => -7,
        }
    }

    /// The `result` label of the operations counter.
    pub(crate) fn label(self) -> &'static str {
        match self {
            KvError::NotFound => "not_found",
            KvError::Denied => "denied",
            KvError::TooLarge => "too_large",
            KvError::Unavailable => "unavailable",
            KvError::Invalid => "invalid",
            KvError::Quota => "quota",
            KvError::NotANumber => "not_a_number",
        }
    }
}

/// The `result` label of a call that succeeded.
pub(crate) const OK_LABEL: &str = "ok";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_documented_ones() {
        let all = [
            KvError::NotFound,
            KvError::Denied,
            KvError::TooLarge,
            KvError::Unavailable,
            KvError::Invalid,
            KvError::Quota,
            KvError::NotANumber,
        ];
        let codes: Vec<i32> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [-1, -2, -3, -4, -5, -6, -7]);
    }
}
