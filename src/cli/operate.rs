//! The operator's subcommands on a deployed saga: where it stands (`status`), and the recovery
//! of a stuck one (`recover`).

use std::io::Write;

use saga_aws::dynamodb::DynamoDbIdempotencyStore;
use saga_aws::{DeployedSaga, SdkConfig, Status};
use saga_core::Outcome;

use super::print::{trace_lines, watch, what};
use super::{Failure, aws, write};

/// Prints the status of saga `id`: what ran, what runs now, and the outcome once there is one.
pub(super) async fn status(
    deployed: &DeployedSaga,
    id: &str,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let progress = deployed
        .step_functions()
        .progress(&deployed.execution_arn(id))
        .await
        .map_err(aws)?;
    write(out, format!("saga {id}: {:?}", progress.state.status))?;
    for line in trace_lines(&progress.trace) {
        write(out, format!("  {line}"))?;
    }
    if let Some((step, action, attempt)) = &progress.running {
        write(
            out,
            format!("  .. {} (attempt {attempt})", what(step, *action)),
        )?;
    }
    match progress.state.outcome(&progress.trace) {
        Some(outcome) => write(out, format!("outcome: {outcome}"))?,
        None if progress.state.status == Status::Running => {}
        None => write(
            out,
            format!(
                "ended {:?}: {}",
                progress.state.status,
                progress.state.cause.as_deref().unwrap_or("no cause given")
            ),
        )?,
    }
    if progress.state.status == Status::Stuck {
        write(
            out,
            format!("waiting for an operator: fix the cause, then `recover {id}`"),
        )?;
    }
    Ok(())
}

/// Recovers stuck saga `id` (its stored failure forgotten in `table`, the action that gave up
/// run again) and follows it to where it ends.
pub(super) async fn recover(
    config: &SdkConfig,
    deployed: &DeployedSaga,
    id: &str,
    table: &str,
    out: &mut dyn Write,
) -> Result<Outcome, Failure> {
    let store = DynamoDbIdempotencyStore::new(config, table);
    let stuck = deployed
        .step_functions()
        .recover(&deployed.execution_arn(id), &store)
        .await
        .map_err(aws)?;
    write(
        out,
        format!(
            "saga {id} recovered: {} runs again",
            what(&stuck.step, stuck.action)
        ),
    )?;
    watch(deployed, id, out).await
}
