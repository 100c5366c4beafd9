//! A trip: the flight, the hotel and the car booked at the same time (the car only when the
//! traveller asked for one), then the card charged (the pivot), then the itinerary sent.
//!
//! ```text
//! cargo run --example travel                          # everything booked, the card charged
//! cargo run --example travel -- --no-car              # no car asked for: its booking is skipped
//! cargo run --example travel -- --fail book_hotel     # no room: the flight and the car are cancelled
//! cargo run --example travel -- --fail charge_card    # the card is declined: every booking is cancelled
//! cargo run --example travel -- --aws                 # the same trip on Step Functions
//! cargo run --example travel -- cost                  # the paths through the group, priced
//! cargo run --example travel -- graph                 # fork, join and the car's condition
//! cargo run --example travel -- asl                   # the state machine (a Parallel, a Choice)
//! ```
//!
//! Any other subcommand is the saga command line (`saga::cli`): `template`, `deploy`,
//! `start`, `watch`, `status`, `worker`; `cargo run --example travel -- help` lists them.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use saga::{InMemoryExecutor, Outcome, Saga, SagaEvent, SagaReport, StepContext, StepError, saga};
use serde::{Deserialize, Serialize};

/// A trip request: the saga's input.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Trip {
    trip_id: String,
    traveller: String,
    destination: String,
    nights: u32,
    car_wanted: bool,
}

/// What a booking service answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Booking {
    reference: String,
}

/// What the itinerary needs: the trip and the three bookings (the car's only if it ran).
#[derive(Debug, Deserialize)]
pub struct ItineraryInput {
    traveller: String,
    destination: String,
    steps: Booked,
}

/// The bookings' outputs, by step name.
#[derive(Debug, Deserialize)]
pub struct Booked {
    book_flight: Booking,
    book_hotel: Booking,
    book_car: Option<Booking>,
    charge_card: Booking,
}

/// A service that can be made to refuse every request.
#[derive(Debug, Default)]
pub struct Service {
    refuses: AtomicBool,
}

impl Service {
    /// A request to the service: it takes a moment (the bookings overlap), then answers.
    async fn call(&self, refusal: StepError) -> Result<(), StepError> {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        match self.refuses.load(Ordering::SeqCst) {
            true => Err(refusal),
            false => Ok(()),
        }
    }
}

/// The travel saga: one value holds the clients of the services it talks to.
#[derive(Debug, Default)]
pub struct TravelSaga {
    airline: Service,
    hotels: Service,
    cars: Service,
    payments: Service,
    mail: Service,
}

#[saga(name = "travel", version = 1)]
impl TravelSaga {
    /// The airline books a seat; the compensation cancels it.
    #[compensable(compensate = cancel_flight, participant = "airline", group = "bookings")]
    async fn book_flight(&self, cx: &StepContext<'_>, trip: Trip) -> Result<Booking, StepError> {
        self.airline
            .call(StepError::terminal("NoSeats", "the flight is full"))
            .await?;
        println!(
            "    airline: seat for {} to {}",
            trip.traveller, trip.destination
        );
        Ok(reference("FL", cx))
    }

    /// Cancels the seat; a no-op when none was booked.
    async fn cancel_flight(
        &self,
        _cx: &StepContext<'_>,
        trip: Trip,
        booking: Option<Booking>,
    ) -> Result<(), StepError> {
        cancelled("airline", &trip, booking);
        Ok(())
    }

    /// The hotel books the nights; the compensation cancels them.
    #[compensable(compensate = cancel_hotel, participant = "hotels", group = "bookings")]
    async fn book_hotel(&self, cx: &StepContext<'_>, trip: Trip) -> Result<Booking, StepError> {
        self.hotels
            .call(StepError::terminal("NoRooms", "the hotel is full"))
            .await?;
        println!("    hotels: {} nights in {}", trip.nights, trip.destination);
        Ok(reference("HO", cx))
    }

    async fn cancel_hotel(
        &self,
        _cx: &StepContext<'_>,
        trip: Trip,
        booking: Option<Booking>,
    ) -> Result<(), StepError> {
        cancelled("hotels", &trip, booking);
        Ok(())
    }

