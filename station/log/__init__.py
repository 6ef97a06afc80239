"""Log: the evidence. The hash-chained SQLite store, the guarded writer and its spill file, retention,
exports and reports. May import the shared modules (types, errors, paths, atomic) and nothing that
screens: the log records decisions, it never makes them.
"""
