"""Prometheus text exposition of a few gauges and counters, read at scrape time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Metrics"]


@dataclass(frozen=True)
class _Metric:
    name: str
    kind: str
    help: str
    read: Callable[[], float]


class Metrics:
    """Named `tapline_*` metrics whose values come from callables."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []
        self._counters: dict[str, float] = {}
        self._labelled: list[tuple[str, str, str, Callable[[], dict[str, float]]]] = []

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._metrics.append(_Metric(f"tapline_{name}", "gauge", help_text, read))

    def counter(self, name: str, help_text: str) -> Callable[[float], None]:
        """Register a counter; returns the function that adds to it."""
        full = f"tapline_{name}"
        self._counters[full] = 0.0

        def add(amount: float = 1.0) -> None:
            self._counters[full] += amount

        self._metrics.append(
            _Metric(full, "counter", help_text, lambda: self._counters[full])
        )
        return add

    def labelled(
        self,
        name: str,
        help_text: str,
        label: str,
        read: Callable[[], dict[str, float]],
    ) -> None:
        """A gauge with one label, whose values per label value come from `read`."""
        self._labelled.append((f"tapline_{name}", help_text, label, read))

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.append(f"{metric.name} {metric.read():g}")
        for name, help_text, label, read in self._labelled:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for value_label, value in sorted(read().items()):
                escaped = value_label.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{name}{{{label}="{escaped}"}} {value:g}')
        return "\n".join(lines) + "\n"
