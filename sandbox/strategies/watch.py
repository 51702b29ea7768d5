"""The hooks that watch the student's code from outside, so their files hold nothing but the lesson's code.

- a send route's request is bound to its trace (:func:`watch_request`), and while it runs a profile hook on that
  thread sees ``Thread.start``: the new thread's target (one of the student's functions) is wrapped so the worker
  runs bound to the same trace and its ending is recorded; the event's line is the student's ``thr.start()``;
- Flask's ``template_rendered`` and ``appcontext_pushed`` signals mark the message built and a worker's context,
  and Flask-Mail's ``email_dispatched`` the server's 250;
- :class:`WatchedFlask` runs an ``async def`` view through ``ensure_sync`` as Flask does, recording when the
  coroutine is called, starts on the event loop's thread and ends, when the loop has closed, and, through the loop's
  task factory, each task the view creates: when it is created, starts, and how it ends (finished, failed or
  cancelled); once the loop has closed, a request whose tasks began no send is recorded as never sent;
- ``mail.send()`` (``sandbox.smtp.client``), the pool, the queue and the sink report their own parts.

A profile hook costs a Python call per function call, so it is set only on a send route's thread, only for that
request, and it does nothing but compare one code object.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType
from typing import Any

from flask import Flask, appcontext_pushed, template_rendered
from flask_mail import Message, email_dispatched
from jinja2 import Template

from sandbox.smtp.failures import error_and_outcome
from sandbox.strategies.delivery import FAILED
from sandbox.strategies.modes import WORKER_RULES
from sandbox.strategies.workers import worker_outcome
from sandbox.trace.gates import BEFORE_ANSWER
from sandbox.trace.tracer import (
    TRACE_HEADER,
    Binding,
    Location,
    bind,
    bound,
    current_binding,
    finish_line,
    line_of,
    raised_at,
    source_location,
    suspended_at,
)

_THREAD_START = threading.Thread.start.__code__
_WORKERS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # the threads a route started to send for it


def watch_request(binding: Binding) -> None:
    """Bind this request to its trace and watch it start threads, until :func:`unwatch_request`."""
    bind(binding)
    sys.setprofile(_watch_starts)


def unwatch_request() -> None:
    sys.setprofile(None)


def _watch_starts(frame: FrameType, event: str, arg: Any) -> None:
    if frame.f_code is not _THREAD_START:
        return
    if event == "call":
        _starting(frame.f_locals["self"])
    elif event == "return" and frame.f_locals["self"] in _WORKERS:
        binding = current_binding()
        if binding is not None:
            binding.park(BEFORE_ANSWER)  # scheduled by hand: the worker runs, the route waits at thr.start()


def _starting(thread: threading.Thread) -> None:
    """A thread is about to start: if the student's route starts it with one of their functions, it works for the
    route's trace. Registered as pending first, so its email cannot be missed by whoever waits for the sends."""
    binding = current_binding()
    target = getattr(thread, "_target", None)
    if binding is None or not _is_students(target):
        return
    binding.log.accepted(binding.trace_id, binding.mode, desk=binding.desk)
    binding.log.worker_started(binding.trace_id, thread)
    binding.record("worker.spawned", worker=thread.name, target=target.__name__, daemon=thread.daemon)
    _WORKERS.add(thread)
    thread._target = as_worker(binding.worker(**WORKER_RULES.get(binding.mode, {})), target)  # type: ignore[attr-defined]


def as_worker(binding: Binding, target: Callable[..., Any]) -> Callable[..., None]:
    """``target`` run as a worker of ``binding``'s trace, its start and end recorded (see ``worker_outcome``)."""

    @functools.wraps(target)
    def run(*args: Any, **kwargs: Any) -> None:
        with worker_outcome(binding, target):
            target(*args, **kwargs)

    return run


def _is_students(function: Any) -> bool:
    try:
        line_of(function)
    except (TypeError, ValueError, AttributeError, OSError):
        return False
    return True


def watch_signals(app: Flask) -> None:
    template_rendered.connect(_rendered, app)
    appcontext_pushed.connect(_context_pushed, app)
    email_dispatched.connect(_dispatched, app)


def _dispatched(app: Flask, message: Message) -> None:
    """Flask-Mail reports a message handed over: the server answered 250 to its data."""
    trace_id = (message.extra_headers or {}).get(TRACE_HEADER)
    binding = current_binding()
    if binding is not None and binding.trace_id == trace_id:
        binding.record("smtp.accepted", recipients=list(message.recipients))  # with the binding's line, if it names one
    else:
        app.extensions["sandbox.tracer"].record(trace_id, "smtp.accepted", recipients=list(message.recipients))


def _rendered(app: Flask, template: Template, context: dict[str, Any], **extra: Any) -> None:
    """The email's HTML body is rendered: the message is complete (its text body comes first)."""
    binding = current_binding()
    name = template.name or ""
    if binding is not None and name.startswith("email/") and name.endswith(".html"):
        binding.record("message.built", templates=[name.removesuffix(".html") + ".txt", name])


def _context_pushed(app: Flask, **extra: Any) -> None:
    """A worker pushed an application context (the request's own is pushed before its trace starts)."""
    binding = current_binding()
    if binding is not None:
        binding.record("context.pushed", app=app.name)


