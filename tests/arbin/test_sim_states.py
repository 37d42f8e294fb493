"""Random command sequences against the simulated cycler, checked against a reference model.

Each example starts a real simulator and drives it over TCP with a raw CTI socket; simulated
time stands still (a manual clock), so a started test stays on its first (rest) step.
"""

from __future__ import annotations

from typing import Dict, List

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pyburnerkit.arbin import codec
from pyburnerkit.arbin.models import ChannelState
from pyburnerkit.arbin.sim import ArbinSim

from .conftest import SECRET, USER, ManualClock, RawCti

N = 4
CHANNELS = st.integers(0, N)  # index N is out of range on purpose


class Model:
    def __init__(self) -> None:
        self.assigned = False
        self.running = False
        self.resumable = False
        self.unsafe = False


class CyclerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim = ArbinSim(N, username=USER, password=SECRET, clock=ManualClock()).start()
        self.cti = RawCti(self.sim.port)
        self.model: Dict[int, Model] = {i: Model() for i in range(N)}

    def teardown(self) -> None:
        self.cti.close()
        self.sim.close()

    def code(self, message) -> int:
        return int(self.cti.ask(message).result)

    @rule(ch=CHANNELS, known=st.booleans())
    def assign(self, ch: int, known: bool) -> None:
        name = "Rest+207855.sdx" if known else "Nope.sdx"
        got = self.code(codec.AssignScheduleRequest(ch, name))
        m = self.model.get(ch)
        expected = 0x10 if m is None else 0x13 if not known else 0x14 if m.running else 0
        assert got == expected
        if expected == 0:
            m.assigned, m.resumable = True, False

    @rule(chs=st.lists(CHANNELS, min_size=1, max_size=3))
    def start(self, chs: List[int]) -> None:
        got = self.code(codec.StartRequest("t", tuple(chs)))
        expected = 0
        for ch in chs:
            m = self.model.get(ch)
            if m is None:
                expected = 0x10
            elif m.running or m.unsafe:
                expected = 0x12
            elif not m.assigned:
                expected = 0x15
            if expected:
                break
        assert got == expected
        if expected == 0:
            for ch in chs:
                self.model[ch].running, self.model[ch].resumable = True, False

    @rule(ch=CHANNELS)
    def stop(self, ch: int) -> None:
        got = self.code(codec.StopRequest(ch))
        m = self.model.get(ch)
        assert got == (0x10 if m is None else 0)
        if m is not None and m.running:
            m.running, m.resumable = False, True

    @rule(ch=CHANNELS)
    def resume(self, ch: int) -> None:
        got = self.code(codec.ResumeRequest(ch))
        m = self.model.get(ch)
        if m is None:
            expected = 0x10
        elif m.running or m.unsafe:
            expected = 0x12
        elif not m.assigned:
            expected = 0x15
        elif not m.resumable:
            expected = 0x23
        else:
            expected = 0
        assert got == expected
        if expected == 0:
            m.running, m.resumable = True, False

    @rule(ch=CHANNELS, mv=st.sampled_from([52, 55, 105, 116, 3]))
    def set_mv(self, ch: int, mv: int) -> None:
        got = self.code(codec.SetMVRequest(ch, mv, 1.0))
        m = self.model.get(ch)
        expected = 0x10 if m is None else 0x11 if mv == 3 else 0 if m.running else 0x12
        assert got == expected

    @rule(ch=st.integers(0, N - 1))
    def make_unsafe(self, ch: int) -> None:
        self.sim.set_state(ch + 1, ChannelState.UNSAFE)
        m = self.model[ch]
        m.resumable = m.running or m.resumable
        m.running, m.unsafe = False, True

    @invariant()
    def states_match(self) -> None:
        statuses = self.cti.ask(codec.ChannelInfoRequest(-1, 1, 0)).statuses
        assert [s.channel for s in statuses] == list(range(1, N + 1))
        for s in statuses:
            m = self.model[s.channel - 1]
            want = (ChannelState.REST if m.running else ChannelState.UNSAFE if m.unsafe
                    else ChannelState.IDLE)
            assert s.state is want, (s.channel, s.state, vars(m))
            assert (s.schedule == "Rest+207855.sdx") == m.assigned


CyclerMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15,
                                           deadline=None)
TestCyclerStates = CyclerMachine.TestCase
