# A failing task's errback (link_error) and the rest of its chain.
import json
import time
import uuid

from celery import chain

from celery_app import add_task, divide_task, echo_task

out = {}
eb_id = str(uuid.uuid4())
r = divide_task.apply_async((1, 0), link_error=echo_task.s().set(task_id=eb_id))
try:
    r.get(timeout=15)
except ZeroDivisionError:
    pass
out["errback_got_failed_id"] = echo_task.AsyncResult(eb_id).get(timeout=15) == r.id
c = chain(divide_task.s(1, 0), add_task.s(1)).apply_async()
try:
    c.get(timeout=15)
except ZeroDivisionError:
    pass
first = c.parent
# .get() re-raises the parent's error at once; the worker marks the rest of the chain a moment
# later: wait for it (up to 10 s).
for _ in range(100):
    if c.state != "PENDING":
        break
    time.sleep(0.1)
out["chain_states"] = [first.state, c.state]
try:
    c.get(timeout=5, propagate=True)
except Exception as e:
    out["second_raises"] = type(e).__name__
print(json.dumps(out))
