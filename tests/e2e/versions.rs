//! Deploys that never break sagas in flight, on the emulator: sagas of version 1 wait in their
//! queue while version 2 deploys; a deploy without version 1's handlers is refused with the
//! reason; with them, it publishes version 2 and moves the alias, and one set of workers
//! finishes the old sagas on version 1 and the new ones on version 2, every effect once. A
//! command of a version no worker has goes to the dead-letter queue with that reason.
//! `rollout.rs` does the same with the template's stack and with the command line.

use saga::{Outcome, SagaReport};
use saga_aws::{AwsError, Change, DeployedSaga, Wait};

use crate::shop::*;

/// What the handlers of both versions applied: (saga id, "v<version> <step> <action>").
#[derive(Debug, Default)]
pub(crate) struct Ledger(Mutex<Vec<(String, String)>>);

impl Ledger {
    fn apply(&self, version: u32, cx: &StepContext<'_>) -> Result<Value, StepError> {
        let effect = format!("v{version} {} {}", cx.step(), cx.action());
        self.0
            .lock()
            .unwrap()
            .push((cx.saga_id().to_owned(), effect));
        Ok(json!({}))
    }

    pub(crate) fn of(&self, saga_id: &str) -> Vec<String> {
        let ledger = self.0.lock().unwrap();
        let effects = ledger.iter().filter(|(id, _)| id == saga_id);
        effects.map(|(_, effect)| effect.clone()).collect()
    }
}

pub(crate) struct ParcelV1(pub(crate) Arc<Ledger>);

#[saga(name = "parcel", version = 1)]
impl ParcelV1 {
    #[compensable(compensate = release, participant = "parcel", timeout = "30s", heartbeat = "10s")]
    async fn reserve(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.0.apply(1, cx)
    }

    async fn release(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.0.apply(1, cx).map(drop)
    }

    #[pivot(participant = "parcel", timeout = "30s", heartbeat = "10s")]
    async fn ship(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.0.apply(1, cx)
    }
}

/// Version 2 labels the parcel between reserving and shipping it.
pub(crate) struct ParcelV2(pub(crate) Arc<Ledger>);

#[saga(name = "parcel", version = 2)]
impl ParcelV2 {
    #[compensable(compensate = release, participant = "parcel", timeout = "30s", heartbeat = "10s")]
    async fn reserve(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.0.apply(2, cx)
    }

    async fn release(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.0.apply(2, cx).map(drop)
    }

    #[compensable(compensate = unlabel, participant = "parcel", timeout = "30s", heartbeat = "10s")]
    async fn label(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.0.apply(2, cx)
    }

    async fn unlabel(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.0.apply(2, cx).map(drop)
    }

    #[pivot(participant = "parcel", timeout = "30s", heartbeat = "10s")]
    async fn ship(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.0.apply(2, cx)
    }
}

