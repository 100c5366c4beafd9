//! The front door is real: the emulator's CloudFormation creates the API of a saga's template
//! (`TemplateOptions::front_door`) as declared, on the stack's own state machine: its two routes
//! behind IAM, the validator of body and key, the input's schema as the model, the integrations
//! calling Step Functions as the API's role, and the answers to a refused request. (moto runs no
//! API Gateway integration, so what API Gateway does with them is checked by cfn-lint and by
//! `tests/templates/front_door.rs`.)

use aws_sdk_apigateway::types::GatewayResponseType;
use saga::cloudformation::{FrontDoor, TemplateOptions, template, to_json};

use crate::shop::*;
use crate::stack::create_stack;

/// The shop saga's input, as its first step reads it.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct ShopInput {
    order_id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_creates_the_front_door_as_declared() {
    let config = Emulator::shared().config().await;
    let saga = Shop {
        script: Arc::new(Script::default()),
    }
    .into_saga()
    .renamed(Emulator::unique("door"))
    .unwrap();
    let name = saga.name().to_owned();
    let schema = saga::schema::input_schema::<ShopInput>();
    let options = TemplateOptions {
        front_door: Some(FrontDoor::new(schema.clone())),
        ..TemplateOptions::default()
    };
    let outputs = create_stack(
        &config,
        &name,
        &to_json(&template(saga.definition(), &options)),
    )
    .await;
    let url = &outputs["ApiUrl"];
    let api = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split('.').next())
        .unwrap_or_else(|| panic!("ApiUrl {url}"));
    assert!(url.ends_with("/v1/sagas"), "{url}");

    let gateway = aws_sdk_apigateway::Client::new(&config);
    let resources = gateway
        .get_resources()
        .rest_api_id(api)
        .send()
        .await
        .unwrap();
    let id_of = |path: &str| {
        resources
            .items()
            .iter()
            .find(|r| r.path() == Some(path))
            .and_then(|r| r.id())
            .unwrap_or_else(|| panic!("no resource {path}"))
            .to_owned()
    };
    let start = gateway
        .get_method()
        .rest_api_id(api)
        .resource_id(id_of("/sagas"))
        .http_method("POST")
        .send()
        .await
        .unwrap();
    assert_eq!(start.authorization_type(), Some("AWS_IAM"));
    assert_eq!(
        start
            .request_parameters()
            .and_then(|p| p.get("method.request.header.Idempotency-Key")),
        Some(&true)
    );
    let validator = gateway
        .get_request_validator()
        .rest_api_id(api)
        .request_validator_id(start.request_validator_id().expect("a validator"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            validator.validate_request_body(),
            validator.validate_request_parameters()
        ),
        (true, true)
    );
    let model_name = start
        .request_models()
        .and_then(|m| m.get("application/json"))
        .expect("a model for JSON bodies");
    let model = gateway
        .get_model()
        .rest_api_id(api)
        .model_name(model_name)
        .send()
        .await
        .unwrap();
    let declared: Value = serde_json::from_str(model.schema().unwrap()).unwrap();
    assert_eq!(declared["properties"], schema["properties"]);
    assert_eq!(declared["required"], json!(["order_id"]));

    // The integration starts this stack's state machine, as the API's role, by the key.
    let integration = start.method_integration().expect("an integration");
    assert_eq!(
        integration.uri(),
        Some("arn:aws:apigateway:us-east-1:states:action/StartExecution")
    );
    assert!(
        integration
            .credentials()
            .is_some_and(|role| role.contains(":role/")),
        "{:?}",
        integration.credentials()
    );
    let request = integration
        .request_templates()
        .and_then(|t| t.get("application/json"))
        .expect("a request template");
    assert!(
        request.contains(&format!(
            "\"stateMachineArn\": \"{}\"",
            outputs["StateMachineAliasArn"]
        )),
        "{request}"
    );
    assert!(
        request.contains("$input.params('Idempotency-Key')"),
        "{request}"
    );
    let responses = integration
        .integration_responses()
        .expect("integration responses");
    assert!(
        responses["400"]
            .response_templates()
            .and_then(|t| t.get("application/json"))
            .is_some_and(|t| t.contains("ExecutionAlreadyExists")),
        "{responses:?}"
    );

    let status = gateway
        .get_method()
        .rest_api_id(api)
        .resource_id(id_of("/sagas/{id}"))
        .http_method("GET")
        .send()
        .await
        .unwrap();
    assert_eq!(status.authorization_type(), Some("AWS_IAM"));
    let describe = status
        .method_integration()
        .and_then(|i| i.uri())
        .unwrap_or_default();
    assert!(
        describe.ends_with(":states:action/DescribeExecution"),
        "{describe}"
    );

    let refused = gateway
        .get_gateway_response()
        .rest_api_id(api)
        .response_type(GatewayResponseType::BadRequestBody)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status_code(), Some("400"));
    let stage = gateway
        .get_stage()
        .rest_api_id(api)
        .stage_name("v1")
        .send()
        .await
        .unwrap();
    assert!(stage.tracing_enabled());
}
