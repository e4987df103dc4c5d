"""What one benchmark family measured: the table `tensorpress bench` prints, with raw numbers in
its cells, and the series `tensorpress bench --plot` draws (_bench/plot.py)."""

from dataclasses import dataclass, field

from .timing import format_table


@dataclass
class Series:
    """One line of a chart: y (None where not measured) against x."""

    label: str
    x: list
    y: list
    panel: str = ""  # series with the same panel share one subplot (titled by it)
    axis: int = 1  # 2: the subplot's right-hand y axis
    dashed: bool = False  # bounds and references, as opposed to measured implementations


@dataclass
class Report:
    """A family's results. `rows` hold raw cells: str (printed as is), numbers (printed with the
    column's entry of `formats`, a str.format pattern such as "{:.2f}x") or None ("-").
    `notes` are lines printed after the table. `series` are empty unless charts were asked for."""

    family: str
    title: str
    headers: list
    formats: list
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    series: list = field(default_factory=list)
    chart_title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    y2label: str = ""
    xscale: str = "log"
    yscale: str = "log"
    y2scale: str = "log"

    def text(self):
        """The plain-text table (and notes) that `tensorpress bench` prints."""
        cells = [[_cell(v, f) for v, f in zip(row, self.formats)] for row in self.rows]
        return "\n".join([format_table(self.title, self.headers, cells), *self.notes])


def _cell(value, fmt):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return fmt.format(value)


def per_second(n, seconds):
    """n / seconds (elements or bytes per second), or None when not measured."""
    return n / seconds if seconds else None


def speedup(ours, theirs):
    """How many times faster `ours` is than `theirs` (both in seconds), or None."""
    return theirs / ours if ours and theirs else None


BOUND_FROM = 1 << 20
BOUND_LABEL = "memory bound (stream probe, same bytes)"


def memory_bound_only(xs, ys):
    """The bound line's points from BOUND_FROM elements up: below that the all-threads stream
    probe mostly times thread wake-up, so its figure bounds nothing. (At 1M elements the data
    still partly sits in the L3 cache; the line reaches the DRAM bound a size or two later.)"""
    return [y if x >= BOUND_FROM else None for x, y in zip(xs, ys)]
