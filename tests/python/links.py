# What the result backend holds for tasks linked to others, read raw from Redis: a task with a
# callback (children), the second task of a chain (parent_id), a group member (group_id). Ids
# and dates are replaced by their role, keys kept in their stored order.
import json
import os
import time

import redis
from celery import chain, group
from celery_app import add_task, echo_task

r = redis.Redis.from_url(os.environ["CELERY_RESULT_BACKEND"])


def raw(task_id, names):
    for _ in range(100):
        data = r.get("celery-task-meta-" + task_id)
        if data and json.loads(data)["status"] == "SUCCESS":
            break
        time.sleep(0.05)
    text = data.decode()
    for real, role in names.items():
        text = text.replace(real, role)
    meta = json.loads(text)
    meta["date_done"] = "<date>" if meta.get("date_done") else None
    return {"keys": list(meta), "meta": meta}


out = {}
a = add_task.apply_async((1, 2), link=echo_task.s())
a.get(timeout=10)
cb = a.children[0].id if a.children else None
out["linked"] = raw(a.id, {a.id: "<self>", **({cb: "<callback>"} if cb else {})})
c = chain(add_task.s(1, 1), add_task.s(10))()
c.get(timeout=10)
out["chain_first"] = raw(c.parent.id, {c.parent.id: "<self>", c.id: "<next>"})
out["chain_second"] = raw(c.id, {c.id: "<self>", c.parent.id: "<parent>"})
g = group(add_task.s(i, i) for i in range(2)).apply_async()
g.get(timeout=10)
out["group_member"] = raw(g.results[0].id, {g.results[0].id: "<self>", g.id: "<group>"})
print(json.dumps(out))
