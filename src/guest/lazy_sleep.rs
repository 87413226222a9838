//! A tokio timer that is made only when a wait first needs it.
//!
//! Most guests return at their first poll: a CGI function that prints a page, a component
//! that answers at once. Around them, an eagerly made timer (`tokio::time::timeout`,
//! `sleep_until`) is registered in the runtime's timer wheel and deregistered again, a lock
//! of the time driver each way, on every request, for a wait that never happens. A
//! [`LazySleep`] makes its timer the first time it is polled, which its users do only once
//! the guest has returned `Pending`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::time::Sleep;

/// Sleeps until an instant, with its tokio timer made at the first poll. Once it has
/// elapsed it stays so, without polling the timer again (which tokio's cooperative budget
/// could answer with `Pending`).
pub(crate) struct LazySleep {
    at: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    elapsed: bool,
}

impl LazySleep {
    /// A sleep until `at`; nothing is registered until it is polled.
    pub(crate) fn until(at: Instant) -> LazySleep {
        LazySleep {
            at,
            sleep: None,
            elapsed: false,
        }
    }

    /// Ready once `at` has passed; otherwise the task is woken when it does.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.elapsed {
            let at = self.at;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
            self.elapsed = sleep.as_mut().poll(cx).is_ready();
        }
        if self.elapsed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Runs `future` until it completes or `at` passes (`None`), whichever is first; the
/// timer is made only if `future` has to wait.
pub(crate) async fn unless_past<F: Future>(at: Instant, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut sleep = LazySleep::until(at);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        sleep.poll_elapsed(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_future_that_is_ready_at_once_is_not_timed() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(unless_past(past, async { 7 }).await, Some(7));
    }

    #[tokio::test]
    async fn a_future_that_waits_past_the_instant_is_stopped() {
        let at = Instant::now() + Duration::from_millis(20);
        let started = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(unless_past(at, never).await, None);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[tokio::test]
    async fn a_future_that_waits_and_finishes_in_time_gives_its_output() {
        let at = Instant::now() + Duration::from_secs(10);
        let waits = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            "done"
        };
        assert_eq!(unless_past(at, waits).await, Some("done"));
    }

    #[tokio::test]
    async fn an_elapsed_sleep_stays_elapsed() {
        let mut sleep = LazySleep::until(Instant::now() + Duration::from_millis(5));
        std::future::poll_fn(|cx| sleep.poll_elapsed(cx)).await;
        for _ in 0..3 {
            assert!(
                std::future::poll_fn(|cx| Poll::Ready(sleep.poll_elapsed(cx).is_ready())).await
            );
        }
    }
}
