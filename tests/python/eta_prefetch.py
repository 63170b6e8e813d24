# Tasks waiting for their ETA must not hold back the others: more countdown tasks than the
# worker's prefetch, then one plain add. Prints how long the add took, and what `inspect
# scheduled` lists meanwhile; the waiting tasks are revoked at the end.
import json
import sys
import time

from celery_app import add_task, app

node = sys.argv[1]
held = [add_task.apply_async((i, i), countdown=30) for i in range(12)]
t0 = time.monotonic()
r = add_task.delay(5, 5)
try:
    value = r.get(timeout=8)
except Exception as e:
    value = type(e).__name__
took = time.monotonic() - t0
i = app.control.inspect(destination=[node], timeout=3)
sched = {s["request"]["id"] for s in (i.scheduled() or {}).get(node, [])}
app.control.revoke([h.id for h in held])
print(json.dumps({"value": value, "seconds": round(took, 3), "fast": took < 5,
                  "scheduled": sorted(h.id in sched for h in held)}))
