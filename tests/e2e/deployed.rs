//! `DeployedSaga`: a saga on AWS in as few calls as in memory, with the same report.

use saga::InMemoryExecutor;
use saga_aws::{AwsError, Change, DeployedSaga};

use crate::shop::*;

fn shop(script: &Arc<Script>, name: &str) -> saga::Saga {
    Shop {
        script: script.clone(),
    }
    .into_saga()
    .renamed(name)
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_saga_reports_what_the_in_memory_executor_reports() {
    let config = Emulator::shared().config().await;
    let name = Emulator::unique("deployed");
    let script = || Arc::new(Script::default().with("charge", Execute, Behaviour::Terminal));
    let on_aws_script = script();
    let deployed = DeployedSaga::builder(&config, shop(&on_aws_script, &name).definition())
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap();
    assert_eq!(deployed.change(), Some(Change::Created));
    let queues: Vec<&String> = deployed.queues().keys().collect();
    assert_eq!(queues, ["shop"]);
    let table = format!("{name}-idempotency");
    assert_eq!(deployed.table(), Some(table.as_str()));

    // A worker of another saga is refused before anything runs.
    let other = deployed.spawn_workers(shop(&script(), "other")).await;
    assert!(
        matches!(&other, Err(AwsError::Config(m)) if m.contains("not `other`")),
        "{other:?}"
    );
    let workers = deployed
        .spawn_workers_with(shop(&on_aws_script, &name), |worker| {
            worker.wait_time(Duration::from_secs(1))
        })
        .await
        .unwrap();
    let input = json!({ "order_id": "d-1" });
    let on_aws = deployed.run("d-1", &input).await.unwrap();
    let in_memory = InMemoryExecutor::new(shop(&script(), &name))
        .run(&name, "d-1", &input)
        .await
        .unwrap();
    assert_eq!(on_aws.saga_id, "d-1");
    assert_eq!(on_aws.outcome, in_memory.outcome);
    let seen = workers.workers()[0].stats();
    assert_eq!(on_aws.trace, in_memory.trace, "the worker: {seen:?}");
    // The failed saga's document: the input, the outputs so far, and the error.
    assert_eq!(on_aws.output["order_id"], "d-1", "{:#}", on_aws.output);
    assert_eq!(
        on_aws.output["steps"]["reserve"],
        in_memory.output["steps"]["reserve"]
    );
    let stats = workers.stop().await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].succeeded, stats[0].failed), (2, 1), "{stats:?}");

    // Deployed again: nothing changes, and it is found by its name.
    let again = DeployedSaga::builder(&config, shop(&script(), &name).definition())
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap();
    assert_eq!(again.change(), Some(Change::Unchanged));
    let found = DeployedSaga::find(&config, shop(&script(), &name).definition())
        .await
        .unwrap();
    assert_eq!(found.arn(), deployed.arn());
    assert_eq!(found.queues(), deployed.queues());

    // No worker runs now: the wait gives up, and the saga goes on.
    found.start("d-2", &input).await.unwrap();
    let waited = found
        .wait("d-2", Wait::default().at_most(Duration::from_millis(500)))
        .await;
    assert!(
        matches!(&waited, Err(AwsError::StillRunning { execution, .. }) if execution.ends_with(":d-2")),
        "{waited:?}"
    );
    let early = found
        .step_functions()
        .report(&found.execution_arn("d-2"))
        .await;
    assert!(
        matches!(early, Err(AwsError::StillRunning { .. })),
        "{early:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_not_deployed_is_not_found() {
    let config = Emulator::shared().config().await;
    let name = Emulator::unique("nowhere");
    let found = DeployedSaga::find(&config, shop(&Arc::default(), &name).definition()).await;
    assert!(
        matches!(&found, Err(AwsError::Config(m)) if m.contains("is not deployed here")),
        "{found:?}"
    );
}
