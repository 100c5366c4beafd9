//! An order saga on the in-memory executor: reserve stock, charge the payment (the pivot), ship.
//!
//! ```text
//! cargo run --example order                          # every step succeeds
//! cargo run --example order -- --fail charge_payment # the payment is declined: stock is released
//! cargo run --example order -- --flaky reserve_stock # a transient fault, retried per policy
//! cargo run --example order -- --help
//! cargo run --example order -- cost                  # the saga command line (`saga::cli`)
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use saga::{InMemoryExecutor, Outcome, Saga, SagaEvent, StepContext, StepError, saga};
use serde::{Deserialize, Serialize};

mod aws;

pub use aws::run_on_aws;

/// An order: the saga's input.
// Its JSON Schema is what the template's front door validates a request's body with.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Order {
    order_id: String,
    sku: String,
    quantity: u32,
    amount_cents: u64,
    address: String,
}

/// What the inventory service returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    reservation_id: String,
    warehouse: String,
}

/// What the payment service returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    charge_id: String,
}

/// What the shipping service returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shipment {
    tracking_number: String,
}

/// The shipping step needs the order and the outputs of the two steps before it.
#[derive(Debug, Deserialize)]
pub struct ShipInput {
    order_id: String,
    address: String,
    steps: ShipNeeds,
}

/// Earlier outputs, by step name.
#[derive(Debug, Deserialize)]
pub struct ShipNeeds {
    reserve_stock: Reservation,
    charge_payment: Receipt,
}

/// How a chosen step misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Fails with a terminal (business) error every time.
    Fail,
    /// Fails with a retryable error on the first two attempts.
    Flaky,
}

/// A step's injected misbehaviour, if any, and how often it was called.
#[derive(Debug, Default)]
pub struct Service {
    misbehaviour: Option<Misbehaviour>,
    calls: AtomicU32,
}

impl Service {
    fn call(&self, terminal: StepError) -> Result<(), StepError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match self.misbehaviour {
            Some(Misbehaviour::Fail) => Err(terminal),
            Some(Misbehaviour::Flaky) if call <= 2 => Err(StepError::retryable(format!(
                "connection reset (call {call})"
            ))),
            _ => Ok(()),
        }
    }
}

/// The order saga: one value holds the clients of the three services it talks to.
#[derive(Debug, Default)]
pub struct OrderSaga {
    inventory: Service,
    /// The inventory's reservations, by the idempotency key of the request that made each.
    reservations: Reservations,
    payments: Service,
    shipping: Service,
}

#[saga(name = "order", version = 1)]
impl OrderSaga {
    /// Inventory: reserves stock; the compensation releases it.
    #[compensable(
        compensate = release_stock,
        participant = "inventory",
        timeout = "30s",
        retry(max_attempts = 3, interval = "1s", backoff_rate = 2.0)
    )]
    async fn reserve_stock(
        &self,
        cx: &StepContext<'_>,
        order: Order,
    ) -> Result<Reservation, StepError> {
        self.inventory.call(StepError::terminal(
            "OutOfStock",
            format!("no {} left", order.sku),
        ))?;
        // The inventory keeps the reservation under the request's idempotency key.
        let reservation_id = format!("res-{}", cx.saga_id());
        self.reservations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(cx.idempotency_key().to_string(), reservation_id.clone());
        println!("    inventory: reserved {} x {}", order.quantity, order.sku);
        Ok(Reservation {
            reservation_id,
            warehouse: "eu-west".into(),
        })
    }

    /// Releases what `reserve_stock` reserved under its idempotency key: the key, not the
    /// step's output, so that a reservation whose answer was lost (the step timed out after
    /// reserving) is released too. A no-op when nothing was reserved.
    async fn release_stock(
        &self,
        cx: &StepContext<'_>,
        order: Order,
        _reservation: Option<Reservation>,
    ) -> Result<(), StepError> {
        let reserved = self
            .reservations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(cx.execute_key().as_str());
        match reserved {
            Some(reservation_id) => println!(
                "    inventory: released {reservation_id} ({} x {})",
                order.quantity, order.sku
            ),
            None => println!(
                "    inventory: nothing reserved for {}, nothing to release",
                order.order_id
            ),
        }
        Ok(())
    }

    /// Payments: the pivot. Once the card is charged, the order goes through.
    #[pivot(
        participant = "payments",
        timeout = "30s",
        retry(max_attempts = 3, interval = "1s")
    )]
    async fn charge_payment(
        &self,
        cx: &StepContext<'_>,
        order: Order,
    ) -> Result<Receipt, StepError> {
        self.payments.call(StepError::terminal(
            "PaymentDeclined",
            "the card issuer declined the charge",
        ))?;
        println!(
            "    payments: charged {}.{:02} EUR (request id {})",
            order.amount_cents / 100,
            order.amount_cents % 100,
            cx.idempotency_key()
        );
        Ok(Receipt {
            charge_id: format!("ch-{}", cx.saga_id()),
        })
    }

    /// Shipping: after the pivot, retried until it succeeds.
    #[retriable(participant = "shipping", retry(max_attempts = 3, interval = "1s"))]
    async fn ship_order(
        &self,
        _cx: &StepContext<'_>,
        input: ShipInput,
    ) -> Result<Shipment, StepError> {
        self.shipping.call(StepError::terminal(
            "AddressRejected",
            "the carrier rejected the address",
        ))?;
        println!(
            "    shipping: {} from {} to {} (paid by {})",
            input.order_id,
            input.steps.reserve_stock.warehouse,
            input.address,
            input.steps.charge_payment.charge_id
        );
        Ok(Shipment {
            tracking_number: format!("TRK-{}", input.order_id),
        })
    }
}

