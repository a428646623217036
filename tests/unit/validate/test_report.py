"""The report's plots (the engine's pure parts are tested in tests/unit/load)."""

from __future__ import annotations


def test_the_latency_axis_is_labelled_in_plain_milliseconds() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeinfer_validate.plots import plain_ms_log_axis

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0.8, 3.0, 40.0])
    plain_ms_log_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    plt.close(fig)
    assert labels and all("10^" not in t and "times" not in t and "$" not in t for t in labels), labels
    assert {"1", "2", "5", "10", "20"} <= set(labels), labels
