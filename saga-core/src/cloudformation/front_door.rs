//! A saga's front door: an API Gateway REST API whose `POST /sagas` starts the saga, named after
//! the request's `Idempotency-Key` header, once its body passes the JSON Schema of the saga's
//! input, and whose `GET /sagas/{id}` answers where it stands. API Gateway calls Step Functions
//! itself (an AWS service integration): no function runs, and nothing is billed but the request
//! and the saga. Both routes need IAM authorization (SigV4) unless told otherwise.

use serde_json::{Map, Value, json};

use super::{get_att, reference, role, statement};

/// What the front door of a saga needs: the JSON Schema its request bodies must pass (draft 4,
/// the one API Gateway validates with; see [`draft4`] and, with the feature `schema`,
/// `saga_core::schema::input_schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct FrontDoor {
    /// The schema of the saga's input.
    pub input_schema: Value,
    /// Whether the routes need IAM authorization (SigV4): `true` unless set otherwise.
    pub iam_authorization: bool,
}

impl FrontDoor {
    /// A front door whose requests must pass `input_schema`, behind IAM authorization.
    pub fn new(input_schema: Value) -> Self {
        Self {
            input_schema,
            iam_authorization: true,
        }
    }
}

/// The stage the API is deployed to, the first segment of its paths.
pub const STAGE: &str = "v1";

/// The header that names the saga a request starts.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `schema` in draft 4, the JSON Schema API Gateway validates with, from a later draft (as
/// `schemars` writes draft 7): `exclusiveMinimum`/`exclusiveMaximum` as the boolean flags of
/// `minimum`/`maximum`, `const` as a one-value `enum`, `$defs` as `definitions`, and the keywords
/// draft 4 lacks (annotations such as `examples`, `readOnly`) dropped.
pub fn draft4(schema: Value) -> Value {
    let mut schema = convert(schema);
    if let Value::Object(root) = &mut schema {
        root.insert(
            "$schema".into(),
            json!("http://json-schema.org/draft-04/schema#"),
        );
    }
    schema
}

