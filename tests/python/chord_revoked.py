# A chord whose second header task is revoked while it waits for its countdown: what the client
# sees (Celery 5.7: .get() raises the header's TaskRevokedError, the body is never sent).
import json
import sys
import time

from celery import chord
from celery_app import add_task, app, echo_task

q = sys.argv[1]
r = chord([add_task.s(1, 1).set(queue=q), add_task.s(2, 2).set(queue=q, countdown=3)])(echo_task.s().set(queue=q))
app.control.revoke(r.parent.results[1].id)
try:
    out = {"value": r.get(timeout=20)}
except Exception as e:
    time.sleep(0.5)
    out = {"raised": type(e).__name__, "body": r.state, "header": [c.state for c in r.parent.results]}
print(json.dumps(out))