    /// The car, only when the traveller asked for one.
    #[compensable(
        compensate = cancel_car,
        participant = "cars",
        group = "bookings",
        when = "car_wanted"
    )]
    async fn book_car(&self, cx: &StepContext<'_>, trip: Trip) -> Result<Booking, StepError> {
        self.cars
            .call(StepError::terminal("NoCars", "no car left"))
            .await?;
        println!("    cars: a car in {}", trip.destination);
        Ok(reference("CA", cx))
    }

    async fn cancel_car(
        &self,
        _cx: &StepContext<'_>,
        trip: Trip,
        booking: Option<Booking>,
    ) -> Result<(), StepError> {
        cancelled("cars", &trip, booking);
        Ok(())
    }

    /// The pivot: once the card is charged, the trip goes through.
    #[pivot(participant = "payments")]
    async fn charge_card(&self, cx: &StepContext<'_>, trip: Trip) -> Result<Booking, StepError> {
        self.payments
            .call(StepError::terminal("CardDeclined", "the card was declined"))
            .await?;
        println!(
            "    payments: charged {} for {}",
            trip.traveller, trip.trip_id
        );
        Ok(reference("PA", cx))
    }

    /// After the pivot: retried until the itinerary is sent.
    #[retriable(participant = "mail")]
    async fn send_itinerary(
        &self,
        _cx: &StepContext<'_>,
        input: ItineraryInput,
    ) -> Result<(), StepError> {
        self.mail
            .call(StepError::terminal("Bounced", "the mail bounced"))
            .await?;
        let car = match &input.steps.book_car {
            Some(car) => format!(", car {}", car.reference),
            None => String::new(),
        };
        println!(
            "    mail: itinerary to {} for {}: flight {}, hotel {}{car}, paid {}",
            input.traveller,
            input.destination,
            input.steps.book_flight.reference,
            input.steps.book_hotel.reference,
            input.steps.charge_card.reference,
        );
        Ok(())
    }
}

fn reference(prefix: &str, cx: &StepContext<'_>) -> Booking {
    Booking {
        reference: format!("{prefix}-{}", cx.saga_id()),
    }
}

fn cancelled(service: &str, trip: &Trip, booking: Option<Booking>) {
    match booking {
        Some(booking) => println!("    {service}: cancelled {}", booking.reference),
        None => println!("    {service}: nothing booked for {}", trip.trip_id),
    }
}

/// The names of the steps, in order.
pub const STEPS: [&str; 5] = [
    "book_flight",
    "book_hotel",
    "book_car",
    "charge_card",
    "send_itinerary",
];

/// The travel saga, with the `failing` steps refusing every request.
pub fn travel_saga(failing: &[String]) -> Saga {
    let service = |step: &str| Service {
        refuses: AtomicBool::new(failing.iter().any(|f| f == step)),
    };
    TravelSaga {
        airline: service("book_flight"),
        hotels: service("book_hotel"),
        cars: service("book_car"),
        payments: service("charge_card"),
        mail: service("send_itinerary"),
    }
    .into_saga()
}

/// The trip every run books.
pub fn trip(car_wanted: bool) -> Trip {
    Trip {
        trip_id: "trip-7".into(),
        traveller: "Ada".into(),
        destination: "Lisbon".into(),
        nights: 3,
        car_wanted,
    }
}

/// A line of progress for an event of the saga log.
pub fn describe(event: &SagaEvent) -> Option<String> {
    Some(match event {
        SagaEvent::StepStarted { step, attempt: 1 } => format!("-> {step}"),
        SagaEvent::StepSkipped { step } => format!("-- {step} skipped (its condition is false)"),
        SagaEvent::StepSucceeded { step, .. } => format!("ok {step}"),
        SagaEvent::StepFailed {
            step,
            error,
            will_retry: false,
            ..
        } => format!("!! {step} failed: {error}"),
        SagaEvent::CompensationStarted { step, attempt: 1 } => format!("<- compensating {step}"),
        _ => return None,
    })
}

/// What the report shows of the group: which of its steps ran, were skipped or were
/// compensated.
pub fn summary(report: &SagaReport) -> Vec<String> {
    use saga::{Action, InvocationResult};
    let trace = &report.trace.0;
    let mut lines = Vec::new();
    for step in &STEPS[..3] {
        let is = |action, result: fn(&InvocationResult) -> bool| {
            trace
                .iter()
                .any(|i| i.step == *step && i.action == action && result(&i.result))
        };
        let ran = is(Action::Execute, |r| *r == InvocationResult::Succeeded);
        let skipped = is(Action::Execute, |r| *r == InvocationResult::Skipped);
        let failed = is(Action::Execute, |r| {
            matches!(r, InvocationResult::Failed(_))
        });
        let compensated = is(Action::Compensate, |r| *r == InvocationResult::Succeeded);
        let state = match (ran, skipped, compensated) {
            (_, true, _) => "skipped",
            (true, _, true) => "booked, then cancelled",
            (false, _, true) if failed => "failed, then compensated",
            // A failed group is compensated whole: this booking was still in flight (its
            // compensation waited for it) or had not started (nothing to undo).
            (false, _, true) => "in flight or not started when the group failed, compensated",
            (true, _, false) => "booked",
            (false, _, false) => "not booked",
        };
        lines.push(format!("branch {step}: {state}"));
    }
    lines
}

