"""Profile: the calibration a station screens with. Its schema (registration, blackbody, optics), the
camera-to-camera registration model, the history of profiles on disk and their verification.
May import only the shared modules (types, errors, paths, atomic).
"""
