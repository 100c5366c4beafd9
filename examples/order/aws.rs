//! The order saga on Step Functions (`--aws`).

use super::{Misbehaviour, order, order_saga};
use saga::Outcome;

/// Runs one order on Step Functions at the endpoint of `config` (`AWS_ENDPOINT_URL`: the local
/// emulator, or a real account): creates the participant queues `<name>-inventory`,
/// `<name>-payments` and `<name>-shipping` (with dead-letter queues), deploys the state machine
/// `<name>`, runs a worker per queue in this process, starts the saga and waits for its end.
pub async fn run_on_aws(
    config: &saga_aws::SdkConfig,
    misbehaving: &[(String, Misbehaviour)],
    name: &str,
) -> Result<Outcome, saga_aws::AwsError> {
    use saga_aws::{Bindings, Queues, Status, StepFunctions, Worker};

    let saga = || order_saga(misbehaving).renamed(name).expect("a valid name");
    let queues = Queues::new(config);
    let mut bindings = Bindings::new();
    let mut urls = Vec::new();
    for participant in ["inventory", "payments", "shipping"] {
        let queue = queues
            .create(&format!("{name}-{participant}"), 5, 60)
            .await?;
        let key = saga::asl::substitution_key(&saga::Participant::queue(participant));
        bindings.insert(key, queue.url.clone());
        urls.push(queue.url);
    }
    let role = std::env::var("SAGA_ROLE_ARN")
        .unwrap_or_else(|_| "arn:aws:iam::123456789012:role/saga-order".to_owned());
    let sfn = StepFunctions::new(config, role);
    let deployed = sfn.deploy(saga().definition(), &bindings).await?;
    println!("state machine {} ({:?})", deployed.arn, deployed.change);
    // The workers' idempotency table, by the name they look for (`<saga>-idempotency`).
    let table = saga_aws::store::default_table_name(name);
    saga_aws::dynamodb::DynamoDbIdempotencyStore::new(config, &table)
        .create_table()
        .await?;

    // Each service would run its own worker; here one process runs all three.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = urls
        .iter()
        .map(|url| {
            let worker = Worker::builder(config, url)
                .saga(saga())
                .wait_time(std::time::Duration::from_secs(1))
                .build()
                .expect("the worker of one saga finds its table by its name");
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                worker
                    .run_until(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            })
        })
        .collect();

    let order = order();
    let saga_id = format!(
        "{}-{}",
        order.order_id,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let input = serde_json::to_value(&order).expect("orders serialise");
    let execution = sfn.start(&deployed.arn, &saga_id, &input).await?;
    println!("saga {saga_id} started");
    let state = loop {
        let state = sfn.describe(&execution.arn).await?;
        if state.status != Status::Running {
            break state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let trace = sfn.trace(&execution.arn).await?;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    for invocation in &trace.0 {
        let what = match invocation.action {
            saga::Action::Execute => invocation.step.clone(),
            saga::Action::Compensate => format!("compensation of {}", invocation.step),
        };
        match &invocation.result {
            saga::InvocationResult::Succeeded => {
                println!("ok {what} (attempt {})", invocation.attempt)
            }
            saga::InvocationResult::Failed(error) => {
                println!("!! {what} failed (attempt {}): {error}", invocation.attempt)
            }
        }
    }
    let outcome = state.outcome(&trace).ok_or_else(|| {
        saga_aws::AwsError::InvalidInput(format!(
            "the execution ended {:?} outside the saga's own ends: {:?}",
            state.status, state.cause
        ))
    })?;
    println!("outcome: {outcome}");
    Ok(outcome)
}
