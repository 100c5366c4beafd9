//! The operator's subcommands on a deployed saga: where it stands (`status`), the recovery of
//! a stuck one (`recover`), and the sagas in flight by version (`versions`).

use std::io::Write;

use saga_aws::dynamodb::DynamoDbIdempotencyStore;
use saga_aws::{DeployedSaga, SdkConfig, Status};
use saga_core::Outcome;

use super::print::{trace_lines, watch, what};
use super::{Entry, Failure, aws, write};

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

/// Prints where new sagas start, then the sagas in flight by the version of the state machine
/// they run, with whether this program's handlers can finish them (what `deploy` checks).
pub(super) async fn versions(
    config: &SdkConfig,
    entry: &Entry,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut deployed = DeployedSaga::find(config, &entry.definition)
        .await
        .map_err(aws)?;
    for older in &entry.older {
        deployed = deployed.with_older_version(older.clone()).map_err(aws)?;
    }
    let mut have: Vec<u32> = std::iter::once(entry.definition.version)
        .chain(entry.older.iter().map(|s| s.definition().version))
        .collect();
    have.sort_unstable();
    let have: Vec<String> = have.iter().map(u32::to_string).collect();
    write(out, format!("new sagas start on {}", deployed.start_arn()))?;
    write(
        out,
        format!(
            "this program has the handlers of saga `{}` version {}",
            entry.definition.name,
            have.join(", ")
        ),
    )?;
    let in_flight = deployed.in_flight().await.map_err(aws)?;
    if in_flight.is_empty() {
        write(out, "no saga in flight")?;
    }
    for (group, reasons) in in_flight {
        let mut declared: Vec<String> = group
            .sends
            .iter()
            .map(|s| {
                s.saga_version
                    .map_or("unnamed".to_owned(), |v| v.to_string())
            })
            .collect();
        declared.dedup();
        let verdict = if reasons.is_empty() {
            "this program can finish them"
        } else {
            "this program cannot finish them"
        };
        write(
            out,
            format!(
                "{}: {} saga(s) in flight, declared version {}: {verdict}",
                group.label(),
                group.saga_ids.len(),
                declared.join(", ")
            ),
        )?;
        for reason in reasons {
            write(out, format!("  {reason}"))?;
        }
    }
    Ok(())
}
