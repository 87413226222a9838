//! How a request ended: the `outcome` label of the metrics and the HTTP status it maps to
//! (the table in ../shared/DESIGN.md).

use http::StatusCode;

/// nginx's "client closed request", which no response carries: for the access log only.
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// Every way a request can end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    NotFound,
    BadRequest,
    BodyTooLarge,
    Trap,
    ExitError,
    FuelExhausted,
    MemoryExceeded,
    Unavailable,
    OutputTooLarge,
    BadOutput,
    Overloaded,
    Timeout,
    /// The client went away before the response was complete.
    ClientGone,
    /// The module's first version is still being written or compiled.
    Loading,
}

impl Outcome {
    /// All outcomes, in a fixed order (for pre-registering metrics).
    pub const ALL: [Outcome; 15] = [
        Outcome::Ok,
        Outcome::NotFound,
        Outcome::BadRequest,
        Outcome::BodyTooLarge,
        Outcome::Trap,
        Outcome::ExitError,
        Outcome::FuelExhausted,
        Outcome::MemoryExceeded,
        Outcome::Unavailable,
        Outcome::OutputTooLarge,
        Outcome::BadOutput,
        Outcome::Overloaded,
        Outcome::Timeout,
        Outcome::ClientGone,
        Outcome::Loading,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::BadRequest => "bad_request",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::Trap => "trap",
            Outcome::ExitError => "exit_error",
            Outcome::FuelExhausted => "fuel_exhausted",
            Outcome::MemoryExceeded => "memory_exceeded",
            Outcome::Unavailable => "unavailable",
            Outcome::OutputTooLarge => "output_too_large",
            Outcome::BadOutput => "bad_output",
            Outcome::Overloaded => "overloaded",
            Outcome::Timeout => "timeout",
            Outcome::ClientGone => "client_gone",
            Outcome::Loading => "loading",
        }
    }

    /// The status of an error response with this outcome (`Ok` may carry a CGI status).
    pub fn status(self) -> StatusCode {
        match self {
            Outcome::Ok => StatusCode::OK,
            Outcome::NotFound => StatusCode::NOT_FOUND,
            Outcome::BadRequest => StatusCode::BAD_REQUEST,
            Outcome::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Trap
            | Outcome::ExitError
            | Outcome::FuelExhausted
            | Outcome::MemoryExceeded
            | Outcome::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
            Outcome::OutputTooLarge | Outcome::BadOutput => StatusCode::BAD_GATEWAY,
            Outcome::Overloaded | Outcome::Loading => StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Timeout => StatusCode::GATEWAY_TIMEOUT,
            // Nothing more reaches the client; the access log shows nginx's 499.
            Outcome::ClientGone => CLIENT_CLOSED_REQUEST,
        }
    }

    /// Whether the guest caused it (and it deserves a log line of its own).
    pub fn is_guest_failure(self) -> bool {
        matches!(
            self,
            Outcome::Trap
                | Outcome::ExitError
                | Outcome::FuelExhausted
                | Outcome::MemoryExceeded
                | Outcome::OutputTooLarge
                | Outcome::BadOutput
                | Outcome::Timeout
        )
    }

    /// Its position in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_all() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }
}
