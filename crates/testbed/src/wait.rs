//! Waiting in tests: one [`eventually`] for every crate's tests (the product itself waits with watches).

use std::time::Duration;

use crate::Error;

/// How long [`eventually`] waits: generous, because the machine may be loaded; a wait ends as soon as its
/// condition holds (not a timing assertion: the deadline only stops a broken run from hanging).
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Polls `probe` until it returns `Some`, for [`DEADLINE`] at most (for what a single watch cannot express).
/// A condition on a bool is `async || condition.then_some(())`.
pub async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Option<T>) -> Result<T, Error> {
    eventually_within(DEADLINE, what, probe).await
}

/// [`eventually`] with a deadline of the caller's. Polls after 10 ms first, then less often, up to every 100 ms:
/// what happens in milliseconds is seen in milliseconds, and a slow wait does not hammer an API server.
pub async fn eventually_within<T>(
    deadline: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> Result<T, Error> {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_millis(100);
    let started = std::time::Instant::now();
    let mut pause = FIRST;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if started.elapsed() > deadline {
            return Err(Error::TimedOut {
                what: what.to_string(),
                after: deadline,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MOST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_value_and_names_what_it_waited_for() {
        let mut calls = 0;
        let value = eventually("the third call", async || {
            calls += 1;
            (calls == 3).then_some(calls)
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn eventually_gives_up_after_the_deadline() {
        let mut calls = 0;
        let error = eventually_within(Duration::from_millis(500), "what never happens", async || {
            calls += 1;
            None::<()>
        })
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "timed out after 500ms waiting for what never happens"
        );
        // Pauses of 10, 20, 40, 80, then 100 ms: about 8 polls in 500 ms; far fewer than polling every 10 ms.
        assert!((6..=10).contains(&calls), "backed off to every 100 ms: {calls}");
    }
}
