//! fakecloud-min: a fakecloud 0.51.0 server with only the services saga's
//! tests use (Step Functions, SQS, DynamoDB + Streams, EventBridge, IAM/STS),
//! in memory. The wiring is copied from fakecloud-0.51.0/src/main.rs
//! (state construction ~l.307-560, delivery buses ~l.1120-1330, service
//! registration ~l.1839/1981/2076/2890/5224, router ~l.7815-7860 and
//! ~l.9463, registry hand-off and `axum::serve` ~l.12749-12810), minus
//! everything that belongs to the services left out (SNS, Lambda, Logs,
//! Kinesis, KMS, S3, CloudFormation, ...) and minus persistence.
//!
//! Usage: fakecloud-min [--addr 127.0.0.1:PORT] [--region R] [--account-id A]
//!                      [--log-level L] [--owner PID]
//! PORT 0 binds a free port; `FAKECLOUD_PORT=<port>` is printed on stdout
//! once bound, as fakecloud does.

use std::sync::Arc;

use axum::extract::Extension;
use axum::Router;

use fakecloud_core::delivery::{DeliveryBus, StepFunctionsDelivery};
use fakecloud_core::dispatch::{self, DispatchConfig};
use fakecloud_core::multi_account::MultiAccountState;
use fakecloud_core::registry::ServiceRegistry;

struct Args {
    addr: String,
    region: String,
    account_id: String,
    log_level: String,
    /// A process id: the server exits once that process has (saga's launcher passes the test's
    /// own, or its own), so it never outlives whoever started it, however that one ended.
    owner: String,
}

fn parse_args() -> Args {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let mut a = Args {
        addr: env("FAKECLOUD_ADDR", "0.0.0.0:4566"),
        region: env("FAKECLOUD_REGION", "us-east-1"),
        account_id: env("FAKECLOUD_ACCOUNT_ID", "123456789012"),
        log_level: env("FAKECLOUD_LOG", "info"),
        owner: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let slot = match name.as_str() {
            "--addr" => &mut a.addr,
            "--region" => &mut a.region,
            "--account-id" => &mut a.account_id,
            "--log-level" => &mut a.log_level,
            "--owner" => &mut a.owner,
            _ => {
                eprintln!("fakecloud-min: unknown argument {flag}");
                std::process::exit(2);
            }
        };
        *slot = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => {
                eprintln!("fakecloud-min: {name} needs a value");
                std::process::exit(2);
            }
        };
    }
    a
}

/// As fakecloud's `runtime::endpoint_url_from_addr`.
fn endpoint_url_from_addr(addr: std::net::SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        }
    };
    format!("http://{host}:{}", addr.port())
}

