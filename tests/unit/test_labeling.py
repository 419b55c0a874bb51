from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from pipeline.config import StatusRule, load_rules
from pipeline.labeling import StatusLabeler

RULES = (
    StatusRule(status="lost", when={"overdue_ratio": {"ge": 5}}, reason="long silent"),
    StatusRule(status="loyal", when={"rank_frequency": {"ge": 0.6}, "overdue_ratio": {"lt": 2}}),
)
NEW_RULE = (
    StatusRule(
        status="new", when={"tenure_days": {"le": "new_window_days"}}, reason="just arrived"
    ),
)


def customers(cluster_ids: tuple[int, int, int]) -> pd.DataFrame:
    """Three behaviours, two customers each; ``cluster_ids`` says which id each behaviour gets."""
    gone, frequent, rare = cluster_ids
    return pd.DataFrame(
        {
            "cluster": [gone, gone, frequent, frequent, rare, rare],
            "overdue_ratio": [9.0, 11.0, 0.5, 1.0, 1.5, 1.0],
            "frequency": [1, 2, 30, 40, 2, 1],
            "tenure_days": [500, 600, 400, 30, 300, 200],
        }
    )


def fit(frame: pd.DataFrame, **kwargs) -> StatusLabeler:
    options = {
        "cluster_rules": RULES,
        "default_status": "occasional",
        "parameters": {"new_window_days": 90},
    }
    return StatusLabeler(**(options | kwargs)).fit(frame)


def test_clusters_are_named_by_their_profile_whatever_their_ids():
    for ids in [(0, 1, 2), (2, 0, 1), (7, 3, 5)]:
        frame = customers(ids)
        statuses = fit(frame).predict(frame)["status"].tolist()
        assert statuses == ["lost", "lost", "loyal", "loyal", "occasional", "occasional"]


def test_the_first_matching_rule_wins_and_the_default_catches_the_rest():
    for naming in ("members", "profile"):
        labeler = fit(customers((0, 1, 2)), naming=naming)
        assert labeler.mapping_ == {0: "lost", 1: "loyal", 2: "occasional"}
    assert fit(customers((0, 1, 2)), naming="profile").reasons_[2] == (
        "no rule matched: default status"
    )
    assert fit(customers((0, 1, 2))).reasons_[2] == (
        "no rule holds for 100% of its 2 members: default status"
    )


def test_each_mapping_carries_a_readable_reason_with_the_profile_values():
    by_members = fit(customers((0, 1, 2)))
    assert by_members.reasons_[0] == (
        "long silent: 100% of its 2 members (medians: overdue_ratio 10)"
    )
    by_profile = fit(customers((0, 1, 2)), naming="profile")
    assert by_profile.reasons_[0] == "long silent (overdue_ratio 10 >= 5)"
    assert by_profile.reasons_[1].startswith("rank_frequency 0.917 >= 0.6; overdue_ratio 0.75 < 2")


def test_a_cluster_takes_the_status_most_of_its_members_meet():
    frame = pd.DataFrame(
        {
            "cluster": [0] * 5 + [1] * 5,
            # cluster 0: three long silent, two just over the edge; its median is 9.0
            "overdue_ratio": [9.0, 9.5, 12.0, 1.0, 1.2] + [1.0] * 5,
            "frequency": [5, 5, 5, 5, 5] + [1, 2, 3, 4, 6],
            "tenure_days": [400] * 10,
        }
    )
    labeler = fit(frame)
    assert labeler.mapping_[0] == "lost"
    assert labeler.cluster_profiles_.loc[0, "members_agreeing"] == pytest.approx(0.6)
    assert labeler.reasons_[0].startswith("long silent: 60% of its 5 members")
    # moved over the edge: now most members are not silent and the cluster is not lost
    frame.loc[2, "overdue_ratio"] = 1.1
    assert fit(frame).mapping_[0] != "lost"


def mixed_cluster() -> pd.DataFrame:
    """Cluster 0: three long-silent customers and two frequent recent ones (60% meet 'lost')."""
    return pd.DataFrame(
        {
            "cluster": [0] * 5 + [1] * 5,
            "overdue_ratio": [9.0, 9.5, 12.0, 1.0, 1.2] + [1.0] * 5,
            "frequency": [5, 5, 5, 5, 5] + [1, 2, 3, 4, 6],
            "tenure_days": [400] * 10,
        }
    )


