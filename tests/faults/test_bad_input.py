"""More than 10,000 generated bad records, mixed with 1,000 good points, through the real worker.

Seeded: each round of hypothesis draws and the shuffle have a fixed seed, so a failure replays exactly;
``tests/unit/reliability`` draws the same strategies with shrinking for a minimal failing record.

The records come from the hypothesis strategies of tests/unit/reliability (one defect each, with
the reason it must get). Each bad record must appear on the dead-letter topic with that reason and
its original bytes, each good point must be scored, and the worker must neither restart nor
crash its agent; its metrics must agree with the counts.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from tests.faults.pipeline_checks import only_channels, rows_of
from tests.unit.reliability.telemetry_strategies import Channel, Defect, Record, defects, interleave
from tmstream.ground.topic_reader import read_topic

pytestmark = pytest.mark.fault
D14 = Channel("D-14", "MSL", 55)
BAD, GOOD = 10_000, 1_000


def generated_plan() -> list[Defect | None]:
    """At least BAD defects from hypothesis (seeded rounds), with GOOD good points spread among them."""
    drawn: list[Defect] = []
    rounds = 0
    while len(drawn) < BAD * 1.1:  # some need more good points before them than were sent yet

        @seed(rounds)
        @settings(max_examples=100, database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(st.lists(defects(D14, frozenset({D14.name})), min_size=50, max_size=50))
        def collect(batch: list[Defect]) -> None:
            drawn.extend(batch)

        collect()
        rounds += 1
    plan: list[Defect | None] = [*drawn, *[None] * GOOD]
    head, tail = plan[:50], plan[50:]  # a few defects before the first good point, on purpose
    random.Random(14).shuffle(tail)
    return head + tail


def send(settings_, topic: str, records: list[Record]) -> list[int]:
    producer = KafkaProducer(
        **settings_.kafka.client_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=1_048_576,
        max_request_size=2_097_152,
        compression_type="lz4",
    )
    try:
        futures = [producer.send(topic, key=r.key, value=r.value) for r in records]
        producer.flush(timeout=120)
        return [future.get(timeout=60).offset for future in futures]
    finally:
        producer.close()


def test_every_bad_record_is_dead_lettered_and_every_good_one_scored(pipeline) -> None:
    only_channels(pipeline.folder / "config", pipeline.run_id, {D14.name: D14.spacecraft}, {D14.name: 55})
    config = pipeline.settings
    rows = rows_of(config, D14.name)
    records = interleave(generated_plan(), D14, lambda index: rows[index].tolist())
    bad = [r for r in records if r.reason]
    assert len(bad) >= BAD and len(records) - len(bad) == GOOD
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    pid = pipeline.workers["w1"].pid
    offsets = send(config, pipeline.topic(D14.name, D14.spacecraft), records)
    assert offsets == list(range(len(records)))

    pipeline.wait_for(
        lambda: pipeline.metric("w1", "tmstream_dead_letters_total") >= len(bad),
        240,
        f"{len(bad)} dead letters",
    )
    pipeline.wait_for(
        lambda: pipeline.metric("w1", "tmstream_points_scored_total") == GOOD - config.model.l_s,
        120,
        "scored",
    )
    letters = {
        int(dict(r.headers)["source_offset"]): (dict(r.headers)["reason"].decode(), r.key, r.value)
        for r in read_topic(config, config.kafka.deadletter_topic)
    }
    expected = {
        offset: (r.reason, r.key, r.value) for offset, r in zip(offsets, records, strict=True) if r.reason
    }
    wrong = [
        (o, expected[o][0], letters.get(o, ("missing",))[0])
        for o in expected
        if letters.get(o) != expected[o]
    ]
    assert not wrong, f"{len(wrong)} bad records mishandled, e.g. {wrong[:5]}"
    assert len(letters) == len(bad), "a good point was dead-lettered"
    by_reason = Counter(r.reason for r in bad)
    for reason, count in by_reason.items():
        assert pipeline.metric("w1", "tmstream_dead_letters_total", reason=reason) == count, reason
    assert pipeline.metric("w1", "tmstream_dead_letters_total") == len(bad)
    assert pipeline.metric("w1", "tmstream_points_consumed_total") == GOOD
    assert pipeline.metric("w1", "tmstream_points_scored_total") == GOOD - config.model.l_s
    assert pipeline.workers["w1"].poll() is None and pipeline.workers["w1"].pid == pid
    log = pipeline.log("w1")
    assert "Crashed" not in log and "Traceback" not in log
    print(f"bad-input: {len(bad)} bad ({dict(sorted(by_reason.items()))}), {GOOD} good, "
          f"{GOOD - config.model.l_s} scored")  # fmt: skip
