//! The CloudFormation templates, checked by the real linter (PyPI `cfn-lint`, which this test
//! installs into the target directory) and held to least privilege: no wildcard action or
//! resource besides the `*` AWS forces on the task callbacks, log delivery and X-Ray, each
//! alone in its statement. `observability.rs` checks what the stack watches, `versions.rs` how
//! it deploys a new version.

mod front_door;
mod observability;
#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/order/main.rs"]
mod order;
#[path = "../support/mod.rs"]
mod support;
mod versions;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use saga::SagaDefinition;
use saga::cloudformation::{
    LOG_DELIVERY_ACTIONS, TASK_CALLBACK_ACTIONS, TRACING_ACTIONS, TemplateOptions, template,
    to_json, to_yaml,
};
use serde_json::{Value, json};

const CFN_LINT: &str = "cfn-lint==1.58.0";

/// Installs cfn-lint once into a venv in the target directory; a missing `python3` is a
/// failure.
fn cfn_lint() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cfn-lint-venv");
        let bin = venv.join("bin/cfn-lint");
        if !bin.exists() {
            let status = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap_or_else(|e| {
                    panic!("cannot run `python3` to install cfn-lint ({e}); install Python 3.11")
                });
            assert!(status.success(), "`python3 -m venv` failed: {status}");
            let status = Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    CFN_LINT,
                ])
                .status()
                .expect("run pip");
            assert!(
                status.success(),
                "`pip install {CFN_LINT}` failed: {status}"
            );
        }
        bin
    })
}

