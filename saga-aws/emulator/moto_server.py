"""Runs moto's server on 127.0.0.1 with Step Functions execution switched on.

Usage: moto_server.py PORT OWNER_PID

Exits by itself when OWNER_PID (the test process that started it) is gone, however that process
ended, so an emulator never outlives its tests.
"""

import os
import sys
import threading
import time

from moto.core.config import default_user_config

# Must be set before the server starts: moto then executes state machines (callbacks, Retry,
# Catch, timeouts, heartbeats) instead of only storing them.
default_user_config["stepfunctions"] = {"execute_state_machine": True}

from moto.server import main  # noqa: E402
import moto_cloudformation  # noqa: E402,F401  (CloudFormation as AWS creates a saga's stack)
import moto_apigateway  # noqa: E402,F401  (and its front door)
import moto_stepfunctions_versions  # noqa: E402,F401  (state machine versions and aliases)
import moto_jsonpath  # noqa: E402,F401  (`$[1].steps` is the object, not a list of it)
import moto_intrinsics  # noqa: E402,F401  (`States.Format` with escaped braces)
import moto_parallel  # noqa: E402,F401  (a branch's `States.Timeout` fails its `Parallel` with it)
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.dynamodb.responses import DynamoHandler  # noqa: E402
from moto.stepfunctions.responses import StepFunctionResponse  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402
from moto.stepfunctions.parser.asl.parse.asl_parser import (  # noqa: E402
    AmazonStateLanguageParser,
)

# An emulator deviation fixed here: moto applies a conditional write as "read the item, evaluate
# the condition, store it" without a lock, and its server is threaded, so two concurrent
# `attribute_not_exists` puts can both succeed (seen in 5 of 300 rounds). DynamoDB applies every
# request atomically per item, so serialise moto's DynamoDB requests (none of them blocks,
# unlike an SQS long poll).
_dynamodb_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):  # type: ignore[no-untyped-def]
    with _dynamodb_lock:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action

# An emulator deviation fixed here: moto's SendTaskFailure handler reads `error` but not
# `cause`, so the history's TaskFailed event had no cause. AWS keeps both
# (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html),
# and the participant's cause (`code: message`) is how a failure's code reaches the trace.
def _send_task_failure(self):  # type: ignore[no-untyped-def]
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"),
        error=self._get_param("error"),
        cause=self._get_param("cause"),
    )
    return EmptyResult()


StepFunctionResponse.send_task_failure = _send_task_failure

# An emulator deviation fixed here: moto's GetExecutionHistory ignores `reverseOrder` and
# `maxResults` and answers every event, oldest first. AWS lists the events newest first when
# `reverseOrder` is true, at most `maxResults` a page, the rest behind `nextToken`
# (https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html).
# Reading the newest event alone is how a client sees a stuck saga waiting for an operator.
# Without `maxResults` every event comes in one page (AWS pages at 100; our client pages).
def _get_execution_history(self):  # type: ignore[no-untyped-def]
    history = self.stepfunction_backend.get_execution_history(self._get_param("executionArn"))
    events = list(history["events"])
    if self._get_param("reverseOrder"):
        events.reverse()
    start = int(self._get_param("nextToken") or 0)
    size = int(self._get_param("maxResults") or 0) or len(events)
    page = {"events": events[start : start + size]}
    if start + size < len(events):
        page["nextToken"] = str(start + size)
    return ActionResult(page)


StepFunctionResponse.get_execution_history = _get_execution_history

# An emulator deviation fixed here: moto takes any number of answers for one task token (each
# SendTaskSuccess/SendTaskFailure overwrites the last), and keeps one token, with its last
# answer, for all the retries of a state. On AWS a token takes one answer; a second gets
# `TaskTimedOut` ("Provided task does not exist anymore"; e.g.
# https://github.com/aws-samples/amazon-mwaa-examples/issues/61), and each retry is a new task
# with a token of its own (`$$.Task.Token` is "the task token of the current task", and a
# retry schedules a new one: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html),
# so an answer to an attempt that has ended is refused. Without this, a duplicate delivery
# answered twice and both answers counted (its saga events were published twice), a retry could
# read the answer of the attempt before it, and a late answer to one attempt answered the next.
# So: each attempt gets a token of its own, takes one answer, and takes none once it is over.
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E402
    StateTaskServiceCallback,
)
from moto.core.exceptions import AWSError  # noqa: E402
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackPoolManager  # noqa: E402


