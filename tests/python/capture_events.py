# Prints every Celery event seen on the broker for N seconds, one JSON object per line, using
# Celery's own event receiver (what `celery events` and Flower use).
import json
import sys
import threading

from celery_app import app

seconds = float(sys.argv[1])


def on_event(ev):
    keep = {k: ev.get(k) for k in ("type", "hostname", "uuid", "name", "result", "exception", "freq", "active", "processed", "sw_ident", "runtime")}
    print(json.dumps(keep), flush=True)


with app.connection() as conn:
    recv = app.events.Receiver(conn, handlers={"*": on_event})
    threading.Timer(seconds, lambda: setattr(recv, "should_stop", True)).start()
    print(json.dumps({"type": "capture-ready"}), flush=True)
    recv.capture(limit=None, timeout=None, wakeup=False)
