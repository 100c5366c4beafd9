//! The Lambda adapter: the SQS event and batch response formats (fixtures as AWS documents
//! them), and a participant answering a real command from a state machine on the local emulator
//! (moto), with a malformed record beside it, in an SQS event or invoked directly. The emulator
//! starts with the tests; it is never skipped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::Client as Sqs;
use lambda_runtime::{Context, LambdaEvent};
use saga_aws::lambda::{InvocationError, LambdaParticipant};
use saga_aws::testing::{Emulator, take_message};
use saga_aws::{Bindings, ExecutionState, Queues, Status, StepFunctions, Wait};
use saga_core::asl::substitution_key;
use saga_core::{Compensable, Participant, RetryPolicy, Saga, Step, StepContext, StepError};
use serde_json::{Value, json};

mod fixtures;
mod logs;

use logs::Logs;

use fixtures::SQS_EVENT;

/// What the step did: `(idempotency key, attempt)` per execution or compensation.
type Effects = Arc<Mutex<Vec<(String, u32)>>>;

/// Reserves stock and records that it did.
struct Reserve {
    effects: Effects,
}

impl Step for Reserve {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, input: Value) -> Result<Value, StepError> {
        self.effects
            .lock()
            .unwrap()
            .push((cx.idempotency_key().to_string(), cx.attempt()));
        Ok(json!({ "reservation": format!("r-{}", input["order_id"].as_str().unwrap_or("?")) }))
    }
}

impl Compensable for Reserve {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.effects
            .lock()
            .unwrap()
            .push((cx.idempotency_key().to_string(), cx.attempt()));
        Ok(())
    }
}

/// A one-step saga deployed on the emulator, its participant queue, and the Lambda participant
/// that runs it.
struct Setup {
    sfn: StepFunctions,
    sqs: Sqs,
    queue_url: String,
    machine_arn: String,
    participant: LambdaParticipant,
    effects: Effects,
}

async fn setup() -> Setup {
    let config = Emulator::shared().config().await;
    let queue = Emulator::unique("lambda-participant");
    let created = Queues::new(&config)
        .create(
            &queue,
            &saga_aws::QueueOptions::default()
                .max_receive_count(3)
                .visibility_timeout(std::time::Duration::from_secs(30)),
        )
        .await
        .expect("create queues");
    let effects = Effects::default();
    let saga = Saga::builder(Emulator::unique("saga"))
        .compensable(
            "reserve",
            Reserve {
                effects: effects.clone(),
            },
        )
        .participant(&queue)
        .retry(RetryPolicy::none())
        .compensation_retry(RetryPolicy::none())
        .timeout(Duration::from_secs(30))
        .heartbeat(Duration::from_secs(10))
        .build()
        .expect("a valid saga");
    let mut bindings = Bindings::new();
    bindings.insert(
        substitution_key(&Participant::queue(&queue)),
        created.url.clone(),
    );
    let sfn = StepFunctions::new(&config, Emulator::ROLE_ARN);
    let machine = sfn
        .deploy(saga.definition(), &bindings)
        .await
        .expect("deploy");
    Setup {
        sfn,
        sqs: Sqs::new(&config),
        queue_url: created.url,
        machine_arn: machine.arn,
        participant: LambdaParticipant::builder(&config)
            .saga(saga)
            .in_memory_store()
            .build()
            .unwrap(),
        effects,
    }
}

/// Takes the next message off the participant queue and returns its body: the test plays
/// Lambda's event source mapping.
async fn next_body(s: &Setup) -> String {
    take_message(&s.sqs, &s.queue_url, Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no command arrived on {}", s.queue_url))
}

async fn wait_for_end(s: &Setup, arn: &str) -> ExecutionState {
    let wait = Wait::default().every(Duration::from_millis(100));
    s.sfn
        .wait(arn, wait.at_most(Duration::from_secs(30)))
        .await
        .unwrap()
}

/// The fixture event with the command in its first record (delivered for the second time) and a
/// malformed body in its second; the records' message ids.
fn event_with(command: &str) -> (SqsEvent, String, String) {
    let mut event: SqsEvent = serde_json::from_str(SQS_EVENT).unwrap();
    let good = Emulator::unique("good-message");
    let bad = Emulator::unique("bad-message");
    let record = &mut event.records[0];
    record.message_id = Some(good.clone());
    record.body = Some(command.to_owned());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), "2".into());
    let record = &mut event.records[1];
    record.message_id = Some(bad.clone());
    record.body = Some(r#"{"v":1,"saga":"nope"}"#.to_owned());
    (event, good, bad)
}

