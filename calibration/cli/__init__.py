"""The technician's ``station calibrate`` commands: camera registration, the blackbody, the spot-size response.
Composed into the ``station`` group by ``station.cli.main``; the fitting routines they call live beside
this folder in ``calibration/``.
"""
