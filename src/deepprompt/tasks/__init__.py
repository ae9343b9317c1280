"""Task families, one folder each: its data module(s), Lightning module(s) and metrics side by side.

``deepprompt.tasks.registry`` maps every family to its classes; ``deepprompt.tasks.module.TaskModule`` is the
Lightning base they all derive from; ``deepprompt.data`` holds the data plumbing they share.
"""
