"""PNG charts of benchmark reports (`tensorpress bench --plot DIR`): one file per family that
has series, DIR/FAMILY.png. matplotlib is an optional extra, imported only here and only when
charts are asked for."""

import io
import os

INSTALL_HINT = 'pip install "tensorpress[plot]"'
DPI = 100


class MissingMatplotlib(RuntimeError):
    """--plot was asked for without matplotlib installed."""


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    try:
        import matplotlib
    except ImportError:
        raise MissingMatplotlib(f"charts need matplotlib: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_chart(report, directory):
    """Draw `report`'s series into DIRECTORY/FAMILY.png and return its path (None without series).
    Series with the same panel share a subplot; axis-2 series go on a right-hand y axis."""
    if not report.series:
        return None
    plt = pyplot()
    panels = list(dict.fromkeys(s.panel for s in report.series))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 0.8, 4.2), squeeze=False)
    colors = {}  # one color per label, the same in every panel
    for ax, panel in zip(axes[0], panels):
        left, right = ax, None
        handles = []
        for s in (s for s in report.series if s.panel == panel):
            target = left
            if s.axis == 2:
                right = right or left.twinx()
                target = right
            points = [(x, y) for x, y in zip(s.x, s.y) if y is not None]
            if not points:
                continue
            color = colors.setdefault(s.label, f"C{len(colors)}")
            (line,) = target.plot(*zip(*points), marker="o", markersize=3.5, label=s.label, color=color,
                                  linestyle="--" if s.dashed else "-", linewidth=1.4)
            handles.append(line)
        left.set_xscale(report.xscale)
        left.set_yscale(report.yscale)
        left.set_xlabel(report.xlabel)
        left.set_ylabel(report.ylabel)
        left.grid(True, which="major", alpha=0.3)
        if right is not None:
            right.set_yscale(report.y2scale)
            right.set_ylabel(report.y2label)
        if panel:
            left.set_title(panel, fontsize=10)
        left.legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle(report.chart_title or report.family, fontsize=11)
    fig.tight_layout()
    path = os.path.join(directory, f"{report.family}.png")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    # A 64-colour palette keeps a chart under 100 kB (a third of the RGBA file) and looks the
    # same: the charts use a handful of colours plus their anti-aliasing shades.
    from PIL import Image  # Pillow comes with matplotlib

    Image.open(buffer).convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path
