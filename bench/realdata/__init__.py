"""Real-data evaluation harness: the product (through its CLI) beside simple baselines.

``datasets`` turns each packaged dataset into one frame layout, ``splits`` fixes the
forward and leave-last-N splits, ``product`` drives ``campaign import / recommend /
train / score`` in subprocesses, ``baselines`` and ``metrics`` compute the anchors and
the figures, ``evaluate`` runs one split and ``report`` prints lines and Markdown.
The driver is ``bench/real_eval.py``; ``docs/evaluation.md`` explains the choices.
"""
