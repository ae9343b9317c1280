"""What ``trainer.devices`` asks for, read without torch (the fast path's choice, the parallel launcher's slots)."""

from __future__ import annotations

from collections.abc import Sequence


def requested_devices(devices: object) -> int | None:
    """How many devices ``trainer.devices`` asks for: a count, a list's length (``[0, 1]``, ``"0,1"``), or None
    where it adapts to what the process sees (``auto``, ``-1``, unset)."""
    if isinstance(devices, bool) or devices is None:
        return None
    if isinstance(devices, int):
        return devices if devices > 0 else None
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1", ""):
            return None
        if text.isdigit():
            return int(text)
        return len([d for d in text.split(",") if d.strip()])
    if isinstance(devices, Sequence):
        return len(devices)
    return None
