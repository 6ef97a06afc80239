"""Screen: one frame pair's faces to one decision per person. Face detection, mapping onto the thermal image,
canthus measurement and its spot-size correction, tracking, uncertainty, the skin-to-body model (runtime
only) and the alarm policy. May import acquire, profile and the shared modules; never log, fitting or cli.
"""
