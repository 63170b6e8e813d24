# A priority queue from configuration (task_queue_max_priority): `send` queues six adds, the last
# with priority 9, before any worker runs; `collect NODE IDS` waits for them and prints which
# finished first and what the worker says of its queue and configuration.
import json
import sys

from celery.result import AsyncResult

from celery_app import add_task, app

if sys.argv[1] == "send":
    ids = [add_task.apply_async((i, 0), priority=9 if i == 5 else 0).id for i in range(6)]
    print(json.dumps(ids))
else:
    node, ids = sys.argv[2], json.loads(sys.argv[3])
    done = []
    for task_id in ids:
        r = AsyncResult(task_id, app=app)
        r.get(timeout=20)
        done.append((r.date_done, ids.index(task_id)))
    inspect = app.control.inspect([node], timeout=5)
    queues = inspect.active_queues()[node]
    conf = inspect.conf()[node]
    print(json.dumps({
        "first": min(done)[1],
        "queue_arguments": queues[0]["queue_arguments"],
        "task_queue_max_priority": conf.get("task_queue_max_priority"),
    }))
