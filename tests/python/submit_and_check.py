# Sends the curriculum's tasks with .delay() and reads them back with .get(), as submit_task.py
# does; prints one JSON line per task so the Rust test can assert on it.
import json
import sys

from celery_app import add_task, divide_task, hello_task

out = []
r = hello_task.delay("World")
out.append({"task": "hello", "state0": r.state, "result": r.get(timeout=20), "state": r.state})
r = add_task.delay(42, 58)
out.append({"task": "add", "result": r.get(timeout=20), "state": r.state})
r = divide_task.delay(10, 4)
out.append({"task": "divide", "result": r.get(timeout=20), "state": r.state})
r = divide_task.delay(10, 0)
try:
    r.get(timeout=20)
    out.append({"task": "divide0", "raised": None})
except ZeroDivisionError as e:
    out.append({"task": "divide0", "raised": "ZeroDivisionError", "message": str(e), "state": r.state, "traceback": r.traceback})
r = add_task.delay(1, "x")
try:
    r.get(timeout=20)
    out.append({"task": "add_type", "raised": None})
except TypeError as e:
    out.append({"task": "add_type", "raised": "TypeError", "message": str(e)})
# A chain: (2 + 2) + 4, run by whichever worker consumes the queue.
from celery import chain
c = chain(add_task.s(2, 2), add_task.s(4)).apply_async()
out.append({"task": "chain", "result": c.get(timeout=20)})
for line in out:
    print(json.dumps(line))
sys.stdout.flush()
