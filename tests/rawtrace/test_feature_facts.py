"""The feature facts: each names the release that brought it, and every attach family has one."""

from __future__ import annotations

from rawtrace.attach import ladder
from rawtrace.kernel.feature_probes import ATTACH_FEATURES, FEATURES, feature


def test_every_fact_has_a_unique_name_and_its_first_release() -> None:
    facts = (*FEATURES, *ATTACH_FEATURES)
    assert len({fact.name for fact in facts}) == len(facts)
    for fact in facts:
        assert fact.since is not None and fact.since >= (3, 18), fact.name
        assert fact.description.endswith(f" ({fact.since[0]}.{fact.since[1]})"), fact.name
        assert feature(fact.name) is fact


def test_every_attach_family_has_a_fact() -> None:
    assert [fact.name for fact in ATTACH_FEATURES] == [
        f"attach:{rung.name}" for rung in ladder.LADDER
    ]
    assert feature("attach:kprobe").config == ("KPROBES", "KPROBE_EVENTS", "BPF_EVENTS")


def test_the_two_release_checks_now_probed() -> None:
    assert feature("memcg_accounting").since == (5, 11)
    assert feature("perf_link").since == (5, 15)
