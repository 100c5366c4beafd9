//! The front door: the saga input's JSON Schema, checked with a real draft-4 validator (PyPI
//! `jsonschema`'s `Draft4Validator`; API Gateway validates bodies with draft 4), refuses what the
//! saga itself cannot read, before anything runs; and the API's routes, authorization,
//! integrations and role say what the README says.

use std::io::Write;
use std::process::Stdio;

use saga::cloudformation::FrontDoor;

use super::*;

const JSONSCHEMA: &str = "jsonschema==4.26.0";

/// The Python of the cfn-lint venv, with `jsonschema` installed into it once.
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let python = cfn_lint().with_file_name("python");
            let has = |python: &Path| {
                Command::new(python)
                    .args(["-c", "import jsonschema"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has(&python) {
                let status = Command::new(cfn_lint().with_file_name("pip"))
                    .args([
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        JSONSCHEMA,
                    ])
                    .status()
                    .expect("run pip");
                assert!(
                    status.success(),
                    "`pip install {JSONSCHEMA}` failed: {status}"
                );
            }
            python
        })
        .clone()
}

/// Each body checked against `schema` by `Draft4Validator`: `None` if it passes, else the first
/// error's message.
fn validate(schema: &Value, bodies: &[Value]) -> Vec<Option<String>> {
    const SCRIPT: &str = "import json, sys\n\
        from jsonschema import Draft4Validator\n\
        given = json.load(sys.stdin)\n\
        Draft4Validator.check_schema(given['schema'])\n\
        v = Draft4Validator(given['schema'])\n\
        print(json.dumps([next((e.message for e in v.iter_errors(b)), None) for b in given['bodies']]))\n";
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the validator");
    let given = json!({ "schema": schema, "bodies": bodies });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(given.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the validator failed");
    serde_json::from_slice(&out.stdout).expect("a verdict per body")
}

pub(crate) fn order_front_door() -> TemplateOptions {
    TemplateOptions {
        front_door: Some(FrontDoor::new(saga::schema::input_schema::<order::Order>())),
        ..TemplateOptions::default()
    }
}

#[test]
fn the_input_schema_refuses_what_the_saga_cannot_read() {
    let t = template(&order::OrderSaga::definition(), &order_front_door());
    let schema = &t["Resources"]["ApiInputModel"]["Properties"]["Schema"];
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    let good = serde_json::to_value(order::order()).unwrap();
    let mut wrong_type = good.clone();
    wrong_type["order_id"] = json!(1);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("sku");
    let mut negative = good.clone();
    negative["quantity"] = json!(-2);
    let mut reserved = good.clone();
    reserved["steps"] = json!({});
    let bodies = [good, wrong_type, missing, negative, reserved, json!([1, 2])];
    let verdicts = validate(schema, &bodies);
    assert_eq!(verdicts[0], None, "the example's input passes");
    let reason = |i: usize| verdicts[i].clone().unwrap_or_default();
    assert!(
        reason(1).contains("is not of type 'string'"),
        "{verdicts:?}"
    );
    assert!(
        reason(2).contains("'sku' is a required property"),
        "{verdicts:?}"
    );
    assert!(reason(3).contains("less than the minimum"), "{verdicts:?}");
    assert!(
        verdicts[4].is_some(),
        "`steps` is the saga's own: {verdicts:?}"
    );
    assert!(
        reason(5).contains("is not of type 'object'"),
        "{verdicts:?}"
    );
    // What the schema refuses, the saga refuses too (and the other way round).
    let saga = order::order_saga(&[]);
    for (body, verdict) in bodies.iter().zip(&verdicts).take(4) {
        assert_eq!(
            saga.check_input(body).is_ok(),
            verdict.is_none(),
            "{body}: {verdict:?}"
        );
    }
}

#[test]
fn the_front_door_starts_the_saga_by_its_key_behind_iam() {
    let t = template(&order::OrderSaga::definition(), &order_front_door());
    let r = &t["Resources"];
    let start = &r["ApiStart"]["Properties"];
    assert_eq!(start["HttpMethod"], "POST");
    assert_eq!(start["ResourceId"], json!({ "Ref": "ApiSagas" }));
    assert_eq!(start["AuthorizationType"], "AWS_IAM");
    assert_eq!(
        start["RequestParameters"]["method.request.header.Idempotency-Key"], true,
        "the key is required"
    );
    assert_eq!(
        start["RequestValidatorId"],
        json!({ "Ref": "ApiValidator" })
    );
    assert_eq!(
        start["RequestModels"]["application/json"],
        json!({ "Ref": "ApiInputModel" })
    );
    let validator = &r["ApiValidator"]["Properties"];
    assert_eq!(
        (
            &validator["ValidateRequestBody"],
            &validator["ValidateRequestParameters"]
        ),
        (&json!(true), &json!(true))
    );
    // API Gateway calls Step Functions itself, as the front door's role, naming the execution
    // after the key.
    let integration = &start["Integration"];
    assert_eq!(integration["Type"], "AWS");
    assert!(
        integration["Uri"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .ends_with(":states:action/StartExecution")
    );
    assert_eq!(
        integration["Credentials"],
        json!({ "Fn::GetAtt": ["ApiRole", "Arn"] })
    );
    let request = integration["RequestTemplates"]["application/json"]["Fn::Sub"]
        .as_str()
        .unwrap();
    // New sagas start on the alias of the newest version.
    assert!(
        request.contains("\"stateMachineArn\": \"${StateMachineAlias}\""),
        "{request}"
    );
    assert!(
        request.contains("\"name\": \"$util.escapeJavaScript($input.params('Idempotency-Key'))\""),
        "{request}"
    );
    // The body is the input, with the `\'` escapeJavaScript writes (and JSON refuses) undone.
    assert!(
        request.contains("$util.escapeJavaScript($input.json('$')).replaceAll(\"\\\\'\", \"'\")"),
        "{request}"
    );
    // A repeated key starts nothing and answers with the saga it names.
    let refused = integration["IntegrationResponses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["StatusCode"] == "400")
        .unwrap();
    let answer = refused["ResponseTemplates"]["application/json"]
        .as_str()
        .unwrap();
    assert!(answer.contains("ExecutionAlreadyExists"), "{answer}");
    assert!(
        answer.contains("$context.responseOverride.status = 200"),
        "{answer}"
    );
    assert!(answer.contains("\"started\": false"), "{answer}");
    // A refused body or a missing key is a 400 with API Gateway's reason.
    for id in ["ApiBadBody", "ApiBadParameters"] {
        let response = &r[id]["Properties"];
        assert_eq!(response["StatusCode"], "400", "{id}");
        assert!(
            response["ResponseTemplates"]["application/json"]
                .as_str()
                .unwrap()
                .contains("$context.error.validationErrorString"),
            "{id}"
        );
    }
    // GET /sagas/{id}: where the saga stands, 404 for an id no saga has.
    let status = &r["ApiStatus"]["Properties"];
    assert_eq!(
        (&status["HttpMethod"], &status["AuthorizationType"]),
        (&json!("GET"), &json!("AWS_IAM"))
    );
    assert!(
        status["Integration"]["Uri"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .ends_with(":states:action/DescribeExecution")
    );
    assert!(
        status["MethodResponses"]
            .as_array()
            .unwrap()
            .contains(&json!({ "StatusCode": "404" }))
    );
    // The role may start this saga and read its executions: nothing else.
    let statements = &r["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    assert_eq!(statements[0]["Action"], json!(["states:StartExecution"]));
    assert_eq!(
        statements[0]["Resource"],
        json!([{ "Ref": "StateMachine" }, { "Ref": "StateMachineAlias" }])
    );
    assert_eq!(statements[1]["Action"], json!(["states:DescribeExecution"]));
    assert_eq!(statements.as_array().unwrap().len(), 2);
    assert_eq!(
        r["ApiRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"],
        json!({ "Service": "apigateway.amazonaws.com" })
    );
    assert!(t["Outputs"]["ApiUrl"].is_object());

    // Without IAM authorization when told; and no front door unless asked for.
    let mut open = order_front_door();
    open.front_door.as_mut().unwrap().iam_authorization = false;
    let open = template(&order::OrderSaga::definition(), &open);
    assert_eq!(
        open["Resources"]["ApiStart"]["Properties"]["AuthorizationType"],
        "NONE"
    );
    let none = template(&order::OrderSaga::definition(), &TemplateOptions::default());
    assert!(
        none["Resources"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("Api"))
    );
}
