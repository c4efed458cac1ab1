"""The suite's PNG: ops/s of every cell, ledger beside the baseline (matplotlib, optional)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

PANELS = (
    ("write", "writes (Python API and HTTP): ops/s", False),
    ("verify", "verify: ops/s (log scale)", True),
)


def draw(document: dict[str, Any], path: Path) -> Path | str:
    """Draw the chart to ``path``; a message instead when matplotlib is missing."""
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"

    results = [r for r in document["results"] if r.get("skipped") is None]
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(13, 9.5))
    for ax, (group, title, log) in zip(axes, PANELS, strict=True):
        # x: operation @ clients; one bar per implementation.
        series: dict[str, dict[str, float]] = defaultdict(dict)
        labels: list[str] = []
        for r in results:
            in_panel = (
                r["group"] == group
                or (group == "write" and r["group"] == "http" and r["operation"] != "verify")
                or (group == "verify" and r["group"] == "http" and r["operation"] == "verify")
            )
            if not in_panel:
                continue
            operation = "valid" if r["operation"] == "verify" else r["operation"]
            label = f"{operation}\n{r['clients']} cl"
            if label not in labels:
                labels.append(label)
            series[r["implementation"]][label] = r["ops_per_s"]
        width = 0.8 / max(1, len(series))
        for i, (impl, values) in enumerate(sorted(series.items())):
            xs = [n + i * width for n, label in enumerate(labels) if label in values]
            ys = [values[label] for label in labels if label in values]
            ax.bar(xs, ys, width=width, label=impl)
        ax.set_xticks([n + 0.4 - width / 2 for n in range(len(labels))], labels, fontsize=8)
        ax.set_title(title)
        ax.set_ylabel("ops/s")
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8, ncol=3)
        ax.grid(axis="y", alpha=0.3)
    m = document["machine"]
    keys = (
        "write_ratio_mint_8",
        "write_ratio_exchange_8",
        "verify_cached_speedup",
        "verify_uncached_ratio",
        "revocation_propagation_p99_ms",
        "rebuild_events_per_s",
        "invariant_violations",
    )
    pairs = [f"{k}={document.get(k)}" for k in keys]
    summary = "   ".join(pairs[:4]) + "\n" + "   ".join(pairs[4:])
    fig.suptitle(
        f"ledger vs one-row-per-token baseline - {m['cores']} cores, Python {m['python']}, "
        f"PostgreSQL {m['postgres']}, {document['timestamp']}\n{summary}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
