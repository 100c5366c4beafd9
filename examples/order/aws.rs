//! The order saga on Step Functions (`--aws`): the same saga, the same report, a few more calls.

use super::{Misbehaviour, order, order_saga};
use saga::Outcome;
use saga::aws::{AwsError, DeployedSaga, SdkConfig};

/// Runs one order on Step Functions at the endpoint of `config` (`AWS_ENDPOINT_URL`: the local
/// emulator, or a real account): deploys the state machine `<name>` with its participant queues
/// `<name>-inventory`, `<name>-payments` and `<name>-shipping` and its idempotency table, runs
/// a worker per queue in this process, and runs the order to its end.
pub async fn run_on_aws(
    config: &SdkConfig,
    misbehaving: &[(String, Misbehaviour)],
    name: &str,
) -> Result<Outcome, AwsError> {
    let saga = order_saga(misbehaving).renamed(name).expect("a valid name");
    // The emulator takes any role; on an account, $SAGA_ROLE_ARN names the state machine's.
    let role = std::env::var(saga::aws::ROLE_ENV)
        .unwrap_or_else(|_| "arn:aws:iam::123456789012:role/saga-order".to_owned());
    let deployed = DeployedSaga::builder(config, &saga)
        .role_arn(role)
        .deploy()
        .await?;
    let change = deployed
        .change()
        .expect("a deploy creates, updates or keeps");
    println!("state machine {} ({change:?})", deployed.arn());
    // Each service would run its own worker; here one process runs all three.
    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(std::time::Duration::from_secs(1)))
        .await?;

    let order = order();
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let saga_id = format!("{}-{millis}", order.order_id);
    println!("running saga {saga_id}");
    let report = deployed.run(&saga_id, &order).await?;
    workers.stop().await?;
    for invocation in &report.trace.0 {
        println!("{invocation}");
    }
    println!("outcome: {}", report.outcome);
    Ok(report.outcome)
}