/// As fakecloud's `runtime::shutdown_signal`: Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install SIGTERM handler")
            .recv()
            .await;
    };
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if let Ok(owner) = args.owner.parse::<u32>() {
        // Linux's /proc: enough for a test tool.
        std::thread::spawn(move || loop {
            if !std::path::Path::new(&format!("/proc/{owner}")).exists() {
                std::process::exit(0);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        });
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    // Bind first, announce the port (the handshake fakecloud-testkit parses).
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("failed to bind {}: {e}", args.addr);
            std::process::exit(1)
        });
    let bound_addr = listener.local_addr().expect("local_addr");
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "FAKECLOUD_PORT={}", bound_addr.port());
        let _ = out.flush();
    }
    tracing::info!(addr = %bound_addr, "fakecloud-min is ready");
    let endpoint_url = endpoint_url_from_addr(bound_addr);
    let (acct, region) = (args.account_id.as_str(), args.region.as_str());

    // Shared state (memory only).
    let iam_state: fakecloud_iam::SharedIamState = Arc::new(parking_lot::RwLock::new(
        MultiAccountState::new(acct, region, &endpoint_url),
    ));
    let sqs_state: fakecloud_sqs::SharedSqsState = Arc::new(parking_lot::RwLock::new(
        MultiAccountState::new(acct, region, &endpoint_url),
    ));
    let eb_state: fakecloud_eventbridge::SharedEventBridgeState = Arc::new(
        parking_lot::RwLock::new(MultiAccountState::new(acct, region, &endpoint_url)),
    );
    let dynamodb_state: fakecloud_dynamodb::SharedDynamoDbState = Arc::new(
        parking_lot::RwLock::new(MultiAccountState::new(acct, region, &endpoint_url)),
    );
    let stepfunctions_state: fakecloud_stepfunctions::SharedStepFunctionsState = Arc::new(
        parking_lot::RwLock::new(MultiAccountState::new(acct, region, &endpoint_url)),
    );
    // Filled once every service is registered; the SFN interpreter reads it
    // only for `arn:aws:states:::aws-sdk:*` tasks.
    let sfn_registry_handle: fakecloud_stepfunctions::SharedServiceRegistry =
        Arc::new(std::sync::OnceLock::new());

    // Cross-service delivery. SQS is the sink for EventBridge rule targets
    // and for SFN `sqs:sendMessage[.waitForTaskToken]` tasks.
    let sqs_delivery = Arc::new(fakecloud_sqs::delivery::SqsDeliveryImpl::new(
        sqs_state.clone(),
    ));
    // EventBridge rules can target a state machine: that starts an execution
    // whose interpreter has its own bus (SQS + EventBridge, the latter bound
    // once the EventBridge sender exists below).
    let eb_delivery_for_sfn_deferred =
        fakecloud_eventbridge::delivery::DeferredEventBridgeDelivery::new();
    let sfn_delivery_for_eb: Arc<dyn StepFunctionsDelivery> = Arc::new(
        fakecloud_stepfunctions_delivery::StepFunctionsDeliveryImpl::new(
            stepfunctions_state.clone(),
            Some(Arc::new(
                DeliveryBus::new()
                    .with_sqs(sqs_delivery.clone())
                    .with_eventbridge(Arc::new(eb_delivery_for_sfn_deferred.clone())),
            )),
            Some(dynamodb_state.clone()),
        )
        .with_registry(sfn_registry_handle.clone()),
    );
    let delivery_for_eb = Arc::new(
        DeliveryBus::new()
            .with_sqs(sqs_delivery.clone())
            .with_stepfunctions(sfn_delivery_for_eb),
    );
    // No Lambda / Logs state and no container runtime: those targets are
    // recorded in EventBridge's log and skipped with a warning.
    let eb_target_wiring = fakecloud_eventbridge::delivery::EventTargetWiring::default();
    let eb_delivery = Arc::new(
        fakecloud_eventbridge::delivery::EventBridgeDeliveryImpl::new(
            eb_state.clone(),
            delivery_for_eb.clone(),
        )
        .with_target_wiring(eb_target_wiring.clone()),
    );
    eb_delivery_for_sfn_deferred.set(eb_delivery.clone());
    // DynamoDB's bus only carries Kinesis streaming destinations: empty here.
    let delivery_for_dynamodb = Arc::new(DeliveryBus::new());

    // Register services.
    let mut registry = ServiceRegistry::new();
    let sqs_service = Arc::new(
        fakecloud_sqs::SqsService::new(sqs_state.clone()).with_region(args.region.clone()),
    );
    sqs_service.resume_message_move_tasks();
    registry.register(sqs_service);

    registry.register(Arc::new(
        fakecloud_eventbridge::EventBridgeService::new(eb_state.clone(), delivery_for_eb.clone())
            .with_target_wiring(eb_target_wiring.clone()),
    ));
    // Scheduled (rate/cron) rules.
    tokio::spawn(
        fakecloud_eventbridge::scheduler::Scheduler::new(eb_state.clone(), delivery_for_eb)
            .with_target_wiring(eb_target_wiring)
            .run(),
    );

    let iam_service = fakecloud_iam::iam_service::IamService::new(iam_state.clone());
    let sts_service = fakecloud_iam::sts_service::StsService::new(iam_state.clone())
        .with_snapshot_lock(iam_service.snapshot_lock());
    registry.register(Arc::new(iam_service));
    registry.register(Arc::new(sts_service));

    registry.register(Arc::new(
        fakecloud_dynamodb::DynamoDbService::new(dynamodb_state.clone())
            .with_delivery(delivery_for_dynamodb.clone())
            .with_region(args.region.clone()),
    ));
    registry.register(Arc::new(fakecloud_dynamodb::DynamoDbStreamsService::new(
        dynamodb_state.clone(),
    )));

    registry.register(Arc::new(
        fakecloud_stepfunctions::StepFunctionsService::new(stepfunctions_state.clone())
            .with_delivery(Arc::new(
                DeliveryBus::new()
                    .with_sqs(sqs_delivery.clone())
                    .with_eventbridge(eb_delivery.clone()),
            ))
            .with_dynamodb(dynamodb_state.clone())
            .with_registry(sfn_registry_handle.clone()),
    ));

    let config = DispatchConfig {
        region: args.region.clone(),
        account_id: args.account_id.clone(),
        verify_sigv4: false,
        iam_mode: fakecloud_core::auth::IamMode::Off,
        credential_resolver: Some(
            fakecloud_iam::credential_resolver::IamCredentialResolver::shared(iam_state.clone()),
        ),
        policy_evaluator: Some(
            fakecloud_iam::policy_evaluator::IamPolicyEvaluatorImpl::shared(iam_state.clone()),
        ),
        resource_policy_provider: Some(fakecloud_core::auth::MultiResourcePolicyProvider::shared(
            vec![
                fakecloud_sqs::resource_policy::SqsResourcePolicyProvider::shared(
                    sqs_state.clone(),
                ),
                fakecloud_iam::resource_policy::StsResourcePolicyProvider::shared(
                    iam_state.clone(),
                ),
                fakecloud_eventbridge::resource_policy::EventBridgeResourcePolicyProvider::shared(
                    eb_state.clone(),
                ),
                fakecloud_dynamodb::resource_policy::DynamoDbResourcePolicyProvider::shared(
                    dynamodb_state.clone(),
                ),
            ],
        )),
        scp_resolver: None,
    };
    let service_names: Vec<String> = registry
        .service_names()
        .iter()
        .map(|s| s.to_string())
        .collect();

    let registry = Arc::new(registry);
    let _ = sfn_registry_handle.set(registry.clone());

    let app = Router::new()
        .route(
            "/_fakecloud/health",
            axum::routing::get(move || async move {
                // Same shape as fakecloud_sdk::types::HealthResponse.
                axum::Json(serde_json::json!({
                    "status": "ok",
                    "version": "0.51.0",
                    "services": service_names,
                }))
            }),
        )
        .route(
            // TTL expiry runs only when this is called (as in fakecloud).
            "/_fakecloud/dynamodb/ttl-processor/tick",
            axum::routing::post(move || async move {
                let n = fakecloud_dynamodb::ttl::process_ttl_expirations_with(
                    &dynamodb_state,
                    Some(&delivery_for_dynamodb),
                );
                axum::Json(serde_json::json!({ "expiredItems": n as u64 }))
            }),
        )
        .fallback(dispatch::dispatch)
        .layer(Extension(registry))
        .layer(Extension(Arc::new(config)));

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .unwrap();
}