def test_members_of_a_mixed_cluster_take_the_status_their_own_signals_meet():
    frame = mixed_cluster()
    result = fit(frame, min_cluster_purity=0.8).predict(frame)
    # frequency 5 ranks at 0.9 of the population and they are not overdue: loyal on their own
    assert result["status"].tolist()[:5] == ["lost", "lost", "lost", "loyal", "loyal"]
    assert (result["status_source"].iloc[:5] == "own_signals").all()
    assert result.loc[3, "status_reason"] == (
        "cluster 0 is mixed (60% of its members meet 'lost'): own signals: loyal"
    )
    # cluster 1 is pure (all five meet 'occasional' by default): its name holds
    assert (result["status_source"].iloc[5:] == "cluster").all()


def test_a_cluster_pure_enough_names_all_its_members_even_those_who_differ():
    frame = mixed_cluster()
    result = fit(frame, min_cluster_purity=0.6).predict(frame)
    assert result["status"].tolist()[:5] == ["lost"] * 5
    assert (result["status_source"] == "cluster").all()
    # 0 turns the refinement off whatever the purity
    frame.loc[2, "overdue_ratio"] = 1.1
    labeler = fit(frame, min_cluster_purity=0.0)
    assert (labeler.predict(frame)["status_source"] == "cluster").all()


def test_customer_rules_still_override_members_of_a_mixed_cluster():
    frame = mixed_cluster()
    frame.loc[3, "tenure_days"] = 30
    result = fit(frame, customer_rules=NEW_RULE).predict(frame)
    assert result.loc[3, "status"] == "new"
    assert result.loc[3, "status_source"] == "customer_rule"
    assert result.loc[4, "status_source"] == "own_signals"


def test_a_tie_among_members_goes_to_the_profiles_status():
    frame = pd.DataFrame(
        {
            "cluster": [0, 0, 1, 1],
            "overdue_ratio": [9.0, 1.0, 1.0, 1.0],
            "frequency": [1, 1, 5, 6],
            "tenure_days": [400] * 4,
        }
    )
    # cluster 0: one long silent, one not; the median 5.0 still meets the rule for lost
    assert fit(frame).mapping_[0] == "lost"
    frame.loc[0, "overdue_ratio"] = 8.0  # median 4.5: the profile is no longer lost
    assert fit(frame).mapping_[0] == "occasional"


def test_profiles_hold_size_share_and_median_signals():
    profiles = fit(customers((0, 1, 2))).cluster_profiles_
    assert profiles.loc[0, "customers"] == 2
    assert profiles.loc[0, "share"] == pytest.approx(1 / 3)
    assert profiles.loc[1, "overdue_ratio"] == 0.75
    assert profiles.loc[1, "status"] == "loyal"


def test_several_clusters_may_share_a_status():
    frame = customers((0, 1, 2))
    frame.loc[1, "cluster"] = 3  # the two gone customers now form two clusters
    labeler = fit(frame)
    assert labeler.mapping_[0] == labeler.mapping_[3] == "lost"


def test_customer_rules_override_the_cluster_for_single_customers_and_say_so():
    frame = customers((0, 1, 2))
    # (the two-member clusters here are mixed once the newcomer leaves the ranks: naming them
    # by the cluster keeps this test on the customer rule alone)
    result = fit(frame, customer_rules=NEW_RULE, min_cluster_purity=0.0).predict(frame)
    # the frequent customer with 30 days of tenure is new whatever their cluster
    assert result["status"].tolist() == ["lost", "lost", "loyal", "new", "occasional", "occasional"]
    assert result.loc[3, "status_source"] == "customer_rule"
    assert result.loc[3, "status_reason"] == "customer rule: just arrived"
    assert (result.drop(index=3)["status_source"] == "cluster").all()


def test_a_rule_on_an_unknown_signal_is_rejected_by_name():
    bad = (StatusRule(status="lost", when={"overdue": {"ge": 5}}),)
    with pytest.raises(ValueError, match=r"unknown signal\(s\) \['overdue'\]"):
        fit(customers((0, 1, 2)), cluster_rules=bad)


def test_missing_values_never_satisfy_a_condition():
    frame = customers((0, 1, 2))
    frame["overdue_ratio"] = float("nan")
    assert set(fit(frame).mapping_.values()) == {"occasional"}