class _TaskTimedOut(AWSError):
    """AWS's answer to a token whose task has ended. (moto's own `TaskTimedOut` is not one of
    its server's errors: raised, it became an HTTP 500 page.)"""

    TYPE = "TaskTimedOut"
    STATUS = 400

    def __init__(self) -> None:
        super().__init__("Provided task does not exist anymore")


_answers_lock = threading.Lock()
_eval_attempt = StateTaskServiceCallback._eval_execution


def _close(endpoint) -> None:  # type: ignore[no-untyped-def]
    """The attempt of `endpoint` is over: its token takes no more answers."""
    if endpoint is not None:
        with _answers_lock:
            endpoint._answered = True


def _own_token_attempt(self, env):  # type: ignore[no-untyped-def]
    context = env.states.context_object
    data = context.context_object_data
    task = data.get("Task") or {}
    endpoint = env.callback_pool_manager.get(task.get("Token"))
    if endpoint is not None and (data.get("State") or {}).get("RetryCount", 0) > 0:
        # A retry: the previous attempt's token is closed (its attempt may have timed out with
        # its evaluation still waiting), and this attempt gets a new one.
        _close(endpoint)
        endpoint = env.callback_pool_manager.add(context.update_task_token())
    try:
        return _eval_attempt(self, env)
    finally:
        _close(endpoint)


StateTaskServiceCallback._eval_execution = _own_token_attempt
_notify = CallbackPoolManager.notify


def _notify_once(self, callback_id, outcome):  # type: ignore[no-untyped-def]
    endpoint = self.get(callback_id)
    with _answers_lock:
        if endpoint is not None and getattr(endpoint, "_answered", False):
            raise _TaskTimedOut()
        accepted = _notify(self, callback_id, outcome)
        if accepted and endpoint is not None:
            endpoint._answered = True
        return accepted


CallbackPoolManager.notify = _notify_once

# A heartbeat on an ended attempt's token was accepted: moto keeps the token's endpoint and only
# looks for a consumer error, so a worker checking whether a stale command's task still lives
# was told yes, ran it, and had its answer refused. On AWS, SendTaskHeartbeat answers
# TaskTimedOut when "the task token has either expired or the task associated with the token has
# already been closed" (SendTaskHeartbeat, Errors, in the AWS Step Functions API Reference).
_heartbeat = CallbackPoolManager.heartbeat


def _heartbeat_while_open(self, callback_id):  # type: ignore[no-untyped-def]
    endpoint = self.get(callback_id)
    with _answers_lock:
        if endpoint is not None and getattr(endpoint, "_answered", False):
            raise _TaskTimedOut()
    # moto sets a task's heartbeat watch up only after its command is sent, and until then
    # `notify_heartbeat` says no, which the caller answers `InvalidToken`: a worker checking a
    # token the moment its command arrived was told its live task had ended. The token is the
    # open task's, and AWS takes its heartbeat (same reference); the watch starts afterwards.
    return _heartbeat(self, callback_id) or endpoint is not None


CallbackPoolManager.heartbeat = _heartbeat_while_open

# An emulator race fixed here: a task's heartbeat watch is set up after its command is sent, and
# wakes only for a heartbeat or an answer that arrives once it exists. A participant answering
# in between (a fast one, or any on a loaded machine) had its answer stored but never looked at:
# the task "missed its heartbeat" after HeartbeatSeconds and was retried, though the answer was
# accepted. On AWS the answer ends the task. So a watch set up after the answer sees it.
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint  # noqa: E402

_setup_heartbeat = CallbackEndpoint.setup_heartbeat_endpoint


def _setup_heartbeat_seeing_answers(self, heartbeat_seconds):  # type: ignore[no-untyped-def]
    watch = _setup_heartbeat(self, heartbeat_seconds)
    # `notify` stores the outcome, then wakes the watch if there is one; this sets the watch,
    # then looks for an outcome: whichever runs second wakes it.
    if self._outcome is not None:
        watch.notify()
    return watch


CallbackEndpoint.setup_heartbeat_endpoint = _setup_heartbeat_seeing_answers

