# Tasks waiting for their ETA, as Python Celery's client and inspect see them: an expiry that
# falls within the wait, `inspect scheduled`, `query_task`, `active_queues` and `conf`.
import json
import sys
import time

from celery_app import add_task, app

node = sys.argv[1]
out = {}
r = add_task.apply_async((1, 2), countdown=4, expires=2)
try:
    r.get(timeout=15)
    out["expired_in_wait"] = {"state": r.state}
except Exception as e:
    out["expired_in_wait"] = {"state": r.state, "raised": type(e).__name__}
r2 = add_task.apply_async((2, 2), countdown=60)
time.sleep(1.5)
i = app.control.inspect(destination=[node], timeout=3)
sched = (i.scheduled() or {}).get(node, [])
out["scheduled"] = [s["request"]["id"] == r2.id for s in sched]
q = (i.query_task(r2.id) or {}).get(node, {})
out["query_state"] = q.get(r2.id, [None])[0]
out["active_queues"] = [x["name"] for x in (i.active_queues() or {}).get(node, [])]
conf = (i.conf() or {}).get(node, {})
out["conf_keys"] = sorted(k for k in ("broker_url", "result_backend") if k in conf)
out["held"] = r2.id
print(json.dumps(out))
