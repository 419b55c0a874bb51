from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd
import pytest

from pipeline import plots
from pipeline.report import render_report


@pytest.fixture(scope="module")
def result(cheap_result):
    return cheap_result


def render(result) -> str:
    pngs = plots.render_pngs(plots.training_figures(result))
    return render_report(result, pngs, run_id="abc123", source="t.csv")


@pytest.fixture(scope="module")
def html(result) -> str:
    return render(result)


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
        "KPIs per status",
    ):
        assert heading in html
    assert "abc123" in html and "highest silhouette" in html
    assert "Welcome offer" in html  # the playbook
    assert "customer rule:" in html  # override counts


def test_the_kpi_table_is_in_the_report_and_the_chart_only_once_there_are_two_runs(result, html):
    kpis = result.tables["labeling_kpis"]
    assert {"status", "retention", "repeat_rate", "avg_spend"} <= set(kpis.columns)
    assert "repeat_rate" in html and 'alt="KPIs across runs"' not in html

    across = pd.DataFrame(
        {
            "as_of": pd.to_datetime(["2025-11-30", "2025-12-31"]),
            "run_id": ["r1", ""],
            "kpi_retention_loyal": [0.8, 0.9],
            "kpi_avg_spend_loyal": [40.0, 42.0],
        }
    )
    with_history = replace(result, tables={**result.tables, "labeling_kpis_across_runs": across})
    assert 'alt="KPIs across runs"' in render(with_history)


def test_numbers_in_report_tables_read_as_people_write_them():
    from pipeline.report import _number

    assert _number(1157.38, share=False, digits=3) == "1,157"
    assert _number(2410.7, share=False, digits=3) == "2,411"  # never 2.41e+03
    assert _number(0.3541, share=False, digits=3) == "0.354"
    assert _number(0.1, share=True, digits=3) == "10.0%"
    assert _number(float("nan"), share=True, digits=3) == ""


def test_the_mapping_says_which_clusters_are_too_mixed_to_name_their_members(result):
    profiles = result.cluster_profiles.copy()
    profiles["members_agreeing"] = [0.5] + [1.0] * (len(profiles) - 1)
    html = render(replace(result, cluster_profiles=profiles))
    mapping = re.search(r"names its members.*?</table>", html, flags=re.S).group(0)
    assert mapping.count("no: mixed") == 1 and ">50%<" in mapping
    assert mapping.count(">yes<") == len(profiles) - 1


def test_the_report_says_which_gate_held_the_model_back():
    from pipeline.promotion import GateResult
    from pipeline.report import promotion_section
    from pipeline.tracking import TrackedRun

    gates = (
        GateResult("planted_recovery", True, "planted macro-F1 0.99 vs floor 0.85"),
        GateResult("status_share_shift", False, "share of lost moved 12 points vs limit 5"),
    )
    held = promotion_section(TrackedRun("r1", "4", False, gates))
    assert held["verdict"] == (
        "Model version 4 was held back by gate status_share_shift: it stays challenger; "
        "the champion is unchanged."
    )
    assert "share of lost moved 12 points" in held["gates"] and ">failed<" in held["gates"]
    promoted = promotion_section(TrackedRun("r2", "5", True, gates[:1]))
    assert promoted["verdict"] == "Model version 5 became the champion."
    assert "nothing was registered" in promotion_section(None)["verdict"]


def test_the_report_names_the_largest_movements_since_the_champion_and_the_drift(result):
    stage_metrics = {
        **result.stage_metrics,
        "labeling": {
            **result.stage_metrics["labeling"],
            "transition_customers_compared": 1000.0,
            "transition_changed_share": 0.125,
            "moved_loyal_to_at_risk": 80.0,
            "moved_active_to_loyal": 45.0,
            "moved_new_to_lost": 0.0,
        },
    }
    drift = pd.DataFrame({"feature": ["frequency"], "psi": [0.31]})
    html = render(
        replace(result, stage_metrics=stage_metrics, tables={**result.tables, "data_drift": drift})
    )
    section = html[html.index("Status changes since the champion") :]
    assert "12.5% of 1,000 customers changed status" in section
    assert section.index("loyal → at_risk: 80") < section.index("active → loyal: 45")
    assert "new → lost" not in section
    assert "Population stability index" in html and "0.31" in html


def test_a_first_training_says_there_is_nothing_to_compare_with(html):
    assert "No champion to compare with" in html
    assert "No champion with a training-data reference" in html


def test_kpis_that_hold_by_a_statuss_definition_are_not_shown_as_findings():
    from pipeline.report import kpis_without_definitional

    kpis = pd.DataFrame(
        {
            "status": ["active", "at_risk"],
            "retention": [1.0, 0.42],
            "repeat_rate": [0.8, 1.0],
            "avg_spend": [50.0, 12.0],
        }
    )
    shown, named = kpis_without_definitional(kpis)
    assert shown["retention"].isna().tolist() == [True, False]
    assert shown["repeat_rate"].isna().tolist() == [False, True]
    assert shown["avg_spend"].tolist() == [50.0, 12.0]  # not a share: never blanked
    assert named == "retention of active (100%), repeat rate of at_risk (100%)"
