# The curriculum's celery_app.py (Step 5.3 and the divide task of Step 9.4), with the broker,
# result backend and queue read from the environment so tests can isolate themselves.
import os
import time

from celery import Celery

app = Celery(
    "hello_world",
    broker=os.environ.get("CELERY_BROKER_URL", "amqp://admin:admin123@localhost:5672//"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://localhost:6379/0"),
)

app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    timezone="UTC",
    enable_utc=True,
    task_track_started=True,
    result_expires=3600,
    task_default_queue=os.environ.get("MQLAB_TEST_QUEUE", "celery"),
    broker_connection_retry_on_startup=True,
    result_extended=os.environ.get("MQLAB_TEST_RESULT_EXTENDED") == "1",
    task_queue_max_priority=int(os.environ["MQLAB_TEST_MAX_PRIORITY"]) if os.environ.get("MQLAB_TEST_MAX_PRIORITY") else None,
)


@app.task(name="tasks.hello")
def hello_task(name: str):
    print(f"[Task Started] Processing hello for: {name}")
    time.sleep(float(os.environ.get("HELLO_SECONDS", "2")))
    result = f"Hello, {name}! This message was processed by Celery."
    print(f"[Task Completed] Result: {result}")
    return result


@app.task(name="tasks.add")
def add_task(x: int, y: int):
    return x + y


@app.task(name="tasks.divide")
def divide_task(x: int, y: int):
    return x / y


@app.task(name="tasks.sleep")
def sleep_task(seconds: float):
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.echo")
def echo_task(value):
    return value
