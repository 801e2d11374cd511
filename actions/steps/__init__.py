"""Steps shared by the six actions.

load_x gathers reads, check_x raises, resolve_x finds or creates, build_x is pure.
"""