class WatchedFlask(Flask):
    """Flask, with the student's ``async def`` views watched as Flask runs them (``ensure_sync``: an event loop on
    a thread of its own, which the request's thread waits for until the loop has closed)."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        binding = current_binding()
        if binding is None or not inspect.iscoroutinefunction(func) or not _is_students(func):
            return super().ensure_sync(func)
        binding.record("coroutine.called", at=line_of(func), function=func.__name__, via="app.ensure_sync")
        tasks: list[_Task] = []
        run_loop = super().ensure_sync(_watched_coroutine(binding, func, tasks))

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return run_loop(*args, **kwargs)
            finally:
                # asyncio.run() has returned: it cancelled the tasks left, waited for its executor's threads and
                # closed the loop. Only now does the request's thread go on, and only now is it certain that a
                # task's send that has not begun never will.
                binding.record("loop.closed", at=line_of(func))
                if tasks and not binding.sends_begun and not any(task.binding.sends_begun for task in tasks):
                    _never_sent(tasks)

        return run


@dataclass
class _Task:
    """A task made of one of the student's coroutines, created by their view: how it ended, for the loop's close."""

    binding: Binding
    name: str
    created_at: Location
    end: str = "was still pending when the loop closed"  # what it did last, after its name


def _watched_coroutine(binding: Binding, func: Callable[..., Any], tasks: list[_Task]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> Any:
        loop = threading.current_thread().name
        binding.record("coroutine.started", at=line_of(func), function=func.__name__, loop=loop)
        running = asyncio.get_running_loop()
        if running.get_task_factory() is None:  # the loop asyncio.run() made for this view alone
            running.set_task_factory(functools.partial(_watched_task, binding, tasks))
        coroutine = binding.coroutine = func(*args, **kwargs)
        try:
            result = await coroutine
        except Exception as err:
            binding.record(
                "coroutine.failed", at=raised_at(err.__traceback__) or line_of(func), error=error_and_outcome(err)[0]
            )
            raise
        binding.record("coroutine.finished", at=line_of(func, "return"))
        return result

    return run


def _watched_task(
    binding: Binding, tasks: list[_Task], loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
) -> asyncio.Task[Any]:
    """The loop's task factory: a task made of one of the student's coroutines is recorded as it is created (the
    line: the student's ``create_task``), as it starts and as it ends, however it ends; asyncio's own tasks (the
    loop's shutdown) are left alone. The task's send is its own: ``mail.send()`` settles its fate."""
    start = suspended_at(coro)
    if start is None:
        return asyncio.Task(coro, loop=loop, **kwargs)
    watched = _Task(binding.worker(blocking=True, coroutine=coro), "", source_location())
    task = asyncio.Task(_run_task(watched, coro, start), loop=loop, **kwargs)
    watched.name = task.get_name()
    tasks.append(watched)
    binding.record("task.created", task=watched.name, function=coro.__name__)
    task.add_done_callback(functools.partial(_ended_unstarted, watched, coro, start))
    return task


async def _run_task(task: _Task, coro: Any, start: Location) -> Any:
    binding = task.binding
    task.end = "was still running when the loop closed"
    binding.record("task.started", at=start, function=coro.__name__, loop=threading.current_thread().name)
    with bound(binding):
        try:
            result = await coro
        except asyncio.CancelledError as err:
            at = raised_at(err.__traceback__) or start
            task.end = f"was cancelled at line {at[1]} of {at[2]}()"
            binding.record("task.cancelled", at=at)
            raise
        except Exception as err:
            at = raised_at(err.__traceback__) or start
            error = error_and_outcome(err)[0]
            task.end = f"raised at line {at[1]} of {at[2]}() ({error})"
            binding.record("task.failed", at=at, error=error)
            raise
    task.end = "returned"
    binding.record("task.finished", at=_end_of(coro.cr_code))
    return result


@functools.cache
def _end_of(code: CodeType) -> Location:
    """The finish line of the coroutine function whose code this is (a coroutine keeps its code, not its function)."""
    return finish_line(FunctionType(code, {}))


def _ended_unstarted(task: _Task, coro: Any, start: Location, done: asyncio.Task[Any]) -> None:
    """A task cancelled before its first step: its coroutine never ran a line."""
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:  # a started one recorded its own end
        coro.close()  # never awaited, on purpose: no "coroutine was never awaited" warning
        task.end = "was cancelled before it ran a line"
        task.binding.record("task.cancelled", at=start)


def _never_sent(tasks: list[_Task]) -> None:
    """The loop has closed and no ``mail.send()`` ever began, in the view or in a task it created: the request's email
    never left. Recorded on the trace (at the first task's ``create_task``) and in the delivery log, which lists it as
    failed with each task's end as the cause."""
    binding, first = tasks[0].binding, tasks[0]
    ends = "; ".join(f"{task.name} {task.end}" for task in tasks)
    error = f"never sent: {ends}, before any mail.send() began"
    binding.record("task.unsent", at=first.created_at, task=first.name, error=error, outcome=FAILED)
    binding.log.accepted(binding.trace_id, binding.mode, desk=binding.desk)
    binding.log.failed(binding.trace_id, binding.mode, error, FAILED)
