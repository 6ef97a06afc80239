"""Sim: the physically based two-camera simulator (people, faces, room, optics, sensors) that writes recordings
with their ground truth, and ``live.py``, the same scene as a live camera (``sim:SEED``). May import acquire
(the recording writer, the source interface), profile and the shared modules; nothing that screens imports it.
"""
