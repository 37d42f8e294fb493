"""Alert rules, evaluated on every sample (and on a timer for silence).

Three kinds:

* **threshold**: ``field`` above and/or below a limit, with ``hysteresis`` (fires when the value
  crosses the limit, clears only once it is back inside by at least ``hysteresis``);
* **state**: ``field`` equals one of ``values`` (compared with the value and with its enum name,
  e.g. an Arbin channel status ``"Unsafe"``, an Afterburner ``ErrorState`` name);
* **silence**: no sample from a device for ``seconds``.

A rule fires once when it becomes true and once when it clears, per device and channel
(silence: per device). Each transition is an :class:`AlertChanged` event to recorder
callbacks, a log line, an MQTT message (``<root>/alerts/<rule>/<device>[/<channel>]``,
retained) and, if set, a command run on a helper thread (its environment carries
``PYBURNERKIT_ALERT``, ``..._ACTIVE``, ``..._DEVICE``, ``..._CHANNEL``, ``..._FIELD``,
``..._VALUE``). Firing never blocks recording: the command queue is bounded and drops when
full.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigurationError
from ..types import Event
from .samples import Message, Sample, slug

log = logging.getLogger(__name__)

__all__ = ["AlertRule", "AlertChanged", "AlertEngine"]

KINDS = ("threshold", "state", "silence")


@dataclass(frozen=True)
class AlertRule:
    """One rule. ``device``/``family`` narrow it to some devices (None = every device)."""

    name: str
    kind: str = "threshold"
    field: Optional[str] = None
    above: Optional[float] = None
    below: Optional[float] = None
    hysteresis: float = 0.0
    values: Tuple[Any, ...] = ()
    seconds: Optional[float] = None
    device: Optional[str] = None
    family: Optional[str] = None
    command: Optional[Tuple[str, ...]] = None
    message: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError(f"alert name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ConfigurationError(
                f"alert {self.name!r}: kind={self.kind!r} must be one of {', '.join(KINDS)}")
        if self.kind in ("threshold", "state") and not self.field:
            raise ConfigurationError(f"alert {self.name!r}: a {self.kind} rule needs a field")
        if self.kind == "threshold":
            if self.above is None and self.below is None:
                raise ConfigurationError(
                    f"alert {self.name!r}: a threshold rule needs above= and/or below=")
            for label in ("above", "below", "hysteresis"):
                v = getattr(self, label)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise ConfigurationError(
                        f"alert {self.name!r}: {label} must be a number, got {v!r}")
            if self.hysteresis < 0:
                raise ConfigurationError(
                    f"alert {self.name!r}: hysteresis={self.hysteresis!r} must be >= 0")
        if self.kind == "state" and not self.values:
            raise ConfigurationError(f"alert {self.name!r}: a state rule needs values=[...]")
        if self.message is not None:
            try:  # a broken template must fail here, not on a source thread when it fires
                str(self.message).format(rule="r", device="d", channel="c", field="f",
                                         value=1.0, text="", state="firing")
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise ConfigurationError(
                    f"alert {self.name!r}: message={self.message!r} is not a valid template "
                    f"(fields: rule, device, channel, field, value, text, state): "
                    f"{type(exc).__name__}: {exc}") from None
        if self.kind == "silence":
            s = self.seconds
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0:
                raise ConfigurationError(
                    f"alert {self.name!r}: silence needs seconds > 0 (seconds), got {s!r}")

    def __repr__(self) -> str:
        # a command often carries a credential (a webhook token, curl -u user:password)
        from .secrets import redact_text
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "command" and value is not None:
                value = tuple(redact_text(arg) for arg in value)
            elif f.name == "message" and value is not None:
                value = redact_text(value)
            shown.append(f"{f.name}={value!r}")
        return f"AlertRule({', '.join(shown)})"

    def matches_device(self, family: str, device: str) -> bool:
        return ((self.device is None or self.device == device)
                and (self.family is None or self.family == family))

    def evaluate(self, sample: Sample, active: bool) -> Optional[bool]:
        """The rule's new state for this sample, or None when the sample does not bear on it."""
        if sample.field != self.field:
            return None
        if self.kind == "state":
            wanted = {str(v) for v in self.values}
            number = sample.number
            if number is not None and any(  # 6 in the config matches 6.0 from the device
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v == number
                    for v in self.values):
                return True
            return str(sample.value) in wanted or (sample.text is not None
                                                   and sample.text in wanted)
        number = sample.number
        if number is None:
            return None
        h = self.hysteresis if active else 0.0
        high = self.above is not None and number > self.above - h
        low = self.below is not None and number < self.below + h
        # once active, it stays active until back inside the band by at least the hysteresis
        return high or low