def test_unseen_clusters_and_unfitted_use_are_errors():
    frame = customers((0, 1, 2))
    with pytest.raises(NotFittedError):
        StatusLabeler().predict(frame)
    with pytest.raises(ValueError, match="not seen"):
        fit(frame).predict(frame.assign(cluster=9))


def test_it_follows_the_scikit_learn_contract():
    labeler = StatusLabeler(cluster_rules=RULES)
    assert clone(labeler).get_params()["cluster_rules"] == RULES
    assert labeler.fit(customers((0, 1, 2))) is labeler


def test_the_shipped_rules_load_and_cover_every_status():
    rules = load_rules()
    named = {r.status for r in rules["cluster_rules"]} | {r.status for r in rules["customer_rules"]}
    assert named == {"new", "active", "loyal", "occasional", "at_risk", "declining", "lost"}
    # Customer by customer: new (too early to judge), lost (by silence and by either chance),
    # at risk (a regular buyer's own rhythm), declining (a statistical fact about the customer).
    assert [r.status for r in rules["customer_rules"]] == [
        "new",
        "lost",
        "lost",
        "at_risk",
        "declining",
    ]


def test_customers_decided_by_a_customer_rule_do_not_shape_their_clusters_name():
    frame = customers((0, 1, 2))
    # the frequent cluster is mostly newcomers: named by its one judged member, not by them
    frame.loc[[2, 3], "tenure_days"] = 20
    frame.loc[6] = {"cluster": 1, "overdue_ratio": 0.5, "frequency": 50, "tenure_days": 400}
    labeler = fit(frame, customer_rules=NEW_RULE, min_cluster_purity=0.0)
    assert labeler.cluster_profiles_.loc[1, "customers"] == 3
    assert labeler.cluster_profiles_.loc[1, "customers_profiled"] == 1
    assert labeler.cluster_profiles_.loc[1, "tenure_days"] == 400
    assert labeler.predict(frame)["status"].tolist() == [
        "lost",
        "lost",
        "new",
        "new",
        "occasional",
        "occasional",
        "loyal",
    ]


def test_a_cluster_of_only_rule_decided_customers_takes_their_status():
    frame = customers((0, 1, 2))
    frame.loc[[2, 3], "tenure_days"] = 20
    labeler = fit(frame, customer_rules=NEW_RULE)
    assert labeler.mapping_[1] == "new"
    assert labeler.reasons_[1] == "every member matched the customer rule for 'new'"


def test_a_labeler_saved_before_mixed_clusters_existed_scores_as_it_was_trained():
    import pickle

    frame = mixed_cluster()
    labeler = fit(frame)
    state = labeler.__getstate__()
    del state["min_cluster_purity"]  # as pickled by the version before the parameter
    old = StatusLabeler.__new__(StatusLabeler)
    old.__setstate__(state)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.min_cluster_purity == 0.0
    assert (restored.predict(frame)["status_source"] == "cluster").all()


def test_two_customer_rules_for_one_status_each_give_their_own_reason():
    frame = customers((0, 1, 2))
    rules = (
        StatusRule(status="lost", when={"overdue_ratio": {"ge": 10}}, reason="ten rhythms silent"),
        StatusRule(status="lost", when={"overdue_ratio": {"ge": 9}}, reason="nine rhythms silent"),
    )
    result = fit(frame, customer_rules=rules, min_cluster_purity=0.0).predict(frame)
    # customer 0 is 9.0 overdue, customer 1 is 11.0
    assert result.loc[0, "status_reason"] == "customer rule: nine rhythms silent"
    assert result.loc[1, "status_reason"] == "customer rule: ten rhythms silent"


def test_ranks_from_one_sort_are_pandas_percentile_ranks_to_the_bit():
    from pipeline.conditions import percentile_ranks as ranks_and_sorted

    rng = np.random.default_rng(0)
    for trial in range(60):
        values = rng.integers(0, 1 + trial, 500).astype("float64") / 3  # many ties
        values[rng.random(500) < 0.1] = np.nan
        values[:2] = [np.inf, -np.inf]
        ranks, ordered = ranks_and_sorted(values)
        expected = pd.Series(values).rank(pct=True).to_numpy()
        np.testing.assert_array_equal(ranks, expected, strict=True)
        np.testing.assert_array_equal(ordered, np.sort(values[~np.isnan(values)]))
    ranks, ordered = ranks_and_sorted(np.array([np.nan, np.nan]))
    assert np.isnan(ranks).all() and len(ordered) == 0