/// The names of the steps, in order.
pub const STEPS: [&str; 3] = ["reserve_stock", "charge_payment", "ship_order"];

/// The inventory's reservations: reservation ids by the idempotency key of the request.
pub type Reservations = Arc<Mutex<HashMap<String, String>>>;

/// The order saga, with `misbehaving` steps.
pub fn order_saga(misbehaving: &[(String, Misbehaviour)]) -> Saga {
    order_saga_with(misbehaving, Reservations::default())
}

/// The order saga, with `misbehaving` steps, on the inventory's `reservations`.
pub fn order_saga_with(misbehaving: &[(String, Misbehaviour)], reservations: Reservations) -> Saga {
    let service = |step: &str| Service {
        misbehaviour: misbehaving.iter().find(|(s, _)| s == step).map(|(_, m)| *m),
        calls: AtomicU32::new(0),
    };
    OrderSaga {
        inventory: service("reserve_stock"),
        reservations,
        payments: service("charge_payment"),
        shipping: service("ship_order"),
    }
    .into_saga()
}

/// Prints an event of the saga log as a line of progress.
pub fn describe(event: &SagaEvent) -> Option<String> {
    Some(match event {
        SagaEvent::SagaStarted { saga, .. } => format!("saga `{saga}` started"),
        SagaEvent::StepStarted { step, attempt } if *attempt == 1 => format!("-> {step}"),
        SagaEvent::StepStarted { step, attempt } => format!("-> {step} (attempt {attempt})"),
        SagaEvent::StepSucceeded { step, output, .. } => format!("ok {step}: {output}"),
        SagaEvent::StepFailed {
            step,
            error,
            will_retry,
            ..
        } => format!(
            "!! {step} failed: {error}{}",
            if *will_retry { ", retrying" } else { "" }
        ),
        SagaEvent::CompensationStarted { step, .. } => format!("<- compensating {step}"),
        SagaEvent::CompensationSucceeded { step, .. } => format!("ok {step} compensated"),
        SagaEvent::CompensationFailed {
            step,
            error,
            will_retry,
            ..
        } => format!(
            "!! compensation of {step} failed: {error}{}",
            if *will_retry { ", retrying" } else { "" }
        ),
        // The end of the saga is printed with its outcome; events added later are not shown.
        _ => return None,
    })
}

/// Runs one order through the saga and returns its outcome.
pub async fn run(misbehaving: &[(String, Misbehaviour)]) -> Result<Outcome, saga::ExecutorError> {
    let executor = InMemoryExecutor::builder()
        .saga(order_saga(misbehaving))
        .observer(|_, _, event| {
            if let Some(line) = describe(event) {
                println!("{line}");
            }
        })
        .build();
    let order = order();
    let report = executor.run("order", &order.order_id, &order).await?;
    println!("outcome: {}", report.outcome);
    Ok(report.outcome)
}

