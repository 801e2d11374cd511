"""Steps shared by the six actions.

load_x gathers reads, check_x raises, resolve_x finds or creates, build_x is pure; ask_x adds the queries x needs
to the document's one batch of reads (steps/query.py Questions), and the step that reads the answers follows.
"""