pub(crate) fn steps(report: &SagaReport) -> Vec<String> {
    report.trace.0.iter().map(|i| i.step.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_in_flight_finish_on_their_version_while_new_ones_run_the_next() {
    let config = Emulator::shared().config().await;
    let name = Emulator::unique("parcel");
    let ledger = Arc::new(Ledger::default());
    let v1 = ParcelV1(ledger.clone()).into_saga().renamed(&name).unwrap();
    let v2 = ParcelV2(ledger.clone()).into_saga().renamed(&name).unwrap();
    let input = json!({ "parcel": 1 });

    let first = DeployedSaga::builder(&config, &v1)
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap();
    assert_eq!(first.change(), Some(Change::Created));
    assert!(first.version_arn().unwrap().ends_with(":1"), "{first:?}");
    assert_eq!(first.start_arn(), format!("{}:live", first.arn()));
    // No worker runs yet: these sagas wait in the queue, in flight on version 1.
    let old: Vec<String> = (0..3).map(|i| format!("old-{i}")).collect();
    for id in &old {
        assert!(first.start(id, &input).await.unwrap().started);
    }

    // A build with version 2's handlers alone could not finish them: refused, nothing changed.
    let refused = DeployedSaga::builder(&config, &v2)
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap_err();
    let AwsError::WouldStrand { saga, reasons } = &refused else {
        panic!("{refused}");
    };
    assert_eq!(saga, &name);
    assert_eq!(
        reasons,
        &[format!(
            "3 saga(s) on version 1 (old-0, old-1, old-2): no handlers for version 1 of saga \
             `{name}` here (this participant has version 2): run a worker built with version \
             1's declaration"
        )]
    );
    assert!(
        refused.to_string().contains("deploy --allow-stranded"),
        "{refused}"
    );
    // The alias still points at version 1.
    assert!(first.start("old-3", &input).await.unwrap().started);

    // With version 1's handlers kept, version 2 deploys and new sagas start on it.
    let second = DeployedSaga::builder(&config, &v2)
        .older_version(&v1)
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .unwrap();
    assert_eq!(second.change(), Some(Change::Updated));
    assert!(second.version_arn().unwrap().ends_with(":2"), "{second:?}");
    let in_flight = second.in_flight().await.unwrap();
    assert_eq!(in_flight.len(), 1, "{in_flight:?}");
    let (group, reasons) = &in_flight[0];
    assert_eq!(group.label(), "version 1");
    assert_eq!(group.saga_ids.len(), 4);
    assert!(reasons.is_empty(), "{reasons:?}");
    let new: Vec<String> = (0..2).map(|i| format!("new-{i}")).collect();
    for id in &new {
        assert!(second.start(id, &input).await.unwrap().started);
    }

    let workers = second
        .spawn_workers_with(|worker| worker.wait_time(Duration::from_secs(1)))
        .await
        .unwrap();
    let wait = Wait::default().at_most(Duration::from_secs(120));
    for id in old.iter().chain(["old-3".to_owned()].iter()) {
        let report = second.wait(id, wait).await.unwrap();
        assert_eq!(report.outcome, Outcome::Completed, "{id}: {report:?}");
        assert_eq!(steps(&report), ["reserve", "ship"], "{id}");
        assert_eq!(
            ledger.of(id),
            ["v1 reserve execute", "v1 ship execute"],
            "{id}"
        );
    }
    for id in &new {
        let report = second.wait(id, wait).await.unwrap();
        assert_eq!(report.outcome, Outcome::Completed, "{id}: {report:?}");
        assert_eq!(steps(&report), ["reserve", "label", "ship"], "{id}");
        assert_eq!(
            ledger.of(id),
            ["v2 reserve execute", "v2 label execute", "v2 ship execute"],
            "{id}"
        );
    }
    assert!(second.in_flight().await.unwrap().is_empty());

    // A command of a version no worker has is dead-lettered with the reason, and nothing runs.
    let queue = &second.queues()["parcel"];
    let sqs = aws_sdk_sqs::Client::new(&config);
    let command = json!({
        "v": 1, "saga": name, "saga_version": 7, "saga_id": "v7-1", "step": "reserve",
        "action": "execute", "idempotency_key": "v7-1/reserve/execute", "retry_count": 0,
        "input": {}, "task_token": "never-issued",
    });
    sqs.send_message()
        .queue_url(queue)
        .message_body(command.to_string())
        .send()
        .await
        .unwrap();
    let dlq = Queues::new(&config)
        .url_of(&format!("{}-dlq", saga_aws::queue_name(&name, "parcel")))
        .await
        .unwrap();
    let reason = dead_letter_reason(&sqs, &dlq).await;
    assert_eq!(
        reason,
        format!(
            "no handlers for version 7 of saga `{name}` here (this participant has version 1, \
             2): run a worker built with version 7's declaration"
        )
    );
    assert!(ledger.of("v7-1").is_empty());
    workers.stop().await.unwrap();
}

/// The reason of the first message to reach the dead-letter queue at `url`.
pub(crate) async fn dead_letter_reason(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    for _ in 0..30 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = out.messages.unwrap_or_default().into_iter().next() {
            let reason = message
                .message_attributes
                .and_then(|a| a.get(saga_aws::DEAD_LETTER_REASON).cloned())
                .and_then(|v| v.string_value);
            return reason.expect("a dead letter carries its reason");
        }
    }
    panic!("nothing reached the dead-letter queue {url}");
}
