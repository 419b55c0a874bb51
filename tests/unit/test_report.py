from __future__ import annotations

import re

import pytest

from pipeline import plots
from pipeline.config import Config, EmbeddedDataConfig
from pipeline.report import render_report
from pipeline.schema import clean_transactions
from pipeline.synthetic import generate_transactions
from pipeline.train import fit_segmentation


@pytest.fixture(scope="module")
def html() -> str:
    transactions, _ = generate_transactions(1200, random_state=5)
    config = Config(embedded=EmbeddedDataConfig(n_customers=1200))
    result = fit_segmentation(
        clean_transactions(transactions, data=config.data, source="t"), config
    )
    figures = plots.training_figures(result)
    try:
        return render_report(result, figures, run_id="abc123", source="t.csv")
    finally:
        plots.close(figures)


def test_the_report_is_self_contained(html):
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) >= 6
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert "<link" not in html and "<script" not in html


def test_the_report_has_every_section_an_analyst_needs(html):
    for heading in (
        "Statuses: size and value",
        "Who is in each status",
        "Customer value and P(alive) per status",
        "How clusters were named",
        "What to do with each status",
        "Sub-segments",
    ):
        assert heading in html
    assert "abc123" in html and "highest silhouette" in html
    assert "Welcome offer" in html  # the playbook
    assert "customer rule:" in html  # override counts
