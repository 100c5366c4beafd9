//! `run`: the saga in memory, on a paused clock, with the failures the options inject.

use std::io::Write;

use saga_core::testing::FaultPlan;
use saga_core::{Action, InMemoryExecutor, Outcome, Saga, SagaDefinition, StepError};
use serde_json::Value;

use super::args::RunArgs;
use super::print::trace_lines;
use super::{Failure, fail, write};

/// The faults `--fail`, `--flaky` and `--timeout` ask for, on steps `definition` has.
pub(super) fn plan(definition: &SagaDefinition, args: &RunArgs) -> Result<FaultPlan, Failure> {
    let mut plan = FaultPlan::new();
    for step in args.fail.iter().chain(&args.flaky).chain(&args.timeout) {
        if definition.step(step).is_none() {
            return fail(format!("saga `{}` has no step `{step}`", definition.name));
        }
    }
    for step in &args.fail {
        plan = plan.fail(
            step,
            Action::Execute,
            StepError::terminal("Injected", format!("--fail {step}")),
            u32::MAX,
        );
    }
    for step in &args.flaky {
        plan = plan.fail(
            step,
            Action::Execute,
            StepError::retryable(format!("--flaky {step}")),
            2,
        );
    }
    for step in &args.timeout {
        plan = plan.time_out(step, Action::Execute, 1);
    }
    Ok(plan)
}

/// Runs `saga` on `input` under `plan`, printing each invocation and the outcome.
pub(super) async fn run(
    saga: Saga,
    input: Value,
    plan: FaultPlan,
    out: &mut dyn Write,
) -> Result<Outcome, Failure> {
    let name = saga.name().to_owned();
    let saga_id = format!("{name}-1");
    let executor = InMemoryExecutor::builder().saga(saga).faults(plan).build();
    let report = executor
        .run(&name, &saga_id, &input)
        .await
        .map_err(|e| Failure::Error(e.to_string()))?;
    for line in trace_lines(&report.trace) {
        write(out, line)?;
    }
    write(out, format!("outcome: {}", report.outcome))?;
    Ok(report.outcome)
}
