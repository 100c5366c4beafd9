//! The ast -> the `SagaDefinition` it declares, computed at compile time with saga-core's own
//! defaults, so the definition the generated code returns is exactly the one that was checked.

use saga_core::{
    GroupBranch, JitterStrategy, Participant, RetryPolicy, SagaDefinition, StepDefinition,
};

use crate::ast::{RetryAst, SagaAst};

fn apply(policy: &mut RetryPolicy, ast: &RetryAst) {
    if let Some(v) = ast.max_attempts {
        policy.max_attempts = v;
    }
    if let Some(v) = ast.interval {
        policy.interval_seconds = v;
    }
    if let Some(v) = ast.backoff_rate {
        policy.backoff_rate = v;
    }
    if let Some(v) = ast.max_delay {
        policy.max_delay_seconds = Some(v);
    }
    if let Some(v) = ast.jitter {
        policy.jitter = v;
    }
}

pub(crate) fn definition(ast: &SagaAst) -> SagaDefinition {
    let steps = ast
        .steps
        .iter()
        .map(|step| {
            let participant = step
                .participant
                .as_ref()
                .map(|p| p.value.clone())
                .unwrap_or_else(|| Participant::queue(ast.name.value.clone()));
            let mut definition =
                StepDefinition::new(step.name.value.clone(), step.kind, participant);
            if let Some(retry) = &step.retry {
                apply(&mut definition.retry, &retry.value);
            }
            if let Some(retry) = &step.compensation_retry {
                apply(&mut definition.compensation_retry, &retry.value);
            }
            let seconds = |d: &Option<crate::ast::WithTokens<u64>>| {
                d.as_ref()
                    .map(|d| u32::try_from(d.value).unwrap_or(u32::MAX))
            };
            definition.set_timing(seconds(&step.timeout), seconds(&step.heartbeat));
            if let Some(on_failure) = &step.compensate_on_failure {
                definition.compensate_on_failure = on_failure.value;
            }
            definition.condition = step.condition.as_ref().map(|c| c.value.clone());
            // Without `branch`, the branch is named after the step (as the builder's
            // `in_group`); a `branch` without `group` is an error of its own, and ignored here.
            definition.group = step.group.as_ref().map(|group| {
                let branch = step.branch.as_ref().unwrap_or(&step.name);
                GroupBranch::new(group.value.clone(), branch.value.clone())
            });
            definition
        })
        .collect();
    SagaDefinition {
        name: ast.name.value.clone(),
        version: ast.version,
        steps,
    }
}

/// Keeps `JitterStrategy` in scope for readers: the macro emits both variants.
pub(crate) fn jitter_name(jitter: JitterStrategy) -> &'static str {
    match jitter {
        JitterStrategy::None => "None",
        JitterStrategy::Full => "Full",
    }
}
