"""CLI: every ``station`` command and the click group, the composition root. The only layer that wires
acquire, screen, log, fitting, sim and calibration together (through ``station.headless`` for screening).
May import anything in ``station`` and ``calibration``; nothing in ``station`` imports it.
"""