/// Starts an execution, takes its command off the queue, and has the participant handle it
/// beside a malformed record; the execution's ARN, the event and the records' ids.
async fn start_and_handle(s: &Setup, saga_id: &str) -> (String, SqsEvent, String, String) {
    let execution = s
        .sfn
        .start(&s.machine_arn, saga_id, &json!({ "order_id": "o-1" }))
        .await
        .unwrap();
    assert!(execution.started);
    let command = next_body(s).await;
    let (event, good, bad) = event_with(&command);
    let (logs, guard) = Logs::capture();
    let response = s.participant.handle(event.clone()).await;
    drop(guard);
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failures,
        [bad.as_str()],
        "exactly the malformed record is delivered again"
    );
    let warned = logs.lines_with(&bad);
    assert!(
        warned.len() == 1 && warned[0].contains("WARN") && warned[0].contains("not a saga command"),
        "the malformed record is logged with the reason: {warned:?}"
    );
    assert_eq!(
        logs.lines_with(&good),
        Vec::<String>::new(),
        "an answer is not news"
    );
    (execution.arn, event, good, bad)
}

#[tokio::test]
async fn a_batch_answers_the_command_and_reports_only_the_malformed_record() {
    let s = setup().await;
    let (arn, _, _, _) = start_and_handle(&s, "order-1").await;

    let end = wait_for_end(&s, &arn).await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        end.output.unwrap()["steps"]["reserve"],
        json!({ "reservation": "r-o-1" }),
        "the step's output is the answer"
    );
    assert_eq!(
        *s.effects.lock().unwrap(),
        [("order-1/reserve/execute".to_owned(), 1)],
        "applied once, as Step Functions' first attempt (a redelivery is not another attempt)"
    );
}

#[tokio::test]
async fn an_answered_record_delivered_again_succeeds_without_running_again() {
    let s = setup().await;
    let (arn, mut event, good, _) = start_and_handle(&s, "order-2").await;
    let end = wait_for_end(&s, &arn).await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");

    // Lambda delivers the answered message once more (e.g. its deletion was lost).
    event.records.truncate(1);
    assert_eq!(event.records[0].message_id.as_deref(), Some(good.as_str()));
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "3".into());
    let (logs, guard) = Logs::capture();
    let response = s.participant.handle(event).await;
    drop(guard);
    assert!(
        response.batch_item_failures.is_empty(),
        "the token is used: nothing to deliver again, {response:?}"
    );
    // A redelivery may have outlived its task: its token is checked (a heartbeat) before
    // anything runs, and refused: the task has ended (the emulator says InvalidToken once the
    // execution has ended; AWS says TaskTimedOut or InvalidToken).
    let expired = logs.lines_with(&good);
    assert!(
        expired.len() == 1
            && expired[0].contains("can no longer be answered")
            && expired[0].contains("SendTaskHeartbeat"),
        "{expired:?}"
    );
    assert_eq!(
        *s.effects.lock().unwrap(),
        [("order-2/reserve/execute".to_owned(), 1)],
        "the effect is not applied twice"
    );
    let end = s.sfn.describe(&arn).await.unwrap();
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
}

#[tokio::test]
async fn a_malformed_record_without_a_message_id_cannot_be_reported() {
    let config = Emulator::shared().config().await;
    let participant = LambdaParticipant::builder(&config)
        .in_memory_store()
        .build()
        .unwrap();
    let mut event: SqsEvent = serde_json::from_str(SQS_EVENT).unwrap();
    event.records[0].message_id = None;
    event.records[1].body = Some("not a command".to_owned());
    let (logs, guard) = Logs::capture();
    let response = participant.handle(event).await;
    drop(guard);
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failures,
        ["2e1424d4-f796-459a-8184-9c92662be6da"],
        "the record with an id is reported; the other one is only logged"
    );
    assert_eq!(logs.lines_with("without a message id").len(), 1);
}

/// A Lambda invocation of `payload` with request id `request_id`.
fn invocation(payload: Value, request_id: &str) -> LambdaEvent<Value> {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    LambdaEvent::new(payload, context)
}

