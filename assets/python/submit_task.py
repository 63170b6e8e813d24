# submit_task.py: sends tasks with .delay() and reads their results with .get() (Steps 5 and 6).
# Step 9's Experiment 4 adds a task that fails.
from celery_app import hello_task, add_task


def wait(result, label):
    print(f"⏳ Waiting for {label}...")
    try:
        output = result.get(timeout=10)  # re-raises the task's exception on FAILURE
        print(f"✅ {label} completed: {output!r}")
    except Exception as e:
        print(f"❌ {label} failed: {type(e).__name__}: {e} (state {result.state})")
    print()


def main():
    print("=" * 60)
    print("Celery Hello World - Task Submitter")
    print("=" * 60)

    result = hello_task.delay("World")
    print(f"📤 hello submitted, id {result.id}, state {result.state}")
    wait(result, "hello")

    result2 = add_task.delay(42, 58)
    print(f"📤 add submitted, id {result2.id}")
    wait(result2, "add")


if __name__ == '__main__':
    main()
