"""The report of a multi-objective hyperparameter search (``hparams_search=...``): every trial, the Pareto front.

A Hydra callback: each job returns its objectives (``objective`` keys, e.g. mean box IoU and interventions per 100
frames), the Optuna sweeper picks the next trials and, at the end, writes its Pareto front to
``optimization_results.yaml``. This callback keeps every trial's values as the jobs end and, when the multirun ends,
writes ``pareto.json`` / ``pareto.md`` / ``pareto.png`` in the sweep folder (front from Optuna's ``best_trials``, not
recomputed), prints the table and logs it to one more logger run (W&B: job type ``sweep-summary``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from samqa_framework.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


class ParetoReport(Callback):
    def __init__(self, objectives: Sequence[str], directions: Sequence[str], summary_run: bool = True) -> None:
        """``objectives``: the names of the values each job returns, in order; ``directions``: maximize | minimize
        for each (the sweeper's ``direction``). ``summary_run``: log the report to one more logger run."""
        if len(objectives) != 2 or len(directions) != 2:
            raise ValueError(f"objectives and directions: two each (a 2-D front), got {list(objectives)} and "
                             f"{list(directions)}")
        if any(d not in ("maximize", "minimize") for d in directions):
            raise ValueError(f"directions must be maximize or minimize, got {list(directions)}")
        self.objectives = list(objectives)
        self.directions = list(directions)
        self.summary_run = summary_run
        self.trials: list[dict[str, Any]] = []

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        swept = set((OmegaConf.select(config, "hydra.sweeper.params") or {}).keys())
        params = {}
        for override in job_return.overrides or []:
            key, _, value = override.partition("=")
            if key.lstrip("+~") in swept:
                params[key.lstrip("+~")] = value
        values = None
        try:
            ret = job_return.return_value  # raises the job's own error when it failed
            values = [float(v) for v in (ret if isinstance(ret, list | tuple) else [ret])]
        except Exception as exc:  # a failed trial is listed, not fatal: the sweeper decides what a failure means
            log.warning("trial %s failed: %s", job_return.hydra_cfg.hydra.job.num if job_return.hydra_cfg else "?",
                        exc)
        self.trials.append({"number": len(self.trials), "params": params, "values": values,
                            "dir": str(config.hydra.runtime.output_dir)})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(str(config.hydra.sweep.dir))
        front = self._front(root)
        report = {"objectives": self.objectives, "directions": self.directions, "trials": self.trials,
                  "pareto_front": front}
        atomic_write_json(root / "pareto.json", report)
        table = markdown_front(self.objectives, front)
        atomic_write_text(root / "pareto.md", table + "\n")
        png = plot_front(root / "pareto.png", self.objectives, self.directions, self.trials, front)
        if self.summary_run and config.get("logger"):
            _log_summary_run(config, root, self.objectives, front, png)
        print(f"\nPareto front ({len(front)} of {len(self.trials)} trials; "
              + ", ".join(f"{o} {d}" for o, d in zip(self.objectives, self.directions, strict=True)) + ")\n")
        print(table)
        print(f"\nsweep report: {root / 'pareto.md'}")

    def _front(self, root: Path) -> list[dict[str, Any]]:
        """Optuna's Pareto front (``optimization_results.yaml``, written by the sweeper before this callback runs),
        sorted by the first objective, best first."""
        path = root / "optimization_results.yaml"
        if not path.is_file():
            log.warning("%s not found (not an Optuna sweep?): no Pareto front", path)
            return []
        results = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        best = results.get("solutions") or []
        # NSGA-II's offspring often repeat a parent's settings, and a trial's result is deterministic: one row per
        # distinct setting, with how many trials ran it.
        front: list[dict[str, Any]] = []
        for b in best:
            params = dict(b["params"])
            same = next((t for t in front if t["params"] == params), None)
            if same is not None:
                same["trials"] += 1
            else:
                front.append({"params": params, "values": [float(v) for v in b["values"]], "trials": 1})
        sign = -1 if self.directions[0] == "maximize" else 1
        return sorted(front, key=lambda t: sign * t["values"][0])


def markdown_front(objectives: Sequence[str], front: Sequence[dict[str, Any]]) -> str:
    keys = sorted({k for t in front for k in t["params"]})
    lines = ["| " + " | ".join([*keys, *objectives, "trials"]) + " |",
             "|" + "---|" * (len(keys) + len(objectives) + 1)]
    for t in front:
        cells = ([_cell(t["params"].get(k, "")) for k in keys] + [f"{v:.4g}" for v in t["values"]]
                 + [str(t.get("trials", 1))])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """A swept value as a person reads it: floats to 3 significant digits (the search's own precision is noise)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def plot_front(path: Path, objectives: Sequence[str], directions: Sequence[str], trials: Sequence[dict[str, Any]],
               front: Sequence[dict[str, Any]]) -> Path:
    """Every trial (grey) and the Pareto front (red, joined), objective 1 against objective 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    done = [t["values"] for t in trials if t["values"] and all(math.isfinite(v) for v in t["values"])]
    if done:
        ax.scatter([v[0] for v in done], [v[1] for v in done], c="0.6", s=18, label=f"trials ({len(done)})")
    if front:
        pts = sorted((t["values"][0], t["values"][1]) for t in front)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", c="tab:red", ms=5, label=f"Pareto front ({len(pts)})")
    ax.set_xlabel(f"{objectives[0]} ({directions[0]})")
    ax.set_ylabel(f"{objectives[1]} ({directions[1]})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a PNG
    return path


def _log_summary_run(config: DictConfig, root: Path, objectives: Sequence[str], front: Sequence[dict[str, Any]],
                     png: Path) -> None:
    import cv2

    from samqa_framework.utils.loggers import log_images, log_table, summary_loggers

    with summary_loggers(config, root, "sweep-summary") as loggers:
        keys = sorted({k for t in front for k in t["params"]})
        log_table(loggers, "pareto_front", ["trial", *keys, *objectives],
                  [[str(i), *(str(t["params"].get(k, "")) for k in keys), *t["values"]] for i, t in enumerate(front)])
        log_images(loggers, "pareto_front_plot", [cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)])