#[tokio::test]
async fn a_direct_invocation_answers_the_command_once_in_the_sagas_trace() {
    let s = setup().await;
    let execution = s
        .sfn
        .start(&s.machine_arn, "order-3", &json!({ "order_id": "o-3" }))
        .await
        .unwrap();
    // The command as Step Functions invokes a `lambda` step's function with it: the same
    // fields as over SQS, and the trace context in the payload (no message attributes).
    let mut command: Value = serde_json::from_str(&next_body(&s).await).unwrap();
    let saga = command["saga"].as_str().unwrap().to_owned();
    let traceparent = saga_core::protocol::traceparent(&saga, "order-3");
    command["traceparent"] = json!(traceparent);

    let answered = s
        .participant
        .handle_event(invocation(command.clone(), "request-1"))
        .await
        .expect("answered");
    assert_eq!(answered, Value::Null, "the answer went to Step Functions");
    let end = wait_for_end(&s, &execution.arn).await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        end.output.unwrap()["steps"]["reserve"],
        json!({ "reservation": "r-o-3" })
    );

    // Lambda retries an invocation (or Step Functions' asynchronous invoke arrives twice): the
    // stored answer is replayed, refused (the token is used), and the invocation succeeds.
    let token = command["task_token"].as_str().unwrap().to_owned();
    let (logs, guard) = Logs::capture_at(lambda_runtime::tracing::Level::TRACE);
    let again = s
        .participant
        .handle_event(invocation(command, "request-2"))
        .await;
    drop(guard);
    assert_eq!(
        logs.lines_with(&token),
        Vec::<String>::new(),
        "the task token never appears whole, not even in the SDK's trace-level logs"
    );
    assert!(matches!(again, Ok(Value::Null)), "{again:?}");
    assert_eq!(
        *s.effects.lock().unwrap(),
        [("order-3/reserve/execute".to_owned(), 1)],
        "applied once"
    );
    let spanned = logs.lines_with("faas.invocation_id=\"request-2\"");
    assert!(!spanned.is_empty(), "the step's span names the invocation");
    let trace_id = saga_core::protocol::trace_id("order-3");
    assert!(
        spanned
            .iter()
            .all(|line| line.contains(&format!("trace_id=\"{trace_id}\""))
                && line.contains(&format!(
                    "parent_span_id=\"{}\"",
                    saga_core::protocol::saga_span_id(&saga)
                ))
                && !line.contains("messaging.")),
        "the span joins the saga's trace through the payload's traceparent: {spanned:?}"
    );
}

#[tokio::test]
async fn a_direct_invocation_for_a_task_that_has_ended_runs_nothing() {
    let s = setup().await;
    let execution = s
        .sfn
        .start(&s.machine_arn, "order-4", &json!({ "order_id": "o-4" }))
        .await
        .unwrap();
    let command: Value = serde_json::from_str(&next_body(&s).await).unwrap();
    // The task ends before the function sees its command (the step's heartbeat ran out while
    // Lambda retried a throttled invocation, say): here, someone else answers it.
    let sfn = aws_sdk_sfn::Client::new(&Emulator::shared().config().await);
    sfn.send_task_failure()
        .task_token(command["task_token"].as_str().unwrap())
        .error("Saga.Terminal")
        .cause("ended elsewhere")
        .send()
        .await
        .unwrap();
    // Its compensation, which nobody answers here, gives up: the saga waits for an operator.
    assert_eq!(wait_for_end(&s, &execution.arn).await.status, Status::Stuck);

    let late = s
        .participant
        .handle_event(invocation(command, "request-late"))
        .await;
    assert!(
        matches!(late, Ok(Value::Null)),
        "dropped, not retried: {late:?}"
    );
    assert_eq!(
        *s.effects.lock().unwrap(),
        [],
        "the handler did not run for a task that had ended"
    );
}

#[tokio::test]
async fn a_malformed_direct_invocation_fails_with_its_reason() {
    let config = Emulator::shared().config().await;
    let participant = LambdaParticipant::builder(&config)
        .in_memory_store()
        .build()
        .unwrap();
    let (logs, guard) = Logs::capture();
    let failed = participant
        .handle_event(invocation(json!({ "v": 1, "saga": "nope" }), "request-bad"))
        .await;
    drop(guard);
    match failed {
        Err(InvocationError::Malformed(ref reason)) => {
            assert!(reason.contains("not a saga command"), "{reason}")
        }
        ref other => panic!("expected a malformed command, got {other:?}"),
    }
    // What Lambda records for the failed invocation (and hands to its on-failure destination).
    let diagnostic = lambda_runtime::Diagnostic::from(failed.unwrap_err());
    assert_eq!(diagnostic.error_type, "Saga.MalformedCommand");
    assert!(
        diagnostic
            .error_message
            .starts_with("not a command this function runs: not a saga command")
    );
    let warned = logs.lines_with("request-bad");
    assert!(
        warned.len() == 1 && warned[0].contains("WARN") && warned[0].contains("not a saga command"),
        "logged once with the reason: {warned:?}"
    );
}

#[tokio::test]
async fn an_sqs_event_through_the_entry_point_gets_the_batch_response() {
    let config = Emulator::shared().config().await;
    let participant = LambdaParticipant::builder(&config)
        .in_memory_store()
        .build()
        .unwrap();
    // Neither fixture record is a command: both are to be delivered again.
    let response = participant
        .handle_event(invocation(
            serde_json::from_str(SQS_EVENT).unwrap(),
            "request-sqs",
        ))
        .await
        .expect("an SQS event is answered with a batch response");
    assert_eq!(
        response,
        json!({ "batchItemFailures": [
            { "itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d" },
            { "itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da" },
        ] })
    );
}
