//! Retry policies with the exact semantics of Amazon States Language `Retry` fields.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// ASL's upper bound for `MaxAttempts` and `IntervalSeconds` (99999999).
pub const ASL_MAX_INTEGER: u32 = 99_999_999;
/// ASL's upper bound for `MaxDelaySeconds` (31622400 s, one year).
pub const ASL_MAX_DELAY_SECONDS: u32 = 31_622_400;

/// How the delay before each retry is randomised (ASL `JitterStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JitterStrategy {
    /// The delay is exactly the computed backoff.
    #[default]
    None,
    /// The delay is uniformly random between zero and the computed backoff.
    Full,
}

/// A retry policy, field for field the ASL `Retrier`.
///
/// `max_attempts` counts retries *after* the first attempt (so `max_attempts: 3` allows four
/// invocations in all, and `0` means never retry). Before retry `n` (1-based) the executor waits
/// `interval_seconds * backoff_rate^(n-1)` seconds, capped by `max_delay_seconds`, then randomised
/// by the jitter strategy. Seconds are whole numbers because ASL only has whole seconds, and the
/// in-memory executor must wait exactly what Step Functions waits.
///
/// ```
/// use std::time::Duration;
/// use saga_core::RetryPolicy;
///
/// let policy = RetryPolicy::new(3).interval_seconds(2).backoff_rate(3.0).max_delay_seconds(10);
/// assert_eq!(policy.delay(1), Duration::from_secs(2));
/// assert_eq!(policy.delay(2), Duration::from_secs(6));
/// assert_eq!(policy.delay(3), Duration::from_secs(10)); // 18 s capped at 10 s
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (ASL `MaxAttempts`, default 3).
    pub max_attempts: u32,
    /// Delay before the first retry, in seconds (ASL `IntervalSeconds`, default 1).
    pub interval_seconds: u32,
    /// Multiplier for each further retry (ASL `BackoffRate`, default 2.0, at least 1.0).
    pub backoff_rate: f64,
    /// Upper bound of any delay (ASL `MaxDelaySeconds`), none by default.
    pub max_delay_seconds: Option<u32>,
    /// Randomisation of the delay (ASL `JitterStrategy`, default `NONE`).
    pub jitter: JitterStrategy,
}

impl Default for RetryPolicy {
    /// ASL's defaults: 3 retries, 1 s, backoff 2.0, no cap, no jitter.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            interval_seconds: 1,
            backoff_rate: 2.0,
            max_delay_seconds: None,
            jitter: JitterStrategy::None,
        }
    }
}

impl RetryPolicy {
    /// ASL defaults with the given number of retries.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            ..Self::default()
        }
    }

    /// No retries at all: the first failure is final.
    pub fn none() -> Self {
        Self::new(0)
    }

    /// The long policy used by default for compensations and for retriable steps after the
    /// pivot: 20 retries, from 1 s doubling up to 5 minutes (about 1.4 hours in all).
    pub fn long() -> Self {
        Self {
            max_attempts: 20,
            max_delay_seconds: Some(300),
            ..Self::default()
        }
    }

    /// Sets `IntervalSeconds`.
    pub fn interval_seconds(mut self, seconds: u32) -> Self {
        self.interval_seconds = seconds;
        self
    }

    /// Sets `BackoffRate`.
    pub fn backoff_rate(mut self, rate: f64) -> Self {
        self.backoff_rate = rate;
        self
    }

    /// Sets `MaxDelaySeconds`.
    pub fn max_delay_seconds(mut self, seconds: u32) -> Self {
        self.max_delay_seconds = Some(seconds);
        self
    }

    /// Sets `JitterStrategy`.
    pub fn jitter(mut self, jitter: JitterStrategy) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry `retry` (1-based) without jitter:
    /// `interval * rate^(retry-1)`, capped by `max_delay_seconds`.
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(i32::MAX as u32) as i32;
        let mut seconds = f64::from(self.interval_seconds) * self.backoff_rate.powi(exponent);
        if let Some(cap) = self.max_delay_seconds {
            seconds = seconds.min(f64::from(cap));
        }
        // ASL never waits longer than a year-ish; keep the arithmetic finite.
        Duration::from_secs_f64(seconds.clamp(0.0, f64::from(ASL_MAX_INTEGER) * 1e3))
    }

    /// The delay before retry `retry` with the jitter strategy applied.
    pub fn jittered_delay(&self, retry: u32) -> Duration {
        let delay = self.delay(retry);
        match self.jitter {
            JitterStrategy::None => delay,
            JitterStrategy::Full => delay.mul_f64(fastrand::f64()),
        }
    }

    /// Whether a failure of attempt `attempt` (1-based) may be retried.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt <= self.max_attempts
    }

    /// The sum of all delays if every retry is used (without jitter).
    pub fn worst_case_wait(&self) -> Duration {
        (1..=self.max_attempts).map(|n| self.delay(n)).sum()
    }

    /// Checks the ranges ASL accepts; returns the first violation as a sentence.
    pub fn check(&self) -> Result<(), String> {
        if self.max_attempts > ASL_MAX_INTEGER {
            return Err(format!(
                "MaxAttempts {} is above {ASL_MAX_INTEGER}",
                self.max_attempts
            ));
        }
        if self.interval_seconds == 0 || self.interval_seconds > ASL_MAX_INTEGER {
            return Err(format!(
                "IntervalSeconds {} is outside 1..={ASL_MAX_INTEGER}",
                self.interval_seconds
            ));
        }
        if !self.backoff_rate.is_finite() || self.backoff_rate < 1.0 {
            return Err(format!("BackoffRate {} is below 1.0", self.backoff_rate));
        }
        if let Some(cap) = self.max_delay_seconds
            && (cap == 0 || cap > ASL_MAX_DELAY_SECONDS)
        {
            return Err(format!(
                "MaxDelaySeconds {cap} is outside 1..={ASL_MAX_DELAY_SECONDS}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_asl_formula() {
        let p = RetryPolicy::new(5).interval_seconds(1).backoff_rate(2.0);
        let delays: Vec<u64> = (1..=5).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16]);
        assert_eq!(p.worst_case_wait(), Duration::from_secs(31));
    }

    #[test]
    fn cap_and_fractional_rates() {
        let p = RetryPolicy::new(4)
            .interval_seconds(2)
            .backoff_rate(1.5)
            .max_delay_seconds(4);
        assert_eq!(p.delay(2), Duration::from_secs(3));
        assert_eq!(p.delay(3), Duration::from_secs(4));
    }

    #[test]
    fn full_jitter_stays_below_the_backoff() {
        let p = RetryPolicy::new(3)
            .interval_seconds(8)
            .jitter(JitterStrategy::Full);
        for _ in 0..100 {
            assert!(p.jittered_delay(2) <= Duration::from_secs(16));
        }
    }

    #[test]
    fn ranges_are_checked() {
        assert!(RetryPolicy::default().check().is_ok());
        assert!(
            RetryPolicy::default()
                .backoff_rate(0.5)
                .check()
                .unwrap_err()
                .contains("BackoffRate")
        );
        assert!(RetryPolicy::default().interval_seconds(0).check().is_err());
        assert!(
            RetryPolicy::default()
                .max_delay_seconds(ASL_MAX_DELAY_SECONDS + 1)
                .check()
                .is_err()
        );
        assert!(RetryPolicy::default().max_delay_seconds(0).check().is_err());
    }

    #[test]
    fn serialises_with_asl_jitter_names() {
        let json = serde_json::to_value(JitterStrategy::Full).unwrap();
        assert_eq!(json, "FULL");
    }
}