/// The order every run places.
pub fn order() -> Order {
    Order {
        order_id: "order-1001".into(),
        sku: "sku-42".into(),
        quantity: 2,
        amount_cents: 4_990,
        address: "1 Rue de la Paix, Paris".into(),
    }
}

const USAGE: &str = "\
usage: cargo run --example order [-- OPTIONS]
       cargo run --example order -- COMMAND [ARGS]

Runs one order (reserve_stock -> charge_payment -> ship_order) on the in-memory executor, or with
--aws on Step Functions.

options:
  --fail STEP    make STEP fail with a terminal error, to see the compensation run
  --flaky STEP   make STEP fail twice with a retryable error, to see the retries
  --aws          run on Step Functions and SQS at AWS_ENDPOINT_URL (the local emulator, started
                 with `saga-aws/emulator/moto-server 4566`, or a real account; the state
                 machine's role is $SAGA_ROLE_ARN)
  -h, --help     print this help

STEP is one of: reserve_stock, charge_payment, ship_order

commands (the saga command line, `saga::cli`; `COMMAND --help` explains each):
  asl        the state machine (Amazon States Language)
  graph      a Mermaid, DOT or SVG drawing of it
  cost       state transitions per path and the price per million sagas
  template   a CloudFormation template with least-privilege roles
  deploy     create or update the state machine (and queues) on AWS
  start      start a saga
  watch      follow a saga live
  status     where a saga stands
  recover    recover a stuck saga once its cause is fixed
  worker     run the participants
  run        run in memory with injected failures

environment:
  ORDER_BROKEN_STEP=STEP  the commands' STEP fails with a terminal error (as --fail): a worker
                          with a bug, to see a saga get stuck and `recover` it once the worker
                          runs without it";

fn parse(args: &[String]) -> Result<(Vec<(String, Misbehaviour)>, bool), String> {
    let mut misbehaving = Vec::new();
    let mut aws = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let misbehaviour = match arg.as_str() {
            "--aws" => {
                aws = true;
                continue;
            }
            "--fail" => Misbehaviour::Fail,
            "--flaky" => Misbehaviour::Flaky,
            other => return Err(format!("unknown option `{other}`")),
        };
        let step = args
            .next()
            .ok_or_else(|| format!("{arg} needs a step name"))?;
        if !STEPS.contains(&step.as_str()) {
            return Err(format!(
                "unknown step `{step}`; the steps are {}",
                STEPS.join(", ")
            ));
        }
        misbehaving.push((step.clone(), misbehaviour));
    }
    Ok((misbehaving, aws))
}

#[allow(dead_code)] // the example's tests include this file and call `run` directly
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        None | Some("--fail" | "--flaky" | "--aws") => demo(&args),
        // Everything else is the saga command line.
        Some(_) => {
            // A worker with a bug, for the README's recovery: `ORDER_BROKEN_STEP=ship_order`.
            let broken: Vec<(String, Misbehaviour)> = match std::env::var("ORDER_BROKEN_STEP") {
                Ok(step) if STEPS.contains(&step.as_str()) => vec![(step, Misbehaviour::Fail)],
                Ok(step) => {
                    eprintln!(
                        "error: ORDER_BROKEN_STEP `{step}` is no step; the steps are {}",
                        STEPS.join(", ")
                    );
                    return ExitCode::from(2);
                }
                Err(_) => Vec::new(),
            };
            saga::cli::run([saga::cli::Entry::from(order_saga(&broken))
                .example_input(order())
                .input_schema(saga::schema::input_schema::<Order>())])
        }
    }
}

/// One order, in memory or (with --aws) on Step Functions, with misbehaving services.
fn demo(args: &[String]) -> ExitCode {
    let (misbehaving, aws) = match parse(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let outcome = runtime.block_on(async {
        if aws {
            let config = saga::aws::config::from_env().await;
            run_on_aws(&config, &misbehaving, "order")
                .await
                .map_err(|e| e.to_string())
        } else {
            run(&misbehaving).await.map_err(|e| e.to_string())
        }
    });
    let _ = std::io::stdout().flush();
    match outcome {
        Ok(Outcome::CompensationFailed { .. }) => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