# Speed, not semantics: four costs that made moto's server spend most of its one core (its
# threads share one GIL) on work that gives the same answer every time, so it could not run many
# executions at once (py-spy, 200 concurrent sagas: ~19% parsing ASL, ~10% building boto3
# clients, ~10% matching hosts against every service's URL patterns; at 1,000, SQS's clock).
#
# 1. Every execution parses its state machine's definition again with ANTLR. The parsed program
#    is immutable during evaluation for the states the generator emits (Task, Pass, Fail, Choice,
#    Succeed, and Parallel too: their fields are set once, by the parser; an execution's state
#    lives in its own Environment, as read in moto's source and checked with 8 concurrent
#    executions of one Parallel and Choice machine), so the program is parsed once per
#    definition.
_parse = AmazonStateLanguageParser.parse
_parsed: dict = {}
_parsed_lock = threading.Lock()


def _cached_parse(definition: str):  # type: ignore[no-untyped-def]
    with _parsed_lock:
        hit = _parsed.get(definition)
    if hit is None:
        hit = _parse(definition)
        with _parsed_lock:
            _parsed[definition] = hit
    return hit


AmazonStateLanguageParser.parse = staticmethod(_cached_parse)

# 2. Every task state (sqs:sendMessage, events:putEvents) builds a new boto3 client; one per
#    (region, service) does, as boto3 clients are thread-safe (moto's factory ignores the
#    state's credentials: every client uses the same dummy keys).
_clients: dict = {}
_clients_lock = threading.Lock()


def _patch_boto_client_for() -> None:
    import importlib

    from moto.stepfunctions.parser.asl.utils import boto_client

    make = boto_client.boto_client_for

    def cached(region: str, service: str, state_credentials=None):  # type: ignore[no-untyped-def]
        with _clients_lock:
            client = _clients.get((region, service))
            if client is None:
                client = _clients[(region, service)] = make(region, service)
            return client

    # Task states import the function by name, so rebind it in the modules of the integrations
    # the generator emits (SQS and EventBridge callbacks, Lambda invokes).
    state_task = "moto.stepfunctions.parser.asl.component.state.exec.state_task"
    for name in ("service.state_task_service_sqs", "service.state_task_service_events", "lambda_eval_utils"):
        module = importlib.import_module(f"{state_task}.{name}")
        assert module.boto_client_for is make, module
        module.boto_client_for = cached


_patch_boto_client_for()

# 3. SQS decides whether each message is visible by computing the time through two naive
#    datetimes (~5 us), for every message of the queue, on every send and receive; with a
#    thousand messages waiting that is most of the server's time. The clock is the same.
import moto.sqs.models as _sqs_models  # noqa: E402

_unix_time_millis = _sqs_models.unix_time_millis


def _fast_unix_time_millis(dt=None):  # type: ignore[no-untyped-def]
    return time.time() * 1000.0 if dt is None else _unix_time_millis(dt)


_sqs_models.unix_time_millis = _fast_unix_time_millis

# 4. Every request is routed by matching its host against each service's URL patterns in turn;
#    the answer depends only on the host.
_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends: dict = {}


def _cached_backend_for_host(self, host):  # type: ignore[no-untyped-def]
    if host not in _backends:
        _backends[host] = _backend_for_host(self, host)
    return _backends[host]


DomainDispatcherApplication.get_backend_for_host = _cached_backend_for_host


# Not a deviation, a diagnosis: an exception moto does not handle becomes an HTTP 500 page, and
# moto's log (where werkzeug writes the traceback) goes nowhere unless SAGA_MOTO_LOG says where.
# The test that met the 500 then said only "not an AWS answer". So every unhandled exception is
# also written, with the request's action and its traceback, to the launcher's standard error
# (fd 3, which `moto-server` opens onto its own), which a test inherits: a failure says why.
import traceback  # noqa: E402

try:
    _errors = os.fdopen(3, "w", buffering=1)
except OSError:  # started without the launcher
    _errors = sys.stderr
_dispatch = DomainDispatcherApplication.__call__


def _dispatch_reporting_errors(self, environ, start_response):  # type: ignore[no-untyped-def]
    try:
        return _dispatch(self, environ, start_response)
    except Exception:
        action = environ.get("HTTP_X_AMZ_TARGET") or environ.get("QUERY_STRING") or "?"
        _errors.write(
            f"moto: unhandled error answering {action} "
            f"({environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}), an HTTP 500:\n"
            + traceback.format_exc()
        )
        raise


DomainDispatcherApplication.__call__ = _dispatch_reporting_errors


def exit_when_gone(owner: int) -> None:
    while True:
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(0.5)


if __name__ == "__main__":
    port, owner = sys.argv[1], int(sys.argv[2])
    threading.Thread(target=exit_when_gone, args=(owner,), daemon=True).start()
    main(["-H", "127.0.0.1", "-p", port])
