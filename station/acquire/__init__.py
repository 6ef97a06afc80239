"""Acquire: frames in. Camera sources, recordings and their importers, pairing visible with thermal frames,
the intake that paces them, and radiometry (counts to apparent °C, the blackbody and reference disc).
May import ``station.profile`` and the shared modules (types, errors, paths, atomic); never screen, log or sim.
"""
