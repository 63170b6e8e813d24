# result_extended: what the worker stores with a success and a failure, read raw from Redis, ids,
# dates, the worker's name, the queue and the traceback replaced by their role.
import json
import os
import sys
import time

import redis
from celery_app import add_task, divide_task

node, queue = sys.argv[1], sys.argv[2]
r = redis.Redis.from_url(os.environ["CELERY_RESULT_BACKEND"])


def raw(result):
    try:
        result.get(timeout=15)
    except Exception:
        pass
    for _ in range(100):
        data = r.get("celery-task-meta-" + result.id)
        if data and json.loads(data)["status"] in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.05)
    meta = json.loads(data.decode().replace(result.id, "<self>").replace(node, "<worker>").replace(queue, "<queue>"))
    meta["date_done"] = "<date>"
    if meta.get("traceback"):
        meta["traceback"] = "<traceback>"
    return {"keys": list(meta), "meta": meta}


out = {"success": raw(add_task.delay(2, 3)), "failure": raw(divide_task.delay(1, 0))}
print(json.dumps(out))
