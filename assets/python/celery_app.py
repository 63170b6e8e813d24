# celery_app.py: the Celery application of Phase 1 (Steps 5 and 9.4).
# Written by `mqlab init` with the broker and result backend of your track.
from celery import Celery
import time

app = Celery(
    'hello_world',
    broker='{{broker_url}}',   # RabbitMQ (AMQP)
    backend='{{backend_url}}',  # Redis (results)
)

app.conf.update(
    task_serializer='json',
    accept_content=['json'],
    result_serializer='json',
    timezone='UTC',
    enable_utc=True,
    task_track_started=True,   # store STARTED when a worker begins a task
    result_expires=3600,       # results expire after one hour
    result_extended=True,      # store each result with its task's name and arguments
)


@app.task(name='tasks.hello')
def hello_task(name: str):
    """Greets `name` after two seconds of pretend work."""
    print(f"[Task Started] Processing hello for: {name}")
    time.sleep(2)
    result = f"Hello, {name}! This message was processed by Celery."
    print(f"[Task Completed] Result: {result}")
    return result


@app.task(name='tasks.add')
def add_task(x: int, y: int):
    """Adds two numbers."""
    print(f"[Add Task] Computing {x} + {y}")
    return x + y


@app.task(name='tasks.divide')
def divide_task(x: int, y: int):
    """Divides; y = 0 raises ZeroDivisionError (Step 9.4)."""
    return x / y


if __name__ == '__main__':
    print("To start the Celery worker, run:")
    print("celery -A celery_app worker --loglevel=info")
