"""Warnings are counted once per kind, not printed once per occurrence."""

from __future__ import annotations

import io
import logging
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

from pipeline import noise


@pytest.fixture
def captured():
    """capture_warnings() on a private root handler; filters and showwarning restored after."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        counter = noise.capture_warnings()
        yield counter, stream
    noise.release_log_filter()
    root.removeHandler(handler)
    root.setLevel(level)


def test_thirty_convergence_warnings_are_one_kind_counted_thirty_times(captured, capsys):
    counter, _ = captured
    for _ in range(30):  # one call site: Python's default would show it once and count nothing
        warnings.warn(
            "Number of distinct clusters (3) found smaller", ConvergenceWarning, stacklevel=1
        )
    for value in (1.0, 2.0):
        warnings.warn(f"overflow encountered in exp ({value})", RuntimeWarning, stacklevel=1)
    assert capsys.readouterr().err == ""
    recorded = counter.as_dict()
    assert recorded["ConvergenceWarning (test_noise)"]["count"] == 30
    assert recorded["RuntimeWarning (test_noise)"] == {
        "count": 2,
        "first_message": "overflow encountered in exp (1.0)",
    }
    assert noise.warnings_summary() == (
        "warnings: 30 x ConvergenceWarning (test_noise), 2 x RuntimeWarning (test_noise); "
        "each kind shown or logged (-v) once, counts in the run"
    )


def test_a_repeated_log_warning_is_shown_once_and_counted(captured):
    counter, stream = captured
    clv = logging.getLogger("pipeline.clv")
    for correlation in (0.49, 0.41, 0.40, 0.45, 0.47):
        clv.warning("spend and frequency correlate (%.2f)", correlation)
    clv.warning("another finding")
    assert stream.getvalue().splitlines() == [
        "spend and frequency correlate (0.49)",
        "another finding",
    ]
    assert counter.as_dict()["log warning (pipeline.clv)"]["count"] == 6


def test_nothing_warned_gives_no_summary_line(captured):
    assert noise.warnings_summary() is None and noise.captured_warnings() == {}


def test_a_warning_is_attributed_to_the_package_that_raised_it():
    site = "/x/.venv/lib/python3.11/site-packages"
    assert noise.package_of(f"{site}/sklearn/cluster/_kmeans.py") == "sklearn"
    assert noise.package_of(f"{site}/lifetimes/fitters/gamma_gamma_fitter.py") == "lifetimes"
    assert noise.package_of("/work/project/pipeline/clv.py") == "pipeline"


def test_a_command_run_in_process_takes_its_repeat_filter_off_the_handlers_when_it_ends(
    tmp_path, monkeypatch
):
    # A handler that outlives the command (a notebook's, pytest's capture) would otherwise hide
    # every later first warning of a template the command had shown.
    from click.testing import CliRunner

    from pipeline import cli

    monkeypatch.chdir(tmp_path)
    outliving = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(outliving)
    seen_during = []
    monkeypatch.setattr(
        cli,
        "release_log_filter",
        lambda original=noise.release_log_filter: (
            seen_during.append([type(f) for f in outliving.filters]),
            original(),
        ),
    )
    try:
        done = CliRunner().invoke(
            cli.main, ["runs", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
        )
    finally:
        root.removeHandler(outliving)
    assert done.exit_code == 0, done.output
    # Filtered while the command ran, and no longer (redaction of credentials may stay).
    assert len(seen_during) == 1 and noise.RepeatedLogFilter in seen_during[0]
    assert not any(isinstance(f, noise.RepeatedLogFilter) for f in outliving.filters)
