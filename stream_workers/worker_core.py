"""The worker's recovery protocol and channel lifecycle, without Faust or a Kafka client.

Exactly-once per sink on top of at-least-once consumption:
- each channel's stream state is snapshotted to a compacted topic every ``snapshot_every`` points
  and when its partition is revoked; a worker that takes a channel over restores the snapshot and
  re-reads the records between the snapshot and the first record delivered to it;
- records at or before a channel's last processed offset are redeliveries and are skipped;
- emissions re-derived after a restart are dropped by the idempotent sinks.

The Faust adapter (``app``) calls ``process``, ``assigned``, ``revoked``, ``close_idle`` and
``export_lag``; Kafka, the sinks and the metrics come in through ``ports``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from producers.channel_spec import ChannelSpec
from stream_workers.channel_stream import ChannelStream, SnapshotError
from stream_workers.events import AnomalyEvent
from stream_workers.ports import (
    ChannelStateSink,
    EventSink,
    MetricsPort,
    Offloader,
    Partition,
    ReconcilingSink,
    RecordRef,
    RecordSender,
    TopicReader,
)
from stream_workers.scoring import DeadLetter, StreamScorer

log = logging.getLogger(__name__)
Highwater = Callable[[Partition], int | None]
POSITION_HEADER = "position"  # topic|partition|offset of the last record a snapshot holds
WRITTEN_HEADER = "written_ms"  # the writer's wall clock
EMISSION_LOOKBACK_MS = 10 * 60 * 1000
DEADLETTER_MAX_BYTES = 900_000  # key and value: under the producer's 1 MiB request, with the headers
DEADLETTER_MAX_KEY_BYTES = 65_536


def _fitting(record: RecordRef, headers: dict[str, bytes]) -> tuple[bytes | None, bytes]:
    """The record's key and value for its dead letter, cut to ``DEADLETTER_MAX_BYTES``: a record
    near the broker's 1 MB limit plus the headers would not fit a request, the send would fail on
    every redelivery, and the poison record would stop its partition. A cut one says so in its
    headers (``truncated``, ``original_bytes``, ``sha256`` of the whole value)."""
    key, value = record.key, record.value if record.value is not None else b""
    if len(key or b"") + len(value) <= DEADLETTER_MAX_BYTES:
        return key, value
    headers["truncated"] = b"true"
    headers["original_bytes"] = str(len(value)).encode()
    headers["sha256"] = hashlib.sha256(value).hexdigest().encode()
    key = None if key is None else key[:DEADLETTER_MAX_KEY_BYTES]
    return key, value[: DEADLETTER_MAX_BYTES - len(key or b"")]


def _events_of(payloads: list[bytes]) -> list[AnomalyEvent]:
    events = []
    for payload in payloads:
        try:
            events.append(AnomalyEvent.from_bytes(payload))
        except ValueError:  # not one of ours (pydantic's ValidationError is a ValueError)
            continue
    return events


def _position(record: RecordRef) -> tuple[str, int, int] | None:
    for name, value in record.headers:
        if name == POSITION_HEADER:
            topic, _, rest = value.decode(errors="replace").rpartition("|")
            topic, _, partition = topic.rpartition("|")
            try:
                return topic, int(partition), int(rest)
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class CoreConfig:
    state_topic: str
    deadletter_topic: str
    snapshot_every: int
    idle_close_s: float


class EmissionLog(EventSink, Protocol):
    """A sink that must learn what predecessors emitted before this worker emits (the topic sink)."""

    def load(self, since_ms: int | None = None, each: Callable[[bytes], None] | None = None) -> int:
        """Read back the emissions written since ``since_ms`` (None: all; blocking), handing each
        record's value to ``each``; how many anomalies are known."""
        ...

    def forget_closed(self, channel: str, before_row: int, epoch: int = 0) -> None:
        """``channel`` was snapshotted: its anomalies ending before ``before_row`` of stream
        ``epoch``, and those of earlier epochs, cannot be re-derived any more."""
        ...


