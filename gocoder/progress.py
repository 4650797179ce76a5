"""Progress of long commands: rich's bars on a terminal, plain log lines everywhere else.

rich draws nothing when stderr is not a terminal, so a piped or CI run of collect, annotate, shards,
eval or bench once printed nothing for minutes. There `Progress` logs one line per task instead:
after the first item (with the time the whole task is expected to take, when its total is known),
then every `every` seconds, and once at the end, e.g.

    bench: 12/928 (1%) in 4 min 10 s, about 5 h 18 min left
"""

from __future__ import annotations

import time

from rich import progress as rp
from rich.console import Console

EVERY_S = 20.0  # seconds between two plain lines of one task


def _duration(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class Progress(rp.Progress):
    """rich.progress.Progress that, off a terminal, logs plain lines to
    its console instead of drawing."""

    def __init__(
        self, *columns: rp.ProgressColumn | str, console: Console, every: float = EVERY_S, **kw
    ):
        self.plain = not console.is_terminal
        super().__init__(*columns, console=console, disable=self.plain, **kw)
        self.every = every
        self._logged: dict[rp.TaskID, float] = {}  # task -> when its last line went out
        # task -> items done before this run (a resumed run)
        self._start: dict[rp.TaskID, float] = {}

    def add_task(self, description: str, *args, **kw) -> rp.TaskID:
        task_id = super().add_task(description, *args, **kw)
        self._start[task_id] = kw.get("completed", 0)
        return task_id

    def advance(self, task_id: rp.TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_log(task_id)

    def update(self, task_id: rp.TaskID, **kw) -> None:
        super().update(task_id, **kw)
        if "completed" in kw or "advance" in kw:
            self._maybe_log(task_id)

    def stop(self) -> None:
        if self.plain:
            for t in self.tasks:
                if t.completed and self._logged.get(t.id) != -1.0:
                    self._log(t, final=True)
        super().stop()

    def _maybe_log(self, task_id: rp.TaskID) -> None:
        if not self.plain:
            return
        task = self._tasks[task_id]
        last = self._logged.get(task_id)
        # the first item done says how long the whole will take: log
        # it at once, then every `every` s
        if last is None or time.monotonic() - last >= self.every:
            self._log(task)

    def _log(self, task: rp.Task, final: bool = False) -> None:
        name = task.description or "progress"
        done = (
            f"{task.completed:.0f}"
            if task.total is None
            else (
                f"{task.completed:.0f}/{task.total:.0f} "
                f"({100 * task.completed / max(task.total, 1):.0f}%)"
            )
        )
        line = f"{name}: {done} in {_duration(task.elapsed or 0.0)}"
        if final:
            line += ", done" if task.total is None or task.completed >= task.total else ", stopped"
        elif task.total and task.elapsed and task.completed > self._start.get(task.id, 0):
            # seconds an item, this run
            rate = task.elapsed / (task.completed - self._start.get(task.id, 0))
            line += f", about {_duration(rate * (task.total - task.completed))} left"
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        self._logged[task.id] = -1.0 if final else time.monotonic()
