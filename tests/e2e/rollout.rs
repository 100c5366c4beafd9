//! Rolling out a new version of a saga as a team would, on the emulator: by updating the
//! template's stack (CloudFormation publishes the new version and moves the alias, and keeps the
//! old version for the sagas that run it), and with the command line (`deploy` refuses to
//! strand sagas in flight, `versions` says what runs where).

use saga::Outcome;
use saga::cli::Entry;
use saga::cloudformation::{TemplateOptions, template, to_json};

use crate::shop::*;
use crate::stack::{create_stack, update_stack};
use crate::versions::{Ledger, ParcelV1, ParcelV2, steps};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_update_moves_new_sagas_to_the_new_version_and_old_ones_finish_on_theirs() {
    let config = Emulator::shared().config().await;
    let name = Emulator::unique("rollout");
    let ledger = Arc::new(Ledger::default());
    let v1 = ParcelV1(ledger.clone()).into_saga().renamed(&name).unwrap();
    let v2 = ParcelV2(ledger.clone()).into_saga().renamed(&name).unwrap();
    let body =
        |saga: &saga::Saga| to_json(&template(saga.definition(), &TemplateOptions::default()));
    let outputs = create_stack(&config, &name, &body(&v1)).await;
    let alias = outputs["StateMachineAliasArn"].clone();
    assert!(alias.ends_with(":live"), "{alias}");
    let sfn = StepFunctions::new(&config, "");
    let input = json!({ "parcel": 1 });
    for id in ["old-0", "old-1"] {
        assert!(sfn.start(&alias, id, &input).await.unwrap().started);
    }

    let updated = update_stack(&config, &name, &body(&v2)).await;
    assert_eq!(updated["StateMachineAliasArn"], alias);
    let in_flight = sfn.in_flight(&outputs["StateMachineArn"]).await.unwrap();
    let on: Vec<(String, Vec<String>)> = in_flight
        .iter()
        .map(|group| (group.label(), group.saga_ids.clone()))
        .collect();
    assert_eq!(
        on,
        [(
            "version 1".to_owned(),
            vec!["old-0".to_owned(), "old-1".to_owned()]
        )]
    );
    assert!(sfn.start(&alias, "new-0", &input).await.unwrap().started);

    // One worker with both versions' handlers, pointed at the stack's queue and table.
    let worker = Worker::builder(&config, &outputs["ParcelQueueUrl"])
        .saga(v2.clone())
        .saga(v1.clone())
        .table(&outputs["IdempotencyTableName"])
        .wait_time(Duration::from_secs(1))
        .build()
        .unwrap();
    worker.ready().await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = worker.clone();
    let task = tokio::spawn(async move {
        running
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let wait = Wait::default().at_most(Duration::from_secs(120));
    for (id, expected) in [
        ("old-0", vec!["reserve", "ship"]),
        ("old-1", vec!["reserve", "ship"]),
        ("new-0", vec!["reserve", "label", "ship"]),
    ] {
        let arn = saga_aws::execution_arn(&alias, id);
        let report = sfn.wait_for_report(&arn, wait).await.unwrap();
        assert_eq!(report.outcome, Outcome::Completed, "{id}: {report:?}");
        assert_eq!(steps(&report), expected, "{id}");
        let version = if expected.len() == 2 { 1 } else { 2 };
        let effects: Vec<String> = expected
            .iter()
            .map(|step| format!("v{version} {step} execute"))
            .collect();
        assert_eq!(ledger.of(id), effects, "{id}");
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_refuses_to_strand_sagas_and_says_what_runs_where() {
    let config = Emulator::shared().config().await;
    let name = Emulator::unique("rollout-cli");
    let ledger = Arc::new(Ledger::default());
    let v1 = ParcelV1(ledger.clone()).into_saga().renamed(&name).unwrap();
    let v2 = ParcelV2(ledger.clone()).into_saga().renamed(&name).unwrap();
    let role = Emulator::ROLE_ARN;
    let deploy = ["deploy", "--create-queues", "--role-arn", role];
    let only = |saga: &saga::Saga| vec![Entry::from(saga.clone())];
    let both = || vec![Entry::from(v2.clone()).older_version(v1.clone())];

    let (_, out) = command_line(&config, only(&v1), &deploy).await.unwrap();
    assert!(out.contains("(Created)"), "{out}");
    assert!(out.contains(&format!(":stateMachine:{name}:1\n")), "{out}");
    assert!(out.contains("new sagas start on "), "{out}");
    assert!(out.contains(&format!(":stateMachine:{name}:live")), "{out}");
    let start = ["start", "old-0", "--input", r#"{"parcel": 1}"#];
    command_line(&config, only(&v1), &start).await.unwrap();

    // This program without version 1's handlers: refused, with the reason.
    let refused = command_line(&config, only(&v2), &deploy).await.unwrap_err();
    assert!(
        refused.contains(&format!("deploying `{name}` would strand sagas in flight")),
        "{refused}"
    );
    assert!(
        refused.contains("1 saga(s) on version 1 (old-0): no handlers for version 1"),
        "{refused}"
    );
    let (_, stranded) = command_line(&config, only(&v2), &["versions"])
        .await
        .unwrap();
    assert!(
        stranded.contains(
            "version 1: 1 saga(s) in flight, declared version 1: this program cannot finish them"
        ),
        "{stranded}"
    );
    assert!(
        stranded.contains(&format!(
            "this program has the handlers of saga `{name}` version 2\n"
        )),
        "{stranded}"
    );

    // With them: deployed, and `versions` says it can finish what is in flight.
    let (_, out) = command_line(&config, both(), &deploy).await.unwrap();
    assert!(out.contains("(Updated)"), "{out}");
    assert!(out.contains(&format!(":stateMachine:{name}:2\n")), "{out}");
    let (_, fine) = command_line(&config, both(), &["versions"]).await.unwrap();
    assert!(
        fine.contains(
            "version 1: 1 saga(s) in flight, declared version 1: this program can finish them"
        ),
        "{fine}"
    );
    assert!(fine.contains("version 1, 2\n"), "{fine}");

    // Told to, a program without version 1's handlers deploys anyway (nothing changes here:
    // the definition is version 2's already).
    let (_, forced) = command_line(
        &config,
        only(&v2),
        &[&deploy[..], &["--allow-stranded"]].concat(),
    )
    .await
    .unwrap();
    assert!(forced.contains("(Unchanged)"), "{forced}");

    // And workers with both versions' handlers finish the old saga on version 1.
    let deployed = saga_aws::DeployedSaga::find(&config, v2.definition())
        .await
        .unwrap()
        .with_saga(v2.clone())
        .unwrap()
        .with_older_version(v1.clone())
        .unwrap();
    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(Duration::from_secs(1)))
        .await
        .unwrap();
    let report = deployed.wait("old-0", Wait::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    assert_eq!(
        ledger.of("old-0"),
        ["v1 reserve execute", "v1 ship execute"]
    );
    workers.stop().await.unwrap();
}
