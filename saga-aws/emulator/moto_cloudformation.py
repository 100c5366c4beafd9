"""moto 5.2.5's CloudFormation made to create a saga's stack as AWS does (imported by
moto_server.py before the server starts, after Step Functions execution is switched on).

Each fix names the AWS behaviour it restores:

1. AWS::StepFunctions::StateMachine. The Step Functions API serves moto's parser backend when
   execution is on, but CloudFormation created, updated and deleted machines in the plain one,
   so a stack's machine was never listed. CloudFormation also dropped DefinitionSubstitutions
   (AWS substitutes every `${key}` of DefinitionString, and a boolean as `true`/`false`:
   https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-stepfunctions-statemachine.html),
   LoggingConfiguration, TracingConfiguration and StateMachineType. And a second stack naming an
   existing machine silently shared it; AWS refuses a name in use (StateMachineAlreadyExists).
2. AWS::Events::EventBus: `Ref` returns the bus's name (same page set, EventBus). moto's bus had
   no physical id, so `Ref` gave a Python object and every rule on the bus failed (HTTP 500).
3. AWS::CloudWatch::Alarm and AWS::SQS::QueuePolicy, which moto's CloudFormation skipped: the
   alarm is created (PutMetricAlarm) and the policy set on its queues (SetQueueAttributes).
"""

import json

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.events.models import EventBus
from moto.sqs.models import sqs_backends
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.exceptions import StateMachineDoesNotExist
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

# 1. One backend: the one the API serves.
sfn_models.stepfunctions_backends = stepfunctions_parser_backends


def _api_keys(value):  # type: ignore[no-untyped-def]
    """CloudFormation's keys as the API's (`Level` -> `level`)."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _api_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_api_keys(v) for v in value]
    return value


def _definition(properties):  # type: ignore[no-untyped-def]
    """DefinitionString (or Definition) with DefinitionSubstitutions applied."""
    text = properties.get("DefinitionString")
    if text is None:
        text = json.dumps(properties.get("Definition", {}))
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        value = str(value).lower() if isinstance(value, bool) else str(value)
        text = text.replace("${" + key + "}", value)
    return text


def _create_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
    properties = cloudformation_json["Properties"]
    backend = stepfunctions_parser_backends[account_id][region_name]
    name = properties.get("StateMachineName", resource_name)
    arn = f"arn:aws:states:{region_name}:{account_id}:stateMachine:{name}"
    try:
        backend.describe_state_machine(arn)
    except StateMachineDoesNotExist:
        pass
    else:
        raise ValueError(f"StateMachineAlreadyExists: State Machine Already Exists: '{arn}'")
    return backend.create_state_machine(
        name,
        _definition(properties),
        properties.get("RoleArn", ""),
        tags=sfn_models.cfn_to_api_tags(properties.get("Tags", [])),
        loggingConfiguration=_api_keys(properties.get("LoggingConfiguration")),
        tracingConfiguration=_api_keys(properties.get("TracingConfiguration")),
        encryptionConfiguration=_api_keys(properties.get("EncryptionConfiguration")),
        sm_type=properties.get("StateMachineType"),
    )


_update_machine = sfn_models.StateMachine.update_from_cloudformation_json.__func__


def _update_machine_substituted(cls, original, new_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
    properties = cloudformation_json.setdefault("Properties", {})
    if "DefinitionString" in properties or "Definition" in properties:
        properties["DefinitionString"] = _definition(properties)
    return _update_machine(cls, original, new_name, cloudformation_json, account_id, region_name)


sfn_models.StateMachine.create_from_cloudformation_json = classmethod(_create_machine)
sfn_models.StateMachine.update_from_cloudformation_json = classmethod(_update_machine_substituted)

# 2. Ref of a bus is its name.
EventBus.physical_resource_id = property(lambda self: self.name)


# 3. The resource types moto's CloudFormation skipped. moto keys its models by the service in
#    `__module__`, and collects them on the first CreateStack: this module is imported before.
class _Alarm(CloudFormationModel):
    """AWS::CloudWatch::Alarm: a real alarm."""

    __module__ = "moto.cloudwatch.models"

    def __init__(self, name):  # type: ignore[no-untyped-def]
        self.physical_resource_id = name

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type():  # type: ignore[no-untyped-def]
        return "AlarmName"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=p.get("AlarmName", resource_name),
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=p["EvaluationPeriods"],
            period=p.get("Period"),
            threshold=p.get("Threshold"),
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription"),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions"),
            treat_missing_data=p.get("TreatMissingData"),
            actions_enabled=p.get("ActionsEnabled", True),
        )
        return cls(alarm.name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])


class _QueuePolicy(CloudFormationModel):
    """AWS::SQS::QueuePolicy: the policy set on each of its queues."""

    __module__ = "moto.sqs.models"

    def __init__(self, name):  # type: ignore[no-untyped-def]
        self.physical_resource_id = name

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::SQS::QueuePolicy"

    @staticmethod
    def cloudformation_name_type():  # type: ignore[no-untyped-def]
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        for url in p["Queues"]:
            sqs_backends[account_id][region_name].set_queue_attributes(
                url.rsplit("/", 1)[-1], {"Policy": json.dumps(p["PolicyDocument"])}
            )
        return cls(resource_name)