fn convert(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(convert).collect()),
        Value::Object(object) => {
            let mut out = Map::new();
            for (key, value) in object {
                match key.as_str() {
                    "exclusiveMinimum" | "exclusiveMaximum" if value.is_number() => {
                        let bound = if key == "exclusiveMinimum" {
                            "minimum"
                        } else {
                            "maximum"
                        };
                        out.insert(bound.into(), value);
                        out.insert(key, Value::Bool(true));
                    }
                    "const" => {
                        out.insert("enum".into(), Value::Array(vec![value]));
                    }
                    "$defs" => {
                        out.insert("definitions".into(), convert(value));
                    }
                    "$ref" => {
                        let target = value.as_str().unwrap_or_default();
                        let target = target.replace("#/$defs/", "#/definitions/");
                        out.insert(key, Value::String(target));
                    }
                    "examples" | "readOnly" | "writeOnly" | "deprecated" | "$comment"
                    | "contentEncoding" | "contentMediaType" => {}
                    _ => {
                        out.insert(key, convert(value));
                    }
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// `schema`, refusing too the keys the saga document reserves (`steps`, `error`), as the
/// executor refuses them before a saga starts.
fn without_reserved_keys(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(root) = &mut schema {
        let reserved: Vec<Value> = [
            crate::protocol::DOCUMENT_STEPS,
            crate::protocol::DOCUMENT_ERROR,
        ]
        .iter()
        .map(|key| json!({ "type": "object", "required": [key] }))
        .collect();
        let refused = json!({ "anyOf": reserved });
        match root.get_mut("not") {
            // A schema that refuses something already: refuse either.
            Some(not) => *not = json!({ "anyOf": [not.take(), refused] }),
            None => {
                root.insert("not".into(), refused);
            }
        }
    }
    schema
}

/// The name of saga `saga`'s input model: alphanumeric, as API Gateway requires.
fn model_name(saga: &str) -> String {
    let mut name: String = saga
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Input");
    name
}

/// The ARN of the execution whose name the template expression `name` gives (VTL).
fn execution_arn(name: &str) -> Value {
    json!({
        "Fn::Sub": format!(
            "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:${{StateMachine.Name}}:{name}"
        )
    })
}

/// The answer naming a saga (`started`: whether this request started it).
fn saga_answer(started: bool) -> String {
    let key = format!("$util.escapeJavaScript($input.params('{IDEMPOTENCY_HEADER}'))");
    format!(
        "{{\"saga_id\": \"{key}\", \"started\": {started}, \"status\": \"/{STAGE}/sagas/$util.urlEncode($input.params('{IDEMPOTENCY_HEADER}'))\"}}"
    )
}

fn method(
    door: &FrontDoor,
    http_method: &str,
    resource: &str,
    action: &str,
    request: Value,
    responses: Vec<Value>,
) -> Value {
    let statuses: Vec<Value> = responses
        .iter()
        .map(|r| json!({ "StatusCode": r["StatusCode"] }))
        .collect();
    json!({
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "RestApiId": reference("Api"),
            "ResourceId": reference(resource),
            "HttpMethod": http_method,
            "AuthorizationType": if door.iam_authorization { "AWS_IAM" } else { "NONE" },
            "Integration": {
                "Type": "AWS",
                "IntegrationHttpMethod": "POST",
                "Uri": { "Fn::Sub": format!("arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:states:action/{action}") },
                "Credentials": get_att("ApiRole", "Arn"),
                "PassthroughBehavior": "NEVER",
                "RequestTemplates": { "application/json": request },
                "IntegrationResponses": responses,
            },
            "MethodResponses": statuses,
        },
    })
}

/// Adds the front door of saga `saga`.
pub(super) fn add(
    saga: &str,
    door: &FrontDoor,
    resources: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
) {
    let mut add = |id: &str, resource: Value| resources.insert(id.into(), resource);
    add(
        "Api",
        json!({
            "Type": "AWS::ApiGateway::RestApi",
            "Properties": {
                "Name": { "Fn::Sub": format!("${{AWS::StackName}}-{saga}") },
                "Description": format!("Starts saga `{saga}` and answers where it stands"),
                "EndpointConfiguration": { "Types": ["REGIONAL"] },
            },
        }),
    );
    // API Gateway may start this saga and read its executions, nothing else.
    add(
        "ApiRole",
        role(
            json!("apigateway.amazonaws.com"),
            "front-door",
            vec![
                statement(
                    "StartSagas",
                    &["states:StartExecution"],
                    super::versions::start_targets(),
                ),
                statement(
                    "DescribeSagas",
                    &["states:DescribeExecution"],
                    vec![execution_arn("*")],
                ),
            ],
        ),
    );
    add(
        "ApiInputModel",
        json!({
            "Type": "AWS::ApiGateway::Model",
            "Properties": {
                "RestApiId": reference("Api"),
                "ContentType": "application/json",
                "Name": model_name(saga),
                "Description": format!("The input of saga `{saga}`"),
                "Schema": without_reserved_keys(&door.input_schema),
            },
        }),
    );
    add(
        "ApiValidator",
        json!({
            "Type": "AWS::ApiGateway::RequestValidator",
            "Properties": {
                "RestApiId": reference("Api"),
                "Name": "body-and-idempotency-key",
                "ValidateRequestBody": true,
                "ValidateRequestParameters": true,
            },
        }),
    );
    // A refused request says why (API Gateway's validation message).
    for (id, kind) in [
        ("ApiBadBody", "BAD_REQUEST_BODY"),
        ("ApiBadParameters", "BAD_REQUEST_PARAMETERS"),
    ] {
        add(
            id,
            json!({
                "Type": "AWS::ApiGateway::GatewayResponse",
                "Properties": {
                    "RestApiId": reference("Api"),
                    "ResponseType": kind,
                    "StatusCode": "400",
                    "ResponseTemplates": {
                        "application/json": "{\"message\": \"$context.error.validationErrorString\"}",
                    },
                },
            }),
        );
    }
    add(
        "ApiSagas",
        json!({
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "RestApiId": reference("Api"),
                "ParentId": get_att("Api", "RootResourceId"),
                "PathPart": "sagas",
            },
        }),
    );
    add(
        "ApiSaga",
        json!({
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "RestApiId": reference("Api"),
                "ParentId": reference("ApiSagas"),
                "PathPart": "{id}",
            },
        }),
    );

    // POST /sagas: StartExecution named by the key, the body as the input (escapeJavaScript
    // also escapes `'`, which JSON does not allow escaped: undone). Step Functions answers a repeat of a running
    // execution's name and input with that execution, and ExecutionAlreadyExists otherwise
    // (the saga has ended, or another body came with its key): either way the key already names
    // a saga, which the answer names (200) instead of starting anything.
    let start_request = json!({ "Fn::Sub": format!(
        "{{\"stateMachineArn\": \"${{StateMachineAlias}}\", \"name\": \"$util.escapeJavaScript($input.params('{IDEMPOTENCY_HEADER}'))\", \"input\": \"$util.escapeJavaScript($input.json('$')).replaceAll(\"\\\\'\", \"'\")\"}}"
    ) });
    let refused = format!(
        "#if($input.path('$.__type').contains('ExecutionAlreadyExists'))#set($context.responseOverride.status = 200){}#else{{\"message\": $input.json('$.message')}}#end",
        saga_answer(false)
    );
    let start = method(
        door,
        "POST",
        "ApiSagas",
        "StartExecution",
        start_request,
        vec![
            json!({ "StatusCode": "202", "ResponseTemplates": { "application/json": saga_answer(true) } }),
            json!({ "StatusCode": "400", "SelectionPattern": "4\\d{2}", "ResponseTemplates": { "application/json": refused } }),
            json!({ "StatusCode": "500", "SelectionPattern": "5\\d{2}", "ResponseTemplates": { "application/json": "{\"message\": $input.json('$.message')}" } }),
        ],
    );
    let mut start = start;
    let properties = &mut start["Properties"];
    // A repeated key is answered 200 (the response override above).
    properties["MethodResponses"]
        .as_array_mut()
        .expect("method responses")
        .push(json!({ "StatusCode": "200" }));
    properties["RequestValidatorId"] = reference("ApiValidator");
    properties["RequestModels"] = json!({ "application/json": reference("ApiInputModel") });
    properties["RequestParameters"] =
        json!({ format!("method.request.header.{IDEMPOTENCY_HEADER}"): true });
    add("ApiStart", start);

    // GET /sagas/{id}: DescribeExecution, without the input (only the output once it ends).
    let describe_request = json!({ "Fn::Sub": [
        "{\"executionArn\": \"${Execution}\"}",
        { "Execution": execution_arn("$util.escapeJavaScript($input.params('id'))") },
    ] });
    let found = "{\"saga_id\": $input.json('$.name'), \"status\": $input.json('$.status'), \"started_at\": $input.json('$.startDate'), \"stopped_at\": $input.json('$.stopDate'), \"error\": $input.json('$.error'), \"output\": $input.json('$.output')}";
    let missing = "#if($input.path('$.__type').contains('ExecutionDoesNotExist'))#set($context.responseOverride.status = 404){\"message\": \"no saga has this id\"}#else{\"message\": $input.json('$.message')}#end";
    let mut status = method(
        door,
        "GET",
        "ApiSaga",
        "DescribeExecution",
        describe_request,
        vec![
            json!({ "StatusCode": "200", "ResponseTemplates": { "application/json": found } }),
            json!({ "StatusCode": "400", "SelectionPattern": "4\\d{2}", "ResponseTemplates": { "application/json": missing } }),
            json!({ "StatusCode": "500", "SelectionPattern": "5\\d{2}", "ResponseTemplates": { "application/json": "{\"message\": $input.json('$.message')}" } }),
        ],
    );
    status["Properties"]["RequestParameters"] = json!({ "method.request.path.id": true });
    status["Properties"]["MethodResponses"]
        .as_array_mut()
        .expect("method responses")
        .push(json!({ "StatusCode": "404" }));
    add("ApiStatus", status);

    add(
        "ApiDeployment",
        json!({
            "Type": "AWS::ApiGateway::Deployment",
            "DependsOn": ["ApiStart", "ApiStatus"],
            "Properties": { "RestApiId": reference("Api") },
        }),
    );
    add(
        "ApiStage",
        json!({
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {
                "RestApiId": reference("Api"),
                "DeploymentId": reference("ApiDeployment"),
                "StageName": STAGE,
                "TracingEnabled": true,
            },
        }),
    );
    outputs.insert(
        "ApiUrl".into(),
        json!({
            "Description": "POST here to start the saga (header Idempotency-Key); GET <url>/<id> for its status",
            "Value": { "Fn::Sub": format!("https://${{Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{STAGE}/sagas") },
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_draft_becomes_draft_4() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "n": { "type": "integer", "exclusiveMinimum": 0, "examples": [1] },
                "kind": { "const": "a" },
                "item": { "$ref": "#/$defs/Item" },
            },
            "$defs": { "Item": { "type": "string", "exclusiveMaximum": 9.5 } },
        });
        assert_eq!(
            draft4(schema),
            json!({
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "object",
                "properties": {
                    "n": { "type": "integer", "minimum": 0, "exclusiveMinimum": true },
                    "kind": { "enum": ["a"] },
                    "item": { "$ref": "#/definitions/Item" },
                },
                "definitions": {
                    "Item": { "type": "string", "maximum": 9.5, "exclusiveMaximum": true },
                },
            })
        );
    }

    #[test]
    fn model_names_are_alphanumeric() {
        assert_eq!(model_name("order"), "OrderInput");
        assert_eq!(model_name("trip-booking_v2"), "TripBookingV2Input");
    }
}