@dataclass(frozen=True)
class AlertChanged(Event):
    """A rule fired (``active`` True) or cleared (False) for one device."""

    rule: str
    active: bool
    family: str
    device: str
    field: Optional[str] = None
    value: Any = None
    message: str = ""
    channel: str = ""


class AlertEngine:
    """Keeps the per-(rule, device) state and turns transitions into outputs.

    :meth:`on_samples` runs on whatever thread delivered the samples (a client's events thread
    or a poll thread) and never blocks; :meth:`check_silence` runs on the recorder timer thread.
    ``publish(event)`` and ``send(messages)`` are supplied by the recorder.
    """

    def __init__(self, rules: Sequence[AlertRule], publish: Any, send: Any,
                 *, command_queue: int = 100, command_timeout: float = 60.0) -> None:
        names = [r.name for r in rules]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigurationError(f"alert names must be unique, repeated: {sorted(dupes)}")
        self.rules = list(rules)
        self._publish = publish
        self._send = send
        self._active: Dict[Tuple[str, str, str, str], bool] = {}
        self._last_seen: Dict[Tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.started_at = time.monotonic()
        self.fired = 0
        self.commands_dropped = 0
        self.command_timeout = command_timeout
        self._commands: "queue.Queue[Any]" = queue.Queue(maxsize=command_queue)
        self._runner: Optional[threading.Thread] = None
        self._abort = threading.Event()
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self._devices: List[Tuple[str, str]] = []

    # -- devices the recorder knows of (silence counts from the start for them) ------------
    def expect(self, family: str, device: str) -> None:
        with self._lock:
            if (family, device) not in self._devices:
                self._devices.append((family, device))

    def on_samples(self, samples: Sequence[Sample]) -> None:
        if not self.rules or not samples:
            return
        now = time.monotonic()
        changes: List[Tuple[AlertRule, bool, Sample]] = []
        with self._lock:
            for s in samples:
                self._last_seen[(s.family, s.device)] = now
            first = samples[0]
            for rule in self.rules:
                if rule.kind == "silence":
                    for fam, dev in {(s.family, s.device) for s in samples}:
                        key = (rule.name, fam, dev, "")
                        if self._active.get(key) and rule.matches_device(fam, dev):
                            self._active[key] = False
                            changes.append((rule, False, first))
                    continue
                for s in samples:
                    if not rule.matches_device(s.family, s.device):
                        continue
                    key = (rule.name, s.family, s.device, s.channel)
                    was = self._active.get(key, False)
                    now_active = rule.evaluate(s, was)
                    if now_active is None or now_active == was:
                        continue
                    self._active[key] = now_active
                    changes.append((rule, now_active, s))
        for rule, active, s in changes:
            if rule.kind == "silence":
                self._fire(rule, active, s.family, s.device, None, None)
            else:
                self._fire(rule, active, s.family, s.device, s.field, s.value, s.channel,
                           s.text)

    def check_silence(self) -> Optional[float]:
        """Fire silence rules that are due; return seconds until the next check (or None)."""
        silence = [r for r in self.rules if r.kind == "silence"]
        if not silence:
            return None
        now = time.monotonic()
        fire: List[Tuple[AlertRule, str, str]] = []
        next_due: Optional[float] = None
        with self._lock:
            devices = set(self._devices) | set(self._last_seen)
            for rule in silence:
                for fam, dev in devices:
                    if not rule.matches_device(fam, dev):
                        continue
                    key = (rule.name, fam, dev, "")
                    if self._active.get(key):
                        continue
                    seen = self._last_seen.get((fam, dev), self.started_at)
                    due = seen + float(rule.seconds or 0)
                    if due <= now:
                        self._active[key] = True
                        fire.append((rule, fam, dev))
                    else:
                        left = due - now
                        next_due = left if next_due is None else min(next_due, left)
            if next_due is None:
                next_due = min(float(r.seconds or 1) for r in silence)
        for rule, fam, dev in fire:
            self._fire(rule, True, fam, dev, None, None)
        return next_due

    def active(self) -> List[Tuple[str, str, str, str]]:
        with self._lock:
            return sorted(k for k, v in self._active.items() if v)

    # -- outputs -----------------------------------------------------------------------------
    def _describe(self, rule: AlertRule, active: bool, device: str, field: Optional[str],
                  value: Any, channel: str = "", text: Optional[str] = None) -> str:
        where = f"{device} channel {channel}" if channel else device
        if rule.message:
            try:
                return rule.message.format(rule=rule.name, device=device, channel=channel,
                                           field=field, value=value, text=text or "",
                                           state="firing" if active else "cleared")
            except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
                # e.g. "{value:.1f}" meeting a text value: never let it stop the alert
                log.debug("alert %s: message template failed: %s", rule.name, exc)
        if rule.kind == "silence":
            what = f"no data for {rule.seconds:g} s"
        elif rule.kind == "state":
            what = f"{field} = {value!r}" + (f" ({text})" if text else "")
        else:
            limits = []
            if rule.above is not None:
                limits.append(f"> {rule.above:g}")
            if rule.below is not None:
                limits.append(f"< {rule.below:g}")
            what = f"{field} = {value!r} ({' or '.join(limits)})"
        return f"{rule.name} {'FIRING' if active else 'cleared'} on {where}: {what}"

    def _fire(self, rule: AlertRule, active: bool, family: str, device: str,
              field: Optional[str], value: Any, channel: str = "",
              value_text: Optional[str] = None) -> None:
        text = self._describe(rule, active, device, field, value, channel, value_text)
        self.fired += 1
        if active:
            log.warning("alert %s", text)
        else:
            log.info("alert %s", text)
        event = AlertChanged(rule.name, active, family, device, field, value, text, channel)
        self._publish(event)
        payload = json.dumps({"rule": rule.name, "active": active, "family": family,
                              "device": device, "channel": channel, "field": field,
                              "value": value, "message": text, "timestamp": event.timestamp})
        topic = f"alerts/{slug(rule.name)}/{slug(device)}"
        if channel:
            topic += f"/{slug(channel)}"
        self._send([Message(topic, payload, True)])
        if rule.command:
            env = dict(os.environ, PYBURNERKIT_ALERT=rule.name,
                       PYBURNERKIT_ACTIVE="1" if active else "0", PYBURNERKIT_DEVICE=device,
                       PYBURNERKIT_CHANNEL=channel,
                       PYBURNERKIT_FAMILY=family, PYBURNERKIT_FIELD=field or "",
                       PYBURNERKIT_VALUE="" if value is None else str(value),
                       PYBURNERKIT_MESSAGE=text)
            try:
                self._commands.put_nowait((list(rule.command), env))
            except queue.Full:
                self.commands_dropped += 1
                log.warning("alert %s: command queue full, command not run", rule.name)
                return
            self._ensure_runner()

    def _ensure_runner(self) -> None:
        with self._lock:
            if self._runner is None:
                self._runner = threading.Thread(target=self._run_commands, daemon=True,
                                                name="pyburnerkit-recorder-alerts")
                self._runner.start()

    def _run_commands(self) -> None:
        while True:
            item = self._commands.get()
            if item is None or self._abort.is_set():
                return
            argv, env = item
            try:
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except OSError as exc:
                log.warning("alert command %s failed: %s", argv[0], exc)
                continue
            self._proc = proc
            try:
                _, err = proc.communicate(timeout=self.command_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                log.warning("alert command %s did not finish within %g s; killed it", argv[0],
                            self.command_timeout)
                continue
            finally:
                self._proc = None
            if proc.returncode != 0 and not self._abort.is_set():
                log.warning("alert command %s exited with %d: %s", argv[0], proc.returncode,
                            err.decode(errors="replace").strip()[:200])

    def close(self, timeout: Optional[float]) -> None:
        """Let queued commands run until ``timeout``; then stop the running one (SIGTERM, then
        SIGKILL) and drop the rest, so no command outlives the recorder for long."""
        runner = self._runner
        if runner is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._commands.put(None, timeout=timeout)
        except queue.Full:
            pass
        if runner is threading.current_thread():
            return
        runner.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if runner.is_alive():
            self._abort.set()
            dropped = 0
            while True:
                try:
                    if self._commands.get_nowait() is not None:
                        dropped += 1
                except queue.Empty:
                    break
            self._commands.put_nowait(None)
            proc = self._proc
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.warning("alert commands still running at close: stopped them (%d queued "
                        "dropped)", dropped)
            self.commands_dropped += dropped
            runner.join(5.0)
