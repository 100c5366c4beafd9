"""Executions of Step Functions state machine versions and aliases in moto 5.2.5 as AWS has them
(imported by moto_stepfunctions_versions.py, which describes the whole; sections 4 to 6 there).

AWS's pages: StartExecution, DescribeExecution, ListExecutions, DescribeStateMachineForExecution
and ExecutionStartedEventDetails in https://docs.aws.amazon.com/step-functions/latest/apireference/,
and https://docs.aws.amazon.com/step-functions/latest/dg/execution-alias-version-associate.html.
"""

import copy
import datetime
import json
import random
import threading
import uuid

from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidExecutionInput, StateMachineDoesNotExist
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend as Backend
from moto.stepfunctions.responses import StepFunctionResponse as Response
from moto.stepfunctions.utils import PAGINATION_MODEL
from moto.utilities.paginator import paginate

_lock = threading.RLock()  # the versions, aliases and execution names of every machine


def _not_found(arn):  # type: ignore[no-untyped-def]
    return StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")


def _machine(backend, arn):  # type: ignore[no-untyped-def]
    """The (unqualified) machine `arn` names."""
    backend._validate_machine_arn(arn)
    sm = next((m for m in backend.state_machines if m.arn == arn), None)
    if sm is None:
        raise _not_found(arn)
    return sm


def _resolve(backend, arn):  # type: ignore[no-untyped-def]
    """(machine, version or None, alias or None) for a machine, version or alias ARN."""
    backend._validate_machine_arn(arn)
    sm = next((m for m in backend.state_machines if m.arn == arn), None)
    if sm is not None:
        return sm, None, None
    base, _, qualifier = arn.rpartition(":")
    sm = next((m for m in backend.state_machines if m.arn == base), None)
    found = sm and (sm.versions.get(int(qualifier)) if qualifier.isdigit() else sm.aliases.get(qualifier))
    if not found:
        raise _not_found(arn)
    return (sm, found, None) if qualifier.isdigit() else (sm, None, found)


# Executions of a version or through an alias.
Execution.state_machine_version_arn = None
Execution.state_machine_alias_arn = None


class _Execution(Execution):
    """An execution whose ExecutionStarted event names the version and alias it started with."""

    def _get_start_execution_worker(self):  # type: ignore[no-untyped-def]
        worker = super()._get_start_execution_worker()
        extra = {
            key: value
            for key, value in (
                ("stateMachineAliasArn", self.state_machine_alias_arn),
                ("stateMachineVersionArn", self.state_machine_version_arn),
            )
            if value
        }
        if not extra:
            return worker
        make_environment = worker._get_evaluation_environment

        def environment():  # type: ignore[no-untyped-def]
            env = make_environment()
            manager = env.event_manager
            add_event = manager.add_event

            def add_first_event(*args, **kwargs):  # type: ignore[no-untyped-def]
                manager.add_event = add_event  # the first event is ExecutionStarted
                started = (kwargs.get("event_details") or {}).get("executionStartedEventDetails")
                if started is not None:
                    started.update(extra)
                return add_event(*args, **kwargs)

            manager.add_event = add_first_event
            return env

        worker._get_evaluation_environment = environment
        return worker


def _start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):  # type: ignore[no-untyped-def]
    sm, version, alias = _resolve(self, state_machine_arn)
    if alias is not None:
        routes = alias.routing_configuration
        picked = random.choices([r["stateMachineVersionArn"] for r in routes], [r["weight"] for r in routes])[0]
        version = sm.versions[int(picked.rpartition(":")[2])]
    name = name or str(uuid.uuid4())
    input_data = "{}" if execution_input is None else execution_input
    try:
        json.loads(input_data)
    except ValueError as error:
        raise InvalidExecutionInput(str(error))
    runs = version or sm
    # What the execution runs is a snapshot (moto's own start does the same for the machine):
    # without the executions, which hold threads, and sharing the backend.
    memo = {id(runs.executions): []}
    if version is None:
        memo[id(sm.backend)] = sm.backend
    snapshot = copy.deepcopy(runs, memo)
    with _lock:
        existing = sm._handle_name_input_idempotency(name, input_data)
        if existing is not None:
            return existing
        execution = _Execution(
            name=name,
            sm_type=snapshot.sm_type,
            role_arn=snapshot.roleArn,
            exec_arn=f"arn:{self.partition}:states:{self.region_name}:{self.account_id}:execution:{sm.name}:{name}",
            account_id=self.account_id,
            region_name=self.region_name,
            state_machine=snapshot,
            start_date=datetime.datetime.now(tz=datetime.timezone.utc),
            cloud_watch_logging_session=None,
            input_data=input_data,
            trace_header=trace_header,
            activity_store={},
        )
        execution.state_machine_arn = sm.arn
        execution.state_machine_version_arn = version.arn if version is not None else None
        execution.state_machine_alias_arn = alias.arn if alias is not None else None
        sm.executions.append(execution)
    execution.start()
    return execution


@paginate(pagination_model=PAGINATION_MODEL)
def list_executions(self, state_machine_arn, status_filter=None):  # type: ignore[no-untyped-def]
    sm, version, alias = _resolve(self, state_machine_arn)
    executions = [
        e
        for e in sm.executions
        if (alias is None or e.state_machine_alias_arn == alias.arn)
        and (version is None or e.state_machine_version_arn == version.arn)
        and (not status_filter or e.status == status_filter)
    ]
    return sorted(executions, key=lambda e: e.start_date, reverse=True)


Backend.start_execution = _start_execution
Backend.list_executions = list_executions


# The API's handlers.
def _qualifiers(execution):  # type: ignore[no-untyped-def]
    return {
        key: value
        for key, value in (
            ("stateMachineVersionArn", execution.state_machine_version_arn),
            ("stateMachineAliasArn", execution.state_machine_alias_arn),
        )
        if value
    }


_describe_execution = Response.describe_execution


def _describe_execution_handler(self):  # type: ignore[no-untyped-def]
    result = _describe_execution(self)
    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    result.result.update(_qualifiers(execution))
    return result


def _list_executions_handler(self):  # type: ignore[no-untyped-def]
    executions, token = self.stepfunction_backend.list_executions(
        self._get_param("stateMachineArn"),
        status_filter=self._get_param("statusFilter"),
        max_results=self._get_int_param("maxResults"),
        next_token=self._get_param("nextToken"),
    )
    items = []
    for e in executions:
        item = {
            "executionArn": e.execution_arn,
            "name": e.name,
            "startDate": e.start_date,
            "stateMachineArn": e.state_machine_arn,
            "status": e.status,
            **_qualifiers(e),
        }
        if e.stop_date is not None:
            item["stopDate"] = e.stop_date
        items.append(item)
    return ActionResult({"executions": items, "nextToken": token})


def _describe_state_machine_for_execution_handler(self):  # type: ignore[no-untyped-def]
    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    ran = execution.state_machine  # the snapshot taken when it started
    response = {
        "stateMachineArn": execution.state_machine_arn,
        "name": ran.name,
        "definition": ran.definition,
        "roleArn": ran.roleArn,
        "updateDate": ran.update_date,
        "loggingConfiguration": ran.loggingConfiguration,
        "tracingConfiguration": ran.tracingConfiguration,
        "encryptionConfiguration": ran.encryptionConfiguration,
    }
    if getattr(ran, "revision_id", None):
        response["revisionId"] = ran.revision_id
    return ActionResult(response)


Response.describe_execution = _describe_execution_handler
Response.list_executions = _list_executions_handler
Response.describe_state_machine_for_execution = _describe_state_machine_for_execution_handler
