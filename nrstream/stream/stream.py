"""The endless stream: ``B`` independent lanes of ``gap, sample, gap, sample, ...``.

Lane ``b``'s ``k``-th *event* is a noise gap followed by one sample. Every property of an
event (gap length, which sample, where its noise starts) is drawn by hashing
``(seed, lane, k)`` (:mod:`nrstream.stream.counter_rng`), so the stream is a pure function of its
seed: any chunk size, any device, the same frames. A chunk is assembled by indexing —
``searchsorted`` over the cumulative event lengths — with no per-frame Python loop.

Samples are drawn without replacement: the ``j``-th draw of the whole stream
(``j = k * B + b``) is position ``j mod N`` of a fresh permutation per pass over the
bank, so ``ceil(N / B)`` samples per lane cover the split exactly once.

Speed (``benchmarks/throughput.py``, case 5): events are drawn in blocks of many chunks and
kept (an event is hashed once, not once per chunk that might reach it); each event is two
*segments*, its gap and its sample, laid out as rows of one table (the bank's frames, then
the noise source's :meth:`~nrstream.stream.noise.NoiseSource.segment_table`), so a frame's row is
``segment offset + frame`` and ``x`` is one row gather. The passes (epochs) a block can
reach are bounded on the host from the frames read and an asynchronous snapshot of the
lanes' event counters, so reading a chunk never waits for the device.

With a :class:`~nrstream.stream.schedule.Schedule` the stream is non-stationary: each event
(gap and sample) belongs to the phase of the frame it begins at (one more hashed draw per
event decides a gradual switch), its gap is drawn from that phase's gap range and its sample
from that phase's classes and speakers (the stream's per-pass permutation restricted to them,
so still without replacement); on a scene, its SNR range, background and level are the
phase's too (:mod:`nrstream.stream.scene`). An event's begin depends on the lengths before
it, which depend on their phases: a block's phases are found by iterating "phases -> lengths
-> begins -> phases" to its fixed point (the first wrong event is right after one more round;
in practice two or three rounds), all vectorised. ``Chunk.phase`` says each frame's phase.

With a :class:`~nrstream.stream.scene.Scene` the stream is an acoustic scene: the same events,
each sample cut to its voiced extent plus a tail, mixed into a background that runs under
everything at an SNR drawn per sample (one more hashed draw per event); without one it is
the paper-style stream, byte for byte as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from nrstream.stream import counter_rng
from nrstream.stream.bank import SampleBank
from nrstream.stream.noise import GaussianNoise, NoiseSource
from nrstream.stream.scene import Scene
from nrstream.stream.schedule import Schedule

__all__ = ["GapLengths", "Chunk", "Stream"]

# salts that keep the independent draws of one event apart
_GAP, _NOISE, _ORDER, _SNR, _LEVEL, _BACKGROUND, _PHASE, _DELAY = 1, 2, 3, 4, 5, 6, 7, 8


@dataclass(frozen=True)
class GapLengths:
    """Noise gap lengths in frames, uniform on ``[min, max]`` (``0`` allowed)."""

    min: int = 0
    max: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and isinstance(self.max, int)) or not 0 <= self.min <= self.max:
            raise ValueError(f"gap lengths need integers 0 <= min <= max, got min={self.min!r}, max={self.max!r}")


@dataclass
class Chunk:
    """``T`` consecutive frames of every lane.

    Attributes:
        x: ``[B, T, F]`` float32 features.
        label: ``[B, T]`` int64, the class on sample frames, ``-1`` on noise frames.
        mask: ``[B, T]`` bool, ``m_t``: true on informative (sample) frames.
        start: ``[B, T]`` bool, first frame of a sample (where an oracle resets).
        end: ``[B, T]`` bool, last frame of a sample: the decision frame that is scored.
        sample_index: ``[B, T]`` int64, samples this lane has started so far (1 on its
            first sample, 0 on the gap before it).
        sample_id: ``[B, T]`` int64, the sample's row in its bank, ``-1`` on noise.
        phase: ``[B, T]`` int64, the schedule phase of the frame's event (its gap and sample);
            ``0`` everywhere on a stationary stream. For metrics: envs do not show it to agents.
    """

    x: torch.Tensor
    label: torch.Tensor
    mask: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    sample_index: torch.Tensor
    sample_id: torch.Tensor
    phase: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.phase is None:  # built by hand or from env info: a stationary stream
            self.phase = torch.zeros_like(self.label)

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def length(self) -> int:
        return self.x.shape[1]

    def to(self, device: torch.device | str) -> Chunk:
        return Chunk(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, index) -> Chunk:
        """Slice lanes and frames alike, e.g. ``chunk[:, 10:20]``."""
        return Chunk(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(chunks: list[Chunk], dim: int = 1) -> Chunk:
        return Chunk(**{f.name: torch.cat([getattr(c, f.name) for c in chunks], dim) for f in fields(Chunk)})

    @classmethod
    def from_info(cls, obs, info: dict) -> Chunk:
        """The chunk behind a vector env's ``(obs, info)``, e.g. to feed a loss plugin.

        ``obs [B, T, F]`` with info values ``[B, T]``, or ``obs [B, F]`` with ``[B]`` (one
        frame per step, ``-v1`` ids): a frame axis is added. Tensors or numpy arrays (on the
        observation's device). ``sample_id`` is ``-1`` where ``info`` carries none.
        """
        x = torch.as_tensor(obs)
        single_frame = x.dim() == 2

        def field(name: str) -> torch.Tensor:
            value = torch.as_tensor(info[name], device=x.device)
            return value[:, None] if single_frame else value

        label = field("label")
        sample_id = field("sample_id") if "sample_id" in info else torch.full_like(label, -1)
        return cls(
            x=x[:, None] if single_frame else x,
            label=label,
            mask=field("mask"),
            start=field("start"),
            end=field("end"),
            sample_index=field("sample_index"),
            sample_id=sample_id,
            phase=field("phase") if "phase" in info else None,
        )


class Stream:
    """An endless, batched stream over one sample bank.

    Args:
        bank: the split to draw samples from; the stream lives on its device.
        noise: fills the gaps; may be ``None`` only when ``gaps.max == 0``.
        num_lanes: ``B``, independent lanes read in lockstep.
        gaps: gap length distribution.
        seed: the whole stream is a function of ``(seed, B)`` and its inputs.
        shuffle: draw samples in a fresh random order per pass (else bank order).
        scene: make it an acoustic scene (:mod:`nrstream.stream.scene`): the scene's background runs
            under everything (``noise`` is then unused), samples span their voiced part plus
            the tail and are mixed in at a drawn SNR. ``None``: the paper-style stream.
        schedule: make it non-stationary (:mod:`nrstream.stream.schedule`); a phase's ``gap_min``
            and ``gap_max`` replace ``gaps``', its ``noise_scale`` rescales Gaussian gap noise
            around its mean (paper-style) and its scene settings are the ``scene``'s per-phase
            tables. ``None``: one distribution forever, byte for byte as before.
        speakers: ``(names, [N] int64)``: the data set's speakers and, per bank sample, an
            index into them (``info["speakers"]``, ``info["sample_speaker"][split]``); needed
            only by a schedule whose phases list ``speakers``.

    Example::

        >>> chunk = stream.next_chunk(100)
        >>> chunk.x.shape                    # (B, 100, F)
    """

    #: frames a block of drawn events covers at least (more if a chunk needs more)
    BLOCK_FRAMES = 2048
    #: at most this many events per block over all lanes (bounds the block's memory)
    BLOCK_EVENTS = 1 << 20
    #: banks up to this size are copied into the stream's row table (one gather per chunk);
    #: larger ones are gathered from in place, with the noise gathered apart and selected
    TABLE_COPY_BYTES = 1 << 29

    def __init__(
        self,
        bank: SampleBank,
        noise: NoiseSource | None,
        num_lanes: int,
        gaps: GapLengths = GapLengths(),
        seed: int = 0,
        shuffle: bool = True,
        scene: Scene | None = None,
        schedule: Schedule | None = None,
        speakers: tuple[Sequence[str], torch.Tensor] | None = None,
    ) -> None:
        if num_lanes < 1:
            raise ValueError(f"num_lanes must be >= 1, got {num_lanes!r}")
        self.schedule = schedule
        phase_gaps = [(gaps.min, gaps.max)]
        if schedule is not None:
            phase_gaps = [
                (p.stream.get("gap_min", gaps.min), p.stream.get("gap_max", gaps.max)) for p in schedule.phases
            ]
        self._gap_limit = max(high for _, high in phase_gaps)  # == gaps.max on a stationary stream
        if scene is not None:
            noise = None  # the gaps are the scene's background
        elif noise is None and self._gap_limit > 0:
            raise ValueError("a stream with noise gaps needs a noise source")
        if noise is not None and noise.feature_size != bank.feature_size:
            raise ValueError(f"noise has {noise.feature_size} features, the bank {bank.feature_size}")
        self.bank, self.noise, self.gaps, self.scene = bank, noise, gaps, scene
        self.num_lanes, self.seed, self.shuffle = int(num_lanes), int(seed), bool(shuffle)
        self.device = bank.device
        self._lanes = torch.arange(self.num_lanes, device=self.device)
        # frames of each sample the stream plays, and the first of them
        self._lengths = bank.lengths if scene is None else scene.kept
        self._first_frame = None if scene is None else scene.first
        self._min_event = min(low for low, _ in phase_gaps) + int(self._lengths.min())
        self._max_event = self._gap_limit + int(self._lengths.max())
        self._orders: dict[int, torch.Tensor] = {}
        self._orders_cat: tuple[int, int, torch.Tensor] | None = None
        # hash states after (seed, salt, lane): an event's draw then absorbs only its index
        self._gap_state = counter_rng.absorb(counter_rng.seed_state(self.seed), _GAP, self._lanes)
        self._noise_state = counter_rng.absorb(counter_rng.seed_state(self.seed), _NOISE, self._lanes)
        if scene is not None:
            start = counter_rng.seed_state(self.seed)
            self._snr_state = counter_rng.absorb(start, _SNR, self._lanes)
            self._background_state = counter_rng.absorb(start, _BACKGROUND, self._lanes)
            level = counter_rng.absorb(start, _LEVEL, self._lanes, 0).double() / 2.0**32
            self._level = scene.levels(level)  # [B, P]: P == 1 unless phases change level_db
            self._background_cache: dict[int, torch.Tensor] = {}
        if schedule is not None:
            self._setup_schedule(schedule, phase_gaps, speakers)
        self._build_table()
        # where the lanes stand: event `_first` is column 0 of the block, `_pos` the frame in block coordinates
        self._first = torch.zeros(self.num_lanes, dtype=torch.long, device=self.device)
        self._pos = torch.zeros(self.num_lanes, dtype=torch.long, device=self.device)
        self._block: dict[str, torch.Tensor] | None = None
        self._covered = self._since = 0
        self.frames_read = 0
        #: frames a block of drawn events covers at least: a speed setting, the output never depends
        #: on it (a reader that stops after one short chunk, as the scoring of short streams does,
        #: sets it to that chunk's length, so it does not draw 2048 frames' events per lane for 58)
        self.block_frames = self.BLOCK_FRAMES
        # (frames_read, min event, max event) known exactly, and snapshots still on their way
        self._known = (0, 0, 0)
        self._pending: list[tuple[int, torch.Tensor, object]] = []

    def __repr__(self) -> str:
        return (
            f"Stream(num_lanes={self.num_lanes}, samples={len(self.bank)}, gaps=[{self.gaps.min}, {self.gaps.max}], "
            f"seed={self.seed}, device={self.device}, frames_read={self.frames_read})"
        )

    @property
    def feature_size(self) -> int:
        return self.bank.feature_size

    @property
    def num_classes(self) -> int:
        return self.bank.num_classes

    # -- where the lanes stand -------------------------------------------------------

    @property
    def event(self) -> torch.Tensor:
        """``[B]`` int64: the event (gap + sample) each lane is in."""
        if self._block is None:
            return self._first
        return self._first + torch.searchsorted(self._block["ends"], self._pos[:, None], right=True).squeeze(1)

    @property
    def offset(self) -> torch.Tensor:
        """``[B]`` int64: frames each lane has read of its current event."""
        if self._block is None:
            return self._pos
        column = torch.searchsorted(self._block["ends"], self._pos[:, None], right=True)
        return self._pos - self._block["begins"].gather(1, column).squeeze(1)

    def state_dict(self) -> dict:
        """Where every lane stands; with the constructor arguments, enough to resume exactly."""
        return {"event": self.event.cpu(), "offset": self.offset.cpu(), "frames_read": self.frames_read}

    def load_state_dict(self, state: dict) -> None:
        event, offset = state["event"].long(), state["offset"].long()
        self._first, self._pos = event.to(self.device), offset.to(self.device)
        self._block, self._covered, self._since = None, 0, 0
        self.frames_read = int(state["frames_read"])
        low, high = torch.aminmax(event.cpu())  # the saved state is on the CPU: no device sync
        self._known, self._pending = (self.frames_read, int(low), int(high)), []

    # -- the row table -----------------------------------------------------------------

    def _build_table(self) -> None:
        """Rows ``x`` is gathered from: the bank's frames, then the noise's segment table."""
        features = self.bank.features
        self._bank_rows = features.reshape(-1, features.shape[2])
        self._noise_base = self._bank_rows.shape[0]
        self._noise_rows = None
        if self.scene is not None:  # the scene holds its own tables, in the linear domain
            self._table = None
            return
        if self.noise is None or self._gap_limit == 0:
            self._table = self._bank_rows
            return
        noise_rows = self.noise.segment_table(self._gap_limit).to(self.device, torch.float32)
        if features.numel() * features.element_size() <= self.TABLE_COPY_BYTES:
            self._table = torch.cat([self._bank_rows, noise_rows])
        else:
            self._table, self._noise_rows = None, noise_rows

    # -- sample order ----------------------------------------------------------------

    def _orders_for(self, epochs: range) -> torch.Tensor:
        """``[len(epochs) * N]``: the sample order of each pass, one after another.

        The orders of new passes are drawn together (one hash and one row-wise sort for
        all of them): a small bank with many lanes starts a new pass every few events.
        """
        n = len(self.bank)
        new = [e for e in epochs if e not in self._orders]
        if new:
            ids = torch.arange(n, device=self.device)
            if self.shuffle:
                keys = counter_rng.hash32(self.seed, _ORDER, torch.tensor(new, device=self.device)[:, None], ids)
                orders = torch.argsort(keys, dim=1, stable=True)
            else:
                orders = ids.expand(len(new), n)
            self._orders.update(zip(new, orders, strict=True))
        return torch.cat([self._orders[e] for e in epochs])

    def _event_bounds(self) -> tuple[int, int]:
        """Host-side bounds on every lane's event index now, without waiting for the device."""
        while self._pending:
            frames, values, done = self._pending[0]
            if done is not None and not done.query() and len(self._pending) < 4:
                break
            if done is not None:
                done.synchronize()  # only when 4 snapshots are pending: the device is far behind
            self._pending.pop(0)
            self._known = (frames, int(values[0]), int(values[1]))
        frames, low, high = self._known
        since = self.frames_read - frames
        # a lane completes at least since // max_event and at most (max_event - 1 + since) // min_event events
        return low + since // self._max_event, high + (self._max_event - 1 + since) // max(self._min_event, 1)

    def _snapshot(self, event: torch.Tensor) -> None:
        """Start copying ``event``'s min and max to the host; :meth:`_event_bounds` uses them once there."""
        values = torch.stack(torch.aminmax(event))
        if values.device.type == "cuda":
            host = torch.empty(2, dtype=torch.long, pin_memory=True)
            host.copy_(values, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._pending.append((self.frames_read, host, done))
        else:
            self._pending.append((self.frames_read, values, None))

    def _sample_ids(self, draw: torch.Tensor, low_event: int, high_event: int) -> torch.Tensor:
        """Sample rows of the draws ``draw`` (``[B, K]``), all of events in ``[low_event, high_event]``."""
        n = len(self.bank)
        first = low_event * self.num_lanes // n
        last = (high_event * self.num_lanes + self.num_lanes - 1) // n
        for old in [e for e in self._orders if e < first]:
            del self._orders[old]
        if self._orders_cat is None or self._orders_cat[:2] != (first, last):
            self._orders_cat = (first, last, self._orders_for(range(first, last + 1)))
        epoch, index = draw // n, draw % n
        return self._orders_cat[2][(epoch - first) * n + index]

    # -- a schedule of phases (nrstream.stream.schedule) --------------------------------------

    def _setup_schedule(
        self,
        schedule: Schedule,
        phase_gaps: list[tuple[int, int]],
        speakers: tuple[Sequence[str], torch.Tensor] | None = None,
    ) -> None:
        """Per-phase tables on the device: clock starts, blends, gap ranges, tasks and their samples."""
        device = self.device
        self._starts = torch.tensor(schedule.starts, device=device)
        self._blends = torch.tensor([p.blend for p in schedule.phases], device=device)
        self._gap_low = torch.tensor([low for low, _ in phase_gaps], device=device)
        self._gap_high = torch.tensor([high for _, high in phase_gaps], device=device)
        self._task_of = torch.tensor(schedule.task_of, device=device)
        classes = schedule.class_indices(self.bank.class_names)  # ScheduleError names schedule[i].classes
        voices = schedule.speaker_indices(None if speakers is None else list(speakers[0]))
        labels, ids = self.bank.labels, torch.arange(len(self.bank), device=device)
        self._task_samples: list[torch.Tensor] = []
        for task in range(schedule.num_tasks):
            i = schedule.task_of.index(task)
            wanted, spoken_by = classes[i], voices[i]
            if wanted is None and spoken_by is None:
                self._task_samples.append(ids)
                continue
            keep = torch.ones_like(ids, dtype=torch.bool)
            if wanted is not None:
                keep &= torch.isin(labels, torch.tensor(wanted, device=device))
            if spoken_by is not None:
                sample_speaker = torch.as_tensor(speakers[1], device=device)
                if sample_speaker.shape != ids.shape:
                    raise ValueError(f"speakers: {len(sample_speaker)} entries for a bank of {len(ids)} samples")
                keep &= torch.isin(sample_speaker, torch.tensor(spoken_by, device=device))
            rows = ids[keep]
            if len(rows) == 0:
                phase = schedule.phases[i]
                if spoken_by is None:
                    raise ValueError(f"schedule[{i}].classes: the split has no sample of {phase.classes}")
                of = f"classes {list(phase.classes)} " if wanted is not None else ""
                raise ValueError(
                    f"schedule[{i}].speakers: the split has no sample {of}by speakers {list(phase.speakers)}"
                )
            self._task_samples.append(rows)
        self._task_orders: list[dict[int, torch.Tensor]] = [{} for _ in self._task_samples]
        start = counter_rng.seed_state(self.seed)
        self._phase_state = counter_rng.absorb(start, _PHASE, self._lanes)
        if schedule.lanes == "independent":  # lane b's clock starts d_b ~ U[0, frames of phase 0] late
            delay = counter_rng.absorb(start, _DELAY, self._lanes, 0)
            self._delay = counter_rng.from_hash(delay, 0, schedule.phases[0].frames)
        else:
            self._delay = torch.zeros_like(self._lanes)
        scales = [p.stream.get("noise_scale") for p in schedule.phases]
        self._noise_ratio = None
        if self.scene is None and any(v is not None for v in scales):  # a scene's is its background's
            if not isinstance(self.noise, GaussianNoise) or self.noise.scale <= 0:
                raise ValueError("a phase's noise_scale rescales Gaussian gap noise, which needs noise_scale > 0")
            base = self.noise.scale
            self._noise_ratio = torch.tensor([1.0 if v is None else v / base for v in scales], device=device)
            self._noise_mean = self.noise.mean.to(device)

    def phase_of(self, clock: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """Phases of events that begin at schedule ``clock`` (int64), given their blend draws ``uniform`` in [0, 1)."""
        schedule = self.schedule
        c = clock.clamp_min(0)
        if schedule.repeat:
            c = c % schedule.total_frames
        index = torch.searchsorted(self._starts, c, right=True) - 1
        within, blend = c - self._starts[index], self._blends[index]
        new = torch.where(within < blend, within.double() / blend.clamp_min(1), 1.0)
        before = torch.where(index > 0, index - 1, len(schedule.phases) - 1)
        return torch.where(uniform < new, index, before)

    def _scheduled_events(
        self, k: torch.Tensor, offset: torch.Tensor, low_event: int, high_event: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gap lengths, sample rows and phases (each ``[B, K]``) of events ``k`` (column 0: each lane's current event).

        Each event's phase is that of the frame it begins at, which depends on the lengths
        before it: iterated to the fixed point (round ``r`` has at least its first ``r``
        events right, so ``K + 1`` rounds always suffice; a switch costs one more round).
        """
        gap_key = counter_rng.absorb(self._gap_state[:, None], k)
        uniform = counter_rng.absorb(self._phase_state[:, None], k).double() / 2.0**32
        draw = k * self.num_lanes + self._lanes[:, None]
        clock = (self.frames_read - offset - self._delay)[:, None]  # schedule clock where column 0 began
        phase = self.phase_of(clock.expand_as(k), uniform)
        for _ in range(k.shape[1] + 1):
            gap = counter_rng.from_hash(gap_key, self._gap_low[phase], self._gap_high[phase])
            sid = self._task_sample_ids(draw, self._task_of[phase], low_event, high_event)
            length = gap + self._lengths[sid]
            begins = torch.cumsum(length, 1) - length
            settled = self.phase_of(clock + begins, uniform)
            if torch.equal(settled, phase):
                break
            phase = settled
        return gap, sid, phase

    def _task_sample_ids(self, draw: torch.Tensor, task: torch.Tensor, low_event: int, high_event: int) -> torch.Tensor:
        """Sample rows of draws ``draw`` (``[B, K]``) from each one's task: its samples' permutation per pass.

        Task ``t``'s pass ``e`` orders its samples as the stream's hash of ``(e, row)`` sorts
        them: the stationary stream's permutation restricted to the task's classes.
        """
        out = torch.zeros_like(draw)
        for t, rows in enumerate(self._task_samples):
            n = len(rows)
            first = low_event * self.num_lanes // n
            last = (high_event * self.num_lanes + self.num_lanes - 1) // n
            cache = self._task_orders[t]
            for old in [e for e in cache if e < first]:
                del cache[old]
            new = [e for e in range(first, last + 1) if e not in cache]
            if new:
                if self.shuffle:
                    keys = counter_rng.hash32(self.seed, _ORDER, torch.tensor(new, device=self.device)[:, None], rows)
                    orders = rows[torch.argsort(keys, dim=1, stable=True)]
                else:
                    orders = rows.expand(len(new), n)
                cache.update(zip(new, orders, strict=True))
            table = torch.cat([cache[e] for e in range(first, last + 1)])
            index = ((draw // n - first) * n + draw % n).clamp(0, len(table) - 1)
            out = torch.where(task == t, table[index], out)
        return out

    # -- blocks of events --------------------------------------------------------------

    def _refill(self, length: int) -> None:
        """Draw the events of the next block, starting at each lane's current event."""
        event, offset = self.event, self.offset
        self._snapshot(event)
        low, high = self._event_bounds()
        step = max(self._min_event, 1)
        wanted = max(length, self.block_frames)
        num_events = max(
            math.ceil(length / step) + 1, min(math.ceil(wanted / step) + 1, self.BLOCK_EVENTS // self.num_lanes)
        )
        # a block covers (num_events - 1) * min_event frames past the lane's position at least
        self._covered, self._since = (num_events - 1) * step, 0

        lane = self._lanes[:, None]
        k = event[:, None] + torch.arange(num_events, device=self.device)
        phase = None
        if self.schedule is None:
            gap = counter_rng.from_hash(counter_rng.absorb(self._gap_state[:, None], k), self.gaps.min, self.gaps.max)
            sid = self._sample_ids(k * self.num_lanes + lane, low, high + num_events - 1)
        else:
            gap, sid, phase = self._scheduled_events(k, offset, low, high + num_events - 1)
        sample_len = self._lengths[sid]
        ends = torch.cumsum(gap + sample_len, dim=1)
        begins = ends - gap - sample_len
        sample_begins = begins + gap

        # per segment (gap 2c, sample 2c + 1): where it ends, its row offset, and its fields
        def interleave(on_gap: torch.Tensor | int, on_sample: torch.Tensor) -> torch.Tensor:
            return torch.stack(torch.broadcast_tensors(torch.as_tensor(on_gap, device=self.device), on_sample), 2).view(
                self.num_lanes, 2 * num_events
            )

        sample_row = sid * self.bank.features.shape[1] - sample_begins
        if self.noise is not None and self._gap_limit > 0:
            key = counter_rng.absorb(self._noise_state[:, None], k)
            noise_row = self._noise_base + self.noise.segment_start(key, self._gap_limit) - begins
        else:
            noise_row = torch.zeros_like(begins)
        never = torch.full_like(begins, -1)
        extra = {}
        if self.scene is not None:
            sample_row = sample_row + self._first_frame[sid]
            gain = self._scene_gains(k, sid, sample_begins - offset[:, None], phase)
            extra["gain"] = interleave(torch.zeros((), device=self.device), gain)
        if phase is not None:
            extra["phase"] = interleave(phase, phase)
            if self._noise_ratio is not None:
                extra["scale"] = interleave(self._noise_ratio[phase], torch.ones_like(begins, dtype=torch.float32))
        self._block = {
            "ends": ends,
            "begins": begins,
            "segment_ends": interleave(sample_begins, ends),
            "row": interleave(noise_row, sample_row),
            "label": interleave(never, self.bank.labels[sid]),
            "sample_id": interleave(never, sid),
            "sample_index": interleave(k, k + 1),
            "mask": interleave(torch.zeros_like(begins, dtype=torch.bool), torch.ones_like(begins, dtype=torch.bool)),
            "first": interleave(never, sample_begins),
            "last": interleave(never, ends - 1),
            **extra,
        }
        self._first, self._pos = event, offset

    def _scene_gains(
        self, k: torch.Tensor, sid: torch.Tensor, ahead: torch.Tensor, phase: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, K]`` linear gains of the samples of events ``k``, which start ``ahead`` frames from now.

        ``phase`` (``[B, K]``, scheduled streams): each event's phase, whose SNR range the draw
        maps into and whose background the SNR is measured against (over the voiced frames).
        """
        scene, size = self.scene, self.scene.segment
        start = self.frames_read + ahead  # absolute frame of each sample's first frame
        segment = torch.div(start, size, rounding_mode="floor")
        source = None if phase is None or len(scene.backgrounds) == 1 else scene.phase_background[phase][None]
        rows = [self._pick(self._background_starts(segment + i), source) for i in (0, 1)]
        power = scene.window_power(rows, start, scene.voiced[sid])
        uniform = counter_rng.absorb(self._snr_state[:, None], k).double() / 2.0**32
        return scene.gains(uniform, sid, power, phase)

    @staticmethod
    def _pick(rows: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        """``rows [S, ...]`` (one per background source) → ``[...]``, source ``source[0]`` (``None``: the only one)."""
        return rows[0] if source is None else rows.gather(0, source).squeeze(0)

    def _background_starts(self, segment: torch.Tensor) -> torch.Tensor:
        """``[S, B, ...]``: per background source, the row where lane ``b``'s segment ``segment[b]`` begins."""
        state = self._background_state.view(-1, *([1] * (segment.dim() - 1)))
        key = counter_rng.absorb(state, segment)
        return self.scene.background_starts(key)

    def next_chunk(self, length: int) -> Chunk:
        """The next ``length`` frames of every lane; lanes keep their place across calls."""
        if length < 1:
            raise ValueError(f"chunk length must be >= 1, got {length!r}")
        if self._block is None or self._since + length > self._covered:
            self._refill(length)
        block = self._block
        frame = self._pos[:, None] + torch.arange(length, device=self.device)
        segment = self._segments(length)
        row = block["row"].gather(1, segment) + frame
        mask = block["mask"].gather(1, segment)
        phase = block["phase"].gather(1, segment) if "phase" in block else None
        if self.scene is None:
            x = self._rows(row, mask)
        else:
            gain = block["gain"].gather(1, segment)  # 0 on gaps, whose sample row is then any valid one
            level = self._level if self._level.shape[1] == 1 else self._level.gather(1, phase)  # [B, 1] or [B, T]
            x = self.scene.mix(torch.where(mask, row, 0), self._background_rows(length, phase), gain, level)
        if "scale" in block:  # a phase's noise scale: Gaussian gap noise stretched around its mean
            scale = block["scale"].gather(1, segment)[..., None]
            x = torch.where(mask[..., None], x, self._noise_mean + scale * (x - self._noise_mean))
        chunk = Chunk(
            x=x,
            label=block["label"].gather(1, segment),
            mask=mask,
            start=frame == block["first"].gather(1, segment),
            end=frame == block["last"].gather(1, segment),
            sample_index=block["sample_index"].gather(1, segment),
            sample_id=block["sample_id"].gather(1, segment),
            phase=phase,
        )
        self._pos = self._pos + length
        self._since += length
        self.frames_read += length
        return chunk

    def _segments(self, length: int) -> torch.Tensor:
        """``[B, T]``: the block segment of each frame of the next ``length`` frames.

        ``searchsorted(segment_ends, frame, right=True)``, computed as the segment at the
        first frame plus a running count of the segment ends inside the chunk: the ends
        that can fall inside are few (``window``), and counting them is several times
        cheaper than a binary search per frame.
        """
        ends = self._block["segment_ends"]
        window = 2 * (math.ceil(length / max(self._min_event, 1)) + 2)
        first = torch.searchsorted(ends, self._pos[:, None], right=True)  # [B, 1]
        columns = (first + torch.arange(window, device=self.device)).clamp_max_(ends.shape[1] - 1)
        # frames from the chunk's start to each end (>= 1); those at or past the chunk land in column `length`
        inside = ends.gather(1, columns).sub_(self._pos[:, None]).clamp_max_(length)
        counts = torch.zeros(self.num_lanes, length + 1, dtype=torch.long, device=self.device)
        counts.scatter_add_(1, inside, torch.ones_like(inside))
        return torch.cumsum(counts[:, :length], 1).add_(first)

    def _background_rows(self, length: int, phase: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T]`` background table rows of the next ``length`` frames (absolute frames from ``frames_read``).

        ``phase`` (``[B, T]``): each frame's phase, whose background source it reads (needed
        when the phases change the background).
        """
        size = self.scene.segment
        absolute = self.frames_read + torch.arange(length, device=self.device)
        first, last = self.frames_read // size, (self.frames_read + length - 1) // size
        cached = self._background_cache  # segment -> [S, B] rows, hashed once
        for old in [j for j in cached if j < first]:
            del cached[old]
        new = [j for j in range(first, last + 1) if j not in cached]
        if new:
            segments = torch.tensor(new, device=self.device).expand(self.num_lanes, -1)
            cached.update(zip(new, self._background_starts(segments).unbind(2), strict=True))
        starts = torch.stack([cached[j] for j in range(first, last + 1)], 2)  # [S, B, segments]
        rows = starts[:, :, absolute // size - first] + absolute % size  # [S, B, T]
        if len(self.scene.backgrounds) == 1:
            return rows[0]
        if phase is None:
            raise ValueError("the phases change the background: its rows need each frame's phase")
        return self._pick(rows, self.scene.phase_background[phase][None])

    def _rows(self, row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` frames of the table rows ``row`` (``[B, T]``)."""
        size = self.feature_size
        if self._table is not None:
            return self._table.index_select(0, row.view(-1)).view(*row.shape, size)
        # bank too large to copy: both gathered, then selected
        samples = self._bank_rows.index_select(0, torch.where(mask, row, 0).view(-1))
        noise = self._noise_rows.index_select(0, torch.where(mask, 0, row - self._noise_base).view(-1))
        return torch.where(mask.view(-1, 1), samples, noise).view(*row.shape, size)
