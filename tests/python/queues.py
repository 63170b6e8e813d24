# Tasks sent to two queues by name (apply_async(queue=...)), for a worker started with -Q a,b.
import json
import sys

from celery_app import add_task

a, b = sys.argv[1], sys.argv[2]
ra = add_task.apply_async((1, 2), queue=a)
rb = add_task.apply_async((3, 4), queue=b)
print(json.dumps({"a": ra.get(timeout=15), "b": rb.get(timeout=15)}))
