# A chord of three adds whose results go to echo, and one whose header has a failing divide:
# header tasks on one queue, the body on another, so the test can put them on different workers.
import json
import sys
import time

from celery import chord
from celery_app import add_task, divide_task, echo_task

q_header, q_body = sys.argv[1], sys.argv[2]
out = {}
r = chord([add_task.s(i, i).set(queue=q_header) for i in range(3)])(echo_task.s().set(queue=q_body))
out["results"] = r.get(timeout=30)
r2 = chord([add_task.s(1, 1).set(queue=q_header), divide_task.s(1, 0).set(queue=q_header)])(echo_task.s().set(queue=q_body))
try:
    r2.get(timeout=30)
    out["failed_header"] = {"state": r2.state}
except Exception as e:
    # .get() re-raises the failed header task's error; the body itself is then marked FAILURE
    # with a ChordError naming that task (by the worker that completes the header).
    for _ in range(100):
        if r2.ready():
            break
        time.sleep(0.1)
    # Which error .get() raises depends on which it sees first (the failed header task's, or the
    # body's ChordError): either says the chord failed.
    out["failed_header"] = {"raised": type(e).__name__ in ("ZeroDivisionError", "ChordError"), "body_state": r2.state,
                            "body_error": type(r2.result).__name__,
                            "says": "Dependency" in str(r2.result) and "ZeroDivisionError" in str(r2.result)}
print(json.dumps(out))
