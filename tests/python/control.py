# Remote control as `celery control …` and Flower send it, with the replies and their effects:
# heartbeat, enable/disable_events, rate_limit, time_limit, pool_grow/pool_shrink,
# add_consumer/cancel_consumer.
import json
import sys
import time

from celery_app import add_task, app, sleep_task

node, extra_queue = sys.argv[1], sys.argv[2]
c = app.control


def one(replies):
    for r in replies or []:
        if node in r:
            return r[node]
    return "no reply"


def ask(name, *args, **kwargs):
    return one(getattr(c, name)(*args, reply=True, destination=[node], timeout=5, **kwargs))


def queues():
    i = app.control.inspect(destination=[node], timeout=3)
    return sorted(q["name"] for q in (i.active_queues() or {}).get(node, []))


out = {}
out["heartbeat"] = ask("heartbeat")
out["enable_events"] = ask("enable_events")
out["enable_events_again"] = ask("enable_events")
out["disable_events"] = ask("disable_events")
out["disable_events_again"] = ask("disable_events")
out["rate_limit_unknown_task"] = ask("rate_limit", "tasks.nope", "10/m")
bad = ask("rate_limit", "tasks.add", "x/m")
out["rate_limit_bad_string"] = sorted(bad) if isinstance(bad, dict) else bad
out["rate_limit"] = ask("rate_limit", "tasks.add", "2/s")
rs = [add_task.delay(i, i) for i in range(4)]
values = [r.get(timeout=30) for r in rs]
done = sorted(r.date_done for r in rs)
out["rate_limited"] = {"values": values, "spread_at_least_1s": (done[-1] - done[0]).total_seconds() >= 1.0}
out["rate_limit_off"] = ask("rate_limit", "tasks.add", "")
out["time_limit_unknown_task"] = ask("time_limit", "tasks.nope", soft=1, hard=2)
out["time_limit"] = ask("time_limit", "tasks.sleep", hard=1)
r = sleep_task.delay(4)
try:
    r.get(timeout=20)
    out["time_limited"] = {"state": r.state}
except Exception as e:
    out["time_limited"] = {"state": r.state, "raised": type(e).__name__}
out["pool_grow"] = ask("pool_grow", 1)
out["pool_shrink"] = ask("pool_shrink", 1)
out["add_consumer"] = ask("add_consumer", extra_queue)
for _ in range(50):
    if extra_queue in queues():
        break
    time.sleep(0.1)
out["queues_after_add"] = len(queues())
out["task_on_added_queue"] = add_task.apply_async((20, 22), queue=extra_queue).get(timeout=15)
out["cancel_consumer"] = ask("cancel_consumer", extra_queue)
for _ in range(50):
    if extra_queue not in queues():
        break
    time.sleep(0.1)
out["queues_after_cancel"] = len(queues())
# The queue's name differs between runs: shown as <queue>.
print(json.dumps(out).replace(extra_queue, "<queue>"))
