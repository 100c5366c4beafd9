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
from moto.dynamodb.responses import DynamoHandler  # noqa: E402

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