/// Books one trip in memory and returns its report.
pub async fn run(failing: &[String], car_wanted: bool) -> Result<SagaReport, saga::ExecutorError> {
    let executor = InMemoryExecutor::builder()
        .saga(travel_saga(failing))
        .observer(|_, _, event| {
            if let Some(line) = describe(event) {
                println!("{line}");
            }
        })
        .build();
    let trip = trip(car_wanted);
    executor.run("travel", &trip.trip_id, &trip).await
}

/// Books one trip on Step Functions at the endpoint of `config` (`AWS_ENDPOINT_URL`: the local
/// emulator, or an account): deploys the state machine `name` with its participants' queues,
/// runs their workers in this process, and runs the trip to its report.
pub async fn run_on_aws(
    config: &saga::aws::SdkConfig,
    name: &str,
    failing: &[String],
    car_wanted: bool,
) -> Result<SagaReport, String> {
    use saga::aws::DeployedSaga;
    let saga = travel_saga(failing)
        .renamed(name)
        .map_err(|e| e.to_string())?;
    let role = std::env::var(saga::aws::ROLE_ENV)
        .unwrap_or_else(|_| "arn:aws:iam::123456789012:role/saga-travel".to_owned());
    let deployed = DeployedSaga::builder(config, &saga)
        .role_arn(role)
        .deploy()
        .await
        .map_err(|e| e.to_string())?;
    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(std::time::Duration::from_secs(1)))
        .await
        .map_err(|e| e.to_string())?;
    let trip = trip(car_wanted);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let report = deployed
        .run(&format!("{}-{millis}", trip.trip_id), &trip)
        .await;
    workers.stop().await.map_err(|e| e.to_string())?;
    let report = report.map_err(|e| e.to_string())?;
    for invocation in &report.trace.0 {
        println!("{invocation}");
    }
    Ok(report)
}

const USAGE: &str = "\
usage: cargo run --example travel [-- OPTIONS]

Books one trip: flight, hotel and car at the same time (the car only when asked for), then the
card (the pivot), then the itinerary, on the in-memory executor, or with --aws on Step Functions.

commands (the saga command line; `help` lists them all):
  cost           what a trip costs on Step Functions, per path through the group
  graph          the saga as a graph (fork, join, the car's condition); --format svg draws it
  asl            the state machine
  template       its CloudFormation template

options:
  --fail STEP    make STEP refuse every request, to see what is compensated
  --no-car       the traveller wants no car: book_car is skipped
  --aws          run on Step Functions and SQS at AWS_ENDPOINT_URL (the local emulator, started
                 with `saga-aws/emulator/moto-server 4566`, or a real account; the state
                 machine's role is $SAGA_ROLE_ARN)
  -h, --help     print this help

STEP is one of: book_flight, book_hotel, book_car, charge_card, send_itinerary";

/// The options: the failing steps, whether a car is wanted, whether to run on AWS.
fn parse(args: &[String]) -> Result<Option<(Vec<String>, bool, bool)>, String> {
    let (mut failing, mut car, mut aws) = (Vec::new(), true, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--no-car" => car = false,
            "--aws" => aws = true,
            "--fail" => {
                let step = args.next().ok_or("--fail needs a step name")?;
                if !STEPS.contains(&step.as_str()) {
                    return Err(format!(
                        "unknown step `{step}`; the steps are {}",
                        STEPS.join(", ")
                    ));
                }
                failing.push(step.clone());
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(Some((failing, car, aws)))
}

#[allow(dead_code)] // the example's test includes this file and calls `run` directly
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A subcommand (no leading `-`) is the saga command line.
    if args.first().is_some_and(|arg| !arg.starts_with('-')) {
        return saga::cli::run([saga::cli::Entry::from(travel_saga(&[]))
            .example_input(trip(true))
            .input_schema(saga::schema::input_schema::<Trip>())]);
    }
    let (failing, car, aws) = match parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
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
    let report = runtime.block_on(async {
        match aws {
            true => {
                let config = saga::aws::config::from_env().await;
                run_on_aws(&config, "travel", &failing, car).await
            }
            false => run(&failing, car).await.map_err(|e| e.to_string()),
        }
    });
    match report {
        Ok(report) => {
            for line in summary(&report) {
                println!("{line}");
            }
            println!("outcome: {}", report.outcome);
            match report.outcome {
                Outcome::CompensationFailed { .. } => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            }
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
