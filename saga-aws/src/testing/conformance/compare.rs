//! How two runs of one case are compared: exactly for a saga without groups, on what its
//! semantics decide for one with groups.

use super::*;

/// Each way `emulator` differs from `in_memory`, two runs of a saga of `definition`.
///
/// A saga without parallel groups is compared exactly: the outcome, the applied effects in
/// order, the final document of a completed saga and the events (as a multiset, see
/// `comparable`).
///
/// A saga with groups is compared on what its semantics decide, not on timing. Branches run at
/// once, so the executes of different branches have no order. And when a step of a group fails
/// for good, which of its sibling branches' executes ran before the group stopped is a race
/// (on Step Functions a stopped branch's command may still reach the worker, before or after
/// its compensation's semantic lock; in memory a branch that has not yet been polled never
/// starts), and so is how often a compensation met its step's execute still running
/// (`ExecuteInProgress`, retried). Call the steps of the other branches of a group in which a
/// step failed for good (in either run) *racing*. Compared, then: the outcome; the
/// compensations, in order; the executes of every step but the racing ones, as a multiset;
/// the net effect, which steps remain applied at the end (executed and not compensated
/// afterwards), over every step but a racing one that no compensation reached (none of a
/// compensated group remains: a racing step's effect, applied or not, was undone); the final
/// document of a completed saga; and the events, without the racing steps' execute events and
/// the compensations' `ExecuteInProgress` failures. The generator of random cases lets at
/// most one branch of a group fail for good, so that the step that failed is no race either.
pub fn compare(definition: &SagaDefinition, in_memory: &Run, emulator: &Run) -> Vec<String> {
    let mut found = Vec::new();
    if in_memory.outcome != emulator.outcome {
        found.push(format!(
            "outcome: in memory {:?}, on Step Functions {:?}",
            in_memory.outcome, emulator.outcome
        ));
    }
    let grouped = definition.steps.iter().any(|s| s.group.is_some());
    let racing = if grouped {
        racing_steps(definition, [in_memory, emulator])
    } else {
        Vec::new()
    };
    if !grouped {
        if in_memory.applied != emulator.applied {
            found.push(format!(
                "applied effects: in memory {:?}, on Step Functions {:?}",
                in_memory.applied, emulator.applied
            ));
        }
    } else {
        let compensations = |run: &Run| -> Vec<String> {
            (run.applied.iter())
                .filter(|(_, action)| *action == Action::Compensate)
                .map(|(step, _)| step.clone())
                .collect()
        };
        let (ours, theirs) = (compensations(in_memory), compensations(emulator));
        if ours != theirs {
            found.push(format!(
                "compensations: in memory {ours:?}, on Step Functions {theirs:?}"
            ));
        }
        let executes = |run: &Run| -> Vec<String> {
            let mut steps: Vec<String> = (run.applied.iter())
                .filter(|(step, action)| *action == Action::Execute && !racing.contains(step))
                .map(|(step, _)| step.clone())
                .collect();
            steps.sort();
            steps
        };
        let (ours, theirs) = (executes(in_memory), executes(emulator));
        if ours != theirs {
            found.push(format!(
                "executes (racing siblings {racing:?} left out): in memory {ours:?}, on Step \
                 Functions {theirs:?}"
            ));
        }
        let undone = |step: &String| {
            [in_memory, emulator].iter().any(|run| {
                (run.applied.iter()).any(|(s, action)| s == step && *action == Action::Compensate)
            })
        };
        let net = |run: &Run| -> Vec<String> {
            let left = remaining(&run.applied);
            left.into_iter()
                .filter(|step| !racing.contains(step) || undone(step))
                .collect()
        };
        let (ours, theirs) = (net(in_memory), net(emulator));
        if ours != theirs {
            found.push(format!(
                "effects remaining at the end: in memory {ours:?}, on Step Functions {theirs:?}"
            ));
        }
    }
    if in_memory.output != emulator.output {
        found.push(format!(
            "final document: in memory {}, on Step Functions {}",
            json!(in_memory.output),
            json!(emulator.output)
        ));
    }
    let comparable = |events: &[SagaNotification]| {
        let kept = events.iter().filter(|event| !racy(event, &racing));
        comparable(&kept.cloned().collect::<Vec<_>>())
    };
    let (ours, theirs) = (comparable(&in_memory.events), comparable(&emulator.events));
    if ours != theirs {
        found.push(format!(
            "events: in memory {ours:?}, on Step Functions {theirs:?}"
        ));
    }
    found
}

/// The steps of the other branches of each group in which a step failed for good (terminally,
/// or on the last attempt its policy allows) in one of `runs`.
fn racing_steps(definition: &SagaDefinition, runs: [&Run; 2]) -> Vec<String> {
    let mut racing = Vec::new();
    for invocation in runs.iter().flat_map(|run| &run.trace.0) {
        let InvocationResult::Failed(error) = &invocation.result else {
            continue;
        };
        let Some((index, step)) = definition.step(&invocation.step) else {
            continue;
        };
        let gave_up =
            error.kind == FailureKind::Terminal || invocation.attempt > step.retry.max_attempts;
        if invocation.action != Action::Execute || !gave_up {
            continue;
        }
        let (Some(group), Some(own)) = (definition.group_of(index), &step.group) else {
            continue;
        };
        for sibling in &definition.steps[group.steps] {
            if sibling
                .group
                .as_ref()
                .is_some_and(|g| g.branch != own.branch)
                && !racing.contains(&sibling.name)
            {
                racing.push(sibling.name.clone());
            }
        }
    }
    racing
}

/// The steps whose effect remains at the end of `applied`: executed, and not compensated
/// after it, sorted.
fn remaining(applied: &[(String, Action)]) -> Vec<String> {
    let mut left: Vec<String> = Vec::new();
    for (step, action) in applied {
        match action {
            Action::Execute if !left.contains(step) => left.push(step.clone()),
            Action::Compensate => left.retain(|s| s != step),
            _ => {}
        }
    }
    left.sort();
    left
}

/// Whether `event` is left out of a grouped saga's comparison: an execute event of a racing
/// step, or a compensation that found its step's execute still running.
fn racy(event: &SagaNotification, racing: &[String]) -> bool {
    match event {
        SagaNotification::StepSucceeded { step, .. } => racing.contains(step),
        SagaNotification::StepFailed {
            step,
            action,
            error,
            ..
        } => match action {
            Action::Execute => racing.contains(step),
            Action::Compensate => error.code == saga_core::invocation::codes::EXECUTE_IN_PROGRESS,
        },
        _ => false,
    }
}

/// Events as compared: a stuck saga's last error keeps only its kind when it is a timeout,
/// since the cause of a timeout is Step Functions' own text (the in-memory executor writes
/// `Timeout: no answer within Ns`); every other error is compared whole. The task token a stuck
/// execution waits on is Step Functions' own, and left out.
fn comparable(events: &[SagaNotification]) -> Vec<Value> {
    let mut events: Vec<Value> = events
        .iter()
        .map(|event| {
            let mut value = serde_json::to_value(event).expect("notifications serialise");
            if let Some(fields) = value.as_object_mut() {
                fields.remove("task_token");
            }
            if let SagaNotification::SagaCompensationFailed {
                error: Some(error), ..
            } = event
                && error.kind == saga_core::FailureKind::Timeout
            {
                value["error"] = json!({ "Error": error.kind.asl_error() });
            }
            value
        })
        .collect();
    events.sort_by_cached_key(Value::to_string);
    events
}