/// Runs cfn-lint over the files; its output when it finds anything.
fn lint(files: &[PathBuf]) -> Result<(), String> {
    let out = Command::new(cfn_lint())
        .args(files)
        .output()
        .expect("run cfn-lint");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn order_trigger() -> TemplateOptions {
    TemplateOptions {
        trigger: Some(json!({ "source": ["shop.orders"], "detail-type": ["OrderPlaced"] })),
        ..TemplateOptions::default()
    }
}

/// 20 generated sagas; every other one with its odd steps on Lambda functions.
fn shapes() -> Vec<SagaDefinition> {
    let ledger = std::sync::Arc::new(support::Ledger::default());
    let mut runner = TestRunner::deterministic();
    (0..20)
        .map(|i| {
            let shape = support::shape(1, 8)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let definition = shape
                .build(&format!("shape{i}"), &ledger)
                .definition()
                .clone();
            if i % 2 == 1 {
                support::with_lambdas(definition)
            } else {
                definition
            }
        })
        .collect()
}

/// Every IAM statement of the template (roles' policies and queue policies), with where it is.
fn statements(template: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (id, resource) in template["Resources"].as_object().unwrap() {
        let properties = &resource["Properties"];
        let documents: Vec<&Value> = match resource["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => properties["Policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| &p["PolicyDocument"])
                .collect(),
            "AWS::SQS::QueuePolicy" => vec![&properties["PolicyDocument"]],
            _ => continue,
        };
        for document in documents {
            for statement in document["Statement"].as_array().unwrap() {
                found.push((id.clone(), statement.clone()));
            }
        }
    }
    found
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// The groups of actions AWS grants on `*` only, each of which stands alone in a statement.
fn forced_wildcards() -> [Vec<&'static str>; 3] {
    [
        TASK_CALLBACK_ACTIONS.to_vec(),
        LOG_DELIVERY_ACTIONS.to_vec(),
        TRACING_ACTIONS.to_vec(),
    ]
}

/// Each wildcard action or resource, except a group AWS forces alone on `*`.
fn needless_wildcards(template: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (id, statement) in statements(template) {
        let actions: Vec<String> = as_list(&statement["Action"])
            .iter()
            .map(|a| a.as_str().unwrap_or_default().to_owned())
            .collect();
        for action in &actions {
            if action.contains('*') {
                found.push(format!("{id}: action {action}"));
            }
        }
        let forced = !actions.is_empty()
            && forced_wildcards()
                .iter()
                .any(|group| actions.iter().all(|a| group.contains(&a.as_str())));
        for resource in as_list(&statement["Resource"]) {
            // Any string in the resource, intrinsic functions included, but the executions of
            // the saga's own state machine (their names are the saga ids).
            let own_executions = resource["Fn::Sub"]
                .as_str()
                .is_some_and(|arn| arn.ends_with(":execution:${StateMachine.Name}:*"));
            if resource.to_string().contains('*') && !forced && !own_executions {
                found.push(format!("{id}: resource {resource} for {actions:?}"));
            }
        }
        // A wildcard principal may only be denied, and only with a condition that names
        // who is spared (the participant queues' "only the state machine sends").
        let conditional_deny = statement["Effect"] == "Deny" && statement["Condition"].is_object();
        if statement["Principal"].to_string().contains('*') && !conditional_deny {
            found.push(format!("{id}: principal {}", statement["Principal"]));
        }
    }
    found
}

#[test]
fn cfn_lint_accepts_the_templates_of_the_example_and_of_generated_sagas() {
    let dir = scratch("templates");
    let order = order::OrderSaga::definition();
    let mut files = vec![
        ("order", order.clone(), TemplateOptions::default()),
        ("order-with-trigger", order.clone(), order_trigger()),
        (
            "order-with-front-door",
            order,
            front_door::order_front_door(),
        ),
    ];
    for definition in shapes() {
        files.push(("shape", definition, TemplateOptions::default()));
    }
    let mut paths = Vec::new();
    for (i, (name, definition, options)) in files.iter().enumerate() {
        let t = template(definition, options);
        // Both forms: YAML (with the comments) and JSON.
        let yaml = dir.join(format!("{i}-{name}.yaml"));
        std::fs::write(&yaml, to_yaml(&t)).unwrap();
        let json = dir.join(format!("{i}-{name}.json"));
        std::fs::write(&json, to_json(&t)).unwrap();
        paths.extend([yaml, json]);
    }
    if let Err(report) = lint(&paths) {
        panic!("cfn-lint refused templates:\n{report}");
    }
}

#[test]
fn cfn_lint_refuses_a_broken_template() {
    // The control: the linter must be able to fail.
    let dir = scratch("templates-control");
    let mut t = template(&order::OrderSaga::definition(), &TemplateOptions::default());
    t["Resources"]["InventoryQueue"]["Properties"]["VisibilityTimeout"] = json!("soon");
    let path = dir.join("broken.json");
    std::fs::write(&path, to_json(&t)).unwrap();
    assert!(
        lint(&[path]).is_err(),
        "cfn-lint accepted a broken template"
    );
}

#[test]
fn no_role_has_a_wildcard_but_those_aws_forces() {
    let order = order::OrderSaga::definition();
    let mut templates = vec![
        template(&order, &TemplateOptions::default()),
        template(&order, &order_trigger()),
        template(&order, &front_door::order_front_door()),
    ];
    templates.extend(
        shapes()
            .iter()
            .map(|d| template(d, &TemplateOptions::default())),
    );
    for t in &templates {
        assert_eq!(needless_wildcards(t), Vec::<String>::new());
        // Each forced group is alone in its statement, whole, with the reason beside it.
        for (id, statement) in statements(t) {
            if as_list(&statement["Resource"]).contains(&json!("*")) {
                let actions = as_list(&statement["Action"]);
                assert!(
                    forced_wildcards()
                        .iter()
                        .any(|group| actions == group.iter().map(|a| json!(a)).collect::<Vec<_>>()),
                    "{id}: {actions:?} on *"
                );
                assert!(statement["__comment"].is_string(), "{id}: no comment");
            }
        }
    }
    // The checker finds what it must.
    let mut bad = templates[0].clone();
    let statements = bad["Resources"]["StateMachineRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    statements.push(json!({ "Effect": "Allow", "Action": "sqs:*", "Resource": "*" }));
    assert_eq!(
        needless_wildcards(&bad).len(),
        2,
        "{:?}",
        needless_wildcards(&bad)
    );
}

#[test]
fn the_state_machine_role_reaches_only_its_own_participants_and_bus() {
    let t = template(&order::OrderSaga::definition(), &TemplateOptions::default());
    let role = &t["Resources"]["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    let mut granted: Vec<(String, String)> = Vec::new();
    for statement in role["Statement"].as_array().unwrap() {
        for action in as_list(&statement["Action"]) {
            for resource in as_list(&statement["Resource"]) {
                granted.push((action.as_str().unwrap().to_owned(), resource.to_string()));
            }
        }
    }
    granted.sort();
    let resources = t["Resources"].as_object().unwrap();
    let queues: Vec<String> = resources
        .keys()
        .filter(|k| {
            k.ends_with("Queue") && resources.contains_key(&k.replace("Queue", "WorkerRole"))
        })
        .cloned()
        .collect();
    assert_eq!(queues.len(), 3, "{queues:?}");
    let mut expected: Vec<(String, String)> = queues
        .iter()
        .map(|q| {
            (
                "sqs:SendMessage".to_owned(),
                json!({ "Fn::GetAtt": [q, "Arn"] }).to_string(),
            )
        })
        .collect();
    expected.push((
        "events:PutEvents".to_owned(),
        json!({ "Fn::GetAtt": ["EventBus", "Arn"] }).to_string(),
    ));
    // Logging and tracing, which AWS grants on `*` only.
    for action in LOG_DELIVERY_ACTIONS.iter().chain(&TRACING_ACTIONS) {
        expected.push(((*action).to_owned(), json!("*").to_string()));
    }
    expected.sort();
    assert_eq!(granted, expected);
}

#[test]
fn only_the_state_machine_may_send_to_a_participant_queue() {
    // The threat model: a participant runs whatever command it receives, so its queue admits
    // no sender but the state machine's role.
    let mut definitions = vec![order::OrderSaga::definition()];
    definitions.extend(shapes());
    for definition in &definitions {
        let t = template(definition, &TemplateOptions::default());
        let resources = t["Resources"].as_object().unwrap();
        let queues: Vec<&String> = resources
            .iter()
            .filter(|(id, r)| {
                r["Type"] == "AWS::SQS::Queue"
                    && !id.ends_with("DeadLetterQueue")
                    && resources.contains_key(&id.replace("Queue", "WorkerRole"))
            })
            .map(|(id, _)| id)
            .collect();
        assert!(
            !queues.is_empty()
                || definition
                    .steps
                    .iter()
                    .all(|s| matches!(s.participant, saga::Participant::Lambda(_))),
            "{}: no participant queue found",
            definition.name
        );
        for queue in queues {
            let policy = &resources[&format!("{queue}Policy")];
            assert_eq!(policy["Properties"]["Queues"], json!([{ "Ref": queue }]));
            let statements = policy["Properties"]["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap();
            assert!(
                statements.iter().any(|s| s["Effect"] == "Deny"
                    && s["Principal"] == "*"
                    && s["Action"] == "sqs:SendMessage"
                    && s["Resource"] == json!({ "Fn::GetAtt": [queue, "Arn"] })
                    && s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
                        == json!({ "Fn::GetAtt": ["StateMachineRole", "Arn"] })),
                "{queue}: {policy:#}"
            );
        }
    }
}
