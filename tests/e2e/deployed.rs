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
async fn a_deployed_saga_recovers_in_one_call_as_in_memory() {
    let config = crate::emulator().config().await;
    let name = Emulator::unique("recovered");
    let script = Arc::new(
        Script::default()
            .with("charge", Execute, Behaviour::Terminal)
            .with("reserve", Compensate, Behaviour::TerminalUntilFixed),
    );
    let deployed = DeployedSaga::builder(&config, &shop(&script, &name))
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap();
    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(Duration::from_secs(1)))
        .await
        .unwrap();
    let input = json!({ "order_id": "r-1" });
    let stuck = deployed.run("r-1", &input).await.unwrap();
    assert!(
        matches!(stuck.outcome, saga::Outcome::CompensationFailed { .. }),
        "{:?}",
        stuck.outcome
    );
    script.fix();
    let recovered = deployed.recover("r-1").await.unwrap();
    assert!(
        matches!(&recovered.outcome, saga::Outcome::Compensated { failed_step, .. } if failed_step == "charge"),
        "{:?}",
        recovered.outcome
    );
    assert_eq!(
        script.ledger("r-1"),
        effects(&[("reserve", Execute), ("reserve", Compensate)])
    );
    workers.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_saga_reports_what_the_in_memory_executor_reports() {
    let config = crate::emulator().config().await;
    let name = Emulator::unique("deployed");
    let script = || Arc::new(Script::default().with("charge", Execute, Behaviour::Terminal));
    let on_aws_script = script();
    let deployed = DeployedSaga::builder(&config, &shop(&on_aws_script, &name))
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap();
    assert_eq!(deployed.change(), Some(Change::Created));
    let queues: Vec<&String> = deployed.queues().keys().collect();
    assert_eq!(queues, ["shop"]);
    let table = format!("{name}-idempotency");
    assert_eq!(deployed.table(), Some(table.as_str()));

    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(Duration::from_secs(1)))
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
    let again = DeployedSaga::builder(&config, &shop(&script(), &name))
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
    // Found by its declaration, it has no handlers until it is given them, and only its own.
    let none = found.spawn_workers().await;
    assert!(
        matches!(&none, Err(AwsError::Config(m)) if m.contains("with_saga")),
        "{none:?}"
    );
    let other = found.clone().with_saga(shop(&script(), "other"));
    assert!(
        matches!(&other, Err(AwsError::Config(m)) if m.contains("not `other`")),
        "{other:?}"
    );

    // An input over Step Functions' 256 KiB is refused before it is sent.
    let big = found
        .start("d-big", &json!({ "blob": "x".repeat(300 * 1024) }))
        .await;
    assert!(
        matches!(&big, Err(AwsError::TooLarge(e)) if e.to_string().contains("262144")),
        "{big:?}"
    );
    let none = found
        .step_functions()
        .describe(&found.execution_arn("d-big"))
        .await;
    assert_eq!(
        none.err().as_ref().and_then(AwsError::code),
        Some("ExecutionDoesNotExist")
    );

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
    let config = crate::emulator().config().await;
    let name = Emulator::unique("nowhere");
    let found = DeployedSaga::find(&config, shop(&Arc::default(), &name).definition()).await;
    assert!(
        matches!(&found, Err(AwsError::Config(m)) if m.contains("is not deployed here")),
        "{found:?}"
    );
}

/// A trip whose second step reads a field the input lacks.
struct Trip {
    ran: Arc<Mutex<Vec<(String, Action)>>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TripInput {
    trip_id: String,
}

#[derive(serde::Deserialize)]
struct Seats {
    #[allow(dead_code, reason = "read to check the input's shape")]
    seats: u32,
}

impl Trip {
    fn ran(&self, cx: &StepContext<'_>) -> Result<Value, StepError> {
        let ran = (cx.step().to_owned(), cx.action());
        self.ran.lock().unwrap().push(ran);
        Ok(json!({}))
    }
}

#[saga(name = "trip")]
impl Trip {
    #[compensable(compensate = unbook, participant = "trip", timeout = "20s", heartbeat = "10s")]
    async fn book(&self, cx: &StepContext<'_>, _input: TripInput) -> Result<Value, StepError> {
        self.ran(cx)
    }

    async fn unbook(
        &self,
        cx: &StepContext<'_>,
        _input: TripInput,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.ran(cx).map(drop)
    }

    #[compensable(compensate = unseat, participant = "trip", timeout = "20s", heartbeat = "10s")]
    async fn seat(&self, cx: &StepContext<'_>, _input: Seats) -> Result<Value, StepError> {
        self.ran(cx)
    }

    async fn unseat(
        &self,
        cx: &StepContext<'_>,
        _input: Seats,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.ran(cx).map(drop)
    }

    #[pivot(participant = "trip", timeout = "20s", heartbeat = "10s")]
    async fn pay(&self, cx: &StepContext<'_>, _input: TripInput) -> Result<Value, StepError> {
        self.ran(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_is_refused_and_a_step_that_cannot_read_its_input_is_not_compensated() {
    let config = crate::emulator().config().await;
    let name = Emulator::unique("trip");
    let trip = |ran: &Arc<Mutex<_>>| {
        Trip { ran: ran.clone() }
            .into_saga()
            .renamed(&name)
            .unwrap()
    };
    let on_aws = Arc::default();
    let deployed = DeployedSaga::builder(&config, &trip(&on_aws))
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap();

    // Refused before it starts: no execution exists.
    let refused = deployed.start("bad-1", &json!({ "trip_id": 1 })).await;
    assert!(
        matches!(&refused, Err(AwsError::InvalidInput(m)) if m.contains("step `book`") && m.contains("expected a string")),
        "{refused:?}"
    );
    let described = deployed
        .step_functions()
        .describe(&deployed.execution_arn("bad-1"))
        .await;
    assert_eq!(
        described.err().as_ref().and_then(AwsError::code),
        Some("ExecutionDoesNotExist")
    );

    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(Duration::from_secs(1)))
        .await
        .unwrap();
    let input = TripInput {
        trip_id: "t-1".into(),
    };
    let report = deployed.run("t-1", &input).await.unwrap();
    workers.stop().await.unwrap();
    let in_memory_ran = Arc::default();
    let in_memory = saga::InMemoryExecutor::new(trip(&in_memory_ran))
        .run(&name, "t-1", &input)
        .await
        .unwrap();
    let saga::Outcome::Compensated { failed_step, error } = &report.outcome else {
        panic!("{}", report.outcome)
    };
    assert_eq!(failed_step, "seat");
    assert!(error.applied_nothing(), "{error}");
    // `seat` applied nothing, so only `book` is undone, on both engines alike.
    let undone = [
        ("book".to_owned(), Execute),
        ("book".to_owned(), Compensate),
    ];
    assert_eq!(*on_aws.lock().unwrap(), undone);
    assert_eq!(*in_memory_ran.lock().unwrap(), undone);
    assert_eq!(report.trace, in_memory.trace);
    assert_eq!(report.outcome, in_memory.outcome);
}
