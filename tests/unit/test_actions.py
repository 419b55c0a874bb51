from __future__ import annotations

import pandas as pd

from pipeline.actions import apply_playbook, assign_sub_segments, rank_reference
from pipeline.conditions import ranked_columns
from pipeline.config import PlaybookEntry, SubSegmentRule, shipped_playbook, shipped_sub_segments

SEGMENTS = pd.DataFrame(
    {
        "status": ["loyal", "loyal", "at_risk", "lost", "new"],
        "total_spend": [900.0, 100.0, 500.0, 20.0, 40.0],
        "frequency": [30, 12, 8, 0, 1],
        "tier": ["gold", "silver", "gold", None, "bronze"],
        "typical_gap_days": [10.2, 12.0, 45.0, 30.0, 5.0],
    }
)


def test_the_first_matching_sub_segment_rule_names_the_customer():
    rules = (
        SubSegmentRule(name="loyal gold", statuses=("loyal",), when={"tier": ("gold",)}),
        SubSegmentRule(name="big spenders", when={"rank_total_spend": {"ge": 0.6}}),
        SubSegmentRule(name="one-timers", statuses=("lost",), when={"frequency": {"lt": 1}}),
    )
    names = assign_sub_segments(SEGMENTS, rules)
    # spend ranks 1.0, 0.6, 0.8, 0.2, 0.4: the silver loyal customer is a big spender too
    assert names.iloc[:4].tolist() == ["loyal gold", "big spenders", "big spenders", "one-timers"]
    assert pd.isna(names.iloc[4])


def test_a_missing_attribute_never_matches():
    rules = (SubSegmentRule(name="gold", when={"tier": ("gold",)}),)
    assert assign_sub_segments(SEGMENTS, rules).notna().tolist() == [
        True,
        False,
        True,
        False,
        False,
    ]


def test_the_playbook_never_contacts_more_often_than_the_customers_rhythm():
    playbook = {
        "loyal": PlaybookEntry(action="rewards", channel="app", cadence_days=30),
        "at_risk": PlaybookEntry(action="win back", channel="email", cadence_days=21),
    }
    actions = apply_playbook(SEGMENTS, playbook)
    assert actions["action"].tolist()[:3] == ["rewards", "rewards", "win back"]
    assert actions["channel"].iloc[2] == "email"
    # cadence 30 for loyal buyers every 10-12 days; a 45-day rhythm stretches at_risk's 21 days
    assert actions["contact_every_days"].tolist()[:3] == [30.0, 30.0, 45.0]
    assert actions["action"].isna().tolist()[3:] == [True, True]  # no playbook entry


def test_the_shipped_playbook_covers_every_status_and_the_sub_segments_load():
    assert set(shipped_playbook()) == {
        "new",
        "active",
        "loyal",
        "occasional",
        "at_risk",
        "declining",
        "lost",
    }
    assert all(rule.name for rule in shipped_sub_segments())


def test_ranks_against_the_training_population_do_not_depend_on_who_else_is_scored():
    rules = (SubSegmentRule(name="big spenders", when={"rank_total_spend": {"ge": 0.6}}),)
    assert ranked_columns(rule.when for rule in rules) == ["total_spend"]
    reference = rank_reference(SEGMENTS, ranked_columns(rule.when for rule in rules))
    whole = assign_sub_segments(SEGMENTS, rules, reference=reference)
    # spend 900, 100, 500, 20, 40: at or above 60% of the training customers are 900 and 500
    assert whole.notna().tolist() == [True, False, True, False, False]
    for row in range(len(SEGMENTS)):
        alone = assign_sub_segments(SEGMENTS.iloc[[row]], rules, reference=reference)
        assert alone.iloc[0] is whole.iloc[row] or alone.iloc[0] == whole.iloc[row]
    # without a reference a lone customer is the top of their own batch
    assert assign_sub_segments(SEGMENTS.iloc[[1]], rules).iloc[0] == "big spenders"
