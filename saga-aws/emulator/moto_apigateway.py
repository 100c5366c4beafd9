"""moto 5.2.5's CloudFormation made to create a saga's front door (an API Gateway REST API) as AWS
does (imported by moto_server.py before the server starts). moto creates the API, its resources,
methods and deployment, but:

1. AWS::ApiGateway::Method kept only the authorization and the integration's type, method and URI.
   AWS keeps the method's RequestParameters, RequestModels and RequestValidatorId, its
   MethodResponses, and the integration's Credentials, RequestTemplates, PassthroughBehavior and
   IntegrationResponses (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-apigateway-method.html).
2. `Ref` of an AWS::ApiGateway::Deployment gave nothing; AWS returns the deployment's id.
3. AWS::ApiGateway::Model, RequestValidator, GatewayResponse and Stage were skipped: each is now
   created, and `Ref` gives what AWS gives (the model's name, the validator's id, the stage's
   name).
"""

import json

from moto.apigateway import models as apigw
from moto.core.common_models import CloudFormationModel


def _backend(account_id, region_name):  # type: ignore[no-untyped-def]
    return apigw.apigateway_backends[account_id][region_name]


# 1. The whole method.
def _create_method(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
    p = cloudformation_json["Properties"]
    backend = _backend(account_id, region_name)
    api, resource, verb = p["RestApiId"], p["ResourceId"], p["HttpMethod"]
    method = backend.put_method(
        function_id=api,
        resource_id=resource,
        method_type=verb,
        authorization_type=p["AuthorizationType"],
        api_key_required=p.get("ApiKeyRequired"),
        request_parameters=p.get("RequestParameters"),
        request_models=p.get("RequestModels"),
        request_validator_id=p.get("RequestValidatorId"),
    )
    for response in p.get("MethodResponses", []):
        backend.put_method_response(
            api, resource, verb, response["StatusCode"],
            response.get("ResponseModels"), response.get("ResponseParameters"),
        )
    i = p.get("Integration")
    if i:
        backend.put_integration(
            function_id=api,
            resource_id=resource,
            method_type=verb,
            integration_type=i["Type"],
            uri=i.get("Uri"),
            integration_method=i.get("IntegrationHttpMethod"),
            credentials=i.get("Credentials"),
            request_templates=i.get("RequestTemplates"),
            passthrough_behavior=i.get("PassthroughBehavior"),
            request_parameters=i.get("RequestParameters"),
        )
        for response in i.get("IntegrationResponses", []):
            backend.put_integration_response(
                api, resource, verb, response["StatusCode"],
                response.get("SelectionPattern", ""),
                response.get("ResponseTemplates"), response.get("ResponseParameters"),
            )
    return method


apigw.Method.create_from_cloudformation_json = classmethod(_create_method)

# 2. Ref of a deployment is its id.
apigw.Deployment.physical_resource_id = property(lambda self: self.id)


# 3. The resource types moto's CloudFormation skipped (keyed by the service in `__module__`).
class _Created:
    """What the models below share. (Each derives from CloudFormationModel itself: moto collects
    its direct subclasses only.)"""

    def __init__(self, physical_id):  # type: ignore[no-untyped-def]
        self.physical_resource_id = physical_id

    @staticmethod
    def cloudformation_name_type():  # type: ignore[no-untyped-def]
        return ""


class _Model(_Created, CloudFormationModel):
    """AWS::ApiGateway::Model (Ref: its name)."""

    __module__ = "moto.apigateway.models"

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::ApiGateway::Model"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        schema = p.get("Schema", {})
        model = _backend(account_id, region_name).create_model(
            p["RestApiId"],
            p.get("Name", resource_name),
            p.get("ContentType", "application/json"),
            p.get("Description", ""),
            schema if isinstance(schema, str) else json.dumps(schema),
        )
        return cls(model.name)


class _RequestValidator(_Created, CloudFormationModel):
    """AWS::ApiGateway::RequestValidator (Ref: its id)."""

    __module__ = "moto.apigateway.models"

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::ApiGateway::RequestValidator"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        validator = _backend(account_id, region_name).create_request_validator(
            p["RestApiId"],
            p.get("Name", resource_name),
            p.get("ValidateRequestBody", False),
            p.get("ValidateRequestParameters", False),
        )
        return cls(validator.id)


class _GatewayResponse(_Created, CloudFormationModel):
    """AWS::ApiGateway::GatewayResponse."""

    __module__ = "moto.apigateway.models"

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::ApiGateway::GatewayResponse"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        _backend(account_id, region_name).put_gateway_response(
            p["RestApiId"],
            p["ResponseType"],
            p.get("StatusCode"),
            p.get("ResponseParameters"),
            p.get("ResponseTemplates"),
        )
        return cls(resource_name)


class _Stage(_Created, CloudFormationModel):
    """AWS::ApiGateway::Stage (Ref: its name)."""

    __module__ = "moto.apigateway.models"

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::ApiGateway::Stage"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        stage = _backend(account_id, region_name).create_stage(
            p["RestApiId"],
            p["StageName"],
            p["DeploymentId"],
            variables=p.get("Variables"),
            description=p.get("Description", ""),
            tracing_enabled=p.get("TracingEnabled"),
        )
        return cls(stage.name)
