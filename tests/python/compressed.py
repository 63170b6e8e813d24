# Tasks sent compressed, as with Celery's task_compression: one per kombu method.
import json

from celery_app import add_task

out = {}
for method in ("zlib", "gzip", "bzip2", "lzma", "brotli", "zstd"):
    r = add_task.apply_async((20, 22), compression=method)
    out[method] = {"result": r.get(timeout=15), "state": r.state}
print(json.dumps(out))