/// fakecloud-0.51.0/src/stepfunctions_delivery.rs, verbatim but for this
/// comment: starts executions for EventBridge rules targeting a state machine.
mod fakecloud_stepfunctions_delivery {
    use std::sync::Arc;

    use fakecloud_core::delivery::{DeliveryBus, StepFunctionsDelivery};
    use fakecloud_dynamodb::SharedDynamoDbState;
    use fakecloud_stepfunctions::{SharedServiceRegistry, SharedStepFunctionsState};

    pub struct StepFunctionsDeliveryImpl {
        state: SharedStepFunctionsState,
        delivery: Option<Arc<DeliveryBus>>,
        dynamodb_state: Option<SharedDynamoDbState>,
        registry: Option<SharedServiceRegistry>,
    }

    impl StepFunctionsDeliveryImpl {
        pub fn new(
            state: SharedStepFunctionsState,
            delivery: Option<Arc<DeliveryBus>>,
            dynamodb_state: Option<SharedDynamoDbState>,
        ) -> Self {
            Self {
                state,
                delivery,
                dynamodb_state,
                registry: None,
            }
        }

        pub fn with_registry(mut self, registry: SharedServiceRegistry) -> Self {
            self.registry = Some(registry);
            self
        }
    }

    impl StepFunctionsDelivery for StepFunctionsDeliveryImpl {
        fn start_execution(&self, state_machine_arn: &str, input: &str) {
            tracing::info!(
                state_machine_arn,
                "Step Functions delivery: starting execution"
            );
            fakecloud_stepfunctions::start_execution_from_delivery(
                &self.state,
                &self.delivery,
                &self.dynamodb_state,
                &self.registry,
                state_machine_arn,
                input,
            );
        }
    }
}
