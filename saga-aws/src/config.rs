//! An SDK configuration with the timeouts the SDK lacks by default.
//!
//! The SDK's only default timeout is a 3.1 s connect timeout: a call to an endpoint that accepts
//! and never answers hangs forever. Every config built here sets an attempt and an operation
//! timeout (long enough for a 20 s SQS long poll).

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Timeout of one attempt of a call (covers a 20 s SQS long poll).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of a call with all its retries.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(90);

/// The timeouts every saga client uses.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SDK configuration from the environment (credentials, region, `AWS_ENDPOINT_URL` for an
/// emulator), with [`timeouts`].
pub async fn from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .load()
        .await
}
