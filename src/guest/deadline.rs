//! A request's wall-clock deadline, enforced on guest code by the engine's epochs.
//!
//! At every epoch tick (`EPOCH_TICK`, in `runtime/ticker.rs`) the store's callback
//! stops the guest if the deadline has passed, and otherwise yields to the runtime, so a
//! spinning guest shares its worker with other requests. It yields with tokio's
//! `yield_now`, which puts the guest back only after the runtime has polled its timers
//! and sockets: a plain self-wake would keep a spinning guest runnable, and a serving
//! thread's single-threaded runtime then looks at its sockets and timers only every 61
//! task polls (tokio's `event_interval`), about 300 ms of 5 ms slices, holding up other
//! connections' requests and a streaming response's writes that long. Host calls that wait (a body still
//! arriving, wasmtime-wasi's `poll_oneoff`) bound their waits by the same instant, and fail
//! with the same [`DeadlinePassed`] error, so every timeout is classified one way.

use std::time::Instant;

use wasmtime::{Store, UpdateDeadline};

/// The error a guest is stopped with when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the deadline passed")]
pub(crate) struct DeadlinePassed;

/// At every epoch tick, stops the guest if `deadline` has passed, and otherwise yields.
pub(crate) fn deadline_by_epoch<T>(store: &mut Store<T>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            return Err(DeadlinePassed.into());
        }
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
}