class WorkerCore:
    """One worker's channels: first sight (restore, catch-up), scoring, emission, snapshots, hand-over."""

    def __init__(
        self,
        scorer: StreamScorer,
        config: CoreConfig,
        *,
        sender: RecordSender,
        reader: TopicReader,
        emission_log: EmissionLog,
        sinks: Sequence[EventSink],
        channel_states: ChannelStateSink,
        channel_spec: Callable[[str], ChannelSpec | None],
        metrics: MetricsPort,
        offload: Offloader,
        clock: Callable[[], float] = time.time,
        fault_point: Callable[[str], None] = lambda point: None,
        check_lease: Callable[[], None] = lambda: None,
    ) -> None:
        self.scorer = scorer
        self.config = config
        self.sender = sender
        self.reader = reader
        self.emission_log = emission_log
        self.sinks = list(sinks)  # after the topic: the topic is what a successor reads back
        self.channel_states = channel_states
        self.channel_spec = channel_spec
        self.metrics = metrics
        self.offload = offload
        self.clock = clock
        self.fault_point = fault_point  # tmstream.ground.failpoints: where fault tests kill -9
        self.check_lease = check_lease  # raises before a write when the process may be a zombie (lease.py)
        self.reconciling: set[asyncio.Task[None]] = set()
        # channels whose series this worker exports but does not run (revoked, or an alarm restored
        # at assignment) until their first record here: spacecraft, partition. Their series go at an
        # assignment without that partition, however many rebalances they stayed here unseen.
        self.released: dict[str, tuple[str, Partition]] = {}
        self.released_partitions: set[Partition] = set()
        self.lock = asyncio.Lock()
        self.reloaded = asyncio.Event()  # set once assigned() has read the snapshots and emissions
        self.snapshots: dict[str, bytes] = {}
        self.owned: dict[str, Partition] = {}  # channels seen since their partition was assigned
        self.snapshot_index: dict[str, tuple[int, int]] = {}  # stream epoch and next row of the last
        self.positions: dict[Partition, int] = {}  # last offset processed per partition
        self.first_offsets: dict[Partition, int] = {}  # first record delivered per partition
        # revoked and not assigned back: their records still in Faust's buffers are the new
        # owner's (a partition never revoked, such as one just added, is always this worker's)
        self.gone: set[Partition] = set()

    async def process(self, records: Sequence[RecordRef]) -> None:
        """One micro-batch: accept every record, score, emit, update channel states, snapshot."""
        async with self._reloaded_and_locked():
            letters: list[DeadLetter] = []
            for record in records:
                tp = Partition(record.topic, record.partition)
                if tp in self.gone:
                    continue  # fetched before a revoke: the new owner scores it (see revoked)
                self.first_offsets.setdefault(tp, record.offset)
                letters += await self._first_sight(record)
                letter = self.scorer.accept(record)
                if letter is not None:
                    letters.append(letter)
                self.positions[tp] = record.offset
            await self._dead_letters(letters)
            await self._emit(await self.offload(self.scorer.score))
            self.check_lease()
            await self.channel_states.update_channels(self.scorer.take_latest().items())
            await self._snapshot_due()

    @contextlib.asynccontextmanager
    async def _reloaded_and_locked(self) -> AsyncIterator[None]:
        """The lock, taken while no rebalance is between its revoke and its assignment.

        Faust resumes new partitions before its on_partitions_assigned handlers finish: without the
        wait a channel would be restored without its snapshot, and emissions re-derived before the
        anomalies topic was read back would be sent twice. The wait is checked again under the
        lock: a batch that waited for it through a revoke (which holds it while it writes the
        hand-over snapshots) would otherwise take revoked channels back before the assignment says
        which partitions stayed, and a moved channel would run on beside its new owner.
        """
        while True:
            await self.reloaded.wait()
            await self.lock.acquire()
            if self.reloaded.is_set():
                break
            self.lock.release()
        try:
            yield
        finally:
            self.lock.release()

    async def _first_sight(self, record: RecordRef) -> list[DeadLetter]:
        """Before a channel's first record here: restore its snapshot and catch up.

        The catch-up stops at the partition's first record in this process: later records were
        delivered here, so none of them is this channel's. Where channels share a partition this
        keeps a fresh start from re-reading the partition from offset 0 once per channel.
        """
        channel = (record.key or b"").decode(errors="replace")
        if not channel or channel in self.owned:
            return []
        spec = self.channel_spec(channel)
        if spec is None or spec.topic != record.topic:
            return []  # a bad key (a dead letter): no stream to restore, and no re-read for it
        tp = Partition(record.topic, record.partition)
        start = 0
        stream = await self._restore(channel, spec, record)
        if stream is not None:
            self.scorer.streams[channel] = stream
            if (stream.topic, stream.partition) == (tp.topic, tp.partition):
                start = stream.last_offset + 1  # else the channel moved: its records here are all new
        self.owned[channel] = tp
        self.released.pop(channel, None)
        stop = min(record.offset, self.first_offsets.get(tp, record.offset))
        if stop <= start:
            return []
        missed = await asyncio.to_thread(self.reader.read_range, tp, start, stop)
        letters = []
        for old in missed:
            if old.key is None or old.key.decode(errors="replace") == channel:
                letter = self.scorer.accept(old)
                if letter is not None:
                    letters.append(letter)
        log.info("channel %s: restored at offset %d, caught up %d records", channel, start, len(missed))
        return letters

    async def _restore(self, channel: str, spec: ChannelSpec, first: RecordRef) -> ChannelStream | None:
        """The channel's snapshot, or None: a snapshot that cannot be used is counted and ignored,
        and the channel is rebuilt from its topic instead (the sinks drop what is re-derived).
        ``first``: the channel's first record delivered here (the partition reaches at least it)."""
        payload = self.snapshots.pop(channel, None)
        if payload is None:
            return None
        tp = Partition(first.topic, first.partition)
        try:
            stream = ChannelStream.restore(payload, self.scorer.params, channel, spec.features)
            same_partition = (stream.topic, stream.partition) == (tp.topic, tp.partition)
            if same_partition and stream.last_offset >= first.offset:  # ahead of the delivery: ask
                end = await asyncio.to_thread(self.reader.end_offset, tp)
                if stream.last_offset >= end:
                    raise SnapshotError(
                        "implausible", f"channel {channel}: snapshot at offset {stream.last_offset}, "
                        f"beyond the end of {tp.topic}[{tp.partition}] ({end})"
                    )  # fmt: skip
        except SnapshotError as exc:
            log.warning("channel %s: snapshot rejected (%s); rebuilding from the topic", channel, exc)
            self.metrics.snapshot_rejected(exc.reason)
            return None
        return stream

    async def _dead_letters(self, letters: list[DeadLetter]) -> None:
        pending: list[Awaitable[object]] = []
        for letter in letters:
            self.metrics.dead_letter(letter.reason)
            record = letter.record
            log.warning(
                "dead letter %s at %s[%d]@%d: %s",
                letter.reason,
                record.topic,
                record.partition,
                record.offset,
                letter.detail[:300],  # a garbage channel name can be 100 kB
            )
            headers = {
                "reason": letter.reason.encode(),
                "detail": letter.detail[:500].encode(),
                "source_topic": record.topic.encode(),
                "source_partition": str(record.partition).encode(),
                "source_offset": str(record.offset).encode(),
            }
            key, value = _fitting(record, headers)
            self.check_lease()
            pending.append(await self.sender.send(self.config.deadletter_topic, key, value, headers))
        for acked in pending:
            await acked

    async def _emit(self, events: list[AnomalyEvent]) -> None:
        for event in events:
            log.info("anomaly %s %s %s rows %d-%d score %.3f", event.status, event.channel, event.event_id,
                     event.start_index, event.end_index, event.score)  # fmt: skip
            self.check_lease()
            fresh = await self.emission_log.emit(event)
            if fresh:
                self.fault_point("emission.sent_to_topic")
            for sink in self.sinks:
                self.check_lease()
                await sink.emit(event)
            if fresh:
                self.fault_point("emission.sent_to_all")

    async def _snapshot_due(self) -> None:
        """Snapshot channels that advanced ``snapshot_every`` points since their last snapshot."""
        for channel, stream in list(self.scorer.streams.items()):
            epoch, row = self.snapshot_index.get(channel, (stream.epoch, 0))
            # a new epoch restarts the rows: snapshot it at once, not when it passes the old rows
            if epoch != stream.epoch or (stream.next_index or 0) - row >= self.config.snapshot_every:
                await self._snapshot(channel, stream)

    async def _snapshot(self, channel: str, stream: ChannelStream) -> None:
        payload = stream.snapshot()
        headers = {
            POSITION_HEADER: f"{stream.topic}|{stream.partition}|{stream.last_offset}".encode(),
            WRITTEN_HEADER: str(int(self.clock() * 1000)).encode(),
        }
        self.check_lease()
        acked = await self.sender.send(self.config.state_topic, channel.encode(), payload, headers)
        self.fault_point("snapshot.queued")
        await acked
        # an anomaly is closed within a threshold batch of its end row; a window is a wide margin
        margin = self.scorer.params.window_length
        self.emission_log.forget_closed(channel, (stream.next_index or 0) - margin, stream.epoch)
        self.snapshot_index[channel] = (stream.epoch, stream.next_index or 0)
        self.metrics.snapshot_written()

    async def assigned(self, partitions: int, assignment: Collection[Partition] | None = None) -> None:
        """Reload what predecessors left: channel snapshots and the emissions already sent.

        Emissions are read from the oldest snapshot of a channel on the topics of ``assignment``
        (this worker's partitions now; None: every channel) on, less ``EMISSION_LOOKBACK_MS`` for
        clock skew: what a restored channel re-derives was sent after its snapshot. With no such
        snapshot (a first start, a lost state topic) the whole topic is read.

        The series of channels and partitions revoked before and not assigned again go now: an
        eager rebalance revokes every partition and gives most back, and their counters must not
        restart; the ones that moved must leave this worker's /metrics, also a channel given back
        once and moved at a later rebalance before its next record reached this worker.
        """
        self.reloaded.clear()
        self.metrics.assigned(partitions)
        kept = set(assignment or ())
        self.gone = set() if assignment is None else (self.gone | self.released_partitions) - kept
        for channel, (spacecraft, tp) in list(self.released.items()):
            if tp not in kept:
                self.metrics.channel_forgotten(spacecraft, channel)
                del self.released[channel]
        for tp in self.released_partitions - kept:
            self.metrics.partition_forgotten(tp)
        self.released_partitions.clear()
        topics = None if assignment is None else {tp.topic for tp in assignment}
        snapshots, written = await asyncio.to_thread(self._read_snapshots)
        relevant = [channel for channel in snapshots if self._on_topics(channel, topics)]
        since = None
        if relevant and all(channel in written for channel in relevant):
            since = min(written[channel] for channel in relevant) - EMISSION_LOOKBACK_MS
        reconciling = [sink for sink in self.sinks if isinstance(sink, ReconcilingSink)]
        read_back: list[bytes] = []
        collect = read_back.append if reconciling else None
        emitted = await asyncio.to_thread(self.emission_log.load, since, collect)
        self.snapshots = snapshots
        self.released.update(await asyncio.to_thread(self._export_restored_alarms, assignment))
        self.reloaded.set()
        log.info("assigned %d partitions; %d channel snapshots, %d anomalies known",
                 partitions, len(self.snapshots), emitted)  # fmt: skip
        if reconciling and read_back:
            events = await asyncio.to_thread(_events_of, read_back)  # 100,000 may take seconds
            for sink in reconciling:  # beside the scoring: a view catching up must not hold alerts
                self.reconciling.add(
                    task := asyncio.get_running_loop().create_task(self._reconcile(sink, events))
                )
                task.add_done_callback(self.reconciling.discard)

    async def _reconcile(self, sink: ReconcilingSink, events: list[AnomalyEvent]) -> None:
        try:
            written = await sink.reconcile(events)
        except Exception:
            log.exception("reconciling %s from the anomalies topic failed", type(sink).__name__)
            return
        if written:
            log.warning("%s lacked %d of %d emissions read back from the topic; written now",
                        type(sink).__name__, written, len(events))  # fmt: skip

    def _export_restored_alarms(
        self, assignment: Collection[Partition] | None
    ) -> dict[str, tuple[str, Partition]]:
        """The alarm state of the snapshotted channels on ``assignment`` that do not run here yet;
        returns those channels (spacecraft, partition): their series are this worker's until they
        run here or their partition leaves.

        A channel that moved in alarm stays in alarm on its new owner from the assignment on, not
        from its next record: the old owner drops its series, and a silent channel would otherwise
        resolve the critical alert and raise it again when it speaks.
        """
        topics = None if assignment is None else {tp.topic for tp in assignment}
        exported = {}
        for channel, payload in self.snapshots.items():
            spec = self.channel_spec(channel)
            if spec is None or channel in self.owned or (topics is not None and spec.topic not in topics):
                continue  # decoding a snapshot costs: only those of channels that may run here
            try:
                stream = ChannelStream.restore(payload, self.scorer.params, channel, spec.features)
            except SnapshotError:
                continue  # counted when the channel's first record restores it
            held = Partition(stream.topic, stream.partition)
            if assignment is None or held in assignment:
                self.metrics.alarm_restored(stream.spacecraft, channel, stream.in_alarm)
                exported[channel] = (stream.spacecraft, held)
        return exported

    def _on_topics(self, channel: str, topics: Collection[str] | None) -> bool:
        spec = self.channel_spec(channel)
        return spec is not None and (topics is None or spec.topic in topics)

    def _read_snapshots(self) -> tuple[dict[str, bytes], dict[str, int]]:
        """Each channel's most advanced snapshot, and when it was written (where the header says).

        On one partition the highest offset wins, not the last written, so a zombie (a paused
        worker whose channels moved on) cannot set a channel back with a late write; a snapshot
        from another partition (the channel moved) wins by being later. Every snapshot is a
        deterministic function of the records before it, so an older one that compaction keeps
        only costs a longer catch-up."""
        latest: dict[str, tuple[tuple[str, int, int] | None, RecordRef]] = {}
        for record in self.reader.read_topic(self.config.state_topic):
            if record.key is None:
                continue
            channel = record.key.decode(errors="replace")
            if record.value is None:  # a tombstone: the channel's stream was reset
                latest.pop(channel, None)
                continue
            position = _position(record)
            known = latest.get(channel, (None, record))[0]
            if known is not None and position is not None and known[:2] == position[:2] and known > position:
                continue  # a late write from behind: the more advanced snapshot stands
            latest[channel] = (position, record)
        payloads = {c: record.value for c, (_, record) in latest.items() if record.value is not None}
        written = {}
        for channel, (_, record) in latest.items():
            stamp = dict(record.headers).get(WRITTEN_HEADER, b"")
            if stamp.isdigit():
                written[channel] = int(stamp)
        return payloads, written

    async def revoked(self, partitions: Iterable[Partition]) -> None:
        """Hand revoked channels over: snapshot them now and forget them (their series at the next
        assignment, unless it gives them back).

        Faust goes on delivering records of revoked partitions that it had fetched. ``process``
        waits for the assignment that follows (an eager rebalance revokes everything and gives
        most back: those records are not fetched again, so they must be scored here), then skips
        the records of partitions that did not come back. Scored here they would bring the channel
        back to this worker beside its new owner: emissions twice, a snapshot written behind the
        owner's, and a channel this worker keeps asking the consumer about (aiokafka asserts on a
        partition it does not hold: the idle-close timer crashed the worker that way)."""
        revoked = set(partitions)
        async with self.lock:
            for channel, tp in list(self.owned.items()):
                if tp not in revoked:
                    continue
                stream = self.scorer.forget(channel)
                if stream is not None:
                    await self._snapshot(channel, stream)
                    self.released[channel] = (stream.spacecraft, tp)
                del self.owned[channel]
                self.snapshot_index.pop(channel, None)
            for tp in revoked:
                self.first_offsets.pop(tp, None)
                self.positions.pop(tp, None)
                self.released_partitions.add(tp)
            self.reloaded.clear()  # until the assignment that follows says which partitions stay

    def _busy_channels(self, highwater: Highwater) -> frozenset[str]:
        """Channels whose partition still has records beyond what this worker processed."""
        busy = set()
        for channel, tp in self.owned.items():
            end = highwater(tp)
            if end is None or self.positions.get(tp, -1) + 1 < end:
                busy.add(channel)
        return frozenset(busy)

    async def close_idle(self, highwater: Highwater) -> None:
        """Close the anomalies of channels silent for ``idle_close_s`` with nothing left to read."""
        async with self.lock:
            events = self.scorer.close_idle(self.config.idle_close_s, self._busy_channels(highwater))
            await self._emit(events)
            for channel in {event.channel for event in events}:
                await self._snapshot(channel, self.scorer.streams[channel])

    def export_lag(self, assignment: Iterable[Partition], highwater: Highwater) -> None:
        for tp in assignment:
            end = highwater(tp)
            if end is not None:
                self.metrics.lag(tp, max(0, end - (self.positions.get(tp, -1) + 1)))
