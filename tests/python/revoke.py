# Revoke, every form, from Python Celery's own client: AsyncResult.revoke() of a task waiting
# for its ETA, revoke(terminate=True) of a running one, and `inspect revoked`.
# Prints one JSON object; the Rust test asserts on it for both workers (mqlab's and Python's).
import json
import sys
import time

from celery.result import AsyncResult

from celery_app import add_task, app, sleep_task

node = sys.argv[1]
out = {}

# Waiting for its ETA, revoked before it runs: REVOKED, never run.
r = add_task.apply_async((1, 2), countdown=3)
time.sleep(1.0)
r.revoke()
try:
    r.get(timeout=15)
    out["eta"] = {"state": r.state}
except Exception as e:
    out["eta"] = {"state": r.state, "raised": type(e).__name__}

# Running, revoked with terminate: stopped, REVOKED.
r2 = sleep_task.delay(30)
for _ in range(100):
    if AsyncResult(r2.id).state == "STARTED":
        break
    time.sleep(0.1)
t0 = time.time()
r2.revoke(terminate=True)
try:
    r2.get(timeout=15)
    out["terminate"] = {"state": r2.state}
except Exception as e:
    out["terminate"] = {"state": r2.state, "raised": type(e).__name__, "seconds": round(time.time() - t0, 1)}

# A plain task afterwards still runs.
out["after"] = add_task.delay(2, 3).get(timeout=15)

# The worker lists what it revoked.
replies = app.control.inspect(destination=[node], timeout=3.0).revoked() or {}
out["revoked"] = replies.get(node, [])
out["ids"] = [r.id, r2.id]
print(json.dumps(out))
