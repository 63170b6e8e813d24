# Python values that JSON alone does not carry: ints of any size, and kombu's typed envelopes
# (datetime, date, time, Decimal, UUID, bytes). Each goes to the worker and comes back; the
# script prints what .get() returned, as Python sees it.
import datetime
import decimal
import json
import uuid

from celery_app import add_task, echo_task

cases = {
    "big": add_task.delay(10**20, 1),
    "two62": add_task.delay(2**62, 2**62),
    "negative": add_task.delay(-(2**63), -1),
    "huge": add_task.delay(7**200, 7**200),
    "datetime": echo_task.delay(datetime.datetime(2026, 11, 28, 9, 30, 5, 123)),
    "aware": echo_task.delay(datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)),
    "date": echo_task.delay(datetime.date(2026, 11, 28)),
    "time": echo_task.delay(datetime.time(12, 0, 1)),
    "decimal": echo_task.delay(decimal.Decimal("1.10")),
    "uuid": echo_task.delay(uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")),
    "bytes": echo_task.delay(b"mqlab"),
    "binary": echo_task.delay(b"\xff\x00\xfe"),
    "concat": add_task.delay(b"ab", b"\xff"),
    "decimal_sum": add_task.delay(decimal.Decimal("1.10"), decimal.Decimal("2.2")),
    "decimal_int": add_task.delay(decimal.Decimal("1E+2"), 1),
    "decimal_precision": add_task.delay(decimal.Decimal("1.0000000000000000000000000001"), 1),
    "nested": echo_task.delay({"when": [datetime.date(2026, 1, 1)], "n": 10**30}),
}
out = {}
for name, r in cases.items():
    value = r.get(timeout=20)
    out[name] = {"state": r.state, "type": type(value).__name__, "repr": repr(value)}
print(json.dumps(out))
