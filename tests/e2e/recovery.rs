//! Recovering a stuck saga on the emulator: a compensation fails until the test "fixes" its
//! participant, `recover` runs it again, and the saga ends compensated with every effect applied
//! exactly once; the in-memory executor, recovering the same saga, reports the same trace.

use saga::{InMemoryExecutor, Outcome, Trace};

use crate::shop::*;

/// The stuck saga's script: the pivot declines, and the compensation of `reserve` is broken.
fn broken() -> Script {
    Script::default()
        .with("charge", Execute, Behaviour::Terminal)
        .with("reserve", Compensate, Behaviour::TerminalUntilFixed)
}

/// Each (step, action, attempt, succeeded) of a trace.
fn attempts(trace: &Trace) -> Vec<(String, Action, u32, bool)> {
    trace
        .0
        .iter()
        .map(|i| {
            let ok = matches!(i.result, saga::InvocationResult::Succeeded);
            (i.step.clone(), i.action, i.attempt, ok)
        })
        .collect()
}

/// Runs the command line `shop ARGS` over the deployed saga, as an operator would.
async fn cli(env: &Env, args: &[&str]) -> (std::process::ExitCode, String) {
    let entry = saga::cli::Entry::from(env.saga.clone());
    command_line(&env.config, vec![entry], args)
        .await
        .unwrap_or_else(|e| panic!("`shop {}` failed: {e}", args.join(" ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_saga_recovers_after_the_fix_with_every_effect_exactly_once() {
    let env = env(broken()).await;
    let saga_id = "recover-1";
    let arn = saga_aws::execution_arn(&env.machine, saga_id);
    assert_eq!(env.run(saga_id).await.status, Status::Stuck);

    // The report names what gave up and carries the token the execution waits on.
    let notices = env
        .notifications(saga_id, "SagaCompensationFailed", 20)
        .await;
    assert!(
        notices.iter().any(|n| matches!(n,
            SagaNotification::SagaCompensationFailed { step, action: Some(Compensate), task_token: Some(_), .. }
                if step == "reserve")),
        "{notices:?}"
    );

    let table = saga_aws::store::default_table_name(&env.saga_name);
    let store = DynamoDbIdempotencyStore::new(&env.config, &table);
    // Recovered before the fix: the compensation runs again (its stored failure forgotten),
    // gives up again, and the saga is stuck again, having applied nothing more.
    env.sfn.recover(&arn, &store).await.unwrap();
    assert_eq!(env.wait(saga_id).await.status, Status::Stuck);
    assert_eq!(env.script.ledger(saga_id), effects(&[("reserve", Execute)]));

    // The operator sees it stuck, fixes the participant, and recovers it with the command line,
    // which follows it to its end.
    let (_, status) = cli(&env, &["status", saga_id]).await;
    assert!(
        status.starts_with(&format!("saga {saga_id}: Stuck")),
        "{status}"
    );
    assert!(status.contains(&format!("`recover {saga_id}`")), "{status}");
    env.script.fix();
    let (code, recovered) = cli(&env, &["recover", saga_id, "--table", &table]).await;
    assert!(
        recovered.starts_with(&format!(
            "saga {saga_id} recovered: compensation of reserve runs again"
        )),
        "{recovered}"
    );
    assert!(recovered.contains("outcome: compensated"), "{recovered}");
    assert_eq!(code, std::process::ExitCode::from(3), "not completed");
    let report = env.sfn.report(&arn).await.unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "charge"),
        "{:?}",
        report.outcome
    );
    assert_eq!(
        env.script.ledger(saga_id),
        effects(&[("reserve", Execute), ("reserve", Compensate)]),
        "every effect exactly once"
    );
    // A saga that is not stuck is refused.
    let refused = env.sfn.recover(&arn, &store).await.unwrap_err();
    assert!(
        matches!(refused, saga_aws::AwsError::NotStuck { .. }),
        "{refused}"
    );

    // The same saga, stuck and recovered the same way in memory, reports the same trace.
    let script = Arc::new(broken());
    let shop = Shop {
        script: script.clone(),
    }
    .into_saga();
    let memory = InMemoryExecutor::new(shop);
    let input = json!({ "order_id": saga_id });
    let stuck = memory.run("shop", saga_id, &input).await.unwrap();
    assert!(matches!(stuck.outcome, Outcome::CompensationFailed { .. }));
    memory.recover(saga_id).await.unwrap();
    script.fix();
    let in_memory = memory.recover(saga_id).await.unwrap();
    assert_eq!(in_memory.outcome, report.outcome);
    assert_eq!(attempts(&in_memory.trace), attempts(&report.trace));
    let compensations: Vec<u32> = attempts(&report.trace)
        .into_iter()
        .filter(|(step, action, ..)| step == "reserve" && *action == Compensate)
        .map(|(_, _, attempt, _)| attempt)
        .collect();
    assert_eq!(
        compensations,
        [1, 1, 1],
        "each recovery starts at attempt 1"
    );
}
